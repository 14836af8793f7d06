"""The upload flow of a datastore version: which content the server lacks, presigned part URLs, part
completion (every part's size and ETag checked against what the storage holds), the manifest, and the
final ``completed`` that makes the version visible in one transaction.

Storage work happens between two short transactions (read and check, then record), so that a failure
anywhere leaves the records as they were and the same request can simply be sent again.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import Insert, Table, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from grid_ops import digests
from grid_ops.datastore_names import validate_file_path
from grid_ops.errors import ValidationError
from grid_ops.schemas import (
    CompletePresignedUrlsRequest,
    CreatePresignedUrlsRequest,
    CreatePresignedUrlsResponse,
    DatastoreManifestRequest,
    DatastoreManifestResponse,
    DatastoreSourceType,
    DatastoreState,
    DatastoreUploadObject,
    MissingBlobsRequest,
    MissingBlobsResponse,
    PresignedUploadUrl,
)
from grid_ops.server.auth import Principal
from grid_ops.server.datastore_tables import (
    DatastoreBlobRow,
    DatastoreFileRow,
    DatastorePackedBlobRow,
    DatastoreRow,
    DatastoreUploadRow,
)
from grid_ops.server.datastores import (
    UPLOAD_SOURCES,
    UPLOAD_URL_SECONDS,
    UPLOADING,
    DatastoreRuntime,
    Phase,
    describe,
    find_datastore,
    phase_word,
    set_phase,
)
from grid_ops.server.db import utcnow
from grid_ops.server.errors import ApiError, bad_request, conflict
from grid_ops.server.ids import new_id
from grid_ops.server.storage.base import (
    MAX_PART_SIZE,
    MAX_PARTS,
    Assembled,
    BlobStore,
    ContentMismatch,
    PartInfo,
    StorageError,
    UploadRef,
    blob_key,
    clean_etag,
    staging_key,
)

MAX_OBJECTS_PER_REQUEST = 1000
MAX_FILES_PER_REQUEST = 10_000
DEFAULT_MODE = 0o644
STORAGE_THREADS = 16
T = TypeVar("T")
R = TypeVar("R")


# the tables themselves, for Core executemany inserts (the ORM's bulk insert handles each row in Python)
_BLOB_TABLE = cast(Table, DatastoreBlobRow.__table__)
_FILE_TABLE = cast(Table, DatastoreFileRow.__table__)
_PACKED_TABLE = cast(Table, DatastorePackedBlobRow.__table__)


def check_sha(value: str, what: str) -> str:
    if not digests.HEX.match(value):
        raise bad_request(f"{what}: {value!r} is not a BLAKE3 (64 lowercase hex digits)")
    return value


def check_path(path: str) -> str:
    try:
        return validate_file_path(path)
    except ValidationError as exc:
        raise bad_request(exc.message) from exc


def storage_failed(exc: StorageError) -> ApiError:
    return ApiError(502, f"{exc}; nothing was changed, send the request again once the storage is reachable")


def concurrently(fn: Callable[[T], R], items: Sequence[T], threads: int = STORAGE_THREADS) -> list[R]:
    """``fn`` over ``items``, in order, several at a time: storage calls (S3 round trips, hashing a part)
    mostly wait, and a request carries up to a thousand objects. The first failure is raised."""
    if len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(threads, len(items)), thread_name_prefix="grid-storage") as pool:
        return list(pool.map(fn, items))


def require_uploading(row: DatastoreRow) -> None:
    if row.state != DatastoreState.UPLOADING.value:
        raise conflict(
            f"{describe(row)} is {phase_word(row.phase)}, no longer uploading: its content cannot change; "
            "upload a new version instead"
        )
    if row.source_type not in {s.value for s in UPLOAD_SOURCES}:
        raise conflict(f"{describe(row)} is fetched from {row.source!r} by the server: it takes no uploads")


def _insert_many(session: Session, statement: Insert, rows: list[dict[str, Any]]) -> None:
    """Run ``statement`` once per row (each with the same keys) as one ``executemany`` on the driver's
    cursor, each value converted by its column type's own processor: SQLAlchemy's processing of each row's
    parameters cost more than the database's work, for the few hundred rows of a batch of files."""
    connection = session.connection()
    dialect = connection.dialect
    compiled = statement.compile(dialect=dialect, column_keys=list(rows[0]))
    if compiled.insert_prefetch or compiled.escaped_bind_names:  # defaults made in Python, quoted names
        session.execute(statement, rows)
        return
    table = cast(Table, statement.table)
    convert: dict[str, Callable[[Any], Any]] = {}
    for key in rows[0]:
        processor = table.c[key].type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            convert[key] = processor
    if convert:
        rows = [{key: convert[key](value) if key in convert else value for key, value in row.items()} for row in rows]
    if compiled.positional:
        names = compiled.positiontup or []
        connection.exec_driver_sql(compiled.string, [tuple(row[name] for name in names) for row in rows])
    else:
        connection.exec_driver_sql(compiled.string, rows)


