"""``grid-ops stop`` and ``grid-ops delete``: cancel or delete runs and experiments by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from grid_ops.cli import output
from grid_ops.cli.errors import EXIT_FAILED, grid_error_message, show_error
from grid_ops.cli.session import cluster_option, get_client
from grid_ops.cli.status import experiments_done
from grid_ops.errors import GridError

if TYPE_CHECKING:
    from grid_ops import schemas

KINDS = ("run", "experiment")
_KIND = click.Choice(KINDS)


def _for_each(names: tuple[str, ...], action: Callable[[str], object]) -> list[object]:
    """``action(name)`` for every name; errors are printed and make the command exit 1 at the end."""
    results: list[object] = []
    failed = False
    for name in names:
        try:
            results.append(action(name))
        except GridError as exc:
            show_error(grid_error_message(exc))
            failed = True
    if output.wants_json():
        output.print_json(results)
    if failed:
        click.get_current_context().exit(EXIT_FAILED)
    return results


def stop_run(name: str) -> schemas.Run:
    """Cancel every experiment of run ``name`` and say how many were still pending or running."""
    client = get_client()
    before = client.get_run(name)
    done, total = experiments_done(before)
    run = client.cancel_run(before.id)
    if not output.wants_json():
        click.echo(f"cancelled run {run.name} ({total - done} of {total} experiments were pending or running)")
    return run


def stop_experiment(name: str) -> schemas.Experiment:
    """Cancel experiment ``name`` (nothing happens to an experiment that already ended)."""
    from grid_ops import schemas
    from grid_ops.sdk.states import experiment_status

    experiment = get_client().cancel_experiment(name)
    if not output.wants_json():
        phase = experiment.status.phase
        if phase in schemas.EXPERIMENT_TERMINAL and phase is not schemas.ExperimentState.CANCELLED:
            click.echo(f"experiment {experiment.name} had already ended ({experiment_status(phase)})")
        else:
            click.echo(f"cancelled experiment {experiment.name}")
    return experiment


def delete_one(kind: str, name: str) -> dict[str, object]:
    """Delete one run (with its experiments) or one experiment."""
    client = get_client()
    if kind == "run":
        client.delete_run(name)
    else:
        client.delete_experiment(name)
    if not output.wants_json():
        click.echo(f"deleted {kind} {name}")
    return {"kind": kind, "name": name, "deleted": True}


@click.command()
@click.argument("kind", type=_KIND, metavar="run|experiment")
@click.argument("names", nargs=-1, required=True)
@cluster_option
@output.output_option
def stop(kind: str, names: tuple[str, ...]) -> None:
    """Cancel runs (every experiment in them) or single experiments, by name."""
    _for_each(names, stop_run if kind == "run" else stop_experiment)


@click.command()
@click.argument("kind", type=_KIND, metavar="run|experiment")
@click.argument("names", nargs=-1, required=True)
@cluster_option
@output.output_option
def delete(kind: str, names: tuple[str, ...]) -> None:
    """Delete runs (with their experiments) or single experiments, by name; running ones are cancelled first."""
    _for_each(names, lambda name: delete_one(kind, name))
