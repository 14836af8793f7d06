"""examples/prefect_retraining.py end to end: the day's data uploaded, the sweep run over it, and the best
experiment's model promoted into models/<day>/."""

from __future__ import annotations

import importlib.util
import json
import pickle
from pathlib import Path
from types import ModuleType

from prefect_tasks import GridCredentials
from tests.core.controlplane import ControlPlane

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "prefect_retraining.py"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("prefect_retraining", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_daily_retraining_promotes_the_best_model(creds: GridCredentials, cp: ControlPlane, tmp_path: Path) -> None:
    out = _example().daily_retraining(
        day="2026-02-01", C="[1, 10]", gamma="[0.001]", output_dir=str(tmp_path), credentials=creds
    )
    assert out["status"] == "succeeded" and out["experiments"] == {"succeeded": 2}
    assert out["datastore"].startswith("digits-daily:")
    best = out["best_experiment"]
    metrics = cp.ok("GET", f"/v1/core/local/runs/{out['run_name']}/metrics")["experiments"]
    assert best["value"] == max(e["metrics"]["val_accuracy"] for e in metrics)
    model = tmp_path / "models" / "2026-02-01" / "model.pkl"
    assert out["model"] == str(model)
    assert float(best["parameters"]["C"]) == pickle.loads(model.read_bytes()).C
    assert json.loads((model.parent / "best.json").read_text())["name"] == best["name"]
    assert (tmp_path / "data" / "2026-02-01" / "digits.npz").is_file()
