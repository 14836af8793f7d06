"""Experiment and run states: which are terminal, how a run's phase follows from its experiments."""

from __future__ import annotations

from collections.abc import Mapping

from grid_ops.schemas import ExperimentCounts, ExperimentState, RunState

E = ExperimentState
TERMINAL = frozenset({E.SUCCEEDED.value, E.FAILED.value, E.CANCELLED.value, E.DELETED.value})
WAITING = frozenset({E.PENDING.value, E.QUEUED.value})
ACTIVE = frozenset({E.RUNNING.value, E.IMAGE_BUILDING.value})


def counts_of(by_phase: Mapping[str, int]) -> ExperimentCounts:
    """The wire's experiment counts from a phase → number mapping."""
    return ExperimentCounts(
        cancelled=by_phase.get(E.CANCELLED.value, 0),
        deleted=by_phase.get(E.DELETED.value, 0),
        failed=by_phase.get(E.FAILED.value, 0),
        pending=sum(by_phase.get(p, 0) for p in (E.PENDING.value, E.QUEUED.value, E.PAUSED.value)),
        running=sum(by_phase.get(p, 0) for p in ACTIVE),
        succeeded=by_phase.get(E.SUCCEEDED.value, 0),
    )


def derive_run_phase(by_phase: Mapping[str, int], cancel_requested: bool, deleted: bool) -> RunState:
    """A run is running while any experiment runs, building while its experiments wait for their
    environment's build; once all are terminal it succeeded if all did, was canceled if the user
    cancelled it, and failed otherwise."""
    if deleted:
        return RunState.DELETED
    # experiments deleted one by one no longer count towards the run's outcome
    by_phase = {p: n for p, n in by_phase.items() if p != E.DELETED.value}
    total = sum(by_phase.values())
    if total == 0:
        return RunState.CANCELED if cancel_requested else RunState.PENDING
    if by_phase.get(E.RUNNING.value, 0):
        return RunState.RUNNING
    if by_phase.get(E.IMAGE_BUILDING.value, 0):  # the experiments wait for their environment's build
        return RunState.BUILDING
    if all(p in TERMINAL for p, n in by_phase.items() if n):
        if by_phase.get(E.SUCCEEDED.value, 0) == total:
            return RunState.SUCCEEDED
        if cancel_requested:
            return RunState.CANCELED
        return RunState.FAILED
    if by_phase.get(E.PAUSED.value, 0) or any(by_phase.get(p, 0) for p in TERMINAL):
        return RunState.RUNNING
    return RunState.PENDING
