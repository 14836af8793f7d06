"""``grid-ops server``: run a control plane in the foreground, for deployments."""

from __future__ import annotations

from pathlib import Path

import click

from grid_ops.cli.errors import CommandFailed


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port (0: any free).")
@click.option(
    "--db",
    "db_url",
    metavar="URL",
    default=None,
    help="Database URL, e.g. postgresql://user:pw@host/grid (default: SQLite in the state directory).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Server config YAML: clusters, instance types, prices (default: this machine as one cluster).",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the server keeps sources, logs and artifacts (default: $GRID_OPS_STATE_DIR or ./grid-ops-state).",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
    help="Log level of the HTTP server.",
)
@click.option(
    "--heartbeat-timeout",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Fail a running experiment whose runner sends no heartbeat for this long (default: the config's "
    "heartbeat_timeout_seconds, else 60; 0: never).",
)
def server(
    host: str,
    port: int,
    db_url: str | None,
    config_path: Path | None,
    state_dir: Path | None,
    log_level: str,
    heartbeat_timeout: float | None,
) -> None:
    """Run a control plane in the foreground until Ctrl-C or SIGTERM."""
    from grid_ops.server.config import ConfigError, load_config
    from grid_ops.server.serve import serve

    if config_path is not None:
        try:
            load_config(config_path)  # checked here so that a bad file is a usage error (exit 2)
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="'--config'") from exc
    try:
        serve(
            host=host,
            port=port,
            db_url=db_url,
            config_path=str(config_path) if config_path else None,
            state_dir=state_dir,
            log_level=log_level,
            heartbeat_timeout=heartbeat_timeout,
        )
    except SystemExit as exc:  # serve() exits with "error: ..." when, e.g., the database is unreachable
        if isinstance(exc.code, str):
            raise CommandFailed(exc.code.removeprefix("error: ")) from exc
        raise
    except OSError as exc:
        raise CommandFailed(f"cannot run the control plane on {host}:{port}: {exc}") from exc
