"""``grid-ops users create|list``: manage users on the server's host, straight in the server's database.

The database is the embedded control plane's (``$GRID_OPS_HOME/server/grid.db``) unless ``--home``,
``--state-dir`` (a ``grid-ops server --state-dir``) or ``--db`` (a database URL) names another one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from grid_ops.cli import output
from grid_ops.cli.errors import CommandFailed
from grid_ops.credentials import grid_ops_home

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

F = TypeVar("F", bound=Callable[..., Any])


def database_options(func: F) -> F:
    """Decorator adding ``--home``, ``--state-dir`` and ``--db`` (at most one of them may be given)."""
    for option in reversed(
        (
            click.option(
                "--home",
                type=click.Path(file_okay=False, path_type=Path),
                default=None,
                help="grid-ops home of the embedded control plane (default: $GRID_OPS_HOME or ~/.grid_ops).",
            ),
            click.option(
                "--state-dir",
                type=click.Path(file_okay=False, path_type=Path),
                default=None,
                help="State directory of a `grid-ops server` that uses the default SQLite database.",
            ),
            click.option("--db", "db_url", metavar="URL", default=None, help="Database URL of the control plane."),
        )
    ):
        func = option(func)
    return func


def database_url(home: Path | None, state_dir: Path | None, db_url: str | None) -> str:
    """The database URL chosen by the options; a SQLite file that does not exist yet is an error."""
    from grid_ops.server.db import sqlite_url

    given = [name for name, value in (("--home", home), ("--state-dir", state_dir), ("--db", db_url)) if value]
    if len(given) > 1:
        raise click.UsageError(f"give only one of --home, --state-dir and --db (got {' and '.join(given)})")
    if db_url:
        return db_url
    directory = state_dir if state_dir is not None else (home or grid_ops_home()) / "server"
    database = directory.expanduser().absolute() / "grid.db"
    if not database.is_file():
        raise CommandFailed(
            f"no control plane database at {database}: start the control plane once first "
            "(`grid-ops local start`, or `grid-ops server --state-dir DIR`), or point at it with "
            "--home, --state-dir or --db"
        )
    return sqlite_url(database.parent)


@contextmanager
def open_database(url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the control plane's database (tables created if missing), disposed of afterwards."""
    from sqlalchemy.exc import SQLAlchemyError

    from grid_ops.server.db import init_db, make_engine

    try:
        engine = make_engine(url)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise CommandFailed(f"cannot open the database: {exc}") from exc
    try:
        yield init_db(engine)
    except SQLAlchemyError as exc:
        raise CommandFailed(f"database error: {type(exc).__name__}: {getattr(exc, 'orig', None) or exc}") from exc
    finally:
        engine.dispose()


@click.group()
def users() -> None:
    """Create and list users of a control plane (run on the server's host)."""


@users.command()
@click.argument("name")
@click.option("--team", default=None, help="Team the user belongs to.")
@database_options
@output.output_option
def create(name: str, team: str | None, home: Path | None, state_dir: Path | None, db_url: str | None) -> None:
    """Create user NAME and print its id and API key (shown only this once)."""
    from grid_ops.server.errors import ApiError
    from grid_ops.server.users import add_user

    url = database_url(home, state_dir, db_url)
    with open_database(url) as sessions:
        try:
            user_id, api_key = add_user(sessions, name, team)
        except ApiError as exc:
            if exc.status == 400:
                raise click.BadParameter(exc.message, param_hint="'NAME'") from exc
            raise CommandFailed(exc.message) from exc
    if output.wants_json():
        data: dict[str, object] = {"id": user_id, "username": name, "apiKey": api_key}
        if team:
            data["team"] = team
        output.print_json(data)
        return
    click.echo(f"created user {name} (id {user_id}{f', team {team}' if team else ''})")
    click.echo(f"API key: {api_key}  (shown only now; it is stored hashed)")
    click.echo(f"clients: export GRID_USER_ID={user_id} GRID_API_KEY={api_key} GRID_URL=<the server's URL>")


@users.command("list")
@database_options
@output.output_option
def list_(home: Path | None, state_dir: Path | None, db_url: str | None) -> None:
    """List the users of the control plane, oldest first."""
    from grid_ops.server.users import list_users

    with open_database(database_url(home, state_dir, db_url)) as sessions:
        found = list_users(sessions)
    if output.wants_json():
        output.print_json([{"id": uid, "username": name, "team": team} for uid, name, team in found])
        return
    output.print_table(("ID", "USERNAME", "TEAM"), found, empty="no users")
