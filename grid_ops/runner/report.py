"""Sends an experiment's metrics and artifacts to the control plane (standard library only).

Metric points are batched and sent from a background thread about once a second; a batch that fails
(the control plane restarting, say) stays queued and is sent again, and each point carries a sequence
number so that a batch sent twice is counted once. Artifacts are uploaded one file at a time.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

try:
    from grid_ops.runner import fetch
except ImportError:  # loaded by path in the supervisor, without the package (see supervise.load_module_file)
    import fetch  # type: ignore[no-redef]

_BATCH = 5000
_FINAL_SECONDS = 30.0


class Reporter:
    """The experiment's channel to the runner endpoints of the control plane."""

    def __init__(self, env: dict[str, str], note: Callable[[str], None]) -> None:
        self.note = note
        url, token, exp = env.get("GRID_RUNNER_URL"), env.get("GRID_RUNNER_TOKEN"), env.get("GRID_EXPERIMENT_ID")
        self.base = f"{url.rstrip('/')}/v1/runner/experiments/{exp}" if url and token and exp else None
        self.headers = {"X-Grid-Runner-Token": token or ""}
        self.pending: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.last_error = ""
        self.thread = threading.Thread(target=self._loop, name="grid-reporter", daemon=True)
        if self.base is None:
            note("metrics and artifacts are not reported: GRID_RUNNER_URL or GRID_RUNNER_TOKEN is unset")
        else:
            self.thread.start()

    def add(self, points: list[dict[str, Any]]) -> None:
        with self.lock:
            self.pending.extend(points)

    def flush_soon(self) -> None:
        self.wake.set()

    def _request(self, method: str, path: str, body: bytes, content_type: str, timeout: float = 10.0) -> None:
        assert self.base is not None
        req = urllib.request.Request(
            self.base + path,
            data=body,
            method=method,
            headers={**self.headers, "Content-Type": content_type, "Content-Length": str(len(body))},
        )
        with urllib.request.urlopen(req, timeout=timeout) as answer:
            answer.read()

    def _send_batch(self) -> bool:
        with self.lock:
            batch = self.pending[:_BATCH]
        if not batch:
            return True
        try:
            self._request("POST", "/metrics", json.dumps({"points": batch}).encode(), "application/json")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300]
            if 400 <= exc.code < 500:  # the server will never take these: say so and drop them
                self.note(f"{len(batch)} metric points refused by the control plane ({exc.code}): {detail}")
                with self.lock:
                    del self.pending[: len(batch)]
                return True
            self.last_error = f"HTTP {exc.code}: {detail}"
            return False
        except (OSError, urllib.error.URLError) as exc:
            self.last_error = str(getattr(exc, "reason", exc))
            return False
        with self.lock:
            del self.pending[: len(batch)]
        return True

    def _loop(self) -> None:
        delay = 1.0
        while not self.stop.is_set():
            self.wake.wait(delay)
            self.wake.clear()
            if self.stop.is_set():
                break
            ok = True
            while ok and self.pending:
                ok = self._send_batch()
            delay = 1.0 if ok else min(10.0, delay * 2)

    def close(self, seconds: float = _FINAL_SECONDS) -> None:
        """Send everything still queued, retrying for up to ``seconds``; note in the log what could not go."""
        if self.base is None:
            return
        self.stop.set()
        self.wake.set()
        self.thread.join(timeout=15)
        deadline = time.monotonic() + seconds
        delay = 0.2
        while self.pending:
            if self._send_batch():
                continue
            if time.monotonic() > deadline:
                self.note(f"{len(self.pending)} metric points could not be reported: {self.last_error}")
                return
            time.sleep(delay)
            delay = min(5.0, delay * 2)

    def upload_artifacts(self, folder: str, seconds: float = _FINAL_SECONDS) -> None:
        """PUT every file under ``folder`` to the control plane, keeping its relative path."""
        if self.base is None:
            return
        failed: list[str] = []
        for root, _dirs, files in os.walk(folder):
            for name in sorted(files):
                path = os.path.join(root, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                rel = os.path.relpath(path, folder)
                if not self._upload(path, rel, seconds):
                    failed.append(rel)
        if failed:
            self.note(f"{len(failed)} artifact(s) could not be uploaded ({self.last_error}): {', '.join(failed[:10])}")

    def _upload(self, path: str, rel: str, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        delay = 0.2
        while True:
            try:
                with open(path, "rb") as f:
                    body = f.read()
                self._request(
                    "PUT", "/artifacts/" + urllib.parse.quote(rel), body, "application/octet-stream", timeout=60
                )
                return True
            except urllib.error.HTTPError as exc:
                self.last_error = f"HTTP {exc.code}: {exc.read().decode('utf-8', 'replace')[:300]}"
                if 400 <= exc.code < 500:
                    return False
            except (OSError, urllib.error.URLError) as exc:
                self.last_error = str(getattr(exc, "reason", exc))
            if time.monotonic() > deadline:
                return False
            time.sleep(delay)
            delay = min(5.0, delay * 2)


def heartbeats(env: dict[str, str], seconds: float, note: Callable[[str], None]) -> None:
    """POST ``.../heartbeat`` every ``seconds`` for as long as the process lives. Failures are retried at
    the next beat (the control plane may be restarting); an answer of 409 means the control plane has
    ended the experiment (its runner went silent for too long), so the runner stops the command itself
    with SIGTERM, in case the executor could not."""
    endpoint, token = fetch.experiment_endpoint(env, "heartbeat")
    headers = {"X-Grid-Runner-Token": token}
    while True:
        started = time.monotonic()
        try:
            with fetch.open_url(endpoint, 10, headers, data=b""):
                pass
        except urllib.error.HTTPError as exc:
            if exc.code == 409:
                note(f"the control plane ended this experiment: {exc.read().decode('utf-8', 'replace')[:300]}")
                os.killpg(0, signal.SIGTERM)
                return
        except OSError:
            pass
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))
