"""Triggers against a real control plane: serialisation, the async polling loop, deadline and on_kill.

The triggers run in this test's own event loop, as the triggerer would run them; the trigger kwargs go
through Airflow's own serde round trip, as they do when stored in the metadata DB.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from airflow.sdk.serde import deserialize, serialize

from airflow_provider.triggers.grid import GridExperimentTrigger, GridRunTrigger, _GridStateTrigger
from grid_ops.client import GridClient
from grid_ops.sdk import Run
from tests.airflow.dagtools import EXAMPLES
from tests.core.controlplane import ControlPlane


def client_of(cp: ControlPlane) -> GridClient:
    return GridClient(cp.url, cp.user_id, cp.api_key, cluster_id="local")


def start(cp: ControlPlane, command: str) -> Run:
    run = Run(run_command=command, path=EXAMPLES, client=client_of(cp))
    run.start()
    return run


def first_event(trigger: _GridStateTrigger) -> dict[str, Any]:
    async def one() -> dict[str, Any]:
        event = await anext(trigger.run())
        return dict(event.payload)

    return asyncio.run(one())


def roundtrip(trigger: _GridStateTrigger) -> _GridStateTrigger:
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    cls = getattr(__import__(module, fromlist=[name]), name)
    rebuilt = cls(**deserialize(serialize(kwargs)))
    assert isinstance(rebuilt, _GridStateTrigger)
    return rebuilt


@pytest.mark.parametrize("cls", [GridRunTrigger, GridExperimentTrigger])
def test_serialize_round_trips_through_airflow_serde(cls: type[_GridStateTrigger]) -> None:
    trigger = cls(
        name="churn-sweep",
        cluster_id="gpu",
        grid_conn_id="grid_prod",
        poll_interval=3,
        end_time=1_900_000_000.5,
        target_states={"running", "succeeded"},
        failure_states=("failed",),
        cancel_on_kill=True,
        cancel_on_timeout=True,
    )
    rebuilt = roundtrip(trigger)
    assert type(rebuilt) is cls
    assert rebuilt.serialize() == trigger.serialize()
    assert trigger.serialize()[0] == f"airflow_provider.triggers.grid.{cls.__name__}"
    assert "password" not in str(trigger.serialize()) and "api_key" not in str(trigger.serialize())


def test_the_run_trigger_fires_success_once_the_run_succeeds(grid_conn: ControlPlane) -> None:
    run = start(grid_conn, "python -c \"print('val=1')\"")
    event = first_event(roundtrip(GridRunTrigger(name=run.name, poll_interval=0.2)))
    assert event["status"] == "success" and event["name"] == run.name
    assert event["state"]["outcome"] == "succeeded" and event["state"]["phase"] == "RUN_STATE_SUCCEEDED"


def test_the_run_trigger_fires_failure_with_the_message(grid_conn: ControlPlane) -> None:
    run = start(grid_conn, 'python -c "import sys; sys.exit(3)"')
    event = first_event(GridRunTrigger(name=run.name, poll_interval=0.2))
    assert event["status"] == "failure" and event["state"]["status"] == "failed"
    assert run.name in event["message"]


def test_the_experiment_trigger_waits_for_a_chosen_state(grid_conn: ControlPlane) -> None:
    run = start(grid_conn, 'python -c "import time; time.sleep(30)"')
    try:
        trigger = GridExperimentTrigger(name=f"{run.name}-exp0", poll_interval=0.2, target_states=["running"])
        event = first_event(trigger)
        assert event["status"] == "success" and event["state"]["status"] == "running"
    finally:
        run.cancel()


def test_at_the_deadline_the_trigger_cancels_the_run_and_reports_timeout(grid_conn: ControlPlane) -> None:
    run = start(grid_conn, 'python -c "import time; time.sleep(60)"')
    trigger = GridRunTrigger(name=run.name, poll_interval=0.2, end_time=time.time() + 1.5, cancel_on_timeout=True)
    event = first_event(trigger)
    assert event["status"] == "timeout" and "it was cancelled" in event["message"]
    assert grid_conn.wait_run(run.name, timeout=30)["status"]["phase"] == "RUN_STATE_CANCELED"


def test_on_kill_cancels_the_run_when_cancel_on_kill(grid_conn: ControlPlane) -> None:
    run = start(grid_conn, 'python -c "import time; time.sleep(60)"')
    asyncio.run(GridRunTrigger(name=run.name, cancel_on_kill=True).on_kill())
    assert grid_conn.wait_run(run.name, timeout=30)["status"]["phase"] == "RUN_STATE_CANCELED"


def test_on_kill_leaves_the_run_alone_without_cancel_on_kill(grid_conn: ControlPlane) -> None:
    run = start(grid_conn, 'python -c "import time; time.sleep(2)"')
    asyncio.run(GridRunTrigger(name=run.name, cancel_on_kill=False).on_kill())
    assert grid_conn.wait_run(run.name, timeout=30)["status"]["phase"] == "RUN_STATE_SUCCEEDED"


def test_a_missing_run_ends_the_wait_with_an_error_event(grid_conn: ControlPlane) -> None:
    event = first_event(GridRunTrigger(name="no-such-run", poll_interval=0.2))
    assert event["status"] == "error" and "no-such-run" in event["message"]


def test_the_polling_loop_does_not_block_the_event_loop(grid_conn: ControlPlane) -> None:
    """While the trigger waits for a run, other coroutines keep running (the triggerer's contract)."""
    run = start(grid_conn, 'python -c "import time; time.sleep(2)"')

    async def both() -> tuple[dict[str, Any], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        task = asyncio.create_task(ticker())
        event = await anext(GridRunTrigger(name=run.name, poll_interval=0.2).run())
        task.cancel()
        return dict(event.payload), ticks

    event, ticks = asyncio.run(both())
    assert event["status"] == "success"
    assert ticks >= 10  # ~2 s of waiting left room for ~40 ticks of 50 ms
