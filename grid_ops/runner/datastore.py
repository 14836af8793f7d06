"""Makes the datastore version an experiment mounts available, read-only (standard library only).

A node keeps one copy of each version its experiments used, at ``$GRID_DATASTORE_CACHE/<version id>/``.
The first experiment that needs a version lists its files from the control plane, copies each one from
the control plane's local storage where it can (else downloads it by its URL and checks its size and
BLAKE3 digest, with the ``blake3`` module of the Python it runs under, see ``_blake3``),
makes everything read-only, and renames the finished folder into place. It copies rather than
hard-links: an experiment running as the store's owner could make a linked file writable again and
change the stored content under every other version that shares it. The cache
(``node_cache.py``) makes concurrent experiments wait for that one build instead of fetching the data
again, and never uses a half-built copy. Versions never change, so a copy stays good while the
version exists; the executor drops it when the version is deleted.

The cache holds at most ``$GRID_DATASTORE_CACHE_MAX_BYTES`` (0: no limit): after fetching a version, the
least recently used versions go until it fits. Each experiment holds a shared lock on its version's
``.<id>.use`` file from before it looks for the copy until it ends (the kernel drops it when the process
dies), and eviction takes that lock exclusively without waiting, so a version an experiment uses is never
evicted, and one being evicted is fetched again by the next experiment that needs it. A version's folder
carries its last use as its modification time and its size in ``.<id>.size``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import json
import os
import shutil
import sys
import sysconfig
import threading
import time
import urllib.error
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

try:
    from grid_ops.runner import fetch, node_cache
except ImportError:  # loaded by path in the supervisor, without the package (see supervise.load_module_file)
    import fetch  # type: ignore[no-redef]
    import node_cache  # type: ignore[no-redef]

_CHUNK = 1024 * 1024
_THREADS = 8
_PAGE = 1000
_ATTEMPTS = 4
_HELD: list[int] = []  # use locks of the versions this process mounts, held until it ends


_HASHER: list[Any] = []  # the blake3 class, found once
_HASHER_LOCK = threading.Lock()


def _site_folders() -> list[str]:
    """Where this Python's packages are installed: the virtual environment it belongs to (``-S`` leaves
    ``sys.prefix`` at the base installation; ``pyvenv.cfg`` beside or above the executable says), the
    installation itself, and the user's site-packages (``pip install --user``)."""
    exe_dir = os.path.dirname(os.path.abspath(sys.executable))
    prefixes = [d for d in (exe_dir, os.path.dirname(exe_dir)) if os.path.isfile(os.path.join(d, "pyvenv.cfg"))]
    found = [sysconfig.get_paths(vars={"base": p, "platbase": p}) for p in prefixes[:1]]
    found.append(sysconfig.get_paths())
    user_scheme = f"{os.name}_user"
    if user_scheme in sysconfig.get_scheme_names():
        with contextlib.suppress(KeyError):  # no user base where there is no home folder
            found.append(sysconfig.get_paths(user_scheme))
    return list(dict.fromkeys(paths[key] for paths in found for key in ("purelib", "platlib")))


def _blake3() -> Any:
    """The ``blake3`` hasher class of grid-ops' own environment, or None when it is not installed there.
    The supervisor runs without site-packages on ``sys.path`` (``python -I -S``), so they are added here,
    only when a download needs them."""
    with _HASHER_LOCK:  # the download threads ask at once; sysconfig's first use is not thread-safe
        if not _HASHER:
            module: Any = None
            try:
                module = importlib.import_module("blake3")
            except ImportError:
                try:
                    sys.path.extend(p for p in _site_folders() if p not in sys.path)
                    module = importlib.import_module("blake3")
                except (ImportError, OSError, KeyError):
                    module = None
            _HASHER.append(getattr(module, "blake3", None))
    return _HASHER[0]


class DatastoreError(Exception):
    """The version could not be made available; the message says why."""


@dataclass
class BuildStats:
    """What building one version's copy took."""

    files: int = 0
    size: int = 0
    copied: int = 0
    downloaded: int = 0
    bytes_downloaded: int = 0
    seconds: float = 0.0


def version_dir(cache: str, version_id: str) -> str:
    """Where a version's read-only copy lives in the node's cache."""
    return node_cache.entry_dir(cache, version_id)


# ---------------------------------------------------------------------- the listing


