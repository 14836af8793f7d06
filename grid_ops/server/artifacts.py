"""What the API does with artifacts beyond files and rows: accept an upload into place atomically, and
let a deleted experiment's artifacts go."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from grid_ops.schemas import ExperimentState
from grid_ops.server import artifact_index
from grid_ops.server.artifact_files import ArtifactFiles, Upload
from grid_ops.server.build_logs import BuildLogs
from grid_ops.server.db import utcnow
from grid_ops.server.errors import ApiError
from grid_ops.server.keyed_locks import lock_for
from grid_ops.server.models import ExperimentRow
from grid_ops.server.state import AppState

_DELETED = ExperimentState.DELETED.value


@lru_cache(maxsize=8)
def files_for(state_dir: Path) -> ArtifactFiles:
    """The artifacts directory of the control plane keeping its state in ``state_dir``."""
    return ArtifactFiles(state_dir)


@lru_cache(maxsize=8)
def build_logs_for(state_dir: Path) -> BuildLogs:
    """The environment build logs of the control plane keeping its state in ``state_dir``."""
    return BuildLogs(state_dir)


def being_deleted(exp: ExperimentRow) -> bool:
    """Whether the experiment is deleted or on its way there (its artifacts are no longer kept)."""
    return exp.deleted_at is not None or _DELETED in (exp.phase, exp.desired_state)


def live_experiment(session: Session, experiment_id: str, keeps: str) -> ExperimentRow:
    """The experiment a runner reports for: 404 if unknown, 409 once it is deleted."""
    exp = session.get(ExperimentRow, experiment_id)
    if exp is None:
        raise ApiError(404, f"experiment {experiment_id!r} not found")
    if being_deleted(exp):
        raise ApiError(409, f"experiment {exp.name!r} was deleted; its {keeps} are no longer kept")
    return exp


def commit_upload(state: AppState, experiment_id: str, path: str, upload: Upload) -> None:
    """Record the upload and rename it into place in one step per experiment (a failure keeps neither)."""
    files = files_for(state.state_dir)
    with lock_for(experiment_id), state.sessions.begin() as session:
        live_experiment(session, experiment_id, "artifacts")
        artifact_index.put(session, experiment_id, path, upload.size, upload.md5, utcnow())
        session.flush()
        files.place(upload, experiment_id, path)


def purge_after_commit(session: Session, state_dir: Path, experiment_ids: Sequence[str]) -> None:
    """Forget these (deleted) experiments' artifacts and build logs: rows now, files once the deletion has
    committed."""
    ids = list(experiment_ids)
    if not ids:
        return
    artifact_index.forget(session, ids)

    def remove_files(_session: Session) -> None:
        files_for(state_dir).remove(ids)
        build_logs_for(state_dir).remove(ids)

    event.listen(session, "after_commit", remove_files, once=True)


def purge_run_after_commit(session: Session, state_dir: Path, run_id: str) -> None:
    """``purge_after_commit`` for every experiment of a deleted run."""
    ids = session.scalars(select(ExperimentRow.id).where(ExperimentRow.run_id == run_id)).all()
    purge_after_commit(session, state_dir, ids)
