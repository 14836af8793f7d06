"""Start, find and stop the embedded local control plane that serves clients when no ``GRID_URL`` is set.

One server per ``$GRID_OPS_HOME``, on 127.0.0.1 only. Contract with ``python -m grid_ops.server --embedded``:
it writes the local user's key to ``local.json`` and then ``local-server.json`` (``{"url", "pid"}``) once it
answers ``GET /healthz``. Starters serialise on an exclusive ``flock`` of ``local.lock``, so processes that
start at the same moment (two Airflow tasks, say) end up sharing one server.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from grid_ops.credentials import Credentials, grid_ops_home, read_json_file
from grid_ops.errors import ControlPlaneUnavailable, GridError

LOCK_FILE = "local.lock"
SERVER_FILE = "local-server.json"
USER_FILE = "local.json"
LOG_FILE = "local-server.log"

_POLL = 0.05
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
"""Servers this process spawned: kept so they are reaped, and so no ResourceWarning fires on collection."""


def _home(home: Path | None) -> Path:
    return (home or grid_ops_home()).expanduser().absolute()


@contextlib.contextmanager
def _locked(home: Path, deadline: float) -> Iterator[None]:
    """Hold the exclusive lock of ``home`` (waiting for it until ``deadline``)."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ControlPlaneUnavailable(
                        f"timed out waiting for {home / LOCK_FILE}: another process is starting or stopping "
                        f"the local control plane; retry, or see {home / LOG_FILE}"
                    ) from None
                time.sleep(_POLL)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_server(home: Path) -> tuple[str, int] | None:
    """``(url, pid)`` from ``local-server.json``, or ``None`` when it is absent or malformed."""
    path = home / SERVER_FILE
    try:
        data = read_json_file(path)
    except GridError:
        return None
    url, pid = data.get("url"), data.get("pid")
    if not isinstance(url, str) or not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    return url.rstrip("/"), pid


def _healthy(url: str, timeout: float = 1.0) -> bool:
    """Whether a loopback ``url`` answers ``GET /healthz`` with 200 within ``timeout`` (proxies bypassed)."""
    if urlsplit(url).hostname != "127.0.0.1":
        return False
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/healthz", timeout=timeout) as answer:
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError, ValueError):
        return False


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (children of ours are reaped first; zombies count as dead)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _is_server_process(pid: int) -> bool:
    """Whether ``pid`` is alive and (where the command line can be read) a grid_ops server.

    Guards against a stale ``local-server.json`` whose pid now belongs to an unrelated process.
    """
    if not _pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            cmdline = subprocess.run(
                ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, timeout=5, check=False
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return True
    return b"grid_ops.server" in cmdline or not cmdline


def _log_tail(home: Path, lines: int = 20) -> str:
    try:
        text = (home / LOG_FILE).read_text(errors="replace")
    except OSError:
        return "(no log)"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(empty log)"


def _credentials(home: Path, url: str) -> Credentials:
    try:
        data = read_json_file(home / USER_FILE)
    except GridError as exc:
        raise ControlPlaneUnavailable(
            f"the local control plane at {url} runs but its user file is unusable ({exc}); "
            "restart it with `grid-ops local stop` then `grid-ops local start`"
        ) from exc
    user_id, api_key = data.get("userId"), data.get("apiKey")
    if not isinstance(user_id, str) or not isinstance(api_key, str) or not user_id or not api_key:
        raise ControlPlaneUnavailable(
            f"{home / USER_FILE} lacks userId/apiKey; restart the local control plane with "
            "`grid-ops local stop` then `grid-ops local start`"
        )
    return Credentials(url=url, user_id=user_id, api_key=api_key)


def _spawn(home: Path) -> subprocess.Popen[bytes]:
    """Start the server detached from this process (own session), logging to ``local-server.log``."""
    command = [sys.executable, "-m", "grid_ops.server", "--embedded", "--home", str(home)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(home / LOG_FILE, "ab") as log:
        os.chmod(home / LOG_FILE, 0o600)
        log.write(
            f"--- {datetime.now().isoformat(timespec='seconds')} pid {os.getpid()} starts: "
            f"{' '.join(command)}\n".encode()
        )
        log.flush()
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            cwd=home,
            env=env,
        )
    _CHILDREN[child.pid] = child
    return child


def _terminate(pid: int, grace: float) -> None:
    """SIGTERM ``pid``, then SIGKILL if it is still alive after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(_POLL)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        end = time.monotonic() + 5
        while _pid_alive(pid) and time.monotonic() < end:
            time.sleep(_POLL)


def _wait_started(home: Path, child: subprocess.Popen[bytes], deadline: float, timeout: float) -> str:
    while True:
        code = child.poll()
        if code is not None:
            raise ControlPlaneUnavailable(
                f"the local control plane exited with code {code} while starting; last lines of "
                f"{home / LOG_FILE}:\n{_log_tail(home)}"
            )
        found = _read_server(home)
        if found is not None and _healthy(found[0]):
            return found[0]
        if time.monotonic() >= deadline:
            _terminate(child.pid, grace=5)
            raise ControlPlaneUnavailable(
                f"the local control plane did not answer within {timeout:g} s and was stopped; last lines of "
                f"{home / LOG_FILE}:\n{_log_tail(home)}"
            )
        time.sleep(_POLL)


def ensure_local_server(home: Path | None = None, timeout: float = 30) -> Credentials:
    """Credentials for the local control plane of ``home``, starting it first if none is answering."""
    home = _home(home)
    deadline = time.monotonic() + timeout
    with _locked(home, deadline):
        found = _read_server(home)
        if found is not None:
            url, pid = found
            if _healthy(url):
                return _credentials(home, url)
            if _is_server_process(pid):  # alive but slow to answer: give it the rest of the timeout
                while time.monotonic() < deadline:
                    if _healthy(url):
                        return _credentials(home, url)
                    time.sleep(0.2)
                raise ControlPlaneUnavailable(
                    f"the local control plane (pid {pid}, {url}) runs but does not answer /healthz; "
                    f"stop it with `grid-ops local stop` and retry. Last lines of {home / LOG_FILE}:\n"
                    f"{_log_tail(home)}"
                )
        (home / SERVER_FILE).unlink(missing_ok=True)
        child = _spawn(home)
        url = _wait_started(home, child, deadline, timeout)
        return _credentials(home, url)


def stop_local_server(home: Path | None = None, timeout: float = 30) -> bool:
    """Stop the local control plane of ``home`` (SIGTERM, SIGKILL after ``timeout``); False if none ran."""
    home = _home(home)
    with _locked(home, time.monotonic() + timeout):
        found = _read_server(home)
        if found is None or not _is_server_process(found[1]):
            (home / SERVER_FILE).unlink(missing_ok=True)
            return False
        _terminate(found[1], grace=timeout)
        if _read_server(home) == found:
            (home / SERVER_FILE).unlink(missing_ok=True)
        return True


def running_local_credentials(home: Path | None = None) -> Credentials | None:
    """The credentials of the local control plane if one runs and answers; never starts one."""
    home = _home(home)
    found = _read_server(home)
    if found is None or not _is_server_process(found[1]) or not _healthy(found[0]):
        return None
    return _credentials(home, found[0])


def local_server_status(home: Path | None = None) -> dict[str, Any] | None:
    """``{"url", "pid", "healthy", "home", "log"}`` of the running local control plane, or ``None``."""
    home = _home(home)
    found = _read_server(home)
    if found is None or not _is_server_process(found[1]):
        return None
    url, pid = found
    return {"url": url, "pid": pid, "healthy": _healthy(url), "home": str(home), "log": str(home / LOG_FILE)}