def list_version(env: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The version the experiment mounts and all its files, from the control plane's runner endpoint
    (retrying for a minute while the control plane is unreachable, e.g. restarting)."""
    try:
        base, token = fetch.experiment_endpoint(env, f"datastore?pageSize={_PAGE}")
        files: list[dict[str, Any]] = []
        info: dict[str, Any] = {}
        page_token = None
        while True:
            url = base + (f"&pageToken={urllib.parse.quote(page_token)}" if page_token else "")
            page: dict[str, Any] = fetch.get(url, token, "the file list", lambda answer: json.loads(answer.read()))
            info = page
            files.extend(page.get("files") or [])
            page_token = page.get("nextPageToken")
            if not page_token:
                return info, files
    except fetch.FetchError as exc:
        raise DatastoreError(str(exc)) from None


# ---------------------------------------------------------------------- the cache


def ensure(cache: str, version_id: str, list_files: Callable[[], list[dict[str, Any]]]) -> BuildStats | None:
    """Make sure the node's cache holds the version: ``None`` if it did, else what building it took.

    ``list_files`` is called only when the copy has to be built."""

    def build(folder: str) -> BuildStats:
        started = time.monotonic()
        stats = _build(folder, list_files())
        _write_size(cache, version_id, stats.size)
        _seal(folder)
        stats.seconds = time.monotonic() - started
        return stats

    return node_cache.ensure(cache, version_id, build)


def _use_lock(cache: str, version_id: str) -> int:
    """The open lock file that marks a version in use (never removed while the version exists, so that
    every process locks the same file)."""
    return os.open(os.path.join(cache, f".{version_id}.use"), os.O_RDWR | os.O_CREAT, 0o644)


def hold(cache: str, version_id: str) -> int:
    """Mark the version in use by this process until it ends (or the descriptor is closed): a shared lock,
    which waits while the version is being evicted."""
    os.makedirs(cache, exist_ok=True)
    fd = _use_lock(cache, version_id)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def _size_file(cache: str, version_id: str) -> str:
    return os.path.join(cache, f".{version_id}.size")


def _version_size(cache: str, version_id: str) -> int:
    try:
        with open(_size_file(cache, version_id)) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        total = 0
        for folder, _dirs, files in os.walk(version_dir(cache, version_id)):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(folder, name)).st_size
        return total


def _write_size(cache: str, version_id: str, size: int) -> None:
    tmp = f"{_size_file(cache, version_id)}.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(str(size))
    os.replace(tmp, _size_file(cache, version_id))


def touch(cache: str, version_id: str) -> None:
    """Record a use of the version (its folder's modification time orders eviction)."""
    with contextlib.suppress(OSError):
        os.utime(version_dir(cache, version_id))


def cached_versions(cache: str) -> list[tuple[float, str, int]]:
    """The versions in the cache: (last use, id, size in bytes), least recently used first."""
    out = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(cache):
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            with contextlib.suppress(OSError):
                out.append((entry.stat(follow_symlinks=False).st_mtime, entry.name, _version_size(cache, entry.name)))
    return sorted(out)


def evict(cache: str, max_bytes: int) -> list[str]:
    """Remove least recently used versions that no experiment uses until the cache holds at most
    ``max_bytes`` (0: no limit); returns the ids removed. Versions in use are skipped, never waited for."""
    if max_bytes <= 0:
        return []
    versions = cached_versions(cache)
    total = sum(size for _, _, size in versions)
    removed: list[str] = []
    for _used, version_id, size in versions:
        if total <= max_bytes:
            break
        fd = _use_lock(cache, version_id)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # an experiment uses it
            doomed = os.path.join(cache, f".evicting-{version_id}-{os.getpid()}")
            try:
                os.rename(version_dir(cache, version_id), doomed)
            except FileNotFoundError:
                continue  # dropped or evicted meanwhile
            with contextlib.suppress(FileNotFoundError):
                os.unlink(_size_file(cache, version_id))
            node_cache.remove(doomed)
            total -= size
            removed.append(version_id)
        finally:
            os.close(fd)
    return removed


def drop(cache: str, version_id: str) -> None:
    """Remove the node's copy of a version (it was deleted)."""
    node_cache.drop(cache, version_id)
    for suffix in ("use", "size"):
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(cache, f".{version_id}.{suffix}"))


def _safe_path(path: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise DatastoreError(f"the control plane listed an invalid file path {path!r}")
    return os.path.join(*parts)


def _read_only(mode: int) -> int:
    return 0o555 if mode & 0o111 else 0o444


def _build(root: str, files: list[dict[str, Any]]) -> BuildStats:
    stats = BuildStats(files=len(files), size=sum(int(f["sizeBytes"]) for f in files))
    downloads: list[tuple[dict[str, Any], str, int]] = []
    for f in files:
        dest = os.path.join(root, _safe_path(str(f["path"])))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        mode = _read_only(int(f.get("mode") or 0o644))
        local = f.get("localPath")
        if local and _copy(local, dest, mode, int(f["sizeBytes"]), f.get("localOffset"), str(f["blake3"])):
            stats.copied += 1
        else:
            downloads.append((f, dest, mode))
    if downloads:
        with ThreadPoolExecutor(max_workers=min(_THREADS, len(downloads))) as pool:
            for sent in pool.map(lambda job: _download(*job), downloads):
                stats.downloaded += 1
                stats.bytes_downloaded += sent
    return stats


def _copy(source: str, dest: str, mode: int, size: int, offset: int | None = None, want: str = "") -> bool:
    """Copy a content's file of the control plane's local storage (or ``size`` bytes at ``offset`` of one of
    its pack files, checked by its BLAKE3: a range freed since reads as zeros); False if it cannot (the
    caller downloads it instead)."""
    try:
        if offset is None:
            shutil.copyfile(source, dest)
        elif _copy_range(source, dest, int(offset), size) not in (want, None):
            os.unlink(dest)
            return False
        if os.path.getsize(dest) != size:
            os.unlink(dest)
            return False
        os.chmod(dest, mode)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(dest)
        return False


def _copy_range(source: str, dest: str, offset: int, size: int) -> str | None:
    """``size`` bytes of ``source`` from ``offset`` into a new file ``dest`` (fewer if ``source`` is shorter);
    returns their BLAKE3 (None where ``blake3`` is not installed). A content in a pack is at most 1 MiB."""
    hasher = _blake3()
    digest = hasher() if hasher is not None else None
    with open(source, "rb", buffering=0) as src, open(dest, "wb", buffering=0) as out:
        done = 0
        while done < size and (chunk := os.pread(src.fileno(), min(_CHUNK, size - done), offset + done)):
            out.write(chunk)
            if digest is not None:
                digest.update(chunk)
            done += len(chunk)
    return digest.hexdigest() if digest is not None else None


def _sha256_of(path: str) -> str:
    """The SHA-256 of a file: content stored before BLAKE3 named content is named by it."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class _SizeOnly:
    """Stands in for the hasher where ``blake3`` cannot be imported: downloads are checked by size."""

    def update(self, _chunk: bytes) -> None:
        pass

    def hexdigest(self) -> str:
        return "(BLAKE3 not checked: blake3 is not installed)"


def _download(f: dict[str, Any], dest: str, mode: int) -> int:
    """GET one file into ``dest``, checking its size and BLAKE3; returns the bytes received."""
    url, want, size = str(f["url"]), str(f["blake3"]), int(f["sizeBytes"])
    hasher = _blake3() or _SizeOnly
    received = 0
    reason = ""
    for attempt in range(_ATTEMPTS):
        if attempt:
            time.sleep(0.5 * 2**attempt)
        digest = hasher()
        got = 0
        try:
            with fetch.open_url(url, 60) as answer, open(dest, "wb") as out:
                while chunk := answer.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    got += len(chunk)
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code}"
            received += got
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                break
            continue
        except OSError as exc:
            received += got
            reason = str(getattr(exc, "reason", exc))
            continue
        received += got
        if got == size and (digest.hexdigest() == want or _sha256_of(dest) == want or hasher is _SizeOnly):
            os.chmod(dest, mode)
            return received
        reason = (
            f"received {got} bytes with digest {digest.hexdigest()}, expected {size} bytes named {want} (its "
            "BLAKE3, or its SHA-256 for content stored before grid-ops used BLAKE3)"
        )
    raise DatastoreError(f"file {f['path']!r} could not be downloaded: {reason}")


def _seal(root: str) -> None:
    """Make every folder of the copy read-only (the files are already)."""
    for folder, _dirs, _files in os.walk(root, topdown=False):
        os.chmod(folder, 0o555)


# ---------------------------------------------------------------------- the supervisor's entry point


def make_available(env: dict[str, str], note: Callable[[str], None]) -> str:
    """Fetch (or find) the version ``$GRID_DATASTORE_ID`` in ``$GRID_DATASTORE_CACHE``, say so in the log,
    and return its folder, which is ``$GRID_DATASTORE_DIR``."""
    version_id, cache = env.get("GRID_DATASTORE_ID"), env.get("GRID_DATASTORE_CACHE")
    label = env.get("GRID_DATASTORE_NAME") or version_id
    if not version_id or not cache:
        raise DatastoreError("GRID_DATASTORE_ID or GRID_DATASTORE_CACHE is unset")
    try:
        max_bytes = int(env.get("GRID_DATASTORE_CACHE_MAX_BYTES") or 0)
    except ValueError:
        max_bytes = 0
    _HELD.append(hold(cache, version_id))  # until this process ends: the version is in use
    stats = ensure(cache, version_id, lambda: list_version(env)[1])
    touch(cache, version_id)
    if stats is None:
        note(f"datastore {label} found in this node's cache")
    else:
        note(
            f"datastore {label} fetched into this node's cache: {stats.files} files, {stats.size} bytes "
            f"({stats.copied} copied from the local store, {stats.downloaded} downloaded, "
            f"{stats.bytes_downloaded} bytes downloaded) in {stats.seconds:.2f} s"
        )
        if stats.downloaded and _blake3() is None:
            note(f"the downloads were checked by size only: the blake3 module is not installed for {sys.executable}")
        removed = evict(cache, max_bytes)
        if removed:
            note(
                f"evicted {len(removed)} least recently used version(s) to keep this node's cache within "
                f"{max_bytes} bytes"
            )
    return version_dir(cache, version_id)
