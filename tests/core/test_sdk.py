"""The Python SDK (``Run``, ``Experiment``, ``api``, ``list_runs``, ``login``) end to end: a real control
plane process on 127.0.0.1 (``tests/core/controlplane.py``), real experiments, no mocks.

Every test runs from a small temporary directory holding only the scripts it needs, because ``start()``
snapshots the source directory. The SDK caches one client per process; the ``sdk`` fixture resets it
around each test so that environment changes take effect.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from grid_ops import Actions, Experiment, Resources, Run, api, list_runs, login
from grid_ops.client import GridClient, get_client, set_client
from grid_ops.credentials import CREDENTIALS_FILE
from grid_ops.embedded import stop_local_server
from grid_ops.errors import (
    AuthenticationError,
    ConflictError,
    GridError,
    NotFoundError,
    ValidationError,
    WaitTimeout,
)
from grid_ops.names import ADJECTIVES
from grid_ops.sdk.clusters import ListClusters
from tests.core.controlplane import ControlPlane, add_user

# prices of tests/core/controlplane.py TEST_CONFIG, cluster "local"
CPU1_PRICE = 0.36
CPU1_SPOT_PRICE = 0.12
CPU2_PRICE = 0.72

SLEEP = 'python3 -c "import time; time.sleep(30)"'
POLL = 0.2
STATUSES = {
    "pending",
    "queued",
    "image_building",
    "running",
    "paused",
    "succeeded",
    "failed",
    "cancelled",
    "deleted",
}

TRAIN = """\
import os, sys
print("start", os.environ["GRID_EXPERIMENT_NAME"])
print("args", sys.argv[1:], os.environ.get("FOO"))
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def point_sdk_at(mp: pytest.MonkeyPatch, cp: ControlPlane) -> None:
    for key, value in cp.env().items():
        mp.setenv(key, value)
    mp.setenv("GRID_CLUSTER_ID", "local")


def server_has_run(cp: ControlPlane, name: str) -> bool:
    r = cp.call("GET", f"/v1/core/local/runs/{name}")
    assert r.status_code in (200, 404), r.text
    return r.status_code == 200


