"""Prefect tasks and flows for grid-ops: a credentials block, tasks that upload datastores and start, wait
for, cancel and judge runs, and ``sweep_flow`` composed of them (docs/prefect.md).

Registered with Prefect through the ``prefect.collections`` entry point, so ``prefect block register -m
prefect_tasks`` registers ``GridCredentials``.
"""

from prefect_tasks.cancellation import cancel_grid_runs
from prefect_tasks.credentials import GridCredentials
from prefect_tasks.datastores import upload_datastore, upload_datastore_async
from prefect_tasks.errors import FlowRunCancelled, RunNotSucceeded
from prefect_tasks.experiments import wait_for_experiment, wait_for_experiment_async
from prefect_tasks.flows import sweep_flow, sweep_flow_async
from prefect_tasks.runs import (
    cancel_run,
    get_best_experiment,
    report_run,
    start_run,
    start_run_async,
    wait_for_run,
    wait_for_run_async,
)

__all__ = [
    "FlowRunCancelled",
    "GridCredentials",
    "RunNotSucceeded",
    "cancel_grid_runs",
    "cancel_run",
    "get_best_experiment",
    "report_run",
    "start_run",
    "start_run_async",
    "sweep_flow",
    "sweep_flow_async",
    "upload_datastore",
    "upload_datastore_async",
    "wait_for_experiment",
    "wait_for_experiment_async",
    "wait_for_run",
    "wait_for_run_async",
]
