"""``/v1/core/{clusterId}/datastores``: create versions, upload (presigned URLs, parts, manifest,
completion), read, list, delete, events, and ``/v1/core/datastores/{id}/files`` for the files of a version.

``{id}`` is a version's id, ``name:version``, or ``name`` (its latest version that succeeded).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response
from sqlalchemy import func, select

from grid_ops.schemas import (
    CompletePresignedUrlsRequest,
    CreateDatastoreRequest,
    CreatePresignedUrlsRequest,
    CreatePresignedUrlsResponse,
    Datastore,
    DatastoreEvent,
    DatastoreFile,
    DatastoreManifestRequest,
    DatastoreManifestResponse,
    DatastoreOptimizationStatus,
    DatastoreState,
    DeleteResponse,
    ListDatastoreEventsResponse,
    ListDatastoreFilesResponse,
    ListDatastoresResponse,
    LocalFilesRequest,
    LocalFilesResponse,
    MissingBlobsRequest,
    MissingBlobsResponse,
    UpdateDatastoreRequest,
)
from grid_ops.server import datastore_uploads as uploads
from grid_ops.server.datastore_content import locate
from grid_ops.server.datastore_local_ingest import ingest_local_files
from grid_ops.server.datastore_mounts import refuse_if_in_use
from grid_ops.server.datastore_tables import DatastoreEventRow, DatastoreFileRow, DatastoreRow
from grid_ops.server.datastore_update import update_datastore
from grid_ops.server.datastores import (
    DOWNLOAD_URL_SECONDS,
    create_datastore,
    datastore_view,
    delete_datastore,
    describe,
    find_datastore,
    phase_word,
    runtime_of,
)
from grid_ops.server.db import as_utc
from grid_ops.server.errors import conflict
from grid_ops.server.lookup import check_cluster
from grid_ops.server.pagination import PageDep, encode
from grid_ops.server.query_params import split_values
from grid_ops.server.state import SessionDep, StateDep, UserDep, wire_response
from grid_ops.server.storage import StorageError

router = APIRouter(prefix="/v1/core/{cluster_id}/datastores", tags=["datastores"])
files_router = APIRouter(prefix="/v1/core/datastores", tags=["datastores"])


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.post("", response_model=Datastore)
def create(cluster_id: str, body: CreateDatastoreRequest, request: Request, user: UserDep) -> Response:
    """Create the next version of a datastore (1 for a new name), waiting for its upload."""
    runtime = runtime_of(request)
    runtime.store(cluster_id)  # a cluster whose storage cannot be opened takes no datastores
    return wire_response(datastore_view(create_datastore(runtime.sessions, runtime.config, user, cluster_id, body)))


@router.get("", response_model=ListDatastoresResponse)
async def list_datastores(
    cluster_id: str,
    state: StateDep,
    session: SessionDep,
    user: UserDep,
    page: PageDep,
    available: bool | None = None,
    names: Annotated[list[str] | None, Query()] = None,
    user_ids: Annotated[list[str] | None, Query(alias="userIds")] = None,
) -> Response:
    """The caller's versions on the cluster (``available``: only those that succeeded), by name and version."""
    check_cluster(state.config, cluster_id)
    size, offset = page.size, page.offset
    where = [DatastoreRow.user_id == user.id, DatastoreRow.cluster_id == cluster_id, DatastoreRow.deleted_at.is_(None)]
    if available:
        where.append(DatastoreRow.phase == DatastoreOptimizationStatus.SUCCEEDED.value)
    wanted = split_values(names)
    if wanted:
        where.append(DatastoreRow.name.in_(wanted))
    total = session.scalar(select(func.count()).select_from(DatastoreRow).where(*where)) or 0
    rows = session.scalars(
        select(DatastoreRow).where(*where).order_by(DatastoreRow.name, DatastoreRow.version).offset(offset).limit(size)
    ).all()
    nxt = offset + len(rows)
    return wire_response(
        ListDatastoresResponse(
            datastores=[datastore_view(r) for r in rows],
            next_page_token=encode(nxt) if nxt < total else None,
            total_size=str(total),
        )
    )


@router.get("/{ref}", response_model=Datastore)
async def get_datastore(cluster_id: str, ref: str, session: SessionDep, user: UserDep) -> Response:
    return wire_response(datastore_view(find_datastore(session, user, ref, cluster_id)))


@router.put("/{ref}", response_model=Datastore)
def update(cluster_id: str, ref: str, body: UpdateDatastoreRequest, request: Request, user: UserDep) -> Response:
    """Update a version (``Body6``): only ``spec.source`` of a version still uploading may change; any
    other difference is a 409 naming the field (versions are immutable once complete)."""
    with runtime_of(request).sessions.begin() as session:
        row = update_datastore(session, user, cluster_id, ref, body)
        return wire_response(datastore_view(row))


@router.delete("/{ref}", response_model=DeleteResponse)
def delete(
    cluster_id: str, ref: str, request: Request, state: StateDep, user: UserDep, background: BackgroundTasks
) -> Response:
    """Delete one version (``{id}`` or ``name:version``) and the content no other version of yours uses;
    a version that a run's unfinished experiments mount is a 409 naming the run."""
    runtime = runtime_of(request)
    with runtime.sessions.begin() as session:
        row = find_datastore(session, user, ref, cluster_id, need_version=True)
        refuse_if_in_use(session, row)
        cleanup = delete_datastore(session, runtime, row)
    background.add_task(cleanup.run)
    background.add_task(state.scheduler.drop_datastore, row.cluster_id, row.id)
    return wire_response(DeleteResponse())