def insert_blobs(session: Session, cluster_id: str, user_id: str, blobs: Iterable[tuple[str, int]]) -> None:
    """Record stored content (blake3, size) for an owner; content recorded already is left alone."""
    now = utcnow()
    values = [
        {"cluster_id": cluster_id, "user_id": user_id, "blake3": sha, "size": size, "created_at": now}
        for sha, size in sorted(dict(blobs).items())  # in key order: concurrent batches cannot deadlock
    ]
    _insert_new(session, _BLOB_TABLE, DatastoreBlobRow, values)


def insert_packed(
    session: Session,
    row: DatastoreRow,
    pack: str,
    entries: Iterable[tuple[str, int, int]],
    stored_already: set[str],
) -> tuple[int, list[tuple[int, int]]]:
    """Record where content (blake3, offset, size) appended to the pack ``pack`` is, except content the owner
    had stored before (``stored_already``: it keeps its place) or that a concurrent request recorded first.
    Returns how many were recorded here, and the (offset, size) of the copies not recorded, whose space the
    caller frees."""
    where = {sha: (offset, size) for sha, offset, size in entries}
    values = [
        {"cluster_id": row.cluster_id, "user_id": row.user_id, "blake3": sha, "pack": pack, "offset": o, "size": n}
        for sha, (o, n) in sorted(where.items())
        if sha not in stored_already
    ]
    _insert_new(session, _PACKED_TABLE, DatastorePackedBlobRow, values)
    wanted = [value["blake3"] for value in values]
    ours: set[str] = set()
    for start in range(0, len(wanted), 500):  # what this transaction inserted (not a concurrent one)
        ours.update(
            session.scalars(
                select(DatastorePackedBlobRow.blake3).where(
                    DatastorePackedBlobRow.cluster_id == row.cluster_id,
                    DatastorePackedBlobRow.user_id == row.user_id,
                    DatastorePackedBlobRow.pack == pack,
                    DatastorePackedBlobRow.blake3.in_(wanted[start : start + 500]),
                )
            )
        )
    return len(ours), [place for sha, place in where.items() if sha not in ours]


def _insert_new(session: Session, table: Table, model: type[Any], values: list[dict[str, Any]]) -> None:
    """Insert rows (sorted by their primary key: concurrent batches cannot deadlock), leaving alone those
    whose primary key is taken already."""
    if not values:
        return
    session.flush()  # a Core insert does not flush the session's pending changes first, as the ORM's does
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        _insert_many(session, postgresql.insert(table).on_conflict_do_nothing(), values)
    elif dialect == "sqlite":
        _insert_many(session, sqlite.insert(table).on_conflict_do_nothing(), values)
    else:  # pragma: no cover - other databases: check first
        for value in values:
            key = tuple(value[column.name] for column in table.primary_key.columns)
            if session.get(model, key) is None:
                session.add(model(**value))


def stored_blobs(session: Session, row: DatastoreRow, hashes: Iterable[str]) -> dict[str, int]:
    """Which of ``hashes`` the owner of ``row`` has stored on its cluster, with their sizes."""
    wanted = sorted(set(hashes))
    found: dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        for sha, size in session.execute(
            select(DatastoreBlobRow.blake3, DatastoreBlobRow.size).where(
                DatastoreBlobRow.cluster_id == row.cluster_id,
                DatastoreBlobRow.user_id == row.user_id,
                DatastoreBlobRow.blake3.in_(chunk),
            )
        ):
            found[sha] = size
    return found


# ---------------------------------------------------------------------- missing content


