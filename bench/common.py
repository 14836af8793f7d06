"""Shared by the benchmarks: a real control plane under a temporary home, and small statistics."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.core.controlplane import ControlPlane, start_control_plane


def bench_config(cpus: int, grace: float = 2.0) -> str:
    """A server config with one local cluster of ``cpus`` one-CPU slots."""
    return f"""
cancel_grace_seconds: {grace}
clusters:
  - id: local
    executor: local
    capacity: {{cpu: {cpus}, gpu: 0, memory_mb: {cpus * 1024}}}
    instance_types:
      - {{name: cpu-1, cpu: 1, gpu: 0, memory_mb: 1024, hourly_cost: 0.04}}
"""


def plane(cpus: int) -> ControlPlane:
    home = Path(tempfile.mkdtemp(prefix="grid-bench-"))
    return start_control_plane(home, bench_config(cpus))


def wait_done(cp: ControlPlane, name: str, poll: float = 0.25, timeout: float = 600, cluster: str = "local") -> float:
    """Poll (as a pipeline would) until the run is terminal; return the wall-clock time (epoch
    seconds) the server recorded it finishing, so the polling interval does not count."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = cp.ok("GET", f"/v1/core/{cluster}/runs/{name}")["status"]
        phase = status["phase"]
        if phase in ("RUN_STATE_SUCCEEDED", "RUN_STATE_FAILED", "RUN_STATE_CANCELED"):
            if phase != "RUN_STATE_SUCCEEDED":
                raise RuntimeError(f"run {name} ended {phase}")
            return datetime.fromisoformat(status["finishTimestamp"].replace("Z", "+00:00")).timestamp()
        time.sleep(poll)
    raise TimeoutError(name)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def percentile(xs: list[float], p: float) -> float:
    s = sorted(xs)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t
