"""Dependency environments, build actions and frameworks, through real runs on a real control plane.

Requirements files install a tiny wheel that the test writes into the source (``--no-index
--find-links``), so the builds need no package index and take well under a second with uv.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from grid_ops import Experiment, Run
from grid_ops.cli.main import cli
from grid_ops.errors import GridError, NotFoundError, ValidationError
from tests.core.controlplane import ControlPlane
from tests.core.sources import tar_gz, wheel

SHOW = (
    'python -c "import importlib.util, os, sys, tinypkg_{tag}; '
    "print('value', tinypkg_{tag}.VALUE, 'in-env', sys.prefix == os.environ['VIRTUAL_ENV'], "
    "'base-packages', importlib.util.find_spec('requests') is not None, 'prefix', sys.prefix)\""
)


def source(tag: str, requirement: str | None = None, extra: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """A source with a requirements.txt that installs the wheel ``tinypkg_<tag>`` from the source."""
    path, data = wheel(f"tinypkg_{tag}", "1.0", "VALUE = 42\n")
    requirement = requirement or f"tinypkg_{tag}==1.0"
    files = {path: data, "requirements.txt": f"--no-index\n--find-links wheels\n{requirement}\n".encode()}
    files.update(extra or {})
    return files


def start(cp: ControlPlane, name: str, command: str, files: dict[str, bytes], **spec: Any) -> None:
    """Create a run whose source is ``files`` and whose dependency file is its requirements.txt."""
    spec.setdefault("image", {"dependencyFileInfo": {"path": "./requirements.txt"}})
    body = {"name": name, "localDir": True, "spec": {"runControllerCommand": command, **spec}}
    r = cp.call("POST", "/v1/core/local/runs", json=body)
    assert r.status_code == 200, r.text
    put = cp.session.put(r.json()["status"]["uploadUrl"], data=tar_gz(files), timeout=30)
    assert put.status_code == 200, put.text


def build_log(cp: ControlPlane, exp: str) -> str:
    return str(cp.ok("GET", f"/v1/core/local/experiments/{exp}/logs", params={"build": "true"})["data"])


def log(cp: ControlPlane, exp: str) -> str:
    return str(cp.ok("GET", f"/v1/core/local/experiments/{exp}/logs")["data"])


def phases(cp: ControlPlane, exp: str) -> list[str]:
    events = cp.ok("GET", f"/v1/core/local/experiments/{exp}/events")["events"]
    return [e.get("phase", "") for e in events]


def builds(cp: ControlPlane, tag: str) -> list[Path]:
    """The environments built on the control plane's node for the requirements of ``tag``."""
    found = []
    for folder in (cp.home / "server" / "env-cache" / "builds").iterdir():
        text = (folder / "grid-build.log").read_text() if (folder / "grid-env.json").exists() else ""
        if f"tinypkg-{tag}" in text.replace("_", "-"):
            found.append(folder)
    return found


BUILDER = "[grid-ops] building environment"


def test_twenty_experiments_share_one_build_and_a_later_run_reuses_it(
    cp: ControlPlane, client_env: ControlPlane, tmp_path: Path
) -> None:
    counter = tmp_path / "builds.txt"
    actions = {"onBuild": ["echo built >> ${BUILD_COUNTER}"]}
    command = SHOW.format(tag="twenty") + ' --i "range(20)"'
    env = {"BUILD_COUNTER": str(counter)}
    start(cp, "env-twenty", command, source("twenty"), actions=actions, env=env)
    assert cp.wait_run("env-twenty", timeout=180)["status"]["phase"] == "RUN_STATE_SUCCEEDED"
    exps = cp.experiments("env-twenty")
    assert len(exps) == 20
    assert counter.read_text() == "built\n"  # the build action ran once, for the one build
    assert len(builds(cp, "twenty")) == 1
    logs = {e["name"]: build_log(cp, e["name"]) for e in exps}
    builders = [name for name, text in logs.items() if text.startswith(BUILDER)]
    assert len(builders) == 1
    assert "EXPERIMENT_STATE_IMAGE_BUILDING" in phases(cp, builders[0])
    assert "Installed 1 package" in logs[builders[0]] and "tinypkg-twenty==1.0" in logs[builders[0]]
    for name, text in logs.items():
        if name not in builders:
            first = text.splitlines()[0]
            assert first.startswith("[grid-ops] waiting for another") or first.endswith("not built again"), text
    env_dir = builds(cp, "twenty")[0]
    for e in exps:
        out = log(cp, e["name"])
        assert f"value 42 in-env True base-packages False prefix {env_dir}\n" in out, out
    # the build log is kept apart from the experiment's log; the SDK reads it too
    assert "Installed 1 package" not in log(cp, builders[0])
    assert Experiment(builders[0]).logs(build=True) == logs[builders[0]]
    # a second run with the same requirements uses the same environment without building
    start(
        cp, "env-twenty-again", SHOW.format(tag="twenty") + ' --i "[1, 2]"', source("twenty"), actions=actions, env=env
    )
    assert cp.wait_run("env-twenty-again", timeout=60)["status"]["phase"] == "RUN_STATE_SUCCEEDED"
    assert counter.read_text() == "built\n"
    for e in cp.experiments("env-twenty-again"):
        text = build_log(cp, e["name"])
        assert text.startswith("[grid-ops] environment ") and "found in this node's cache" in text
        assert "EXPERIMENT_STATE_IMAGE_BUILDING" not in phases(cp, e["name"])
        assert f"prefix {env_dir}\n" in log(cp, e["name"])


