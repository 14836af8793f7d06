"""Tasks for grid-ops runs: start one (or reattach to it), wait for it, cancel it, pick its best experiment,
and report it as artifacts.

Tasks pass run *names* (small strings) from one to the next, as Prefect results should be. A retried
task or flow run gets the same deterministic run name (``prefect_tasks.run_names``) and so reattaches to
the run it started rather than starting a second sweep; only when that run ended failed or cancelled does
a retry start a fresh one (``<name>-a2``, ...). A run that did not succeed always fails the waiting task.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from grid_ops.client import GridClient
from grid_ops.errors import ConflictError, GridError, NotFoundError
from grid_ops.names import validate_run_name
from grid_ops.sdk.resources import Resources
from grid_ops.sdk.run import Run
from grid_ops.sdk.states import TERMINAL_STATUSES
from prefect_tasks import artifacts
from prefect_tasks.cancellation import cancel_quietly, forget, remember
from prefect_tasks.context import in_prefect_run, log_info
from prefect_tasks.credentials import GridCredentials
from prefect_tasks.errors import RunNotSucceeded
from prefect_tasks.run_names import MAX_ATTEMPTS, attempt_name, deterministic_run_name
from prefect_tasks.waiting import Poll, await_, wait

RESTARTABLE = frozenset({"failed", "cancelled"})
"""A run found in one of these states under a task's name is not reattached to: a fresh one starts."""
FAILED_SHOWN = 3
"""How many failed experiments a failure message describes."""


def _credentials(credentials: GridCredentials | None) -> GridCredentials:
    return credentials if credentials is not None else GridCredentials()


def _datastore_ref(datastore: str | dict[str, Any] | None) -> str | None:
    """A datastore given as ``name[:version]`` or as the result of ``upload_datastore`` (its ``ref``)."""
    if isinstance(datastore, dict):
        ref = datastore.get("ref")
        if not isinstance(ref, str):
            raise GridError(f"datastore must be 'name:version' or upload_datastore's result, got {datastore!r}")
        return ref
    return datastore


def run_summary(client: GridClient, run: Run) -> dict[str, Any]:
    """The small JSON result of a waited-for run: name, status, message, experiment counts, cost, url."""
    return {
        "name": run.name,
        "status": run.status,
        "message": run.message,
        "experiments": {state: n for state, n in run.experiment_counts.items() if n},
        "cost": run.cost,
        "url": artifacts.run_url(client, run),
    }


def failure_details(run: Run) -> list[str]:
    """What went wrong in the run's failed experiments (the first few), and where to read more; empty
    when the control plane cannot say (this is only ever extra information)."""
    try:
        failed = [e for e in run.experiments if e.status == "failed"]
        details = []
        for experiment in failed[:FAILED_SHOWN]:
            lines = experiment.logs(tail=1).strip().splitlines()
            said = f"; last log line: {lines[-1][:300]}" if lines else ""
            details.append(f"{experiment.name}: {experiment.message or 'failed'}{said}")
    except GridError:
        return []
    if len(failed) > FAILED_SHOWN:
        details.append(f"... and {len(failed) - FAILED_SHOWN} more failed experiments")
    if failed:
        details.append(f"see the whole log: grid-ops logs {failed[0].name}")
    return details


def _not_succeeded(run: Run) -> RunNotSucceeded:
    details = failure_details(run)
    reason = f": {run.message}" if run.message else ""
    return RunNotSucceeded(f"grid-ops run {run.name!r} {run.status}{reason}", status=run.status, details=details)


# --------------------------------------------------------------------------- start


def _run_options(
    *,
    path: str | Path | None,
    strategy: str,
    strategy_options: dict[str, Any] | None,
    num_trials: int,
    env_vars: dict[str, Any] | None,
    datastore: str | dict[str, Any] | None,
    datastore_mount_dir: str | None,
    instance_type: str | None,
    use_spot: bool,
    cpus: int | None,
    gpus: int | None,
    max_parallel: int | None,
    description: str | None,
    cluster_id: str | None,
    run_options: dict[str, Any] | None,
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "path": path,
        "strategy": strategy,
        "strategy_options": strategy_options,
        "num_trials": num_trials,
        "env_vars": env_vars,
        "datastore": _datastore_ref(datastore),
        "datastore_mount_dir": datastore_mount_dir,
        "max_parallel": max_parallel,
        "description": description,
        "cluster_id": cluster_id,
    }
    if instance_type is not None or use_spot or cpus or gpus:
        options["resources"] = Resources(instance_type=instance_type, use_spot=use_spot, cpus=cpus or 0, gpus=gpus or 0)
    options.update(run_options or {})
    return {key: value for key, value in options.items() if value is not None}


