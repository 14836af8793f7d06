"""The ``grid-ops`` click group: global options, the commands, and how errors become exit codes."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from grid_ops.cli import output
from grid_ops.cli.artifacts import artifacts
from grid_ops.cli.auth import login
from grid_ops.cli.clusters import clusters, instance_types
from grid_ops.cli.control import delete, stop
from grid_ops.cli.datastores import datastore
from grid_ops.cli.errors import (
    DEBUG_ENV,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    debugging,
    exit_code_of,
    grid_error_message,
    show_error,
)
from grid_ops.cli.local import local
from grid_ops.cli.logs import logs
from grid_ops.cli.runs import run
from grid_ops.cli.server import server
from grid_ops.cli.session import cluster_option
from grid_ops.cli.status import status
from grid_ops.cli.users import users
from grid_ops.errors import GridError
from grid_ops.version import __version__


def _usage_message(exc: click.UsageError) -> str:
    hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
    return exc.format_message() + hint


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that flushing it at exit does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (e.g. captured by a test runner)
        pass
    finally:
        os.close(devnull)


class GridGroup(click.Group):
    """A click group that prints every failure as one ``error: <message>`` line and exits 0, 1 or 2."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; in standalone mode, exit with the command's exit code."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = result if isinstance(result, int) else EXIT_OK
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.format_message(), err=True)
            code = EXIT_USAGE
        except click.UsageError as exc:
            show_error(_usage_message(exc))
            code = EXIT_USAGE
        except click.ClickException as exc:
            show_error(exc.format_message())
            code = exc.exit_code
        except (click.Abort, KeyboardInterrupt):
            show_error("interrupted")
            code = EXIT_INTERRUPTED
        except BrokenPipeError:  # the reader went away (`grid-ops logs X | head`): stop quietly
            _silence_stdout()
            code = EXIT_FAILED
        except GridError as exc:
            if debugging():
                raise
            show_error(grid_error_message(exc))
            code = exit_code_of(exc)
        except Exception as exc:  # a bug or an environment problem: one line unless debugging
            if debugging():
                raise
            show_error(f"unexpected {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 to see the traceback)")
            code = EXIT_FAILED
        sys.exit(code)


@click.group(cls=GridGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="grid-ops", message="%(prog)s %(version)s")
@cluster_option
@output.output_option
def cli() -> None:
    """grid-ops: hyperparameter sweeps on a Grid-style control plane.

    \b
    Start here:
      grid-ops run python train.py --lr "[0.1, 0.01]"   sweep train.py over two learning rates
      grid-ops status                                   your runs
      grid-ops status RUN                               a run's experiments and their parameters
      grid-ops logs RUN-exp0 -f                         follow an experiment's log

    With no GRID_URL set, commands use the local control plane on this machine (started on demand).
    """


for command in (run, status, logs, stop, delete, clusters, instance_types, login, server, local, users):
    cli.add_command(command)
cli.add_command(artifacts)
cli.add_command(datastore)


def main(argv: Sequence[str] | None = None, prog_name: str | None = None) -> None:
    """Entry point of the ``grid-ops`` and ``grid`` console scripts."""
    cli.main(args=list(argv) if argv is not None else None, prog_name=prog_name)
