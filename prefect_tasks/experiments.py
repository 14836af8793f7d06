"""Tasks that wait for one experiment of a run (``<run>-exp<N>``), e.g. to hand it to the next step as soon
as it ends, without waiting for the rest of the sweep."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from grid_ops.errors import GridError
from grid_ops.sdk.experiment import Experiment
from prefect_tasks.credentials import GridCredentials
from prefect_tasks.errors import RunNotSucceeded
from prefect_tasks.waiting import Poll, await_, wait


def experiment_summary(experiment: Experiment) -> dict[str, Any]:
    """The small JSON result of an ended experiment: name, run, status, parameters, last metrics, cost."""
    return {
        "name": experiment.name,
        "run": experiment.run_name,
        "status": experiment.status,
        "message": experiment.message,
        "exit_code": experiment.exit_code,
        "parameters": experiment.parameters,
        "metrics": {name: metric.last for name, metric in experiment.metrics.items()},
        "cost": experiment.cost,
    }


def _experiment_poll(
    experiment_name: str, credentials: GridCredentials | None, poll_interval: float, timeout: float | None
) -> tuple[Poll, Experiment]:
    experiment = Experiment(experiment_name, client=(credentials or GridCredentials()).get_client())

    def fetch() -> str:
        return experiment.refresh().status

    def cancel(reason: str) -> None:
        with contextlib.suppress(GridError):  # already ended, or the control plane is away: nothing to do
            experiment.cancel()

    return Poll(f"experiment {experiment.name!r}", fetch, cancel, None, poll_interval, timeout), experiment


def _finish(experiment: Experiment, status: str) -> dict[str, Any]:
    if status != "succeeded":
        reason = f": {experiment.message}" if experiment.message else ""
        try:
            tail = experiment.logs(tail=5).strip().splitlines()
        except GridError:
            tail = []
        details = [f"last log lines: {' | '.join(tail)}"] if tail else []
        details.append(f"see the whole log: grid-ops logs {experiment.name}")
        raise RunNotSucceeded(f"experiment {experiment.name!r} {status}{reason}", status=status, details=details)
    return experiment_summary(experiment)


@task(cache_policy=NO_CACHE)
def wait_for_experiment(
    experiment_name: str,
    credentials: GridCredentials | None = None,
    poll_interval: float = 5.0,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Wait until ``experiment_name`` ends; return its summary (with its last metrics) if it succeeded.

    A failed or cancelled experiment raises ``RunNotSucceeded`` with its message and last log lines; after
    ``timeout`` seconds, or when the flow run is cancelled, the experiment is cancelled and the task fails.
    """
    poll, experiment = _experiment_poll(experiment_name, credentials, poll_interval, timeout)
    return _finish(experiment, wait(poll))


@task(cache_policy=NO_CACHE)
async def wait_for_experiment_async(
    experiment_name: str,
    credentials: GridCredentials | None = None,
    poll_interval: float = 5.0,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Async form of ``wait_for_experiment``."""
    poll, experiment = await asyncio.to_thread(_experiment_poll, experiment_name, credentials, poll_interval, timeout)
    status = await await_(poll)
    return await asyncio.to_thread(_finish, experiment, status)