def missing_blobs(
    session: Session, user: Principal, cluster_id: str, ref: str, body: MissingBlobsRequest
) -> MissingBlobsResponse:
    """The hashes of ``body`` whose content this user does not store on the cluster yet (in request order)."""
    row = find_datastore(session, user, ref, cluster_id)
    if len(body.blobs) > MAX_FILES_PER_REQUEST:
        raise bad_request(f"ask about at most {MAX_FILES_PER_REQUEST} blobs per request, got {len(body.blobs)}")
    for blob in body.blobs:
        check_sha(blob.blake3, "blobs[].blake3")
    have = stored_blobs(session, row, (b.blake3 for b in body.blobs))
    missing = [b.blake3 for b in body.blobs if have.get(b.blake3) != b.size_bytes]
    return MissingBlobsResponse(missing=list(dict.fromkeys(missing)))


# ---------------------------------------------------------------------- presigned URLs


@dataclass
class _NewUpload:
    key: str
    blake3: str | None
    size: int | None
    part_size: int | None
    part_count: int
    staged: bool


def _plan_upload(row: DatastoreRow, store: BlobStore, obj: DatastoreUploadObject) -> _NewUpload:
    key = check_path(obj.key)
    try:
        part_count = int(obj.part_count or 1)
    except ValueError as exc:
        raise bad_request(f"partCount of {key!r} must be a whole number, got {obj.part_count!r}") from exc
    if not 1 <= part_count <= MAX_PARTS:
        raise bad_request(f"partCount of {key!r} must be between 1 and {MAX_PARTS}, got {part_count}")
    sha = check_sha(obj.blake3, f"blake3 of {key!r}") if obj.blake3 else None
    size, part_size = obj.size_bytes, obj.part_size_bytes
    if size is not None and size < 0:
        raise bad_request(f"sizeBytes of {key!r} must not be negative")
    if part_size is not None:
        if not 1 <= part_size <= MAX_PART_SIZE:
            raise bad_request(f"partSizeBytes of {key!r} must be between 1 and {MAX_PART_SIZE}")
        if part_count > 1 and part_size < store.min_part_size:
            raise bad_request(
                f"parts of {part_size} bytes are smaller than the {store.kind} storage's minimum of "
                f"{store.min_part_size} bytes (all parts but the last): upload {key!r} in larger parts"
            )
        if size is not None and part_count != max(1, math.ceil(size / part_size)):
            raise bad_request(
                f"{key!r} has {size} bytes, which is {max(1, math.ceil(size / part_size))} parts of "
                f"{part_size} bytes, not partCount {part_count}"
            )
    if sha is not None and size is None:
        raise bad_request(f"sizeBytes of {key!r} is required with blake3")
    staged = sha is None or row.source_type == DatastoreSourceType.COMPRESSED_FILE.value
    return _NewUpload(key, sha, size, part_size, part_count, staged)


def _open_upload_for(session: Session, row: DatastoreRow, plan: _NewUpload) -> DatastoreUploadRow | None:
    """An unfinished upload of the same content (or archive) in this version, so that asking twice (a client
    retrying) continues it instead of starting a second one. Files sent by path alone always start anew."""
    if plan.blake3 is None:
        return None
    query = select(DatastoreUploadRow).where(
        DatastoreUploadRow.datastore_id == row.id,
        DatastoreUploadRow.blake3 == plan.blake3,
        DatastoreUploadRow.state == "open",
    )
    if plan.staged:
        query = query.where(DatastoreUploadRow.key == plan.key)
    for up in session.scalars(query):
        if (up.size, up.part_size, up.part_count) == (plan.size, plan.part_size, plan.part_count):
            return up
    return None


