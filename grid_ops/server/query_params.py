"""Reading list filters from a query string: repeated or comma-separated values, and phase names given
in full (``RUN_STATE_RUNNING``) or short (``running``)."""

from __future__ import annotations

from enum import StrEnum

from grid_ops.server.errors import bad_request


def split_values(values: list[str] | None) -> list[str]:
    """``?names=a,b&names=c`` as ``["a", "b", "c"]``."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def parse_phases(values: list[str] | None, states: type[StrEnum], prefix: str, what: str) -> list[str]:
    """The wire values of the phases named, or a 400 that lists the valid ones."""
    out: list[str] = []
    for part in split_values(values):
        name = part if part.startswith(prefix) else prefix + part.upper()
        try:
            out.append(states(name).value)
        except ValueError as exc:
            raise bad_request(f"unknown {what} phase {part!r}; use one of {[s.value for s in states]}") from exc
    return out
