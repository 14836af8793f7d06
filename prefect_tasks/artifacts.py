"""Prefect artifacts of a grid-ops run: a link at submit, progress while it runs, and at the end a table of
its experiments and a markdown summary with the best one.

Artifact keys are ``grid-run-<run name>[-progress|-experiments|-summary]`` (run names are already
lowercase letters, digits and hyphens, as Prefect's keys must be), so each run's artifacts are found by
its name in the Prefect UI and each rerun of the same run adds a version under the same key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast
from uuid import UUID

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from grid_ops.client import GridClient
from grid_ops.errors import GridError
from grid_ops.sdk.experiment import Experiment
from grid_ops.sdk.run import Run
from grid_ops.sdk.states import TERMINAL_STATUSES


def _sync(create: Callable[..., Any], **kwargs: Any) -> UUID:
    """Call a Prefect artifact function synchronously, also from a thread of an async task (where Prefect's
    dispatch would otherwise hand back a coroutine)."""
    return cast(UUID, create(**kwargs, _sync=True))


def artifact_key(run_name: str, part: str | None = None) -> str:
    """The key of one of ``run_name``'s artifacts."""
    return f"grid-run-{run_name}" + (f"-{part}" if part else "")


def run_url(client: GridClient, run: Run) -> str:
    """The control plane's address of ``run`` (its REST resource: what `grid-ops status` reads)."""
    return f"{client.url}/v1/core/{run.cluster_id or client.cluster_id}/runs/{run.name}"


def create_run_link(client: GridClient, run: Run, reattached: bool) -> UUID:
    """The link artifact to ``run``, made when a task starts it (or reattaches to it)."""
    verb = "reattached to" if reattached else "started"
    return _sync(
        create_link_artifact,
        link=run_url(client, run),
        link_text=f"grid-ops run {run.name}",
        key=artifact_key(run.name),
        description=f"{verb} grid-ops run `{run.name}` ({len(run)} experiments): `{run.run_command}`",
    )


def progress_of(run: Run) -> tuple[float, str]:
    """Percent of the run's experiments that have ended, and a line saying how many are where."""
    counts = run.experiment_counts
    total = sum(n for state, n in counts.items() if state != "deleted")
    ended = sum(counts.get(state, 0) for state in TERMINAL_STATUSES if state != "deleted")
    details = ", ".join(f"{n} {state}" for state, n in counts.items() if n and state != "deleted")
    percent = 100.0 * ended / total if total else 0.0
    return percent, f"{ended}/{total} experiments of `{run.name}` finished" + (f" ({details})" if details else "")


class RunProgress:
    """The progress artifact of one run: created on the first report, updated when the counts change."""

    def __init__(self) -> None:
        self.artifact_id: UUID | None = None
        self.last: tuple[float, str] | None = None

    def report(self, run: Run) -> None:
        """Create or update the artifact with ``run``'s counts (no request when nothing changed)."""
        now = progress_of(run)
        if now == self.last:
            return
        percent, text = now
        if self.artifact_id is None:
            key = artifact_key(run.name, "progress")
            self.artifact_id = _sync(create_progress_artifact, progress=percent, key=key, description=text)
        else:
            _sync(update_progress_artifact, artifact_id=self.artifact_id, progress=percent, description=text)
        self.last = now


def _parameters(experiment: Experiment) -> str:
    return ", ".join(f"{name}={value}" for name, value in experiment.parameters.items())


def experiment_rows(client: GridClient, run: Run, metric: str | None) -> list[dict[str, Any]]:
    """One row per experiment: experiment, parameters, status, the metric's last value, cost (USD)."""
    values: dict[str, float] = {}
    if metric:
        last = client.run_metrics(run.name, cluster_id=run.cluster_id)
        values = {e.name: e.metrics[metric] for e in last if metric in e.metrics}
    rows = []
    for experiment in run.experiments:
        row: dict[str, Any] = {
            "experiment": experiment.name,
            "parameters": _parameters(experiment),
            "status": experiment.status,
        }
        if metric:
            row[metric] = values.get(experiment.name)
        row["cost"] = round(experiment.cost, 6)
        rows.append(row)
    return rows


def summary_markdown(
    run: Run, best: dict[str, Any] | None, metric: str | None, mode: str, failures: list[str] | None = None
) -> str:
    """The markdown summary of an ended run: status, counts, cost, what failed, and the best experiment by
    ``metric``."""
    counts = ", ".join(f"{n} {state}" for state, n in run.experiment_counts.items() if n)
    lines = [
        f"# grid-ops run `{run.name}`: {run.status}",
        "",
        f"- **Command:** `{run.run_command}`",
        f"- **Experiments:** {len(run)} ({counts or 'none'})",
        f"- **Cost:** ${run.cost:.6f}",
    ]
    if run.message and run.status != "succeeded":
        lines.append(f"- **Why:** {run.message}")
    lines.extend(f"  - {failure}" for failure in failures or [])
    if metric:
        if best is not None:
            params = ", ".join(f"`{k}={v}`" for k, v in best["parameters"].items())
            lines.append(
                f"- **Best by {metric} ({mode}):** `{best['name']}` with {metric} = {best['value']:g}"
                + (f", parameters {params}" if params else "")
            )
        else:
            lines.append(f"- **Best by {metric} ({mode}):** no succeeded experiment reported `{metric}`")
    return "\n".join(lines) + "\n"


def create_run_report(
    client: GridClient,
    run: Run,
    metric: str | None,
    mode: str,
    best: dict[str, Any] | None,
    failures: list[str] | None = None,
) -> tuple[UUID, UUID]:
    """The table and markdown artifacts of an ended ``run``; returns their ids."""
    try:
        rows = experiment_rows(client, run, metric)
    except GridError as exc:  # the summary still says what is known
        rows = [{"experiment": "?", "parameters": "", "status": f"could not list experiments: {exc}"}]
    table = _sync(
        create_table_artifact,
        table=rows,
        key=artifact_key(run.name, "experiments"),
        description=f"Experiments of grid-ops run `{run.name}` ({run.status})",
    )
    summary = _sync(
        create_markdown_artifact,
        markdown=summary_markdown(run, best, metric, mode, failures),
        key=artifact_key(run.name, "summary"),
        description=f"Summary of grid-ops run `{run.name}`",
    )
    return table, summary