def presign(
    session: Session,
    runtime: DatastoreRuntime,
    user: Principal,
    cluster_id: str,
    ref: str,
    body: CreatePresignedUrlsRequest,
    base_url: str,
) -> CreatePresignedUrlsResponse:
    """Start (or continue, with ``uploadId``) one multipart upload per object and sign its part URLs."""
    row = find_datastore(session, user, ref, cluster_id)
    require_uploading(row)
    if len(body.objects) > MAX_OBJECTS_PER_REQUEST:
        raise bad_request(f"ask for at most {MAX_OBJECTS_PER_REQUEST} objects per request, got {len(body.objects)}")
    store = runtime.store(row.cluster_id)
    expires = int(time.time()) + UPLOAD_URL_SECONDS
    answers: list[DatastoreUploadObject] = []
    planned: list[tuple[DatastoreUploadRow | None, _NewUpload | None]] = []
    for obj in body.objects:  # check everything before starting anything
        if obj.upload_id:
            up = session.get(DatastoreUploadRow, obj.upload_id)
            if up is None or up.datastore_id != row.id:
                raise ApiError(404, f"upload {obj.upload_id!r} not found in {describe(row)}")
            if up.key != obj.key:
                raise bad_request(f"upload {obj.upload_id!r} is for {up.key!r}, not {obj.key!r}")
            planned.append((up, None))
        else:
            new = _plan_upload(row, store, obj)
            planned.append((_open_upload_for(session, row, new), new))
    try:
        starts: list[tuple[str, str, int]] = []  # (upload id, object key, part count): started all at once
        for existing, plan in planned:
            if existing is None:
                assert plan is not None
                upload_id = new_id()
                key = staging_key(upload_id) if plan.staged else blob_key(row.user_id, plan.blake3 or "")
                starts.append((upload_id, key, plan.part_count))
        backend_ids = iter(concurrently(lambda start: store.start_upload(start[1], start[0], start[2]), starts))
        fresh = iter(starts)
        for existing, plan in planned:
            if existing is None:
                assert plan is not None
                upload_id, object_key, _ = next(fresh)
                existing = DatastoreUploadRow(
                    id=upload_id,
                    datastore_id=row.id,
                    key=plan.key,
                    blake3=plan.blake3,
                    size=plan.size,
                    part_size=plan.part_size,
                    part_count=plan.part_count,
                    object_key=object_key,
                    backend_upload_id=next(backend_ids),
                    state="open",
                    staged=plan.staged,
                    created_at=utcnow(),
                )
                session.add(existing)
            ref_ = UploadRef(row.cluster_id, row.id, existing.id, existing.object_key, existing.backend_upload_id)
            numbers = [] if existing.state == "completed" else list(range(1, existing.part_count + 1))
            urls = store.part_urls(ref_, numbers, UPLOAD_URL_SECONDS, base_url) if numbers else {}
            answers.append(
                DatastoreUploadObject(
                    key=existing.key,
                    upload_id=existing.id,
                    part_count=str(existing.part_count),
                    expiry_time=str(expires),
                    urls=[PresignedUploadUrl(part_number=str(n), url=u) for n, u in sorted(urls.items())],
                    blake3=existing.blake3,
                    size_bytes=existing.size,
                    part_size_bytes=existing.part_size,
                )
            )
    except StorageError as exc:
        raise storage_failed(exc) from exc
    return CreatePresignedUrlsResponse(objects=answers)


# ---------------------------------------------------------------------- completing parts


@dataclass
class _Ready:
    upload: DatastoreUploadRow
    ref: UploadRef
    parts: list[PartInfo]
    assembled: Assembled | None = None
    path_blake3: str | None = None  # a file of the original client, hashed once assembled


def _expected_size(up: DatastoreUploadRow, number: int) -> int | None:
    if up.part_size is None or up.size is None:
        return None
    if number < up.part_count:
        return up.part_size
    return up.size - up.part_size * (up.part_count - 1)


def _check_parts(up: DatastoreUploadRow, claimed: dict[int, str], arrived: dict[int, PartInfo]) -> list[PartInfo]:
    """The parts to assemble, after checking the client's list against what the storage holds."""
    name = repr(up.key)
    wanted = set(range(1, up.part_count + 1))
    unknown = sorted(set(claimed) - wanted)
    if unknown:
        raise bad_request(f"{name} has {up.part_count} parts; there is no part {unknown[0]}")
    unreported = sorted(wanted - set(claimed))
    if unreported:
        raise conflict(
            f"cannot complete {name}: part(s) {_numbers(unreported)} of {up.part_count} were not reported; "
            "upload every part and report each with its ETag"
        )
    absent = sorted(n for n in wanted if n not in arrived)
    if absent:
        raise conflict(
            f"cannot complete {name}: part(s) {_numbers(absent)} of {up.part_count} have not arrived at the storage; "
            "PUT them to their URLs (ask presigned-urls again with this uploadId for fresh ones), then complete"
        )
    parts = []
    for n in sorted(wanted):
        got = arrived[n]
        if clean_etag(claimed[n]) != got.etag:
            raise conflict(
                f"the ETag of part {n} of {name} is {claimed[n]!r} but the part stored has {got.etag!r}: the part "
                "changed or was corrupted on the way; upload it again and report the ETag its PUT answered"
            )
        expected = _expected_size(up, n)
        if expected is not None and got.size != expected:
            raise conflict(
                f"part {n} of {name} has {got.size} bytes but should have {expected} "
                f"({up.size} bytes in parts of {up.part_size}); upload it again"
            )
        parts.append(got)
    total = sum(p.size for p in parts)
    if up.size is not None and total != up.size:
        raise conflict(f"the parts of {name} add up to {total} bytes, not its {up.size}; upload them again")
    return parts