def wait_until_running(run: Run, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while run.refresh().status != "running":
        assert time.monotonic() < deadline, f"run {run.name} still {run.status} after {timeout} s"
        time.sleep(POLL)


@pytest.fixture()
def sdk(client_env: ControlPlane) -> Iterator[ControlPlane]:
    """The SDK of this process pointed at the session's control plane (client cache reset around the test)."""
    set_client(None)
    yield client_env
    set_client(None)


@pytest.fixture()
def src(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small source directory, made the current directory (what ``start()`` snapshots)."""
    directory = tmp_path / "src"
    directory.mkdir()
    (directory / "train.py").write_text(TRAIN)
    monkeypatch.chdir(directory)
    return directory


@pytest.fixture()
def cancel_after() -> Iterator[list[Run]]:
    """Runs appended here are cancelled at teardown, so a failing test does not hold the cluster's CPUs."""
    runs: list[Run] = []
    yield runs
    for run in runs:
        with contextlib.suppress(GridError):
            run.cancel()


# --------------------------------------------------------------------------- a finished 2x2 sweep


@dataclass
class Sweep:
    run: Run
    status: str
    src: Path
    user_id: str


@pytest.fixture(scope="module")
def sweep(cp: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweep]:
    """A 2x2 grid sweep started with ``Run(run_command=..., path=...)`` and waited for."""
    directory = tmp_path_factory.mktemp("sweep-src")
    (directory / "train.py").write_text(TRAIN)
    elsewhere = tmp_path_factory.mktemp("sweep-cwd")  # empty: path= must be what is shipped
    with pytest.MonkeyPatch.context() as mp:
        point_sdk_at(mp, cp)
        mp.chdir(elsewhere)
        set_client(None)
        run = Run(run_command='python3 train.py --lr "[0.1, 0.01]" --layers "[1, 2]"', path=directory)
        run.name = unique("sdk-sweep")
        run.description = "a 2x2 sweep"
        run.env_vars = {"FOO": "bar"}
        run.start()
        status = run.wait(timeout=60, poll_interval=POLL)
        yield Sweep(run=run, status=status, src=directory, user_id=cp.user_id)
        set_client(None)


def test_unstarted_run_repr_says_not_started_and_settings_are_readable_and_settable(
    sdk: ControlPlane, src: Path
) -> None:
    run = Run(run_command='python3 train.py --a "[1, 2, 3]" --b "[4, 5]"', path=src)
    text = repr(run)
    assert text.startswith("Run(")
    assert "not started" in text and run.name in text
    assert run.status == "not started"
    assert run.strategy == "grid_search" and run.num_trials == 0 and run.description is None
    assert run.path == src and run.framework == "lightning" and run.dependency_file == "./requirements.txt"
    assert len(run) == 0 and f"{run.name}-exp0" not in run and run.id is None

    name = unique("settable")
    run.name = name
    run.description = "set before start"
    run.strategy = "random_search"
    run.num_trials = 2
    run.strategy_options = {"seed": "5"}
    run.resources = Resources(instance_type="cpu-2")
    assert (run.name, run.description, run.strategy, run.num_trials) == (name, "set before start", "random_search", 2)
    assert run.strategy_options == {"seed": "5"}
    assert name in repr(run) and "set before start" in repr(run)

    # the settings take effect: a dry run plans 2 trials named after the new name, on cpu-2
    run.dry_run = True
    assert run.start() is True
    plan = run.plan
    assert plan is not None
    assert [p["name"] for p in plan] == [f"{name}-exp0", f"{name}-exp1"]
    assert {p["instance_type"] for p in plan} == {"cpu-2"}
    assert run.status == "not started"

    for attribute, bad, rule in (
        ("name", "Not_Valid", "lowercase letters, digits and hyphens"),
        ("strategy", "bogus", "grid_search, random_search, none"),
        ("num_trials", -1, "whole number"),
    ):
        with pytest.raises(ValidationError, match=re.escape(rule)):
            setattr(run, attribute, bad)
    assert (run.name, run.strategy, run.num_trials) == (name, "random_search", 2)


def test_setting_num_trials_before_start_takes_effect_when_strategy_options_named_it(
    sdk: ControlPlane, src: Path
) -> None:
    run = Run(
        run_command='true --a "[1, 2, 3, 4, 5, 6]"',
        strategy="random_search",
        strategy_options={"num_trials": 3, "seed": 1},
        dry_run=True,
    )
    assert run.num_trials == 3
    run.num_trials = 5  # a documented, settable property
    assert run.num_trials == 5
    run.start()
    assert run.plan is not None and len(run.plan) == 5


def test_settings_cannot_change_after_start(sweep: Sweep, sdk: ControlPlane) -> None:
    run = sweep.run
    before = (run.name, run.description, run.strategy, run.num_trials, run.run_command)
    for attribute, value in (
        ("name", "another-name"),
        ("description", "changed"),
        ("strategy", "random_search"),
        ("num_trials", 3),
        ("run_command", "true"),
        ("env_vars", {"FOO": "baz"}),
        ("resources", Resources(instance_type="cpu-2")),
    ):
        with pytest.raises(GridError) as info:
            setattr(run, attribute, value)
        message = str(info.value)
        assert "already started" in message and attribute in message and run.name in message
    assert (run.name, run.description, run.strategy, run.num_trials, run.run_command) == before
    with pytest.raises(GridError, match="already started"):
        run.start()


def test_sweep_waits_to_succeeded_with_one_experiment_per_grid_point(sweep: Sweep, sdk: ControlPlane) -> None:
    run = sweep.run
    assert sweep.status == "succeeded"
    assert run.status == "succeeded"
    assert len(run) == 4
    assert f"{run.name}-exp0" in run and f"{run.name}-exp3" in run
    assert f"{run.name}-exp4" not in run and 0 not in run
    experiments = list(run)
    assert all(isinstance(e, Experiment) for e in experiments)
    assert [e.name for e in experiments] == [f"{run.name}-exp{i}" for i in range(4)]
    # the first swept argument varies slowest
    assert [e.parameters for e in experiments] == [
        {"lr": "0.1", "layers": "1"},
        {"lr": "0.1", "layers": "2"},
        {"lr": "0.01", "layers": "1"},
        {"lr": "0.01", "layers": "2"},
    ]
    assert [e.command for e in experiments] == [
        ["python3", "train.py", "--lr", lr, "--layers", layers]
        for lr, layers in (("0.1", "1"), ("0.1", "2"), ("0.01", "1"), ("0.01", "2"))
    ]
    for e in experiments:
        assert e.status == "succeeded" and e.exit_code == 0
        assert e.start_timestamp is not None and e.finish_timestamp is not None
        hours = (e.finish_timestamp - e.start_timestamp).total_seconds() / 3600
        assert e.cost > 0
        assert e.cost == pytest.approx(CPU1_PRICE * hours, rel=0.02, abs=1e-9)
    assert run.cost == pytest.approx(sum(e.cost for e in experiments), rel=1e-6, abs=1e-9)


def test_experiment_loaded_by_name_exposes_every_reference_property(sweep: Sweep, sdk: ControlPlane) -> None:
    run = sweep.run
    e = Experiment(f"{run.name}-exp0")
    assert isinstance(e.created_at, datetime) and e.created_at.tzinfo is not None
    assert e.description == "a 2x2 sweep"
    assert e.name == f"{run.name}-exp0"
    assert e.actions == Actions()
    assert e.cluster_id == "local"
    assert e.command == ["python3", "train.py", "--lr", "0.1", "--layers", "1"]
    assert e.datastore == []
    assert e.desired_state in STATUSES
    assert e.dry_run is False
    assert e.env.get("FOO") == "bar"
    assert e.runner_framework == "lightning"
    assert e.runner_dockerfile is None
    assert e.runner_requirements_file == "./requirements.txt"
    assert e.runner_package_manager == "pip"
    assert e.instance_type == "cpu-1"
    assert isinstance(e.resources, Resources)
    assert e.resources.instance_type == "cpu-1" and e.resources.use_spot is False
    assert e.run_controller_id is None or isinstance(e.run_controller_id, str)
    assert e.scratch is None
    assert e.source_code is None or isinstance(e.source_code, str)
    assert e.use_spot is False
    assert e.user == sweep.user_id
    assert e.cost > 0
    assert e.deleted_timestamp is None
    assert isinstance(e.start_timestamp, datetime) and isinstance(e.finish_timestamp, datetime)
    assert e.created_at <= e.start_timestamp <= e.finish_timestamp
    assert e.hourly_cost == pytest.approx(CPU1_PRICE)
    assert e.message is not None and "code 0" in e.message
    assert e.status == "succeeded"
    assert e.parameters == {"lr": "0.1", "layers": "1"}
    assert e.run_name == run.name
    assert e.name in repr(e) and "succeeded" in repr(e)


def test_experiment_logs_return_its_output_and_tail_returns_the_last_lines(sweep: Sweep, sdk: ControlPlane) -> None:
    name = sweep.run.name
    e = Experiment(f"{name}-exp3")
    assert e.logs() == f"start {name}-exp3\nargs ['--lr', '0.01', '--layers', '2'] bar\n"
    assert e.logs(tail=1) == "args ['--lr', '0.01', '--layers', '2'] bar\n"
    assert e.logs(tail=2) == e.logs()


def test_run_loaded_by_name_has_the_started_settings_and_experiments(sweep: Sweep, sdk: ControlPlane) -> None:
    started = sweep.run
    loaded = Run(started.name)
    assert loaded.name == started.name
    assert loaded.run_command == 'python3 train.py --lr "[0.1, 0.01]" --layers "[1, 2]"'
    assert loaded.description == "a 2x2 sweep"
    assert loaded.strategy == "grid_search"
    assert loaded.env_vars == {"FOO": "bar"}
    assert loaded.cluster_id == "local"
    assert loaded.status == "succeeded"
    assert loaded.id == started.id
    assert loaded.user == sweep.user_id
    assert len(loaded) == 4
    assert [e.name for e in loaded] == [e.name for e in started]
    assert "succeeded" in repr(loaded) and "not started" not in repr(loaded)
    with pytest.raises(GridError, match="already started"):
        loaded.description = "no"


# --------------------------------------------------------------------------- the source snapshot


def test_experiments_run_in_their_own_copy_of_the_source_taken_at_start(sdk: ControlPlane, src: Path) -> None:
    (src / "data.txt").write_text("original\n")
    (src / "train.py").write_text(
        "import os, sys, time\n"
        "if sys.argv[1:] == ['--i', '0']:\n"
        "    time.sleep(1.5)\n"
        "seen = 'shared' if os.path.exists('out.txt') else 'fresh'\n"
        "print('VERSION 1', open('data.txt').read().strip(), seen, os.getcwd())\n"
        "open('out.txt', 'w').write('written by the experiment')\n"
    )
    run = Run(run_command='python3 train.py --i "[0, 1]"', max_parallel=1)
    run.start()
    # edit the source while exp0 sleeps and before exp1 (max_parallel=1) has started
    (src / "train.py").write_text("print('VERSION 2')\n")
    (src / "data.txt").write_text("edited\n")
    assert run.wait(timeout=30, poll_interval=POLL) == "succeeded"
    for experiment in run:
        output = experiment.logs()
        # the script and data as they were at start(), in a copy no other experiment wrote into
        assert output.startswith("VERSION 1 original fresh "), output
        workdir = Path(output.split()[-1])
        assert workdir.resolve() != src.resolve()
    assert not (src / "out.txt").exists(), "the experiment wrote into the user's directory"


def test_files_in_gitignore_are_not_shipped(sdk: ControlPlane, src: Path) -> None:
    (src / "list_files.py").write_text(
        "import os\n"
        "for root, dirs, files in os.walk('.'):\n"
        "    for f in files:\n"
        "        print(os.path.normpath(os.path.join(root, f)))\n"
    )
    (src / ".gitignore").write_text("secret.txt\nbuild/\n*.log\n!important.log\n")
    (src / "important.log").write_text("kept by negation")
    (src / "keep.txt").write_text("keep")
    (src / "secret.txt").write_text("secret")
    (src / "debug.log").write_text("log")
    (src / "build").mkdir()
    (src / "build" / "artifact.bin").write_bytes(b"\0" * 100)
    (src / "sub").mkdir()
    (src / "sub" / "nested.log").write_text("log")
    (src / "sub" / "code.py").write_text("x = 1")
    (src / "sub" / ".gitignore").write_text("local.cfg\n")
    (src / "sub" / "local.cfg").write_text("machine-specific")
    (src / ".git").mkdir()
    (src / ".git" / "config").write_text("[core]")
    run = Run(run_command="python3 list_files.py")
    run.start()
    assert run.wait(timeout=30, poll_interval=POLL) == "succeeded"
    shipped = set(Experiment(f"{run.name}-exp0").logs().split())
    assert {"list_files.py", "train.py", "keep.txt", ".gitignore", "important.log", "sub/code.py"} <= shipped
    for left_out in ("secret.txt", "debug.log", "build/artifact.bin", "sub/nested.log", "sub/local.cfg", ".git/config"):
        assert left_out not in shipped, f"{left_out} was shipped: {sorted(shipped)}"


# --------------------------------------------------------------------------- names


def test_autogenerated_name_matches_adjective_surname_number(sdk: ControlPlane, src: Path) -> None:
    names = {Run(run_command="true").name for _ in range(5)}
    for name in names:
        match = re.fullmatch(r"([a-z]+)-([a-z]+)-(\d{4})", name)
        assert match, name
        assert match.group(1) in ADJECTIVES
    assert len(names) > 1


@pytest.mark.parametrize("bad", ["Upper-case", "under_score", "-leading", "trailing-", "has space", "a" * 64, ""])
def test_invalid_run_name_raises_validation_error_naming_the_rule(sdk: ControlPlane, src: Path, bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        Run(name=bad, run_command="true")
    message = str(info.value)
    assert repr(bad) in message
    assert "lowercase letters, digits and hyphens" in message and "63" in message


def test_duplicate_run_name_raises_conflict_with_the_servers_message(sdk: ControlPlane, src: Path) -> None:
    name = unique("dup")
    first = Run(name=name, run_command="true")
    first.start()
    with pytest.raises(ConflictError) as info:
        Run(name=name, run_command='true --x "[1, 2, 3]"').start()
    assert info.value.status_code == 409
    assert f"a run named {name!r} already exists" in str(info.value)
    assert first.wait(timeout=30, poll_interval=POLL) == "succeeded"
    assert len(Run(name)) == 1  # the first run is untouched


# --------------------------------------------------------------------------- cancel, delete, wait, refresh


def test_cancel_returns_the_experiment_names_and_the_run_ends_cancelled(
    sdk: ControlPlane, src: Path, cancel_after: list[Run]
) -> None:
    run = Run(run_command=f'{SLEEP} --x "[1, 2, 3]"')
    cancel_after.append(run)
    run.start()
    assert len(run) == 3  # recorded at creation, before any experiment ran
    wait_until_running(run)
    names = run.cancel()
    assert sorted(names) == [f"{run.name}-exp{i}" for i in range(3)]
    assert run.wait(timeout=20, poll_interval=POLL) == "cancelled"
    for experiment in run:
        assert experiment.status == "cancelled"
        assert experiment.message is not None and "cancelled" in experiment.message
    assert Run(run.name).status == "cancelled"


def live_processes_with(tag: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or entry.name == str(os.getpid()):
            continue
        try:
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
            if tag.encode() in (entry / "cmdline").read_bytes() and state != "Z":
                found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def test_delete_makes_loading_the_run_raise_not_found(sdk: ControlPlane, src: Path, cancel_after: list[Run]) -> None:
    tag = unique("delete-probe")
    run = Run(name=unique("to-delete"), run_command=f'{SLEEP} --x "[1, 2]" --tag {tag}')
    cancel_after.append(run)
    run.start()
    wait_until_running(run)
    assert run.delete() is True
    assert run.status == "deleted"
    with pytest.raises(NotFoundError) as info:
        Run(run.name)
    assert run.name in str(info.value)
    assert isinstance(info.value, LookupError)
    assert run.name not in {r.name for r in list_runs()}
    assert not server_has_run(sdk, run.name)
    deadline = time.monotonic() + 15  # deleting a running run cancels its experiments first
    while live_processes_with(tag):
        assert time.monotonic() < deadline, f"experiments of the deleted run still run: {live_processes_with(tag)}"
        time.sleep(POLL)


def test_len_membership_and_iteration_agree_after_an_experiment_is_deleted(sdk: ControlPlane, src: Path) -> None:
    run = Run(run_command='true --a "[1, 2]"')
    run.start()
    assert run.wait(timeout=30, poll_interval=POLL) == "succeeded"
    assert Experiment(f"{run.name}-exp0").delete() is True
    with pytest.raises(NotFoundError):
        Experiment(f"{run.name}-exp0")
    for view in (run.refresh(), Run(run.name)):
        names = [e.name for e in view]
        assert f"{run.name}-exp1" in names
        assert len(view) == len(names), f"len(run) = {len(view)} but iterating yields {names}"
        assert all(name in view for name in names)


def test_wait_with_timeout_raises_wait_timeout_naming_the_run_and_refresh_updates_status(
    sdk: ControlPlane, src: Path, cancel_after: list[Run]
) -> None:
    run = Run(run_command=SLEEP)
    cancel_after.append(run)
    run.start()
    assert run.status in {"pending", "building", "running"}
    began = time.monotonic()
    with pytest.raises(WaitTimeout) as info:
        run.wait(timeout=0.5, poll_interval=0.1)
    assert time.monotonic() - began < 5
    assert repr(run.name) in str(info.value) and "0.5" in str(info.value)
    assert isinstance(info.value, TimeoutError)
    wait_until_running(run)  # refresh() is what moves run.status forward
    assert run.status == "running"
    assert run.estimated_hourly_cost == pytest.approx(CPU1_PRICE)  # one experiment running now
    run.cancel()
    assert run.wait(timeout=20, poll_interval=POLL) == "cancelled"


# --------------------------------------------------------------------------- dry runs and cost


def test_dry_run_start_stores_nothing_and_plans_each_experiments_command(sdk: ControlPlane, src: Path) -> None:
    name = unique("dry")
    run = Run(name=name, run_command='python3 train.py --lr "[0.1, 0.01]" --layers "[1, 2]"', dry_run=True)
    assert run.start() is True
    assert run.status == "not started"
    assert not server_has_run(sdk, name)
    with pytest.raises(NotFoundError):
        Run(name)
    assert name not in {r.name for r in list_runs()}
    plan = run.plan
    assert plan is not None
    assert [p["name"] for p in plan] == [f"{name}-exp{i}" for i in range(4)]
    assert [p["command"] for p in plan] == [
        ["python3", "train.py", "--lr", "0.1", "--layers", "1"],
        ["python3", "train.py", "--lr", "0.1", "--layers", "2"],
        ["python3", "train.py", "--lr", "0.01", "--layers", "1"],
        ["python3", "train.py", "--lr", "0.01", "--layers", "2"],
    ]
    assert all(p["instance_type"] == "cpu-1" and p["hourly_cost"] == pytest.approx(CPU1_PRICE) for p in plan)


def test_estimated_hourly_cost_before_start_is_price_times_experiments_and_stores_nothing(
    sdk: ControlPlane, src: Path
) -> None:
    name = unique("estimate")
    run = Run(name=name, run_command='true --a "[1, 2, 3, 4]"')
    assert run.estimated_hourly_cost == pytest.approx(4 * CPU1_PRICE)
    assert not server_has_run(sdk, name)
    assert Run(run_command='true --a "[1, 2]"', resources=Resources(instance_type="cpu-2")).estimated_hourly_cost == (
        pytest.approx(2 * CPU2_PRICE)
    )
    spot = Run(run_command='true --a "[1, 2, 3]"', resources=Resources(use_spot=True))
    assert spot.estimated_hourly_cost == pytest.approx(3 * CPU1_SPOT_PRICE)


# --------------------------------------------------------------------------- random search


def test_random_search_with_the_same_seed_plans_the_same_parameters(sdk: ControlPlane, src: Path) -> None:
    command = 'true --a "[1, 2, 3, 4]" --b "[5, 6, 7]"'

    def planned(seed: int) -> list[dict[str, str]]:
        run = Run(
            run_command=command, strategy="random_search", num_trials=3, strategy_options={"seed": seed}, dry_run=True
        )
        run.start()
        assert run.plan is not None
        return [p["parameters"] for p in run.plan]

    first = planned(7)
    assert first == planned(7)
    assert len(first) == 3
    assert len({tuple(sorted(p.items())) for p in first}) == 3  # distinct points
    assert all(p["a"] in {"1", "2", "3", "4"} and p["b"] in {"5", "6", "7"} for p in first)
    assert len({tuple(tuple(sorted(p.items())) for p in planned(seed)) for seed in range(5)}) > 1


def test_random_search_with_more_trials_than_the_grid_is_a_server_validation_error(
    sdk: ControlPlane, src: Path
) -> None:
    name = unique("too-many")
    run = Run(name=name, run_command='true --a "[1, 2]"', strategy="random_search", num_trials=5)
    with pytest.raises(ValidationError) as info:
        run.start()
    assert info.value.status_code in (400, 422)  # the control plane's answer, not a local check
    assert "num_trials=5" in str(info.value) and "2" in str(info.value)
    assert run.status == "not started"
    assert not server_has_run(sdk, name)


def test_random_search_without_num_trials_is_an_error(sdk: ControlPlane, src: Path) -> None:
    name = unique("no-trials")
    with pytest.raises(ValidationError, match=r"random_search.*num_trials"):
        Run(name=name, run_command='true --a "[1, 2]"', strategy="random_search").start()
    assert not server_has_run(sdk, name)


# --------------------------------------------------------------------------- config file


GRID_YML = """\
compute:
  train:
    instance: cpu-2
    environment:
      FOO: from-file
      ONLY_FILE: "1"
hyper_params:
  settings:
    strategy: grid_search
  params:
    --lr: "[0.1, 0.01]"
"""


def test_config_file_sets_instance_type_params_and_environment(sdk: ControlPlane, src: Path) -> None:
    (src / "grid.yml").write_text(GRID_YML)
    run = Run(run_command="python3 train.py", config_file="grid.yml")
    assert run.resources.instance_type == "cpu-2"
    run.start()
    assert run.wait(timeout=30, poll_interval=POLL) == "succeeded"
    experiments = list(run)
    assert [e.parameters for e in experiments] == [{"lr": "0.1"}, {"lr": "0.01"}]
    assert {e.instance_type for e in experiments} == {"cpu-2"}
    assert all(e.hourly_cost == pytest.approx(CPU2_PRICE) for e in experiments)
    assert all(e.env.get("FOO") == "from-file" for e in experiments)
    assert experiments[1].logs().splitlines()[-1] == "args ['--lr', '0.01'] from-file"


def test_explicit_arguments_win_over_the_config_file(sdk: ControlPlane, src: Path) -> None:
    (src / "grid.yml").write_text(GRID_YML)
    run = Run(
        run_command="python3 train.py",
        config_file=src / "grid.yml",
        resources=Resources(instance_type="cpu-1"),
        env_vars={"FOO": "explicit"},
        dry_run=True,
    )
    assert run.resources.instance_type == "cpu-1"
    assert run.env_vars == {"FOO": "explicit", "ONLY_FILE": "1"}
    run.start()
    assert run.plan is not None
    assert [(p["instance_type"], p["parameters"]) for p in run.plan] == [
        ("cpu-1", {"lr": "0.1"}),
        ("cpu-1", {"lr": "0.01"}),
    ]


def test_explicit_num_trials_beats_the_config_files_num_trials(sdk: ControlPlane, src: Path) -> None:
    (src / "grid.yml").write_text(
        "hyper_params:\n  settings:\n    strategy: random_search\n    num_trials: 4\n    seed: 1\n"
    )
    from_file = Run(run_command='true --a "[1, 2, 3, 4, 5, 6]"', config_file="grid.yml", dry_run=True)
    assert (from_file.strategy, from_file.num_trials) == ("random_search", 4)
    run = Run(run_command='true --a "[1, 2, 3, 4, 5, 6]"', config_file="grid.yml", num_trials=2, dry_run=True)
    assert run.num_trials == 2
    run.start()
    assert run.plan is not None and len(run.plan) == 2


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        ("compute: [\n  unclosed: {\n", "is not valid YAML"),
        ("compute:\n  train:\n    instanse: cpu-2\n", "unknown key 'compute.train.instanse'"),
    ],
    ids=["missing", "not-yaml", "unknown-key"],
)
def test_bad_config_file_raises_a_clear_error_naming_the_problem_and_stores_nothing(
    sdk: ControlPlane, src: Path, content: str | None, expected: str
) -> None:
    path = src / "grid.yml"
    if content is not None:
        path.write_text(content)
    name = unique("bad-config")
    with pytest.raises(ValidationError) as info:
        Run(name=name, run_command="true", config_file=path).start()
    assert expected in str(info.value)
    assert str(path) in str(info.value)
    assert not server_has_run(sdk, name)


# --------------------------------------------------------------------------- resources


def test_resources_cpus_picks_an_instance_type_that_fits(sdk: ControlPlane, src: Path) -> None:
    run = Run(run_command="true", resources=Resources(cpus=2))
    run.start()
    assert run.wait(timeout=30, poll_interval=POLL) == "succeeded"
    (experiment,) = list(run)
    assert experiment.instance_type == "cpu-2"
    assert experiment.hourly_cost == pytest.approx(CPU2_PRICE)


def test_resources_beyond_the_chosen_instance_type_are_refused(sdk: ControlPlane, src: Path) -> None:
    name = unique("too-big")
    run = Run(name=name, run_command="true", resources=Resources(instance_type="cpu-1", cpus=2))
    with pytest.raises(ValidationError) as info:
        run.start()
    message = str(info.value)
    assert "'cpu-1'" in message and "cpus 2 > 1" in message
    assert not server_has_run(sdk, name)


# --------------------------------------------------------------------------- failures


def test_command_exiting_3_fails_the_run_and_the_message_says_exit_code_3(sdk: ControlPlane, src: Path) -> None:
    run = Run(run_command='python3 -c "import sys; sys.exit(3)"')
    run.start()
    assert run.wait(timeout=30, poll_interval=POLL) == "failed"
    (experiment,) = list(run)
    assert experiment.status == "failed"
    assert experiment.exit_code == 3
    assert experiment.message is not None and "exited with code 3" in experiment.message


def test_command_that_does_not_exist_fails_with_command_not_found(sdk: ControlPlane, src: Path) -> None:
    run = Run(run_command="no-such-command-grid-ops --x 1")
    run.start()
    assert run.wait(timeout=30, poll_interval=POLL) == "failed"
    (experiment,) = list(run)
    assert experiment.status == "failed"
    assert experiment.message is not None
    assert "command not found" in experiment.message and "no-such-command-grid-ops" in experiment.message


# --------------------------------------------------------------------------- api, list_runs, auth


def test_list_clusters_returns_the_default_cluster_and_the_clusters(sdk: ControlPlane) -> None:
    answer = api.list_clusters()
    assert isinstance(answer, ListClusters)
    assert answer.default_cluster == "local"
    assert {c.id for c in answer.clusters} == {"local", "big"}
    assert answer == ListClusters(default_cluster="local", clusters=answer.clusters)


def test_get_instance_types_lists_the_clusters_types_and_prices(sdk: ControlPlane) -> None:
    types = api.get_instance_types("local")
    assert [(t.name, t.cpu, t.hourly_cost) for t in types] == [("cpu-1", "1", CPU1_PRICE), ("cpu-2", "2", CPU2_PRICE)]
    assert [t.name for t in api.get_instance_types("big")] == ["small"]
    with pytest.raises(NotFoundError):
        api.get_instance_types("no-such-cluster")


def test_list_runs_includes_the_started_runs(sdk: ControlPlane, src: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    names = [f"listed-{tag}-a", f"listed-{tag}-b"]
    for name in names:
        Run(name=name, run_command="true").start()
    runs = list_runs()
    assert all(isinstance(r, Run) for r in runs)
    assert set(names) <= {r.name for r in runs}
    assert sorted(r.name for r in list_runs(query=f"listed-{tag}")) == names


def test_wrong_api_key_raises_authentication_error_with_the_servers_message(
    sdk: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRID_API_KEY", "not-the-key")
    set_client(None)
    with pytest.raises(AuthenticationError) as info:
        api.list_clusters()
    assert info.value.status_code == 401
    message = str(info.value)
    assert "wrong user id or API key" in message  # the server's words
    assert sdk.user_id in message
    assert "not-the-key" not in message


def test_another_users_run_is_not_found_for_us(sdk: ControlPlane, src: Path) -> None:
    user_id, key = add_user(sdk.home, unique("bob"))
    name = unique("bobs-run")
    with GridClient(sdk.url, user_id, key, cluster_id="local") as bob:
        theirs = Run(name=name, run_command="true", client=bob)
        theirs.start()
        assert theirs.wait(timeout=30, poll_interval=POLL) == "succeeded"
        with pytest.raises(NotFoundError):
            Run(name)
        with pytest.raises(NotFoundError):
            Experiment(f"{name}-exp0")
        assert name not in {r.name for r in list_runs()}
        # and ours is not theirs
        ours = Run(name=unique("mine"), run_command="true")
        ours.start()
        with pytest.raises(NotFoundError):
            Run(ours.name, client=bob)


def test_login_writes_a_private_credentials_file_that_later_clients_use(
    sdk: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    username = unique("carol")
    user_id, key = add_user(sdk.home, username)
    home = tmp_path / "login-home"
    monkeypatch.setenv("GRID_OPS_HOME", str(home))
    for var in ("GRID_URL", "GRID_USER_ID", "GRID_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    try:
        with pytest.raises(AuthenticationError):
            login(username=username, api_key="wrong-key", url=sdk.url)
        assert not (home / CREDENTIALS_FILE).exists()  # a refused login writes nothing
        assert login(username=username, api_key=key, url=sdk.url) is True
        path = home / CREDENTIALS_FILE
        assert path.is_file()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        set_client(None)  # a later client, built from the environment (unset) and the file
        client = get_client()
        assert (client.url, client.user_id) == (sdk.url, user_id)
        assert client.get_user().id == user_id
        assert api.list_clusters().default_cluster == "local"
        assert not (home / "local-server.json").exists()  # no embedded server was started instead
        # another process with no GRID_* variables reads the same file
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRID_")}
        env["GRID_OPS_HOME"] = str(home)
        probe = "from grid_ops.client import get_client; c = get_client(); print(c.url, c.get_user().id)"
        out = subprocess.run(
            [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == [sdk.url, user_id]
    finally:
        set_client(None)
        stop_local_server(home)


def test_loading_a_run_shows_what_another_client_stored_without_refusing_it(client_env: ControlPlane) -> None:
    from grid_ops import Run

    body = {
        "name": "odd-stored",
        "spec": {"runControllerCommand": "true", "scratch": [{"mountPath": "rel/dir", "sizeGb": 0}],
                 "resources": {"cpu": "0", "storageGb": "7"}},
    }
    assert client_env.call("POST", "/v1/core/local/runs", json=body).status_code == 200
    run = Run("odd-stored")
    assert run.name == "odd-stored"
    assert run.wait(timeout=30) == "succeeded"


def test_a_git_url_that_cannot_be_read_is_refused_at_start_naming_it(client_env: ControlPlane) -> None:
    from grid_ops import Run
    from grid_ops.errors import ValidationError

    run = Run(name="from-git", run_command="python train.py", url="https://example.invalid/repo.git")
    with pytest.raises(ValidationError, match=r"'https://example.invalid/repo.git' is not a git repository that can"):
        run.start()
    assert client_env.call("GET", "/v1/core/local/runs/from-git").status_code == 404
