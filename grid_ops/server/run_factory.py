"""Turns a create-run request into a validated run and its experiments, or a clear 4xx error.

Everything is checked before anything is written (a datastore reference is pinned to the caller's
version that succeeded), and the run with all its experiments is stored in one transaction, so a failed
request changes no state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from grid_ops import sweep
from grid_ops.errors import GridError
from grid_ops.metrics import compile_metrics_pattern
from grid_ops.names import generate_run_name, validate_run_name
from grid_ops.schemas import (
    CreateRunRequest,
    ExperimentState,
    PlannedExperiment,
    RunPlan,
    RunSpec,
    RunState,
)
from grid_ops.server import datastore_mounts, git_sources
from grid_ops.server.auth import Principal
from grid_ops.server.config import ClusterConfig, InstanceTypeConfig, ServerConfig
from grid_ops.server.db import utcnow
from grid_ops.server.errors import ApiError, bad_request, conflict
from grid_ops.server.ids import new_id
from grid_ops.server.models import ExperimentRow, RunRow

FRAMEWORKS = ("lightning", "pytorch", "torch", "tensorflow", "julia", "torchelastic")
_JULIA_VERSION = re.compile(r"^julia:\d+\.\d+(\.\d+)?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Prepared:
    """A validated request: where it runs, on what, and the experiments it expands to."""

    name: str
    cluster: ClusterConfig
    instance_type: InstanceTypeConfig
    use_spot: bool
    spec: RunSpec
    trials: list[sweep.Trial]


def _number(field: str, text: str | None, kind: type = float) -> Any:
    if text is None or text == "":
        return None
    try:
        value = kind(text)
    except (TypeError, ValueError) as exc:
        raise bad_request(f"spec.resources.{field} must be a number, got {text!r}") from exc
    if value < 0:
        raise bad_request(f"spec.resources.{field} must not be negative, got {text!r}")
    return value or None  # 0 means "not asked for", as the original clients send it


def _choose_instance_type(cluster: ClusterConfig, spec: RunSpec) -> InstanceTypeConfig:
    res = spec.resources
    cpu = _number("cpu", res.cpu if res else None)
    gpu = _number("gpu", res.gpu if res else None, int)
    mem = _number("memoryMb", res.memory_mb if res else None, int)
    names = ", ".join(t.name for t in cluster.instance_types)
    if spec.instance_type:
        it = cluster.instance_type(spec.instance_type)
        if it is None:
            raise bad_request(
                f"unknown instance type {spec.instance_type!r} on cluster {cluster.id!r}; choose one of: {names}"
            )
        too_big = [
            f"{what} {asked:g} > {have:g}"
            for what, asked, have in (
                ("cpus", cpu, it.cpu),
                ("gpus", gpu, it.gpu),
                ("memory_mb", mem, it.memory_mb),
            )
            if asked is not None and asked > have
        ]
        if too_big:
            raise bad_request(
                f"resources asked exceed instance type {it.name!r} ({'; '.join(too_big)}); "
                f"choose a larger instance type ({names}) or ask for less"
            )
        return it
    fitting = [
        t
        for t in cluster.instance_types
        if (cpu is None or t.cpu >= cpu) and (gpu is None or t.gpu >= gpu) and (mem is None or t.memory_mb >= mem)
    ]
    if not fitting:
        # only what was asked for: "no instance type ... offers 64 CPUs; the largest is cpu-2 (2 CPUs)"
        units = {"cpu": ("CPU", "CPUs"), "gpu": ("GPU", "GPUs"), "memory_mb": ("MB of memory", "MB of memory")}
        asked = {attr: value for attr, value in (("cpu", cpu), ("gpu", gpu), ("memory_mb", mem)) if value is not None}

        def amount(attr: str, value: float) -> str:
            return f"{value:g} {units[attr][0] if value == 1 else units[attr][1]}"

        def offers(t: InstanceTypeConfig) -> str:
            return f"{t.name} ({', '.join(amount(attr, getattr(t, attr)) for attr in asked)})"

        if len(asked) == 1 and cluster.instance_types:
            attr = next(iter(asked))
            have = f"the largest is {offers(max(cluster.instance_types, key=lambda t: getattr(t, attr)))}"
        else:
            have = f"the instance types offer: {', '.join(offers(t) for t in cluster.instance_types) or 'nothing'}"
        wanted = " and ".join(amount(attr, value) for attr, value in asked.items()) or "anything"
        raise bad_request(f"no instance type on cluster {cluster.id!r} offers {wanted}; {have}")
    if cpu is None and gpu is None and mem is None:
        default = cluster.instance_type(cluster.default_instance_type)
        assert default is not None
        return default
    return min(fitting, key=lambda t: (t.gpu, t.hourly_cost, t.cpu, t.memory_mb))


def _check_framework(spec: RunSpec, cluster: ClusterConfig) -> None:
    image = spec.image
    if image is None:
        return
    fw = image.framework
    if fw and fw not in FRAMEWORKS and not _JULIA_VERSION.match(fw):
        raise bad_request(f"unknown framework {fw!r}; use one of: {', '.join(FRAMEWORKS)}, or julia:X.Y.Z")
    if image.dockerfile and cluster.executor == "local":
        raise bad_request(
            f"cluster {cluster.id!r} runs experiments as local processes and cannot build the dockerfile "
            f"{image.dockerfile!r}; drop the dockerfile or use a cluster whose executor runs containers"
        )


def _check_env(spec: RunSpec) -> None:
    for key in spec.env or {}:
        if not _ENV_NAME.match(key):
            raise bad_request(f"invalid environment variable name {key!r} in spec.env")


def _check_workdir(spec: RunSpec) -> None:
    rel = spec.relative_work_dir
    if rel and (rel.startswith("/") or ".." in rel.split("/")):
        raise bad_request(f"relativeWorkDir {rel!r} must be a path inside the source, without '..'")


def _check_metrics_pattern(spec: RunSpec) -> None:
    """``spec.metricsPattern``, when set, must compile and have the groups ``name`` and ``value``."""
    if spec.metrics_pattern is not None:
        try:
            compile_metrics_pattern(spec.metrics_pattern)
        except ValueError as exc:
            raise bad_request(f"spec.metricsPattern: {exc}") from exc


def prepare(
    session: Session, config: ServerConfig, user: Principal, cluster_id: str, req: CreateRunRequest
) -> Prepared:
    """Validate a create-run request and expand its sweep; raise ApiError on anything wrong."""
    cluster = config.clusters.get(cluster_id)
    if cluster is None:
        raise ApiError(404, f"cluster {cluster_id!r} not found; clusters: {', '.join(config.clusters)}")
    spec = req.spec
    if spec.cluster_id and spec.cluster_id != cluster_id:
        raise bad_request(f"spec.clusterId {spec.cluster_id!r} differs from the cluster in the path {cluster_id!r}")
    try:
        name = validate_run_name(req.name) if req.name else generate_run_name()
    except GridError as exc:
        raise bad_request(exc.message) from exc
    command = (spec.run_controller_command or "").strip()
    if not command:
        raise bad_request("spec.runControllerCommand is empty: give the command to run, e.g. 'python train.py'")
    _check_framework(spec, cluster)
    _check_env(spec)
    _check_workdir(spec)
    _check_metrics_pattern(spec)
    if spec.max_parallel is not None and spec.max_parallel < 1:
        raise bad_request(f"spec.maxParallel must be at least 1, got {spec.max_parallel}")
    mounts = datastore_mounts.resolve(session, user, cluster_id, spec.datastores)
    instance_type = _choose_instance_type(cluster, spec)
    if (
        instance_type.cpu > cluster.capacity.cpu
        or instance_type.gpu > cluster.capacity.gpu
        or instance_type.memory_mb > cluster.capacity.memory_mb
    ):
        raise bad_request(
            f"instance type {instance_type.name!r} needs more than cluster {cluster.id!r} has in all "
            f"(cpu {cluster.capacity.cpu:g}, gpu {cluster.capacity.gpu}, memory_mb {cluster.capacity.memory_mb})"
        )
    strategy = spec.sweep_type or "grid_search"
    try:
        trials = sweep.expand(command, strategy, spec.sweep_options or {}, config.max_experiments_per_run)
    except sweep.SweepError as exc:
        raise bad_request(str(exc)) from exc
    if not spec.dry_run and session.scalar(
        select(RunRow.id).where(RunRow.user_id == user.id, RunRow.name == name, RunRow.deleted_at.is_(None))
    ):
        raise conflict(f"a run named {name!r} already exists; choose another name or delete that run first")
    # last, as it may ask a git server: the run's ref pinned to one commit for all its experiments
    git = None
    if spec.source_code and not req.local_dir:
        git = git_sources.resolve(spec.source_code, spec.relative_work_dir)
    normalized = spec.model_copy(
        update={
            "source_commit": git.commit if git else None,
            "cluster_id": cluster_id,
            "instance_type": instance_type.name,
            "sweep_type": strategy,
            "user_id": user.id,
            "run_controller_command": command,
            "desired_state": None,
            "dry_run": bool(spec.dry_run),
            "datastores": mounts,
        }
    )
    return Prepared(name, cluster, instance_type, bool(spec.use_spot), normalized, trials)


def plan(p: Prepared) -> RunPlan:
    """A dry run's answer: the experiments and what they would cost per hour."""
    price = p.instance_type.price(p.use_spot)
    cap = p.cluster.capacity
    per_cpu = int(cap.cpu // p.instance_type.cpu) if p.instance_type.cpu else len(p.trials)
    per_gpu = int(cap.gpu // p.instance_type.gpu) if p.instance_type.gpu else len(p.trials)
    concurrent = max(1, min(len(p.trials), per_cpu, per_gpu, p.spec.max_parallel or len(p.trials)))
    return RunPlan(
        experiments=[
            PlannedExperiment(
                name=f"{p.name}-exp{t.index}",
                command=list(t.argv),
                parameters=dict(t.params),
                instance_type=p.instance_type.name,
                hourly_cost=price,
            )
            for t in p.trials
        ],
        instance_type=p.instance_type.name,
        hourly_cost_per_experiment=price,
        hourly_cost_all_parallel=round(price * len(p.trials), 6),
        max_concurrent=concurrent,
    )


def store(session: Session, user: Principal, p: Prepared, description: str | None, local_dir: bool) -> RunRow:
    """Write the run and all its experiments (one bulk insert) in the caller's transaction."""
    now = utcnow()
    run = RunRow(
        id=new_id(),
        name=p.name,
        user_id=user.id,
        cluster_id=p.cluster.id,
        description=description,
        spec=p.spec.wire(),
        phase=RunState.PENDING.value,
        desired_state=None,
        message=None,
        source_state="awaiting" if local_dir else ("git" if p.spec.source_commit else "none"),
        source_path=None,
        max_parallel=p.spec.max_parallel,
        experiment_count=len(p.trials),
        created_at=now,
        updated_at=now,
    )
    session.add(run)
    session.flush()
    datastore_mounts.record(session, run.id, p.spec.datastores)
    phase = ExperimentState.PENDING.value if local_dir else ExperimentState.QUEUED.value
    price = p.instance_type.price(p.use_spot)
    it = p.instance_type
    rows = [
        {
            "id": new_id(),
            "run_id": run.id,
            "user_id": user.id,
            "cluster_id": p.cluster.id,
            "name": f"{p.name}-exp{t.index}",
            "index": t.index,
            "command": list(t.argv),
            "parameters": dict(t.params),
            "instance_type": it.name,
            "cpu": it.cpu,
            "gpu": it.gpu,
            "memory_mb": it.memory_mb,
            "hourly_cost": price,
            "phase": phase,
            "created_at": now,
            "updated_at": now,
        }
        for t in p.trials
    ]
    if rows:
        session.execute(insert(ExperimentRow), rows)
    return run
