"""Running a control plane: in the foreground for deployments, or as the embedded local default.

The embedded control plane keeps everything under ``$GRID_OPS_HOME``: its state in ``server/``, the local
user's key in ``local.json`` and, while it runs, its URL and pid in ``local-server.json`` (both 0600).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from grid_ops.server.app import create_app
from grid_ops.server.config import ConfigError, check_heartbeats, load_config
from grid_ops.server.db import DatabaseUnavailable
from grid_ops.server.state import AppState
from grid_ops.server.users import ensure_user_key

LOCAL_USER = "local"
log = logging.getLogger("grid_ops.server")


# Idle connections stay open this long (uvicorn's default is 5 s): clients that poll every few seconds,
# as sensors and triggers do, keep their connection, and one idle for exactly as long as the server waits
# does not have it closed under its next request (nginx's default).
KEEP_ALIVE_SECONDS = 75


class DrainingServer(uvicorn.Server):
    """On SIGTERM or SIGINT, first stop the experiments while the API still answers (so their runners
    can report their last metrics and artifacts), then stop serving. A second signal stops at once."""

    def __init__(self, config: uvicorn.Config, drain: Callable[[], None]) -> None:
        super().__init__(config)
        self._drain = drain
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining:
            super().handle_exit(sig, frame)
            return
        self._draining = True
        threading.Thread(target=self._drain_then_exit, name="grid-drain", daemon=True).start()

    def _drain_then_exit(self) -> None:
        try:
            self._drain()
        finally:
            self.should_exit = True


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically, readable by the owner only."""
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound before the app starts so the chosen port is known at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def bind_preferring_last_port(host: str, home: Path) -> socket.socket:
    """The embedded control plane comes back on the port it had, when that port is free, so that its
    URL (in exported ``GRID_URL`` values and in running experiments) stays valid across restarts."""
    remembered = home / "local-server-port"
    with contextlib.suppress(OSError, ValueError):
        last = int(remembered.read_text().strip())
        with contextlib.suppress(OSError):
            sock = bind(host, last)
            return sock
    sock = bind(host, 0)
    with contextlib.suppress(OSError):
        remembered.write_text(f"{sock.getsockname()[1]}\n")
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    db_url: str | None = None,
    config_path: str | None = None,
    state_dir: Path | None = None,
    embedded_home: Path | None = None,
    log_level: str = "warning",
    heartbeat_timeout: float | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; then stop the scheduler and settle running experiments.
    ``heartbeat_timeout`` overrides the config's ``heartbeat_timeout_seconds``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(config_path)
        if heartbeat_timeout is not None:
            config = dataclasses.replace(config, heartbeat_timeout_seconds=heartbeat_timeout)
            check_heartbeats(config)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from exc
    if embedded_home is not None:
        embedded_home.mkdir(parents=True, exist_ok=True, mode=0o700)
        if config.datastores.same_host_ingest is None:  # its one user is this machine's user
            config = replace(config, datastores=replace(config.datastores, same_host_ingest=True))
        state_dir = state_dir or embedded_home / "server"
    state_dir = state_dir or Path(os.environ.get("GRID_OPS_STATE_DIR", "grid-ops-state"))
    sock = (
        bind_preferring_last_port(host, embedded_home) if embedded_home is not None and port == 0 else bind(host, port)
    )
    url = _url(sock)

    def started(state: AppState) -> None:
        log.info("grid-ops control plane listening on %s (state in %s)", url, state_dir)
        if embedded_home is None:
            return
        local = embedded_home / "local.json"
        old: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            old = json.loads(local.read_text())
        user_id, key = ensure_user_key(state.sessions, LOCAL_USER, old.get("userId"), old.get("apiKey"))
        if (user_id, key) != (old.get("userId"), old.get("apiKey")):
            write_private_json(local, {"userId": user_id, "apiKey": key})
        write_private_json(embedded_home / "local-server.json", {"url": url, "pid": os.getpid()})

    def stopping(_state: AppState) -> None:
        if embedded_home is not None:
            with contextlib.suppress(FileNotFoundError):
                (embedded_home / "local-server.json").unlink()

    try:
        app = create_app(config, state_dir, db_url, on_started=started, on_stopping=stopping, public_url=url)
    except DatabaseUnavailable as exc:
        sock.close()
        raise SystemExit(f"error: {exc}") from exc
    server = DrainingServer(
        uvicorn.Config(
            app, log_level=log_level, access_log=False, lifespan="on", timeout_keep_alive=KEEP_ALIVE_SECONDS
        ),
        drain=app.state.grid.scheduler.stop,
    )
    server.run(sockets=[sock])
