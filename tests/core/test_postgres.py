"""The control plane on a real PostgreSQL database (``--db postgresql://…``), started by the test."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.core.controlplane import ControlPlane, start_control_plane
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
