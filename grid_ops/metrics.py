"""Metric points from an experiment's output: ``name=value`` lines and ``$GRID_METRICS_FILE`` JSON lines.

Pure functions, no I/O: the runner parses with them, the control plane and the SDK validate with them.
A metric name is 1..128 characters of ``[A-Za-z0-9_.:/-]``; a value is a finite float.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache

DEFAULT_METRICS_PATTERN = r"(?P<name>[A-Za-z_][\w.:/-]*)\s*=\s*(?P<value>[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?)"
"""Katib's default: ``loss=0.25``, ``val/acc = 0.91`` anywhere in a stdout line, several per line."""

METRIC_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")
MAX_PATTERN_LENGTH = 2000


def valid_metric_name(name: object) -> bool:
    """Whether ``name`` is a metric name the control plane accepts."""
    return isinstance(name, str) and METRIC_NAME.fullmatch(name) is not None


def metric_value(value: object) -> float | None:
    """``value`` as a finite float (numbers and numeric strings), else ``None``; booleans are not numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


@lru_cache(maxsize=64)
def compile_metrics_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled; ``ValueError`` saying what is wrong unless it is a regex with groups
    ``name`` and ``value``."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(
            "the metrics pattern is empty: give a regex with named groups (?P<name>...) and (?P<value>...)"
        )
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"the metrics pattern is longer than {MAX_PATTERN_LENGTH} characters")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"the metrics pattern {pattern!r} is not a valid regular expression: {exc}") from exc
    missing = [g for g in ("name", "value") if g not in compiled.groupindex]
    if missing:
        raise ValueError(
            f"the metrics pattern {pattern!r} has no named group {' or '.join(repr(g) for g in missing)}; "
            r"write it like (?P<name>\w+)=(?P<value>[-+.\deE]+)"
        )
    return compiled


def parse_metric_line(line: str, pattern: str | re.Pattern[str] | None = None) -> list[tuple[str, float]]:
    """Every ``(name, value)`` the pattern (default ``DEFAULT_METRICS_PATTERN``) finds in one output line.

    Matches whose name is not a valid metric name or whose value is not a finite number are skipped, so a
    stray match never makes the control plane refuse a whole batch."""
    compiled = (
        compile_metrics_pattern(pattern or DEFAULT_METRICS_PATTERN) if not isinstance(pattern, re.Pattern) else pattern
    )
    found: list[tuple[str, float]] = []
    for match in compiled.finditer(line):
        name, value = match.group("name"), metric_value(match.group("value"))
        if value is not None and valid_metric_name(name):
            found.append((name, value))
    return found


def _step(value: object) -> tuple[bool, int | None]:
    """``(ok, step)``: a missing step is fine; otherwise a whole number (``3`` or ``3.0``)."""
    if value is None:
        return True, None
    if isinstance(value, bool):
        return False, None
    if isinstance(value, int):
        return True, value
    if isinstance(value, float) and value.is_integer():
        return True, int(value)
    return False, None


def parse_metrics_file_line(line: str) -> tuple[str, float, int | None] | None:
    """``(name, value, step)`` of one ``$GRID_METRICS_FILE`` line ``{"name", "value", "step"?}``;
    ``None`` for a blank or malformed line (bad JSON, bad name, non-finite value, non-integer step)."""
    text = line.strip()
    if not text:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    name, value = record.get("name"), metric_value(record.get("value"))
    ok, step = _step(record.get("step"))
    if not valid_metric_name(name) or value is None or not ok:
        return None
    assert isinstance(name, str)
    return name, value, step
