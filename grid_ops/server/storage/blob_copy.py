"""Copy a file into a local store, hashing the very bytes stored, whatever happens to the source meanwhile.

A small file (up to ``SMALL`` bytes) is read once into memory, hashed there and written from there, so its
address is known before it is written. A larger one is copied by the kernel (``copy_file_range``: the
bytes never pass through Python, and file systems that share extents make it a reflink) into the new file,
then hashed through a memory map of that file, still in the page cache: nobody else can write to it, and
neither step holds the GIL, so the threads of a request copy in parallel with the server's other work.

A new file is unnamed (``O_TMPFILE``): nobody sees it until it is linked at its content's address once
complete and checked, and a crash before that leaves nothing to clean up (the kernel frees it). A small
file's is made in the folder of its address (a link within one folder costs half of one across folders on
ext4, which counts with a thousand small files); a large one's in the store's ``tmp`` folder. Where
``O_TMPFILE`` or ``/proc/self/fd`` is missing, a temporary name and a rename do the same; where the kernel
cannot copy between the two files, the bytes go through a buffer.

No ``fsync``: like a plain file copy, the bytes are in the page cache when the blob is linked and written
back by the kernel; a killed control plane loses nothing, a power cut may (see docs/performance.md).
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import secrets
import time
from pathlib import Path

from grid_ops import digests

CHUNK = 4 * 1024 * 1024  # read at once where the kernel cannot copy
SMALL = 1024 * 1024  # files up to this size go through memory
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT}
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF, errno.EPERM}


class TempBlob:
    """A complete copy not yet visible in the store: linked at its address by ``keep``, or ``discard``-ed.
    A small one is still in memory (``data``) and gets its file in ``keep``."""

    def __init__(self, copier: BlobCopier, fd: int, named: str | None, data: bytearray | None = None) -> None:
        self.copier = copier
        self.fd = fd
        self.named = named  # None: an unnamed O_TMPFILE file (or none yet)
        self.data = data

    def keep(self, target: str | os.PathLike[str], size: int) -> None:
        """Make the copy visible at ``target`` (a content address), unless that content is there already.
        Paths are plain strings here: parsing ``pathlib`` paths held the GIL longer than a small file's copy."""
        path = os.fspath(target)
        folder, name = os.path.split(path)
        try:
            self.copier.make_folder(folder)
            try:
                self._keep(path, folder, name, size)
            except FileNotFoundError:  # the folder was removed since it was made: make it again
                self.copier.make_folder(folder, known=False)
                self._keep(path, folder, name, size)
        finally:
            self.discard()

    def _keep(self, path: str, folder: str, name: str, size: int) -> None:
        """``keep`` once its folder exists. After a ``FileNotFoundError`` (its folder removed meanwhile) it
        can run again: what it did before stays valid, except a named temporary file that was in the
        removed folder, and then it fails again, leaving nothing behind."""
        if self.data is not None:
            with contextlib.suppress(FileNotFoundError):
                if os.stat(path).st_size == size:  # stored already (a client may not know it has it)
                    return
            self.fd, self.named = self.copier.new_file(folder)
            _write_all(self.fd, memoryview(self.data))
            self.data = None
        if self.named is None:
            try:
                link_open_file(self.fd, folder, name)
                return
            except FileExistsError:
                pass
        else:
            with contextlib.suppress(FileNotFoundError):
                if os.stat(path).st_size == size:
                    return
            os.replace(self.named, path)
            self.named = None
            return
        if os.stat(path).st_size != size:  # a damaged copy from before: replace it atomically
            spare = _temp_name(folder)
            link_open_file(self.fd, folder, os.path.basename(spare))
            os.replace(spare, path)

    def discard(self) -> None:
        self.data = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.named is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.named)
            self.named = None


def link_open_file(fd: int, folder: str, name: str) -> None:
    """Give the open file ``fd`` the name ``name`` in ``folder`` (``FileExistsError`` if taken). With a
    folder's file descriptor ``os.link`` is ``linkat``, which follows ``/proc/self/fd/N`` to the open file."""
    folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=folder_fd, follow_symlinks=True)
    finally:
        os.close(folder_fd)


def _temp_name(folder: str | os.PathLike[str]) -> str:
    return os.path.join(folder, f".tmp-{time.time_ns()}-{secrets.token_hex(6)}")


