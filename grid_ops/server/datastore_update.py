"""``PUT /v1/core/{clusterId}/datastores/{id}`` (``Body6``): what may change on a datastore version.

A version is immutable once complete, and what identifies it never changes. So the one field an update may
change is ``spec.source`` of a version still uploading from a client's files (the free-text record of
where they came from); a version fetched by the server (``http(s)``, ``s3://``) fetches exactly its
source. Every other field may be left out or sent back unchanged (a client that PUTs back what it read
changes nothing); any difference is a 409 naming the field, and nothing is changed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from grid_ops.schemas import UpdateDatastoreRequest
from grid_ops.server.auth import Principal
from grid_ops.server.datastore_tables import DatastoreRow
from grid_ops.server.datastore_uploads import still_uploading
from grid_ops.server.datastores import UPLOAD_SOURCES, describe, find_datastore, phase_word
from grid_ops.server.datastores import datastore_view as view
from grid_ops.server.db import as_utc, utcnow
from grid_ops.server.errors import bad_request, conflict

MAX_SOURCE = 2048
_FIXED = {
    "cluster_id": ("spec.clusterId", "a datastore's versions live on the cluster they were created on"),
    "user_id": ("spec.userId", "a version belongs to the user who created it"),
    "version": ("spec.version", "the server assigns version numbers"),
    "source_type": ("spec.sourceType", "the kind of source is fixed when the version is created"),
    "size_mib": ("spec.sizeMib", "the size is what was uploaded"),
    "size_bytes": ("spec.sizeBytes", "the size is what was uploaded"),
    "file_count": ("spec.fileCount", "the files are what was uploaded"),
    "uploaded_at": ("spec.uploadedAt", "it records when the upload completed"),
    "team": ("spec.team", "a version belongs to its creator's team"),
    "upload_token": ("spec.uploadToken", "it identifies the request that created the version"),
}


def _same(current: object, wanted: object) -> bool:
    if isinstance(current, datetime) and isinstance(wanted, datetime):
        return as_utc(current) == as_utc(wanted)
    return current == wanted


def update_datastore(
    session: Session, user: Principal, cluster_id: str, ref: str, body: UpdateDatastoreRequest
) -> DatastoreRow:
    """Apply ``body`` to the caller's version ``ref`` under the rules of the module's docstring."""
    row = find_datastore(session, user, ref, cluster_id)
    if body.name is not None and body.name != row.name:
        raise conflict(
            f"{describe(row)} cannot be renamed to {body.name!r}: versions keep their name; upload the data "
            f"as a datastore of that name instead"
        )
    spec = body.spec
    if spec is None:
        return row
    if spec.fsx_spec:
        raise bad_request("spec.fsxSpec: this control plane offers no FSx file systems; leave it out")
    current = view(row).spec
    for field, (wire, why) in _FIXED.items():
        wanted = getattr(spec, field)
        have = getattr(current, field)
        if wanted is not None and not _same(have, wanted):
            raise conflict(
                f"{wire} of {describe(row)} cannot change ({why}): it is {have!r}, the request says {wanted!r}"
            )
    source = None if spec.source is None else spec.source.strip()
    if source is not None and source != (row.source or ""):
        if row.source_type not in {s.value for s in UPLOAD_SOURCES}:
            raise conflict(
                f"spec.source of {describe(row)} cannot change: the server fetched this version from "
                f"{row.source!r}; create a new version from the other source"
            )
        if not still_uploading(row):
            raise conflict(
                f"{describe(row)} is {phase_word(row.phase)} and immutable: its spec.source cannot change any more"
            )
        if len(source) > MAX_SOURCE:
            raise bad_request(f"spec.source may have at most {MAX_SOURCE} characters, got {len(source)}")
        row.source = source or None
        row.updated_at = utcnow()
    return row
