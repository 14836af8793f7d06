"""``grid-ops logs EXPERIMENT``: print an experiment's log, its last lines, or follow it as it grows."""

from __future__ import annotations

import click

from grid_ops.cli.session import cluster_option, get_client


def _write(text: str) -> None:
    click.echo(text, nl=False)


@click.command()
@click.argument("experiment")
@click.option("-f", "--follow", is_flag=True, help="Keep printing as the log grows, until the experiment ends.")
@click.option("--tail", type=click.IntRange(min=0), default=None, metavar="N", help="Start with the last N lines.")
@cluster_option
def logs(experiment: str, follow: bool, tail: int | None) -> None:
    """Print the log of EXPERIMENT (a name such as my-run-exp0, or an id)."""
    client = get_client()
    offset = 0
    if tail is not None:
        chunk = client.experiment_logs(experiment, tail=tail)
        _write(chunk.data)
        offset = chunk.next_offset
        if not follow:
            return
    if follow:
        for piece in client.follow_logs(experiment, offset=offset):
            _write(piece)
        return
    while True:
        chunk = client.experiment_logs(experiment, offset=offset)
        _write(chunk.data)
        if not chunk.data or chunk.next_offset >= chunk.size:
            return
        offset = chunk.next_offset
