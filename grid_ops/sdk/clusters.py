"""The ``api`` namespace of the SDK: the clusters a user can run on and their instance types.

Exported as ``grid_ops.api`` so that ``api.list_clusters()`` and ``api.get_instance_types(...)`` read as
they did in the original SDK.
"""

from __future__ import annotations

from typing import NamedTuple

from grid_ops import schemas
from grid_ops.client import GridClient, get_client

__all__ = ["ListClusters", "get_instance_types", "list_clusters"]


class ListClusters(NamedTuple):
    """ListClusters(default_cluster: str, clusters: list[Cluster]): the user's clusters and the default."""

    default_cluster: str
    clusters: list[schemas.Cluster]


def list_clusters(is_global: bool = False, *, client: GridClient | None = None) -> ListClusters:
    """List the clusters for the user (``is_global``: only global and bring-your-own-cloud clusters)."""
    api = client or get_client()
    types = (schemas.ClusterType.GLOBAL, schemas.ClusterType.BYOC) if is_global else None
    answer = api.list_clusters(cluster_type_in=types)
    return ListClusters(default_cluster=answer.default_cluster or "", clusters=list(answer.clusters))


def get_instance_types(
    cluster_id: str | None = None, *, client: GridClient | None = None
) -> list[schemas.InstanceType]:
    """Get the instance types for the given cluster (default: the default cluster)."""
    return (client or get_client()).list_instance_types(cluster_id)
