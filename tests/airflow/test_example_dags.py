"""The example DAGs end to end with ``dag.test()``: real control plane, real experiments, real datastore."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from grid_ops.client import GridClient
from grid_ops.sdk import Datastore, Experiment
from tests.airflow.dagtools import fresh_date, ti_state, xcom
from tests.core.controlplane import ControlPlane


def test_grid_sweep_runs_the_sweep_and_senses_its_best_experiment(grid_conn: ControlPlane, dagbag: Any) -> None:
    dr = dagbag.get_dag("grid_sweep").test(logical_date=fresh_date(), run_conf={"C": "[1, 10]", "gamma": "[0.001]"})
    assert ti_state(dr, "sweep") == "success" and ti_state(dr, "best_experiment") == "success"
    summary = xcom(dr, "sweep")
    assert len(summary["experiments"]) == 2 and summary["best"]["metric"] == "val_accuracy"
    assert 0.8 < summary["best"]["value"] <= 1.0
    assert summary["best"]["parameters"]["C"] in ("1", "10")


def test_scheduled_retraining_uploads_the_day_sweeps_over_it_and_promotes_the_best_model(
    grid_conn: ControlPlane, dagbag: Any, tmp_path: Path
) -> None:
    out = tmp_path / "retraining"
    conf = {"C": "[1, 10]", "gamma": "[0.001]", "output_dir": str(out)}
    day = datetime(2026, 11, 20, tzinfo=UTC)  # after the DAG's start_date
    dr = dagbag.get_dag("scheduled_retraining").test(logical_date=day, run_conf=conf)
    for task_id in ("export_day", "upload_day", "sweep", "promote"):
        assert ti_state(dr, task_id) == "success", task_id
    ds = day.strftime("%Y-%m-%d")
    client = GridClient(grid_conn.url, grid_conn.user_id, grid_conn.api_key, cluster_id="local")
    uploaded = xcom(dr, "upload_day")
    version = Datastore(name="digits-daily", version=uploaded["version"], client=client)
    assert version.snapshot_status == "succeeded" and version.size == uploaded["size"] > 0
    summary = xcom(dr, "sweep")
    best = Experiment(summary["best"]["name"], client=client)
    assert best.datastore[0]["id"] == version.id  # the sweep read that day's version
    model = out / "models" / ds / "model.pkl"
    assert xcom(dr, "promote") == str(model)
    with model.open("rb") as f:
        assert float(summary["best"]["parameters"]["C"]) == pickle.load(f).C
    assert json.loads((out / "models" / ds / "best.json").read_text())["name"] == best.name
    assert (out / "data" / ds / "DAY").read_text().strip() == ds
