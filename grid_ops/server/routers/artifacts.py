"""``/v1/core/{clusterId}/experiments/{id}/artifacts``: list an experiment's artifacts (``V1Artifact``,
paginated) and download one.

Each listed ``url`` is absolute and carries a signed, expiring token, so it downloads without
credentials, as the original Grid's presigned URLs did (its SDK fetches them with a bare GET).
"""

from __future__ import annotations

import mimetypes
import time
from pathlib import PurePosixPath
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import FileResponse

from grid_ops.schemas import Artifact, ListExperimentArtifactsResponse
from grid_ops.server import artifact_index
from grid_ops.server.artifact_files import check_path
from grid_ops.server.artifacts import being_deleted, files_for
from grid_ops.server.db import as_utc
from grid_ops.server.errors import ApiError, not_found
from grid_ops.server.ids import is_id
from grid_ops.server.lookup import find_experiment
from grid_ops.server.models import ExperimentRow
from grid_ops.server.pagination import PageDep, encode
from grid_ops.server.state import AppState, SessionDep, StateDep, UserDep, wire_response

router = APIRouter(prefix="/v1/core/{cluster_id}/experiments/{exp_ref}/artifacts", tags=["artifacts"])
LINK_SECONDS = 24 * 3600


def _link_token(state: AppState, experiment_id: str, path: str, expires: int) -> str:
    return state.sign("artifact", f"{experiment_id}\n{path}\n{expires}")


@router.get("", response_model=ListExperimentArtifactsResponse)
async def list_artifacts(
    cluster_id: str,
    exp_ref: str,
    request: Request,
    state: StateDep,
    session: SessionDep,
    user: UserDep,
    page: PageDep,
) -> Response:
    """The experiment's artifacts sorted by path, each with a download URL valid for a day."""
    exp, _run = find_experiment(session, user, exp_ref)
    offset = page.offset
    rows, total = artifact_index.page(session, exp.id, offset, page.size)
    base = f"{str(request.base_url).rstrip('/')}/v1/core/{quote(exp.cluster_id, safe='')}/experiments/{exp.id}"
    expires = int(time.time()) + LINK_SECONDS
    artifacts = [
        Artifact(
            filename=row.path,
            size_bytes=str(row.size),
            md5_checksum=row.md5,
            last_modified=as_utc(row.modified_at),
            url=f"{base}/artifacts/{quote(row.path)}?"
            + urlencode({"expires": expires, "token": _link_token(state, exp.id, row.path, expires)}),
        )
        for row in rows
    ]
    nxt = offset + len(rows)
    return wire_response(
        # "" rather than absent on the last page: the original SDK pages until it reads ""
        ListExperimentArtifactsResponse(
            artifacts=artifacts, next_page_token=encode(nxt) if nxt < total else "", previous_page_token=""
        )
    )


def _by_link(session: SessionDep, state: AppState, exp_ref: str, path: str, expires: int, token: str) -> ExperimentRow:
    """The experiment of a signed download link (403 when the link is forged or expired)."""
    if not is_id(exp_ref) or not state.verify("artifact", f"{exp_ref}\n{path}\n{expires}", token):
        raise ApiError(403, "invalid artifact link: list the experiment's artifacts again for a valid url")
    if expires < time.time():
        raise ApiError(403, "the artifact link has expired: list the experiment's artifacts again for a fresh url")
    exp = session.get(ExperimentRow, exp_ref)
    if exp is None or being_deleted(exp):
        raise not_found("experiment", exp_ref)
    return exp


@router.get("/{path:path}", response_class=FileResponse)
async def download_artifact(
    cluster_id: str,
    exp_ref: str,
    path: str,
    state: StateDep,
    session: SessionDep,
    expires: int | None = None,
    token: str | None = None,
    authorization: Annotated[str | None, Header()] = None,
) -> FileResponse:
    """The artifact's bytes, for its owner or for anyone holding a valid link from the listing."""
    path = check_path(path)
    if token is not None and expires is not None:
        exp = _by_link(session, state, exp_ref, path, expires, token)
    else:
        user = state.auth.authenticate(session, authorization)
        exp, _run = find_experiment(session, user, exp_ref)
    file = files_for(state.state_dir).file(exp.id, path)
    if not file.is_file():
        raise ApiError(404, f"experiment {exp.name!r} has no artifact {path!r}; list them with GET .../artifacts")
    media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return FileResponse(file, media_type=media_type, filename=PurePosixPath(path).name)
