"""Rows to wire models: what the API answers for runs, experiments and clusters."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from grid_ops.schemas import (
    Availability,
    Cluster,
    ClusterSpec,
    ClusterState,
    ClusterStatus,
    ClusterType,
    Experiment,
    ExperimentSpec,
    ExperimentState,
    ExperimentStatus,
    ImageSpec,
    InstanceType,
    Resources,
    Run,
    RunActions,
    RunSpec,
    RunState,
    RunStatus,
)
from grid_ops.server.config import ClusterConfig, InstanceTypeConfig
from grid_ops.server.db import as_utc, utcnow
from grid_ops.server.models import ExperimentRow, RunRow
from grid_ops.server.phases import ACTIVE, counts_of
from grid_ops.server.scheduler import hours_between


def experiment_cost(row: ExperimentRow) -> float:
    """Hourly cost times the hours it has run (so far, for a running experiment)."""
    if row.cost is not None:
        return row.cost
    if row.phase in ACTIVE and row.started_at is not None:
        return row.hourly_cost * hours_between(row.started_at, utcnow())
    return 0.0


def experiment_view(row: ExperimentRow, run: RunRow) -> Experiment:
    spec = run.spec
    return Experiment(
        id=row.id,
        name=row.name,
        description=run.description,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        spec=ExperimentSpec.model_validate(
            {
                "actions": spec.get("actions"),
                "autoResume": spec.get("autoResume"),
                "clusterId": row.cluster_id,
                "command": row.command,
                "datastores": spec.get("datastores"),
                "desiredState": row.desired_state or ExperimentState.SUCCEEDED.value,
                "dryRun": False,
                "env": spec.get("env") or {},
                "image": spec.get("image") or {},
                "instanceType": row.instance_type,
                "resources": spec.get("resources") or {},
                "runId": row.run_id,
                "scratch": spec.get("scratch") or [],
                "sourceCode": spec.get("sourceCode") or "",
                "useSpot": bool(spec.get("useSpot")),
                "userId": row.user_id,
                "parameters": row.parameters,
            }
        ),
        status=ExperimentStatus(
            cost=experiment_cost(row),
            hourly_cost=row.hourly_cost,
            message=row.message,
            phase=ExperimentState(row.phase),
            start_timestamp=as_utc(row.started_at),
            finish_timestamp=as_utc(row.finished_at),
            deleted_timestamp=as_utc(row.deleted_at),
            exit_code=row.exit_code,
        ),
    )


def run_spec_view(run: RunRow) -> RunSpec:
    """The stored spec with the fields clients dereference always present (empty when unset)."""
    spec = RunSpec.model_validate(run.spec)
    return spec.model_copy(
        update={
            "image": spec.image or ImageSpec(),
            "source_code": spec.source_code or "",
            "resources": spec.resources or Resources(),
            "datastores": spec.datastores or [],
            "scratch": spec.scratch or [],
            "env": spec.env or {},
            "actions": spec.actions or RunActions(),
            "desired_state": RunState(run.desired_state) if run.desired_state else RunState.SUCCEEDED,
        }
    )


def run_view(session: Session, run: RunRow, with_ids: bool = True) -> Run:
    by_phase = dict(
        session.execute(
            select(ExperimentRow.phase, func.count())
            .where(ExperimentRow.run_id == run.id)
            .group_by(ExperimentRow.phase)
        ).all()
    )
    finished_cost = session.scalar(
        select(func.coalesce(func.sum(ExperimentRow.cost), 0.0)).where(ExperimentRow.run_id == run.id)
    )
    active = session.scalars(
        select(ExperimentRow).where(ExperimentRow.run_id == run.id, ExperimentRow.phase.in_(list(ACTIVE)))
    ).all()
    cost = float(finished_cost or 0.0) + sum(experiment_cost(e) for e in active)
    ids = None
    if with_ids:
        ids = list(
            session.scalars(
                select(ExperimentRow.id).where(ExperimentRow.run_id == run.id).order_by(ExperimentRow.index)
            )
        )
    return Run(
        id=run.id,
        name=run.name,
        description=run.description,
        created_at=as_utc(run.created_at),
        updated_at=as_utc(run.updated_at),
        spec=run_spec_view(run),
        status=RunStatus(
            cost=cost,
            hourly_cost=sum(e.hourly_cost for e in active),
            experiment_counts=counts_of(by_phase),
            experiment_ids=ids,
            message=run.message,
            phase=RunState(run.phase),
            start_timestamp=as_utc(run.started_at),
            finish_timestamp=as_utc(run.finished_at),
            deleted_timestamp=as_utc(run.deleted_at),
        ),
    )


def instance_type_view(it: InstanceTypeConfig) -> InstanceType:
    return InstanceType(
        name=it.name,
        cpu=f"{it.cpu:g}",
        gpu=str(it.gpu),
        memory=f"{it.memory_mb}Mi",
        memory_mb=it.memory_mb,
        hourly_cost=it.hourly_cost,
        spot_hourly_cost=it.spot_hourly_cost,
        spot=it.spot_hourly_cost is not None,
        availability=Availability.AVAILABLE,
        overprovisioned_ondemand_count=0,
    )


def cluster_view(cluster: ClusterConfig) -> Cluster:
    return Cluster(
        id=cluster.id,
        name=cluster.id,
        spec=ClusterSpec(
            cluster_type=ClusterType.BYOC if cluster.executor != "local" else ClusterType.GLOBAL,
            desired_state=ClusterState.RUNNING,
            executor=cluster.executor,
        ),
        status=ClusterStatus(phase=ClusterState.RUNNING, last_healthcheck_timestamp=utcnow()),
    )
