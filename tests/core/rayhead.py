"""A real Ray head for the tests: ``ray start --head --block`` on 127.0.0.1 with every port chosen here,
its files under the test's temporary folder, as a child process. Stopping that process stops every Ray
process it started (and no other Ray on the machine, which ``ray stop`` would end too)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.core.s3server import free_port


@dataclass
class RayHead:
    """A running Ray head and the URL of its dashboard (the job API)."""

    address: str
    dashboard_port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def jobs(self) -> list[dict[str, object]]:
        """Every job the head knows, as its job API lists them."""
        answer = requests.get(f"{self.address}/api/jobs/", timeout=30, proxies={"http": "", "https": ""})
        answer.raise_for_status()
        return list(answer.json())

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def ray_config(address: str, node_dir: Path, poll_seconds: float = 0.2) -> str:
    """A server config with one Ray cluster at ``address`` whose capacity is what Ray reports; its runners
    keep their files (caches of sources, environments, datastores) under ``node_dir``, not the shared
    default, so that no test sees what another left."""
    return f"""
cancel_grace_seconds: 2
clusters:
  - id: ray
    executor: ray
    address: {address}
    options: {{poll_seconds: {poll_seconds}, node_dir: \"{node_dir}\"}}
    instance_types:
      - {{name: cpu-1, cpu: 1, gpu: 0, memory_mb: 256, hourly_cost: 0.5, spot_hourly_cost: 0.2}}
"""


def ray_env() -> dict[str, str]:
    """The environment Ray processes start with: every port on 127.0.0.1, no usage reports, this Python's
    tools first on PATH (so jobs run ``python`` with grid-ops installed, as workers must have it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRID_", "RAY_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


def start_ray_head(folder: Path, dashboard_port: int | None = None, timeout: float = 120) -> RayHead:
    """Start a Ray head with 2 CPUs whose dashboard listens on 127.0.0.1 (``dashboard_port``, or a free
    one) and wait until its job API answers."""
    folder.mkdir(parents=True, exist_ok=True)
    dashboard_port = dashboard_port or free_port()
    workers = random.randrange(20000, 29000, 200)
    ports = {
        "--port": free_port(),
        "--dashboard-port": dashboard_port,
        "--node-manager-port": free_port(),
        "--object-manager-port": free_port(),
        "--metrics-export-port": free_port(),
        "--dashboard-agent-listen-port": free_port(),
        "--dashboard-agent-grpc-port": free_port(),
        "--runtime-env-agent-port": free_port(),
        "--ray-client-server-port": free_port(),
        "--min-worker-port": workers,
        "--max-worker-port": workers + 199,
    }
    log = folder / "ray-head.log"
    command = [
        str(Path(sys.executable).parent / "ray"),
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        "--dashboard-host=127.0.0.1",
        "--num-cpus=2",
        "--disable-usage-stats",
        f"--temp-dir={folder / 'tmp'}",
        *[f"{flag}={port}" for flag, port in ports.items()],
    ]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=ray_env(), cwd=folder, start_new_session=True
        )
    head = RayHead(address=f"http://127.0.0.1:{dashboard_port}", dashboard_port=dashboard_port, proc=proc, log=log)
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = requests.get(f"{head.address}/api/v0/nodes", timeout=5, proxies={"http": "", "https": ""})
            nodes = answer.json()["data"]["result"]["result"] if answer.status_code == 200 else []
            if any(node.get("state") == "ALIVE" for node in nodes):
                return head
        except (requests.RequestException, ValueError, KeyError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            head.stop()
            raise RuntimeError("the Ray head did not start:\n" + log.read_text()[-3000:])
        time.sleep(0.5)
