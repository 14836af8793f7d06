"""Metrics in the CLI's run view: one column per metric (each experiment's last value) and the
``best: <experiment> <metric>=<value>`` line."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from grid_ops import schemas
    from grid_ops.client import GridClient

MODES = ("max", "min")


def number(value: float | None) -> str | None:
    """A metric value for a table cell: six significant digits."""
    return None if value is None else f"{value:.6g}"


def last_values(client: GridClient, run: schemas.Run) -> dict[str, dict[str, float]]:
    """Each experiment's last value of each metric, by experiment name."""
    return {e.name: e.metrics for e in client.run_metrics(run.id, cluster_id=run.spec.cluster_id)}


def metric_names(values: dict[str, dict[str, float]], hide: list[str] | None = None) -> list[str]:
    """Every metric any experiment reported, sorted, except those named like a parameter in ``hide``
    (usually the command line echoing ``--lr=0.1``, which the default pattern reads as a metric)."""
    hidden = set(hide or [])
    return sorted({name for metrics in values.values() for name in metrics} - hidden)


def best_line(best: schemas.BestExperimentResponse) -> str:
    return f"best: {best.experiment.name} {best.metric}={number(best.value)}"
