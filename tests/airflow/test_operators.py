"""Operators and sensors in real DAG runs (``dag.test()``, metadata DB, real control plane, real experiments).

DAGs live in tests/airflow/dags (Airflow runs only parsed DAGs). A worker crash is stood in for by
``CrashingRunOperator`` raising at a chosen point; a retry is a second ``dag.test()`` of the same logical
date, which clears the task instance and runs its next try in the same DAG run, as the scheduler would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider.operators.datastore import DatastoreUploadOperator, datastore_asset
from airflow_provider.operators.run import GridRunOperator
from airflow_provider.sensors.grid import RunSensor
from grid_ops.client import GridClient
from grid_ops.errors import NotFoundError
from grid_ops.sdk import Datastore, Run
from tests.airflow.dagtools import EXAMPLES, fresh_date, ti_state, ti_try, xcom
from tests.core.controlplane import ControlPlane
from tests.core.datastore_helpers import make_tree, random_bytes, unique

OK = "python -c \"print('val_accuracy=0.5')\""
FAILS = "python -c \"import sys; print('boom-marker on stdout'); sys.exit(3)\""
SLOW = 'python -c "import time; time.sleep(60)"'


def client_of(cp: ControlPlane) -> GridClient:
    return GridClient(cp.url, cp.user_id, cp.api_key, cluster_id="local")


def logged(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """What the DAG run logged: task logs go to stdout through structlog, Airflow's own to ``logging``."""
    return capfd.readouterr().out + caplog.text


def runs_named(cp: ControlPlane, prefix: str) -> list[dict[str, Any]]:
    answer = cp.ok("GET", "/v1/core/local/runs", params={"query": prefix, "pageSize": 100})
    return [r for r in answer["runs"] if r["name"].startswith(prefix)]


def test_sync_run_returns_a_small_summary_and_pushes_the_link(grid_conn: ControlPlane, dagbag: Any) -> None:
    dag = dagbag.get_dag("grid_test_sync")
    command = 'python -c "import sys; print(\'val_accuracy=\' + sys.argv[1])" "[0.25, 0.75]"'
    dr = dag.test(logical_date=fresh_date(), run_conf={"command": command})
    assert ti_state(dr, "sweep") == "success"
    summary = xcom(dr, "sweep")
    assert summary["status"] == "succeeded" and summary["cost"] >= 0
    assert [e["status"] for e in summary["experiments"]] == ["succeeded", "succeeded"]
    assert summary["best"]["name"] == summary["experiments"][1]["name"]
    assert summary["best"]["value"] == 0.75 and summary["best"]["metric"] == "val_accuracy"
    assert summary["url"] == f"{grid_conn.url}/v1/core/local/runs/{summary['name']}"
    assert xcom(dr, "sweep", "grid_run_url") == summary["url"]
    assert len(json.dumps(summary)) < 2000


