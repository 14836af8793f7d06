"""Datastore storage in a directory of the control plane's machine.

The control plane serves its own signed URLs for it: clients PUT parts to
``/v1/core/{cluster}/datastores/{id}/uploads/{upload}/parts/{n}`` and GET objects from
``/v1/core/{cluster}/datastore-objects/{key}``, each with an expiry time and an HMAC token, as S3's
presigned URLs would. Parts are files ``uploads/<upload>/<n>.<md5>``; completing concatenates them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

from grid_ops import digests
from grid_ops.server.storage.base import Assembled, BlobStore, ContentMismatch, PartInfo, StorageError, UploadRef
from grid_ops.server.storage.blob_copy import BlobCopier, TempBlob
from grid_ops.server.storage.packs import PackWriter, punch_hole

_PART_FILE = re.compile(r"^(\d+)\.([0-9a-f]{32})$")
_CHUNK = 4 * 1024 * 1024

Signer = Callable[[str, str], str]


class PartWriter:
    """Receives one part's bytes into a temporary file, hashing them, and puts it in place on ``commit``."""

    def __init__(self, folder: Path, number: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._folder = folder
        self._number = number
        self._tmp = folder / f".tmp-{number}-{secrets.token_hex(6)}"
        self._file = self._tmp.open("wb")
        self._md5 = hashlib.md5()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._md5.update(data)
        self._file.write(data)
        self.size += len(data)

    def commit(self) -> PartInfo:
        """Keep the part (replacing an earlier copy of the same part number) and describe it."""
        self._file.close()
        etag = self._md5.hexdigest()
        final = self._folder / f"{self._number}.{etag}"
        os.replace(self._tmp, final)
        for other in self._folder.glob(f"{self._number}.*"):
            if other != final:
                with contextlib.suppress(FileNotFoundError):
                    other.unlink()
        return PartInfo(number=self._number, size=self.size, etag=etag)

    def discard(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()


class LocalStore(BlobStore):
    """Objects as files under ``root``; signed URLs served by the control plane itself."""

    kind = "local"
    min_part_size = 1

    def __init__(self, root: Path, cluster_id: str, sign: Signer) -> None:
        self.root = root.absolute()
        self._root = str(self.root)
        self.cluster_id = cluster_id
        self._sign = sign
        for sub in ("blobs", "staging", "uploads", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._copier = BlobCopier(self.root / "tmp")

    def describe(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        """The file of ``key``, checked by its text alone: the store holds only the folders and regular files
        the server writes there, so no link inside it can lead out (and no lookup per path component is
        needed, which made deleting a large version slow)."""
        parts = key.split("/")
        if "\x00" in key or not key or any(part in ("", ".", "..") for part in parts):
            raise StorageError(f"object key {key!r} points outside the storage directory")
        return self.root.joinpath(*parts)

    def _parts_dir(self, upload_id: str) -> Path:
        if not re.fullmatch(r"[0-9A-Z]{26}", upload_id):
            raise StorageError(f"invalid upload id {upload_id!r}")
        return self.root / "uploads" / upload_id

    def _temp(self) -> Path:
        return self.root / "tmp" / f"{time.time_ns()}-{secrets.token_hex(6)}"

    # ------------------------------------------------------------------ signing

    def part_token(self, upload_id: str, number: int, expires: int) -> str:
        return self._sign("datastore-part", f"{upload_id}:{number}:{expires}")

    def object_token(self, key: str, expires: int, offset: int | None = None, length: int | None = None) -> str:
        """The signature of a download URL: of the whole object, or of ``length`` bytes at ``offset`` of it."""
        signed = f"{self.cluster_id}:{key}:{expires}"
        if offset is not None or length is not None:
            signed += f":{offset}:{length}"
        return self._sign("datastore-object", signed)

    # ------------------------------------------------------------------ multipart uploads

    def start_upload(self, object_key: str, upload_id: str, part_count: int) -> str:
        self._parts_dir(upload_id).mkdir(parents=True, exist_ok=True)
        return upload_id

    def part_urls(self, ref: UploadRef, part_numbers: list[int], expires_in: int, base_url: str) -> dict[int, str]:
        expires = int(time.time()) + expires_in
        base = base_url.rstrip("/")
        path = f"/v1/core/{quote(ref.cluster_id, safe='')}/datastores/{ref.datastore_id}/uploads/{ref.upload_id}/parts"
        return {
            n: f"{base}{path}/{n}?"
            + urlencode({"expires": expires, "token": self.part_token(ref.upload_id, n, expires)})
            for n in part_numbers
        }

    def part_writer(self, upload_id: str, number: int) -> PartWriter:
        """Where the control plane writes a part a client PUTs."""
        return PartWriter(self._parts_dir(upload_id), number)

    def list_parts(self, ref: UploadRef) -> dict[int, PartInfo]:
        folder = self._parts_dir(ref.upload_id)
        found: dict[int, tuple[int, PartInfo]] = {}
        if not folder.is_dir():
            return {}
        for entry in os.scandir(folder):
            m = _PART_FILE.match(entry.name)
            if not m:
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            number = int(m.group(1))
            if number not in found or st.st_mtime_ns > found[number][0]:
                found[number] = (st.st_mtime_ns, PartInfo(number=number, size=st.st_size, etag=m.group(2)))
        return {n: info for n, (_, info) in found.items()}

    def complete_upload(self, ref: UploadRef, parts: list[PartInfo], expect_blake3: str | None = None) -> Assembled:
        target = self._path(ref.object_key)
        folder = self._parts_dir(ref.upload_id)
        files = [folder / f"{p.number}.{p.etag}" for p in parts]
        if not all(f.is_file() for f in files):
            if target.is_file() and not any(folder.glob("*.*")):  # assembled by an earlier call
                return Assembled(size=target.stat().st_size, blake3=digests.of_file(target))
            raise StorageError(f"parts of upload {ref.upload_id} are missing from {folder}")
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = digests.new()
        if len(files) == 1:  # the common case: hash it, then move it into place without copying
            source = files[0]
            with source.open("rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
            size = source.stat().st_size
        else:
            source = self._temp()
            size = 0
            with source.open("wb") as out:
                for part in files:
                    with part.open("rb") as f:
                        while chunk := f.read(_CHUNK):
                            digest.update(chunk)
                            out.write(chunk)
                            size += len(chunk)
        sha = digest.hexdigest()
        if expect_blake3 is not None and sha != expect_blake3:
            if len(files) > 1:
                source.unlink()
            raise ContentMismatch(
                f"the {size} bytes uploaded for upload {ref.upload_id} have blake3 {sha}, not the declared "
                f"{expect_blake3}"
            )
        os.replace(source, target)
        shutil.rmtree(folder, ignore_errors=True)
        return Assembled(size=size, blake3=sha)

    def copy_in(self, fd: int, size: int) -> tuple[TempBlob, int, str]:
        """Copy ``size`` bytes of the open file ``fd`` into a copy of the store nobody sees yet and hash what
        it holds (``blob_copy.py``). Returns the copy (for ``keep_blob``), the bytes copied and their BLAKE3."""
        return self._copier.copy(fd, size)

    def keep_blob(self, copy: TempBlob, key: str, size: int) -> None:
        """Make a copy of ``copy_in`` visible at ``key`` (a content blob, named by the server: no lookup of
        links needed), or drop it when that content is stored already."""
        copy.keep(os.path.join(self._root, key), size)

    def abort_upload(self, ref: UploadRef) -> None:
        shutil.rmtree(self._parts_dir(ref.upload_id), ignore_errors=True)

    # ------------------------------------------------------------------ whole objects

    def object_size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def open_object(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError as exc:
            raise StorageError(f"object {key!r} is missing from {self.root}") from exc

    def put_file(self, key: str, path: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, target)
        except OSError:  # another file system: copy, then swap in atomically
            tmp = self._temp()
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)

    def copy_object(self, source_key: str, key: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._temp()
        shutil.copyfile(self._path(source_key), tmp)
        os.replace(tmp, target)

    def delete_object(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def download_url(self, key: str, expires_in: int, base_url: str) -> str:
        expires = int(time.time()) + expires_in
        query = urlencode({"expires": expires, "token": self.object_token(key, expires)})
        return f"{base_url.rstrip('/')}/v1/core/{quote(self.cluster_id, safe='')}/datastore-objects/{key}?{query}"

    def range_url(self, key: str, offset: int, length: int, expires_in: int, base_url: str) -> str:
        """A URL that GETs ``length`` bytes at ``offset`` of the object (content inside a pack)."""
        expires = int(time.time()) + expires_in
        token = self.object_token(key, expires, offset, length)
        query = urlencode({"offset": offset, "length": length, "expires": expires, "token": token})
        return f"{base_url.rstrip('/')}/v1/core/{quote(self.cluster_id, safe='')}/datastore-objects/{key}?{query}"

    def new_pack(self, owner: str) -> PackWriter:
        """A pack for the small files of one request of ``owner`` (``packs.py``)."""
        return PackWriter(self._root, owner, self._copier)

    def punch_hole(self, key: str, offset: int, length: int) -> None:
        """Free the space of content inside a pack that no version uses any more."""
        punch_hole(str(self._path(key)), offset, length)

    def local_path(self, key: str) -> Path | None:
        return self._path(key)
