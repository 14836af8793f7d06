"""A real control plane process on 127.0.0.1 for the tests: started as the embedded local default
would be (``python -m grid_ops.server --embedded``) under a temporary ``GRID_OPS_HOME``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests

TEST_CONFIG = """
cancel_grace_seconds: 2
datastores: {http_allow: [127.0.0.1]}
clusters:
  - id: local
    executor: local
    capacity: {cpu: 2, gpu: 0, memory_mb: 8192}
    instance_types:
      - {name: cpu-1, cpu: 1, gpu: 0, memory_mb: 2048, hourly_cost: 0.36, spot_hourly_cost: 0.12}
      - {name: cpu-2, cpu: 2, gpu: 0, memory_mb: 4096, hourly_cost: 0.72}
    default_instance_type: cpu-1
  - id: big
    executor: local
    capacity: {cpu: 4, gpu: 0, memory_mb: 8192}
    instance_types:
      - {name: small, cpu: 1, gpu: 0, memory_mb: 1024, hourly_cost: 1.0}
"""


@dataclass
class ControlPlane:
    """A running control plane and the local user's credentials."""

    home: Path
    url: str
    user_id: str
    api_key: str
    proc: subprocess.Popen[bytes]
    session: requests.Session = field(default_factory=requests.Session)

    def env(self) -> dict[str, str]:
        return {
            "GRID_URL": self.url,
            "GRID_USER_ID": self.user_id,
            "GRID_API_KEY": self.api_key,
            "GRID_OPS_HOME": str(self.home),
        }

    def call(self, method: str, path: str, auth: tuple[str, str] | None = None, **kw: Any) -> requests.Response:
        return self.session.request(
            method, self.url + path, auth=auth or (self.user_id, self.api_key), timeout=30, **kw
        )

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        r = self.call(method, path, **kw)
        assert r.status_code == 200, f"{method} {path} -> {r.status_code} {r.text}"
        return r.json()

    def wait_run(self, name: str, timeout: float = 60, cluster: str = "local") -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.ok("GET", f"/v1/core/{cluster}/runs/{name}")
            if run["status"]["phase"] in ("RUN_STATE_SUCCEEDED", "RUN_STATE_FAILED", "RUN_STATE_CANCELED"):
                return run  # type: ignore[no-any-return]
            if time.monotonic() > deadline:
                raise AssertionError(f"run {name} still {run['status']['phase']} after {timeout}s")
            time.sleep(0.1)

    def experiments(self, run: str, cluster: str = "local") -> list[dict[str, Any]]:
        out = self.ok("GET", f"/v1/core/{cluster}/experiments", params={"runIds": run, "pageSize": 1000})
        return sorted(out["experiments"], key=lambda e: int(e["name"].rsplit("exp", 1)[1]))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


P = TypeVar("P", bound=ControlPlane)


def start_control_plane(
    home: Path,
    config_text: str = TEST_CONFIG,
    timeout: float = 30,
    extra_args: list[str] | None = None,
    python: str = sys.executable,
    plane: type[P] = ControlPlane,  # type: ignore[assignment]
) -> P:
    """Start ``python -m grid_ops.server --embedded`` under ``home`` and wait until it serves.

    ``python`` is the interpreter with grid-ops installed; experiments find it first on PATH, as in an
    activated environment. ``plane`` is the class of the answer (tests may add helpers to it)."""
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "server-config.yml"
    cfg.write_text(config_text)
    (home / "local-server.json").unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRID_")}
    env["PATH"] = f"{os.path.dirname(python)}{os.pathsep}{env.get('PATH', '')}"
    log = open(home / "test-server.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            python,
            "-m",
            "grid_ops.server",
            "--embedded",
            "--home",
            str(home),
            "--config",
            str(cfg),
            *(extra_args or []),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    info = home / "local-server.json"
    while not info.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("control plane did not start:\n" + (home / "test-server.log").read_text()[-3000:])
        time.sleep(0.05)
    server = json.loads(info.read_text())
    creds = json.loads((home / "local.json").read_text())
    return plane(home=home, url=server["url"], user_id=creds["userId"], api_key=creds["apiKey"], proc=proc)


def add_user(home: Path, name: str) -> tuple[str, str]:
    """Create another user in the control plane's database (as the server's admin would)."""
    out = subprocess.run(
        [sys.executable, "-m", "grid_ops.cli", "users", "create", name, "--home", str(home), "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(out.stdout)
    return data["id"], data["apiKey"]
