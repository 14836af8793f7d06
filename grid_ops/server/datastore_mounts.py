"""Datastores mounted by runs: the reference a create-run request gives is resolved for its caller and
pinned to one version's id, the use is recorded (so a version in use is never deleted), and the runner of
each experiment reads the pinned version's files from here.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from grid_ops.schemas import DatastoreMount, RunnerDatastore, RunnerDatastoreFile
from grid_ops.server.artifacts import live_experiment
from grid_ops.server.auth import Principal
from grid_ops.server.datastore_content import locate
from grid_ops.server.datastore_tables import DatastoreFileRow, DatastoreRow, RunDatastoreRow
from grid_ops.server.datastore_uploads import storage_failed
from grid_ops.server.datastores import DOWNLOAD_URL_SECONDS, DatastoreRuntime, describe, visible_version
from grid_ops.server.errors import ApiError, bad_request, conflict
from grid_ops.server.models import ExperimentRow, RunRow
from grid_ops.server.pagination import encode
from grid_ops.server.phases import TERMINAL
from grid_ops.server.storage import StorageError

MAX_MOUNT_PATH = 1024


def default_mount_path(name: str) -> str:
    """Where a run mounts datastore ``name`` when it does not say (docs/concepts.md)."""
    return f"/datastores/{name}"


def _check_mount_path(path: str) -> str:
    """A mount path: absolute, or relative to the experiment's working directory; never ``..``."""
    parts = PurePosixPath(path).parts
    if (
        not path.strip()
        or len(path) > MAX_MOUNT_PATH
        or "\x00" in path
        or ".." in parts
        or path.strip("/") in ("", ".")
    ):
        raise bad_request(
            f"invalid datastore mountPath {path!r}: use an absolute path such as /datastores/data, or a path "
            "relative to the working directory such as data/train, without '..'"
        )
    return path


def resolve(
    session: Session, user: Principal, cluster_id: str, mounts: list[DatastoreMount] | None
) -> list[DatastoreMount] | None:
    """The mounts of a create-run request with each reference pinned to the caller's version that succeeded:
    another user's or a missing datastore is a 404, a version not (yet) succeeded a 409."""
    if not mounts:
        return None
    if len(mounts) > 1:
        refs = ", ".join(repr(m.id) for m in mounts)
        raise bad_request(f"a run mounts one datastore, spec.datastores names {len(mounts)}: {refs}; keep one")
    mount = mounts[0]
    ref = (mount.id or "").strip()
    if not ref:
        raise bad_request("spec.datastores[0].id is empty: name the datastore as name, name:version or a version id")
    try:
        row = visible_version(session, user, ref, cluster_id)
    except ApiError as exc:
        if exc.status != 404:
            raise
        raise ApiError(
            404, f"{exc.message}; 'grid-ops datastore list' shows your datastores on cluster {cluster_id!r}"
        ) from exc
    path = _check_mount_path(mount.mount_path or default_mount_path(row.name))
    return [DatastoreMount(id=row.id, mount_path=path, name=row.name, version=row.version)]


def _lock_version(session: Session, datastore_id: str) -> bool:
    """Take the version's row lock (the database's write lock on SQLite) unless it was deleted, so that
    recording a use and deleting the version never both succeed."""
    result = session.execute(
        update(DatastoreRow)
        .where(DatastoreRow.id == datastore_id, DatastoreRow.deleted_at.is_(None))
        .values(id=DatastoreRow.id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record(session: Session, run_id: str, mounts: list[DatastoreMount] | None) -> None:
    """Record that run ``run_id`` mounts the pinned versions (in the caller's transaction)."""
    for mount in mounts or []:
        assert mount.id is not None and mount.mount_path is not None
        if not _lock_version(session, mount.id):
            raise conflict(
                f"version {mount.version} of datastore {mount.name!r} was deleted while the run was being "
                "created; choose another version"
            )
        session.add(RunDatastoreRow(run_id=run_id, datastore_id=mount.id, mount_path=mount.mount_path))


def refuse_if_in_use(session: Session, row: DatastoreRow) -> None:
    """A 409 naming the runs whose experiments (queued, running or paused) still mount this version."""
    _lock_version(session, row.id)
    users = session.execute(
        select(RunRow.name, func.count(ExperimentRow.id))
        .join(RunDatastoreRow, RunDatastoreRow.run_id == RunRow.id)
        .join(ExperimentRow, ExperimentRow.run_id == RunRow.id)
        .where(RunDatastoreRow.datastore_id == row.id, ExperimentRow.phase.not_in(list(TERMINAL)))
        .group_by(RunRow.name)
        .order_by(RunRow.name)
    ).all()
    if not users:
        return
    name, count = users[0]
    others = f" and {len(users) - 1} other run(s)" if len(users) > 1 else ""
    raise conflict(
        f"{describe(row)} is in use by run {name!r}{others} ({count} experiment(s) not finished): wait for it to "
        f"finish or stop it (grid-ops stop {name}), then delete the version"
    )


def runner_view(
    session: Session, runtime: DatastoreRuntime, experiment_id: str, base_url: str, offset: int, size: int
) -> RunnerDatastore:
    """The version the experiment's run mounts and one page of its files, each with a download URL and,
    where the storage is a directory of this machine, the content's path there (to hard-link)."""
    exp = live_experiment(session, experiment_id, "datastore")
    link = session.scalar(select(RunDatastoreRow).where(RunDatastoreRow.run_id == exp.run_id))
    if link is None:
        raise ApiError(404, f"the run of experiment {exp.name!r} mounts no datastore")
    row = session.get(DatastoreRow, link.datastore_id)
    if row is None or row.deleted_at is not None:
        raise conflict(f"the datastore version mounted by experiment {exp.name!r} ({link.datastore_id}) was deleted")
    files = session.scalars(
        select(DatastoreFileRow)
        .where(DatastoreFileRow.datastore_id == row.id)
        .order_by(DatastoreFileRow.path)
        .offset(offset)
        .limit(size)
    ).all()
    store = runtime.store(row.cluster_id)
    out = []
    try:
        where = locate(session, store, row.cluster_id, row.user_id, (f.blake3 for f in files))
        for f in files:
            at = where[f.blake3]
            local = at.local_path(store)
            out.append(
                RunnerDatastoreFile(
                    path=f.path,
                    blake3=f.blake3,
                    size_bytes=f.size,
                    mode=f.mode,
                    url=at.url(store, DOWNLOAD_URL_SECONDS, base_url),
                    local_path=str(local) if local is not None else None,
                    local_offset=at.offset if local is not None else None,
                )
            )
    except StorageError as exc:
        raise storage_failed(exc) from exc
    nxt = offset + len(files)
    return RunnerDatastore(
        id=row.id,
        name=row.name,
        version=row.version,
        mount_path=link.mount_path,
        file_count=row.file_count,
        size_bytes=row.size_bytes,
        files=out,
        next_page_token=encode(nxt) if nxt < row.file_count else None,
    )
