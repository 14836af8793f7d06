"""Fixtures of the Airflow tests: a throwaway AIRFLOW_HOME with a real metadata DB (SQLite), the example
DAGs folder, and a real control plane on 127.0.0.1 reached through a real ``grid`` connection.

Airflow reads its configuration when first imported, so the environment is set here, before any test
module imports it.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_HOME = Path(tempfile.mkdtemp(prefix="grid-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_HOME)
_DAGS = _HOME / "dags"  # the example DAGs and the tests' DAGs, linked into one DAGs folder
_DAGS.mkdir()
for _dag_file in [*(ROOT / "dags").glob("*.py"), *(ROOT / "tests" / "airflow" / "dags").glob("*.py")]:
    (_DAGS / _dag_file.name).symlink_to(_dag_file)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_DAGS)
os.environ["GRID_OPS_PROJECT_DIR"] = str(ROOT)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "False"
os.environ["GRID_OPS_HOME"] = str(_HOME / "grid-client")  # never ~/.grid_ops
for _key in ("GRID_URL", "GRID_USER_ID", "GRID_API_KEY", "GRID_CLUSTER_ID"):
    os.environ.pop(_key, None)

from tests.core.controlplane import ControlPlane, start_control_plane  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def airflow_db() -> Path:
    """A fresh metadata database in the throwaway AIRFLOW_HOME."""
    from airflow.utils import db

    db.resetdb()
    return _HOME


@pytest.fixture(scope="session")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A real control plane; experiments run with this environment's Python (scikit-learn included)."""
    plane = start_control_plane(tmp_path_factory.mktemp("grid-home"), python=sys.executable)
    yield plane
    plane.stop()


def connection_json(cp: ControlPlane, cluster: str = "local", **overrides: object) -> str:
    """The ``grid`` connection of ``cp`` as Airflow reads it from ``AIRFLOW_CONN_<ID>``."""
    conn = {
        "conn_type": "grid",
        "host": cp.url,
        "login": cp.user_id,
        "password": cp.api_key,
        "extra": {"cluster_id": cluster},
        **overrides,
    }
    return json.dumps(conn)


@pytest.fixture()
def grid_conn(cp: ControlPlane, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ControlPlane:
    """``grid_default`` points at the session's control plane; the SDK's own state goes to a tmp dir."""
    monkeypatch.setenv("AIRFLOW_CONN_GRID_DEFAULT", connection_json(cp))
    monkeypatch.setenv("GRID_OPS_HOME", str(tmp_path / "grid-client"))
    return cp


@pytest.fixture(scope="session")
def dagbag(airflow_db: Path) -> object:
    """Every DAG of the DAGs folder, parsed once; fails on any import error."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(_DAGS))
    assert not bag.import_errors, bag.import_errors
    return bag