def test_deferrable_run_waits_in_the_trigger_and_returns_the_summary(
    grid_conn: ControlPlane, dagbag: Any, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    dr = dagbag.get_dag("grid_test_deferrable").test(logical_date=fresh_date(), run_conf={"command": OK})
    assert ti_state(dr, "sweep") == "success"
    assert "running trigger in line" in logged(capfd, caplog)  # it really deferred
    summary = xcom(dr, "sweep")
    assert summary["status"] == "succeeded" and summary["best"]["value"] == 0.5
    assert xcom(dr, "sweep", "grid_run_url") == summary["url"]  # pushed before deferring


@pytest.mark.parametrize("dag_id", ["grid_test_sync", "grid_test_deferrable"])
def test_a_failed_run_fails_the_task_with_messages_and_log_tails(
    grid_conn: ControlPlane,
    dagbag: Any,
    dag_id: str,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    dr = dagbag.get_dag(dag_id).test(logical_date=fresh_date(), run_conf={"command": FAILS})
    assert ti_state(dr, "sweep") == "failed"
    out = logged(capfd, caplog)
    assert "boom-marker on stdout" in out  # the experiment's log tail
    assert "ended failed" in out and "exit" in out.lower()  # the run's and experiment's messages


@pytest.mark.parametrize("dag_id", ["grid_test_timeout_sync", "grid_test_timeout_deferred"])
def test_timeout_cancels_the_run_and_fails_the_task(grid_conn: ControlPlane, dagbag: Any, dag_id: str) -> None:
    date = fresh_date()
    dr = dagbag.get_dag(dag_id).test(logical_date=date, run_conf={"command": SLOW})
    assert ti_state(dr, "sweep") == "failed"
    (run,) = runs_named(grid_conn, dag_id.replace("_", "-"))
    assert grid_conn.wait_run(run["name"], timeout=30)["status"]["phase"] == "RUN_STATE_CANCELED"


@pytest.mark.parametrize("dag_id", ["grid_test_reattach", "grid_test_reattach_deferred"])
def test_a_crash_between_submit_and_save_reattaches_by_name(
    grid_conn: ControlPlane, dagbag: Any, dag_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRID_TEST_CRASH", "after_submit")  # try 1 dies before the name reaches the store
    command = "python -c \"import time; time.sleep(2); print('val_accuracy=1')\""
    dr = dagbag.get_dag(dag_id).test(logical_date=fresh_date(), run_conf={"command": command})
    assert ti_state(dr, "sweep") == "success" and ti_try(dr, "sweep") == 2
    (only,) = runs_named(grid_conn, dag_id.replace("_", "-"))  # one run, not two
    summary = xcom(dr, "sweep")
    assert summary["name"] == only["name"] and summary["status"] == "succeeded"


def test_the_task_state_store_reattaches_even_when_the_name_would_differ(
    grid_conn: ControlPlane, dagbag: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run name is templated with the try number, so only the remembered name can find the run."""
    tag = unique("tag")
    monkeypatch.setenv("GRID_TEST_CRASH", "while_polling")  # try 1 dies after saving the name
    conf = {"command": 'python -c "import time; time.sleep(2)"', "tag": tag}
    dr = dagbag.get_dag("grid_test_reattach_store").test(logical_date=fresh_date(), run_conf=conf)
    assert ti_state(dr, "sweep") == "success" and ti_try(dr, "sweep") == 2
    assert [r["name"] for r in runs_named(grid_conn, f"store-{tag}")] == [f"store-{tag}-try1"]
    assert xcom(dr, "sweep")["name"] == f"store-{tag}-try1"


def test_a_run_that_failed_is_never_reported_as_success_on_retry(grid_conn: ControlPlane, dagbag: Any) -> None:
    dag, date = dagbag.get_dag("grid_test_retry"), fresh_date()
    first = dag.test(logical_date=date, run_after=date, run_conf={"command": FAILS})
    assert ti_state(first, "sweep") == "failed" and ti_try(first, "sweep") == 2
    names = sorted(r["name"] for r in runs_named(grid_conn, "grid-test-retry-sweep"))
    base = min(names, key=len)
    assert names == [base, f"{base}-a2"]  # the retry started a new attempt instead of adopting the failed run
    # the same DAG run again (the task state store went with the old one): the name alone finds both
    again = dag.test(logical_date=date, run_after=date, run_conf={"command": OK})
    assert again.run_id == first.run_id
    assert ti_state(again, "sweep") == "success" and xcom(again, "sweep")["name"] == f"{base}-a3"


def test_on_kill_cancels_the_run(grid_conn: ControlPlane) -> None:
    """Airflow calls ``on_kill`` from the task runner's signal handler, which cannot be sent to a task that
    ``dag.test()`` runs in this process: the operator is driven as the task runner would drive it."""

    class TaskInstance:  # what the operator uses of the runtime task instance
        dag_id, task_id, run_id, map_index = "killed", "sweep", unique("manual"), -1
        pushed: dict[str, Any] = {}

        def xcom_push(self, key: str, value: Any) -> None:
            self.pushed[key] = value

    operator = GridRunOperator(task_id="sweep", run_command=SLOW, path=EXAMPLES)
    ti = TaskInstance()
    ref = operator.submit_job({"ti": ti})  # type: ignore[arg-type]
    assert ti.pushed["grid_run_url"].endswith(f"/runs/{ref['name']}")
    operator.on_kill()
    assert grid_conn.wait_run(ref["name"], timeout=30)["status"]["phase"] == "RUN_STATE_CANCELED"


def test_validation_errors_fail_without_retry(grid_conn: ControlPlane, dagbag: Any) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    operator = GridRunOperator(task_id="bad", run_command='python train.py --lr "[1, 2"', path=EXAMPLES, name="ok-name")
    with pytest.raises(AirflowFailException, match=r"\[1, 2"):
        operator.execute({"ti": None, "task_state_store": None})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="best_mode"):
        GridRunOperator(task_id="bad2", run_command="x", best_mode="median")


# ---------------------------------------------------------------------- sensors


def test_sensors_in_poke_reschedule_and_deferrable_modes(grid_conn: ControlPlane, dagbag: Any) -> None:
    run = Run(run_command='python -c "import time; time.sleep(3)"', path=EXAMPLES, client=client_of(grid_conn))
    run.start()
    conf = {"run": run.name, "experiment": f"{run.name}-exp0"}
    dr = dagbag.get_dag("grid_test_sensors").test(logical_date=fresh_date(), run_conf=conf)
    for task_id in ("run_poke", "experiment_reschedule", "run_deferred"):
        assert ti_state(dr, task_id) == "success", task_id


def test_sensors_fail_at_once_on_a_failed_target_with_its_message(grid_conn: ControlPlane, dagbag: Any) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    run = Run(run_command=FAILS, path=EXAMPLES, client=client_of(grid_conn))
    run.start()
    grid_conn.wait_run(run.name)
    sensor = RunSensor(task_id="s", run_name=run.name)
    with pytest.raises(AirflowFailException, match=f"run {run.name} is failed"):
        sensor.poke({})  # type: ignore[arg-type]
    conf = {"run": run.name, "experiment": f"{run.name}-exp0"}
    dr = dagbag.get_dag("grid_test_sensors").test(logical_date=fresh_date(), run_conf=conf)
    for task_id in ("run_poke", "experiment_reschedule", "run_deferred"):
        assert ti_state(dr, task_id) == "failed", task_id
    with pytest.raises(ValueError, match="unknown statuses"):
        RunSensor(task_id="s2", run_name="x", target_states=["done"])


# ---------------------------------------------------------------------- datastore upload


def test_upload_returns_the_version_and_emits_the_asset_event(
    grid_conn: ControlPlane, dagbag: Any, tmp_path: Path
) -> None:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    src = make_tree(tmp_path / "data", {"a.txt": b"hello", "sub/b.bin": random_bytes(5000, 1)})
    operator = dagbag.get_dag("grid_test_upload").get_task("upload")
    assert operator.outlets == [datastore_asset("airflow-upload-test")]
    dr = dagbag.get_dag("grid_test_upload").test(logical_date=fresh_date(), run_conf={"source": str(src)})
    result = xcom(dr, "upload")
    assert result["name"] == "airflow-upload-test" and result["size"] == 5005 and result["version"] >= 1
    stored = Datastore(name="airflow-upload-test", version=result["version"], client=client_of(grid_conn))
    assert stored.snapshot_status == "succeeded" and stored.file_count == 2
    with create_session() as session:
        asset = session.query(AssetModel).filter_by(uri="grid://datastores/airflow-upload-test").one()
        events = session.query(AssetEvent).filter_by(asset_id=asset.id).all()
        assert any(e.extra.get("version") == result["version"] for e in events)


def test_a_retried_upload_resumes_the_interrupted_one(
    grid_conn: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The earlier try is stood in for by an SDK upload interrupted after a few parts (as a killed worker
    leaves it); the operator's try on the same worker finishes that version instead of starting another."""
    from tests.core.test_datastores import StopAfter  # interrupts an upload after n parts

    monkeypatch.setenv("GRID_OPS_UPLOAD_PART_SIZE", "10000")
    monkeypatch.setenv("GRID_OPS_UPLOAD_SAME_HOST", "0")  # parts over HTTP, as from a worker on another machine
    monkeypatch.setenv("GRID_OPS_UPLOAD_THREADS", "1")
    name = unique("resumed-by-airflow")
    src = make_tree(tmp_path / "data", {f"p{i}.bin": random_bytes(40_000, 1000 + i) for i in range(3)})
    with pytest.raises(KeyboardInterrupt):
        Datastore(name=name, source=src, client=client_of(grid_conn)).upload(progress=StopAfter(4))
    operator = DatastoreUploadOperator(task_id="upload", name=name, source=str(src))
    outlet_events: dict[Any, Any] = {}

    class Events(dict[Any, Any]):
        def __missing__(self, key: Any) -> Any:
            self[key] = type("Event", (), {"extra": {}})()
            return self[key]

    result = operator.execute({"outlet_events": Events(outlet_events)})  # type: ignore[arg-type]
    assert result == {"name": name, "version": 1, "size": 120_000}  # version 1 completed, not a version 2
    with pytest.raises(NotFoundError):
        Datastore(name=name, version=2, client=client_of(grid_conn))
    assert not list((Path(str(tmp_path / "grid-client")) / "uploads").glob("*"))  # progress forgotten
