"""The interface every datastore storage backend offers: multipart uploads through URLs clients PUT to,
and whole objects the control plane reads, writes and hands out download URLs for.

Keys are ``/``-separated paths relative to the backend's root (a directory, or a bucket and prefix).
Content lives at ``blobs/<owner>/<blake3[:2]>/<blake3>``; uploads that are not content blobs yet (an
archive to unpack, a file of the original client) are assembled at ``staging/<upload id>``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MIB = 1024 * 1024
MAX_PARTS = 10_000
MAX_PART_SIZE = 5 * 1024 * MIB


class StorageError(RuntimeError):
    """The backend failed (unreachable, refused, missing object); the message says which and why."""


class ContentMismatch(StorageError):
    """Assembled bytes do not hash to the BLAKE3 the client declared; nothing was stored."""


def blob_key(owner: str, blake3: str) -> str:
    """Where the content with this hash is stored for ``owner``."""
    return f"blobs/{owner}/{blake3[:2]}/{blake3}"


def staging_key(upload_id: str) -> str:
    """Where an upload that is not a content blob is assembled."""
    return f"staging/{upload_id}"


def clean_etag(etag: str) -> str:
    """An ETag without quotes, lowercase, so that the client's and the backend's compare equal."""
    return etag.strip().strip('"').lower()


@dataclass(frozen=True)
class UploadRef:
    """One multipart upload as the backend needs to know it."""

    cluster_id: str
    datastore_id: str
    upload_id: str
    object_key: str
    backend_upload_id: str


@dataclass(frozen=True)
class PartInfo:
    """A part that arrived: its number, size in bytes and ETag (the MD5 of its bytes, unquoted)."""

    number: int
    size: int
    etag: str


@dataclass(frozen=True)
class Assembled:
    """A completed upload: its size and, where the backend read the bytes, their BLAKE3."""

    size: int
    blake3: str | None


class BlobStore(ABC):
    """A cluster's datastore storage."""

    kind: str = "abstract"
    min_part_size: int = 1
    """The smallest size of a part that is not the last one."""

    @abstractmethod
    def describe(self) -> str:
        """Where the objects are, for messages (``/path`` or ``s3://bucket/prefix``)."""

    # ------------------------------------------------------------------ multipart uploads

    @abstractmethod
    def start_upload(self, object_key: str, upload_id: str, part_count: int) -> str:
        """Begin an upload of ``part_count`` parts to ``object_key``; returns the backend's id for it (a backend
        may take an object of one part in a single request, without a multipart upload: it returns "")."""

    @abstractmethod
    def part_urls(self, ref: UploadRef, part_numbers: list[int], expires_in: int, base_url: str) -> dict[int, str]:
        """URLs a client PUTs each part to (no other credentials needed), valid ``expires_in`` seconds."""

    @abstractmethod
    def list_parts(self, ref: UploadRef) -> dict[int, PartInfo]:
        """The parts that arrived so far, by part number."""

    @abstractmethod
    def complete_upload(self, ref: UploadRef, parts: list[PartInfo], expect_blake3: str | None = None) -> Assembled:
        """Assemble ``parts`` (in order) at ``ref.object_key``; completing again is harmless.

        Where the backend reads the bytes, a BLAKE3 other than ``expect_blake3`` raises ``ContentMismatch``
        and stores nothing."""

    @abstractmethod
    def abort_upload(self, ref: UploadRef) -> None:
        """Discard an upload's parts (nothing happens if it is gone already)."""

    # ------------------------------------------------------------------ whole objects

    @abstractmethod
    def object_size(self, key: str) -> int | None:
        """The size of the object at ``key``, or None if there is none."""

    @abstractmethod
    def open_object(self, key: str) -> BinaryIO:
        """A binary stream of the object at ``key`` (raises ``StorageError`` if it is missing)."""

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Store the local file ``path`` at ``key`` (the file may be moved away: callers pass a temporary)."""

    @abstractmethod
    def copy_object(self, source_key: str, key: str) -> None:
        """Copy an object within the backend."""

    @abstractmethod
    def delete_object(self, key: str) -> None:
        """Remove the object at ``key`` (nothing happens if there is none)."""

    @abstractmethod
    def download_url(self, key: str, expires_in: int, base_url: str) -> str:
        """A URL that GETs the object without other credentials, valid ``expires_in`` seconds."""

    def local_path(self, key: str) -> Path | None:
        """The object's file on this machine, where the backend is a local directory."""
        return None
