"""The runner's supervisor, through real experiments: metrics from stdout and from the metrics file, a
run's own metric pattern, artifacts kept after a failure, and the control plane being away for a while."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from tests.core.controlplane import ControlPlane, start_control_plane


def _run(cp: ControlPlane, name: str, script: str, **spec: Any) -> dict[str, Any]:
    body = {"name": name, "spec": {"runControllerCommand": f'python3 -c "{script}"', **spec}}
    r = cp.call("POST", "/v1/core/local/runs", json=body)
    assert r.status_code == 200, r.text
    return cp.wait_run(name)


def _metrics(cp: ControlPlane, exp: str) -> dict[str, dict[str, Any]]:
    out = cp.ok("GET", f"/v1/core/local/experiments/{exp}/metrics")["metrics"]
    return {m["name"]: m for m in out}


def test_metrics_from_stdout_and_from_the_metrics_file_are_recorded_with_their_steps(cp: ControlPlane) -> None:
    script = (
        "import json, os\n"
        "f = open(os.environ['GRID_METRICS_FILE'], 'a')\n"
        "for step in range(3):\n"
        "    print(f'epoch {step}: loss={1.0 / (step + 1):.3f} lr=0.1', flush=True)\n"
        "    f.write(json.dumps({'name': 'val_acc', 'value': 0.5 + step / 10, 'step': step}) + '\\n')\n"
        "    f.flush()\n"
    )
    assert _run(cp, "runner-metrics", script)["status"]["phase"] == "RUN_STATE_SUCCEEDED"
    metrics = _metrics(cp, "runner-metrics-exp0")
    assert [p["value"] for p in metrics["loss"]["series"]] == [1.0, 0.5, 0.333]
    assert metrics["loss"]["min"] == 0.333 and metrics["loss"]["last"] == 0.333
    assert [(p["step"], p["value"]) for p in metrics["val_acc"]["series"]] == [(0, 0.5), (1, 0.6), (2, 0.7)]
    assert metrics["lr"]["count"] == 3
    # the output itself is in the log unchanged
    log = cp.ok("GET", "/v1/core/local/experiments/runner-metrics-exp0/logs")["data"]
    assert log.splitlines()[0] == "epoch 0: loss=1.000 lr=0.1"


def test_a_runs_own_metric_pattern_replaces_the_default(cp: ControlPlane) -> None:
    script = "print('accuracy: 0.91 (loss=3)', flush=True)"
    pattern = r"(?P<name>accuracy): (?P<value>[0-9.]+)"
    assert _run(cp, "runner-pattern", script, metricsPattern=pattern)["status"]["phase"] == "RUN_STATE_SUCCEEDED"
    metrics = _metrics(cp, "runner-pattern-exp0")
    assert set(metrics) == {"accuracy"} and metrics["accuracy"]["last"] == 0.91


def test_artifacts_written_before_a_failure_are_kept(cp: ControlPlane) -> None:
    script = (
        "import os, sys\n"
        "d = os.environ['GRID_ARTIFACTS_DIR']\n"
        "os.makedirs(os.path.join(d, 'ckpt'), exist_ok=True)\n"
        "open(os.path.join(d, 'ckpt', 'epoch1.txt'), 'w').write('weights')\n"
        "sys.exit(2)\n"
    )
    assert _run(cp, "runner-fails", script)["status"]["phase"] == "RUN_STATE_FAILED"
    listed = cp.ok("GET", "/v1/core/local/experiments/runner-fails-exp0/artifacts")["artifacts"]
    assert [(a["filename"], a["sizeBytes"]) for a in listed] == [("ckpt/epoch1.txt", "7")]
    got = cp.call("GET", "/v1/core/local/experiments/runner-fails-exp0/artifacts/ckpt/epoch1.txt")
    assert got.status_code == 200 and got.content == b"weights"


def test_metrics_reported_while_the_control_plane_was_down_arrive_after_it_returns(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cp = start_control_plane(home)
    script = (
        "import time\n"
        "print('ready', flush=True)\n"
        "time.sleep(2)\n"
        "for i in range(5):\n"
        "    print(f'score={i}', flush=True)\n"
        "time.sleep(1)\n"
    )
    try:
        body = {"name": "away", "spec": {"runControllerCommand": f'python3 -c "{script}"'}}
        assert cp.call("POST", "/v1/core/local/runs", json=body).status_code == 200
        deadline = time.monotonic() + 30
        while "ready" not in cp.ok("GET", "/v1/core/local/experiments/away-exp0/logs")["data"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        cp.stop(signal.SIGKILL)  # the scores are printed while nobody listens
        time.sleep(2.5)
    finally:
        cp.stop(signal.SIGKILL)
    # The control plane comes back on its old port; the runner's queued points get through then.
    again = start_control_plane(home)
    try:
        assert again.url == cp.url
        run = again.wait_run("away", timeout=60)
        assert run["status"]["phase"] == "RUN_STATE_SUCCEEDED"
        deadline = time.monotonic() + 30
        while "score" not in _metrics(again, "away-exp0"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert [p["value"] for p in _metrics(again, "away-exp0")["score"]["series"]] == [0, 1, 2, 3, 4]
    finally:
        again.stop()


def test_experiment_actions_run_in_order_with_the_experiments_variables(cp: ControlPlane) -> None:
    actions = {
        "onExperimentStart": ["echo start ${GRID_EXPERIMENT_NAME} > order.txt"],
        "onExperimentEnd": ["echo end ${GRID_RUN_NAME} >> order.txt; cat order.txt"],
    }
    script = "open('order.txt', 'a').write('command\\n')"
    assert _run(cp, "actions-ok", script, actions=actions)["status"]["phase"] == "RUN_STATE_SUCCEEDED"
    log = cp.ok("GET", "/v1/core/local/experiments/actions-ok-exp0/logs")["data"]
    assert "start actions-ok-exp0\ncommand\nend actions-ok\n" in log


def test_a_failing_start_action_fails_the_experiment_naming_it_and_the_end_action_still_runs(
    cp: ControlPlane,
) -> None:
    actions = {"onExperimentStart": ["exit 3"], "onExperimentEnd": ["echo cleaned up"]}
    run = _run(cp, "actions-bad", "print('the command ran')", actions=actions)
    assert run["status"]["phase"] == "RUN_STATE_FAILED"
    exp = cp.experiments("actions-bad")[0]
    assert exp["status"]["message"] == "on_experiment_start action 'exit 3' failed (exited with code 3)"
    log = cp.ok("GET", "/v1/core/local/experiments/actions-bad-exp0/logs")["data"]
    assert "the command ran" not in log and "cleaned up" in log


def test_the_end_action_runs_after_a_failed_command(cp: ControlPlane) -> None:
    actions = {"onExperimentEnd": ["echo after ${GRID_EXPERIMENT_NAME}"]}
    assert _run(cp, "actions-end", "import sys; sys.exit(5)", actions=actions)["status"]["phase"] == "RUN_STATE_FAILED"
    exp = cp.experiments("actions-end")[0]
    assert exp["status"]["message"] == "exited with code 5"
    assert "after actions-end-exp0" in cp.ok("GET", "/v1/core/local/experiments/actions-end-exp0/logs")["data"]


def test_scratch_is_an_empty_folder_linked_at_a_relative_mount_path(cp: ControlPlane) -> None:
    script = (
        "import os; "
        "print(sorted(os.listdir('work/tmp')), os.path.realpath('work/tmp') == os.environ['GRID_SCRATCH_DIR'])"
    )
    run = _run(cp, "scratchy", script, scratch=[{"mountPath": "work/tmp", "sizeGb": 1}])
    assert run["status"]["phase"] == "RUN_STATE_SUCCEEDED"
    assert "[] True" in cp.ok("GET", "/v1/core/local/experiments/scratchy-exp0/logs")["data"]
    _run(cp, "scratch-abs", "print('ok')", scratch=[{"mountPath": "/scratch", "sizeGb": 1}])
    log = cp.ok("GET", "/v1/core/local/experiments/scratch-abs-exp0/logs")["data"]
    assert "does not link it at the absolute path /scratch" in log



def test_variables_in_the_commands_arguments_take_the_experiments_values(cp: ControlPlane) -> None:
    command = (
        "python3 -c \"import sys; print('ARGS', sys.argv[1:], flush=True)\" "
        "$GRID_EXPERIMENT_NAME ${GRID_RUN_NAME}-x $GRID_OPS_NOT_DEFINED price=5$$"
    )
    body = {"name": "runner-vars", "spec": {"runControllerCommand": command}}
    assert cp.call("POST", "/v1/core/local/runs", json=body).status_code == 200
    assert cp.wait_run("runner-vars")["status"]["phase"] == "RUN_STATE_SUCCEEDED"
    log = cp.ok("GET", "/v1/core/local/experiments/runner-vars-exp0/logs")["data"]
    line = next(line for line in log.splitlines() if line.startswith("ARGS"))
    # defined names are replaced, an undefined one stays as written, $$ is a literal $
    assert line == "ARGS ['runner-vars-exp0', 'runner-vars-x', '$GRID_OPS_NOT_DEFINED', 'price=5$']"