def start_or_reattach(
    credentials: GridCredentials, command: str, name: str | None, options: dict[str, Any]
) -> tuple[Run, bool]:
    """Start ``command`` as a run named ``name`` (default: deterministic for this task call), or reattach to
    the run of that name if one is still going or succeeded; ``(run, reattached)``."""
    client = credentials.get_client()
    base = validate_run_name(name) if name is not None else deterministic_run_name()
    cluster_id = options.get("cluster_id")
    for attempt in range(1, MAX_ATTEMPTS + 1):
        candidate = attempt_name(base, attempt)
        try:
            existing = Run(candidate, cluster_id=cluster_id, client=client)
        except NotFoundError:
            run = Run(name=candidate, run_command=command, client=client, **options)
            try:
                run.start()
            except ConflictError:  # started meanwhile by a concurrent attempt of the same task
                existing = Run(candidate, cluster_id=cluster_id, client=client)
            else:
                return run, False
        if existing.run_command != command:
            raise ConflictError(
                f"run {candidate!r} already exists with another command ({existing.run_command!r}); "
                "give start_run a different name= (or none, for a name derived from the flow run)"
            )
        if existing.status not in RESTARTABLE:
            return existing, True
        log_info("grid-ops run %r ended %s; starting a fresh attempt", candidate, existing.status)
    raise GridError(f"{MAX_ATTEMPTS} runs named after {base!r} ended failed or cancelled; not starting another")


def _start(command: str, credentials: GridCredentials | None, name: str | None, options: dict[str, Any]) -> str:
    creds = _credentials(credentials)
    run, reattached = start_or_reattach(creds, command, name, options)
    remember(run.name, creds)
    log_info(
        "%s grid-ops run %r (%d experiments): %s",
        "reattached to" if reattached else "started",
        run.name,
        len(run),
        command,
    )
    if in_prefect_run():
        artifacts.create_run_link(creds.get_client(), run, reattached)
    return run.name


def _start_run(
    command: str,
    credentials: GridCredentials | None = None,
    *,
    name: str | None = None,
    path: str | None = None,
    strategy: str = "grid_search",
    strategy_options: dict[str, Any] | None = None,
    num_trials: int = 0,
    env_vars: dict[str, Any] | None = None,
    datastore: str | dict[str, Any] | None = None,
    datastore_mount_dir: str | None = None,
    instance_type: str | None = None,
    use_spot: bool = False,
    cpus: int | None = None,
    gpus: int | None = None,
    max_parallel: int | None = None,
    description: str | None = None,
    cluster_id: str | None = None,
    run_options: dict[str, Any] | None = None,
) -> str:
    """Start a grid-ops run of ``command`` (a sweep when it has list, range or distribution arguments) and
    return its name; a retry reattaches to the run it started.

    Args:
        command: the run command, e.g. ``python train.py --lr "[0.01, 0.1]"``.
        credentials: the control plane (default: ``GridCredentials()``, the SDK's default one).
        name: the run's name; default: derived from the flow run and this task call, so that retries find it.
        path: the source directory to snapshot (default: the current directory).
        strategy: ``grid_search``, ``random_search`` (with ``num_trials``) or ``none``.
        strategy_options: options of the strategy, e.g. ``{"seed": 3}``.
        num_trials: how many points ``random_search`` draws.
        env_vars: environment variables of every experiment.
        datastore: ``name[:version]`` or the result of ``upload_datastore``; mounted into every experiment.
        datastore_mount_dir: where it is mounted (``$GRID_DATASTORE_DIR`` always points at it).
        instance_type: the instance type of each experiment (default: the cluster's).
        use_spot: use the spot price.
        cpus: CPUs of each experiment.
        gpus: GPUs of each experiment.
        max_parallel: at most this many experiments at once.
        description: a description of the run.
        cluster_id: the cluster (default: the credentials' cluster, else the control plane's default).
        run_options: any other ``grid_ops.Run`` argument (``actions``, ``scratch``, ``metrics_pattern`` ...).
    """
    options = _run_options(
        path=path,
        strategy=strategy,
        strategy_options=strategy_options,
        num_trials=num_trials,
        env_vars=env_vars,
        datastore=datastore,
        datastore_mount_dir=datastore_mount_dir,
        instance_type=instance_type,
        use_spot=use_spot,
        cpus=cpus,
        gpus=gpus,
        max_parallel=max_parallel,
        description=description,
        cluster_id=cluster_id,
        run_options=run_options,
    )
    return _start(command, credentials, name, options)


start_run = task(name="start_run", cache_policy=NO_CACHE)(_start_run)


@task(name="start_run_async", cache_policy=NO_CACHE)
@functools.wraps(_start_run, assigned=("__module__", "__annotations__"))
async def start_run_async(*args: Any, **kwargs: Any) -> str:
    """Async form of ``start_run`` (same arguments): the snapshot and requests run in a worker thread."""
    return await asyncio.to_thread(_start_run, *args, **kwargs)


# --------------------------------------------------------------------------- wait


