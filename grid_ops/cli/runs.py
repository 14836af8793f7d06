"""``grid-ops run [options] COMMAND...``: start a sweep (or plan it with ``--dry_run``) through the SDK's ``Run``."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from grid_ops.cli import output
from grid_ops.cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, show_error
from grid_ops.cli.session import chosen_cluster, cluster_option, get_client
from grid_ops.cli.status import experiment_order, metric_options, show_run

if TYPE_CHECKING:  # the SDK (pydantic, requests) is imported when a run is built, not for `run --help`
    from grid_ops.sdk.run import Run

WAIT_POLL_SECONDS = 0.5
FAILED_SHOWN = 3
"""At most this many failed experiments get their last log line printed after ``run --wait``."""
F = TypeVar("F", bound=Callable[..., Any])

# The same as grid_ops.sdk.settings.STRATEGIES and FRAMEWORKS (a test checks it), spelled out here so that
# `grid-ops run --help` does not import the SDK.
STRATEGIES = ("grid_search", "random_search", "none")
FRAMEWORKS = ("lightning", "pytorch", "torch", "tensorflow", "julia", "torchelastic")


def parse_env(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    """``--env KEY=VALUE`` options as a dict (a value may contain ``=``)."""
    env: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="'--env'")
        env[key] = value
    return env


def command_line(tokens: tuple[str, ...]) -> str:
    """The run command from the words after the options, re-quoted so the server splits them the same way.

    A single word is taken as a whole command line (``grid-ops run "python train.py --lr '[1, 2]'"``).
    An option-like first word is a mistyped ``run`` option (they go before the command): click's error for
    it, which the group completes with the close matches among run's options.
    """
    if tokens and tokens[0].startswith("-") and tokens[0] != "-":
        raise click.NoSuchOption(tokens[0].partition("=")[0], ctx=click.get_current_context())
    if len(tokens) == 1:
        return tokens[0]
    return shlex.join(tokens)


def _given(values: dict[str, Any]) -> dict[str, Any]:
    """Only the arguments given on the command line, so that the SDK (and a config file) decide the rest."""
    return {key: value for key, value in values.items() if value not in (None, False, {}, ())}


def build_run(options: dict[str, Any], command: str) -> Run:
    """The SDK ``Run`` for the command-line ``options`` and the run ``command``."""
    from grid_ops.sdk.resources import Resources
    from grid_ops.sdk.run import Run

    if options["datastore_mount_dir"] is not None and options["datastore"] is None and options["config"] is None:
        raise click.UsageError("--datastore_mount_dir is set but --datastore is not: give both")
    resource_args = _given(
        {
            "instance_type": options["instance_type"],
            "use_spot": options["use_spot"],
            "cpus": options["cpus"],
            "gpus": options["gpus"],
            "memory_mb": options["memory_mb"],
        }
    )
    strategy_options = {"seed": str(options["seed"])} if options["seed"] is not None else None
    arguments = _given(
        {
            "name": options["name"],
            "description": options["description"],
            "strategy": options["strategy"],
            "strategy_options": strategy_options,
            "num_trials": options["num_trials"],
            "env_vars": options["env"],
            "framework": options["framework"],
            "dependency_file": options["dependency_file"],
            "url": options["url"],
            "path": options["path"],
            "dockerfile": options["dockerfile"],
            "auto_resume": options["auto_resume"],
            "resources": Resources(**resource_args) if resource_args else None,
            "datastore": options["datastore"],
            "datastore_mount_dir": options["datastore_mount_dir"],
            "cluster_id": chosen_cluster(),
            "config_file": options["config"],
            "dry_run": options["dry_run"],
            "max_parallel": options["max_parallel"],
            "metrics_pattern": options["metrics_pattern"],
        }
    )
    return Run(run_command=command, client=get_client(), **arguments)


def show_plan(run: Run) -> None:
    """Print what a dry run planned: one row per experiment, then the totals."""
    from grid_ops import schemas

    planned = [schemas.PlannedExperiment.model_validate(item) for item in run.plan or []]
    all_at_once = run.estimated_hourly_cost
    if output.wants_json():
        output.print_json(
            {
                "name": run.name,
                "dryRun": True,
                "experiments": planned,
                "hourlyCostAllParallel": all_at_once,
            }
        )
        return
    click.echo(f"dry run of {run.name}: nothing was started")
    rows = [[p.name, shlex.join(p.command), p.instance_type, output.money(p.hourly_cost)] for p in planned]
    output.print_table(("EXPERIMENT", "COMMAND", "INSTANCE TYPE", "HOURLY COST"), rows)
    types = sorted({p.instance_type for p in planned})
    click.echo(
        f"total: {len(planned)} experiment{'s' if len(planned) != 1 else ''} on {', '.join(types) or '-'}; "
        f"{output.money(all_at_once)}/h if all run at once"
    )


def show_started(run: Run) -> None:
    """Print the started run's name, its number of experiments and how to follow it."""
    if output.wants_json():
        output.print_json(get_client().get_run(run.id or run.name))
        return
    count = len(run)
    click.echo(f"started run {run.name}: {count} experiment{'s' if count != 1 else ''} on cluster {run.cluster_id}")
    if run.source_commit:
        click.echo(f"source:     {run.url} at commit {run.source_commit}")
    click.echo(f"follow it:  grid-ops status {run.name}")
    click.echo(f"logs:       grid-ops logs {run.name}-exp0")


