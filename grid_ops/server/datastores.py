"""Datastore versions: creating them (the server assigns the version), finding them by id, name or
``name:version`` (only the caller's: anything else is a 404), their wire view, events, and deletion.

A datastore's versions all live on one cluster, whose storage backend keeps their content. A version
is visible to runs only once its phase is ``SUCCEEDED``; from then on it never changes.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from grid_ops.datastore_names import parse_datastore_ref, validate_datastore_name
from grid_ops.errors import ValidationError
from grid_ops.schemas import (
    CreateDatastoreRequest,
    Datastore,
    DatastoreOptimizationStatus,
    DatastoreSourceType,
    DatastoreSpec,
    DatastoreState,
    DatastoreStatus,
)
from grid_ops.server.auth import Principal
from grid_ops.server.config import ServerConfig
from grid_ops.server.datastore_tables import (
    DatastoreBlobRow,
    DatastoreEventRow,
    DatastoreFileRow,
    DatastorePackedBlobRow,
    DatastoreRow,
    DatastoreUploadRow,
)
from grid_ops.server.db import as_utc, utcnow
from grid_ops.server.errors import ApiError, bad_request, conflict, not_found
from grid_ops.server.ids import is_id, new_id
from grid_ops.server.lookup import check_cluster
from grid_ops.server.storage import BlobStore, StorageError, open_store
from grid_ops.server.storage.base import UploadRef, blob_key
from grid_ops.server.storage.local import LocalStore
from grid_ops.server.storage.packs import merge_ranges
from grid_ops.server.url_policy import UrlRefused, check_url

Phase = DatastoreOptimizationStatus
UPLOADING = Phase.UNSPECIFIED  # the original dialect's "uploading"
PHASE_WORDS = {
    Phase.UNSPECIFIED: "uploading",
    Phase.OPTIMIZING: "optimizing",
    Phase.SUCCEEDED: "succeeded",
    Phase.FAILED: "failed",
    Phase.DELETED: "deleted",
}
SUPPORTED_SOURCES = (
    DatastoreSourceType.EXPANDED_FILES,
    DatastoreSourceType.COMPRESSED_FILE,
    DatastoreSourceType.HTTP_URL,
    DatastoreSourceType.OBJECT_STORE,
)
UPLOAD_SOURCES = (DatastoreSourceType.EXPANDED_FILES, DatastoreSourceType.COMPRESSED_FILE)
UPLOAD_URL_SECONDS = 24 * 3600
DOWNLOAD_URL_SECONDS = 12 * 3600


@dataclass
class DatastoreRuntime:
    """What the datastore endpoints share: each cluster's storage backend (opened on first use) and the
    background worker that unpacks archives and fetches remote sources."""

    config: ServerConfig
    state_dir: Path
    sessions: sessionmaker[Session]
    sign: Callable[[str, str], str]
    on_optimize: Callable[[str], None] = lambda _datastore_id: None
    _stores: dict[str, BlobStore] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def store(self, cluster_id: str) -> BlobStore:
        """The storage of ``cluster_id``; a backend that cannot be opened is a 503 that says why."""
        with self._lock:
            found = self._stores.get(cluster_id)
            if found is None:
                check_cluster(self.config, cluster_id)
                cluster = self.config.clusters[cluster_id]
                try:
                    found = open_store(cluster_id, cluster.storage, self.state_dir, self.sign)
                except (StorageError, OSError) as exc:
                    raise ApiError(
                        503, f"the datastore storage of cluster {cluster_id!r} cannot be opened: {exc}"
                    ) from exc
                self._stores[cluster_id] = found
            return found


def runtime_of(request: Request) -> DatastoreRuntime:
    """The ``DatastoreRuntime`` of the app serving ``request``."""
    runtime: DatastoreRuntime = request.app.state.datastores
    return runtime


def phase_word(phase: str) -> str:
    """``DATASTORE_OPTIMIZATION_STATUS_SUCCEEDED`` -> ``succeeded`` (unspecified reads ``uploading``)."""
    return PHASE_WORDS.get(Phase(phase), phase.removeprefix("DATASTORE_OPTIMIZATION_STATUS_").lower())


def describe(row: DatastoreRow) -> str:
    return f"version {row.version} of datastore {row.name!r}"


# ---------------------------------------------------------------------- views and events


def datastore_view(row: DatastoreRow) -> Datastore:
    """The wire form of one version."""
    return Datastore(
        id=row.id,
        name=row.name,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        spec=DatastoreSpec(
            cluster_id=row.cluster_id,
            size_mib=math.ceil(row.size_bytes / (1024 * 1024)),
            source=row.source or "",
            source_type=DatastoreSourceType(row.source_type),
            uploaded_at=as_utc(row.completed_at),
            user_id=row.user_id,
            version=row.version,
            size_bytes=row.size_bytes,
            file_count=row.file_count,
            team=row.team,
        ),
        status=DatastoreStatus(message=row.message, phase=Phase(row.phase), state=DatastoreState(row.state)),
    )


def set_phase(session: Session, row: DatastoreRow, phase: Phase, state: DatastoreState, message: str) -> None:
    """Move a version to ``phase``/``state`` and record the change as an event."""
    now = utcnow()
    row.phase, row.state, row.message, row.updated_at = phase.value, state.value, message, now
    session.add(
        DatastoreEventRow(datastore_id=row.id, phase=phase.value, state=state.value, message=message, timestamp=now)
    )


# ---------------------------------------------------------------------- lookups


def _visible(user: Principal) -> tuple[ColumnElement[bool], ...]:
    return (DatastoreRow.user_id == user.id, DatastoreRow.deleted_at.is_(None))


def find_datastore(
    session: Session, user: Principal, ref: str, cluster_id: str | None = None, *, need_version: bool = False
) -> DatastoreRow:
    """The caller's version named by ``ref``: an id, ``name:version``, or ``name`` (its latest version that
    succeeded, else its latest). Anything else, another user's included, is a 404 that says what exists."""
    if is_id(ref):
        row = session.scalar(select(DatastoreRow).where(DatastoreRow.id == ref, *_visible(user)))
        if row is None:
            raise not_found("datastore", ref)
        return row
    try:
        name, version = parse_datastore_ref(ref)
    except ValidationError as exc:
        raise ApiError(404, f"datastore {ref!r} not found: {exc.message}") from exc
    if version is None and need_version:
        raise bad_request(f"say which version of datastore {name!r} you mean: use {name}:N (e.g. {name}:1)")
    rows = session.scalars(
        select(DatastoreRow).where(DatastoreRow.name == name, *_visible(user)).order_by(DatastoreRow.version)
    ).all()
    if not rows:
        raise not_found("datastore", name)
    if cluster_id is not None and rows[0].cluster_id != cluster_id:
        raise ApiError(
            404,
            f"datastore {name!r} is on cluster {rows[0].cluster_id!r}, not {cluster_id!r}: "
            f"use cluster {rows[0].cluster_id!r}",
        )
    if version is None:
        done = [r for r in rows if r.phase == Phase.SUCCEEDED.value]
        return (done or list(rows))[-1]
    for r in rows:
        if r.version == version:
            return r
    have = ", ".join(str(r.version) for r in rows)
    raise ApiError(404, f"datastore {name!r} has no version {version}; its versions are {have}")


