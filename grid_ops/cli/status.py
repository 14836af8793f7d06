"""``grid-ops status [RUN]``: the user's runs, or the experiments of one run with their parameters."""

from __future__ import annotations

import click

from grid_ops import schemas
from grid_ops.cli import output
from grid_ops.cli.session import cluster_option, get_client
from grid_ops.names import split_experiment_name
from grid_ops.sdk.states import experiment_status, run_status

RUN_HEADERS = ("RUN", "STATUS", "EXPERIMENTS", "STARTED", "DURATION", "COST")


def experiments_done(run: schemas.Run) -> tuple[int, int]:
    """``(finished, total)`` experiments of a run, from its experiment counts (deleted ones left out)."""
    counts = run.status.experiment_counts or schemas.ExperimentCounts()
    finished = counts.succeeded + counts.failed + counts.cancelled
    total = finished + counts.pending + counts.running
    return finished, total


def run_row(run: schemas.Run) -> list[object]:
    """One row of the runs table."""
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


def _index(experiment: schemas.Experiment) -> tuple[int, str]:
    parts = split_experiment_name(experiment.name)
    return (parts[1] if parts else -1, experiment.name)


def parameter_names(experiments: list[schemas.Experiment]) -> list[str]:
    """The swept parameters of a run's experiments, in the order they first appear."""
    names: dict[str, None] = {}
    for experiment in experiments:
        for key in experiment.spec.parameters or {}:
            names.setdefault(key, None)
    return list(names)


def experiment_rows(experiments: list[schemas.Experiment], params: list[str]) -> list[list[object]]:
    """Rows of the experiments table: name, status, one column per parameter, duration, cost, message."""
    rows: list[list[object]] = []
    for experiment in experiments:
        values = experiment.spec.parameters or {}
        status = experiment.status
        rows.append(
            [
                experiment.name,
                experiment_status(status.phase),
                *(values.get(p) for p in params),
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


def show_run(name: str) -> None:
    """Print one run's summary and the table of its experiments."""
    client = get_client()
    run = client.get_run(name)
    experiments = sorted(client.list_experiments(run_ids=[run.id]), key=_index)
    if output.wants_json():
        output.print_json({"run": run, "experiments": experiments})
        return
    output.print_table(RUN_HEADERS, [run_row(run)])
    if run.status.message:
        click.echo(f"message: {run.status.message}")
    click.echo()
    params = parameter_names(experiments)
    headers = ["EXPERIMENT", "STATUS", *params, "DURATION", "COST", "MESSAGE"]
    output.print_table(headers, experiment_rows(experiments, params), empty="(no experiments)")


@click.command()
@click.argument("run", required=False)
@cluster_option
@output.output_option
def status(run: str | None) -> None:
    """Without RUN, list your runs; with RUN, show its experiments, their parameters and status."""
    if run is None:
        show_runs()
    else:
        show_run(run)
