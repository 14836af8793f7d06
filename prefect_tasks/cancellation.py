"""Cancelling the grid-ops work of a Prefect flow run: the runs it started, whether the flow run is
cancelled, times out or crashes.

``start_run`` records every run it starts (or reattaches to) under the current flow run; the waiting tasks
ask the Prefect API on every poll whether their flow run is being cancelled; ``cancel_grid_runs`` is the
``on_cancellation``/``on_crashed`` hook that cancels whatever the flow run left running.
"""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.logging import get_logger

from grid_ops.credentials import load_credentials
from grid_ops.embedded import running_local_credentials
from grid_ops.errors import GridError
from grid_ops.sdk.run import Run
from grid_ops.sdk.states import TERMINAL_STATUSES
from prefect_tasks.context import current_flow_run_id
from prefect_tasks.credentials import GridCredentials
from prefect_tasks.run_names import flow_run_prefix

log = get_logger("prefect_tasks")

_lock = threading.Lock()
_active: dict[UUID, dict[str, GridCredentials]] = {}
"""Runs started by each flow run of this process that have not been seen to end yet."""

CANCEL_STATES = frozenset({StateType.CANCELLING, StateType.CANCELLED})


def remember(run_name: str, credentials: GridCredentials) -> None:
    """Record that the current flow run has ``run_name`` going (so its hooks can cancel it)."""
    flow_run_id = current_flow_run_id()
    if flow_run_id is not None:
        with _lock:
            _active.setdefault(flow_run_id, {})[run_name] = credentials


def forget(run_name: str) -> None:
    """``run_name`` has ended: the hooks need not cancel it."""
    with _lock:
        for runs in _active.values():
            runs.pop(run_name, None)


def active_runs(flow_run_id: UUID) -> dict[str, GridCredentials]:
    """The runs of ``flow_run_id`` recorded by this process and not yet seen to end."""
    with _lock:
        return dict(_active.get(flow_run_id, {}))


def cancel_quietly(credentials: GridCredentials, run_name: str, reason: str) -> bool:
    """Cancel ``run_name`` unless it has ended; log instead of raising (this runs while something else
    already went wrong). True when a cancel was sent."""
    try:
        run = Run(run_name, client=credentials.get_client())
        if run.status in TERMINAL_STATUSES:
            return False
        run.cancel()
    except GridError as exc:
        log.warning("could not cancel grid-ops run %r (%s): %s", run_name, reason, exc)
        return False
    log.info("cancelled grid-ops run %r: %s", run_name, reason)
    return True


def flow_run_cancel_requested(flow_run_id: UUID) -> bool:
    """Whether the Prefect API has the flow run cancelling or cancelled (an unreachable API counts as no)."""
    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(flow_run_id).state
    except Exception as exc:  # the API may be briefly away; the next poll asks again
        log.debug("could not read the state of flow run %s: %s", flow_run_id, exc)
        return False
    return state is not None and state.type in CANCEL_STATES


async def aflow_run_cancel_requested(flow_run_id: UUID) -> bool:
    """Async form of ``flow_run_cancel_requested``."""
    try:
        async with get_client() as client:
            state = (await client.read_flow_run(flow_run_id)).state
    except Exception as exc:  # the API may be briefly away; the next poll asks again
        log.debug("could not read the state of flow run %s: %s", flow_run_id, exc)
        return False
    return state is not None and state.type in CANCEL_STATES


def _saved_credentials(url: str, user_id: str | None) -> GridCredentials | None:
    """The saved GridCredentials block for ``url`` and ``user_id`` (flow run parameters keep a block's
    fields with the key masked, so the key comes from the saved block)."""
    try:
        with get_client(sync_client=True) as client:
            documents = client.read_block_documents_by_type("grid-credentials", include_secrets=True)
    except Exception as exc:  # no such block type yet, or the API is away
        log.debug("could not read the saved GridCredentials blocks: %s", exc)
        return None
    for document in documents:
        data = document.data
        if data.get("url") == url and data.get("user_id") == user_id:
            return GridCredentials.model_validate(data)
    return None


def _known_credentials(flow_run: FlowRun) -> list[GridCredentials]:
    """The credentials a flow run was given, as far as they can be recovered outside its process: saved
    blocks (by reference, or by URL and user among the saved ones), else the default credentials when
    they point at a control plane that is configured or already running (a hook never starts the
    embedded control plane)."""
    found: list[GridCredentials] = []
    for value in (flow_run.parameters or {}).values():
        block: Any = None
        if isinstance(value, dict) and "$ref" in value:
            try:
                block = GridCredentials.load_from_ref(value["$ref"], _sync=True)  # type: ignore[call-arg]
            except Exception:  # a reference to another block type, or one since deleted
                continue
        elif isinstance(value, dict) and isinstance(value.get("url"), str) and "api_key" in value:
            block = _saved_credentials(value["url"], value.get("user_id"))
        if isinstance(block, GridCredentials):
            found.append(block)
    if not found:
        try:
            configured = load_credentials() is not None or running_local_credentials() is not None
        except GridError:
            configured = False
        if configured:
            found.append(GridCredentials())
    return found


def cancel_grid_runs(flow: Any, flow_run: FlowRun, state: State) -> None:
    """Flow hook (``on_cancellation``, ``on_crashed``, ``on_failure``): cancel the grid-ops runs this flow
    run left running.

    In the process that ran the flow it knows them exactly. A process that never saw the flow run start
    a run (a runner that kills a flow's process runs the cancellation hooks itself) finds them by the
    name prefix ``start_run`` gives runs of this flow run, with the credentials the flow run was given
    as saved blocks.
    """
    reason = f"flow run {flow_run.name!r} is {state.type.value.lower()}"
    with _lock:
        seen_here = flow_run.id in _active
    if seen_here:
        for name, credentials in active_runs(flow_run.id).items():
            cancel_quietly(credentials, name, reason)
            forget(name)
        return
    if state.type not in CANCEL_STATES and state.type != StateType.CRASHED:
        return
    prefix = flow_run_prefix(getattr(flow, "name", "") or "prefect", flow_run.id)
    for credentials in _known_credentials(flow_run):
        try:
            found = credentials.get_client().list_runs(query=prefix)
        except GridError as exc:
            log.warning("could not list grid-ops runs of flow run %s to cancel them: %s", flow_run.id, exc)
            continue
        for run in found:
            if run.name.startswith(prefix):
                cancel_quietly(credentials, run.name, reason)
