"""``/v1/runner/experiments/{experiment_id}``: where an experiment's runner downloads its run's source,
sends heartbeats, reports metric points, uploads artifacts and lists the files of the datastore version
it mounts. Authenticated only by
``X-Grid-Runner-Token``, the experiment's own token (``$GRID_RUNNER_TOKEN``), valid for that experiment
alone.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from sqlalchemy import select

from grid_ops.schemas import ArtifactUploadResponse, ReportMetricsRequest, ReportMetricsResponse, RunnerDatastore
from grid_ops.server import datastore_mounts, metric_store
from grid_ops.server.artifact_files import check_path, discard
from grid_ops.server.artifacts import commit_upload, files_for, live_experiment
from grid_ops.server.datastores import runtime_of
from grid_ops.server.db import utcnow
from grid_ops.server.errors import ApiError
from grid_ops.server.keyed_locks import lock_for
from grid_ops.server.models import ExperimentRow, RunRow
from grid_ops.server.pagination import PageDep
from grid_ops.server.phases import ACTIVE
from grid_ops.server.state import StateDep, wire_response

router = APIRouter(prefix="/v1/runner/experiments/{experiment_id}", tags=["runner"])
log = logging.getLogger("grid_ops.runner_api")


async def runner_experiment(
    experiment_id: str,
    state: StateDep,
    x_grid_runner_token: Annotated[str | None, Header()] = None,
) -> str:
    """The experiment id of the path, once the request's runner token is shown to be that experiment's."""
    if not x_grid_runner_token or not state.verify("runner", experiment_id, x_grid_runner_token):
        raise ApiError(
            403,
            f"invalid runner token for experiment {experiment_id!r}: send the experiment's $GRID_RUNNER_TOKEN "
            "in the X-Grid-Runner-Token header",
        )
    return experiment_id


ExperimentId = Annotated[str, Depends(runner_experiment)]


@router.post("/metrics", response_model=ReportMetricsResponse)
def report_metrics(experiment_id: ExperimentId, body: ReportMetricsRequest, state: StateDep) -> Response:
    """Store metric points; points whose ``seq`` is not above the highest stored one are skipped."""
    metric_store.check_points(body.points)
    with lock_for(experiment_id), state.sessions.begin() as session:
        exp = live_experiment(session, experiment_id, "metrics")
        accepted = metric_store.record(session, exp, body.points, utcnow())
    return wire_response(ReportMetricsResponse(accepted=accepted))


@router.put("/artifacts/{path:path}", response_model=ArtifactUploadResponse)
async def upload_artifact(experiment_id: ExperimentId, path: str, request: Request, state: StateDep) -> Response:
    """Store the body as the artifact ``path`` (replacing an earlier upload of the same path)."""
    path = check_path(path)
    with state.sessions() as session:
        live_experiment(session, experiment_id, "artifacts")
    upload = await files_for(state.state_dir).receive(request.stream())
    try:
        await run_in_threadpool(commit_upload, state, experiment_id, path, upload)
    finally:
        discard(upload.temp)
    return wire_response(ArtifactUploadResponse(size=upload.size, md5_checksum=upload.md5))


@router.get("/datastore", response_model=RunnerDatastore)
def datastore_files(
    experiment_id: ExperimentId,
    request: Request,
    state: StateDep,
    page: PageDep,
) -> Response:
    """The datastore version the experiment's run mounts, and a page of its files to fetch."""
    base = str(request.base_url).rstrip("/")
    with state.sessions() as session:
        view = datastore_mounts.runner_view(session, runtime_of(request), experiment_id, base, page.offset, page.size)
    return wire_response(view)


@router.post("/heartbeat")
async def heartbeat(experiment_id: ExperimentId, state: StateDep) -> Response:
    """The runner is alive. 409 when the experiment is no longer running (it ended, was stopped, or was
    judged lost): the runner then stops its command itself."""
    if state.scheduler.heartbeat(experiment_id):
        return Response(status_code=204)
    with state.sessions() as session:
        phase = session.scalar(select(ExperimentRow.phase).where(ExperimentRow.id == experiment_id))
    if phase is None:
        raise ApiError(404, f"experiment {experiment_id!r} not found")
    if phase not in ACTIVE:
        now = phase.removeprefix("EXPERIMENT_STATE_").lower()
        raise ApiError(409, f"experiment {experiment_id!r} is no longer running (it is {now}); stop its command")
    return Response(status_code=204)  # running, but heartbeats are not watched (off in the server's config)


@router.get("/source", response_class=FileResponse)
def source(experiment_id: ExperimentId, state: StateDep) -> FileResponse:
    """The run's source snapshot (a gzip tar), for a runner that cannot read the control plane's files.
    Each download is logged: a node's runners fetch a run's snapshot once and share it."""
    with state.sessions() as session:
        exp = session.get(ExperimentRow, experiment_id)
        run = session.get(RunRow, exp.run_id) if exp is not None else None
        if exp is None or run is None or run.deleted_at is not None:
            raise ApiError(404, f"experiment {experiment_id!r} not found")
        if run.source_state != "ready":
            raise ApiError(404, f"run {run.name!r} has no uploaded source snapshot (source: {run.source_state})")
        run_id, run_name = run.id, run.name
    path = state.scheduler.source_path(run_id)
    log.info("source snapshot of run %s (%s) sent to experiment %s", run_name, run_id, experiment_id)
    return FileResponse(path, media_type="application/gzip", filename=f"{run_name}.tar.gz")
