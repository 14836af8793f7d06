"""Pack files of a local store: many small blobs appended to one file, each found by its offset and size.

Creating a file is what copying many small files costs most (a thousand small files took this machine
half of a same-host upload's CPU), so a same-host request appends the small files it copies to one pack
of its own, ``packs/<owner>/<id>``, and records where each content is (``datastore_packed_blobs``). A pack
is written by its request alone and never changed after; the bytes of content whose versions are all
deleted are freed by punching a hole over them, and the pack is removed with its last content. Content is
visible only once its row is committed, so a pack cut short by a crash holds nothing anyone reads.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import secrets
import threading

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_libc: list[ctypes.CDLL | None] = []


def pack_key(owner: str, pack_id: str) -> str:
    """The object key of one pack of ``owner``."""
    return f"packs/{owner}/{pack_id}"


class PackWriter:
    """Appends blobs to a new pack file, from several threads at once; the file is made at the first blob."""

    def __init__(self, root: str, owner: str) -> None:
        self.key = pack_key(owner, secrets.token_hex(12))
        self._path = os.path.join(root, *self.key.split("/"))
        self._lock = threading.Lock()
        self._fd = -1  # open while blobs are appended, -1 before and after
        self._made = False
        self._end = 0

    @property
    def used(self) -> bool:
        """Whether the pack file was made (a blob was appended)."""
        return self._made

    def append(self, data: bytes | bytearray | memoryview) -> int:
        """Write ``data`` at the end of the pack; returns its offset. Threads reserve their range under the
        lock and write outside it, so two copying threads write at once."""
        with self._lock:
            if not self._made:
                os.makedirs(os.path.dirname(self._path), exist_ok=True)
                self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
                self._made = True
            elif self._fd < 0:
                raise ValueError(f"pack {self.key} is closed")
            fd, offset = self._fd, self._end
            self._end += len(data)
        view = memoryview(data)
        written = 0
        while written < len(view):
            written += os.pwrite(fd, view[written:], offset + written)
        return offset

    def close(self) -> None:
        """Stop writing (the pack stays, for the rows that point into it)."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def discard(self) -> None:
        """Close and remove the pack: nothing recorded points into it."""
        self.close()
        if self._made:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)


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