def test_a_broken_requirement_fails_every_experiment_with_the_end_of_the_build_log(
    cp: ControlPlane, client_env: ControlPlane
) -> None:
    files = source("broken", requirement="no-such-package-grid-ops==1.0")
    start(cp, "env-broken", 'python -c "print(1)" --i "[1, 2, 3]"', files)
    assert cp.wait_run("env-broken", timeout=60)["status"]["phase"] == "RUN_STATE_FAILED"
    exps = cp.experiments("env-broken")
    messages = {e["status"]["message"] for e in exps}
    assert len(messages) == 1  # the same failure for all, built once
    message = messages.pop()
    assert message.startswith("building the environment from ./requirements.txt failed: installing ./requirements.txt")
    assert "no-such-package-grid-ops" in message.split("The end of its build log", 1)[1]
    builders = [e["name"] for e in exps if build_log(cp, e["name"]).startswith(BUILDER)]
    assert len(builders) == 1
    others = [e["name"] for e in exps if e["name"] not in builders]
    assert all("failed in this run; not built again" in build_log(cp, name) for name in others)
    # the CLI shows the whole build log
    shown = CliRunner().invoke(cli, ["logs", builders[0], "--build"], prog_name="grid-ops")
    assert shown.exit_code == 0 and shown.output == build_log(cp, builders[0])
    assert "no-such-package-grid-ops" in shown.output and "print(1)" not in shown.output
    # a later run tries again (and fails again, building rather than repeating the old failure)
    start(cp, "env-broken-again", 'python -c "print(1)"', files)
    assert cp.wait_run("env-broken-again", timeout=60)["status"]["phase"] == "RUN_STATE_FAILED"
    assert build_log(cp, "env-broken-again-exp0").startswith(BUILDER)


def test_build_actions_run_in_order_into_the_build_log_while_the_run_is_building(cp: ControlPlane) -> None:
    actions = {
        "onBuildStart": ["sleep 1.5; echo start ${GRID_RUN_NAME}"],
        "onBuild": ["python -c 'import tinypkg_actions; print(\"on_build sees\", tinypkg_actions.VALUE)'"],
        "onBuildEnd": ["echo end ${GRID_EXPERIMENT_NAME}"],
        "onExperimentStart": ["echo experiment start"],
    }
    start(cp, "env-actions", "python -c \"print('command')\"", source("actions"), actions=actions)
    seen = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        run = cp.ok("GET", "/v1/core/local/runs/env-actions")
        exp = cp.experiments("env-actions")[0]
        seen.add((run["status"]["phase"], exp["status"]["phase"]))
        if run["status"]["phase"] in ("RUN_STATE_SUCCEEDED", "RUN_STATE_FAILED"):
            break
        time.sleep(0.1)
    assert ("RUN_STATE_BUILDING", "EXPERIMENT_STATE_IMAGE_BUILDING") in seen
    assert run["status"]["phase"] == "RUN_STATE_SUCCEEDED"
    text = build_log(cp, "env-actions-exp0")
    order = [
        "on_build_start: sleep 1.5",
        "start env-actions\n",
        "installing ./requirements.txt",
        "on_build: python",
        "on_build sees 42\n",
        "on_build_end: echo end",
        "end env-actions-exp0\n",
        "environment built in",
    ]
    positions = [text.index(piece) for piece in order]
    assert positions == sorted(positions), text
    experiment_log = log(cp, "env-actions-exp0")
    assert "on_build sees" not in experiment_log
    assert "experiment start\ncommand\n" in experiment_log


def test_a_failing_build_action_fails_the_build_naming_the_action(cp: ControlPlane) -> None:
    actions = {"onBuild": ["echo about to fail; exit 7"]}
    start(cp, "env-action-fails", 'python -c "print(1)"', source("actionfails"), actions=actions)
    assert cp.wait_run("env-action-fails")["status"]["phase"] == "RUN_STATE_FAILED"
    message = cp.experiments("env-action-fails")[0]["status"]["message"]
    assert message.startswith(
        "building the environment from ./requirements.txt failed: the on_build action "
        "'echo about to fail; exit 7' failed (exited with code 7)"
    )
    assert "about to fail" in message  # the end of the build log
    assert "about to fail" in build_log(cp, "env-action-fails-exp0")


