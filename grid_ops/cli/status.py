"""``grid-ops status [RUN]``: the user's runs, or the experiments of one run with their parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from grid_ops.cli import output
from grid_ops.cli.errors import EXIT_FAILED, grid_error_message, show_error
from grid_ops.cli.metric_columns import MODES, best_line, last_values, metric_names, number
from grid_ops.cli.session import cluster_option, get_client
from grid_ops.errors import NotFoundError
from grid_ops.names import split_experiment_name

if TYPE_CHECKING:  # loaded by the functions that need them, not for `grid-ops status --help`
    from grid_ops import schemas
    from grid_ops.client import GridClient

F = TypeVar("F", bound=Callable[..., Any])

RUN_HEADERS = ("RUN", "STATUS", "EXPERIMENTS", "STARTED", "DURATION", "COST")


def experiments_done(run: schemas.Run) -> tuple[int, int]:
    """``(finished, total)`` experiments of a run, from its experiment counts (deleted ones left out)."""
    from grid_ops import schemas

    counts = run.status.experiment_counts or schemas.ExperimentCounts()
    finished = counts.succeeded + counts.failed + counts.cancelled
    total = finished + counts.pending + counts.running
    return finished, total


def run_row(run: schemas.Run) -> list[object]:
    """One row of the runs table."""
    from grid_ops.sdk.states import run_status

    done, total = experiments_done(run)
    status = run.status
    return [
        run.name,
        run_status(status.phase),
        f"{done}/{total}",
        output.timestamp(status.start_timestamp or run.created_at),
        output.duration(output.elapsed(status.start_timestamp, status.finish_timestamp)),
        output.money(status.cost),
    ]


def experiment_order(experiment: schemas.Experiment) -> tuple[int, str]:
    """Sort key of a run's experiments: by their number (exp2 before exp10)."""
    parts = split_experiment_name(experiment.name)
    return (parts[1] if parts else -1, experiment.name)


def parameter_names(experiments: list[schemas.Experiment]) -> list[str]:
    """The swept parameters of a run's experiments, in the order they first appear."""
    names: dict[str, None] = {}
    for experiment in experiments:
        for key in experiment.spec.parameters or {}:
            names.setdefault(key, None)
    return list(names)


def experiment_rows(
    experiments: list[schemas.Experiment],
    params: list[str],
    metrics: dict[str, dict[str, float]] | None = None,
    metric_columns: list[str] | None = None,
) -> list[list[object]]:
    """Rows of the experiments table: name, status, one column per parameter, then per metric (its last
    value), duration, cost, message."""
    from grid_ops.sdk.states import experiment_status

    rows: list[list[object]] = []
    for experiment in experiments:
        values = experiment.spec.parameters or {}
        last = (metrics or {}).get(experiment.name, {})
        status = experiment.status
        rows.append(
            [
                experiment.name,
                experiment_status(status.phase),
                *(values.get(p) for p in params),
                *(number(last.get(m)) for m in metric_columns or []),
                output.duration(output.elapsed(status.start_timestamp, status.finish_timestamp)),
                output.money(status.cost),
                status.message,
            ]
        )
    return rows


def show_runs() -> None:
    """Print the user's runs on the chosen cluster, newest first."""
    runs = get_client().list_runs()
    if output.wants_json():
        output.print_json(runs)
        return
    output.print_table(RUN_HEADERS, [run_row(r) for r in runs], empty="no runs yet: start one with `grid-ops run`")


def _best(
    client: GridClient, run: schemas.Run, metric: str | None, mode: str
) -> tuple[schemas.BestExperimentResponse | None, str | None]:
    """The best experiment by ``metric`` (if asked for), or why there is none."""
    if metric is None:
        return None, None
    try:
        return client.best_experiment(run.id, metric, mode, cluster_id=run.spec.cluster_id), None
    except NotFoundError as exc:
        return None, grid_error_message(exc)


def find_run(client: GridClient, name: str) -> schemas.Run:
    """Run ``name``; when there is none but ``name`` is an experiment, say so and what to type instead."""
    try:
        return client.get_run(name)
    except NotFoundError as exc:
        parts = split_experiment_name(name)
        if parts is None:
            raise
        try:
            client.get_experiment(name)
        except NotFoundError:
            raise exc from None
        raise NotFoundError(
            f"{name!r} is an experiment, not a run: see its run with `grid-ops status {parts[0]}` "
            f"or its log with `grid-ops logs {name}`",
            status_code=exc.status_code,
        ) from exc


def show_run(name: str, metric: str | None = None, mode: str = "max") -> bool:
    """Print one run's summary and the table of its experiments with a column per metric; with ``metric``
    also ``best: <experiment> <metric>=<value>``. False when no experiment reported ``metric``."""
    client = get_client()
    run = find_run(client, name)
    experiments = sorted(client.list_experiments(run_ids=[run.id]), key=experiment_order)
    metrics = last_values(client, run)
    best, missing = _best(client, run, metric, mode)
    if output.wants_json():
        output.print_json({"run": run, "experiments": experiments, "metrics": metrics, "best": best})
    else:
        output.print_table(RUN_HEADERS, [run_row(run)])
        if run.status.message:
            click.echo(f"message: {run.status.message}")
        click.echo()
        params = parameter_names(experiments)
        columns = metric_names(metrics, hide=params)
        headers = ["EXPERIMENT", "STATUS", *params, *columns, "DURATION", "COST", "MESSAGE"]
        rows = experiment_rows(experiments, params, metrics, columns)
        output.print_table(headers, rows, empty="(no experiments)")
        if best is not None:
            click.echo(best_line(best))
    if missing is not None:
        show_error(missing)
    return missing is None


def metric_options(func: F) -> F:
    """``--metric NAME`` and ``--mode max|min``: which metric picks the best experiment, and how."""
    func = click.option(
        "--mode", type=click.Choice(MODES), default="max", show_default=True, help="Whether higher or lower is better."
    )(func)
    return click.option("--metric", default=None, metavar="NAME", help="Print the best experiment by this metric.")(
        func
    )


@click.command()
@click.argument("run", required=False)
@metric_options
@cluster_option
@output.output_option
def status(run: str | None, metric: str | None, mode: str) -> None:
    """Without RUN, list your runs; with RUN, show its experiments, their parameters, metrics and status."""
    if run is None:
        if metric is not None:
            raise click.UsageError("--metric needs a RUN: grid-ops status RUN --metric NAME")
        show_runs()
    elif not show_run(run, metric, mode):
        click.get_current_context().exit(EXIT_FAILED)
