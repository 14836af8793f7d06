"""The background work of ``optimizing`` versions: unpack an uploaded archive, download an ``http(s)``
source or copy an ``s3://`` prefix, store each file by its hash, and make the version visible in one
transaction (or mark it failed, with the reason, and keep nothing of it).

Versions left ``optimizing`` by a control plane that stopped are picked up again when it starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grid_ops import digests
from grid_ops.schemas import DatastoreSourceType, DatastoreState
from grid_ops.server.config import ServerConfig
from grid_ops.server.datastore_sources import SourceError, fetch_http, fetch_s3
from grid_ops.server.datastore_tables import DatastoreRow, DatastoreUploadRow
from grid_ops.server.datastore_uploads import insert_blobs, put_files, stored_blobs
from grid_ops.server.datastores import DatastoreRuntime, Phase, set_phase
from grid_ops.server.db import utcnow
from grid_ops.server.storage.base import BlobStore, StorageError, blob_key
from grid_ops.server.storage.s3 import S3Store, s3_client
from grid_ops.server.unpack import ArchiveError, unpack

log = logging.getLogger("grid_ops.server.datastores")
_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class Job:
    """What the worker needs to know of a version, read in a short transaction."""

    datastore_id: str
    user_id: str
    cluster_id: str
    source_type: DatastoreSourceType
    source: str | None
    archives: tuple[tuple[str, str | None], ...]  # (staged object key, declared blake3)


@dataclass(frozen=True)
class FileEntry:
    path: str
    blake3: str
    size: int
    mode: int
    local: Path


def scan_tree(tree: Path) -> tuple[list[FileEntry], int]:
    """Every regular file under ``tree`` (links to files inside it count as files) and how many links to
    directories were skipped."""
    root = tree.resolve()
    entries: list[FileEntry] = []
    skipped = 0
    for folder, dirs, files in os.walk(tree):
        for name in sorted(dirs):
            if (Path(folder) / name).is_symlink():
                skipped += 1
        for name in sorted(files):
            path = Path(folder) / name
            real = path.resolve()
            if not real.is_relative_to(root):
                raise ArchiveError(f"{path.relative_to(tree).as_posix()!r} links outside the datastore")
            st = real.stat()
            if not stat.S_ISREG(st.st_mode):
                continue
            rel = path.relative_to(tree).as_posix()
            entries.append(FileEntry(rel, digests.of_file(real), st.st_size, st.st_mode & 0o777, real))
    return entries, skipped


class IngestWorker:
    """One background thread that processes optimizing versions in order."""

    def __init__(self, runtime: DatastoreRuntime) -> None:
        self.runtime = runtime
        self.work_root = runtime.state_dir / "datastores" / "work"
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread and queue every version left optimizing."""
        with self.runtime.sessions.begin() as session:
            pending = session.scalars(
                select(DatastoreRow.id)
                .where(DatastoreRow.phase == Phase.OPTIMIZING.value, DatastoreRow.deleted_at.is_(None))
                .order_by(DatastoreRow.updated_at)
            ).all()
        self._thread = threading.Thread(target=self._loop, name="grid-ops-datastores", daemon=True)
        self._thread.start()
        for datastore_id in pending:
            self.submit(datastore_id)

    def submit(self, datastore_id: str) -> None:
        self._queue.put(datastore_id)

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while True:
            datastore_id = self._queue.get()
            if datastore_id is None:
                return
            try:
                self.process(datastore_id)
            except Exception:  # a bug: keep serving the others
                log.exception("processing datastore %s failed", datastore_id)

    # ------------------------------------------------------------------ one version

    def _job(self, datastore_id: str) -> Job | None:
        with self.runtime.sessions.begin() as session:
            row = session.get(DatastoreRow, datastore_id)
            if row is None or row.phase != Phase.OPTIMIZING.value or row.deleted_at is not None:
                return None
            uploads = session.scalars(
                select(DatastoreUploadRow)
                .where(DatastoreUploadRow.datastore_id == row.id, DatastoreUploadRow.state == "completed")
                .order_by(DatastoreUploadRow.created_at)
            ).all()
            return Job(
                datastore_id=row.id,
                user_id=row.user_id,
                cluster_id=row.cluster_id,
                source_type=DatastoreSourceType(row.source_type),
                source=row.source,
                archives=tuple((u.object_key, u.blake3) for u in uploads if u.staged),
            )

    def process(self, datastore_id: str) -> None:
        """Fetch or unpack, store, and settle one optimizing version."""
        job = self._job(datastore_id)
        if job is None:
            return
        work = self.work_root / datastore_id
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        store = self.runtime.store(job.cluster_id)
        try:
            tree = work / "tree"
            tree.mkdir()
            done = self._fetch(job, store, work, tree)
            entries, skipped = scan_tree(tree)
            self._store_blobs(job, store, entries)
        except (ArchiveError, SourceError, StorageError, OSError) as exc:
            shutil.rmtree(work, ignore_errors=True)  # nothing of it is left once the version is settled
            self._fail(job, str(exc))
        else:
            shutil.rmtree(work, ignore_errors=True)
            note = f"; skipped {skipped} link(s) to directories" if skipped else ""
            self._succeed(job, entries, f"{done}: {len(entries)} files, {sum(e.size for e in entries)} bytes{note}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        for key, _sha in job.archives:  # the archives served their purpose either way
            with contextlib.suppress(StorageError):
                store.delete_object(key)

    def _fetch(self, job: Job, store: BlobStore, work: Path, tree: Path) -> str:
        if job.source_type == DatastoreSourceType.COMPRESSED_FILE:
            for index, (key, sha) in enumerate(job.archives):
                archive = store.local_path(key)
                if archive is None:
                    archive = work / f"archive-{index}"
                    with store.open_object(key) as stream, archive.open("wb") as out:
                        shutil.copyfileobj(stream, out, _CHUNK)
                if sha is not None and not digests.names_file(sha, archive):
                    raise ArchiveError(
                        f"the uploaded archive does not match its declared digest {sha}; upload it again"
                    )
                unpack(archive, tree, self.runtime.config.datastores.unpack, "the uploaded archive")
            return "unpacked the uploaded archive"
        if job.source_type == DatastoreSourceType.HTTP_URL:
            assert job.source is not None
            return fetch_http(job.source, work, tree, self.runtime.config.datastores)
        assert job.source is not None
        client = store.client if isinstance(store, S3Store) else s3_client(None, None)
        return fetch_s3(job.source, tree, client)

    def _store_blobs(self, job: Job, store: BlobStore, entries: list[FileEntry]) -> None:
        with self.runtime.sessions.begin() as session:
            row = session.get(DatastoreRow, job.datastore_id)
            have = stored_blobs(session, row, (e.blake3 for e in entries)) if row is not None else {}
        done: set[str] = set(have)
        for entry in entries:
            if entry.blake3 in done:
                continue
            store.put_file(blob_key(job.user_id, entry.blake3), entry.local)
            done.add(entry.blake3)

    def _succeed(self, job: Job, entries: list[FileEntry], message: str) -> None:
        with self.runtime.sessions.begin() as session:
            row = session.get(DatastoreRow, job.datastore_id)
            if row is None or row.phase != Phase.OPTIMIZING.value or row.deleted_at is not None:
                return  # deleted meanwhile
            insert_blobs(session, row.cluster_id, row.user_id, ((e.blake3, e.size) for e in entries))
            put_files(session, row, [(e.path, e.blake3, e.size, e.mode) for e in entries])
            row.size_bytes = sum(e.size for e in entries)
            row.file_count = len(entries)
            row.completed_at = utcnow()
            set_phase(session, row, Phase.SUCCEEDED, DatastoreState.CREATED, message)

    def _fail(self, job: Job, reason: str) -> None:
        log.info("datastore %s failed: %s", job.datastore_id, reason)
        with self.runtime.sessions.begin() as session:
            row = session.get(DatastoreRow, job.datastore_id)
            if row is None or row.phase != Phase.OPTIMIZING.value:
                return
            set_phase(session, row, Phase.FAILED, DatastoreState.CREATED, reason)


def datastore_service(
    config: ServerConfig, state_dir: Path, sessions: sessionmaker[Session], sign: Callable[[str, str], str]
) -> IngestWorker:
    """The datastores' runtime (``worker.runtime``, kept as ``app.state.datastores``) and its worker,
    wired so that completed archives and remote sources are processed in the background."""
    worker = IngestWorker(DatastoreRuntime(config, state_dir, sessions, sign))
    worker.runtime.on_optimize = worker.submit
    return worker