def visible_version(session: Session, user: Principal, ref: str, cluster_id: str) -> DatastoreRow:
    """The version ``ref`` names for a run on ``cluster_id``: it must have succeeded (a 409 says why not)."""
    row = find_datastore(session, user, ref, cluster_id)
    if row.phase != Phase.SUCCEEDED.value:
        raise conflict(f"{describe(row)} is {phase_word(row.phase)}: runs can use it once it has succeeded")
    return row


def version_files(session: Session, row: DatastoreRow) -> list[DatastoreFileRow]:
    """The manifest of a version, by path: each file's blake3 (its content's key, see ``blob_key``), size
    and mode."""
    return list(
        session.scalars(
            select(DatastoreFileRow).where(DatastoreFileRow.datastore_id == row.id).order_by(DatastoreFileRow.path)
        )
    )


# ---------------------------------------------------------------------- creation


def _source_type(body: CreateDatastoreRequest) -> DatastoreSourceType:
    spec = body.spec
    kind = spec.source_type or DatastoreSourceType.UNSPECIFIED
    source = (spec.source or "").strip()
    if kind == DatastoreSourceType.UNSPECIFIED:
        if source.startswith(("http://", "https://")):
            kind = DatastoreSourceType.HTTP_URL
        elif source.startswith("s3://"):
            kind = DatastoreSourceType.OBJECT_STORE
        else:
            kind = DatastoreSourceType.EXPANDED_FILES
    if kind not in SUPPORTED_SOURCES:
        raise bad_request(
            f"source type {kind.value} is not supported; use one of {', '.join(k.value for k in SUPPORTED_SOURCES)}"
        )
    if kind == DatastoreSourceType.HTTP_URL and not source.startswith(("http://", "https://")):
        raise bad_request(f"an HTTP_URL datastore needs spec.source = an http(s) URL, got {source!r}")
    if kind == DatastoreSourceType.OBJECT_STORE:
        bucket = source.removeprefix("s3://").split("/", 1)[0]
        if not source.startswith("s3://") or not bucket:
            raise bad_request(f"an OBJECT_STORE datastore needs spec.source = s3://bucket/prefix/, got {source!r}")
    return kind


