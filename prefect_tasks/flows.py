"""``sweep_flow``: upload a datastore version (optional), start a sweep, wait for it, pick its best
experiment and report it, as one Prefect flow (and ``sweep_flow_async``, its async form).

The flow cancels its run when it is cancelled (checked on every poll, and by the ``on_cancellation``
hook), when it crashes (``on_crashed``), when ``timeout`` passes, and when a Prefect ``timeout_seconds``
interrupts it. Run it with ``retries=`` and a retry reattaches to the run already going.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from prefect import flow
from prefect.states import Cancelled

from prefect_tasks.cancellation import cancel_grid_runs
from prefect_tasks.credentials import GridCredentials
from prefect_tasks.datastores import upload_datastore, upload_datastore_async
from prefect_tasks.errors import FlowRunCancelled, RunNotSucceeded
from prefect_tasks.runs import (
    get_best_experiment,
    report_run,
    start_run,
    start_run_async,
    wait_for_run,
    wait_for_run_async,
)

HOOKS: dict[str, Any] = {
    "on_cancellation": [cancel_grid_runs],
    "on_crashed": [cancel_grid_runs],
    "on_failure": [cancel_grid_runs],
}


def _start_kwargs(arguments: dict[str, Any], datastore: str | None) -> dict[str, Any]:
    """``start_run``'s keyword arguments from the flow's arguments."""
    names = ("name", "path", "strategy", "num_trials", "env_vars", "datastore_mount_dir", "instance_type")
    more = ("max_parallel", "cluster_id", "run_options")
    return {key: arguments[key] for key in names + more} | {"datastore": datastore}


def _conclude(
    run_name: str,
    credentials: GridCredentials | None,
    metric: str | None,
    mode: str,
    summary: dict[str, Any],
    datastore: str | None,
) -> dict[str, Any]:
    """After a run that succeeded: its best experiment, the report artifacts, and the flow's result."""
    best = get_best_experiment(run_name, metric, mode, credentials) if metric else None
    report_run(run_name, credentials, metric, mode, best)
    return {
        "run_name": run_name,
        "status": summary["status"],
        "best_experiment": best,
        "cost": summary["cost"],
        "experiments": summary["experiments"],
        "datastore": datastore,
        "url": summary["url"],
    }


def _sweep(
    command: str,
    credentials: GridCredentials | None = None,
    metric: str | None = None,
    mode: str = "max",
    datastore_source: str | None = None,
    datastore_name: str | None = None,
    datastore: str | None = None,
    datastore_mount_dir: str | None = None,
    name: str | None = None,
    path: str | None = None,
    strategy: str = "grid_search",
    num_trials: int = 0,
    env_vars: dict[str, Any] | None = None,
    instance_type: str | None = None,
    max_parallel: int | None = None,
    cluster_id: str | None = None,
    poll_interval: float = 5.0,
    timeout: float | None = None,
    run_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Sweep ``command`` on grid-ops and return ``{"run_name", "status", "best_experiment", "cost",
    "experiments", "datastore", "url"}``; a run that does not succeed fails the flow.

    Args:
        command: the run command, e.g. ``python train.py --C "[0.1, 1]" --data-dir $GRID_DATASTORE_DIR``.
        credentials: the control plane (default: the SDK's, else the local control plane).
        metric: pick the best experiment by the last value of this metric (none: no pick).
        mode: ``max`` (higher is better) or ``min``.
        datastore_source: a directory, file, URL or ``s3://`` prefix to upload first as a new datastore version.
        datastore_name: the name of that datastore (default: the source's last path part).
        datastore: an existing ``name[:version]`` to mount instead of uploading one.
        datastore_mount_dir: where the datastore is mounted.
        name: the run's name (default: derived from this flow run, so retries reattach).
        path: the source directory to snapshot (default: the current directory).
        strategy: ``grid_search``, ``random_search`` or ``none``.
        num_trials: how many points ``random_search`` draws.
        env_vars: environment variables of every experiment.
        instance_type: the instance type of each experiment.
        max_parallel: at most this many experiments at once.
        cluster_id: the cluster to run on.
        poll_interval: seconds between polls of the run.
        timeout: cancel the run and fail when it has not ended after this many seconds.
        run_options: any other ``grid_ops.Run`` argument.
    """
    arguments = dict(locals())
    uploaded = upload_datastore(datastore_source, datastore_name, credentials) if datastore_source else None
    mounted = uploaded["ref"] if uploaded else datastore
    run_name = start_run(command, credentials, **_start_kwargs(arguments, mounted))
    try:
        summary = wait_for_run(run_name, credentials, poll_interval, timeout)
    except FlowRunCancelled as exc:
        return Cancelled(message=str(exc))  # type: ignore[return-value]  # the flow run ends Cancelled
    except RunNotSucceeded:
        report_run(run_name, credentials, metric, mode)
        raise
    return _conclude(run_name, credentials, metric, mode, summary, mounted)


sweep_flow = flow(name="grid-sweep", **HOOKS)(_sweep)


@flow(name="grid-sweep-async", **HOOKS)
@functools.wraps(_sweep, assigned=("__module__", "__annotations__"))
async def sweep_flow_async(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Async form of ``sweep_flow`` (same arguments and result): waits without holding a thread."""
    bound = inspect.signature(_sweep).bind(*args, **kwargs)
    bound.apply_defaults()
    arguments = bound.arguments
    credentials, metric, mode = arguments["credentials"], arguments["metric"], arguments["mode"]
    source = arguments["datastore_source"]
    uploaded = await upload_datastore_async(source, arguments["datastore_name"], credentials) if source else None
    mounted = uploaded["ref"] if uploaded else arguments["datastore"]
    run_name: str = await start_run_async(arguments["command"], credentials, **_start_kwargs(arguments, mounted))
    try:
        summary = await wait_for_run_async(run_name, credentials, arguments["poll_interval"], arguments["timeout"])
    except FlowRunCancelled as exc:
        return Cancelled(message=str(exc))  # type: ignore[return-value]  # the flow run ends Cancelled
    except RunNotSucceeded:
        report_run(run_name, credentials, metric, mode)
        raise
    return _conclude(run_name, credentials, metric, mode, summary, mounted)
