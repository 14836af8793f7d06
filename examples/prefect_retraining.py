"""Daily retraining as a Prefect flow: export the day's data, upload it as a new datastore version, sweep
examples/train.py over it, pick the best experiment and promote its model.

The model lands in ``<output_dir>/models/<day>/model.pkl`` with a ``best.json`` beside it. The sweep is
``sweep_flow`` from ``prefect_tasks``, run as a subflow: it cancels its grid-ops run when the flow run is
cancelled, times out or crashes, and a retry reattaches to the run already going. Run it as a script
(against the embedded local control plane unless ``GRID_URL`` says otherwise):

    python examples/prefect_retraining.py --day 2026-01-15 --output-dir ./grid-retraining

or deploy ``daily_retraining`` with a daily schedule (``daily_retraining.serve(cron="0 3 * * *")``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from prefect import flow, task

from grid_ops.sdk.experiment import Experiment
from prefect_tasks import GridCredentials, cancel_grid_runs, sweep_flow

PROJECT = os.environ.get("GRID_OPS_PROJECT_DIR") or str(Path(__file__).resolve().parents[1])
"""The source directory each run uploads (it holds examples/train.py and examples/daily_data.py)."""
DATASTORE = "digits-daily"
OUTPUT_DIR = os.environ.get("GRID_RETRAIN_DIR") or "grid-retraining"


@task
def export_day(day: str, output_dir: str) -> str:
    """Write the day's digits.npz (examples/daily_data.py) into <output_dir>/data/<day>."""
    spec = importlib.util.spec_from_file_location("daily_data", Path(PROJECT) / "examples" / "daily_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.write_day(day, Path(output_dir) / "data" / day))


@task
def promote(sweep: dict[str, Any], day: str, output_dir: str, credentials: GridCredentials | None) -> str:
    """Download the best experiment's model.pkl into <output_dir>/models/<day>/ and describe it."""
    best = sweep["best_experiment"]
    if not best:
        raise ValueError(f"run {sweep['run_name']} has no best experiment by val_accuracy")
    target = Path(output_dir) / "models" / day
    experiment = Experiment(best["name"], client=(credentials or GridCredentials()).get_client())
    files = experiment.download_artifacts(target, pattern=r"^model\.pkl$")
    if not files:
        raise ValueError(f"experiment {best['name']} kept no model.pkl")
    (target / "best.json").write_text(json.dumps(best, indent=2) + "\n")
    print(f"best experiment {best['name']} {best['parameters']} val_accuracy={best['value']} -> {files[0]}")
    return str(files[0])


@flow(
    name="daily-retraining",
    log_prints=True,
    on_cancellation=[cancel_grid_runs],
    on_crashed=[cancel_grid_runs],
)
def daily_retraining(
    day: str | None = None,
    C: str = "[1, 10]",
    gamma: str = "[0.001, 0.01]",
    output_dir: str = OUTPUT_DIR,
    credentials: GridCredentials | None = None,
    timeout: float = 3600,
) -> dict[str, Any]:
    """Retrain on ``day``'s data (default: today) and promote the best model; returns the sweep's result
    with the promoted model's path."""
    day = day or dt.date.today().isoformat()
    data = export_day(day, output_dir)
    sweep = sweep_flow(
        f'python examples/train.py --data-dir $GRID_DATASTORE_DIR --C "{C}" --gamma "{gamma}"',
        credentials,
        metric="val_accuracy",
        datastore_source=data,
        datastore_name=DATASTORE,
        path=PROJECT,
        poll_interval=2,
        timeout=timeout,
    )
    return {**sweep, "model": promote(sweep, day, output_dir, credentials)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", default=None, help="the day to retrain on, YYYY-MM-DD (default: today)")
    parser.add_argument("--output-dir", default=OUTPUT_DIR, help="where data/<day> and models/<day> go")
    parser.add_argument("--C", default="[1, 10]", help="the values of C to sweep (a Python list)")
    parser.add_argument("--gamma", default="[0.001, 0.01]", help="the values of gamma to sweep")
    args = parser.parse_args()
    result = daily_retraining(day=args.day, C=args.C, gamma=args.gamma, output_dir=os.path.abspath(args.output_dir))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
