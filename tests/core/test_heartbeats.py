"""Heartbeats: a runner that goes silent fails its experiment and is stopped; a busy one does not; a
control-plane restart gives runners time to report back. Real control planes, real experiments."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.core.controlplane import TEST_CONFIG, ControlPlane, start_control_plane

CONFIG = "heartbeat_timeout_seconds: 3\nheartbeat_interval_seconds: 0.5\nheartbeat_grace_seconds: 2\n" + TEST_CONFIG

# prints its process group and its parent (the runner's supervisor), then works silently
QUIET = (
    'python3 -c "import os, sys, time; '
    "print('PGID', os.getpgrp(), 'PPID', os.getppid(), flush=True); "
    'time.sleep(float(sys.argv[1]))" '
)


def start(cp: ControlPlane, name: str, seconds: float) -> None:
    body = {"name": name, "spec": {"runControllerCommand": f"{QUIET}{seconds}"}}
    assert cp.call("POST", "/v1/core/local/runs", json=body).status_code == 200


def experiment(cp: ControlPlane, name: str) -> dict[str, object]:
    return cp.ok("GET", f"/v1/core/local/experiments/{name}-exp0")  # type: ignore[no-any-return]


def ids_from_log(cp: ControlPlane, name: str, timeout: float = 20) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while True:
        log = cp.ok("GET", f"/v1/core/local/experiments/{name}-exp0/logs")["data"]
        found = re.search(r"PGID (\d+) PPID (\d+)", log)
        if found:
            return int(found.group(1)), int(found.group(2))
        assert time.monotonic() < deadline, f"{name} never printed its process ids"
        time.sleep(0.1)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def silence_and_expect_lost(cp: ControlPlane, name: str, pgid: int, supervisor: int) -> None:
    """SIGSTOP the experiment's supervisor (alive, but silent): the experiment must fail as lost and its
    whole process group must be gone soon after (SIGTERM, then SIGKILL after the 2 s grace)."""
    os.kill(supervisor, signal.SIGSTOP)
    try:
        run = cp.wait_run(name, timeout=30)
        assert run["status"]["phase"] == "RUN_STATE_FAILED"
        status = experiment(cp, name)["status"]
        assert status["phase"] == "EXPERIMENT_STATE_FAILED"  # type: ignore[index]
        assert status["message"] == "lost heartbeat: its runner went silent for more than 3 s"  # type: ignore[index]
        deadline = time.monotonic() + 15
        while group_alive(pgid):
            assert time.monotonic() < deadline, f"the process group of silent experiment {name} is still alive"
            time.sleep(0.1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(supervisor, signal.SIGCONT)


@pytest.fixture()
def plane(tmp_path: Path) -> ControlPlane:
    return start_control_plane(tmp_path / "home", CONFIG)


def test_a_silent_runner_fails_its_experiment_as_lost_and_its_process_group_is_killed(plane: ControlPlane) -> None:
    try:
        start(plane, "silent", 300)
        pgid, supervisor = ids_from_log(plane, "silent")
        silence_and_expect_lost(plane, "silent", pgid, supervisor)
    finally:
        plane.stop()


def test_a_busy_experiment_without_output_longer_than_the_timeout_keeps_running(plane: ControlPlane) -> None:
    try:
        start(plane, "busy", 7)
        ids_from_log(plane, "busy")
        time.sleep(5)  # longer than the 3 s timeout, and not a byte of output meanwhile
        assert experiment(plane, "busy")["status"]["phase"] == "EXPERIMENT_STATE_RUNNING"  # type: ignore[index]
        run = plane.wait_run("busy", timeout=30)
        assert run["status"]["phase"] == "RUN_STATE_SUCCEEDED", run["status"]
    finally:
        plane.stop()


def test_heartbeats_are_watched_again_after_a_control_plane_restart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cp = start_control_plane(home, CONFIG)
    try:
        start(cp, "outlives", 300)
        pgid, supervisor = ids_from_log(cp, "outlives")
        assert cp.stop(signal.SIGKILL) == -signal.SIGKILL
        time.sleep(4)  # longer than the timeout without anyone receiving heartbeats
    finally:
        cp.stop(signal.SIGKILL)
    again = start_control_plane(home, CONFIG)
    try:
        time.sleep(6)  # past the timeout plus the grace: heartbeats resumed, so nothing is judged lost
        assert experiment(again, "outlives")["status"]["phase"] == "EXPERIMENT_STATE_RUNNING"  # type: ignore[index]
        silence_and_expect_lost(again, "outlives", pgid, supervisor)  # the restarted one still notices
    finally:
        again.stop()


def test_an_interval_too_close_to_the_timeout_is_a_config_error_naming_both(tmp_path: Path) -> None:
    from grid_ops.server.config import ConfigError, load_config

    path = tmp_path / "server.yml"
    path.write_text(CONFIG.replace("heartbeat_interval_seconds: 0.5", "heartbeat_interval_seconds: 2"))
    with pytest.raises(ConfigError, match=r"heartbeat_interval_seconds \(2\) must be at most half of .*\(3\)"):
        load_config(path)
    path.write_text(CONFIG.replace("heartbeat_interval_seconds: 0.5\n", ""))
    assert load_config(path).heartbeat_seconds() == 0.75  # a quarter of the timeout by default
