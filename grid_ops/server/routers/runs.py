"""``/v1/core/{clusterId}/runs``: create (with dry run and source upload), read, list, cancel, delete."""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import func, select, update

from grid_ops.runner.tarsafe import check_members
from grid_ops.schemas import (
    CreateRunRequest,
    DeleteResponse,
    ExperimentState,
    ListRunsResponse,
    Run,
    RunState,
    RunStatus,
    UpdateRunRequest,
)
from grid_ops.server import run_factory
from grid_ops.server.artifacts import purge_run_after_commit
from grid_ops.server.control import stop_run
from grid_ops.server.errors import ApiError, bad_request
from grid_ops.server.lookup import check_cluster, find_run
from grid_ops.server.models import ExperimentRow, RunRow
from grid_ops.server.pagination import PageDep, encode
from grid_ops.server.query_params import parse_phases, split_values
from grid_ops.server.state import AppState, SessionDep, StateDep, UserDep, wake_after_commit, wire_response
from grid_ops.server.views import run_view

router = APIRouter(prefix="/v1/core/{cluster_id}/runs", tags=["runs"])
_CANCEL = {RunState.CANCELED}


@router.post("", response_model=Run)
def create_run(
    cluster_id: str,
    body: CreateRunRequest,
    request: Request,
    state: StateDep,
    session: SessionDep,
    user: UserDep,
) -> Response:
    prepared = run_factory.prepare(session, state.config, user, cluster_id, body)
    if prepared.spec.dry_run:
        plan = run_factory.plan(prepared)
        return wire_response(
            Run(
                id="",
                name=prepared.name,
                description=body.description,
                spec=prepared.spec,
                status=RunStatus(
                    phase=RunState.PENDING, hourly_cost=plan.hourly_cost_all_parallel, cost=0.0, plan=plan
                ),
            )
        )
    run = run_factory.store(session, user, prepared, body.description, bool(body.local_dir))
    view = run_view(session, run)
    if body.local_dir:
        token = state.sign("source", run.id)
        base = str(request.base_url).rstrip("/")
        view.status.upload_url = f"{base}/v1/core/{cluster_id}/runs/{run.id}/source?token={token}"
    wake_after_commit(session, not body.local_dir)
    return wire_response(view)


@router.get("", response_model=ListRunsResponse)
async def list_runs(
    cluster_id: str,
    state: StateDep,
    session: SessionDep,
    user: UserDep,
    page: PageDep,
    phase_in: Annotated[list[str] | None, Query(alias="phaseIn")] = None,
    phase_not_in: Annotated[list[str] | None, Query(alias="phaseNotIn")] = None,
    query: str | None = None,
    names: Annotated[list[str] | None, Query()] = None,
    user_ids: Annotated[list[str] | None, Query(alias="userIds")] = None,
) -> Response:
    check_cluster(state.config, cluster_id)
    size, offset = page.size, page.offset
    where = [RunRow.user_id == user.id, RunRow.cluster_id == cluster_id]
    if phase_in:
        where.append(RunRow.phase.in_(parse_phases(phase_in, RunState, "RUN_STATE_", "run")))
    if phase_not_in:
        where.append(RunRow.phase.not_in(parse_phases(phase_not_in, RunState, "RUN_STATE_", "run")))
    else:
        where.append(RunRow.deleted_at.is_(None))
    if query:
        where.append(RunRow.name.contains(query, autoescape=True))
    if names:
        where.append(RunRow.name.in_(split_values(names)))
    total = session.scalar(select(func.count()).select_from(RunRow).where(*where)) or 0
    rows = session.scalars(
        select(RunRow)
        .where(*where)
        # an exact name match first, so clients that look a run up by ``query`` find it on the first page
        .order_by((RunRow.name == (query or "")).desc(), RunRow.created_at.desc(), RunRow.id.desc())
        .offset(offset)
        .limit(size)
    ).all()
    nxt = offset + len(rows)
    return wire_response(
        ListRunsResponse(
            runs=[run_view(session, r) for r in rows],
            next_page_token=encode(nxt) if nxt < total else None,
            total_size=str(total),
        )
    )