def _numbers(values: list[int]) -> str:
    shown = ", ".join(str(v) for v in values[:10])
    return shown + (f" and {len(values) - 10} more" if len(values) > 10 else "")


def _assemble(store: BlobStore, ready: _Ready, user_id: str, archive: bool) -> None:
    """Storage work of one upload: assemble its parts, verify its content, and move a file of the original
    client (sent by path, without a hash) to its content address."""
    up = ready.upload
    if ready.parts:
        ready.assembled = store.complete_upload(ready.ref, ready.parts, expect_blake3=up.blake3)
    else:  # assembled by an earlier request whose answer was lost
        size = store.object_size(up.object_key)
        ready.assembled = Assembled(size=size or 0, blake3=None)
    if up.staged and not archive:
        sha = ready.assembled.blake3 or _hash_object(store, up.object_key)
        target = blob_key(user_id, sha)
        local = store.local_path(up.object_key)
        if local is not None:
            store.put_file(target, local)
        else:
            store.copy_object(up.object_key, target)
            store.delete_object(up.object_key)
        ready.path_blake3 = sha


def _hash_object(store: BlobStore, key: str) -> str:
    digest = digests.new()
    with store.open_object(key) as stream:
        while chunk := stream.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def complete_parts(
    runtime: DatastoreRuntime, user: Principal, cluster_id: str, ref: str, body: CompletePresignedUrlsRequest
) -> None:
    """Check each object's reported parts (all there, sizes and ETags as stored), assemble them, record it.

    Objects completed before are skipped, so completing twice is harmless."""
    if len(body.objects) > MAX_OBJECTS_PER_REQUEST:
        raise bad_request(f"complete at most {MAX_OBJECTS_PER_REQUEST} objects per request, got {len(body.objects)}")
    with runtime.sessions.begin() as session:
        row = find_datastore(session, user, ref, cluster_id)
        store = runtime.store(row.cluster_id)
        uploads = {}
        for obj in body.objects:
            up = session.get(DatastoreUploadRow, obj.upload_id)
            if up is None or up.datastore_id != row.id:
                raise ApiError(404, f"upload {obj.upload_id!r} not found in {describe(row)}")
            if up.key != obj.key:
                raise bad_request(f"upload {obj.upload_id!r} is for {up.key!r}, not {obj.key!r}")
            uploads[up.id] = up
        if all(up.state == "completed" for up in uploads.values()):
            return
        require_uploading(row)
        user_id = row.user_id
        archive = row.source_type == DatastoreSourceType.COMPRESSED_FILE.value
        ready: list[_Ready] = []
        todo: list[tuple[DatastoreUploadRow, UploadRef, dict[int, str]]] = []
        for obj in body.objects:
            up = uploads[obj.upload_id]
            if up.state == "completed" or any(item[0].id == up.id for item in todo):
                continue
            claimed: dict[int, str] = {}
            for p in obj.urls:
                try:
                    claimed[int(p.part_number)] = p.etag
                except ValueError as exc:
                    raise bad_request(f"partNumber {p.part_number!r} of {up.key!r} is not a number") from exc
            todo.append((up, UploadRef(row.cluster_id, row.id, up.id, up.object_key, up.backend_upload_id), claimed))
        try:
            listed = concurrently(lambda item: store.list_parts(item[1]), todo)
            for (up, upload_ref, claimed), arrived in zip(todo, listed, strict=True):
                if not arrived:
                    size = store.object_size(up.object_key)
                    if size is not None and (up.size is None or size == up.size):
                        ready.append(_Ready(up, upload_ref, []))  # assembled already
                        continue
                ready.append(_Ready(up, upload_ref, _check_parts(up, claimed, arrived)))
        except StorageError as exc:
            raise storage_failed(exc) from exc
    try:
        concurrently(lambda item: _assemble(store, item, user_id, archive), ready)
    except ContentMismatch as exc:
        raise conflict(f"{exc}; upload it again") from exc
    except StorageError as exc:
        raise storage_failed(exc) from exc
    with runtime.sessions.begin() as session:
        row = session.get(DatastoreRow, row.id) or row
        blobs: list[tuple[str, int]] = []
        for item in ready:
            up = session.get(DatastoreUploadRow, item.upload.id)
            if up is None or up.state == "completed":
                continue
            size = item.assembled.size if item.assembled else 0
            if item.path_blake3 is not None:
                blobs.append((item.path_blake3, size))
                put_files(session, row, [(up.key, item.path_blake3, size, DEFAULT_MODE)])
            elif not up.staged and up.blake3:
                blobs.append((up.blake3, size))
            up.state, up.completed_at = "completed", utcnow()
        insert_blobs(session, row.cluster_id, row.user_id, blobs)


