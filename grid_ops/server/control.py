"""Cancelling and deleting: record the wish, settle what is not running at once, and let the
scheduler stop what is (SIGTERM, then SIGKILL after the grace period)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from grid_ops.schemas import ExperimentState, RunState
from grid_ops.server.db import utcnow
from grid_ops.server.models import ExperimentRow, RunRow
from grid_ops.server.phases import ACTIVE, TERMINAL
from grid_ops.server.scheduler import add_event, refresh_runs

E = ExperimentState


def stop_experiments(session: Session, experiments: Sequence[ExperimentRow], delete: bool) -> bool:
    """Cancel (or delete) each experiment; True when some are running and the scheduler must act."""
    now = utcnow()
    target = E.DELETED.value if delete else E.CANCELLED.value
    message = "deleted by user" if delete else "cancelled by user"
    needs_scheduler = False
    for exp in experiments:
        if exp.phase in ACTIVE:
            if exp.desired_state != target and exp.desired_state != E.DELETED.value:
                exp.desired_state = target
                exp.updated_at = now
                add_event(session, exp, f"{message}: stopping", now)
            needs_scheduler = True
        elif exp.phase in TERMINAL:
            if delete and exp.phase != E.DELETED.value:
                exp.phase, exp.desired_state, exp.deleted_at, exp.updated_at = target, target, now, now
                add_event(session, exp, message, now)
        else:
            exp.phase, exp.desired_state, exp.message = target, target, message
            exp.finished_at = now
            exp.updated_at = now
            if delete:
                exp.deleted_at = now
            add_event(session, exp, message, now)
    return needs_scheduler


def stop_run(session: Session, run: RunRow, delete: bool) -> bool:
    """Cancel or delete every experiment of ``run``; deleting also frees its name."""
    now = utcnow()
    if run.desired_state is None and run.phase not in (RunState.SUCCEEDED.value, RunState.FAILED.value):
        run.desired_state = RunState.CANCELED.value
    if delete:
        run.deleted_at = run.deleted_at or now
        run.finished_at = run.finished_at or now
    run.updated_at = now
    exps = session.scalars(select(ExperimentRow).where(ExperimentRow.run_id == run.id)).all()
    busy = stop_experiments(session, exps, delete)
    session.flush()
    refresh_runs(session, [run.id])
    return busy
