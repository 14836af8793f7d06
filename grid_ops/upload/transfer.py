"""Sending parts: PUT a byte range of a file to a presigned URL, check the ``ETag`` answered against the
MD5 of what was sent, retry transient failures, and count every byte put on the wire.

URLs are presigned (by S3 or by the control plane for its local storage), so no credentials are sent.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

from grid_ops.errors import GridError

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
RETRIES = 5


class UrlExpired(GridError):
    """The part's URL was refused (expired or no longer valid): ask for a new one."""


@dataclass(frozen=True)
class Part:
    """One part to send: which object and part number, and the byte range of the file it comes from."""

    blake3: str
    number: int
    local: Path
    offset: int
    length: int


class Counter:
    """A thread-safe running total (bytes sent, parts sent)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self, amount: int) -> None:
        with self._lock:
            self.value += amount


class RateLimit:
    """At most ``bytes_per_second`` on average across threads (a token bucket; 0 means no limit)."""

    def __init__(self, bytes_per_second: int) -> None:
        self.rate = bytes_per_second
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def wait(self, amount: int) -> None:
        if self.rate <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + amount / self.rate
        delay = start - now
        if delay > 0:
            time.sleep(delay)


class ByteBudget:
    """At most ``limit`` bytes of parts read and not yet sent, across threads: it bounds the memory an
    upload holds and what an interruption wastes (parts in flight are sent again). A part larger than
    the limit goes alone."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._used = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, amount: int) -> Iterator[None]:
        amount = min(amount, self.limit)
        with self._cond:
            self._cond.wait_for(lambda: self._used + amount <= self.limit)
            self._used += amount
        try:
            yield
        finally:
            with self._cond:
                self._used -= amount
                self._cond.notify_all()


def read_part(part: Part, expect_size: int, expect_mtime_ns: int) -> bytes:
    """The part's bytes, after checking the file is still as scanned (else the upload must stop)."""
    st = os.stat(part.local)
    if st.st_size != expect_size or st.st_mtime_ns != expect_mtime_ns:
        raise SourceChanged([str(part.local)])
    with part.local.open("rb") as f:
        f.seek(part.offset)
        data = f.read(part.length)
    if len(data) != part.length:
        raise SourceChanged([str(part.local)])
    return data


class SourceChanged(GridError):
    """Files of the source changed since the upload began; ``files`` names them."""

    def __init__(self, files: list[str], message: str | None = None) -> None:
        shown = ", ".join(files[:10]) + (f" and {len(files) - 10} more" if len(files) > 10 else "")
        super().__init__(message or f"files of the datastore source changed during the upload: {shown}")
        self.files = files


class PartSender:
    """PUTs parts with one HTTP session per thread; ``bytes_sent`` counts every body sent, retries included."""

    def __init__(self, rate_limit: RateLimit, timeout: tuple[float, float] = (10.0, 300.0)) -> None:
        self.rate_limit = rate_limit
        self.timeout = timeout
        self.bytes_sent = Counter()
        self.parts_sent = Counter()
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def send(self, url: str, data: bytes, describe: str, cancelled: Callable[[], bool]) -> str:
        """PUT ``data`` to ``url`` and return the ETag (unquoted) once it matches the data's MD5."""
        md5 = hashlib.md5(data).hexdigest()
        session = self._session()
        session.trust_env = urlsplit(url).hostname not in _LOOPBACK
        last = ""
        for attempt in range(RETRIES):
            if cancelled():
                raise GridError("the upload was cancelled")
            self.rate_limit.wait(len(data))
            self.bytes_sent.add(len(data))
            try:
                answer = session.put(url, data=data, timeout=self.timeout)
            except requests.RequestException as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                with answer:
                    if answer.status_code == 403 and attempt == 0:
                        raise UrlExpired(f"the storage refused the URL of {describe}: {_text(answer)}")
                    if answer.status_code < 300:
                        etag = answer.headers.get("ETag", "").strip().strip('"').lower()
                        if etag == md5:
                            self.parts_sent.add(1)
                            return etag
                        last = f"the ETag answered ({etag or 'none'}) is not the MD5 of the bytes sent ({md5})"
                    elif answer.status_code in (408, 429) or answer.status_code >= 500:
                        last = f"HTTP {answer.status_code}: {_text(answer)}"
                    else:
                        raise GridError(
                            f"uploading {describe} failed: HTTP {answer.status_code}: {_text(answer)}",
                            status_code=answer.status_code,
                        )
            time.sleep(min(8.0, 0.25 * 2**attempt) * random.uniform(0.5, 1.0))
        raise GridError(f"uploading {describe} failed after {RETRIES} attempts: {last}; run the upload again to resume")


def _text(answer: requests.Response) -> str:
    try:
        body = answer.json()
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            return str(body["message"])
    except ValueError:
        pass
    return answer.text.strip()[:300] or answer.reason
