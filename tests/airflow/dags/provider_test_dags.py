"""DAGs the provider tests run with ``dag.test()`` (Airflow runs only DAGs parsed from its DAGs folder).

Commands, names and targets come from the DAG run's conf (``params``), so one DAG serves many cases.
``CrashingRunOperator`` stands in for a worker that dies at a chosen point: with ``$GRID_TEST_CRASH`` set to
``after_submit`` it raises right after the run was created and before its name reaches the task state
store; with ``while_polling`` it raises after the name was saved. It does so on the first try only: these
DAGs retry at once, and the retry is Airflow's own (same DAG run, same task instance, next try).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Context

from airflow_provider.operators.datastore import DatastoreUploadOperator
from airflow_provider.operators.run import GridRunOperator
from airflow_provider.sensors.grid import ExperimentSensor, RunSensor

ROOT = os.environ.get("GRID_OPS_PROJECT_DIR") or str(Path(__file__).resolve().parents[3])
EXAMPLES = str(Path(ROOT) / "examples")
START = datetime(2026, 1, 1)
PARAMS: dict[str, Any] = {"command": "python -c 'print(1)'", "metric": "val_accuracy", "tag": "x"}


class CrashingRunOperator(GridRunOperator):
    """A ``GridRunOperator`` whose worker "dies" where ``$GRID_TEST_CRASH`` says (see the module doc)."""

    def submit_job(self, context: Context) -> dict[str, Any]:
        ref = super().submit_job(context)
        if os.environ.get("GRID_TEST_CRASH") == "after_submit" and context["ti"].try_number == 1:
            raise RuntimeError(f"simulated worker crash after submitting {ref['name']}")
        return ref

    def poll_until_complete(self, external_id: Any, context: Context) -> Any:
        if os.environ.get("GRID_TEST_CRASH") == "while_polling" and context["ti"].try_number == 1:
            raise RuntimeError(f"simulated worker crash while waiting for {external_id['name']}")
        return super().poll_until_complete(external_id, context)


def _sweep(dag_id: str, **kwargs: Any) -> DAG:
    with DAG(dag_id, schedule=None, start_date=START, catchup=False, params=PARAMS) as dag:
        operator = kwargs.pop("operator", GridRunOperator)
        operator(
            task_id="sweep",
            run_command="{{ params.command }}",
            path=EXAMPLES,
            poll_interval=0.5,
            best_metric="{{ params.metric }}",
            **kwargs,
        )
    return dag


grid_test_sync = _sweep("grid_test_sync")
grid_test_deferrable = _sweep("grid_test_deferrable", deferrable=True)
grid_test_timeout_sync = _sweep("grid_test_timeout_sync", timeout=3)
grid_test_timeout_deferred = _sweep("grid_test_timeout_deferred", timeout=3, deferrable=True)
RETRY = {"retries": 1, "retry_delay": timedelta(0)}
grid_test_retry = _sweep("grid_test_retry", **RETRY)
grid_test_reattach = _sweep("grid_test_reattach", operator=CrashingRunOperator, **RETRY)
grid_test_reattach_store = _sweep(
    "grid_test_reattach_store",
    operator=CrashingRunOperator,
    name="store-{{ params.tag }}-try{{ ti.try_number }}",
    **RETRY,
)
grid_test_reattach_deferred = _sweep(
    "grid_test_reattach_deferred", operator=CrashingRunOperator, deferrable=True, **RETRY
)

with DAG("grid_test_sensors", schedule=None, start_date=START, catchup=False, params={"run": "", "experiment": ""}):
    RunSensor(task_id="run_poke", run_name="{{ params.run }}", poke_interval=0.5, timeout=120)
    ExperimentSensor(
        task_id="experiment_reschedule",
        experiment_name="{{ params.experiment }}",
        mode="reschedule",
        poke_interval=1,
        timeout=120,
    )
    RunSensor(task_id="run_deferred", run_name="{{ params.run }}", deferrable=True, poke_interval=0.5, timeout=120)

with DAG("grid_test_upload", schedule=None, start_date=START, catchup=False, params={"source": ""}):
    DatastoreUploadOperator(task_id="upload", name="airflow-upload-test", source="{{ params.source }}")
