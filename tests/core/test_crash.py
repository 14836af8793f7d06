"""Crash safety: ``kill -9`` of the control plane mid-run, then a restart on the same state."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.core.controlplane import ControlPlane, start_control_plane

SCRIPT = (
    "import sys, time\n"
    "n = int(sys.argv[2])\n"
    "print('start', n, flush=True)\n"
    "time.sleep(n)\n"
    "print('done', n, flush=True)\n"
    "sys.exit(4 if n == 3 else 0)\n"
)


def _wait_logs(cp: ControlPlane, names: list[str], needle: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    for name in names:
        while needle not in cp.ok("GET", f"/v1/core/big/experiments/{name}/logs")["data"]:
            assert time.monotonic() < deadline, f"{name} never printed {needle!r}"
            time.sleep(0.1)


def test_kill_9_mid_run_then_restart_settles_every_experiment_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cp = start_control_plane(home)
    try:
        # 4 CPUs on "big": exp0..exp3 run at once; exp4 waits for a slot and starts only after the restart.
        cmd = f'python3 -c "{SCRIPT}" --n "[2, 3, 12, 1, 5]"'
        body = {"name": "crashy", "spec": {"runControllerCommand": cmd, "clusterId": "big"}}
        assert cp.call("POST", "/v1/core/big/runs", json=body).status_code == 200
        _wait_logs(cp, ["crashy-exp0", "crashy-exp1", "crashy-exp2", "crashy-exp3"], "start")
        assert cp.stop(signal.SIGKILL) == -signal.SIGKILL
        time.sleep(4)  # exp0, exp1 and exp3 end while nobody watches; exp2 runs on past the restart
    finally:
        cp.stop(signal.SIGKILL)

    again = start_control_plane(home)
    try:
        run = again.wait_run("crashy", cluster="big", timeout=60)
        exps = again.experiments("crashy", cluster="big")
        phases = [e["status"]["phase"].removeprefix("EXPERIMENT_STATE_") for e in exps]
        assert phases == ["SUCCEEDED", "FAILED", "SUCCEEDED", "SUCCEEDED", "SUCCEEDED"]
        assert [e["status"].get("exitCode") for e in exps] == [0, 4, 0, 0, 0]
        assert "while the control plane was down" in exps[0]["status"]["message"]
        assert run["status"]["phase"] == "RUN_STATE_FAILED"
        for i, n in enumerate([2, 3, 12, 1, 5]):
            log = again.ok("GET", f"/v1/core/big/experiments/crashy-exp{i}/logs")["data"]
            # logged meanwhile, nothing lost; and each experiment ran exactly once
            assert log.count(f"start {n}") == 1 and log.count(f"done {n}") == 1, log
    finally:
        again.stop()
