"""A supervisor process started ahead of need, so launching an experiment costs a fork, not the start of
a Python interpreter: the executor hands the waiting spare its job and starts the next spare at once,
in the background, while the experiment runs."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from pathlib import Path

from grid_ops.server.executors.base import LaunchError

RUNNER_MAIN = str(Path(__file__).resolve().parents[2] / "runner" / "__main__.py")


def runner_command(*args: str) -> list[str]:
    """The supervisor's command line: this Python, isolated, without site-packages (it needs none)."""
    return [sys.executable, "-I", "-S", RUNNER_MAIN, *args]


class Spares:
    """Keeps one spare supervisor ready; ``take`` hands it a job (or starts one if none is ready)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._lock = threading.Lock()
        self._ready: subprocess.Popen[bytes] | None = None
        self._closed = False

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            runner_command("--spare"),
            cwd=self.workdir,
            env={"PATH": "/usr/bin:/bin"},
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )

    def _refill(self) -> None:
        with self._lock:
            if self._closed or self._ready is not None:
                return
        spare = self._start()
        with self._lock:
            if self._closed or self._ready is not None:
                extra = spare
            else:
                self._ready, extra = spare, None
        if extra is not None:
            self._dismiss(extra)

    def take(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
        """Run ``argv`` under a supervisor; return its process (the experiment's process-group leader)."""
        with self._lock:
            spare, self._ready = self._ready, None
        if spare is None or spare.poll() is not None:
            try:
                spare = self._start()
            except OSError as exc:
                raise LaunchError(f"could not start the experiment's supervisor: {exc.strerror or exc}") from exc
        job = json.dumps({"argv": argv, "env": env, "cwd": str(cwd), "log": str(log)}) + "\n"
        try:
            assert spare.stdin is not None
            spare.stdin.write(job.encode())
            spare.stdin.close()
        except OSError as exc:
            spare.kill()
            raise LaunchError(f"could not hand the experiment to its supervisor: {exc}") from exc
        threading.Thread(target=self._refill, name="grid-spare", daemon=True).start()
        return spare

    @staticmethod
    def _dismiss(spare: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(OSError):
            assert spare.stdin is not None
            spare.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            spare.wait(5)

    def close(self) -> None:
        """Let the waiting spare go (it exits when its standard input closes)."""
        with self._lock:
            self._closed = True
            spare, self._ready = self._ready, None
        if spare is not None:
            self._dismiss(spare)
