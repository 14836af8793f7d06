"""Metric points in the database: recording a runner's batch, and the summaries, series and best
experiment the API answers with.

Each point is kept (the series); each (experiment, metric) also has a summary row (last, min, max,
count) updated in the same transaction, so run-wide questions never scan the points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from grid_ops.metrics import valid_metric_name
from grid_ops.schemas import (
    ExperimentLastMetrics,
    ExperimentState,
    MetricPoint,
    MetricSample,
    MetricSummary,
)
from grid_ops.server.db import as_utc
from grid_ops.server.errors import ApiError, bad_request
from grid_ops.server.models import ExperimentRow, MetricPointRow, MetricSummaryRow, RunRow

MAX_POINTS_PER_CALL = 10_000
MODES = ("max", "min")
_DELETED = ExperimentState.DELETED.value


def check_points(points: Sequence[MetricPoint]) -> None:
    """Refuse a batch that is too large or has a point with a bad name or value (400 naming the point)."""
    if len(points) > MAX_POINTS_PER_CALL:
        raise bad_request(f"{len(points)} points in one call; send at most {MAX_POINTS_PER_CALL} per call")
    for i, point in enumerate(points):
        if not valid_metric_name(point.name):
            raise bad_request(
                f"points[{i}]: invalid metric name {point.name!r}: use 1 to 128 characters of A-Z a-z 0-9 _ . : / -"
            )
        if not math.isfinite(point.value):
            raise bad_request(f"points[{i}] ({point.name}): the value must be a finite number, got {point.value}")


def _utc(value: datetime | None, default: datetime) -> datetime:
    if value is None:
        return default
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def record(session: Session, exp: ExperimentRow, points: Sequence[MetricPoint], now: datetime) -> int:
    """Store the points not already stored (by ``seq``) and update the summaries; returns how many.

    A point whose ``seq`` is not above the highest seq stored for the experiment (earlier points of the
    same batch included) is skipped. Callers hold the experiment's lock, so the check cannot race."""
    high = session.scalar(select(func.max(MetricPointRow.seq)).where(MetricPointRow.experiment_id == exp.id))
    accepted: list[MetricPoint] = []
    for point in points:
        if point.seq is not None:
            if high is not None and point.seq <= high:
                continue
            high = point.seq
        accepted.append(point)
    if not accepted:
        return 0
    session.execute(
        insert(MetricPointRow),
        [
            {
                "experiment_id": exp.id,
                "name": p.name,
                "value": p.value,
                "step": p.step,
                "timestamp": _utc(p.timestamp, now),
                "seq": p.seq,
            }
            for p in accepted
        ],
    )
    _summarise(session, exp, accepted, now)
    return len(accepted)


def _summarise(session: Session, exp: ExperimentRow, points: Sequence[MetricPoint], now: datetime) -> None:
    """Fold ``points`` (in arrival order) into the experiment's summary rows."""
    names = {p.name for p in points}
    summaries = {
        s.name: s
        for s in session.scalars(
            select(MetricSummaryRow).where(MetricSummaryRow.experiment_id == exp.id, MetricSummaryRow.name.in_(names))
        )
    }
    for p in points:
        summary = summaries.get(p.name)
        if summary is None:
            summary = MetricSummaryRow(
                experiment_id=exp.id,
                name=p.name,
                run_id=exp.run_id,
                last_value=p.value,
                min_value=p.value,
                max_value=p.value,
                count=0,
            )
            session.add(summary)
            summaries[p.name] = summary
        summary.last_value = p.value
        summary.min_value = min(summary.min_value, p.value)
        summary.max_value = max(summary.max_value, p.value)
        summary.last_step = p.step
        summary.count += 1
        summary.updated_at = now


