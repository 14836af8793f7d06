"""Where experiments get their source: the runner downloads the run's snapshot (once per node) or
clones its git repository at the commit resolved at start, against a real control plane."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from grid_ops import Run
from grid_ops.client import set_client
from grid_ops.errors import GridError
from tests.core.controlplane import TEST_CONFIG, ControlPlane, start_control_plane

# TEST_CONFIG's clusters plus "remote": a local cluster whose runners download sources over HTTP into
# the node cache, as runners on machines without the control plane's files do.
CONFIG = (
    TEST_CONFIG
    + """  - id: remote
    executor: local
    options: {source_transfer: http}
    capacity: {cpu: 4, gpu: 0, memory_mb: 8192}
    instance_types:
      - {name: cpu-1, cpu: 1, gpu: 0, memory_mb: 1024, hourly_cost: 0.1}
"""
)

POLL = 0.2

SHOW = """\
import os, sys, time
if sys.argv[1:] == ['--i', '0']:
    time.sleep(1.0)
print('DATA', open('data.txt').read().strip(), 'CWD', os.getcwd())
"""


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    cp = start_control_plane(tmp_path_factory.mktemp("sources-home"), CONFIG)
    yield cp
    cp.stop()


@pytest.fixture()
def sdk(plane: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> Iterator[ControlPlane]:
    for key, value in plane.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GRID_CLUSTER_ID", "local")
    set_client(None)
    yield plane
    set_client(None)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def logs(run: Run) -> list[str]:
    return [e.logs() for e in sorted(run, key=lambda e: int(e.name.rsplit("exp", 1)[1]))]


def test_twenty_experiments_download_the_snapshot_once_and_never_see_later_edits(
    sdk: ControlPlane, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "show.py").write_text(SHOW)
    (src / "data.txt").write_text("original\n")
    run = Run(name=unique("twenty"), run_command='show.py --i "range(20)"', path=src, cluster_id="remote")
    run.start()
    (src / "data.txt").write_text("edited after start\n")  # exp0 sleeps; most experiments have not started
    assert run.wait(timeout=120, poll_interval=POLL) == "succeeded"
    outputs = logs(run)
    assert len(outputs) == 20
    for output in outputs:
        assert output.startswith("DATA original CWD "), output
    workdirs = {output.split()[-1] for output in outputs}
    assert len(workdirs) == 20, "experiments shared a working copy"
    assert all(not Path(w).is_relative_to(src) for w in workdirs)
    # one download for the run, counted by the control plane's log, and one entry in the node's cache
    run_id = sdk.ok("GET", f"/v1/core/remote/runs/{run.name}")["id"]
    served = (sdk.home / "test-server.log").read_text().count(f"source snapshot of run {run.name} ")
    assert served == 1
    cache = sdk.home / "server" / "source-cache"
    assert (cache / f"snapshot-{run_id}" / "source.tar.gz").is_file()
    assert not [p for p in cache.iterdir() if p.name.startswith(".building-")]


@pytest.mark.parametrize("cluster", ["local", "remote"])
def test_the_command_runs_in_the_relative_working_dir_and_a_missing_one_fails_clearly(
    sdk: ControlPlane, tmp_path: Path, cluster: str
) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "where.py").write_text("import os; print('IN', os.path.basename(os.getcwd()))\n")
    good = Run(name=unique("rel"), run_command="where.py", path=src, relative_working_dir="sub", cluster_id=cluster)
    good.start()
    assert good.wait(timeout=60, poll_interval=POLL) == "succeeded"
    assert logs(good) == ["IN sub\n"]

    bad = Run(name=unique("norel"), run_command="where.py", path=src, relative_working_dir="nope", cluster_id=cluster)
    bad.start()
    assert bad.wait(timeout=60, poll_interval=POLL) == "failed"
    (experiment,) = list(bad)
    assert experiment.message == (
        "the source could not be prepared: relative working directory 'nope' does not exist in the source"
    )


# --------------------------------------------------------------------------- git sources

SHOW_GIT = """\
import subprocess, sys, time
if sys.argv[1:] == ['--i', '0']:
    time.sleep(1.5)
head = subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True).stdout.strip()
print('VERSION', open('version.txt').read().strip(), 'HEAD', head)
"""


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin", "HOME": str(repo.parent)}  # fmt: skip
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=True)
    return done.stdout.strip()


def commit(repo: Path, version: str) -> str:
    (repo / "version.txt").write_text(version + "\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"version {version}")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture()
def repo(tmp_path: Path) -> tuple[Path, str, str]:
    """A git repository: main has commits A then B; tag v1 and branch old point at A."""
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    git(root.parent, "init", "-q", "-b", "main", str(root))
    (root / "show.py").write_text(SHOW_GIT)
    (root / "sub" / "where.py").write_text(
        "import os; print('IN', os.path.basename(os.getcwd()), open('../version.txt').read().strip())\n"
    )
    a = commit(root, "A")
    git(root, "tag", "v1")
    git(root, "branch", "old")
    b = commit(root, "B")
    return root, a, b


@pytest.mark.parametrize(
    ("form", "want"),
    [
        ("{path}", "B"),  # HEAD
        ("{path}#ref=main", "B"),
        ("file://{path}#ref=old", "A"),  # a branch
        ("file://{path}#ref=v1", "A"),  # a tag
        ("{path}#ref={a}", "A"),  # a full sha
        ("file://{path}#ref={a_short}", "A"),  # an abbreviated sha of a local repository
    ],
)
def test_a_git_source_runs_the_commit_its_ref_names(
    sdk: ControlPlane, repo: tuple[Path, str, str], form: str, want: str
) -> None:
    root, a, b = repo
    url = form.format(path=root, a=a, a_short=a[:9])
    run = Run(name=unique("git"), run_command="show.py --i 1", url=url, cluster_id="remote")
    run.start()
    expected = a if want == "A" else b
    assert run.source_commit == expected
    stored = sdk.ok("GET", f"/v1/core/remote/runs/{run.name}")["spec"]
    assert stored["sourceCode"] == url and stored["sourceCommit"] == expected
    assert run.wait(timeout=60, poll_interval=POLL) == "succeeded", [e.message for e in run]
    assert logs(run)[0].splitlines()[-1] == f"VERSION {want} HEAD {expected}"


def test_a_relative_path_to_a_repository_and_a_relative_working_dir_inside_it(
    sdk: ControlPlane, repo: tuple[Path, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, a, _b = repo
    monkeypatch.chdir(root.parent)
    run = Run(name=unique("gitsub"), run_command="python3 where.py", url="repo#ref=old", relative_working_dir="sub")
    assert run.url == f"{root}#ref=old"  # made absolute where the SDK runs
    run.start()
    assert run.source_commit == a
    assert run.wait(timeout=60, poll_interval=POLL) == "succeeded", [e.message for e in run]
    assert logs(run)[0].splitlines()[-1] == "IN sub A"


def test_a_branch_moved_after_start_changes_nothing_for_any_experiment(
    sdk: ControlPlane, repo: tuple[Path, str, str]
) -> None:
    root, _a, b = repo
    run = Run(
        name=unique("moving"), run_command='show.py --i "range(6)"', url=f"file://{root}#ref=main",
        max_parallel=1, cluster_id="remote",
    )  # fmt: skip
    run.start()
    c = commit(root, "C")  # main moves on while exp0 sleeps and exp1..exp5 wait
    git(root, "commit", "-q", "--amend", "-m", "rewritten")  # and is rewritten, to be sure
    assert c != b and git(root, "rev-parse", "main") != b
    assert run.wait(timeout=120, poll_interval=POLL) == "succeeded", [e.message for e in run]
    assert [out.splitlines()[-1] for out in logs(run)] == [f"VERSION B HEAD {b}"] * 6
    cache = sdk.home / "server" / "source-cache"
    assert len([p for p in cache.iterdir() if p.name.startswith("git-") and p.name.endswith(b)]) == 1


def _create(cp: ControlPlane, name: str, source: str, **spec: str) -> tuple[int, str]:
    body = {"name": name, "spec": {"runControllerCommand": "true", "sourceCode": source, **spec}}
    r = cp.call("POST", "/v1/core/local/runs", json=body)
    return r.status_code, r.json().get("message", "")


def test_bad_git_sources_are_refused_at_start_and_create_nothing(
    sdk: ControlPlane, repo: tuple[Path, str, str], tmp_path: Path
) -> None:
    root, _a, _b = repo
    plain = tmp_path / "plain"
    plain.mkdir()
    cases = {
        str(tmp_path / "missing"): "does not exist",
        str(plain): "is not a git repository",
        f"file://{plain}": "is not a git repository",
        f"{root}#ref=no-such-branch": "ref 'no-such-branch' does not exist",
        f"{root}#ref=0123456789abcdef0123456789abcdef01234567": "does not exist",
        f"{root}#branch=main": "must be ref=",
        f"{root / 'sub'}": "is inside the git repository",
        "relative/repo": "must be given by its absolute path",
        "ftp://example.com/repo.git": "unsupported scheme 'ftp'",
        "https://127.0.0.1:9/nobody/repo.git": "is not a git repository that can be read",
    }
    for i, (source, message) in enumerate(cases.items()):
        name = f"badgit-{i}-{uuid.uuid4().hex[:6]}"
        status, text = _create(sdk, name, source)
        assert status == 400 and message in text, (source, status, text)
        assert sdk.call("GET", f"/v1/core/local/runs/{name}").status_code == 404
    status, text = _create(sdk, unique("badgit"), f"{root}#ref=old", relativeWorkDir="nope")
    assert status == 400 and "relativeWorkDir 'nope' is not a folder" in text

    # the SDK says the same before anything is created
    with pytest.raises(GridError, match="does not exist"):
        Run(name=unique("sdkgit"), run_command="true", url=str(tmp_path / "missing"))
    bad_ref = Run(name=unique("sdkgit"), run_command="true", url=f"{root}#ref=nope")
    with pytest.raises(GridError, match="ref 'nope' does not exist"):
        bad_ref.start()
    assert sdk.call("GET", f"/v1/core/local/runs/{bad_ref.name}").status_code == 404


def test_the_cli_runs_a_git_source_and_prints_its_commit(
    sdk: ControlPlane, repo: tuple[Path, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from grid_ops.cli.main import cli

    root, a, _b = repo
    monkeypatch.chdir(root.parent)
    name = unique("cligit")
    args = ["run", "--name", name, "--url", "repo#ref=v1", "--wait", "show.py", "--i", "1"]
    result = CliRunner().invoke(cli, args, prog_name="grid-ops")
    assert result.exit_code == 0, result.output
    assert f"source:     {root}#ref=v1 at commit {a}" in result.output
    assert logs(Run(name))[0].splitlines()[-1] == f"VERSION A HEAD {a}"
