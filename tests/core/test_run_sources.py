"""Where experiments get their source: the runner downloads the run's snapshot (once per node) or
clones its git repository at the commit resolved at start, against a real control plane."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from grid_ops import Run
from grid_ops.client import set_client
from grid_ops.errors import GridError
from tests.core.controlplane import ControlPlane, start_control_plane

# "remote": a local cluster whose runners download sources over HTTP into the node cache, as runners
# on machines without the control plane's files do.
CONFIG = """
cancel_grace_seconds: 2
clusters:
  - id: local
    executor: local
    capacity: {cpu: 2, gpu: 0, memory_mb: 8192}
    instance_types:
      - {name: cpu-1, cpu: 1, gpu: 0, memory_mb: 1024, hourly_cost: 0.1}
  - id: remote
    executor: local
    options: {source_transfer: http}
    capacity: {cpu: 4, gpu: 0, memory_mb: 8192}
    instance_types:
      - {name: cpu-1, cpu: 1, gpu: 0, memory_mb: 1024, hourly_cost: 0.1}
"""

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
