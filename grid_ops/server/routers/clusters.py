"""``/v1/core/clusters``: the clusters of the server config and their instance types."""

from __future__ import annotations

from fastapi import APIRouter, Response

from grid_ops.schemas import Cluster, ListClustersResponse, ListInstanceTypesResponse
from grid_ops.server.errors import ApiError
from grid_ops.server.lookup import check_cluster
from grid_ops.server.state import StateDep, UserDep, wire_response
from grid_ops.server.views import cluster_view, instance_type_view

router = APIRouter(prefix="/v1/core/clusters", tags=["clusters"])


@router.get("", response_model=ListClustersResponse)
async def list_clusters(state: StateDep, user: UserDep) -> Response:
    return wire_response(
        ListClustersResponse(
            clusters=[cluster_view(c) for c in state.config.clusters.values()],
            default_cluster=state.config.default_cluster,
        )
    )


@router.get("/{cluster_id}", response_model=Cluster)
async def get_cluster(cluster_id: str, state: StateDep, user: UserDep) -> Response:
    check_cluster(state.config, cluster_id)
    return wire_response(cluster_view(state.config.clusters[cluster_id]))


@router.get("/{cluster_id}/instance-types", response_model=ListInstanceTypesResponse)
async def list_instance_types(cluster_id: str, state: StateDep, user: UserDep) -> Response:
    check_cluster(state.config, cluster_id)
    return wire_response(
        ListInstanceTypesResponse(
            instance_types=[instance_type_view(t) for t in state.config.clusters[cluster_id].instance_types]
        )
    )


@router.post("", include_in_schema=False)
@router.put("/{cluster_id}", include_in_schema=False)
@router.delete("/{cluster_id}", include_in_schema=False)
def change_cluster(state: StateDep, user: UserDep) -> None:
    raise ApiError(405, "clusters are declared in the server's config file (--config); edit it and restart the server")
