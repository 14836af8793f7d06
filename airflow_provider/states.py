"""What a run's or experiment's remote state means to a task: still going, succeeded, or ended badly.

Parsed leniently from the control plane's JSON (not through the strict wire enums), so that a state this
version does not know yet reads as still running instead of failing the task. Shared by the hook's
blocking and async paths, the operators, sensors and triggers.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger(__name__)

RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
DELETED = "deleted"

ENDED_BADLY = frozenset({FAILED, CANCELLED, DELETED})
"""Outcomes that fail a task waiting for success."""
TERMINAL = ENDED_BADLY | {SUCCEEDED}

_RUN_PREFIX = "RUN_STATE_"
_EXPERIMENT_PREFIX = "EXPERIMENT_STATE_"

RUN_PHASES: dict[str, str] = {
    "RUN_STATE_UNSPECIFIED": RUNNING,
    "RUN_STATE_PENDING": RUNNING,
    "RUN_STATE_BUILDING": RUNNING,
    "RUN_STATE_RUNNING": RUNNING,
    "RUN_STATE_SUCCEEDED": SUCCEEDED,
    "RUN_STATE_FAILED": FAILED,
    "RUN_STATE_CANCELED": CANCELLED,
    "RUN_STATE_DELETED": DELETED,
}
"""Every run phase of the wire format and the outcome it means."""

EXPERIMENT_PHASES: dict[str, str] = {
    "EXPERIMENT_STATE_UNSPECIFIED": RUNNING,
    "EXPERIMENT_STATE_PENDING": RUNNING,
    "EXPERIMENT_STATE_QUEUED": RUNNING,
    "EXPERIMENT_STATE_IMAGE_BUILDING": RUNNING,
    "EXPERIMENT_STATE_RUNNING": RUNNING,
    "EXPERIMENT_STATE_PAUSED": RUNNING,  # interrupted with auto_resume: it resumes by itself
    "EXPERIMENT_STATE_SUCCEEDED": SUCCEEDED,
    "EXPERIMENT_STATE_FAILED": FAILED,
    "EXPERIMENT_STATE_CANCELLED": CANCELLED,
    "EXPERIMENT_STATE_DELETED": DELETED,
}
"""Every experiment phase of the wire format and the outcome it means."""


def status_word(phase: str | None, kind: str) -> str:
    """The SDK's lowercase status for a wire phase (``RUN_STATE_CANCELED`` -> ``cancelled``)."""
    if not phase:
        return "unspecified"
    prefix = _RUN_PREFIX if kind == "run" else _EXPERIMENT_PREFIX
    word = phase.removeprefix(prefix).lower()
    return CANCELLED if word == "canceled" else word


def outcome_of(phase: str | None, kind: str) -> str:
    """``running``, ``succeeded``, ``failed``, ``cancelled`` or ``deleted`` for a wire phase of a ``run`` or
    ``experiment``; a phase this version does not know counts as still running (and is logged)."""
    table = RUN_PHASES if kind == "run" else EXPERIMENT_PHASES
    if phase in table:
        return table[phase]
    log.warning("unknown %s state %r from the control plane: treating it as still running", kind, phase)
    return RUNNING


@dataclass(frozen=True)
class RemoteState:
    """One fetch of a run or experiment: its phase as sent, what it means, and why it is there."""

    kind: str
    name: str
    phase: str | None
    outcome: str
    status: str
    message: str | None = None
    cost: float = 0.0
    cluster_id: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        """Whether it will not change any more."""
        return self.outcome in TERMINAL

    def to_event(self) -> dict[str, Any]:
        """A JSON-ready dict (a trigger event's payload)."""
        return asdict(self)


def parse_state(kind: str, data: dict[str, Any]) -> RemoteState:
    """The ``RemoteState`` of a run (``kind="run"``) or experiment answer of the control plane."""
    status = data.get("status") or {}
    spec = data.get("spec") or {}
    phase = status.get("phase")
    counts = status.get("experimentCounts") or {}
    return RemoteState(
        kind=kind,
        name=str(data.get("name", "")),
        phase=phase,
        outcome=outcome_of(phase, kind),
        status=status_word(phase, kind),
        message=status.get("message"),
        cost=float(status.get("cost") or 0.0),
        cluster_id=spec.get("clusterId"),
        counts={str(k): int(v) for k, v in counts.items() if isinstance(v, int | str) and str(v).isdigit()},
    )


def check_statuses(values: object, argument: str) -> frozenset[str]:
    """``values`` (status words such as ``succeeded``) as a set, or a ``ValueError`` naming the unknown ones."""
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list | tuple | set | frozenset):
        raise ValueError(f"{argument} must be a list of statuses such as ['succeeded'], got {values!r}")
    known = {status_word(p, "run") for p in RUN_PHASES} | {status_word(p, "experiment") for p in EXPERIMENT_PHASES}
    words = {str(v).lower().replace("canceled", "cancelled") for v in values}
    unknown = sorted(words - known)
    if unknown:
        raise ValueError(f"{argument} has unknown statuses {unknown}; use some of {sorted(known)}")
    return frozenset(words)
