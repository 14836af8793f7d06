"""``sweep_flow`` end to end, sync and async: datastore upload, sweep, best experiment, and the artifacts it
leaves in Prefect (read back through the Prefect client)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from prefect_tasks import GridCredentials, RunNotSucceeded, sweep_flow, sweep_flow_async
from tests.core.controlplane import ControlPlane
from tests.prefect.helpers import artifacts, table

ROOT = Path(__file__).resolve().parents[2]


def test_sweep_flow_uploads_sweeps_picks_the_best_and_reports(
    creds: GridCredentials, src: Path, cp: ControlPlane, tmp_path: Path
) -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from daily_data import write_day
    finally:
        sys.path.pop(0)
    data = write_day("2026-01-15", tmp_path / "2026-01-15", samples=400)
    out = sweep_flow(
        'python train.py --data-dir "$GRID_DATASTORE_DIR" --C "[0.1, 10]" --gamma "[0.001, 0.05]"',
        creds,
        metric="val_accuracy",
        datastore_source=str(data),
        datastore_name="digits-sweep-flow",
        path=str(src),
        poll_interval=0.3,
    )
    name = out["run_name"]
    assert out["status"] == "succeeded"
    assert out["datastore"] == "digits-sweep-flow:1"
    assert out["experiments"] == {"succeeded": 4}
    assert out["cost"] > 0
    best = out["best_experiment"]
    assert best["name"].startswith(f"{name}-exp") and best["metric"] == "val_accuracy"
    accuracies = {
        e["name"]: e["metrics"]["val_accuracy"]
        for e in cp.ok("GET", f"/v1/core/local/runs/{name}/metrics")["experiments"]
    }
    assert best["value"] == max(accuracies.values()) == accuracies[best["name"]]
    json.dumps(out)  # a small JSON result

    found = artifacts(name)
    assert set(found) == {"link", "progress", "experiments", "summary"}
    link = found["link"][-1]
    assert link.type == "markdown" and f"{cp.url}/v1/core/local/runs/{name}" in str(link.data)
    assert found["progress"][-1].type == "progress" and found["progress"][-1].data == 100.0
    assert "4/4 experiments" in (found["progress"][-1].description or "")
    rows = table(found["experiments"][-1])
    assert [row["experiment"] for row in rows] == [f"{name}-exp{i}" for i in range(4)]
    assert rows[0]["parameters"] == "C=0.1, gamma=0.001"
    assert {row["status"] for row in rows} == {"succeeded"}
    assert {row["experiment"]: row["val_accuracy"] for row in rows} == accuracies
    assert all(row["cost"] > 0 for row in rows)
    summary = str(found["summary"][-1].data)
    assert f"grid-ops run `{name}`: succeeded" in summary
    assert f"`{best['name']}` with val_accuracy = {best['value']:g}" in summary


def test_sweep_flow_async_returns_the_same_result(creds: GridCredentials, src: Path) -> None:
    out = asyncio.run(
        sweep_flow_async(
            'python sleep.py --seconds 0.1 --score "[3, 1, 2]"',
            creds,
            metric="score",
            mode="min",
            path=str(src),
            poll_interval=0.2,
        )
    )
    assert out["status"] == "succeeded" and out["experiments"] == {"succeeded": 3}
    assert out["best_experiment"]["name"] == f"{out['run_name']}-exp1" and out["best_experiment"]["value"] == 1.0
    found = artifacts(out["run_name"])
    assert "Best by score (min)" in str(found["summary"][-1].data)
    assert found["progress"][-1].data == 100.0


def test_sweep_flow_fails_when_the_run_fails_and_still_reports_it(creds: GridCredentials, src: Path) -> None:
    state = sweep_flow(
        "python fail.py", creds, metric="score", strategy="none", path=str(src), poll_interval=0.2, return_state=True
    )
    assert state.is_failed()
    with pytest.raises(RunNotSucceeded, match="exited with code 3"):
        state.result()
    name = f"grid-sweep-{state.state_details.flow_run_id.hex[:12]}-0"  # type: ignore[union-attr]
    found = artifacts(name)
    assert table(found["experiments"][-1])[0]["status"] == "failed"
    summary = str(found["summary"][-1].data)
    assert f"grid-ops run `{name}`: failed" in summary and "exited with code 3" in summary
