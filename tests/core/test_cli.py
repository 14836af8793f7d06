"""The ``grid-ops`` command line against a real control plane, with real experiments.

Most tests run the real click commands in-process (``CliRunner``); a few run the installed ``grid-ops``
console script as a subprocess, the way users and scripts do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result

from grid_ops.cli.main import cli
from grid_ops.embedded import stop_local_server
from tests.core.controlplane import ControlPlane

GRID_OPS = Path(sys.executable).parent / "grid-ops"
PY = "python3"


@pytest.fixture()
def src(tmp_path: Path) -> Path:
    """A small source directory to upload (so runs never snapshot the repository)."""
    directory = tmp_path / "src"
    directory.mkdir()
    (directory / "lines.py").write_text("import sys\nfor i in range(int(sys.argv[1])):\n    print('line', i)\n")
    return directory


def grid(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run the real ``grid-ops`` command group in-process."""
    return CliRunner().invoke(cli, list(args), env=env, prog_name="grid-ops")


def ok(*args: str, env: dict[str, str] | None = None) -> Result:
    """``grid(...)`` that must exit 0."""
    result = grid(*args, env=env)
    assert result.exit_code == 0, f"grid-ops {' '.join(args)} -> {result.exit_code}\n{result.output}"
    return result


def script(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the installed ``grid-ops`` console script as a subprocess."""
    return subprocess.run([str(GRID_OPS), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)


def rows(table: str, prefix: str) -> list[list[str]]:
    """The rows of a printed table whose first cell starts with ``prefix``, split on whitespace."""
    return [line.split() for line in table.splitlines() if line.startswith(prefix)]


def wait_until_running(cp: ControlPlane, run: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while cp.ok("GET", f"/v1/core/local/runs/{run}")["status"]["phase"] != "RUN_STATE_RUNNING":
        assert time.monotonic() < deadline, f"run {run} did not start running"
        time.sleep(0.1)


# --------------------------------------------------------------------------- run and status


def test_run_sweep_with_wait_then_status_shows_every_experiment_with_its_parameters_and_status(
    client_env: ControlPlane, src: Path
) -> None:
    result = ok(
        "run",
        "--name",
        "cli-sweep",
        "--path",
        str(src),
        "--wait",
        PY,
        "-c",
        "import sys; print(sys.argv[1:])",
        "--lr",
        "[0.1, 0.01]",
        "--layers=[1, 2]",
    )
    assert "started run cli-sweep: 4 experiments on cluster local" in result.stdout
    assert "grid-ops status cli-sweep" in result.stdout

    table = ok("status", "cli-sweep").stdout
    header = next(line for line in table.splitlines() if line.startswith("EXPERIMENT"))
    assert header.split() == ["EXPERIMENT", "STATUS", "lr", "layers", "DURATION", "COST", "MESSAGE"]
    experiments = rows(table, "cli-sweep-exp")
    assert [(r[0], r[1], r[2], r[3]) for r in experiments] == [
        ("cli-sweep-exp0", "succeeded", "0.1", "1"),
        ("cli-sweep-exp1", "succeeded", "0.1", "2"),
        ("cli-sweep-exp2", "succeeded", "0.01", "1"),
        ("cli-sweep-exp3", "succeeded", "0.01", "2"),
    ]
    assert all(r[4].endswith("s") and r[5].startswith("$") for r in experiments)

    summary = rows(ok("status").stdout, "cli-sweep ")
    assert summary and summary[0][1:3] == ["succeeded", "4/4"]
    assert ok("logs", "cli-sweep-exp3").stdout.strip() == "['--lr', '0.01', '--layers=2']"


def test_run_with_wait_exits_1_when_the_run_fails(client_env: ControlPlane, src: Path) -> None:
    code = "import sys; print('loading', flush=True); print('bad learning rate', file=sys.stderr); sys.exit(3)"
    result = grid("run", "--name", "cli-fails", "--path", str(src), "--wait", PY, "-c", code)
    assert result.exit_code == 1, result.output
    assert "error: run cli-fails failed: 1 of 1 experiments failed" in result.stderr
    assert "exited with code 3" in result.stdout
    assert "Traceback" not in result.output
    # the failed experiment's last log line, then which log to read
    assert "  cli-fails-exp0 last log line: bad learning rate\n" in result.stderr
    assert result.stderr.splitlines()[-1] == "see the whole log: grid-ops logs cli-fails-exp0"

    # an experiment's name given to status: say what it is and what to type instead
    experiment = grid("status", "cli-fails-exp0")
    assert experiment.exit_code == 1 and experiment.stdout == ""
    assert experiment.stderr == (
        "error: 'cli-fails-exp0' is an experiment, not a run: see its run with `grid-ops status cli-fails` "
        "or its log with `grid-ops logs cli-fails-exp0`\n"
    )
    assert grid("status", "cli-nothing-exp0").stderr == "error: run 'cli-nothing-exp0' not found\n"


def test_dry_run_prints_the_plan_and_creates_nothing(client_env: ControlPlane, src: Path) -> None:
    result = ok(
        "run",
        "--dry_run",
        "--name",
        "cli-plan",
        "--path",
        str(src),
        "--use-spot",
        "python",
        "train.py",
        "--lr",
        "[0.1, 0.2, 0.3]",
    )
    planned = rows(result.stdout, "cli-plan-exp")
    assert [r[0] for r in planned] == ["cli-plan-exp0", "cli-plan-exp1", "cli-plan-exp2"]
    assert planned[1][1:6] == ["python", "train.py", "--lr", "0.2", "cpu-1"]
    assert all(r[-1] == "$0.1200" for r in planned)  # cpu-1's spot price
    assert "total: 3 experiments on cpu-1; $0.3600/h if all run at once" in result.stdout
    assert client_env.call("GET", "/v1/core/local/runs/cli-plan").status_code == 404


def test_random_search_options_accept_underscore_and_hyphen_spellings(client_env: ControlPlane, src: Path) -> None:
    for trials in ("--num_trials", "--num-trials"):
        result = ok(
            "run",
            "--dry-run",
            "--path",
            str(src),
            "--strategy",
            "random_search",
            trials,
            "2",
            "--seed",
            "7",
            "-o",
            "json",
            "true",
            "--x",
            "[1, 2, 3, 4, 5]",
        )
        assert len(json.loads(result.stdout)["experiments"]) == 2


def test_json_outputs_parse_as_json(client_env: ControlPlane, src: Path) -> None:
    ok("run", "--name", "cli-json", "--path", str(src), "--wait", "true", "--x", "[1, 2]")
    runs = json.loads(ok("status", "-o", "json").stdout)
    assert "cli-json" in [r["name"] for r in runs]
    detail = json.loads(ok("-o", "json", "status", "cli-json").stdout)  # the option also works first
    assert detail["run"]["status"]["phase"] == "RUN_STATE_SUCCEEDED"
    assert [e["spec"]["parameters"] for e in detail["experiments"]] == [{"x": "1"}, {"x": "2"}]
    clusters = json.loads(ok("clusters", "-o", "json").stdout)
    assert clusters["defaultCluster"] == "local"
    types = json.loads(ok("instance-types", "-o", "json").stdout)
    assert [t["name"] for t in types] == ["cpu-1", "cpu-2"]
    plan = json.loads(ok("run", "--dry_run", "--path", str(src), "-o", "json", "true", "--x", "[1, 2]").stdout)
    assert plan["dryRun"] is True and plan["hourlyCostAllParallel"] == pytest.approx(0.72)
    started = json.loads(ok("run", "--name", "cli-json2", "--path", str(src), "-o", "json", "true").stdout)
    assert started["name"] == "cli-json2" and len(started["status"]["experimentIds"]) == 1
    client_env.wait_run("cli-json2")


# --------------------------------------------------------------------------- logs


def test_logs_print_the_whole_log_or_its_tail(client_env: ControlPlane, src: Path) -> None:
    ok("run", "--name", "cli-logs", "--path", str(src), "--wait", PY, "lines.py", "5")
    whole = ok("logs", "cli-logs-exp0").stdout
    assert whole.splitlines() == [f"line {i}" for i in range(5)]
    assert ok("logs", "cli-logs-exp0", "--tail", "2").stdout.splitlines() == ["line 3", "line 4"]
    assert ok("logs", "cli-logs-exp0", "--follow").stdout == whole  # an ended experiment: all of it, then stop
    missing = grid("logs", "cli-logs-exp9")
    assert missing.exit_code == 1 and "error: experiment 'cli-logs-exp9' not found" in missing.stderr


def test_logs_in_json_give_the_text_and_where_to_continue(client_env: ControlPlane, src: Path) -> None:
    ok("run", "--name", "cli-jlogs", "--path", str(src), "--wait", PY, "lines.py", "5")
    whole = "".join(f"line {i}\n" for i in range(5))
    size = len(whole.encode())
    answer = json.loads(ok("-o", "json", "logs", "cli-jlogs-exp0").stdout)
    assert answer == {
        "experiment": "cli-jlogs-exp0",
        "data": whole,
        "offset": 0,
        "nextOffset": size,
        "size": size,
        "eof": True,
    }
    tail = json.loads(ok("logs", "cli-jlogs-exp0", "--tail", "2", "-o", "json").stdout)
    assert tail["data"] == "line 3\nline 4\n" and tail["nextOffset"] == size
    assert tail["offset"] == size - len("line 3\nline 4\n")
    rest = json.loads(ok("logs", "cli-jlogs-exp0", "--offset", str(tail["offset"]), "-o", "json").stdout)
    assert rest["data"] == tail["data"] and rest["offset"] == tail["offset"]
    assert ok("logs", "cli-jlogs-exp0", "--offset", str(tail["offset"])).stdout == "line 3\nline 4\n"
    follow = grid("-o", "json", "logs", "cli-jlogs-exp0", "--follow")
    assert follow.exit_code == 2 and follow.stdout == ""
    assert "--follow prints the log as text" in follow.stderr


# --------------------------------------------------------------------------- stop and delete


def test_stop_run_cancels_a_running_sweep(client_env: ControlPlane, src: Path) -> None:
    ok("run", "--name", "cli-stop", "--path", str(src), PY, "-c", "import time; time.sleep(60)", "--x", "[1, 2]")
    wait_until_running(client_env, "cli-stop")
    result = ok("stop", "run", "cli-stop")
    assert "cancelled run cli-stop (2 of 2 experiments were pending or running)" in result.stdout
    run = client_env.wait_run("cli-stop", timeout=30)
    assert run["status"]["phase"] == "RUN_STATE_CANCELED"
    statuses = [r[1] for r in rows(ok("status", "cli-stop").stdout, "cli-stop-exp")]
    assert statuses == ["cancelled", "cancelled"]


def test_stop_experiment_cancels_only_that_experiment(client_env: ControlPlane, src: Path) -> None:
    ok(
        "run",
        "--name",
        "cli-stop1",
        "--path",
        str(src),
        "--max_parallel",
        "1",
        PY,
        "-c",
        "import time; time.sleep(60)",
        "--x",
        "[1, 2]",
    )
    result = ok("stop", "experiment", "cli-stop1-exp1", "-o", "json")
    assert json.loads(result.stdout)[0]["status"]["phase"] == "EXPERIMENT_STATE_CANCELLED"
    ok("stop", "run", "cli-stop1")
    client_env.wait_run("cli-stop1", timeout=30)


def test_delete_run_removes_it(client_env: ControlPlane, src: Path) -> None:
    ok("run", "--name", "cli-del", "--path", str(src), "--wait", "true")
    assert ok("delete", "run", "cli-del").stdout.strip() == "deleted run cli-del"
    gone = grid("status", "cli-del")
    assert gone.exit_code == 1 and "error: run 'cli-del' not found" in gone.stderr
    assert "cli-del" not in [r["name"] for r in json.loads(ok("status", "-o", "json").stdout)]
    again = grid("delete", "run", "cli-del")
    assert again.exit_code == 1 and again.stderr.startswith("error: ")


# --------------------------------------------------------------------------- clusters


def test_clusters_and_instance_types_list_the_configured_ones(client_env: ControlPlane) -> None:
    clusters = rows(ok("clusters").stdout, "")
    assert clusters[0] == ["CLUSTER", "TYPE", "EXECUTOR", "STATUS", "DEFAULT"]
    assert ["local", "global", "local", "running", "yes"] in clusters
    assert ["big", "global", "local", "running"] in clusters
    types = rows(ok("instance-types").stdout, "cpu-")
    assert types == [
        ["cpu-1", "1", "0", "2048", "MB", "$0.3600", "$0.1200"],
        ["cpu-2", "2", "0", "4096", "MB", "$0.7200", "-"],
    ]
    assert rows(ok("instance-types", "--cluster", "big").stdout, "small")[0][-2:] == ["$1.0000", "-"]
    unknown = grid("instance-types", "--cluster", "nope")
    assert unknown.exit_code == 1 and "cluster 'nope' not found" in unknown.stderr


# --------------------------------------------------------------------------- users and login


def test_users_create_gives_a_key_that_works_and_sees_none_of_the_local_users_runs(
    client_env: ControlPlane, src: Path
) -> None:
    ok("run", "--name", "cli-mine", "--path", str(src), "true")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRID_")}
    created = script("users", "create", "cli-alice", "--home", str(client_env.home), "-o", "json", env=env)
    assert created.returncode == 0, created.stderr
    alice = json.loads(created.stdout)
    assert alice["username"] == "cli-alice" and alice["id"] and alice["apiKey"]

    as_alice = {"GRID_USER_ID": alice["id"], "GRID_API_KEY": alice["apiKey"]}
    assert json.loads(ok("status", "-o", "json", env=as_alice).stdout) == []
    hidden = grid("status", "cli-mine", env=as_alice)
    assert hidden.exit_code == 1 and "not found" in hidden.stderr
    assert "cli-alice" in ok("users", "list", "--home", str(client_env.home)).stdout

    twice = grid("users", "create", "cli-alice", "--home", str(client_env.home))
    assert twice.exit_code == 1 and "error: user 'cli-alice' already exists" in twice.stderr
    client_env.wait_run("cli-mine")


def test_login_stores_credentials_that_later_commands_use(
    client_env: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob = json.loads(ok("users", "create", "cli-bob", "--home", str(client_env.home), "-o", "json").stdout)
    listed = json.loads(ok("users", "list", "--home", str(client_env.home), "-o", "json").stdout)
    assert bob["id"] in [u["id"] for u in listed]
    # log in from a clean home with no GRID_* variables: the credentials file is all later commands have
    for name in ("GRID_URL", "GRID_USER_ID", "GRID_API_KEY", "GRID_CLUSTER_ID"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("GRID_OPS_HOME", str(tmp_path / "bob-home"))
    bad = grid("login", "--username", "cli-bob", "--key", "wrong", "--url", client_env.url)
    assert bad.exit_code == 1 and bad.stderr.startswith("error: wrong user name or API key")
    assert "--username 'cli-bob'" in bad.stderr and "--key" in bad.stderr and "GRID_" not in bad.stderr
    result = ok("login", "--username", "cli-bob", "--key", bob["apiKey"], "--url", client_env.url)
    assert f"logged in to {client_env.url} as cli-bob" in result.stdout
    assert (tmp_path / "bob-home" / "credentials.json").is_file()
    assert json.loads(ok("status", "-o", "json").stdout) == []


# --------------------------------------------------------------------------- errors and exit codes


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--strategy", "best_guess", "true"], "Invalid value for '--strategy'"),
        (["run", "--name", "x"], "Missing argument 'COMMAND...'"),
        (["run", "--bogus", "true"], "No such option: --bogus (see 'grid-ops run --help')"),
        (["run", "--wiat", "true"], "No such option: --wiat (did you mean --wait?) (see 'grid-ops run --help')"),
        (["run", "--dry-rn", "true"], "No such option: --dry-rn (did you mean --dry-run?)"),
        (["logs", "x", "--folow"], "No such option: --folow (did you mean --follow?)"),
        (["run", "--env", "NOVALUE", "true"], "'NOVALUE' is not KEY=VALUE"),
        (["run", "--name", "Not_Valid", "true"], "invalid run name 'Not_Valid'"),
        (["stop", "everything", "x"], "Invalid value for 'run|experiment'"),
        (["stop"], "Missing argument 'run|experiment': give run or experiment (see 'grid-ops stop --help')"),
        (["nosuchcommand"], "No such command 'nosuchcommand'"),
        (["stauts"], "No such command 'stauts'. Did you mean 'status'?"),
        (["run", "--datastore_mount_dir", "/data", "true"], "--datastore_mount_dir is set but --datastore is not"),
    ],
)
def test_bad_usage_exits_2_with_a_message(client_env: ControlPlane, args: list[str], message: str) -> None:
    result = grid(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.splitlines()) == 1 and " | " not in result.stderr
    assert result.stderr.count("--help") <= 1  # where to read the usage, said once
    assert "Traceback" not in result.output


def test_run_argument_errors_speak_of_options_not_sdk_arguments(client_env: ControlPlane, src: Path) -> None:
    def error(*args: str, code: int = 2) -> str:
        result = grid("run", "--path", str(src), *args)
        assert result.exit_code == code, result.output
        assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
        leaks = ("config_file", "path=", "num_trials=", "cpus=", "strategy_options")
        assert not [leak for leak in leaks if leak in result.stderr], result.stderr
        return result.stderr.removeprefix("error: ").strip()

    assert error("--config", "nope.yml", "true").startswith("config file 'nope.yml' does not exist (relative paths")
    assert error("--dockerfile", "Dockerfile.gpu", "true") == (
        f"dockerfile 'Dockerfile.gpu' does not exist in the source directory '{src}'; give a path relative to it"
    )
    assert error("--dependency_file", "reqs.txt", "true").startswith("dependency_file 'reqs.txt' does not exist")
    assert error("--strategy", "random_search", "--dry_run", "true", "--x", "[1, 2]") == (
        "strategy random_search needs num_trials (--num_trials on the command line): how many experiments to "
        "draw, e.g. 10"
    )
    # the server's answer names only what was asked for
    assert error("--cpus", "64", "--dry_run", "true", code=1) == (
        "no instance type on cluster 'local' offers 64 CPUs; the largest is cpu-2 (2 CPUs)"
    )
    assert error("--cpus", "2", "--memory_mb", "5000", "--dry_run", "true", code=1) == (
        "no instance type on cluster 'local' offers 2 CPUs and 5000 MB of memory; the instance types offer: "
        "cpu-1 (1 CPU, 2048 MB of memory), cpu-2 (2 CPUs, 4096 MB of memory)"
    )

    broken = src / "broken.yml"
    broken.write_text("compute:\n  train:\n    cpus: [1\n")
    assert error("--config", str(broken), "--dry_run", "true") == (
        f"config file '{broken}' is not valid YAML: line 4, column 1: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence that starts at line 3, column 11)"
    )
    wrong = src / "wrong.yml"
    wrong.write_text("compute:\n  train:\n    cpus: -1\n    gpus: x\n")
    assert error("--config", str(wrong), "--dry_run", "true") == (
        f"config file '{wrong}' does not have the grid.yml shape: 2 problems: compute.train.cpus must be a "
        "whole number >= 0, got -1; compute.train.gpus must be a whole number >= 0, got 'x'"
    )


def test_a_wrong_key_in_the_environment_is_explained_once(client_env: ControlPlane) -> None:
    result = grid("status", env={"GRID_API_KEY": "wrong"})
    assert result.exit_code == 1
    assert result.stderr.startswith("error: wrong user id or API key")
    assert result.stderr.count("GRID_API_KEY") == 1 and "grid-ops login" in result.stderr


def test_api_error_exits_1_with_one_error_line_and_no_traceback(client_env: ControlPlane) -> None:
    result = script("status", "no-such-run", env=dict(os.environ))
    assert result.returncode == 1
    assert result.stderr == "error: run 'no-such-run' not found\n"
    assert result.stdout == ""
    sweep = grid("run", "--dry_run", "true", "--x", "[1, 2")
    assert sweep.exit_code == 1 and sweep.stderr.startswith("error: ") and "[1, 2" in sweep.stderr
    assert len(sweep.stderr.strip().splitlines()) == 1


def test_version_is_printed(client_env: ControlPlane) -> None:
    assert ok("--version").stdout.startswith("grid-ops ")


def test_artifacts_of_an_unknown_name_only_say_so(client_env: ControlPlane) -> None:
    for args in (["artifacts", "cli-nope"], ["-o", "json", "artifacts", "cli-nope"]):
        result = grid(*args)
        assert result.exit_code == 1 and result.stdout == ""  # no "no artifacts" (or []) after the error
        assert result.stderr == "error: 'cli-nope' is neither one of your runs nor one of your experiments\n"


# --------------------------------------------------------------------------- start-up cost

HEAVY = ("pydantic", "requests", "urllib3", "yaml", "sqlalchemy", "grid_ops.schemas", "grid_ops.client")

PROBE = """
import contextlib, io, json, sys
before = set(sys.modules)
from grid_ops.cli.main import cli, main

def call(*args):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main(list(args), prog_name="grid-ops")
        except SystemExit as exc:
            return exc.code, out.getvalue()
    return None, out.getvalue()

runs = [list(a) for a in json.loads(sys.argv[1])]
if runs == [["EVERY_COMMAND"]]:  # every command's and subcommand's --help
    import click
    ctx = click.Context(cli)
    runs = []
    for name in cli.list_commands(ctx):
        runs.append([name, "--help"])
        call(name, "--help")
        command = cli.get_command(ctx, name)
        if isinstance(command, click.Group):
            runs += [[name, sub, "--help"] for sub in command.list_commands(ctx)]
results = [[args, *call(*args)] for args in runs]
heavy = set(sys.argv[2].split(","))
new = sorted(m for m in set(sys.modules) - before if m in heavy or m.split(".")[0] in heavy)
print(json.dumps({"results": results, "imported": new}))
"""


def probe(*runs: list[str]) -> dict[str, Any]:
    """Run the CLI's ``main`` with each of ``runs`` in one fresh interpreter; what it printed and which
    heavy modules (``HEAVY``) got imported."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(runs), ",".join(HEAVY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_help_and_version_do_not_import_pydantic_requests_or_the_sdk() -> None:
    found = probe(["--help"], ["--version"])
    (_, help_code, help_text), (_, version_code, version_text) = found["results"]
    assert help_code == 0 and "Commands:" in help_text and "instance-types" in help_text
    assert version_code == 0 and version_text.startswith("grid-ops ")
    assert found["imported"] == []


def test_every_commands_help_is_fast_too() -> None:
    found = probe(["EVERY_COMMAND"])
    assert len(found["results"]) > 15
    for args, code, text in found["results"]:
        assert code == 0 and text.startswith("Usage: grid-ops"), (args, code, text)
    assert found["imported"] == []


def test_help_lists_each_command_with_its_own_summary() -> None:
    import click

    from grid_ops.cli import runs
    from grid_ops.cli.main import COMMANDS, GridGroup
    from grid_ops.sdk import settings

    for width in (80, 200):
        group = GridGroup(name="grid-ops", lazy_commands=COMMANDS)
        ctx = click.Context(group)
        lazy = click.HelpFormatter(width=width)
        group.format_commands(ctx, lazy)
        assert not group.commands  # listed without importing any of them
        eager = click.HelpFormatter(width=width)
        click.Group.format_commands(group, ctx, eager)  # click's own: loads every command for its help
        assert lazy.getvalue() == eager.getvalue()
    for name, entry in COMMANDS.items():
        command = group.get_command(ctx, name)
        assert command is not None and command.name == name
        assert command.get_short_help_str(1000) == entry.summary
    # `run --help` shows the SDK's choices without importing the SDK
    assert runs.STRATEGIES == settings.STRATEGIES


# --------------------------------------------------------------------------- the local control plane


def test_local_start_env_starts_an_embedded_server_whose_exports_work_and_local_stop_stops_it(
    tmp_path: Path,
) -> None:
    home = tmp_path / "local-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRID_")}
    env["GRID_OPS_HOME"] = str(home)
    try:
        started = script("local", "start", "--env", env=env)
        assert started.returncode == 0, started.stderr
        exports: dict[str, Any] = {}
        for line in started.stdout.splitlines():
            assert line.startswith("export ")
            key, _, value = line.removeprefix("export ").partition("=")
            exports[key] = value
        assert set(exports) == {"GRID_URL", "GRID_USER_ID", "GRID_API_KEY"}
        me = requests.get(
            exports["GRID_URL"] + "/v1/auth/user", auth=(exports["GRID_USER_ID"], exports["GRID_API_KEY"]), timeout=10
        )
        assert me.status_code == 200 and me.json()["username"] == "local"

        status = json.loads(script("local", "status", "-o", "json", env=env).stdout)
        assert status["running"] is True and status["url"] == exports["GRID_URL"]
        again = script("local", "start", "--env", env=env)  # reuses the running one
        assert again.stdout == started.stdout

        auth = (exports["GRID_USER_ID"], exports["GRID_API_KEY"])
        body = {"name": "busy", "spec": {"runControllerCommand": 'python3 -c "import time; time.sleep(60)"'}}
        assert requests.post(exports["GRID_URL"] + "/v1/core/local/runs", json=body, auth=auth, timeout=10).ok
        deadline = time.monotonic() + 20
        while requests.get(exports["GRID_URL"] + "/v1/core/local/runs/busy", auth=auth, timeout=10).json()[
            "status"
        ]["phase"] != "RUN_STATE_RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        refused = script("local", "stop", env=env)
        assert refused.returncode == 1 and "1 experiment(s) are running (busy-exp0)" in refused.stderr
        assert "--force" in refused.stderr
        stopped = script("local", "stop", "--force", env=env)
        assert stopped.returncode == 0 and "stopped the local control plane" in stopped.stdout
        with pytest.raises(requests.ConnectionError):
            requests.get(exports["GRID_URL"] + "/healthz", timeout=5)
        assert json.loads(script("local", "status", "-o", "json", env=env).stdout)["running"] is False
    finally:
        stop_local_server(home)
