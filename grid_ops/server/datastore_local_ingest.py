"""Same-host uploads: a client on the control plane's machine names its files and the control plane copies
them straight from disk into its local storage, instead of receiving them part by part over HTTP.

The guarantees are those of the presigned flow: a large file is copied into an unnamed file that becomes
visible only at its content's address (``storage/blob_copy.py``), a small one is read into memory and
appended to the request's pack (``storage/packs.py``), readable only once its row is committed; what is
hashed is the copy itself, so the stored content is exactly what was hashed (checked against the client's
``blake3`` when it sends one); a file whose size or modification time differs from what the client scanned,
before or after the copy, is reported as changed and not stored; content is stored once per owner; each
request records its files in the version's manifest in one transaction, so an interrupted upload resumes
with the files not yet recorded.

It is off unless the server config allows it (``datastores.same_host_ingest``; on for the embedded control
plane), and only taken from loopback addresses: it lets a user have the server read any file the server's
account can, which on the embedded control plane is that user's own account.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import functools
import ipaddress
import os
import stat
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from grid_ops.schemas import DatastoreSourceType, LocalFile, LocalFilesRequest, LocalFilesResponse, LocalFileStored
from grid_ops.server.auth import Principal
from grid_ops.server.datastore_tables import DatastoreRow
from grid_ops.server.datastore_uploads import (
    DEFAULT_MODE,
    MAX_FILES_PER_REQUEST,
    check_path,
    check_sha,
    insert_blobs,
    insert_packed,
    put_files,
    require_uploading,
    stored_blobs,
)
from grid_ops.server.datastores import DatastoreRuntime, describe, find_datastore
from grid_ops.server.errors import ApiError, bad_request, conflict
from grid_ops.server.storage.base import blob_key
from grid_ops.server.storage.local import LocalStore
from grid_ops.server.storage.packs import PackWriter, merge_ranges

MAX_PROBE_BYTES = 256
COPY_THREADS = os.cpu_count() or 2  # copying is CPU work now (kernel copy, hashing): one thread a core
_pool: list[ThreadPoolExecutor] = []
_pool_lock = threading.Lock()


def _copy_pool() -> ThreadPoolExecutor:
    """The threads every same-host request of this process copies with, so that concurrent requests share
    the cores instead of each starting threads of its own."""
    with _pool_lock:
        if not _pool:
            _pool.append(ThreadPoolExecutor(max_workers=COPY_THREADS, thread_name_prefix="grid-same-host"))
        return _pool[0]


def is_loopback(host: str | None) -> bool:
    """Whether a peer address is this machine's loopback."""
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class _Copied:
    path: str
    blake3: str | None = None
    size: int = 0
    mode: int = DEFAULT_MODE
    pack_offset: int | None = None  # where in the request's pack it went (a small file)
    problem: str | None = None  # "changed" or "unavailable"


_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
"""How a file named by a client is opened: a FIFO opens without waiting for a writer (and then is no
regular file), a terminal does not become the server's. ``O_NONBLOCK`` is cleared once the file is known
to be a regular one (some network and FUSE file systems honour it for reads)."""


def _wait_on_reads(fd: int) -> None:
    """Clear ``O_NONBLOCK`` (the only flag of ``_OPEN_FLAGS`` that ``F_SETFL`` sets) in one system call, not
    the two of ``os.set_blocking``: this runs for every file of a request."""
    fcntl.fcntl(fd, fcntl.F_SETFL, 0)


def _sees_client_files(probe_path: str, token: str, forbidden: list[str]) -> bool:
    """Whether the file the client wrote for this request holds its token, as this machine sees it (a file
    of the control plane's own is not even opened: see ``_copy_one``)."""
    if _inside(os.path.realpath(probe_path), forbidden):
        return False
    try:
        fd = os.open(probe_path, _OPEN_FLAGS)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        _wait_on_reads(fd)
        return os.read(fd, MAX_PROBE_BYTES).decode("utf-8", "replace").strip() == token
    except OSError:
        return False
    finally:
        os.close(fd)