# ---------------------------------------------------------------------- manifest


def _path_hash(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()


def put_files(session: Session, row: DatastoreRow, files: list[tuple[str, str, int, int]]) -> None:
    """Add or replace manifest entries (path, blake3, size, mode) of a version."""
    by_hash = {_path_hash(path): (path, sha, size, mode) for path, sha, size, mode in files}
    by_hash = dict(sorted(by_hash.items()))  # in key order: concurrent batches cannot deadlock
    keys = list(by_hash)
    session.flush()  # a Core insert does not flush the session's pending changes first, as the ORM's does
    for start in range(0, len(keys), 500):
        session.execute(  # Core, like the insert: no loaded manifest entries to keep in step
            delete(_FILE_TABLE).where(
                _FILE_TABLE.c.datastore_id == row.id, _FILE_TABLE.c.path_hash.in_(keys[start : start + 500])
            )
        )
    if by_hash:
        _insert_many(
            session,
            insert(_FILE_TABLE),
            [
                {
                    "datastore_id": row.id,
                    "path_hash": h,
                    "path": path,
                    "user_id": row.user_id,
                    "cluster_id": row.cluster_id,
                    "blake3": sha,
                    "size": size,
                    "mode": mode,
                }
                for h, (path, sha, size, mode) in by_hash.items()
            ],
        )


def add_manifest(
    session: Session, user: Principal, cluster_id: str, ref: str, body: DatastoreManifestRequest
) -> DatastoreManifestResponse:
    """Add files (path -> content) to an uploading version; every content must be stored already."""
    row = find_datastore(session, user, ref, cluster_id)
    require_uploading(row)
    if row.source_type != DatastoreSourceType.EXPANDED_FILES.value:
        raise conflict(f"{describe(row)} is unpacked from its archive by the server: it takes no manifest")
    if len(body.files) > MAX_FILES_PER_REQUEST:
        raise bad_request(f"send at most {MAX_FILES_PER_REQUEST} files per request, got {len(body.files)}")
    entries = []
    for f in body.files:
        path = check_path(f.path)
        sha = check_sha(f.blake3, f"blake3 of {path!r}")
        if f.size_bytes < 0:
            raise bad_request(f"sizeBytes of {path!r} must not be negative")
        mode = DEFAULT_MODE if f.mode is None else f.mode
        if not 0 <= mode <= 0o7777:
            raise bad_request(f"mode of {path!r} must be permission bits between 0 and 0o7777, got {mode}")
        entries.append((path, sha, f.size_bytes, mode & 0o777))
    have = stored_blobs(session, row, (e[1] for e in entries))
    absent = [e for e in entries if have.get(e[1]) != e[2]]
    if absent:
        shown = ", ".join(f"{p!r} (blake3 {s[:12]}…, {n} bytes)" for p, s, n, _ in absent[:5])
        raise conflict(
            f"the content of {len(absent)} file(s) is not stored yet: {shown}; upload it first "
            "(missing-blobs says which content to upload)"
        )
    put_files(session, row, entries)
    session.flush()
    count, size = session.execute(
        select(func.count(), func.coalesce(func.sum(DatastoreFileRow.size), 0)).where(
            DatastoreFileRow.datastore_id == row.id
        )
    ).one()
    return DatastoreManifestResponse(file_count=int(count), size_bytes=int(size))


# ---------------------------------------------------------------------- completing the version


def _describe_open(store: BlobStore, row: DatastoreRow, uploads: list[DatastoreUploadRow]) -> str:
    shown = []
    for up in uploads[:5]:
        try:
            arrived = len(
                store.list_parts(UploadRef(row.cluster_id, row.id, up.id, up.object_key, up.backend_upload_id))
            )
            shown.append(f"{up.key!r} ({arrived} of {up.part_count} parts arrived)")
        except StorageError:
            shown.append(repr(up.key))
    more = f" and {len(uploads) - 5} more" if len(uploads) > 5 else ""
    return ", ".join(shown) + more


def _path_conflicts(paths: list[str]) -> str | None:
    """A path that is also used as a directory by another (``a`` and ``a/b``), if any."""
    names = set(paths)
    for path in paths:  # paths are checked already (no leading, doubled or trailing "/"): cut at each "/"
        cut = path.rfind("/")
        while cut > 0:
            if path[:cut] in names:
                return f"{path[:cut]!r} is both a file and the directory of {path!r}"
            cut = path.rfind("/", 0, cut)
    return None


def mark_complete(runtime: DatastoreRuntime, user: Principal, cluster_id: str, ref: str) -> DatastoreRow:
    """Make an uploaded version visible, atomically, once everything is verified; archives and remote
    sources go to ``optimizing`` first. Completing again is harmless."""
    with runtime.sessions.begin() as session:
        row = find_datastore(session, user, ref, cluster_id)
        if row.phase in (Phase.SUCCEEDED.value, Phase.OPTIMIZING.value):
            return row
        if row.phase == Phase.FAILED.value:
            raise conflict(f"{describe(row)} failed ({row.message}); upload the data again as a new version")
        kind = DatastoreSourceType(row.source_type)
        if kind in UPLOAD_SOURCES:
            store = runtime.store(row.cluster_id)
            uploads = session.scalars(select(DatastoreUploadRow).where(DatastoreUploadRow.datastore_id == row.id)).all()
            still_open = [u for u in uploads if u.state == "open"]
            if still_open:
                raise conflict(
                    f"cannot complete {describe(row)}: {len(still_open)} upload(s) are not complete: "
                    f"{_describe_open(store, row, still_open)}; upload their missing parts, report them with "
                    "presigned-urls/completed, then complete again"
                )
        if kind == DatastoreSourceType.EXPANDED_FILES:
            files = session.execute(
                select(DatastoreFileRow.path, DatastoreFileRow.blake3, DatastoreFileRow.size).where(
                    DatastoreFileRow.datastore_id == row.id
                )
            ).all()
            clash = _path_conflicts([f.path for f in files])
            if clash:
                raise bad_request(f"cannot complete {describe(row)}: {clash}; fix the manifest")
            have = stored_blobs(session, row, (f.blake3 for f in files))
            gone = [f.path for f in files if have.get(f.blake3) != f.size]
            if gone:
                raise conflict(
                    f"cannot complete {describe(row)}: the content of {len(gone)} file(s) is no longer stored "
                    f"(e.g. {gone[0]!r}); upload it again (missing-blobs says which), then complete"
                )
            row.size_bytes = sum(f.size for f in files)
            row.file_count = len(files)
            row.completed_at = utcnow()
            set_phase(
                session,
                row,
                Phase.SUCCEEDED,
                DatastoreState.CREATED,
                f"upload complete: {row.file_count} files, {row.size_bytes} bytes",
            )
            return row
        if kind == DatastoreSourceType.COMPRESSED_FILE:
            archives = [u for u in uploads if u.state == "completed"]
            if not archives:
                raise conflict(f"cannot complete {describe(row)}: no archive was uploaded; upload it first")
            message = "unpacking the uploaded archive"
        elif kind == DatastoreSourceType.HTTP_URL:
            message = f"downloading {row.source}"
        else:
            message = f"copying {row.source}"
        set_phase(session, row, Phase.OPTIMIZING, DatastoreState.CREATED, message)
    runtime.on_optimize(row.id)
    return row


def still_uploading(row: DatastoreRow) -> bool:
    """Whether the version is still taking uploads."""
    return row.phase == UPLOADING.value and row.state == DatastoreState.UPLOADING.value
