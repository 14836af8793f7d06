"""Metrics for people: an experiment's metrics and series, a run's best experiment by a metric, and the
last value of every metric of a run's experiments (for status tables)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from grid_ops.schemas import BestExperimentResponse, ExperimentMetricsResponse, RunMetricsResponse
from grid_ops.server import metric_store
from grid_ops.server.lookup import find_experiment, find_run
from grid_ops.server.query_params import split_values
from grid_ops.server.state import SessionDep, UserDep, wire_response
from grid_ops.server.views import experiment_view

router = APIRouter(prefix="/v1/core/{cluster_id}", tags=["metrics"])


@router.get("/experiments/{exp_ref}/metrics", response_model=ExperimentMetricsResponse)
async def experiment_metrics(
    cluster_id: str,
    exp_ref: str,
    session: SessionDep,
    user: UserDep,
    names: Annotated[list[str] | None, Query()] = None,
    series: bool = True,
) -> Response:
    """Each metric's last, min, max, last step and count (and its series unless ``series=false``)."""
    exp, _run = find_experiment(session, user, exp_ref)
    metrics = metric_store.experiment_metrics(session, exp.id, split_values(names), series)
    return wire_response(ExperimentMetricsResponse(metrics=metrics))


@router.get("/runs/{run_ref}/best", response_model=BestExperimentResponse)
async def best_experiment(
    cluster_id: str,
    run_ref: str,
    session: SessionDep,
    user: UserDep,
    metric: str,
    mode: str = "max",
    include_failed: Annotated[bool, Query(alias="includeFailed")] = False,
) -> Response:
    """The experiment with the highest (``max``) or lowest (``min``) last value of ``metric``."""
    run = find_run(session, user, run_ref)
    exp, value = metric_store.best(session, run, metric, mode, include_failed)
    return wire_response(BestExperimentResponse(experiment=experiment_view(exp, run), metric=metric, value=value))


@router.get("/runs/{run_ref}/metrics", response_model=RunMetricsResponse)
async def run_metrics(cluster_id: str, run_ref: str, session: SessionDep, user: UserDep) -> Response:
    """Every experiment of the run with the last value of each of its metrics."""
    run = find_run(session, user, run_ref)
    return wire_response(RunMetricsResponse(experiments=metric_store.run_last_values(session, run)))
