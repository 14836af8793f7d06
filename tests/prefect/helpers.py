"""Reading back what the flows left in Prefect (artifacts, states) and in grid-ops (runs)."""

from __future__ import annotations

import json
import time
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.objects import Artifact, StateType

from tests.core.controlplane import ControlPlane


def artifacts(run_name: str) -> dict[str, list[Artifact]]:
    """Every artifact of grid-ops run ``run_name`` by kind (link, progress, experiments, summary), oldest first."""
    prefix = f"grid-run-{run_name}"
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_=prefix)))
    out: dict[str, list[Artifact]] = {}
    for artifact in sorted(found, key=lambda a: a.created or 0):
        assert artifact.key is not None
        kind = artifact.key[len(prefix) + 1 :] or "link"
        if artifact.key == prefix or kind in ("progress", "experiments", "summary"):
            out.setdefault(kind, []).append(artifact)
    return out


def table(artifact: Artifact) -> list[dict[str, Any]]:
    data = artifact.data
    return json.loads(data) if isinstance(data, str) else data  # type: ignore[no-any-return]


def flow_run_state(flow_run_id: UUID) -> StateType:
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run_id).state
    assert state is not None
    return state.type


def runs_named(cp: ControlPlane, prefix: str) -> list[dict[str, Any]]:
    """The control plane's runs whose name starts with ``prefix``."""
    found = cp.ok("GET", "/v1/core/local/runs", params={"query": prefix, "pageSize": 1000})["runs"]
    return [run for run in found if run["name"].startswith(prefix)]


def wait_for_phase(cp: ControlPlane, name: str, phases: set[str], timeout: float = 60) -> dict[str, Any]:
    """Poll grid-ops run ``name`` until its phase is one of ``phases``."""
    deadline = time.monotonic() + timeout
    while True:
        call = cp.call("GET", f"/v1/core/local/runs/{name}")
        if call.status_code == 200 and call.json()["status"]["phase"] in phases:
            return call.json()  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"run {name} not in {phases} after {timeout}s: {call.text[:300]}")
        time.sleep(0.1)
