"""Graceful shutdown of the control plane: SIGTERM reaches running experiments; with ``auto_resume`` they
pause and resume after the restart in the same experiment (artifacts folder as they left it), without
it they fail with a message that says they were interrupted."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.core.controlplane import start_control_plane

RESUMABLE = (
    "import os, sys, time\n"
    "p = os.path.join(os.environ['GRID_ARTIFACTS_DIR'], 'progress.txt')\n"
    "done = len(open(p).read().splitlines()) if os.path.exists(p) else 0\n"
    "print('resumed from', done, flush=True)\n"
    "for i in range(done, 16):\n"
    "    open(p, 'a').write(f'{i}\\n')\n"
    "    time.sleep(0.25)\n"
    "print('finished', flush=True)\n"
)


def test_graceful_stop_pauses_auto_resume_experiments_and_fails_the_others(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cp = start_control_plane(home)
    try:
        for name, resume in (("resumable", True), ("plain", False)):
            body = {
                "name": name,
                "spec": {"runControllerCommand": f'python3 -c "{RESUMABLE}"', "autoResume": resume, "clusterId": "big"},
            }
            assert cp.call("POST", "/v1/core/big/runs", json=body).status_code == 200
        deadline = time.monotonic() + 30
        while "resumed from 0" not in cp.ok("GET", "/v1/core/big/experiments/resumable-exp0/logs")["data"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1.2)  # some progress is written to the artifacts folder
        assert cp.stop(signal.SIGTERM) == 0
    finally:
        cp.stop(signal.SIGKILL)

    again = start_control_plane(home)
    try:
        plain = again.wait_run("plain", cluster="big")
        exp = again.experiments("plain", cluster="big")[0]
        assert plain["status"]["phase"] == "RUN_STATE_FAILED"
        assert exp["status"]["message"].startswith("interrupted: the control plane shut down")

        run = again.wait_run("resumable", cluster="big", timeout=60)
        assert run["status"]["phase"] == "RUN_STATE_SUCCEEDED"
        events = again.ok("GET", "/v1/core/big/experiments/resumable-exp0/events")["events"]
        phases = [e.get("phase", "").removeprefix("EXPERIMENT_STATE_") for e in events]
        assert phases[:4] == ["PENDING", "RUNNING", "PAUSED", "QUEUED"] and phases[-1] == "SUCCEEDED", phases
        log = again.ok("GET", "/v1/core/big/experiments/resumable-exp0/logs")["data"]
        resumed_from = int(log.split("resumed from ")[2].split()[0])
        assert resumed_from >= 3, log  # it went on where it stopped, in the same artifacts folder
        assert log.count("finished") == 1
    finally:
        again.stop()
