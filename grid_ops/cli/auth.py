"""``grid-ops login``: check an API key against a control plane and store it for later commands."""

from __future__ import annotations

import click

from grid_ops.cli import output
from grid_ops.cli.errors import CommandFailed


@click.command()
@click.option("--username", required=True, help="Your user name or user id.")
@click.option("--key", "api_key", required=True, help="Your API key.")
@click.option("--url", default=None, help="The control plane, e.g. https://grid.example.com (default: $GRID_URL).")
@output.output_option
def login(username: str, api_key: str, url: str | None) -> None:
    """Log in: verify the key with the control plane and save it in $GRID_OPS_HOME/credentials.json."""
    from grid_ops.credentials import credentials_path, read_json_file
    from grid_ops.errors import AuthenticationError
    from grid_ops.sdk.auth import login as sdk_login

    try:
        sdk_login(username=username, api_key=api_key, url=url)
    except AuthenticationError as exc:
        if exc.status_code != 401:
            raise
        # the server's message speaks of GRID_USER_ID and GRID_API_KEY, which login does not read
        raise CommandFailed(
            f"wrong user name or API key: the control plane refused --username {username!r} with the --key "
            "given (check both; a server's admin creates keys with `grid-ops users create NAME`)"
        ) from exc
    path = credentials_path()
    stored = read_json_file(path)
    if output.wants_json():
        output.print_json({"url": stored.get("url"), "userId": stored.get("userId"), "credentials": str(path)})
        return
    click.echo(f"logged in to {stored.get('url')} as {username} (user id {stored.get('userId')})")
    click.echo(f"credentials saved in {path}")
