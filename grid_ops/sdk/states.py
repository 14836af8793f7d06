"""Status strings of the SDK: lowercase phase names without the wire prefix (``"running"``, ``"cancelled"``).

Runs use the wire spelling ``RUN_STATE_CANCELED``; the SDK reports it as ``"cancelled"`` so that runs and
experiments share one vocabulary (as the original SDK did).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from grid_ops.errors import ValidationError
from grid_ops.schemas import ExperimentState, RunState

E = TypeVar("E", bound=StrEnum)

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


def _phase(status: str, states: type[E], prefix: str, spellings: dict[str, str], kind: str) -> E:
    """The wire phase named by ``status`` (short or full, either spelling of cancelled), or a clear error."""
    text = status.strip().upper()
    text = text if text.startswith(prefix) else prefix + text
    text = spellings.get(text, text)
    try:
        return states(text)
    except ValueError:
        names = (_strip(str(p), prefix) for p in states if not str(p).endswith("UNSPECIFIED"))
        allowed = ", ".join("cancelled" if n == "canceled" else n for n in names)
        raise ValidationError(f"unknown {kind} status {status!r}; use one of {allowed}") from None


def run_phase(status: str) -> RunState:
    """The wire phase for a run status given as ``"running"``, ``"cancelled"`` or ``"RUN_STATE_RUNNING"``."""
    return _phase(status, RunState, "RUN_STATE_", {"RUN_STATE_CANCELLED": "RUN_STATE_CANCELED"}, "run")


def experiment_phase(status: str) -> ExperimentState:
    """The wire phase for an experiment status given as ``"running"`` or ``"EXPERIMENT_STATE_RUNNING"``."""
    return _phase(
        status,
        ExperimentState,
        "EXPERIMENT_STATE_",
        {"EXPERIMENT_STATE_CANCELED": "EXPERIMENT_STATE_CANCELLED"},
        "experiment",
    )
