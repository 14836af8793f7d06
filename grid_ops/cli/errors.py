"""Exit codes and the one-line ``error: <message>`` the CLI prints instead of a traceback."""

from __future__ import annotations

import os

import click

from grid_ops.errors import GridError, ValidationError

EXIT_OK = 0
EXIT_FAILED = 1
"""The thing failed: an API error, a run that did not succeed with ``--wait``, something not found."""
EXIT_USAGE = 2
"""Bad usage: the arguments are wrong (click's usage errors and client-side validation errors)."""
EXIT_INTERRUPTED = 130

DEBUG_ENV = "GRID_OPS_DEBUG"
"""Set to 1 to get the traceback of unexpected errors instead of the one-line message."""


class CommandFailed(click.ClickException):
    """Raised by commands to stop with ``error: <message>`` and exit code 1."""

    exit_code = EXIT_FAILED


def one_line(text: str) -> str:
    """``text`` with its lines joined by `` | ``, so that an error fits on one line."""
    return " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())


def grid_error_message(exc: GridError) -> str:
    """The message of a grid-ops error with those of its details it does not already say, on one line."""
    extra = [d for d in exc.details if d not in exc.message]
    if not extra:
        return one_line(exc.message)
    message = exc.message.rstrip()
    # "2 problems:" introduces the list: no "; " right after its colon
    return one_line(message + (" " if message.endswith(":") else "; ") + "; ".join(extra))


def exit_code_of(exc: GridError) -> int:
    """2 for argument errors found before anything was sent, 1 for everything else."""
    return EXIT_USAGE if isinstance(exc, ValidationError) and exc.status_code is None else EXIT_FAILED


def show_error(message: str) -> None:
    """Print ``error: <message>`` on stderr."""
    click.echo(f"error: {one_line(message)}", err=True)


def debugging() -> bool:
    """Whether ``$GRID_OPS_DEBUG`` asks for tracebacks."""
    return os.environ.get(DEBUG_ENV, "").lower() in ("1", "true", "yes")