def _run_poll(
    run_name: str, credentials: GridCredentials | None, poll_interval: float, timeout: float | None
) -> tuple[Poll, Run, GridClient, GridCredentials]:
    creds = _credentials(credentials)
    client = creds.get_client()
    run = Run(run_name, client=client)
    remember(run.name, creds)
    progress = artifacts.RunProgress() if in_prefect_run() else None

    def fetch() -> str:
        return run.refresh().status

    def report() -> None:
        if progress is not None:
            progress.report(run)

    def cancel(reason: str) -> None:
        cancel_quietly(creds, run.name, reason)

    poll = Poll(f"grid-ops run {run.name!r}", fetch, cancel, report, poll_interval, timeout)
    return poll, run, client, creds


def _finish(run: Run, client: GridClient, status: str) -> dict[str, Any]:
    forget(run.name)
    if status != "succeeded":
        raise _not_succeeded(run)
    log_info("grid-ops run %r succeeded (%d experiments, cost $%.6f)", run.name, len(run), run.cost)
    return run_summary(client, run)


@task(cache_policy=NO_CACHE)
def wait_for_run(
    run_name: str,
    credentials: GridCredentials | None = None,
    poll_interval: float = 5.0,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Wait until every experiment of ``run_name`` has ended; return its summary if it succeeded.

    A run that failed or was cancelled raises ``RunNotSucceeded`` with its message and its failed
    experiments. After ``timeout`` seconds the run is cancelled and ``WaitTimeout`` raised; so is it when
    the flow run is cancelled (``FlowRunCancelled``) or the task is interrupted. A progress artifact
    (experiments finished / total) follows the run.
    """
    poll, run, client, _ = _run_poll(run_name, credentials, poll_interval, timeout)
    return _finish(run, client, wait(poll))


@task(cache_policy=NO_CACHE)
async def wait_for_run_async(
    run_name: str,
    credentials: GridCredentials | None = None,
    poll_interval: float = 5.0,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Async form of ``wait_for_run``: polls without holding a thread between polls."""
    poll, run, client, _ = await asyncio.to_thread(_run_poll, run_name, credentials, poll_interval, timeout)
    status = await await_(poll)
    return await asyncio.to_thread(_finish, run, client, status)


# --------------------------------------------------------------------------- cancel, best, report


@task(cache_policy=NO_CACHE)
def cancel_run(run_name: str, credentials: GridCredentials | None = None) -> list[str]:
    """Cancel every experiment of ``run_name``; returns the experiments now cancelled, being cancelled or
    already ended. Cancelling an ended run changes nothing."""
    run = Run(run_name, client=_credentials(credentials).get_client())
    if run.status in TERMINAL_STATUSES:
        log_info("grid-ops run %r has already ended (%s)", run.name, run.status)
        forget(run.name)
        return [e.name for e in run.experiments]
    names = run.cancel()
    forget(run.name)
    log_info("cancelled grid-ops run %r", run.name)
    return names


def best_experiment(client: GridClient, run: Run, metric: str, mode: str) -> dict[str, Any]:
    """The best experiment of ``run`` by the last value of ``metric`` as a small dict."""
    best = run.best_experiment(metric, mode)
    return {
        "name": best.name,
        "run": run.name,
        "metric": metric,
        "mode": mode,
        "value": best.best_value,
        "parameters": best.parameters,
        "status": best.status,
        "cost": best.cost,
    }


@task(cache_policy=NO_CACHE)
def get_best_experiment(
    run_name: str, metric: str, mode: str = "max", credentials: GridCredentials | None = None
) -> dict[str, Any]:
    """The succeeded experiment of ``run_name`` with the highest (``mode="max"``) or lowest (``"min"``) last
    value of ``metric``: ``{"name", "run", "metric", "mode", "value", "parameters", "status", "cost"}``.

    Raises ``NotFoundError`` naming the metrics the run has when no succeeded experiment reported it."""
    client = _credentials(credentials).get_client()
    return best_experiment(client, Run(run_name, client=client), metric, mode)


@task(cache_policy=NO_CACHE)
def report_run(
    run_name: str,
    credentials: GridCredentials | None = None,
    metric: str | None = None,
    mode: str = "max",
    best: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Create the end-of-run artifacts: a table of the experiments (experiment, parameters, status,
    ``metric``, cost) and a markdown summary with the best experiment by ``metric`` (``best``, if already
    known). Returns ``{"table": id, "summary": id}`` of the artifacts."""
    client = _credentials(credentials).get_client()
    run = Run(run_name, client=client)
    if metric and best is None and run.status == "succeeded":
        try:
            best = best_experiment(client, run, metric, mode)
        except NotFoundError:
            best = None
    failures = failure_details(run) if run.status != "succeeded" else None
    table, summary = artifacts.create_run_report(client, run, metric, mode, best, failures)
    return {"table": str(table), "summary": str(summary)}


__all__ = [
    "cancel_run",
    "get_best_experiment",
    "report_run",
    "run_summary",
    "start_run",
    "start_run_async",
    "wait_for_run",
    "wait_for_run_async",
]
