"""Daily retraining: export the day's data, upload it as a new datastore version, sweep examples/train.py
over it (deferred while it runs), pick the best experiment and promote its model.

The model lands in ``<output_dir>/models/<day>/model.pkl`` with a ``best.json`` beside it; ``output_dir``
is a DAG param (default ``$GRID_RETRAIN_DIR``, else ``$AIRFLOW_HOME/grid-retraining``), and so are the
swept values ``C`` and ``gamma``.
"""

from __future__ import annotations

import importlib.util
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import dag, task

from airflow_provider.operators.datastore import DatastoreUploadOperator
from airflow_provider.operators.run import GridRunOperator

PROJECT = os.environ.get("GRID_OPS_PROJECT_DIR") or str(Path(__file__).resolve().parents[1])
"""The source directory each run uploads (it holds examples/train.py and examples/daily_data.py)."""
DATASTORE = "digits-daily"
OUTPUT_DIR = os.environ.get("GRID_RETRAIN_DIR") or os.path.join(
    os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")), "grid-retraining"
)


@dag(
    dag_id="scheduled_retraining",
    schedule="@daily",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={"C": "[1, 10]", "gamma": "[0.001, 0.01]", "output_dir": OUTPUT_DIR},
    tags=["grid-ops", "example"],
)
def scheduled_retraining() -> None:
    @task
    def export_day(ds: str | None = None, params: dict[str, Any] | None = None) -> str:
        """Write the day's digits.npz (examples/daily_data.py) into <output_dir>/data/<day>."""
        assert ds is not None and params is not None
        spec = importlib.util.spec_from_file_location("daily_data", Path(PROJECT) / "examples" / "daily_data.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return str(module.write_day(ds, Path(params["output_dir"]) / "data" / ds))

    upload = DatastoreUploadOperator(
        task_id="upload_day",
        name=DATASTORE,
        source="{{ ti.xcom_pull(task_ids='export_day') }}",
    )

    sweep = GridRunOperator(
        task_id="sweep",
        run_command=(
            'python examples/train.py --data-dir $GRID_DATASTORE_DIR --C "{{ params.C }}" --gamma "{{ params.gamma }}"'
        ),
        datastore=DATASTORE + ":{{ ti.xcom_pull(task_ids='upload_day')['version'] }}",
        path=PROJECT,
        best_metric="val_accuracy",
        deferrable=True,
        poll_interval=2,
        timeout=3600,
    )

    @task
    def promote(summary: dict[str, Any], ds: str | None = None, params: dict[str, Any] | None = None) -> str:
        """Download the best experiment's model.pkl into <output_dir>/models/<day>/ and describe it."""
        from airflow_provider.hooks.grid import GridHook
        from grid_ops.sdk import Experiment

        assert ds is not None and params is not None
        best = summary["best"]
        if not best:
            raise ValueError(f"run {summary['name']} has no best experiment by val_accuracy")
        target = Path(params["output_dir"]) / "models" / ds
        hook = GridHook()
        experiment = Experiment(best["name"], client=hook.client)
        files = experiment.download_artifacts(target, pattern=r"^model\.pkl$")
        if not files:
            raise ValueError(f"experiment {best['name']} kept no model.pkl")
        (target / "best.json").write_text(json.dumps({**best, "run": summary["name"]}, indent=2) + "\n")
        print(f"best experiment {best['name']} {best['parameters']} val_accuracy={best['value']} -> {files[0]}")
        return str(files[0])

    day = export_day()
    day >> upload >> sweep
    promote(sweep.output)


scheduled_retraining()
