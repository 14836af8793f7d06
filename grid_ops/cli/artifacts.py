"""``grid-ops artifacts NAMES... [--download_dir DIR] [-m REGEX]``: list, or download, the artifacts of
runs and experiments; downloads go to ``DIR/<run>/<experiment>/<path>``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from grid_ops.cli import output
from grid_ops.cli.errors import EXIT_FAILED, grid_error_message, show_error
from grid_ops.cli.session import cluster_option, get_client
from grid_ops.errors import GridError, NotFoundError, ValidationError
from grid_ops.names import split_experiment_name

if TYPE_CHECKING:  # the SDK loads pydantic and requests: imported when the command runs, not for --help
    from grid_ops.sdk.experiment import Experiment
    from grid_ops.sdk.results import Artifact

HEADERS = ("EXPERIMENT", "ARTIFACT", "SIZE", "MODIFIED")


def experiments_of(name: str) -> list[Experiment]:
    """The experiment ``name``, or the experiments of the run ``name`` (404 when it is neither)."""
    from grid_ops.sdk.experiment import Experiment
    from grid_ops.sdk.run import Run

    client = get_client()
    if split_experiment_name(name) is not None:
        try:
            return [Experiment(name, client=client)]
        except NotFoundError:
            pass  # a run may be named like an experiment: try that next
    try:
        return Run(name, client=client).experiments
    except (NotFoundError, ValidationError) as exc:
        raise NotFoundError(
            f"{name!r} is neither one of your runs nor one of your experiments", status_code=404
        ) from exc


def size(n: int) -> str:
    """Bytes for people: ``512 B``, ``1.5 KB``, ``20.0 MB``."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _as_json(artifact: Artifact) -> dict[str, object]:
    return {
        "run": artifact.run_name,
        "experiment": artifact.experiment_name,
        "filename": artifact.filename,
        "sizeBytes": artifact.size,
        "md5Checksum": artifact.md5_checksum,
        "lastModified": artifact.last_modified.isoformat() if artifact.last_modified else None,
        "url": artifact.url,
    }


def _for_each_experiment(names: tuple[str, ...], act: Callable[[Experiment], None]) -> tuple[bool, bool]:
    """``act`` on every experiment NAMES stand for; errors are printed. ``(ok, any_done)``: whether no
    error occurred, and whether any name was handled without one."""
    failed = 0
    for name in names:
        try:
            for experiment in experiments_of(name):
                act(experiment)
        except GridError as exc:
            show_error(grid_error_message(exc))
            failed += 1
    return failed == 0, failed < len(names)


def list_artifacts(names: tuple[str, ...], wanted: Callable[[str], bool]) -> bool:
    """Print the matching artifacts of NAMES as a table (or JSON)."""
    found: list[Artifact] = []
    ok, any_done = _for_each_experiment(names, lambda e: found.extend(a for a in e.artifacts if wanted(a.filename)))
    if not any_done:
        return ok  # every name failed and its error said so: no "no artifacts" (or empty JSON list) after it
    if output.wants_json():
        output.print_json([_as_json(a) for a in found])
    else:
        rows = [[a.experiment_name, a.filename, size(a.size), output.timestamp(a.last_modified)] for a in found]
        output.print_table(HEADERS, rows, empty="no artifacts")
    return ok


def download_artifacts(names: tuple[str, ...], root: Path, pattern: str | None) -> bool:
    """Download the matching artifacts of NAMES to ``root/<run>/<experiment>/<path>``."""
    written: list[Path] = []
    ok, any_done = _for_each_experiment(
        names, lambda e: written.extend(e.download_artifacts(root / e.run_name / e.name, pattern))
    )
    if not any_done:
        return ok
    if output.wants_json():
        output.print_json([str(p) for p in written])
    else:
        total = sum(p.stat().st_size for p in written)
        plural = "s" if len(written) != 1 else ""
        click.echo(f"downloaded {len(written)} artifact{plural} ({size(total)}) to {root}")
    return ok


@click.command()
@click.argument("names", nargs=-1, required=True)
@click.option(
    "--download_dir",
    "--download-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Download into DIR/<run>/<experiment>/ instead of listing.",
)
@click.option(
    "-m", "--match_regex", "--match-regex", default=None, metavar="REGEX", help="Only artifacts whose path matches."
)
@cluster_option
@output.output_option
def artifacts(names: tuple[str, ...], download_dir: Path | None, match_regex: str | None) -> None:
    """List the artifacts of NAMES (runs or experiments), or download them with --download_dir."""
    from grid_ops.sdk.results import artifact_filter

    try:
        wanted = artifact_filter(match_regex)
    except ValidationError as exc:
        raise click.BadParameter(exc.message, param_hint="'-m'") from exc
    done = (
        list_artifacts(names, wanted) if download_dir is None else download_artifacts(names, download_dir, match_regex)
    )
    if not done:
        click.get_current_context().exit(EXIT_FAILED)
