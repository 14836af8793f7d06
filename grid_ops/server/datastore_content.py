"""Where an owner's stored content is, for those who read it (mounts, file listings): the object at its
blob key, or, on local storage, a range of a pack file (``storage/packs.py``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from grid_ops.server.datastore_tables import DatastorePackedBlobRow
from grid_ops.server.storage.base import BlobStore, blob_key
from grid_ops.server.storage.local import LocalStore

_CHUNK = 500  # hashes per query


@dataclass(frozen=True)
class ContentAt:
    """One content's bytes: the whole object at ``key``, or ``size`` bytes at ``offset`` of it."""

    key: str
    offset: int | None = None
    size: int | None = None

    def url(self, store: BlobStore, expires_in: int, base_url: str) -> str:
        """A signed URL that GETs exactly the content."""
        if self.offset is not None and isinstance(store, LocalStore):
            return store.range_url(self.key, self.offset, self.size or 0, expires_in, base_url)
        return store.download_url(self.key, expires_in, base_url)

    def local_path(self, store: BlobStore) -> Path | None:
        """The file holding it on this machine (at ``offset`` inside a pack), where the storage is local."""
        return store.local_path(self.key)


def locate(
    session: Session, store: BlobStore, cluster_id: str, user_id: str, hashes: Iterable[str]
) -> dict[str, ContentAt]:
    """Where each of ``hashes`` of ``user_id`` is stored on ``cluster_id``."""
    wanted = sorted(set(hashes))
    found = {sha: ContentAt(blob_key(user_id, sha)) for sha in wanted}
    if not isinstance(store, LocalStore):  # packs are a local storage's
        return found
    for start in range(0, len(wanted), _CHUNK):
        rows = session.execute(
            select(
                DatastorePackedBlobRow.blake3,
                DatastorePackedBlobRow.pack,
                DatastorePackedBlobRow.offset,
                DatastorePackedBlobRow.size,
            ).where(
                DatastorePackedBlobRow.cluster_id == cluster_id,
                DatastorePackedBlobRow.user_id == user_id,
                DatastorePackedBlobRow.blake3.in_(wanted[start : start + _CHUNK]),
            )
        )
        for sha, pack, offset, size in rows:
            found[sha] = ContentAt(pack, offset, size)
    return found
