"""Status strings of the SDK: lowercase phase names without the wire prefix (``"running"``, ``"cancelled"``).

Runs use the wire spelling ``RUN_STATE_CANCELED``; the SDK reports it as ``"cancelled"`` so that runs and
experiments share one vocabulary (as the original SDK did).
"""

from __future__ import annotations

from grid_ops.errors import ValidationError
from grid_ops.schemas import ExperimentState, RunState

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "deleted"})
"""Statuses after which a run or experiment no longer changes."""


def _strip(value: str, prefix: str) -> str:
    return value[len(prefix) :].lower() if value.startswith(prefix) else value.lower()


def run_status(phase: RunState | None) -> str:
    """The SDK status of a run phase: ``RUN_STATE_CANCELED`` -> ``"cancelled"``, None -> ``"unspecified"``."""
    if phase is None:
        return "unspecified"
    status = _strip(str(phase), "RUN_STATE_")
    return "cancelled" if status == "canceled" else status


def experiment_status(phase: ExperimentState | None) -> str:
    """The SDK status of an experiment phase: ``EXPERIMENT_STATE_SUCCEEDED`` -> ``"succeeded"``."""
    return "unspecified" if phase is None else _strip(str(phase), "EXPERIMENT_STATE_")


def run_phase(status: str) -> RunState:
    """The wire phase for a run status given as ``"running"``, ``"cancelled"`` or ``"RUN_STATE_RUNNING"``."""
    text = status.strip().upper()
    text = text if text.startswith("RUN_STATE_") else f"RUN_STATE_{text}"
    text = "RUN_STATE_CANCELED" if text == "RUN_STATE_CANCELLED" else text
    try:
        return RunState(text)
    except ValueError:
        allowed = ", ".join(run_status(p) for p in RunState if p is not RunState.UNSPECIFIED)
        raise ValidationError(f"unknown run status {status!r}; use one of {allowed}") from None


def experiment_phase(status: str) -> ExperimentState:
    """The wire phase for an experiment status given as ``"running"`` or ``"EXPERIMENT_STATE_RUNNING"``."""
    text = status.strip().upper()
    text = text if text.startswith("EXPERIMENT_STATE_") else f"EXPERIMENT_STATE_{text}"
    text = "EXPERIMENT_STATE_CANCELLED" if text == "EXPERIMENT_STATE_CANCELED" else text
    try:
        return ExperimentState(text)
    except ValueError:
        allowed = ", ".join(experiment_status(p) for p in ExperimentState if p is not ExperimentState.UNSPECIFIED)
        raise ValidationError(f"unknown experiment status {status!r}; use one of {allowed}") from None
