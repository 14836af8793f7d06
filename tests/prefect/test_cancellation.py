"""Cancelling the flow run, its timeouts, and a crash of its process cancel the grid-ops run (really: the
flow run is cancelled through the Prefect API, the process gets SIGTERM, and the control plane is asked)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from uuid import UUID

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_API_URL
from prefect.states import Cancelling

from grid_ops.errors import WaitTimeout
from prefect_tasks import GridCredentials, cancel_grid_runs, cancellation, start_run, sweep_flow, sweep_flow_async
from tests.core.controlplane import ControlPlane
from tests.prefect.helpers import artifacts, flow_run_state, wait_for_phase

LONG = 'python sleep.py --seconds 120 --score "[1, 2]"'
ROOT = Path(__file__).resolve().parents[2]


def _flow_run_of(run_name: str, timeout: float = 60) -> UUID:
    """The flow run that started grid-ops run ``run_name`` (from its link artifact)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        links = artifacts(run_name).get("link")
        if links and links[0].flow_run_id is not None:
            return links[0].flow_run_id
        time.sleep(0.2)
    raise AssertionError(f"no link artifact for {run_name}")


def _cancel_when_running(cp: ControlPlane, run_name: str, seen: dict[str, object]) -> threading.Thread:
    """In the background: once the grid-ops run runs, cancel its flow run through the Prefect API."""

    def cancel() -> None:
        try:
            wait_for_phase(cp, run_name, {"RUN_STATE_RUNNING"})
            flow_run_id = _flow_run_of(run_name)
            with get_client(sync_client=True) as client:
                client.set_flow_run_state(flow_run_id, Cancelling(message="cancelled by the test"), force=True)
            seen["flow_run_id"] = flow_run_id
        except BaseException as exc:  # reported by the test
            seen["error"] = exc

    thread = threading.Thread(target=cancel, daemon=True)
    thread.start()
    return thread


def test_cancelling_the_flow_run_cancels_the_run(creds: GridCredentials, src: Path, cp: ControlPlane) -> None:
    seen: dict[str, object] = {}
    thread = _cancel_when_running(cp, "cancel-sync", seen)
    state = sweep_flow(LONG, creds, name="cancel-sync", path=str(src), poll_interval=0.3, return_state=True)
    thread.join(60)
    assert "error" not in seen, seen
    assert state.is_cancelled(), state
    run = wait_for_phase(cp, "cancel-sync", {"RUN_STATE_CANCELED"}, timeout=30)
    assert run["status"]["phase"] == "RUN_STATE_CANCELED"
    assert flow_run_state(seen["flow_run_id"]) == StateType.CANCELLED  # type: ignore[arg-type]


def test_cancelling_the_async_flow_run_cancels_the_run(creds: GridCredentials, src: Path, cp: ControlPlane) -> None:
    seen: dict[str, object] = {}
    thread = _cancel_when_running(cp, "cancel-async", seen)
    state = asyncio.run(
        sweep_flow_async(LONG, creds, name="cancel-async", path=str(src), poll_interval=0.3, return_state=True)  # type: ignore[call-overload]
    )
    thread.join(60)
    assert "error" not in seen, seen
    assert state.is_cancelled(), state
    assert wait_for_phase(cp, "cancel-async", {"RUN_STATE_CANCELED"}, timeout=30)
    assert flow_run_state(seen["flow_run_id"]) == StateType.CANCELLED  # type: ignore[arg-type]


def test_the_wait_timeout_cancels_the_run(creds: GridCredentials, src: Path, cp: ControlPlane) -> None:
    state = sweep_flow(LONG, creds, name="timeout-own", path=str(src), poll_interval=0.3, timeout=3, return_state=True)
    assert state.is_failed()
    try:
        state.result()
    except WaitTimeout as exc:
        assert "timeout-own" in str(exc) and "cancelled" in str(exc)
    else:
        raise AssertionError("the flow should have failed with WaitTimeout")
    assert wait_for_phase(cp, "timeout-own", {"RUN_STATE_CANCELED"}, timeout=30)


def test_prefect_timeout_seconds_cancels_the_run(creds: GridCredentials, src: Path, cp: ControlPlane) -> None:
    limited = sweep_flow.with_options(timeout_seconds=8)
    state = limited(LONG, creds, name="timeout-prefect", path=str(src), poll_interval=0.3, return_state=True)
    assert state.is_failed() and state.name == "TimedOut", state
    assert cp.ok("GET", "/v1/core/local/runs/timeout-prefect")  # it had started
    assert wait_for_phase(cp, "timeout-prefect", {"RUN_STATE_CANCELED"}, timeout=30)


CRASHING_FLOW = """
import sys
from prefect_tasks import GridCredentials, sweep_flow

creds = GridCredentials(url=sys.argv[1], user_id=sys.argv[2], api_key=sys.argv[3], cluster_id="local")
sweep_flow({command!r}, creds, name="crash-me", path=sys.argv[4], poll_interval=0.3)
"""


def test_a_crashed_flow_process_cancels_the_run(creds: GridCredentials, src: Path, cp: ControlPlane) -> None:
    script = src.parent / "crashing_flow.py"
    script.write_text(textwrap.dedent(CRASHING_FLOW.format(command=LONG)))
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(script), cp.url, cp.user_id, cp.api_key, str(src)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_phase(cp, "crash-me", {"RUN_STATE_RUNNING"}, timeout=120)
        flow_run_id = _flow_run_of("crash-me")
        proc.send_signal(signal.SIGTERM)  # what a worker or Kubernetes does to a flow's process
        output = proc.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert wait_for_phase(cp, "crash-me", {"RUN_STATE_CANCELED"}, timeout=30), output
    assert flow_run_state(flow_run_id) == StateType.CRASHED, output


def test_the_hook_finds_the_runs_of_a_flow_run_started_elsewhere(
    creds: GridCredentials, src: Path, cp: ControlPlane
) -> None:
    creds.save("grid-test-hook", overwrite=True)
    saved = GridCredentials.load("grid-test-hook")

    @flow(name="left-running")
    def leave_running(credentials: GridCredentials) -> str:
        return start_run(LONG, credentials, path=str(src))

    state = leave_running(saved, return_state=True)
    name = state.result()
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    wait_for_phase(cp, name, {"RUN_STATE_RUNNING"})
    cancellation._active.pop(flow_run_id, None)  # as in a runner process, which never saw the run start
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
    assert flow_run.parameters["credentials"]["api_key"] == "**********"  # the key itself is not in there
    cancel_grid_runs(leave_running, flow_run, Cancelling())
    assert wait_for_phase(cp, name, {"RUN_STATE_CANCELED"}, timeout=30)
