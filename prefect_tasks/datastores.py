"""Tasks that upload a directory, a file, an ``http(s)`` URL or an ``s3://`` prefix as the next version of a
datastore, for a run to mount (pass the result to ``start_run(datastore=...)``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from grid_ops.sdk.datastore import Datastore
from prefect_tasks.context import log_info
from prefect_tasks.credentials import GridCredentials


def datastore_summary(datastore: Datastore) -> dict[str, Any]:
    """The small JSON result of an uploaded version: name, version, ``ref`` (``name:version``), size."""
    return {
        "name": datastore.name,
        "version": datastore.version,
        "ref": f"{datastore.name}:{datastore.version}",
        "status": datastore.snapshot_status,
        "size": datastore.size,
        "file_count": datastore.file_count,
        "cluster_id": datastore.cluster_id,
    }


def _upload(
    source: str | Path, name: str | None, credentials: GridCredentials | None, compression: bool
) -> dict[str, Any]:
    creds = credentials or GridCredentials()
    datastore = Datastore(
        name=name, source=source, compression=compression, cluster_id=creds.cluster_id, client=creds.get_client()
    )
    datastore.upload()
    result = datastore_summary(datastore)
    stats = datastore.last_upload
    sent = f", {stats.bytes_sent} bytes sent" if stats is not None else ""
    log_info(
        "uploaded %s as datastore %s (%d files, %d bytes%s)",
        source,
        result["ref"],
        result["file_count"],
        result["size"],
        sent,
    )
    return result


@task(cache_policy=NO_CACHE)
def upload_datastore(
    source: str | Path,
    name: str | None = None,
    credentials: GridCredentials | None = None,
    compression: bool = False,
) -> dict[str, Any]:
    """Upload ``source`` as the next version of datastore ``name`` (default: the source's last path part)
    and return ``{"name", "version", "ref", "status", "size", "file_count", "cluster_id"}`` once the
    version is complete. Files already stored are not sent again, and a retried upload resumes."""
    return _upload(source, name, credentials, compression)


@task(cache_policy=NO_CACHE)
async def upload_datastore_async(
    source: str | Path,
    name: str | None = None,
    credentials: GridCredentials | None = None,
    compression: bool = False,
) -> dict[str, Any]:
    """Async form of ``upload_datastore`` (the upload runs in a worker thread)."""
    return await asyncio.to_thread(_upload, source, name, credentials, compression)
