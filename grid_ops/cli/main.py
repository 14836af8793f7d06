"""The ``grid-ops`` click group: global options, the commands, and how errors become exit codes.

The commands are loaded lazily (click's "lazily loading subcommands" pattern): this module imports only
click and the CLI's small helpers, and a command's module is imported when that command runs or prints its
help. ``grid-ops --help`` lists the commands from the one-line summaries in ``COMMANDS`` without importing
any of them, so it (and ``--version``) never loads pydantic, requests or the SDK. A test checks that those
summaries are the commands' own.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import click

from grid_ops.cli import output
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
from grid_ops.cli.session import cluster_option
from grid_ops.errors import GridError


class LazyCommand(NamedTuple):
    """Where a command lives (``module:attribute``) and the summary ``grid-ops --help`` shows for it."""

    target: str
    summary: str


COMMANDS: Mapping[str, LazyCommand] = {
    "artifacts": LazyCommand(
        "grid_ops.cli.artifacts:artifacts",
        "List the artifacts of NAMES (runs or experiments), or download them with --download_dir.",
    ),
    "clusters": LazyCommand(
        "grid_ops.cli.clusters:clusters", "List the clusters you can run on, and which one is the default."
    ),
    "datastore": LazyCommand(
        "grid_ops.cli.datastores:datastore", "Upload, list and delete versioned datasets (datastores)."
    ),
    "delete": LazyCommand(
        "grid_ops.cli.control:delete",
        "Delete runs (with their experiments) or single experiments, by name; running ones are cancelled first.",
    ),
    "instance-types": LazyCommand(
        "grid_ops.cli.clusters:instance_types",
        "List the instance types of a cluster (default: the default cluster) with their hourly prices.",
    ),
    "local": LazyCommand(
        "grid_ops.cli.local:local", "Start, stop and inspect the embedded control plane that serves this machine."
    ),
    "login": LazyCommand(
        "grid_ops.cli.auth:login",
        "Log in: verify the key with the control plane and save it in $GRID_OPS_HOME/credentials.json.",
    ),
    "logs": LazyCommand(
        "grid_ops.cli.logs:logs", "Print the log of EXPERIMENT (a name such as my-run-exp0, or an id)."
    ),
    "run": LazyCommand(
        "grid_ops.cli.runs:run",
        "Start COMMAND as a run: list literals, range(...) and distributions in its arguments are swept.",
    ),
    "server": LazyCommand(
        "grid_ops.cli.server:server", "Run a control plane in the foreground until Ctrl-C or SIGTERM."
    ),
    "status": LazyCommand(
        "grid_ops.cli.status:status",
        "Without RUN, list your runs; with RUN, show its experiments, their parameters, metrics and status.",
    ),
    "stop": LazyCommand(
        "grid_ops.cli.control:stop", "Cancel runs (every experiment in them) or single experiments, by name."
    ),
    "users": LazyCommand(
        "grid_ops.cli.users:users", "Create and list users of a control plane (run on the server's host)."
    ),
}


def _choices_text(choices: Sequence[object]) -> str:
    words = [str(c) for c in choices]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def close_options(given: str, ctx: click.Context) -> list[str]:
    """The options of ``ctx``'s command that look like ``given`` (a typo), best first. Leading dashes do not
    count and ``_`` matches ``-``; of an option's two spellings, the one in the style typed is named."""

    def key(option: str) -> str:
        return option.lstrip("-").replace("-", "_")

    spellings: dict[str, list[str]] = {}
    for param in ctx.command.get_params(ctx):
        for option in (*param.opts, *param.secondary_opts):
            if option.startswith("-"):
                spellings.setdefault(key(option), []).append(option)
    hyphens = "-" in given.lstrip("-")
    named = []
    for match in difflib.get_close_matches(key(given), list(spellings), n=2, cutoff=0.7):
        options = spellings[match]
        named.append(next((o for o in options if ("-" in o.lstrip("-")) == hyphens), options[0]))
    return named


def _usage_message(exc: click.UsageError) -> str:
    """A click usage error as one line, with where to read the usage (once)."""
    ctx = exc.ctx
    if isinstance(exc, click.NoSuchOption):
        text = f"No such option: {exc.option_name}"
        close = close_options(exc.option_name, ctx) if ctx is not None else sorted(exc.possibilities or ())
        if close:
            text += f" (did you mean {_choices_text(close)}?)"
    elif isinstance(exc, click.MissingParameter) and exc.param is not None and ctx is not None:
        # click lists a Choice's values on lines of their own; say them inline instead
        text = f"Missing {exc.param.param_type_name} {exc.param.get_error_hint(ctx)}"
        if isinstance(exc.param.type, click.Choice):
            text += f": give {_choices_text(exc.param.type.choices)}"
    else:
        text = exc.format_message()
    if ctx is not None and "--help" not in text:
        text += f" (see '{ctx.command_path} --help')"
    return text


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
    """A click group that loads its commands on first use, prints every failure as one
    ``error: <message>`` line and exits 0, 1 or 2."""

    def __init__(self, *args: Any, lazy_commands: Mapping[str, LazyCommand] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            module_name, _, attribute = self.lazy_commands[cmd_name].target.partition(":")
            command = getattr(importlib.import_module(module_name), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy_commands[cmd_name].target} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands section of the help, from the summaries in ``COMMANDS`` (nothing is imported)."""
        names = [n for n in self.list_commands(ctx) if n in self.commands or n in self.lazy_commands]
        shown = [n for n in names if n not in self.commands or not self.commands[n].hidden]
        if not shown:
            return
        limit = formatter.width - 6 - max(len(n) for n in shown)
        rows = []
        for name in shown:
            # a stand-in with the summary as its help shortens it exactly as the real command would
            command = self.commands.get(name) or click.Command(name, help=self.lazy_commands[name].summary)
            rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # click suggests only among the commands already loaded: suggest among all of them, in its words
        name = args[0] if args else ""
        if name and not name.startswith("-") and not ctx.resilient_parsing and self.get_command(ctx, name) is None:
            close = difflib.get_close_matches(name, self.list_commands(ctx), n=1)
            if close:
                ctx.fail(f"No such command {name!r}. Did you mean {close[0]!r}?")
        return super().resolve_command(ctx, args)

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


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``--version``: the package metadata is read only now, not on every start."""
    if not value or ctx.resilient_parsing:
        return
    from grid_ops.version import package_version

    click.echo(f"grid-ops {package_version()}")
    ctx.exit()


@click.group(cls=GridGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
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


def main(argv: Sequence[str] | None = None, prog_name: str | None = None) -> None:
    """Entry point of the ``grid-ops`` and ``grid`` console scripts."""
    cli.main(args=list(argv) if argv is not None else None, prog_name=prog_name)