def last_log_line(name: str, cluster_id: str | None = None) -> str | None:
    """The last non-empty line of experiment ``name``'s log (``""`` when it wrote nothing; ``None`` when
    the log cannot be read)."""
    from grid_ops.errors import GridError

    try:
        chunk = get_client().experiment_logs(name, tail=3, cluster_id=cluster_id)
    except GridError:
        return None
    lines = [line.strip() for line in chunk.data.splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[-1] if len(lines[-1]) <= 300 else lines[-1][:297] + "..."


def show_failures(run: Run) -> None:
    """After a run that failed: the last log line of its (first few) failed experiments, then which log to
    read. On stderr, so that ``-o json`` output stays clean."""
    from grid_ops import schemas
    from grid_ops.errors import GridError

    try:
        found = get_client().list_experiments(
            run_ids=[run.id], phase_in=(schemas.ExperimentState.FAILED,), cluster_id=run.cluster_id
        )
    except GridError:
        return
    failed = sorted(found, key=experiment_order)
    for experiment in failed[:FAILED_SHOWN]:
        line = last_log_line(experiment.name, run.cluster_id)
        if line is not None:
            said = f"last log line: {line}" if line else "wrote nothing to its log"
            click.echo(f"  {experiment.name} {said}", err=True)
    if len(failed) > FAILED_SHOWN:
        click.echo(f"  ... and {len(failed) - FAILED_SHOWN} more failed experiments", err=True)
    if failed:
        click.echo(f"see the whole log: grid-ops logs {failed[0].name}", err=True)


def wait_for(run: Run, metric: str | None = None, mode: str = "max") -> None:
    """Wait until the run ends, print its experiments (and its best by ``metric``), and exit 1 unless it
    succeeded (and, with ``metric``, some experiment reported it)."""
    if not output.wants_json():
        click.echo(f"waiting for {run.name} to end (Ctrl-C stops waiting, not the run)...", err=True)
    try:
        final = run.wait(poll_interval=WAIT_POLL_SECONDS)
    except KeyboardInterrupt:
        show_error(f"stopped waiting; run {run.name} goes on (stop it with `grid-ops stop run {run.name}`)")
        click.get_current_context().exit(EXIT_INTERRUPTED)
    if not output.wants_json():
        click.echo()
    found = show_run(run.name, metric, mode)
    if final != "succeeded":
        show_error(f"run {run.name} {final}" + (f": {run.message}" if run.message else ""))
        show_failures(run)
        click.get_current_context().exit(EXIT_FAILED)
    if not found:
        click.get_current_context().exit(EXIT_FAILED)


def _option(*names: str, **kwargs: Any) -> Callable[[F], F]:
    """A ``run`` option spelled with underscores as in the Grid CLI, plus the hyphenated alias."""
    flags = [names[0]]
    if "_" in names[0]:
        flags.append(names[0].replace("_", "-"))
    return click.option(*flags, *names[1:], **kwargs)


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@_option("--name", default=None, help="Run name (lowercase letters, digits, hyphens); generated if absent.")
@_option("--description", default=None, help="What this run is for.")
@_option(
    "--strategy",
    type=click.Choice(STRATEGIES),
    default=None,
    help="How to sweep: grid_search (default), random_search or none.",
)
@_option("--num_trials", type=click.IntRange(min=1), default=None, help="Trials of random_search.")
@_option("--seed", type=int, default=None, help="Seed of random_search (default 0).")
@_option("--instance_type", default=None, help="Instance type of each experiment (see `grid-ops instance-types`).")
@_option("--cpus", type=click.IntRange(min=0), default=None, help="CPUs each experiment needs.")
@_option("--gpus", type=click.IntRange(min=0), default=None, help="GPUs each experiment needs.")
@_option("--memory_mb", type=click.IntRange(min=0), default=None, help="Memory (MB) each experiment needs.")
@_option("--use_spot", is_flag=True, default=False, help="Use spot pricing where the instance type has it.")
@cluster_option
@_option("--framework", default=None, help=f"ML framework: {', '.join(FRAMEWORKS)} or julia:X.Y.Z (default lightning).")
@_option("--dependency_file", default=None, help="requirements.txt or environment.yml in the source.")
@_option(
    "--env",
    multiple=True,
    callback=parse_env,
    metavar="KEY=VALUE",
    help="Environment variable of every experiment (repeatable).",
)
@_option(
    "--path",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Source directory to upload (default: the current directory).",
)
@_option(
    "--url",
    default=None,
    help="Git repository (URL or local path, optionally #ref=BRANCH|TAG|SHA) to run instead of uploading --path.",
)
@_option("--dockerfile", default=None, help="Dockerfile in the source to build the image from.")
@_option("--datastore", default=None, metavar="NAME[:VERSION]", help="Datastore to mount in every experiment.")
@_option("--datastore_mount_dir", default=None, help="Where to mount it (default /datastores/NAME).")
@_option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="grid.yml config file; options given here win over it.",
)
@_option("--max_parallel", type=click.IntRange(min=1), default=None, help="At most this many experiments at once.")
@_option("--auto_resume", is_flag=True, default=False, help="Resume experiments that were interrupted.")
@_option("--dry_run", is_flag=True, default=False, help="Only print the plan and its cost; start nothing.")
@_option(
    "--metrics_pattern",
    default=None,
    metavar="REGEX",
    help="Regex with groups (?P<name>...) and (?P<value>...) finding metrics in stdout (default: name=value).",
)
@_option("--wait", is_flag=True, default=False, help="Wait for the run to end; exit 1 unless it succeeded.")
@metric_options
@output.output_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(command: tuple[str, ...], wait: bool, metric: str | None, mode: str, **options: Any) -> None:
    """Start COMMAND as a run: list literals, range(...) and distributions in its arguments are swept.

    \b
    Example:
      grid-ops run --name lr-sweep python train.py --lr "[0.1, 0.01]" --layers "range(1, 4)"
    """
    if metric is not None and not wait:
        raise click.UsageError("--metric picks the best experiment once the run ends: use it with --wait")
    sdk_run = build_run(options, command_line(command))
    sdk_run.start()
    if sdk_run.dry_run:
        show_plan(sdk_run)
        return
    if wait:
        if not output.wants_json():
            show_started(sdk_run)
        wait_for(sdk_run, metric, mode)
        return
    show_started(sdk_run)
