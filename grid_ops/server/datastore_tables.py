"""The datastore tables: versions, their files (the manifest), stored content, uploads, events, and the
versions runs mount.

A version is a manifest (path -> blake3, size, mode) over content stored once per owner and cluster by its
hash (``datastore_blobs``; ``datastore_packed_blobs`` for content kept inside a pack file), so versions that
share files share their bytes. Uploads in progress are rows
of ``datastore_uploads``; the parts themselves are tracked by the storage backend, as S3 does.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from grid_ops.server.models import Base

_BIG = BigInteger().with_variant(Integer, "sqlite")


class DatastoreRow(Base):
    """One version of a datastore: ``(user_id, name, version)`` is unique, deleted versions included, so a
    version number is never given twice."""

    __tablename__ = "datastores"
    __table_args__ = (
        Index("uq_datastores_user_name_version", "user_id", "name", "version", unique=True),
        Index(
            "uq_datastores_user_upload_token",
            "user_id",
            "upload_token",
            unique=True,
            sqlite_where=text("upload_token IS NOT NULL"),
            postgresql_where=text("upload_token IS NOT NULL"),
        ),
        Index("ix_datastores_user_cluster", "user_id", "cluster_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32))
    team: Mapped[str | None] = mapped_column(String(128))
    cluster_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(63))
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str | None] = mapped_column(Text)
    source_type: Mapped[str] = mapped_column(String(48))
    state: Mapped[str] = mapped_column(String(32))  # DatastoreState
    phase: Mapped[str] = mapped_column(String(56))  # DatastoreOptimizationStatus
    message: Mapped[str | None] = mapped_column(Text)
    upload_token: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(_BIG, default=0)
    file_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DatastoreFileRow(Base):
    """One file of a version: keyed by a hash of its path so that paths of any length fit the index."""

    __tablename__ = "datastore_files"
    __table_args__ = (Index("ix_datastore_files_sha", "user_id", "cluster_id", "blake3"),)

    datastore_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    path_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    user_id: Mapped[str] = mapped_column(String(32))
    cluster_id: Mapped[str] = mapped_column(String(64))
    blake3: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(_BIG)
    mode: Mapped[int] = mapped_column(Integer)


class DatastoreBlobRow(Base):
    """Content stored in a cluster's storage for one owner, by BLAKE3 (verified where the backend can)."""

    __tablename__ = "datastore_blobs"

    cluster_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    blake3: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(_BIG)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DatastorePackedBlobRow(Base):
    """Where content stored inside a pack is (local storage only): small files a same-host upload copies are
    appended to one pack file per request instead of a file each, since creating a file is what a copy of
    many small files spends most of its time on. Content without a row here is a file at its blob key."""

    __tablename__ = "datastore_packed_blobs"
    __table_args__ = (Index("ix_datastore_packed_blobs_pack", "cluster_id", "pack"),)

    cluster_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    blake3: Mapped[str] = mapped_column(String(64), primary_key=True)
    pack: Mapped[str] = mapped_column(String(160))  # its object key: packs/<owner>/<id>
    offset: Mapped[int] = mapped_column(_BIG)
    size: Mapped[int] = mapped_column(_BIG)


class DatastoreUploadRow(Base):
    """One multipart upload of one object: a content blob (``blake3`` set), a file by path (the original
    client) or an archive to unpack. ``object_key`` is where the backend assembles it."""

    __tablename__ = "datastore_uploads"
    __table_args__ = (Index("ix_datastore_uploads_ds", "datastore_id", "state"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    datastore_id: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(Text)
    blake3: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(_BIG)
    part_size: Mapped[int | None] = mapped_column(_BIG)
    part_count: Mapped[int] = mapped_column(Integer)
    object_key: Mapped[str] = mapped_column(Text)
    backend_upload_id: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))  # open | completed
    staged: Mapped[bool] = mapped_column(Boolean, default=False)  # assembled at object_key, not a blob
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DatastoreEventRow(Base):
    """One change of a version's phase or state, with its message."""

    __tablename__ = "datastore_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    datastore_id: Mapped[str] = mapped_column(String(32), index=True)
    phase: Mapped[str | None] = mapped_column(String(56))
    state: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RunDatastoreRow(Base):
    """The version a run mounts (pinned at create-run), so that a version in use is never deleted."""

    __tablename__ = "run_datastores"
    __table_args__ = (Index("ix_run_datastores_datastore", "datastore_id"),)

    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    datastore_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    mount_path: Mapped[str] = mapped_column(Text)
