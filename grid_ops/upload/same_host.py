"""Same-host uploads: when the control plane runs on this machine (the embedded default) and stores
datastores on its local disk, it copies the source's files straight from disk, in batches, instead of
receiving every byte over HTTP; nothing is hashed here first, since the server hashes what it stores.

Each batch's answer (the content hash of every file stored) goes to the upload's journal at once, so an
interrupted upload resumes with the files not yet recorded. Files the server cannot read, or a server that
does not see this machine's files (a tunnel to another machine) or refuses same-host uploads, fall back to
presigned URLs.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from grid_ops import schemas
from grid_ops.client import GridClient
from grid_ops.errors import AuthenticationError, NotFoundError
from grid_ops.upload.progress import Progress
from grid_ops.upload.scan import SourceFile
from grid_ops.upload.state import StateStore, UploadState
from grid_ops.upload.transfer import SourceChanged

MIB = 1024 * 1024
BATCH_BYTES = 256 * MIB
BATCH_FILES = 1000
IN_FLIGHT = 2  # batches the server works on at once, so that its threads never wait for the next one
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def may_be_same_host(url: str) -> bool:
    """Whether a control plane at ``url`` may be on this machine (it will say whether it sees our files)."""
    return urlsplit(url).hostname in _LOOPBACK


def _batches(files: list[SourceFile]) -> list[list[SourceFile]]:
    """``files`` dealt, largest first, into batches of about ``BATCH_BYTES`` (at most ``BATCH_FILES``): each
    batch mixes large and small files, so the server's copying threads finish a batch together."""
    count = max(math.ceil(sum(f.size for f in files) / BATCH_BYTES), math.ceil(len(files) / BATCH_FILES), 1)
    out: list[list[SourceFile]] = [[] for _ in range(count)]
    for index, f in enumerate(sorted(files, key=lambda f: -f.size)):
        round_, place = divmod(index, count)
        out[place if round_ % 2 == 0 else count - 1 - place].append(f)
    return [b for b in out if b]


class SameHostUpload:
    """Sends the files of an upload that are not recorded yet as same-host batches."""

    def __init__(self, client: GridClient, states: StateStore, progress: Progress) -> None:
        self.client = client
        self.states = states
        self.progress = progress

    def run(self, state: UploadState, stored: set[str] | None = None) -> tuple[int, list[SourceFile]]:
        """Have the server copy every file not recorded yet, except the paths in ``stored`` (whose content
        it has already). Returns the bytes it copied and the files left for presigned URLs (all of them but
        ``stored`` when the server cannot take same-host uploads)."""
        assert state.datastore_id is not None
        recorded = set(state.recorded)
        skip = recorded | (stored or set())
        todo = [f for f in state.files if f.path not in skip]
        if not todo:
            return 0, []
        self.progress.stage(f"copying {len(todo)} files into the control plane's storage on this machine")
        done = sum(f.size for f in state.files if f.path in recorded)
        self.progress.start(done + sum(f.size for f in todo), done)
        probe = self.states.root / f"probe-{state.key}-{os.getpid()}"
        token = secrets.token_hex(16)
        probe.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        probe.write_text(token)
        lock = threading.Lock()
        stop = threading.Event()  # the server cannot take them, or a batch failed

        def send(batch: list[SourceFile]) -> tuple[int, list[SourceFile]]:
            if stop.is_set():
                return 0, []
            try:
                return send_one(batch)
            except BaseException:
                stop.set()
                raise

        def send_one(batch: list[SourceFile]) -> tuple[int, list[SourceFile]]:
            assert state.datastore_id is not None
            request = schemas.LocalFilesRequest(
                probe_path=str(probe),
                probe_token=token,
                files=[
                    schemas.LocalFile(
                        path=f.path,
                        local_path=os.path.abspath(f.local),
                        size_bytes=f.size,
                        mtime_ns=f.mtime_ns,
                        mode=f.mode,
                        blake3=f.blake3,
                    )
                    for f in batch
                ],
            )
            try:
                answer = self.client.add_local_files(state.datastore_id, request, cluster_id=state.cluster_id)
            except (AuthenticationError, NotFoundError):  # refused by its config, or an older server
                answer = schemas.LocalFilesResponse(same_host=False)
            if not answer.same_host:
                stop.set()
                return 0, []
            with lock:
                copied = self._record(state, answer)
            self.progress.advance(copied)
            if answer.changed:
                raise SourceChanged(answer.changed)
            unavailable = set(answer.unavailable)
            return copied, [f for f in batch if f.path in unavailable]

        pool = ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="grid-ops-same-host")
        try:
            futures = [pool.submit(send, batch) for batch in _batches(todo)]
            results = [future.result() for future in futures]
        except BaseException:  # an interruption or a failure: no further batches
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)
            with contextlib.suppress(FileNotFoundError):
                probe.unlink()
        if stop.is_set():
            state.same_host = False
            self.states.save(state)
            skip = set(state.recorded) | (stored or set())
            return sum(c for c, _ in results), [f for f in state.files if f.path not in skip]
        return sum(c for c, _ in results), [f for batch in results for f in batch[1]]

    def _record(self, state: UploadState, answer: schemas.LocalFilesResponse) -> int:
        """Note the hashes of the files the server stored, and that they are in the version's manifest."""
        self.states.record_batch(state, {s.path: s.blake3 for s in answer.files})
        return sum(s.size_bytes for s in answer.files)