@router.get("/{run_ref}", response_model=Run)
async def get_run(cluster_id: str, run_ref: str, state: StateDep, session: SessionDep, user: UserDep) -> Response:
    return wire_response(run_view(session, find_run(session, user, run_ref)))


@router.put("/{run_ref}", response_model=Run)
def update_run(
    cluster_id: str,
    run_ref: str,
    body: UpdateRunRequest,
    request: Request,
    state: StateDep,
    session: SessionDep,
    user: UserDep,
) -> Response:
    run = find_run(session, user, run_ref, for_update=True)
    desired = body.spec.desired_state if body.spec else None
    if desired is None or desired == RunState.UNSPECIFIED:
        raise bad_request("nothing to change: set spec.desiredState to RUN_STATE_CANCELED to cancel the run")
    if desired == RunState.DELETED:
        wake_after_commit(session, stop_run(session, run, delete=True))
        purge_run_after_commit(session, state.state_dir, run.id)
    elif desired in _CANCEL:
        wake_after_commit(session, stop_run(session, run, delete=False))
    else:
        raise bad_request(f"a run's desiredState can only be set to RUN_STATE_CANCELED, not {desired.value}")
    return wire_response(run_view(session, run))


@router.delete("/{run_ref}", response_model=DeleteResponse)
def delete_run(
    cluster_id: str, run_ref: str, request: Request, state: StateDep, session: SessionDep, user: UserDep
) -> Response:
    run = find_run(session, user, run_ref, for_update=True)
    wake_after_commit(session, stop_run(session, run, delete=True))
    purge_run_after_commit(session, state.state_dir, run.id)
    return wire_response(DeleteResponse())


def _accept_source(state: AppState, run_id: str, tmp: str) -> str:
    """Check the uploaded archive, keep it, and release the run's experiments to the scheduler.

    Returns the archive's MD5, sent back as the ``ETag`` as object stores do."""
    with open(tmp, "rb") as f:
        digest = hashlib.file_digest(f, "md5").hexdigest()
    try:
        with tarfile.open(tmp, "r:gz") as tar:
            check_members(tar)
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, OSError, ValueError) as exc:
        raise bad_request(f"the source upload is not a valid gzip tar archive: {exc}") from exc
    with state.sessions.begin() as session:
        run = session.get(RunRow, run_id)
        if run is None or run.deleted_at is not None:
            raise ApiError(404, f"run {run_id!r} not found")
        if run.source_state == "ready":
            with open(state.scheduler.source_path(run_id), "rb") as f:
                if hashlib.file_digest(f, "md5").hexdigest() == digest:
                    return digest  # the same upload again (a client retrying): nothing changes
            raise ApiError(409, f"the source of run {run.name!r} was already uploaded, with other content")
        if run.source_state != "awaiting":
            raise ApiError(409, f"run {run.name!r} does not take a source upload (it was created without localDir)")
        os.replace(tmp, state.scheduler.source_path(run_id))
        run.source_state = "ready"
        session.execute(
            update(ExperimentRow)
            .where(ExperimentRow.run_id == run_id, ExperimentRow.phase == ExperimentState.PENDING.value)
            .values(phase=ExperimentState.QUEUED.value)
        )
    state.scheduler.wake()
    return digest


@router.put("/{run_id}/source", include_in_schema=True)
async def upload_source(cluster_id: str, run_id: str, token: str, request: Request) -> JSONResponse:
    """The ``uploadUrl`` of a ``localDir`` run: the body is one gzip tar of the source directory."""
    state: AppState = request.app.state.grid
    if not state.verify("source", run_id, token):
        raise ApiError(403, "invalid upload token: use the uploadUrl the run's creation answered with")
    limit = state.config.max_source_bytes
    tmp = str(state.scheduler.source_path(run_id)) + f".{os.getpid()}.part"
    size = 0
    try:
        with open(tmp, "wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(
                        413,
                        f"the source is larger than the server's limit of {limit} bytes; add a .gridignore",
                    )
                f.write(chunk)
        digest = await run_in_threadpool(_accept_source, state, run_id, tmp)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return JSONResponse({"size": size}, headers={"ETag": f'"{digest}"'})
