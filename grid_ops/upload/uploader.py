"""Uploading a datastore version: the whole flow, resumable.

1. scan and hash the source (or, with compression, pack it into one gzip tar);
2. create the version (idempotently, with a token saved before asking);
3. ask which content the server lacks, so that files an earlier version has are not sent again;
4. get presigned URLs and PUT the missing parts in parallel, journaling each ETag as it arrives;
5. report the parts, send the manifest (path -> content), mark the version complete, and wait while the
   server unpacks an archive.

The progress lives in ``$GRID_OPS_HOME/uploads/`` (``grid_ops.upload.state``); calling ``upload()`` again
with the same arguments, or ``resume()``, sends only what is missing, after checking that the source's
files are still as they were.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import uuid
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from grid_ops import digests, schemas
from grid_ops.client import GridClient
from grid_ops.credentials import grid_ops_home
from grid_ops.datastore_names import validate_datastore_name
from grid_ops.errors import ConflictError, GridError, NotFoundError, ValidationError
from grid_ops.upload.hash_cache import HashCache
from grid_ops.upload.pack import pack
from grid_ops.upload.progress import Progress
from grid_ops.upload.same_host import SameHostUpload, may_be_same_host
from grid_ops.upload.scan import SourceFile, changed_files, hash_files, scan_source
from grid_ops.upload.state import ObjectState, StateStore, UploadState, state_key
from grid_ops.upload.transfer import ByteBudget, Part, PartSender, RateLimit, SourceChanged, UrlExpired, read_part

MIB = 1024 * 1024
DEFAULT_PART_SIZE = 50 * MIB
DEFAULT_THREADS = 8
DEFAULT_IN_FLIGHT = 128 * MIB
PRESIGN_BATCH = 200
MANIFEST_BATCH = 5000
COMPLETE_BATCH_BYTES = 1024 * MIB
Phase = schemas.DatastoreOptimizationStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadOptions:
    """Part size, parallel connections, the bytes of parts in flight at once (memory, and what an
    interruption can waste) and an optional bandwidth cap (bytes per second, 0: none).

    ``same_host``: let a control plane on this machine copy the files from disk (``same_host.py``).

    ``from_env`` reads ``GRID_OPS_UPLOAD_PART_SIZE``, ``GRID_OPS_UPLOAD_THREADS``,
    ``GRID_OPS_UPLOAD_IN_FLIGHT``, ``GRID_OPS_UPLOAD_MAX_BPS`` and ``GRID_OPS_UPLOAD_SAME_HOST`` (0: off)."""

    part_size: int = DEFAULT_PART_SIZE
    threads: int = DEFAULT_THREADS
    max_bytes_per_second: int = 0
    max_in_flight: int = DEFAULT_IN_FLIGHT
    same_host: bool = True

    @classmethod
    def from_env(cls) -> UploadOptions:
        def number(name: str, default: int, minimum: int) -> int:
            raw = os.environ.get(name)
            if raw is None or raw == "":
                return default
            try:
                value = int(raw)
            except ValueError as exc:
                raise ValidationError(f"{name} must be a whole number, got {raw!r}") from exc
            if value < minimum:
                raise ValidationError(f"{name} must be at least {minimum}, got {value}")
            return value

        return cls(
            part_size=number("GRID_OPS_UPLOAD_PART_SIZE", DEFAULT_PART_SIZE, 1),
            threads=number("GRID_OPS_UPLOAD_THREADS", DEFAULT_THREADS, 1),
            max_bytes_per_second=number("GRID_OPS_UPLOAD_MAX_BPS", 0, 0),
            max_in_flight=number("GRID_OPS_UPLOAD_IN_FLIGHT", DEFAULT_IN_FLIGHT, 1),
            same_host=number("GRID_OPS_UPLOAD_SAME_HOST", 1, 0) != 0,
        )


@dataclass
class UploadStats:
    """What an upload call did. ``bytes_sent`` counts every part body put on the wire by this call."""

    files: int = 0
    bytes_total: int = 0
    bytes_sent: int = 0
    parts_sent: int = 0
    files_already_stored: int = 0
    bytes_already_stored: int = 0
    bytes_resumed: int = 0
    bytes_copied_on_host: int = 0  # copied by a control plane on this machine from disk (same-host upload)
    seconds: float = 0.0


@dataclass(frozen=True)
class UploadResult:
    datastore: schemas.Datastore
    stats: UploadStats


def is_remote(source: str) -> bool:
    """Whether the server fetches ``source`` itself (an ``http(s)`` URL or ``s3://`` prefix)."""
    return source.startswith(("http://", "https://", "s3://"))


def _part_count(size: int, part_size: int) -> int:
    return max(1, math.ceil(size / part_size))


def _batches(objects: list[ObjectState], count: int, size: int) -> list[list[ObjectState]]:
    """``objects`` in batches of at most ``count`` objects and (unless one alone is larger) ``size`` bytes,
    so that the server assembles and checks each batch well within one request's time."""
    out: list[list[ObjectState]] = [[]]
    total = 0
    for obj in objects:
        if out[-1] and (len(out[-1]) >= count or total + obj.size > size):
            out.append([])
            total = 0
        out[-1].append(obj)
        total += obj.size
    return [b for b in out if b]


class DatastoreUploader:
    """Uploads datastore versions through one client, keeping progress under ``home``."""

    def __init__(
        self,
        client: GridClient,
        home: Path | None = None,
        options: UploadOptions | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.client = client
        self.states = StateStore(home or grid_ops_home())
        self.hashes = HashCache(home or grid_ops_home())
        self.options = options or UploadOptions.from_env()
        self.progress = progress or Progress()

    # ------------------------------------------------------------------ entry points

    def upload(self, name: str, source: str, compression: bool = False, cluster_id: str | None = None) -> UploadResult:
        """Upload ``source`` as the next version of ``name``, or finish the interrupted upload of the same
        arguments."""
        validate_datastore_name(name)
        cluster = cluster_id or self.client.cluster_id
        started = time.monotonic()
        if is_remote(source):
            return self._remote(name, source, cluster, started)
        src = Path(source).expanduser().absolute()
        key = state_key(self.client.url, self.client.user_id or "", cluster, name, str(src), bool(compression))
        state = self.states.load(key)
        if state is not None:
            self._check_unchanged(state)
        else:
            state = self._new_state(key, name, src, bool(compression), cluster)
        return self._run(state, started)

    def resume(self, state: UploadState) -> UploadResult:
        """Finish an interrupted upload (see ``pending()``)."""
        self._check_unchanged(state)
        return self._run(state, time.monotonic())

    def pending(self) -> list[UploadState]:
        """The interrupted uploads of this client's server and user, oldest first."""
        return [s for s in self.states.all() if s.url == self.client.url and s.user_id == (self.client.user_id or "")]

    def forget(self, datastore_id: str) -> None:
        """Drop the saved progress of uploads to ``datastore_id`` (it was deleted)."""
        for state in self.states.all():
            if state.datastore_id == datastore_id:
                self.states.delete(state.key)

    # ------------------------------------------------------------------ preparing

    def _new_state(self, key: str, name: str, src: Path, compression: bool, cluster: str) -> UploadState:
        scanned = time.time_ns()
        files = scan_source(src)
        if not files:
            raise ValidationError(f"the datastore source {src} holds no files; add files or choose another source")
        files = self.hashes.lookup(files)  # files as they were at an earlier upload are not read again
        same_host = not compression and self.options.same_host and may_be_same_host(self.client.url)
        if not same_host:
            files = self._hash(files)
        state = UploadState(
            key=key,
            url=self.client.url,
            user_id=self.client.user_id or "",
            cluster_id=cluster,
            name=name,
            source=str(src),
            compression=compression,
            token=uuid.uuid4().hex,
            part_size=self.options.part_size,
            files=files,
            scanned_ns=scanned,
        )
        if compression:
            archive = self.states.archive_path(key)
            archive.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.progress.stage(f"packing {len(files)} files into one gzip tar")
            pack(files, archive)
            state.archive = str(archive)
            sha = digests.of_file(archive)
            state.objects[sha] = ObjectState(sha, archive.stat().st_size, f"{name}.tar.gz", str(archive))
        elif not same_host:  # else the control plane copies them, or says it cannot (see _same_host)
            self._add_objects(state, files)
        self.states.save(state)  # the token is on disk before the version is created
        return state

    def _hash(self, files: list[SourceFile]) -> list[SourceFile]:
        """``files`` with every hash known (those not known yet are read)."""
        todo = [f for f in files if f.blake3 is None]
        if not todo:
            return files
        self.progress.stage(f"hashing {len(todo)} files ({sum(f.size for f in todo)} bytes)")
        hashed = {f.path: f for f in hash_files(todo, threads=min(8, self.options.threads))}
        return [hashed.get(f.path, f) for f in files]

    @staticmethod
    def _add_objects(state: UploadState, files: list[SourceFile]) -> None:
        """Content objects to send through presigned URLs for ``files`` (hashed)."""
        for f in files:
            assert f.blake3 is not None
            if f.blake3 not in state.objects:
                state.objects[f.blake3] = ObjectState(f.blake3, f.size, f.path, str(f.local))

    @staticmethod
    def _changed(state: UploadState, changes: list[str], when: str) -> SourceChanged:
        shown = ", ".join(changes[:10]) + (f" and {len(changes) - 10} more" if len(changes) > 10 else "")
        version = f" version {state.version}" if state.version else ""
        return SourceChanged(
            changes,
            f"{len(changes)} file(s) of {state.source} changed {when} of datastore "
            f"{state.name!r}{version}: {shown}. Put them back as they were and resume, or discard the "
            f"interrupted upload (grid-ops datastore delete --name {state.name} --version {state.version or 'N'}"
            ", or Datastore.delete()) and upload again",
        )

    def _check_unchanged(self, state: UploadState) -> None:
        changes = changed_files(state.files, scan_source(Path(state.source)))
        if changes:
            raise self._changed(state, changes, "since the interrupted upload")
        if state.archive is not None:
            archive = Path(state.archive)
            (expected,) = state.objects.values()
            if not archive.is_file() or archive.stat().st_size != expected.size:
                self.progress.stage("packing the source again")
                pack(state.files, archive)
                if digests.of_file(archive) != expected.blake3:
                    raise SourceChanged([state.source], f"the packed archive of {state.source} cannot be rebuilt")

    # ------------------------------------------------------------------ the flow

    def _create(self, state: UploadState) -> schemas.Datastore:
        kind = (
            schemas.DatastoreSourceType.COMPRESSED_FILE
            if state.compression
            else schemas.DatastoreSourceType.EXPANDED_FILES
        )
        request = schemas.CreateDatastoreRequest(
            name=state.name,
            spec=schemas.DatastoreSpec(
                cluster_id=state.cluster_id, source="", source_type=kind, upload_token=state.token
            ),
        )
        created = self.client.create_datastore(request, state.cluster_id)
        state.datastore_id, state.version = created.id, created.spec.version
        self.states.save(state)
        return created

    def _current(self, state: UploadState) -> schemas.Datastore:
        """The version this state uploads to, created if need be (again, if it was deleted meanwhile)."""
        if state.datastore_id is None:
            return self._create(state)
        try:
            return self.client.get_datastore(state.datastore_id, cluster_id=state.cluster_id)
        except NotFoundError:  # deleted on the server: start that version afresh
            state.datastore_id = state.version = None
            state.token = uuid.uuid4().hex
            state.manifest_sent = False
            state.recorded = []
            for obj in state.objects.values():
                obj.upload_id, obj.part_count, obj.etags, obj.completed = None, 0, {}, False
            return self._create(state)

    def _run(self, state: UploadState, started: float) -> UploadResult:
        stats = UploadStats(files=len(state.files), bytes_total=sum(o.size for o in state.objects.values()))
        current = self._current(state)
        if current.status.phase not in (None, Phase.UNSPECIFIED):  # completed by an earlier call
            return self._finish(state, self._wait(current), stats, started)
        if not state.compression and not state.objects:  # no presigned uploads planned: same-host first
            self._same_host(state, stats)
        for attempt in range(2):
            sender = self._send_missing(state, stats)
            stats.bytes_sent += sender.bytes_sent.value
            stats.parts_sent += sender.parts_sent.value
            if state.compression or state.manifest_sent:
                break
            try:
                self._send_manifest(state)
                break
            except ConflictError:  # content deleted meanwhile (another version's deletion): send it again
                if attempt:
                    raise
                for obj in state.objects.values():
                    obj.completed = False
                    obj.upload_id, obj.etags = None, {}
        self.progress.stage(f"completing version {state.version} of {state.name!r}")
        assert state.datastore_id is not None
        # every file's hash is known now: record them while the server completes (they describe the local
        # files, whatever the server answers)
        remembering = threading.Thread(target=self._remember, args=(state,), name="grid-ops-hash-cache")
        remembering.start()
        try:
            done = self.client.complete_datastore(state.datastore_id, cluster_id=state.cluster_id)
            final = self._wait(done)
        finally:
            remembering.join()
        return self._finish(state, final, stats, started, remembered=True)

    def _same_host(self, state: UploadState, stats: UploadStats) -> None:
        """Have a control plane on this machine copy the files from disk; hash what it cannot take, to send
        it through presigned URLs."""
        recorded = set(state.recorded)  # once: a set built per file made a resume quadratic in the files
        left = [f for f in state.files if f.path not in recorded]
        if state.same_host is not False and self.options.same_host:
            stored = self._stored_already([f for f in left if f.blake3 is not None], state, stats)
            try:
                copied, left = SameHostUpload(self.client, self.states, self.progress).run(state, stored)
            except SourceChanged as exc:
                raise self._changed(state, exc.files, "during the upload") from None
            stats.bytes_copied_on_host += copied
        if left:
            hashed = {f.path: f for f in self._hash([f for f in left if f.blake3 is None])}
            state.files = [hashed.get(f.path, f) for f in state.files]
            recorded = set(state.recorded)
            self._add_objects(state, [f for f in state.files if f.path not in recorded])
            self.states.save(state)

    def _stored_already(self, files: list[SourceFile], state: UploadState, stats: UploadStats) -> set[str]:
        """The paths of ``files`` (hashed) whose content the server stores already: only their manifest
        entries are sent."""
        assert state.datastore_id is not None
        if not files:
            return set()
        self.progress.stage("asking which content the server has already")
        distinct = {f.blake3: f.size for f in files if f.blake3}
        refs = [schemas.BlobRef(blake3=sha, size_bytes=size) for sha, size in distinct.items()]
        missing: set[str] = set()
        for start in range(0, len(refs), MANIFEST_BATCH):
            batch = refs[start : start + MANIFEST_BATCH]
            missing.update(self.client.missing_blobs(state.datastore_id, batch, cluster_id=state.cluster_id))
        have = [f for f in files if f.blake3 not in missing]
        stats.files_already_stored += len(have)
        stats.bytes_already_stored += sum({f.blake3: f.size for f in have}.values())
        return {f.path for f in have}

    def _remember(self, state: UploadState) -> None:
        """Keep the hashes of the source's files for the next upload of it (``hash_cache.py``); a cache
        that cannot be written only means reading the files again next time."""
        if not state.scanned_ns:
            return
        try:
            self.hashes.remember(state.files, state.scanned_ns)
        except Exception as exc:  # e.g. GRID_OPS_HOME not writable: the upload itself is done
            log.debug("could not record the files' hashes in %s: %s", self.hashes.path, exc)

    def _finish(
        self, state: UploadState, final: schemas.Datastore, stats: UploadStats, started: float, remembered: bool = False
    ) -> UploadResult:
        if not remembered:
            self._remember(state)
        self.states.delete(state.key)
        stats.seconds = time.monotonic() - started
        self.progress.finish(f"version {final.spec.version} of {final.name!r} is ready")
        return UploadResult(final, stats)

    def _wait(self, current: schemas.Datastore) -> schemas.Datastore:
        """Poll while the server unpacks or fetches; a failed version raises with the server's reason."""
        delay = 0.1
        while current.status.phase == Phase.OPTIMIZING:
            self.progress.stage(current.status.message or "the server is processing the upload")
            time.sleep(delay)
            delay = min(1.0, delay * 1.5)
            current = self.client.get_datastore(current.id, cluster_id=current.spec.cluster_id)
        if current.status.phase == Phase.FAILED:
            raise GridError(
                f"version {current.spec.version} of datastore {current.name!r} failed: {current.status.message}"
            )
        return current

    def _remote(self, name: str, source: str, cluster: str, started: float) -> UploadResult:
        request = schemas.CreateDatastoreRequest(
            name=name,
            spec=schemas.DatastoreSpec(cluster_id=cluster, source=source, upload_token=uuid.uuid4().hex),
        )
        created = self.client.create_datastore(request, cluster)
        self.progress.stage(f"the control plane fetches {source}")
        final = self._wait(self.client.complete_datastore(created.id, cluster_id=cluster))
        stats = UploadStats(files=final.spec.file_count or 0, bytes_total=final.spec.size_bytes or 0)
        stats.seconds = time.monotonic() - started
        self.progress.finish(f"version {final.spec.version} of {final.name!r} is ready")
        return UploadResult(final, stats)

    # ------------------------------------------------------------------ content

    def _skip_stored(self, state: UploadState, stats: UploadStats) -> None:
        """Mark content the server has already (from earlier versions) as done, without sending it."""
        assert state.datastore_id is not None
        fresh = [o for o in state.objects.values() if not o.completed and o.upload_id is None]
        missing: set[str] = set()
        for start in range(0, len(fresh), MANIFEST_BATCH):
            refs = [schemas.BlobRef(blake3=o.blake3, size_bytes=o.size) for o in fresh[start : start + MANIFEST_BATCH]]
            missing.update(self.client.missing_blobs(state.datastore_id, refs, cluster_id=state.cluster_id))
        sizes = {o.blake3: o.size for o in fresh if o.blake3 not in missing}
        for f in state.files:
            if f.blake3 in sizes:
                stats.files_already_stored += 1
        stats.bytes_already_stored += sum(sizes.values())
        for sha in sizes:
            state.objects[sha].completed = True

    def _presign(self, state: UploadState, objects: list[ObjectState]) -> dict[str, dict[int, str]]:
        """Start or continue the uploads of ``objects``; their part URLs by blake3."""
        assert state.datastore_id is not None
        urls: dict[str, dict[int, str]] = {}
        for start in range(0, len(objects), PRESIGN_BATCH):
            batch = objects[start : start + PRESIGN_BATCH]
            request = [
                schemas.DatastoreUploadObject(
                    key=o.key,
                    part_count=str(_part_count(o.size, state.part_size)),
                    upload_id=o.upload_id,
                    blake3=o.blake3,
                    size_bytes=o.size,
                    part_size_bytes=state.part_size,
                )
                for o in batch
            ]
            for obj, answer in zip(
                batch,
                self.client.presign_uploads(state.datastore_id, request, cluster_id=state.cluster_id),
                strict=True,
            ):
                if answer.upload_id != obj.upload_id:
                    obj.upload_id, obj.etags = answer.upload_id, {}
                obj.part_count = int(answer.part_count or 1)
                urls[obj.blake3] = {int(u.part_number): u.url for u in answer.urls or []}
        self.states.save(state)
        return urls

    def _send_missing(self, state: UploadState, stats: UploadStats) -> PartSender:
        sender = PartSender(RateLimit(self.options.max_bytes_per_second))
        if not state.compression:
            self.progress.stage("asking which content the server has already")
            self._skip_stored(state, stats)
        todo = [o for o in state.objects.values() if not o.completed]
        if not todo:
            return sender
        urls = self._presign(state, todo)
        expected = {str(f.local): (f.size, f.mtime_ns) for f in state.files}
        if state.archive is not None:
            st = os.stat(state.archive)
            expected[state.archive] = (st.st_size, st.st_mtime_ns)
        parts: list[tuple[ObjectState, Part]] = []
        resumed = 0
        for obj in todo:
            for n in range(1, obj.part_count + 1):
                offset = (n - 1) * state.part_size
                length = max(0, min(state.part_size, obj.size - offset))
                if n in obj.etags:
                    resumed += length
                else:
                    parts.append((obj, Part(obj.blake3, n, Path(obj.local), offset, length)))
        stats.bytes_resumed += resumed
        self.progress.stage(f"uploading {len(todo)} objects in {len(parts)} parts")
        self.progress.start(sum(o.size for o in todo), resumed)
        self._send_parts(state, parts, urls, expected, sender)
        self._complete_parts(state, todo)
        return sender

    def _send_parts(
        self,
        state: UploadState,
        parts: list[tuple[ObjectState, Part]],
        urls: dict[str, dict[int, str]],
        expected: dict[str, tuple[int, int]],
        sender: PartSender,
    ) -> None:
        cancel = threading.Event()
        lock = threading.Lock()
        budget = ByteBudget(self.options.max_in_flight)

        def url_of(obj: ObjectState, number: int, refresh: bool) -> str:
            with lock:
                if refresh:
                    urls.update(self._presign(state, [obj]))
                return urls[obj.blake3][number]

        def send(obj: ObjectState, part: Part) -> None:
            size, mtime = expected[str(part.local)]
            describe = f"part {part.number} of {obj.key!r}"
            with budget.hold(part.length):
                data = read_part(part, size, mtime)
                try:
                    etag = sender.send(url_of(obj, part.number, False), data, describe, cancel.is_set)
                except UrlExpired:
                    etag = sender.send(url_of(obj, part.number, True), data, describe, cancel.is_set)
            self.states.record_part(state, obj, part.number, etag)
            self.progress.advance(len(data))

        with ThreadPoolExecutor(max_workers=self.options.threads, thread_name_prefix="grid-ops-upload") as pool:
            futures: list[Future[None]] = [pool.submit(send, obj, part) for obj, part in parts]
            try:
                pending: set[Future[None]] = set(futures)
                while pending:
                    done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
                    for future in done:
                        future.result()  # the first failure stops the upload
            except BaseException:
                cancel.set()
                pool.shutdown(wait=True, cancel_futures=True)
                raise

    def _complete_parts(self, state: UploadState, objects: list[ObjectState]) -> None:
        assert state.datastore_id is not None
        for batch in _batches(objects, PRESIGN_BATCH, COMPLETE_BATCH_BYTES):
            request = [
                schemas.CompletePresignedUrlsUploadObject(
                    key=o.key,
                    upload_id=o.upload_id or "",
                    urls=[
                        schemas.CompletePresignedUrlUpload(part_number=str(n), etag=e)
                        for n, e in sorted(o.etags.items())
                    ],
                )
                for o in batch
            ]
            self.client.complete_uploads(state.datastore_id, request, cluster_id=state.cluster_id)
            for o in batch:
                o.completed = True
            self.states.save(state)

    def _send_manifest(self, state: UploadState) -> None:
        assert state.datastore_id is not None
        recorded = set(state.recorded)  # by a same-host upload
        entries = [
            schemas.ManifestEntry(path=f.path, blake3=f.blake3 or "", size_bytes=f.size, mode=f.mode)
            for f in state.files
            if f.path not in recorded
        ]
        if entries:
            self.progress.stage(f"sending the list of {len(entries)} files")
        for start in range(0, len(entries), MANIFEST_BATCH):
            self.client.add_datastore_files(
                state.datastore_id, entries[start : start + MANIFEST_BATCH], cluster_id=state.cluster_id
            )
        state.manifest_sent = True
        if entries:  # else every file was recorded by the same-host copy, which its journal says already
            self.states.save(state)