def _real_path(path: str, real_dir: Callable[[str], str]) -> str:
    """Where ``path`` really is, resolving its folder through ``real_dir`` (cached per request: a source is
    mostly a few folders) and the file itself only when it is a link. Plain strings, not ``pathlib``: this
    runs for every file with the GIL held."""
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            return os.path.realpath(path)
    except OSError:
        return path
    folder, name = os.path.split(path)
    return os.path.join(real_dir(folder), name)


def _inside(path: str, folders: list[str]) -> bool:
    """Whether ``path`` is one of ``folders`` or in one of them (their links resolved already; a ``..`` left at
    the end of ``path`` can only make it look inside, never outside)."""
    return any(path == folder or path.startswith(folder.rstrip(os.sep) + os.sep) for folder in folders)


def _opened_path(fd: int) -> str | None:
    """The path of the file ``fd`` is open on, as the kernel has it (``None`` where ``/proc`` cannot tell)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _copy_one(
    store: LocalStore, owner: str, forbidden: list[str], real_dir: Callable[[str], str], pack: PackWriter, f: LocalFile
) -> _Copied:
    """Copy one file into the store by its hash, a small one into the request's pack (or say why not)."""
    out = _Copied(f.path, mode=DEFAULT_MODE if f.mode is None else f.mode & 0o777)
    real = _real_path(f.local_path, real_dir)
    if _inside(real, forbidden):  # before opening: closing any descriptor of the control plane's database
        out.problem = "unavailable"  # would drop SQLite's locks on it (POSIX locks are per process)
        return out
    try:
        fd = os.open(real, _OPEN_FLAGS)
    except OSError:
        out.problem = "unavailable"
        return out
    try:
        opened = _opened_path(fd)  # a folder on the way may have become a link since it was resolved
        if opened is not None and _inside(opened, forbidden):
            out.problem = "unavailable"
            return out
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode) or (before.st_size, before.st_mtime_ns) != (f.size_bytes, f.mtime_ns):
            out.problem = "changed"
            return out
        _wait_on_reads(fd)
        tmp, copied, sha = store.copy_in(fd, f.size_bytes)
        try:
            after = os.fstat(fd)
        except BaseException:
            tmp.discard()
            raise
    finally:
        os.close(fd)
    moved = (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (
        before.st_size,
        before.st_mtime_ns,
        before.st_ctime_ns,
    )
    if moved or copied != f.size_bytes or (f.blake3 is not None and f.blake3 != sha):
        tmp.discard()
        out.problem = "changed"
        return out
    if tmp.data is not None:  # small: read whole already, appended to the pack (no file of its own)
        try:
            out.pack_offset = pack.append(sha, tmp.data)
        finally:
            tmp.discard()
    else:
        store.keep_blob(tmp, blob_key(owner, sha), copied)  # once per content
    out.blake3, out.size = sha, copied
    return out


def ingest_local_files(
    runtime: DatastoreRuntime, user: Principal, cluster_id: str, ref: str, body: LocalFilesRequest, peer: str | None
) -> LocalFilesResponse:
    """Copy the request's files from this machine's disk into the version (see the module's docstring)."""
    if not runtime.config.datastores.same_host_ingest:
        raise ApiError(
            403,
            "same-host uploads are off on this control plane (datastores.same_host_ingest in its server "
            "config); upload through presigned-urls",
        )
    if not is_loopback(peer):
        raise ApiError(
            403, "same-host uploads are taken only from this machine's loopback address; upload through presigned-urls"
        )
    if len(body.files) > MAX_FILES_PER_REQUEST:
        raise bad_request(f"send at most {MAX_FILES_PER_REQUEST} files per request, got {len(body.files)}")
    with runtime.sessions.begin() as session:
        row = find_datastore(session, user, ref, cluster_id)
        require_uploading(row)
        if row.source_type != DatastoreSourceType.EXPANDED_FILES.value:
            raise conflict(f"{describe(row)} is unpacked from an archive: it takes no same-host files")
        datastore_id, owner, row_cluster = row.id, row.user_id, row.cluster_id
    store = runtime.store(row_cluster)
    if not isinstance(store, LocalStore):  # e.g. S3: the client sends the parts there itself
        return LocalFilesResponse(same_host=False)
    seen: set[str] = set()
    for f in body.files:
        check_path(f.path)
        if f.path in seen:
            raise bad_request(f"{f.path!r} appears more than once in the request; send each path once")
        seen.add(f.path)
        if f.blake3 is not None:
            check_sha(f.blake3, f"blake3 of {f.path!r}")
        if not os.path.isabs(f.local_path) or "\x00" in f.local_path:
            raise bad_request(f"localPath of {f.path!r} must be an absolute path, got {f.local_path!r}")
        if f.size_bytes < 0:
            raise bad_request(f"sizeBytes of {f.path!r} must not be negative")
    forbidden = [os.path.realpath(runtime.state_dir), os.path.realpath(store.root)]
    if not _sees_client_files(body.probe_path, body.probe_token, forbidden):
        return LocalFilesResponse(same_host=False)
    todo = collections.deque(sorted(body.files, key=lambda f: -f.size_bytes))  # large first: threads end together
    real_dir = functools.lru_cache(maxsize=None)(os.path.realpath)
    failed = threading.Event()
    pack = store.new_pack(owner)
    try:
        copied = _copy_all(store, owner, forbidden, real_dir, pack, todo, failed)
        stored = [c for c in copied if c.problem is None and c.blake3 is not None]
        with runtime.sessions.begin() as session:
            now = session.get(DatastoreRow, datastore_id)
            if now is None or now.deleted_at is not None:
                raise ApiError(404, f"datastore {ref!r} was deleted during the upload")
            require_uploading(now)
            packed = [(c.blake3 or "", c.pack_offset, c.size) for c in stored if c.pack_offset is not None]
            known = set(stored_blobs(session, now, (sha for sha, _, _ in packed))) if packed else set()
            insert_blobs(session, now.cluster_id, now.user_id, ((c.blake3 or "", c.size) for c in stored))
            pack.publish()  # named before its rows are committed: a row never points at nothing
            recorded, dead = insert_packed(session, now, pack.key, packed, known)
            put_files(session, now, [(c.path, c.blake3 or "", c.size, c.mode) for c in stored])
    except BaseException:
        pack.discard()  # nothing recorded points into it
        raise
    pack.close()
    if pack.used and not recorded:  # the owner had every small file stored already
        pack.discard()
    else:
        for offset, size in merge_ranges(dead):  # copies of content stored already: their space back
            with contextlib.suppress(OSError):
                store.punch_hole(pack.key, offset, size)
    return LocalFilesResponse(
        same_host=True,
        files=[LocalFileStored(path=c.path, blake3=c.blake3 or "", size_bytes=c.size) for c in stored],
        changed=sorted(c.path for c in copied if c.problem == "changed"),
        unavailable=sorted(c.path for c in copied if c.problem == "unavailable"),
    )


def _copy_all(
    store: LocalStore,
    owner: str,
    forbidden: list[str],
    real_dir: Callable[[str], str],
    pack: PackWriter,
    todo: collections.deque[LocalFile],
    failed: threading.Event,
) -> list[_Copied]:
    """Copy the request's files on the process's copying threads."""

    def copy_some() -> list[_Copied]:
        """Copy files of the request until none is left (a task per thread, not a future per file: handing a
        thousand futures between threads cost more than copying the small files)."""
        done = []
        try:
            while not failed.is_set():
                try:
                    f = todo.popleft()
                except IndexError:
                    break
                done.append(_copy_one(store, owner, forbidden, real_dir, pack, f))
        except BaseException:  # the other threads copy nothing more for a request that fails
            failed.set()
            raise
        return done

    pool = _copy_pool()
    tasks = [pool.submit(copy_some) for _ in range(min(COPY_THREADS, len(todo)))]
    try:
        return [c for task in tasks for c in task.result()]
    except BaseException:
        failed.set()
        for task in tasks:  # the pack is discarded after: no thread may still write to it
            with contextlib.suppress(BaseException):
                task.result()
        raise
