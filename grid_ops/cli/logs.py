"""``grid-ops logs EXPERIMENT``: print an experiment's log, its last lines, or follow it as it grows;
``--build`` does the same with the log of the build of its dependency environment.

With ``-o json`` it prints one object instead: ``{"experiment", "data", "offset", "nextOffset", "size",
"eof"}``; ``--offset`` (the ``nextOffset`` of an earlier call) continues from where that one stopped.
"""

from __future__ import annotations

import click

from grid_ops.cli import output
from grid_ops.cli.session import cluster_option, get_client


def _write(text: str) -> None:
    click.echo(text, nl=False)


@click.command()
@click.argument("experiment")
@click.option("-f", "--follow", is_flag=True, help="Keep printing as the log grows, until the experiment ends.")
@click.option("--tail", type=click.IntRange(min=0), default=None, metavar="N", help="Start with the last N lines.")
@click.option(
    "--offset",
    type=click.IntRange(min=0),
    default=None,
    metavar="BYTES",
    help="Start at this byte of the log (the nextOffset of an earlier `-o json` answer).",
)
@click.option("--build", is_flag=True, help="The log of the build of the experiment's dependency environment.")
@cluster_option
@output.output_option
def logs(experiment: str, follow: bool, tail: int | None, offset: int | None, build: bool) -> None:
    """Print the log of EXPERIMENT (a name such as my-run-exp0, or an id).

    With --build, print the log of the build of its dependency environment (requirements.txt or
    environment.yml) instead.

    With -o json, print {"experiment", "data", "offset", "nextOffset", "size", "eof"} instead of the text.
    """
    if tail is not None and offset is not None:
        raise click.UsageError("give --tail or --offset, not both")
    if follow and output.wants_json():
        raise click.UsageError(
            "--follow prints the log as text while it grows: drop -o json, or poll with -o json --offset N"
        )
    client = get_client()
    if output.wants_json():
        if tail is not None:
            chunk = client.experiment_logs(experiment, tail=tail, build=build)
            start, data = chunk.offset, chunk.data
        else:
            start = offset or 0
            chunk = client.experiment_logs(experiment, offset=start, build=build)
            pieces = [chunk.data]
            while chunk.data and chunk.next_offset < chunk.size:
                chunk = client.experiment_logs(experiment, offset=chunk.next_offset, build=build)
                pieces.append(chunk.data)
            data = "".join(pieces)
        output.print_json(
            {
                "experiment": experiment,
                "data": data,
                "offset": start,
                "nextOffset": chunk.next_offset,
                "size": chunk.size,
                "eof": chunk.eof,
            }
        )
        return
    position = offset or 0
    if tail is not None:
        chunk = client.experiment_logs(experiment, tail=tail, build=build)
        _write(chunk.data)
        position = chunk.next_offset
        if not follow:
            return
    if follow:
        for piece in client.follow_logs(experiment, offset=position, build=build):
            _write(piece)
        return
    while True:
        chunk = client.experiment_logs(experiment, offset=position, build=build)
        _write(chunk.data)
        if not chunk.data or chunk.next_offset >= chunk.size:
            return
        position = chunk.next_offset
