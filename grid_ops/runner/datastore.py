"""Makes the datastore version an experiment mounts available, read-only (standard library only).

A node keeps one copy of each version its experiments used, at ``$GRID_DATASTORE_CACHE/<version id>/``.
The first experiment that needs a version lists its files from the control plane, copies each one from
the control plane's local storage where it can (else downloads it by its URL and checks its SHA-256),
makes everything read-only, and renames the finished folder into place. It copies rather than
hard-links: an experiment running as the store's owner could make a linked file writable again and
change the stored content under every other version that shares it. The cache
(``node_cache.py``) makes concurrent experiments wait for that one build instead of fetching the data
again, and never uses a half-built copy. Versions never change, so a copy stays good while the
version exists; the executor drops it when the version is deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
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
        _seal(folder)
        stats.seconds = time.monotonic() - started
        return stats

    return node_cache.ensure(cache, version_id, build)


def drop(cache: str, version_id: str) -> None:
    """Remove the node's copy of a version (it was deleted)."""
    node_cache.drop(cache, version_id)


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
        if local and _copy(local, dest, mode, int(f["sizeBytes"])):
            stats.copied += 1
        else:
            downloads.append((f, dest, mode))
    if downloads:
        with ThreadPoolExecutor(max_workers=min(_THREADS, len(downloads))) as pool:
            for sent in pool.map(lambda job: _download(*job), downloads):
                stats.downloaded += 1
                stats.bytes_downloaded += sent
    return stats


def _copy(source: str, dest: str, mode: int, size: int) -> bool:
    try:
        shutil.copyfile(source, dest)
        if os.path.getsize(dest) != size:
            os.unlink(dest)
            return False
        os.chmod(dest, mode)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(dest)
        return False


def _download(f: dict[str, Any], dest: str, mode: int) -> int:
    """GET one file into ``dest``, checking its size and SHA-256; returns the bytes received."""
    url, want, size = str(f["url"]), str(f["sha256"]), int(f["sizeBytes"])
    received = 0
    reason = ""
    for attempt in range(_ATTEMPTS):
        if attempt:
            time.sleep(0.5 * 2**attempt)
        digest = hashlib.sha256()
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
        if got == size and digest.hexdigest() == want:
            os.chmod(dest, mode)
            return received
        reason = f"received {got} bytes with sha256 {digest.hexdigest()}, expected {size} bytes with sha256 {want}"
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
    stats = ensure(cache, version_id, lambda: list_version(env)[1])
    if stats is None:
        note(f"datastore {label} found in this node's cache")
    else:
        note(
            f"datastore {label} fetched into this node's cache: {stats.files} files, {stats.size} bytes "
            f"({stats.copied} copied from the local store, {stats.downloaded} downloaded, "
            f"{stats.bytes_downloaded} bytes downloaded) in {stats.seconds:.2f} s"
        )
    return version_dir(cache, version_id)
