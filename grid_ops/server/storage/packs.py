"""Pack files of a local store: many small blobs appended to one file, each found by its offset and size.

Creating a file is what copying many small files costs most (a thousand small files took this machine
half of a same-host upload's CPU), so a same-host request appends the small files it copies to one pack
of its own, ``packs/<owner>/<id>``, and records where each content is (``datastore_packed_blobs``). A pack
is written by its request alone, unnamed until just before its rows are committed, and never changed
after; the bytes of content whose versions are all deleted are freed by punching a hole over them (whole
blocks: a content smaller than a block frees its space with its neighbours or with the pack), and the pack
is removed with its last content. Content is read only through its committed row.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import secrets
import threading
from collections.abc import Iterable

from grid_ops.server.storage.blob_copy import BlobCopier, link_open_file

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_libc: list[ctypes.CDLL | None] = []


def pack_key(owner: str, pack_id: str) -> str:
    """The object key of one pack of ``owner``."""
    return f"packs/{owner}/{pack_id}"


class PackWriter:
    """Appends blobs to a new pack file, from several threads at once. The file is made at the first blob,
    unnamed (``O_TMPFILE``, as the store's other copies) until ``publish`` links it at its key just before
    its rows are committed, so a process killed while copying leaves nothing behind."""

    def __init__(self, root: str, owner: str, copier: BlobCopier) -> None:
        self.key = pack_key(owner, secrets.token_hex(12))
        self._path = os.path.join(root, *self.key.split("/"))
        self._copier = copier
        self._lock = threading.Lock()
        self._fd = -1  # open while blobs are appended, -1 before and after
        self._named: str | None = None  # a temporary name, where the system has no unnamed files
        self._made = False
        self._published = False
        self._end = 0
        self._offsets: dict[str, int] = {}  # by digest: the same content twice in a request is kept once

    @property
    def used(self) -> bool:
        """Whether the pack file was made (a blob was appended)."""
        return self._made

    def append(self, digest: str, data: bytes | bytearray | memoryview) -> int:
        """Write content ``digest`` at the end of the pack (unless the pack has it already); returns its
        offset. Threads reserve their range under the lock and write outside it, so two write at once."""
        with self._lock:
            if digest in self._offsets:
                return self._offsets[digest]
            if not self._made:
                folder = os.path.dirname(self._path)
                self._copier.make_folder(folder)
                self._fd, self._named = self._copier.new_file(folder)
                self._made = True
            elif self._fd < 0:
                raise ValueError(f"pack {self.key} is closed")
            fd, offset = self._fd, self._end
            self._end += len(data)
            self._offsets[digest] = offset
        view = memoryview(data)
        written = 0
        while written < len(view):
            written += os.pwrite(fd, view[written:], offset + written)
        return offset

    def publish(self) -> None:
        """Give the pack its name, once every blob is written (before its rows are committed)."""
        with self._lock:
            if not self._made or self._published:
                return
            if self._named is None:
                link_open_file(self._fd, os.path.dirname(self._path), os.path.basename(self._path))
            else:
                os.replace(self._named, self._path)
                self._named = None
            self._published = True

    def close(self) -> None:
        """Stop writing (a published pack stays, for the rows that point into it)."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def discard(self) -> None:
        """Close and remove the pack: nothing recorded points into it."""
        self.close()
        for path in (self._named, self._path if self._published else None):
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        self._named = None
        self._published = False


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """(offset, size) ranges of one pack with the adjacent ones joined: a hole frees only whole blocks, so
    many small neighbouring contents are freed together or not at all."""
    out: list[tuple[int, int]] = []
    for offset, size in sorted(ranges):
        if out and offset <= out[-1][0] + out[-1][1]:
            start, length = out[-1]
            out[-1] = (start, max(length, offset + size - start))
        else:
            out.append((offset, size))
    return out


def punch_hole(path: str, offset: int, length: int) -> bool:
    """Free the disk blocks of ``length`` bytes at ``offset`` of a file, its size unchanged (reads there give
    zeros). False where the system or file system cannot; the bytes then stay until the file is removed."""
    if length <= 0:
        return True
    if not _libc:
        name = ctypes.util.find_library("c")
        found = ctypes.CDLL(name, use_errno=True) if name else None
        if found is not None and hasattr(found, "fallocate"):
            found.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
            found.fallocate.restype = ctypes.c_int
        else:
            found = None
        _libc.append(found)
    libc = _libc[0]
    if libc is None:
        return False
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        mode = _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE
        return int(libc.fallocate(fd, mode, offset, length)) == 0
    finally:
        os.close(fd)