def create_datastore(
    sessions: sessionmaker[Session],
    config: ServerConfig,
    user: Principal,
    cluster_id: str,
    body: CreateDatastoreRequest,
) -> DatastoreRow:
    """Create the next version of ``body.name`` (1 for a new name) in state uploading.

    Idempotent per ``spec.uploadToken``: the same token answers the version it created the first time."""
    check_cluster(config, body.spec.cluster_id or cluster_id)
    if body.spec.cluster_id and body.spec.cluster_id != cluster_id:
        raise bad_request(f"spec.clusterId {body.spec.cluster_id!r} differs from the path's cluster {cluster_id!r}")
    try:
        name = validate_datastore_name(body.name)
    except ValidationError as exc:
        raise bad_request(exc.message) from exc
    kind = _source_type(body)
    if kind == DatastoreSourceType.HTTP_URL:
        try:
            check_url((body.spec.source or "").strip(), config.datastores)
        except UrlRefused as exc:
            raise bad_request(str(exc)) from exc
    token = body.spec.upload_token
    if token is not None and not (1 <= len(token) <= 64):
        raise bad_request("spec.uploadToken must have 1 to 64 characters")
    for attempt in range(5):
        try:
            with sessions.begin() as session:
                if token:
                    existing = session.scalar(
                        select(DatastoreRow).where(DatastoreRow.user_id == user.id, DatastoreRow.upload_token == token)
                    )
                    if existing is not None:
                        if existing.name != name:
                            raise conflict(
                                f"spec.uploadToken {token!r} was already used for datastore {existing.name!r}"
                            )
                        return existing
                other = session.scalar(
                    select(DatastoreRow.cluster_id).where(
                        DatastoreRow.user_id == user.id,
                        DatastoreRow.name == name,
                        DatastoreRow.cluster_id != cluster_id,
                    )
                )
                if other is not None:
                    raise conflict(
                        f"datastore {name!r} lives on cluster {other!r}: upload new versions there, "
                        f"or choose another name for cluster {cluster_id!r}"
                    )
                last = session.scalar(
                    select(func.max(DatastoreRow.version)).where(
                        DatastoreRow.user_id == user.id, DatastoreRow.name == name
                    )
                )
                now = utcnow()
                row = DatastoreRow(
                    id=new_id(),
                    user_id=user.id,
                    team=user.team,
                    cluster_id=cluster_id,
                    name=name,
                    version=(last or 0) + 1,
                    source=(body.spec.source or "").strip() or None,
                    source_type=kind.value,
                    state=DatastoreState.UPLOADING.value,
                    phase=UPLOADING.value,
                    message=None,
                    upload_token=token,
                    size_bytes=0,
                    file_count=0,
                    created_at=now,
                    updated_at=now,
                )
                session.add(row)
                session.flush()
                waiting = "the upload" if kind in UPLOAD_SOURCES else f"completion to fetch {row.source}"
                set_phase(
                    session,
                    row,
                    UPLOADING,
                    DatastoreState.UPLOADING,
                    f"version {row.version} created; waiting for {waiting}",
                )
                return row
        except IntegrityError:  # another request took the same version number (or token): look again
            if attempt == 4:
                raise conflict(f"datastore {name!r} is being created by concurrent requests; try again") from None
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------- deletion


@dataclass
class Cleanup:
    """Storage work to do once a deletion has committed: uploads to abort and objects to remove."""

    store: BlobStore
    uploads: list[UploadRef] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)
    holes: list[tuple[str, int, int]] = field(default_factory=list)  # (pack, offset, size) no longer used

    def run(self) -> None:
        for ref in self.uploads:  # an abandoned multipart upload is harmless (S3 lifecycle rules expire them)
            with contextlib.suppress(StorageError):
                self.store.abort_upload(ref)
        for key in self.objects:
            with contextlib.suppress(StorageError):
                self.store.delete_object(key)
        if isinstance(self.store, LocalStore):
            by_pack: dict[str, list[tuple[int, int]]] = {}
            for key, offset, size in self.holes:
                by_pack.setdefault(key, []).append((offset, size))
            for key, ranges in by_pack.items():
                for offset, size in merge_ranges(ranges):
                    with contextlib.suppress(StorageError, OSError):
                        self.store.punch_hole(key, offset, size)