def test_concurrent_builds_of_one_environment_from_two_runs_build_once(cp: ControlPlane, tmp_path: Path) -> None:
    counter = tmp_path / "builds.txt"
    actions = {"onBuildStart": ["sleep 1; echo built >> ${BUILD_COUNTER}"]}
    for name in ("env-race-a", "env-race-b"):
        start(cp, name, SHOW.format(tag="race"), source("race"), actions=actions, env={"BUILD_COUNTER": str(counter)})
    for name in ("env-race-a", "env-race-b"):
        assert cp.wait_run(name, timeout=60)["status"]["phase"] == "RUN_STATE_SUCCEEDED"
    assert counter.read_text() == "built\n"
    texts = [build_log(cp, f"{name}-exp0") for name in ("env-race-a", "env-race-b")]
    assert sorted(t.startswith(BUILDER) for t in texts) == [False, True]
    waiter = next(t for t in texts if not t.startswith(BUILDER))
    assert waiter.startswith("[grid-ops] waiting for another experiment's build of environment")
    # both waited in image_building: one building, one for the other's build
    assert all("EXPERIMENT_STATE_IMAGE_BUILDING" in phases(cp, f"{n}-exp0") for n in ("env-race-a", "env-race-b"))
    assert len(builds(cp, "race")) == 1


def test_without_uv_the_environment_is_built_with_pip(cp: ControlPlane) -> None:
    start(cp, "env-pip", SHOW.format(tag="pip"), source("pip"), env={"GRID_UV": ""})
    assert cp.wait_run("env-pip", timeout=120)["status"]["phase"] == "RUN_STATE_SUCCEEDED"
    text = build_log(cp, "env-pip-exp0")
    assert "-m pip install" in text and "Successfully installed tinypkg_pip-1.0" in text
    assert "value 42 in-env True base-packages False" in log(cp, "env-pip-exp0")


def test_a_run_without_its_dependency_file_runs_with_the_python_of_grid_ops(cp: ControlPlane) -> None:
    start(cp, "env-none", "python -c \"import requests; print('has requests')\"", {"x.txt": b""})
    assert cp.wait_run("env-none")["status"]["phase"] == "RUN_STATE_SUCCEEDED"
    assert log(cp, "env-none-exp0") == "has requests\n"
    chunk = cp.ok("GET", "/v1/core/local/experiments/env-none-exp0/logs", params={"build": "true"})
    assert (chunk["data"], chunk["eof"]) == ("", True)


def test_an_environment_yml_without_conda_fails_saying_conda_is_needed(cp: ControlPlane, tmp_path: Path) -> None:
    files = {"environment.yml": b"name: x\ndependencies:\n  - python=3.11\n"}
    empty = tmp_path / "bin"
    empty.mkdir()
    spec = {"image": {"dependencyFileInfo": {"path": "environment.yml"}}, "env": {"PATH": str(empty)}}
    start(cp, "env-conda", "/bin/echo ran", files, **spec)
    assert cp.wait_run("env-conda")["status"]["phase"] == "RUN_STATE_FAILED"
    message = cp.experiments("env-conda")[0]["status"]["message"]
    assert "needs conda, mamba or micromamba on the PATH of the machine that runs the experiment" in message
    assert "ran" not in log(cp, "env-conda-exp0")


def test_a_conda_environment_is_created_with_the_conda_found_on_path(cp: ControlPlane, tmp_path: Path) -> None:
    # conda cannot be installed here: a stand-in `conda` records its arguments and makes the prefix
    # with a `python` that reports CONDA_PREFIX, which is all the runner relies on.
    tools = tmp_path / "bin"
    tools.mkdir()
    fake = tools / "conda"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {tmp_path}/conda-calls.txt\n'
        'prefix=$4\nmkdir -p "$prefix/bin"\n'
        'printf \'#!/bin/sh\\necho "conda python in $CONDA_PREFIX"\\n\' > "$prefix/bin/python"\n'
        'chmod +x "$prefix/bin/python"\necho solved\n'
    )
    fake.chmod(0o755)
    files = {"environment.yml": b"name: x\ndependencies:\n  - numpy\n"}
    spec = {"image": {"dependencyFileInfo": {"path": "environment.yml"}}, "env": {"PATH": f"{tools}:/usr/bin:/bin"}}
    start(cp, "env-conda-ok", "python", files, **spec)
    assert cp.wait_run("env-conda-ok")["status"]["phase"] == "RUN_STATE_SUCCEEDED"
    calls = (tmp_path / "conda-calls.txt").read_text().split()
    assert calls[:3] == ["env", "create", "--prefix"] and calls[-2:] == ["--file", calls[-1]]
    assert calls[-1].endswith("/source/environment.yml")
    assert f"conda python in {calls[3]}\n" in log(cp, "env-conda-ok-exp0")
    assert "solved" in build_log(cp, "env-conda-ok-exp0")


