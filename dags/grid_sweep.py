"""One sweep of examples/train.py on grid-ops, then a sensor on its best experiment.

Trigger it with other values through the DAG's params, e.g.
``airflow dags test grid_sweep -c '{"C": "[1, 10]", "gamma": "[0.001]"}'``.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG

from airflow_provider.operators.run import GridRunOperator
from airflow_provider.sensors.grid import ExperimentSensor

PROJECT = os.environ.get("GRID_OPS_PROJECT_DIR") or str(Path(__file__).resolve().parents[1])
"""The source directory each run uploads (it holds examples/train.py)."""

with DAG(
    dag_id="grid_sweep",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"C": "[0.1, 1, 10]", "gamma": "[0.001, 0.01]"},
    tags=["grid-ops", "example"],
):
    sweep = GridRunOperator(
        task_id="sweep",
        run_command='python examples/train.py --C "{{ params.C }}" --gamma "{{ params.gamma }}"',
        path=PROJECT,
        best_metric="val_accuracy",
        poll_interval=2,
    )
    best_done = ExperimentSensor(
        task_id="best_experiment",
        experiment_name="{{ ti.xcom_pull(task_ids='sweep')['best']['name'] }}",
        mode="reschedule",
        poke_interval=5,
        timeout=600,
    )
    sweep >> best_done
