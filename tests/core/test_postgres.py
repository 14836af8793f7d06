"""The control plane on a real PostgreSQL database (``--db postgresql://…``), started by the test."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from grid_ops import Datastore, Run
from tests.core.controlplane import ControlPlane, start_control_plane
from tests.core.datastore_helpers import expected_view, inspect_project, make_tree, point_sdk_at, random_bytes, seen
from tests.core.postgres import Postgres, start_postgres


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    pg = start_postgres()
    yield pg
    pg.stop()


@pytest.fixture()
def pg_plane(postgres: Postgres, tmp_path: Path) -> Iterator[ControlPlane]:
    plane = start_control_plane(tmp_path / "home", extra_args=["--db", postgres.url])
    yield plane
    plane.stop()


def test_a_sweep_runs_to_success_with_state_in_postgresql(pg_plane: ControlPlane, postgres: Postgres) -> None:
    cmd = 'python3 -c "import sys; print(sys.argv[2])" --x "[1, 2, 3]"'
    r = pg_plane.call("POST", "/v1/core/local/runs", json={"name": "pg-sweep", "spec": {"runControllerCommand": cmd}})
    assert r.status_code == 200, r.text
    run = pg_plane.wait_run("pg-sweep")
    assert run["status"]["phase"] == "RUN_STATE_SUCCEEDED"
    assert [e["status"]["phase"] for e in pg_plane.experiments("pg-sweep")] == ["EXPERIMENT_STATE_SUCCEEDED"] * 3
    # the rows really are in PostgreSQL
    out = subprocess.run(
        [
            str(postgres.bindir / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(postgres.port),
            "-U",
            "postgres",
            "-d",
            "grid",
            "-Atc",
            "select count(*) from experiments e join runs r on r.id = e.run_id where r.name = 'pg-sweep'",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "3"


def test_duplicate_names_and_failed_requests_leave_postgresql_unchanged(pg_plane: ControlPlane) -> None:
    body = {"name": "pg-dup", "spec": {"runControllerCommand": "true"}}
    assert pg_plane.call("POST", "/v1/core/local/runs", json=body).status_code == 200
    r = pg_plane.call("POST", "/v1/core/local/runs", json=body)
    assert r.status_code == 409 and "already exists" in r.json()["message"]
    bad = {"name": "pg-bad", "spec": {"runControllerCommand": 'true --a "[1, 2"'}}
    assert pg_plane.call("POST", "/v1/core/local/runs", json=bad).status_code == 400
    names = [x["name"] for x in pg_plane.ok("GET", "/v1/core/local/runs")["runs"]]
    assert names.count("pg-dup") == 1 and "pg-bad" not in names


def test_unreachable_database_url_fails_at_start_with_a_message(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "grid_ops.server",
            "--state-dir",
            str(tmp_path),
            "--db",
            "postgresql://postgres@127.0.0.1:1/nope",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "could not connect to the database" in out.stderr


def test_a_run_mounts_a_datastore_version_with_state_in_postgresql(
    pg_plane: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_sdk_at(monkeypatch, pg_plane, tmp_path / "sdk-home")
    monkeypatch.chdir(inspect_project(tmp_path / "project"))
    data = make_tree(tmp_path / "data", {"train/a.csv": b"x,y\n1,2\n", "big.bin": random_bytes(200_000, 42)})
    first = Datastore(name="pg-data", source=data)
    first.upload()
    view = expected_view(data)
    (data / "train" / "a.csv").write_bytes(b"x,y\n3,4\n")
    Datastore(name="pg-data", source=data).upload()  # version 2 shares big.bin's content
    run = Run(run_command="python3 inspect_ds.py", datastore="pg-data:1", datastore_mount_dir="data")
    run.start()
    assert run.wait(timeout=90) == "succeeded"
    got, log = seen(pg_plane, f"{run.name}-exp0")
    assert {path: (digest, mode) for path, (digest, mode, _) in got["files"].items()} == view
    assert "fetched into this node's cache" in log
    r = pg_plane.call("DELETE", "/v1/core/local/datastores/pg-data:1")
    assert r.status_code == 200, r.text  # the run has ended: the version may go
    assert Datastore(name="pg-data", version=2).snapshot_status == "succeeded"
