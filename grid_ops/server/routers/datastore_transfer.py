"""The signed URLs of the local storage backend, served by the control plane as S3 would serve its
presigned ones: PUT a part of an upload (answered with its ``ETag``), GET a stored object.

They carry their own authorisation (an expiry time and an HMAC token), not the user's credentials.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy import select

from grid_ops.server.datastore_tables import DatastorePackedBlobRow, DatastoreUploadRow
from grid_ops.server.datastores import DatastoreRuntime, runtime_of
from grid_ops.server.errors import ApiError
from grid_ops.server.storage.base import MAX_PART_SIZE, StorageError
from grid_ops.server.storage.local import LocalStore

_RANGE_CHUNK = 1024 * 1024

router = APIRouter(tags=["datastores"], include_in_schema=True)
_BUFFER = 4 * 1024 * 1024


def _local_store(runtime: DatastoreRuntime, cluster_id: str) -> LocalStore:
    store = runtime.store(cluster_id)
    if not isinstance(store, LocalStore):
        raise ApiError(404, f"cluster {cluster_id!r} keeps its datastores in {store.kind}: use the URLs it signs")
    return store


def _check_signature(expected: str, token: str, expires: int, what: str) -> None:
    if not token or not hmac.compare_digest(expected, token):
        raise ApiError(403, f"invalid signature on this {what} URL: use a URL the control plane signed, unchanged")
    if expires < time.time():
        raise ApiError(
            403,
            f"this {what} URL expired at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(expires))}; "
            "ask for a new one (presigned-urls with the same uploadId keeps the parts already sent)",
        )


def _check_upload(runtime: DatastoreRuntime, datastore_id: str, upload_id: str, number: int) -> None:
    with runtime.sessions() as session:
        up = session.get(DatastoreUploadRow, upload_id)
        if up is None or up.datastore_id != datastore_id:
            raise ApiError(404, f"upload {upload_id!r} not found; it was deleted or never started")
        if up.state != "open":
            raise ApiError(409, f"upload {upload_id!r} ({up.key!r}) is complete already: its parts cannot change")
        if not 1 <= number <= up.part_count:
            raise ApiError(400, f"upload {upload_id!r} has {up.part_count} parts; there is no part {number}")


@router.put("/v1/core/{cluster_id}/datastores/{datastore_id}/uploads/{upload_id}/parts/{part_number}")
async def put_part(
    cluster_id: str,
    datastore_id: str,
    upload_id: str,
    part_number: int,
    request: Request,
    expires: int = 0,
    token: str = "",
) -> Response:
    """Receive one part of an upload; the answer's ``ETag`` header is the MD5 of its bytes."""
    runtime = runtime_of(request)
    store = _local_store(runtime, cluster_id)
    _check_signature(store.part_token(upload_id, part_number, expires), token, expires, "upload")
    await run_in_threadpool(_check_upload, runtime, datastore_id, upload_id, part_number)
    try:
        writer = await run_in_threadpool(store.part_writer, upload_id, part_number)
    except StorageError as exc:
        raise ApiError(404, str(exc)) from exc
    buffer = bytearray()
    try:
        async for chunk in request.stream():
            buffer += chunk
            if writer.size + len(buffer) > MAX_PART_SIZE:
                raise ApiError(413, f"a part may have at most {MAX_PART_SIZE} bytes; upload in smaller parts")
            if len(buffer) >= _BUFFER:
                await run_in_threadpool(writer.write, bytes(buffer))
                buffer.clear()
        if buffer:
            await run_in_threadpool(writer.write, bytes(buffer))
        info = await run_in_threadpool(writer.commit)
    except BaseException:
        await run_in_threadpool(writer.discard)
        raise
    return Response(status_code=200, headers={"ETag": f'"{info.etag}"'})


@router.get("/v1/core/{cluster_id}/datastore-objects/{key:path}", response_model=None)
def get_object(
    cluster_id: str,
    key: str,
    request: Request,
    expires: int = 0,
    token: str = "",
    offset: int | None = None,
    length: int | None = None,
) -> FileResponse | StreamingResponse:
    """Download a stored object (a file's content) through a URL from the files listing; with ``offset`` and
    ``length`` (signed with the rest), that range of it: content kept inside a pack."""
    runtime = runtime_of(request)
    store = _local_store(runtime, cluster_id)
    _check_signature(store.object_token(key, expires, offset, length), token, expires, "download")
    try:
        path = store.local_path(key)
    except StorageError as exc:
        raise ApiError(404, str(exc)) from exc
    missing = f"object {key!r} is not stored (its datastore version may have been deleted)"
    if path is None or not path.is_file():
        raise ApiError(404, missing)
    if offset is None and length is None:
        return FileResponse(path, media_type="application/octet-stream")
    start, count = offset or 0, length or 0
    inside = start >= 0 and count >= 0 and start + count <= path.stat().st_size
    if not inside or not _recorded(runtime, cluster_id, key, start, count):
        raise ApiError(404, missing)  # a range given up since the URL was signed reads as zeros: not served
    return StreamingResponse(
        _read_range(str(path), start, count),
        media_type="application/octet-stream",
        headers={"Content-Length": str(count)},
    )


def _recorded(runtime: DatastoreRuntime, cluster_id: str, pack: str, offset: int, size: int) -> bool:
    """Whether a content is still recorded at this range of a pack."""
    with runtime.sessions() as session:
        found = session.scalar(
            select(DatastorePackedBlobRow.blake3)
            .where(
                DatastorePackedBlobRow.cluster_id == cluster_id,
                DatastorePackedBlobRow.pack == pack,
                DatastorePackedBlobRow.offset == offset,
                DatastorePackedBlobRow.size == size,
            )
            .limit(1)
        )
    return found is not None


def _read_range(path: str, offset: int, length: int) -> Iterator[bytes]:
    """``length`` bytes of a file from ``offset``, in chunks (run in a worker thread by the response)."""
    with open(path, "rb", buffering=0) as f:
        while length > 0:
            chunk = os.pread(f.fileno(), min(_RANGE_CHUNK, length), offset)
            if not chunk:
                return
            yield chunk
            offset += len(chunk)
            length -= len(chunk)
