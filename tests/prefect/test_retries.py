"""Retries reattach: a retried flow run finds the run it started (one run, not two); a run that failed is
never taken for a success, and a retry after it starts a fresh attempt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task

from prefect_tasks import GridCredentials, RunNotSucceeded, start_run, wait_for_run
from tests.core.controlplane import ControlPlane
from tests.prefect.helpers import artifacts, runs_named


def test_a_retried_flow_run_reattaches_to_its_run(creds: GridCredentials, src: Path, cp: ControlPlane) -> None:
    started: list[str] = []

    @flow(name="flaky-pipeline", retries=1, retry_delay_seconds=0)
    def flaky() -> dict[str, Any]:
        name = start_run('python sleep.py --seconds 1 --score "[1, 2]"', creds, path=str(src))
        started.append(name)
        if len(started) == 1:
            raise ConnectionError("lost the worker right after submitting")
        return wait_for_run(name, creds, poll_interval=0.2)

    state = flaky(return_state=True)
    assert state.is_completed(), state
    assert len(started) == 2 and started[0] == started[1]
    prefix = started[0]
    assert [run["name"] for run in runs_named(cp, prefix)] == [prefix]  # one run, not two
    assert state.result()["experiments"] == {"succeeded": 2}
    links = artifacts(prefix)["link"]
    assert "started" in (links[0].description or "") and "reattached" in (links[-1].description or "")


def test_a_retried_task_reattaches_to_its_run(creds: GridCredentials, src: Path, cp: ControlPlane) -> None:
    calls: list[str] = []

    @task(retries=1, retry_delay_seconds=0)
    def start_then_fail_once() -> str:
        # start_run's body inside another task run: the name is that task run's, kept across its retries
        name = start_run.fn('python sleep.py --seconds 0.5 --score "[1]"', creds, path=str(src))
        calls.append(name)
        if len(calls) == 1:
            raise TimeoutError("the answer to the start got lost")
        return name

    @flow(name="task-retry")
    def pipeline() -> dict[str, Any]:
        return wait_for_run(start_then_fail_once(), creds, poll_interval=0.2)

    out = pipeline()
    assert len(calls) == 2 and calls[0] == calls[1]
    assert [run["name"] for run in runs_named(cp, calls[0])] == [calls[0]]
    assert out["status"] == "succeeded"


def test_a_failed_run_is_never_a_success_and_a_retry_starts_afresh(
    creds: GridCredentials, src: Path, cp: ControlPlane
) -> None:
    names: list[str] = []

    @flow(name="always-failing", retries=1, retry_delay_seconds=0)
    def failing() -> dict[str, Any]:
        name = start_run("python fail.py", creds, path=str(src), strategy="none")
        names.append(name)
        return wait_for_run(name, creds, poll_interval=0.2)

    state = failing(return_state=True)
    assert state.is_failed()
    assert isinstance(state.result(raise_on_failure=False), RunNotSucceeded)
    assert names[1] == f"{names[0]}-a2"  # the failed run was not reattached to
    phases = {run["name"]: run["status"]["phase"] for run in runs_named(cp, names[0])}
    assert phases == {names[0]: "RUN_STATE_FAILED", names[1]: "RUN_STATE_FAILED"}