def experiment_metrics(
    session: Session, experiment_id: str, names: Sequence[str] | None, with_series: bool
) -> list[MetricSummary]:
    """The experiment's metrics sorted by name, each with its series (arrival order) when asked."""
    where = [MetricSummaryRow.experiment_id == experiment_id]
    if names:
        where.append(MetricSummaryRow.name.in_(list(names)))
    rows = session.scalars(select(MetricSummaryRow).where(*where).order_by(MetricSummaryRow.name)).all()
    series: dict[str, list[MetricSample]] = {r.name: [] for r in rows}
    if with_series and rows:
        points = session.execute(
            select(MetricPointRow.name, MetricPointRow.step, MetricPointRow.value, MetricPointRow.timestamp)
            .where(MetricPointRow.experiment_id == experiment_id, MetricPointRow.name.in_(list(series)))
            .order_by(MetricPointRow.name, MetricPointRow.id)
        ).all()
        for name, step, value, when in points:
            series[name].append(MetricSample(step=step, value=value, timestamp=as_utc(when)))
    return [
        MetricSummary(
            name=r.name,
            last=r.last_value,
            min=r.min_value,
            max=r.max_value,
            last_step=r.last_step,
            count=r.count,
            series=series[r.name] if with_series else None,
        )
        for r in rows
    ]


def run_last_values(session: Session, run: RunRow) -> list[ExperimentLastMetrics]:
    """Every live experiment of the run, in sweep order, with the last value of each of its metrics."""
    experiments = session.execute(
        select(ExperimentRow.id, ExperimentRow.name)
        .where(ExperimentRow.run_id == run.id, ExperimentRow.phase != _DELETED)
        .order_by(ExperimentRow.index)
    ).all()
    values: dict[str, dict[str, float]] = {exp_id: {} for exp_id, _ in experiments}
    for exp_id, name, last in session.execute(
        select(MetricSummaryRow.experiment_id, MetricSummaryRow.name, MetricSummaryRow.last_value)
        .where(MetricSummaryRow.run_id == run.id)
        .order_by(MetricSummaryRow.name)
    ):
        if exp_id in values:
            values[exp_id][name] = last
    return [ExperimentLastMetrics(name=name, metrics=values[exp_id]) for exp_id, name in experiments]


def _run_metric_names(session: Session, run: RunRow) -> list[str]:
    return list(
        session.scalars(
            select(MetricSummaryRow.name)
            .distinct()
            .join(ExperimentRow, ExperimentRow.id == MetricSummaryRow.experiment_id)
            .where(MetricSummaryRow.run_id == run.id, ExperimentRow.phase != _DELETED)
            .order_by(MetricSummaryRow.name)
        )
    )


def best(session: Session, run: RunRow, metric: str, mode: str, include_failed: bool) -> tuple[ExperimentRow, float]:
    """The experiment whose last value of ``metric`` is highest (``max``) or lowest (``min``); among the
    succeeded experiments unless ``include_failed``; ties go to the earlier experiment of the sweep."""
    if mode not in MODES:
        raise bad_request(f"mode must be 'max' or 'min', got {mode!r}")
    value = MetricSummaryRow.last_value
    query = (
        select(ExperimentRow, value)
        .join(MetricSummaryRow, MetricSummaryRow.experiment_id == ExperimentRow.id)
        .where(ExperimentRow.run_id == run.id, MetricSummaryRow.name == metric)
    )
    if include_failed:
        query = query.where(ExperimentRow.phase != _DELETED)
    else:
        query = query.where(ExperimentRow.phase == ExperimentState.SUCCEEDED.value)
    order = value.desc() if mode == "max" else value.asc()
    found = session.execute(query.order_by(order, ExperimentRow.index).limit(1)).first()
    if found is not None:
        return found[0], float(found[1])
    names = _run_metric_names(session, run)
    if metric in names:
        raise ApiError(
            404,
            f"no succeeded experiment of run {run.name!r} reported metric {metric!r}; experiments that did not "
            "succeed did: pass includeFailed=true to consider them",
        )
    reported = f"the metrics it has are: {', '.join(names)}" if names else "its experiments reported no metrics"
    raise ApiError(404, f"no experiment of run {run.name!r} reported metric {metric!r}; {reported}")
