"""Deterministic run names for Airflow tasks, so a retried or restarted task finds the run it started.

``default_run_name`` turns (dag id, task id, DAG run id, map index) into a valid run name (lowercase
letters, digits, hyphens, at most 63 characters): a readable prefix and a short hash of the whole key.
Later attempts of the same task instance (after a run that failed) are ``<base>-a2``, ``<base>-a3`` ...
"""

from __future__ import annotations

import hashlib
import re

from grid_ops.names import MAX_RUN_NAME_LENGTH, validate_run_name

_HASH_LENGTH = 10
_ATTEMPT_ROOM = 4  # "-a99"
_NOT_NAME = re.compile(r"[^a-z0-9]+")


def _slug(text: str) -> str:
    return _NOT_NAME.sub("-", text.lower()).strip("-")


def default_run_name(dag_id: str, task_id: str, run_id: str, map_index: int | None = None) -> str:
    """The run name of one task instance: ``<dag>-<task>-<hash>``, the same on every try."""
    key = "\x1f".join((dag_id, task_id, run_id, str(-1 if map_index is None else map_index)))
    digest = hashlib.sha256(key.encode()).hexdigest()[:_HASH_LENGTH]
    room = MAX_RUN_NAME_LENGTH - _ATTEMPT_ROOM - _HASH_LENGTH - 1
    prefix = _slug(f"{dag_id}-{task_id}")[:room].strip("-")
    return validate_run_name(f"{prefix}-{digest}" if prefix else digest)


def attempt_name(base: str, attempt: int) -> str:
    """The name of the ``attempt``-th run (from 1) of a task instance whose first run is ``base``."""
    if attempt <= 1:
        return base
    suffix = f"-a{attempt}"
    return validate_run_name(base[: MAX_RUN_NAME_LENGTH - len(suffix)].rstrip("-") + suffix)