def _write_all(fd: int, data: memoryview) -> None:
    written = 0
    while written < len(data):
        written += os.write(fd, data[written:])


def _read_up_to(fd: int, size: int) -> bytearray:
    """At most ``size`` bytes of ``fd`` (fewer if it is shorter now), in one buffer of their own."""
    data = bytearray(size)
    view = memoryview(data)
    got = 0
    while got < size and (n := os.readv(fd, [view[got:]])):
        got += n
    del view
    del data[got:]
    return data


def _kernel_copy(source: int, target: int, size: int) -> int:
    """Up to ``size`` bytes of ``source`` copied into ``target`` by the kernel (``copy_file_range``, from
    both files' positions; fewer if the source is shorter now), or -1 when it cannot copy between these two
    files (another file system, say). The thread does not hold the GIL meanwhile."""
    copied = 0
    while copied < size:
        try:
            n = os.copy_file_range(source, target, size - copied)
        except OSError as exc:
            if copied == 0 and exc.errno in _NO_KERNEL_COPY:
                return -1
            raise
        if n == 0:
            if copied == 0:  # nothing at all: some file systems copy nothing this way, so through memory
                return -1
            break  # the source became shorter
        copied += n
    return copied


def _hash_file(fd: int, size: int) -> str:
    """The digest of the first ``size`` bytes of a copy nobody else can write to, read through a memory
    map: BLAKE3 reads the pages where they are, without the GIL."""
    if size == 0:
        return digests.of_bytes(b"")
    with mmap.mmap(fd, size, prot=mmap.PROT_READ) as view:
        return digests.of_bytes(view)


def _copy_through_memory(source: int, target: int, size: int) -> tuple[int, str]:
    """Copy up to ``size`` bytes through memory, hashing them; returns the bytes copied and their digest."""
    digest = digests.new()
    copied = 0
    while copied < size:
        data = _read_up_to(source, min(CHUNK, size - copied))
        if not data:  # the source became shorter
            break
        _write_all(target, memoryview(data))
        digest.update(data)
        copied += len(data)
    return copied, digest.hexdigest()


class BlobCopier:
    """Copies open files into new, unnamed files of a local store, hashing what they hold."""

    def __init__(self, tmp_dir: Path) -> None:
        self.tmp_dir = tmp_dir
        self._unnamed = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
        self.kernel_copies = hasattr(os, "copy_file_range")
        self._folders: set[str] = set()  # made (or found) already: a thousand files need no thousand checks

    def make_folder(self, folder: str, known: bool = True) -> None:
        """Make ``folder`` unless it was made before (``known=False``: make it whatever was noted)."""
        if known and folder in self._folders:
            return
        os.makedirs(folder, exist_ok=True)
        self._folders.add(folder)

    def new_file(self, folder: str | os.PathLike[str]) -> tuple[int, str | None]:
        """A new file in ``folder``, open for reading and writing: unnamed where the system allows it."""
        if self._unnamed:
            try:
                return os.open(folder, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o644), None
            except OSError as exc:
                if exc.errno not in _NO_TMPFILE or (exc.errno == errno.ENOENT and not os.path.isdir(folder)):
                    raise  # not a file system without O_TMPFILE: e.g. no such folder (FileNotFoundError)
                self._unnamed = False  # this file system cannot: named temporary files from now on
        named = _temp_name(folder)
        return os.open(named, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644), named

    def copy(self, fd: int, size: int) -> tuple[TempBlob, int, str]:
        """Copy at most ``size`` bytes of the open file ``fd`` (fewer if it is shorter now) and hash them.
        Returns the copy, the bytes copied and their digest."""
        if size <= SMALL:
            data = _read_up_to(fd, size)
            return TempBlob(self, -1, None, data), len(data), digests.of_bytes(data)
        blob = TempBlob(self, *self.new_file(self.tmp_dir))
        try:
            copied = _kernel_copy(fd, blob.fd, size) if self.kernel_copies else -1
            if copied < 0:  # the kernel cannot copy between these files: through memory
                copied, digest = _copy_through_memory(fd, blob.fd, size)
                return blob, copied, digest
            return blob, copied, _hash_file(blob.fd, copied)
        except BaseException:
            blob.discard()
            raise
