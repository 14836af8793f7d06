"""Every remote state the control plane can report means one thing to a task; names are deterministic."""

from __future__ import annotations

import pytest

from airflow_provider.naming import attempt_name, default_run_name
from airflow_provider.states import (
    CANCELLED,
    DELETED,
    FAILED,
    RUNNING,
    SUCCEEDED,
    check_statuses,
    outcome_of,
    parse_state,
)
from grid_ops.names import validate_run_name
from grid_ops.schemas import ExperimentState, RunState

RUN_EXPECTED = {
    RunState.UNSPECIFIED: RUNNING,
    RunState.PENDING: RUNNING,
    RunState.BUILDING: RUNNING,
    RunState.RUNNING: RUNNING,
    RunState.SUCCEEDED: SUCCEEDED,
    RunState.FAILED: FAILED,
    RunState.CANCELED: CANCELLED,
    RunState.DELETED: DELETED,
}
EXPERIMENT_EXPECTED = {
    ExperimentState.UNSPECIFIED: RUNNING,
    ExperimentState.PENDING: RUNNING,
    ExperimentState.QUEUED: RUNNING,
    ExperimentState.IMAGE_BUILDING: RUNNING,
    ExperimentState.RUNNING: RUNNING,
    ExperimentState.PAUSED: RUNNING,
    ExperimentState.SUCCEEDED: SUCCEEDED,
    ExperimentState.FAILED: FAILED,
    ExperimentState.CANCELLED: CANCELLED,
    ExperimentState.DELETED: DELETED,
}


def test_the_tables_cover_every_phase_of_the_wire_format() -> None:
    assert set(RUN_EXPECTED) == set(RunState)
    assert set(EXPERIMENT_EXPECTED) == set(ExperimentState)


@pytest.mark.parametrize(("phase", "outcome"), sorted(RUN_EXPECTED.items()))
def test_every_run_phase_is_mapped(phase: RunState, outcome: str) -> None:
    state = parse_state("run", {"name": "r", "status": {"phase": str(phase), "message": "why"}})
    assert state.outcome == outcome
    assert state.terminal == (outcome != RUNNING)
    assert state.status == str(phase).removeprefix("RUN_STATE_").lower().replace("canceled", "cancelled")


@pytest.mark.parametrize(("phase", "outcome"), sorted(EXPERIMENT_EXPECTED.items()))
def test_every_experiment_phase_is_mapped(phase: ExperimentState, outcome: str) -> None:
    state = parse_state("experiment", {"name": "r-exp0", "status": {"phase": str(phase)}})
    assert state.outcome == outcome
    assert state.status == str(phase).removeprefix("EXPERIMENT_STATE_").lower()


@pytest.mark.parametrize("kind", ["run", "experiment"])
@pytest.mark.parametrize("phase", ["RUN_STATE_HIBERNATING", "EXPERIMENT_STATE_MIGRATING", "", None, "weird"])
def test_unknown_states_are_treated_as_still_running(kind: str, phase: str | None) -> None:
    assert outcome_of(phase, kind) == RUNNING
    state = parse_state(kind, {"name": "x", "status": {"phase": phase} if phase is not None else {}})
    assert state.outcome == RUNNING and not state.terminal


def test_state_fields_are_read_leniently() -> None:
    state = parse_state(
        "run",
        {
            "name": "r",
            "spec": {"clusterId": "local"},
            "status": {"phase": "RUN_STATE_RUNNING", "cost": "0.25", "experimentCounts": {"running": 2, "x": "n/a"}},
        },
    )
    assert (state.cost, state.cluster_id, state.counts) == (0.25, "local", {"running": 2})


def test_sensor_statuses_are_checked_with_a_clear_error() -> None:
    assert check_statuses(["Succeeded", "canceled"], "target_states") == {"succeeded", "cancelled"}
    with pytest.raises(ValueError, match=r"target_states has unknown statuses \['finished'\]"):
        check_statuses(["finished"], "target_states")


@pytest.mark.parametrize(
    ("dag_id", "task_id", "run_id", "map_index"),
    [
        ("scheduled_retraining", "sweep", "scheduled__2026-11-26T00:00:00+00:00", -1),
        ("Nightly ETL (EU)", "train.group.Sweep_1", "manual__2026-11-26T13:00:00+00:00", 7),
        ("d" * 250, "t" * 250, "r" * 250, None),
        ("___", "---", "x", 0),
    ],
)
def test_default_run_names_are_valid_deterministic_and_distinct(
    dag_id: str, task_id: str, run_id: str, map_index: int | None
) -> None:
    name = default_run_name(dag_id, task_id, run_id, map_index)
    assert validate_run_name(name) == name and len(name) <= 59  # room for the attempt suffix
    assert default_run_name(dag_id, task_id, run_id, map_index) == name
    assert default_run_name(dag_id, task_id, run_id + "x", map_index) != name
    assert default_run_name(dag_id, task_id, run_id, (map_index or 0) + 1) != name
    assert attempt_name(name, 1) == name
    assert attempt_name(name, 12) == name + "-a12" and validate_run_name(attempt_name(name, 99))


def test_attempt_names_of_a_full_length_user_name_stay_valid() -> None:
    base = "a" * 63
    assert attempt_name(base, 2) == "a" * 60 + "-a2"
