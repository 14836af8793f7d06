"""``/v1/core/{clusterId}/experiments``: read, list, cancel, delete, events and logs."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import func, select

from grid_ops.schemas import (
    DeleteResponse,
    Experiment,
    ExperimentEvent,
    ExperimentState,
    ListExperimentEventsResponse,
    ListExperimentsResponse,
    LogChunk,
    UpdateExperimentRequest,
)
from grid_ops.server.artifacts import build_logs_for, purge_after_commit
from grid_ops.server.build_logs import BuildLogs
from grid_ops.server.control import stop_experiments
from grid_ops.server.db import as_utc, utcnow
from grid_ops.server.errors import bad_request
from grid_ops.server.ids import is_id
from grid_ops.server.lookup import check_cluster, find_experiment
from grid_ops.server.models import EventRow, ExperimentRow, RunRow
from grid_ops.server.pagination import PageDep, encode
from grid_ops.server.phases import TERMINAL
from grid_ops.server.query_params import parse_phases, split_values
from grid_ops.server.scheduler import refresh_runs
from grid_ops.server.state import SessionDep, StateDep, UserDep, wake_after_commit, wire_response
from grid_ops.server.views import experiment_view

router = APIRouter(prefix="/v1/core/{cluster_id}/experiments", tags=["experiments"])
MAX_LOG_CHUNK = 8 * 1024 * 1024


@router.get("", response_model=ListExperimentsResponse)
async def list_experiments(
    cluster_id: str,
    state: StateDep,
    session: SessionDep,
    user: UserDep,
    page: PageDep,
    names: Annotated[list[str] | None, Query()] = None,
    run_ids: Annotated[list[str] | None, Query(alias="runIds")] = None,
    phase_in: Annotated[list[str] | None, Query(alias="phaseIn")] = None,
    phase_not_in: Annotated[list[str] | None, Query(alias="phaseNotIn")] = None,
) -> Response:
    check_cluster(state.config, cluster_id)
    size, offset = page.size, page.offset
    where = [ExperimentRow.user_id == user.id, ExperimentRow.cluster_id == cluster_id]
    if names:
        where.append(ExperimentRow.name.in_(split_values(names)))
    if run_ids:
        refs = split_values(run_ids)
        ids = [r for r in refs if is_id(r)]
        by_name = [r for r in refs if not is_id(r)]
        if by_name:
            ids += list(
                session.scalars(
                    select(RunRow.id).where(
                        RunRow.user_id == user.id, RunRow.name.in_(by_name), RunRow.deleted_at.is_(None)
                    )
                )
            )
        where.append(ExperimentRow.run_id.in_(ids))
    if phase_in:
        where.append(
            ExperimentRow.phase.in_(parse_phases(phase_in, ExperimentState, "EXPERIMENT_STATE_", "experiment"))
        )
    if phase_not_in:
        where.append(
            ExperimentRow.phase.not_in(parse_phases(phase_not_in, ExperimentState, "EXPERIMENT_STATE_", "experiment"))
        )
    elif not phase_in:
        where.append(ExperimentRow.deleted_at.is_(None))
    total = session.scalar(select(func.count()).select_from(ExperimentRow).where(*where)) or 0
    rows = session.execute(
        select(ExperimentRow, RunRow)
        .join(RunRow, RunRow.id == ExperimentRow.run_id)
        .where(*where)
        .order_by(ExperimentRow.created_at.desc(), ExperimentRow.run_id, ExperimentRow.index)
        .offset(offset)
        .limit(size)
    ).all()
    nxt = offset + len(rows)
    return wire_response(
        ListExperimentsResponse(
            experiments=[experiment_view(e, r) for e, r in rows],
            next_page_token=encode(nxt) if nxt < total else None,
            total_size=str(total),
        )
    )


@router.get("/{exp_ref}", response_model=Experiment)
async def get_experiment(cluster_id: str, exp_ref: str, session: SessionDep, user: UserDep) -> Response:
    exp, run = find_experiment(session, user, exp_ref)
    return wire_response(experiment_view(exp, run))


@router.put("/{exp_ref}", response_model=Experiment)
def update_experiment(
    cluster_id: str, exp_ref: str, body: UpdateExperimentRequest, state: StateDep, session: SessionDep, user: UserDep
) -> Response:
    exp, run = find_experiment(session, user, exp_ref)
    desired = body.spec.desired_state if body.spec else None
    if desired == ExperimentState.CANCELLED:
        wake_after_commit(session, stop_experiments(session, [exp], delete=False))
    elif desired == ExperimentState.DELETED:
        wake_after_commit(session, stop_experiments(session, [exp], delete=True))
        purge_after_commit(session, state.state_dir, [exp.id])
    else:
        raise bad_request(
            "nothing to change: set spec.desiredState to EXPERIMENT_STATE_CANCELLED to cancel the experiment"
        )
    session.flush()
    refresh_runs(session, [run.id])
    return wire_response(experiment_view(exp, run))


@router.delete("/{exp_ref}", response_model=DeleteResponse)
def delete_experiment(cluster_id: str, exp_ref: str, state: StateDep, session: SessionDep, user: UserDep) -> Response:
    exp, run = find_experiment(session, user, exp_ref)
    wake_after_commit(session, stop_experiments(session, [exp], delete=True))
    purge_after_commit(session, state.state_dir, [exp.id])
    session.flush()
    refresh_runs(session, [run.id])
    return wire_response(DeleteResponse())


@router.get("/{exp_ref}/events", response_model=ListExperimentEventsResponse)
async def experiment_events(cluster_id: str, exp_ref: str, session: SessionDep, user: UserDep) -> Response:
    exp, _run = find_experiment(session, user, exp_ref)
    created = ExperimentEvent(
        id=f"{exp.id}-0", phase=ExperimentState.PENDING, message="created", timestamp=as_utc(exp.created_at)
    )
    rows = session.scalars(select(EventRow).where(EventRow.experiment_id == exp.id).order_by(EventRow.id)).all()
    events = [created] + [
        ExperimentEvent(
            id=f"{exp.id}-{r.id}",
            phase=ExperimentState(r.phase) if r.phase else None,
            desired_state=ExperimentState(r.desired_state) if r.desired_state else None,
            message=r.message,
            timestamp=as_utc(r.timestamp),
        )
        for r in rows
    ]
    return wire_response(ListExperimentEventsResponse(events=events))


def whole_characters(data: bytes) -> bytes:
    """``data`` without a UTF-8 character cut in half at its end, so the next chunk starts with it."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # the last character's first byte
            need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4 if byte & 0xF8 == 0xF0 else 1
            return data if need <= back else data[:-back]
    return data


