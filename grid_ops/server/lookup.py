"""Find a caller's run or experiment by id or by name; anything else is a 404."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from grid_ops.server.auth import Principal
from grid_ops.server.config import ServerConfig
from grid_ops.server.errors import ApiError, not_found
from grid_ops.server.ids import is_id
from grid_ops.server.models import ExperimentRow, RunRow


def check_cluster(config: ServerConfig, cluster_id: str) -> None:
    if cluster_id not in config.clusters:
        raise ApiError(404, f"cluster {cluster_id!r} not found; clusters: {', '.join(config.clusters)}")


def find_run(session: Session, user: Principal, ref: str, for_update: bool = False) -> RunRow:
    query = select(RunRow).where(RunRow.user_id == user.id)
    if is_id(ref):
        query = query.where(RunRow.id == ref)
    else:
        query = query.where(RunRow.name == ref, RunRow.deleted_at.is_(None))
    if for_update:
        query = query.with_for_update()
    run = session.scalar(query)
    if run is None:
        raise not_found("run", ref)
    return run


def find_experiment(session: Session, user: Principal, ref: str) -> tuple[ExperimentRow, RunRow]:
    query = (
        select(ExperimentRow, RunRow)
        .join(RunRow, RunRow.id == ExperimentRow.run_id)
        .where(ExperimentRow.user_id == user.id)
    )
    if is_id(ref):
        query = query.where(ExperimentRow.id == ref)
    else:
        query = query.where(ExperimentRow.name == ref, ExperimentRow.deleted_at.is_(None))
    row = session.execute(query.order_by(ExperimentRow.created_at.desc()).limit(1)).first()
    if row is None:
        raise not_found("experiment", ref)
    return row[0], row[1]
