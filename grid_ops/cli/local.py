"""``grid-ops local start|stop|status``: the embedded control plane of ``$GRID_OPS_HOME`` on this machine."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import click

from grid_ops.cli import output
from grid_ops.cli.errors import CommandFailed
from grid_ops.credentials import grid_ops_home

if TYPE_CHECKING:
    from grid_ops.credentials import Credentials

_HOME = click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The grid-ops home of the local control plane (default: $GRID_OPS_HOME or ~/.grid_ops).",
)


def export_lines(credentials: Credentials) -> list[str]:
    """``export NAME=value`` lines that point any client at ``credentials`` (for ``eval``)."""
    values = {"GRID_URL": credentials.url, "GRID_USER_ID": credentials.user_id, "GRID_API_KEY": credentials.api_key}
    return [f"export {key}={shlex.quote(value)}" for key, value in values.items()]


@click.group()
def local() -> None:
    """Start, stop and inspect the embedded control plane that serves this machine."""


@local.command()
@click.option("--env", "as_env", is_flag=True, help="Print `export GRID_URL=... GRID_USER_ID=... GRID_API_KEY=...`.")
@_HOME
@output.output_option
def start(as_env: bool, home: Path | None) -> None:
    """Start the local control plane (or reuse the running one) and print where it listens."""
    from grid_ops.embedded import ensure_local_server

    home = home or grid_ops_home()
    credentials = ensure_local_server(home)
    if as_env:
        for line in export_lines(credentials):
            click.echo(line)
        return
    if output.wants_json():
        output.print_json(
            {"url": credentials.url, "userId": credentials.user_id, "apiKey": credentials.api_key, "home": str(home)}
        )
        return
    click.echo(f"local control plane at {credentials.url} (user {credentials.user_id}, home {home})")
    click.echo('other clients: eval "$(grid-ops local start --env)"')


def _active_experiments(home: Path) -> list[str]:
    """Names of the local user's experiments that are running now (stopping would end them)."""
    from grid_ops import schemas
    from grid_ops.client import GridClient
    from grid_ops.embedded import running_local_credentials

    credentials = running_local_credentials(home)
    if credentials is None:
        return []
    with GridClient.from_credentials(credentials) as client:
        return [
            exp.name
            for cluster in client.list_clusters().clusters
            for exp in client.iter_experiments(
                phase_in=(schemas.ExperimentState.RUNNING, schemas.ExperimentState.IMAGE_BUILDING),
                cluster_id=cluster.id,
            )
        ]


@local.command()
@_HOME
@click.option("--force", is_flag=True, help="Stop even though experiments are running (they are ended).")
def stop(home: Path | None, force: bool) -> None:
    """Stop the local control plane gracefully.

    Running experiments get SIGTERM: those started with auto_resume pause and resume at the next start,
    the others fail as interrupted. While any run, this refuses unless --force is given.
    """
    from grid_ops.embedded import stop_local_server

    home = home or grid_ops_home()
    active = [] if force else _active_experiments(home)
    if active:
        shown = ", ".join(active[:5]) + (f" and {len(active) - 5} more" if len(active) > 5 else "")
        raise CommandFailed(
            f"{len(active)} experiment(s) are running ({shown}); stopping would end them (auto_resume ones "
            "pause and resume at the next start). Wait for them, `grid-ops stop run NAME`, or pass --force"
        )
    if stop_local_server(home):
        click.echo(f"stopped the local control plane of {home}")
    else:
        click.echo(f"no local control plane was running for {home}")


@local.command()
@_HOME
@output.output_option
def status(home: Path | None) -> None:
    """Say whether the local control plane runs, where, and whether it answers."""
    from grid_ops.embedded import local_server_status

    home = home or grid_ops_home()
    found = local_server_status(home)
    if output.wants_json():
        output.print_json({"running": True, **found} if found else {"running": False, "home": str(home)})
    elif found is None:
        click.echo(f"no local control plane is running for {home}")
    else:
        rows = [(key, found[key]) for key in ("url", "pid", "healthy", "home", "log")]
        output.print_table(("KEY", "VALUE"), rows)
    if found is not None and not found["healthy"]:
        raise CommandFailed(f"the local control plane (pid {found['pid']}) runs but does not answer {found['url']}")