def _tail_offset(read: object, size: int, lines: int) -> int:
    """The byte offset where the last ``lines`` lines of a log of ``size`` bytes begin."""
    assert callable(read)
    pos, found, block = size, 0, 64 * 1024
    while pos > 0:
        start = max(0, pos - block)
        data: bytes = read(start, pos - start)
        # a trailing newline ends the last line rather than starting an empty one
        end = len(data) - 1 if pos == size and data.endswith(b"\n") else len(data)
        idx = end
        while True:
            idx = data.rfind(b"\n", 0, idx)
            if idx < 0:
                break
            found += 1
            if found == lines:
                return start + idx + 1
        pos = start
    return 0


_BUILD_SAYS_SECONDS = 5.0
"""A runner says within moments of its start whether its experiment builds an environment; until then a
running experiment's empty build log may still grow."""


def _build_log_over(exp: ExperimentRow, logs: BuildLogs) -> bool:
    """Whether the experiment's build log will not grow: its build is over, it has ended, or it has run
    for a while without a build."""
    if exp.phase in TERMINAL or logs.complete(exp.id):
        return True
    if exp.phase != ExperimentState.RUNNING.value or logs.exists(exp.id):
        return False
    started = as_utc(exp.started_at)
    return started is not None and (utcnow() - started).total_seconds() > _BUILD_SAYS_SECONDS


@router.get("/{exp_ref}/logs", response_model=LogChunk)
def experiment_logs(
    cluster_id: str,
    exp_ref: str,
    state: StateDep,
    session: SessionDep,
    user: UserDep,
    offset: int = 0,
    limit: int = 1024 * 1024,
    tail: int | None = None,
    build: bool = False,
) -> Response:
    """A slice of the experiment's log, or with ``build`` of its environment's build log."""
    exp, _run = find_experiment(session, user, exp_ref)
    if offset < 0 or limit <= 0 or (tail is not None and tail < 0):
        raise bad_request("offset must be >= 0, limit > 0 and tail >= 0")
    if build:
        logs = build_logs_for(state.state_dir)
        read: Callable[[int, int], tuple[bytes, int]] = partial(logs.read, exp.id)
        over = _build_log_over(exp, logs)
    else:
        executor = state.scheduler.executors.get(exp.cluster_id)
        if executor is None:
            return wire_response(LogChunk(data="", offset=offset, next_offset=offset, size=0, eof=True))
        read = partial(executor.read_log, exp.id)
        over = exp.phase in TERMINAL
    limit = max(4, min(limit, MAX_LOG_CHUNK))  # room for one whole character
    _, size = read(0, 0)
    if tail is not None:
        offset = _tail_offset(lambda o, n: read(o, n)[0], size, tail) if tail else size
        limit = MAX_LOG_CHUNK
    data, size = read(offset, limit)
    data = whole_characters(data)
    nxt = min(offset, size) + len(data)
    eof = over and nxt >= size
    return wire_response(
        LogChunk(data=data.decode("utf-8", "replace"), offset=offset, next_offset=nxt, size=size, eof=eof)
    )