def test_a_julia_experiment_needs_julia_on_path(cp: ControlPlane, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    start(cp, "env-julia", "/bin/echo ran", {"x.jl": b""}, image={"framework": "julia"}, env={"PATH": str(empty)})
    assert cp.wait_run("env-julia")["status"]["phase"] == "RUN_STATE_FAILED"
    message = cp.experiments("env-julia")[0]["status"]["message"]
    assert message.startswith("framework 'julia' needs the julia executable on PATH, and this machine has none")
    # julia cannot be installed here: a stand-in answers `julia --version` as Julia does
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "julia").write_text('#!/bin/sh\necho "julia version 1.9.3"\n')
    (tools / "julia").chmod(0o755)
    for name, framework in (("env-julia-ok", "julia:1.9.3"), ("env-julia-old", "julia:1.10.0")):
        start(cp, name, "/bin/echo ran", {"x.jl": b""}, image={"framework": framework}, env={"PATH": str(tools)})
    assert cp.wait_run("env-julia-ok")["status"]["phase"] == "RUN_STATE_SUCCEEDED"
    assert cp.wait_run("env-julia-old")["status"]["phase"] == "RUN_STATE_FAILED"
    assert cp.experiments("env-julia-old")[0]["status"]["message"] == (
        f"framework 'julia:1.10.0' asks for Julia 1.10.0, but {tools}/julia is Julia 1.9.3"
    )


def test_frameworks_are_checked_at_creation_and_recorded_as_the_runners(
    cp: ControlPlane, client_env: ControlPlane, tmp_path: Path
) -> None:
    body = {"name": "fw-bad", "spec": {"runControllerCommand": "true", "image": {"framework": "julia:latest"}}}
    r = cp.call("POST", "/v1/core/local/runs", json=body)
    assert r.status_code == 400
    assert r.json()["message"] == (
        "spec.image.framework: framework 'julia:latest' is not supported; use one of lightning, pytorch, torch, "
        "tensorflow, julia, torchelastic or julia:X.Y.Z"
    )
    assert cp.call("GET", "/v1/core/local/runs/fw-bad").status_code == 404
    (tmp_path / "t.py").write_text("print('ok')\n")
    with pytest.raises(ValidationError, match="framework 'caffe' is not supported; use one of lightning"):
        Run(name="fw-sdk-bad", run_command="python t.py", path=tmp_path, framework="caffe")
    run = Run(name="fw-torch", run_command="python t.py", path=tmp_path, framework="torch")
    run.start()
    assert run.wait(timeout=60) == "succeeded"
    assert run.experiments[0].runner_framework == "pytorch"
    body = {"name": "fw-api-torch", "spec": {"runControllerCommand": "true", "image": {"framework": "torch"}}}
    assert cp.call("POST", "/v1/core/local/runs", json=body).json()["spec"]["image"]["framework"] == "pytorch"


def test_a_dockerfile_is_refused_at_start_on_a_cluster_that_cannot_run_containers(
    cp: ControlPlane, client_env: ControlPlane, tmp_path: Path
) -> None:
    (tmp_path / "t.py").write_text("print('ok')\n")
    (tmp_path / "Dockerfile").write_text("FROM python:3.11\n")
    run = Run(name="docker-refused", run_command="python t.py", path=tmp_path, dockerfile="Dockerfile")
    with pytest.raises(GridError, match="cannot build the dockerfile 'Dockerfile'"):
        run.start()
    with pytest.raises(NotFoundError):
        Run("docker-refused")
    assert json.dumps(cp.ok("GET", "/v1/core/local/runs")).count("docker-refused") == 0


def test_a_command_is_looked_up_in_the_environment_it_runs_in(cp: ControlPlane) -> None:
    files = source("cmd")
    files["requirements.txt"] += b"# with a command that is nowhere\n"
    start(cp, "env-cmd-missing", "no-such-tool-grid-ops --x", files)
    assert cp.wait_run("env-cmd-missing")["status"]["phase"] == "RUN_STATE_FAILED"
    assert cp.experiments("env-cmd-missing")[0]["status"]["message"] == (
        "command not found: 'no-such-tool-grid-ops' is not on PATH, nor in the environment of ./requirements.txt"
    )
