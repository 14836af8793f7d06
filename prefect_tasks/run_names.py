"""Deterministic grid-ops run names for Prefect: the same flow run and task call always give the same name.

That is what lets a retried task, or a retried flow run, find the run it started instead of starting a
second sweep. The names follow ``grid_ops.names`` (lowercase letters, digits, inner hyphens, at most 63).
"""

from __future__ import annotations

import re
import threading
from uuid import UUID

from prefect.context import FlowRunContext, TaskRunContext

from grid_ops.names import MAX_RUN_NAME_LENGTH, generate_run_name, validate_run_name

MAX_ATTEMPTS = 99
"""How many times a flow run may start a fresh run under one name after earlier ones failed."""
_ATTEMPT_ROOM = len(f"-a{MAX_ATTEMPTS}")
_PREFIX_LENGTH = 24


def slug(text: str, limit: int = _PREFIX_LENGTH) -> str:
    """``text`` as lowercase letters, digits and single inner hyphens, at most ``limit`` characters."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return cleaned[:limit].rstrip("-") or "prefect"


def flow_run_key(flow_run_id: UUID) -> str:
    """The part of every run name a flow run starts: 12 hex digits of its id."""
    return flow_run_id.hex[:12]


_COUNTER = "prefect_tasks.start_run"
_index_lock = threading.Lock()


def _call_index(flow_ctx: FlowRunContext, task_run_id: UUID) -> int:
    """Which start of a run this task run is within the current attempt of its flow run (0, 1, ...).

    Kept in the flow run context, which Prefect makes afresh for every attempt of the flow run, and
    remembered per task run, so that a retried task keeps its index and a retried flow run counts again
    from 0, calling its tasks in the same order. (Prefect's own dynamic keys of direct task calls are
    random, so they cannot serve.)
    """
    keys = flow_ctx.task_run_dynamic_keys
    mine = f"{_COUNTER}:{task_run_id}"
    with _index_lock:
        if mine not in keys:
            keys[mine] = keys[_COUNTER] = int(keys.get(_COUNTER, -1)) + 1
        return int(keys[mine])


def deterministic_run_name() -> str:
    """The run name for the task or flow run now executing.

    Inside a task run of a flow run: ``<flow>-<flow run id>-<N>`` for the N-th run started (from 0) by
    this attempt of the flow run, the same on every retry of the task or the flow run. Inside a flow run
    only: ``<flow>-<flow run id>``. In a task run without a flow run: ``<task>-<task run id>``. Outside
    Prefect: a fresh generated name.
    """
    flow_ctx = FlowRunContext.get()
    task_ctx = TaskRunContext.get()
    flow_name = flow_ctx.flow.name if flow_ctx is not None and flow_ctx.flow is not None else None
    if task_ctx is not None and flow_ctx is not None and flow_ctx.flow_run is not None:
        index = _call_index(flow_ctx, task_ctx.task_run.id)
        base = f"{slug(flow_name or task_ctx.task.name)}-{flow_run_key(flow_ctx.flow_run.id)}-{index}"
    elif task_ctx is not None:
        base = f"{slug(task_ctx.task.name)}-{flow_run_key(task_ctx.task_run.id)}"
    elif flow_ctx is not None and flow_ctx.flow_run is not None:
        base = f"{slug(flow_name or 'prefect')}-{flow_run_key(flow_ctx.flow_run.id)}"
    else:
        return generate_run_name()
    return validate_run_name(base[: MAX_RUN_NAME_LENGTH - _ATTEMPT_ROOM].rstrip("-"))


def attempt_name(base: str, attempt: int) -> str:
    """The name of the ``attempt``-th run (from 1) started under ``base``: ``base``, ``base-a2``, ..."""
    if attempt == 1:
        return base
    name = f"{base[: MAX_RUN_NAME_LENGTH - _ATTEMPT_ROOM].rstrip('-')}-a{attempt}"
    return validate_run_name(name)


def flow_run_prefix(flow_name: str, flow_run_id: UUID) -> str:
    """The prefix every run started by tasks of this flow run has (used to find them after a crash)."""
    return f"{slug(flow_name)}-{flow_run_key(flow_run_id)}"