@router.get("/{ref}/events", response_model=ListDatastoreEventsResponse)
async def events(cluster_id: str, ref: str, session: SessionDep, user: UserDep) -> Response:
    row = find_datastore(session, user, ref, cluster_id)
    rows = session.scalars(
        select(DatastoreEventRow).where(DatastoreEventRow.datastore_id == row.id).order_by(DatastoreEventRow.id)
    ).all()
    return wire_response(
        ListDatastoreEventsResponse(
            events=[
                DatastoreEvent(
                    id=f"{row.id}-{e.id}",
                    phase=DatastoreOptimizationStatus(e.phase) if e.phase else None,
                    desired_state=DatastoreState(e.state) if e.state else None,
                    message=e.message,
                    timestamp=as_utc(e.timestamp),
                )
                for e in rows
            ]
        )
    )


@router.post("/{ref}/missing-blobs", response_model=MissingBlobsResponse)
def missing_blobs(cluster_id: str, ref: str, body: MissingBlobsRequest, session: SessionDep, user: UserDep) -> Response:
    """Addition: which of the given contents (blake3, size) you have not stored on this cluster yet."""
    return wire_response(uploads.missing_blobs(session, user, cluster_id, ref, body))


@router.post("/{ref}/presigned-urls", response_model=CreatePresignedUrlsResponse)
def presigned_urls(
    cluster_id: str, ref: str, body: CreatePresignedUrlsRequest, request: Request, session: SessionDep, user: UserDep
) -> Response:
    """Start multipart uploads (or continue them: pass ``uploadId``) and sign a URL for every part."""
    return wire_response(uploads.presign(session, runtime_of(request), user, cluster_id, ref, body, _base_url(request)))


@router.post("/{ref}/presigned-urls/completed")
def presigned_urls_completed(
    cluster_id: str, ref: str, body: CompletePresignedUrlsRequest, request: Request, user: UserDep
) -> Response:
    """Report the parts (numbers and ETags) of uploads; each is checked against the storage and assembled."""
    uploads.complete_parts(runtime_of(request), user, cluster_id, ref, body)
    return Response(content="{}", media_type="application/json")


@router.post("/{ref}/local-files", response_model=LocalFilesResponse)
def local_files(cluster_id: str, ref: str, body: LocalFilesRequest, request: Request, user: UserDep) -> Response:
    """Addition: same-host upload: the control plane copies these files from its own disk into the version
    (where its config allows it, from this machine only)."""
    peer = request.client.host if request.client else None
    return wire_response(ingest_local_files(runtime_of(request), user, cluster_id, ref, body, peer))


@router.post("/{ref}/manifest", response_model=DatastoreManifestResponse)
def manifest(cluster_id: str, ref: str, body: DatastoreManifestRequest, session: SessionDep, user: UserDep) -> Response:
    """Addition: add files (path, blake3, size, mode) whose content is stored to an uploading version."""
    return wire_response(uploads.add_manifest(session, user, cluster_id, ref, body))


@router.post("/{ref}/completed", response_model=Datastore)
def completed(cluster_id: str, ref: str, request: Request, user: UserDep) -> Response:
    """Mark the upload complete: the version becomes visible (or starts optimizing) once verified."""
    return wire_response(datastore_view(uploads.mark_complete(runtime_of(request), user, cluster_id, ref)))


@files_router.get("/{ref}/files", response_model=ListDatastoreFilesResponse)
def files(
    ref: str,
    request: Request,
    session: SessionDep,
    user: UserDep,
    page: PageDep,
) -> Response:
    """The files of a version that succeeded, by path, each with a signed URL that downloads it."""
    row = find_datastore(session, user, ref)
    if row.phase != DatastoreOptimizationStatus.SUCCEEDED.value:
        raise conflict(f"{describe(row)} is {phase_word(row.phase)}: its files are visible once it has succeeded")
    size, offset = page.size, page.offset
    rows = session.scalars(
        select(DatastoreFileRow)
        .where(DatastoreFileRow.datastore_id == row.id)
        .order_by(DatastoreFileRow.path)
        .offset(offset)
        .limit(size)
    ).all()
    store = runtime_of(request).store(row.cluster_id)
    base = _base_url(request)
    try:
        where = locate(session, store, row.cluster_id, row.user_id, (f.blake3 for f in rows))
        out = [
            DatastoreFile(
                filename=f.path,
                last_modified=as_utc(row.completed_at),
                size_bytes=str(f.size),
                url=where[f.blake3].url(store, DOWNLOAD_URL_SECONDS, base),
                blake3=f.blake3,
                mode=f.mode,
            )
            for f in rows
        ]
    except StorageError as exc:
        raise uploads.storage_failed(exc) from exc
    nxt = offset + len(rows)
    return wire_response(
        ListDatastoreFilesResponse(files=out, next_page_token=encode(nxt) if nxt < row.file_count else None)
    )
