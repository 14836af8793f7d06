"""A node-level cache of things experiments share: one entry per key, built once (standard library only).

An entry is a folder ``<cache>/<key>/``. The first process that needs it builds it in a temporary folder
next to it and renames it into place, so a half-built entry is never used; a lock per key (released by
the kernel if the builder dies) makes the others wait for that one build instead of building again.
Datastore versions (``datastore.py``) and run sources (``checkout.py``) are kept this way.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


def entry_dir(cache: str, key: str) -> str:
    """Where the entry ``key`` lives in the cache."""
    return os.path.join(cache, key)


@contextlib.contextmanager
def locked(cache: str, key: str) -> Iterator[None]:
    """Hold the key's lock (released by the kernel if this process dies)."""
    fd = os.open(os.path.join(cache, f".{key}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def remove(path: str) -> None:
    """Delete an entry, read-only or not: give its folders their write bit back, then remove everything."""
    if not os.path.lexists(path):
        return
    for root, dirs, _files in os.walk(path):
        for name in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(root, name), 0o755)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o755)
    shutil.rmtree(path, ignore_errors=True)


def ensure(cache: str, key: str, build: Callable[[str], T]) -> T | None:
    """Make sure the cache holds ``key``: ``None`` if it did, else what ``build`` returned.

    ``build(folder)`` fills a fresh, empty folder; it is called only when the entry has to be built,
    by one process at a time."""
    final = entry_dir(cache, key)
    if os.path.isdir(final):
        return None
    os.makedirs(cache, exist_ok=True)
    with locked(cache, key):
        if os.path.isdir(final):  # another process built it while this one waited
            return None
        prefix = f".building-{key}-"
        for name in os.listdir(cache):  # left by a builder that died: nobody else builds while we hold the lock
            if name.startswith(prefix):
                remove(os.path.join(cache, name))
        tmp = os.path.join(cache, f"{prefix}{os.getpid()}")
        os.mkdir(tmp)
        try:
            result = build(tmp)
            try:
                os.rename(tmp, final)
            except OSError:
                if not os.path.isdir(final):
                    raise
                remove(tmp)  # built meanwhile by a process holding an older lock file: use theirs
                return None
        except BaseException:
            remove(tmp)
            raise
        return result


def drop(cache: str, key: str) -> None:
    """Remove the cache's entry ``key`` (what it held is gone for good)."""
    if not os.path.isdir(cache):
        return
    with locked(cache, key):
        final = entry_dir(cache, key)
        if os.path.isdir(final):
            doomed = os.path.join(cache, f".dropping-{key}-{os.getpid()}")
            os.rename(final, doomed)
            remove(doomed)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(cache, f".{key}.lock"))
