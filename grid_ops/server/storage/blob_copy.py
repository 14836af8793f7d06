"""Copy a file into a local store in one pass: read a chunk into a buffer, hash it, write it.

The hash is of the very bytes written (they pass through one private buffer), whatever happens to the
source meanwhile, and every byte is read from the source once. The copy is an unnamed file (``O_TMPFILE``)
in the store's folder: nobody sees it until it is linked at its content's address once complete and
checked, and a crash before that leaves nothing to clean up (the kernel frees it). Where ``O_TMPFILE`` or
``/proc/self/fd`` is missing, a temporary name in the store's ``tmp`` folder and a rename do the same.

No ``fsync``: like a plain file copy, the bytes are in the page cache when the blob is linked and written
back by the kernel; a killed control plane loses nothing, a power cut may (see docs/performance.md).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import threading
import time
from pathlib import Path

CHUNK = 256 * 1024  # fits the CPU's L2 cache: the hash and the write read the buffer from there
_buffers = threading.local()
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT}


def _buffer() -> memoryview:
    """This thread's reused copy buffer."""
    view: memoryview | None = getattr(_buffers, "view", None)
    if view is None:
        view = _buffers.view = memoryview(bytearray(CHUNK))
    return view


class TempBlob:
    """A complete copy not yet visible in the store: linked at its address by ``keep``, or ``discard``-ed."""

    def __init__(self, fd: int, named: Path | None) -> None:
        self.fd = fd
        self.named = named  # None: an unnamed O_TMPFILE file

    def keep(self, target: Path, size: int) -> None:
        """Make the copy visible at ``target`` (a content address), unless that content is there already."""
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if self.named is None:
                try:
                    _link(self.fd, target)
                    return
                except FileExistsError:
                    pass
            else:
                with contextlib.suppress(FileNotFoundError):
                    if target.stat().st_size == size:
                        return
                os.replace(self.named, target)
                self.named = None
                return
            if target.stat().st_size != size:  # a damaged copy from before: replace it atomically
                spare = _temp_name(target.parent)
                _link(self.fd, spare)
                os.replace(spare, target)
        finally:
            self.discard()

    def discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.named is not None:
            with contextlib.suppress(FileNotFoundError):
                self.named.unlink()
            self.named = None


def _link(fd: int, target: Path) -> None:
    """Give the open file ``fd`` the name ``target`` (``FileExistsError`` if taken). With a folder's file
    descriptor ``os.link`` is ``linkat``, which follows ``/proc/self/fd/N`` to the open file itself."""
    folder = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.link(f"/proc/self/fd/{fd}", target.name, dst_dir_fd=folder, follow_symlinks=True)
    finally:
        os.close(folder)


def _temp_name(folder: Path) -> Path:
    return folder / f".tmp-{time.time_ns()}-{secrets.token_hex(6)}"


class BlobCopier:
    """Copies open files into unnamed temporary files of one folder, hashing them on the way."""

    def __init__(self, tmp_dir: Path) -> None:
        self.tmp_dir = tmp_dir
        self._unnamed = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")

    def _open(self) -> TempBlob:
        if self._unnamed:
            try:
                return TempBlob(os.open(self.tmp_dir, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o644), None)
            except OSError as exc:
                if exc.errno not in _NO_TMPFILE:
                    raise
                self._unnamed = False  # this file system cannot: named temporary files from now on
        named = _temp_name(self.tmp_dir)
        return TempBlob(os.open(named, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644), named)

    def copy(self, fd: int, size: int) -> tuple[TempBlob, int, str]:
        """Copy at most ``size`` bytes of the open file ``fd`` (fewer if it is shorter now) and hash them.
        Returns the copy, the bytes copied and their SHA-256."""
        blob = self._open()
        try:
            digest = hashlib.sha256()
            view = _buffer()
            copied = 0
            while copied < size:
                n = os.readv(fd, [view[: min(CHUNK, size - copied)]])
                if n == 0:  # the source became shorter
                    break
                chunk = view[:n]
                digest.update(chunk)
                written = 0
                while written < n:
                    written += os.write(blob.fd, chunk[written:])
                copied += n
            return blob, copied, digest.hexdigest()
        except BaseException:
            blob.discard()
            raise