def delete_datastore(session: Session, runtime: DatastoreRuntime, row: DatastoreRow) -> Cleanup:
    """Mark a version deleted, forget its manifest and the content no other live version of its owner uses.

    Returns the storage clean-up to run after the transaction commits."""
    store = runtime.store(row.cluster_id)
    cleanup = Cleanup(store)
    uploads = session.scalars(select(DatastoreUploadRow).where(DatastoreUploadRow.datastore_id == row.id)).all()
    for up in uploads:
        ref = UploadRef(row.cluster_id, row.id, up.id, up.object_key, up.backend_upload_id)
        if up.state == "open":
            cleanup.uploads.append(ref)
        elif up.staged:
            cleanup.objects.append(up.object_key)
    session.execute(delete(DatastoreUploadRow).where(DatastoreUploadRow.datastore_id == row.id))
    hashes = set(session.scalars(select(DatastoreFileRow.blake3).where(DatastoreFileRow.datastore_id == row.id)))
    hashes.update(up.blake3 for up in uploads if up.blake3 and up.state == "completed" and not up.staged)
    session.execute(delete(DatastoreFileRow).where(DatastoreFileRow.datastore_id == row.id))
    if hashes:
        still_used = set(
            session.scalars(
                select(DatastoreFileRow.blake3).where(
                    DatastoreFileRow.user_id == row.user_id,
                    DatastoreFileRow.cluster_id == row.cluster_id,
                    DatastoreFileRow.blake3.in_(hashes),
                )
            )
        )
        orphans = sorted(hashes - still_used)
        packed: list[tuple[str, int, int]] = []
        for start in range(0, len(orphans), 500):
            chunk = orphans[start : start + 500]
            session.execute(
                delete(DatastoreBlobRow).where(
                    DatastoreBlobRow.cluster_id == row.cluster_id,
                    DatastoreBlobRow.user_id == row.user_id,
                    DatastoreBlobRow.blake3.in_(chunk),
                )
            )
            packed.extend(_forget_packed(session, row, chunk))
        cleanup.objects.extend(blob_key(row.user_id, sha) for sha in orphans)
        _free_packed(session, row, packed, cleanup)
    row.deleted_at = utcnow()
    set_phase(session, row, Phase.DELETED, DatastoreState.DELETED, f"{describe(row)} deleted")
    return cleanup


def _forget_packed(session: Session, row: DatastoreRow, hashes: list[str]) -> list[tuple[str, int, int]]:
    """Delete the pack rows of content no version of the owner uses; returns where it was in its packs."""
    where = (
        DatastorePackedBlobRow.cluster_id == row.cluster_id,
        DatastorePackedBlobRow.user_id == row.user_id,
        DatastorePackedBlobRow.blake3.in_(hashes),
    )
    found = [
        (pack, offset, size)
        for pack, offset, size in session.execute(
            select(DatastorePackedBlobRow.pack, DatastorePackedBlobRow.offset, DatastorePackedBlobRow.size).where(
                *where
            )
        )
    ]
    if found:
        session.execute(delete(DatastorePackedBlobRow).where(*where))
    return found


def _free_packed(session: Session, row: DatastoreRow, packed: list[tuple[str, int, int]], cleanup: Cleanup) -> None:
    """Once the deletion commits: remove the packs nothing points into any more, and punch holes over the
    content given up inside the others."""
    packs = sorted({pack for pack, _, _ in packed})
    still_used: set[str] = set()
    for start in range(0, len(packs), 500):
        still_used.update(
            session.scalars(
                select(DatastorePackedBlobRow.pack)
                .where(
                    DatastorePackedBlobRow.cluster_id == row.cluster_id,
                    DatastorePackedBlobRow.pack.in_(packs[start : start + 500]),
                )
                .distinct()
            )
        )
    cleanup.objects.extend(pack for pack in packs if pack not in still_used)
    cleanup.holes.extend(entry for entry in packed if entry[0] in still_used)
