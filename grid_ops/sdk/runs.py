"""``list_runs``: the caller's runs as ``Run`` objects, as in the original SDK."""

from __future__ import annotations

from collections.abc import Iterable

from grid_ops import schemas
from grid_ops.client import GridClient, get_client
from grid_ops.sdk.run import Run
from grid_ops.sdk.states import run_phase


def list_runs(
    cluster_id: str | None = None,
    is_global: bool = False,
    query: str | None = None,
    *,
    status: Iterable[str] | None = None,
    client: GridClient | None = None,
) -> list[Run]:
    """List the runs on a cluster (default: the default cluster), newest first as the server orders them.

    ``query`` keeps runs whose name contains it; ``status`` (keyword-only addition) keeps runs in the given
    statuses, e.g. ``["running", "pending"]``. Deleted runs are left out. ``is_global`` is accepted for
    compatibility: a user only ever sees their own runs.
    """
    del is_global  # runs of other users are never visible (users see only their own resources)
    api = client or get_client()
    phases = None if status is None else [run_phase(s) for s in status]
    found = api.iter_runs(
        query=query,
        phase_in=phases,
        phase_not_in=None if phases else [schemas.RunState.DELETED],
        cluster_id=cluster_id,
    )
    return [Run._from_wire(run, api) for run in found]
