"""How the CLI prints: aligned text tables for people, JSON for scripts, and the value formats they share."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

FORMATS = ("table", "json")
F = TypeVar("F", bound=Callable[..., Any])


def _store_output(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta["grid_ops.output"] = value


def output_option(func: F) -> F:
    """Decorator adding ``-o/--output table|json`` to a command (it also works before the command name)."""
    option = click.option(
        "-o",
        "--output",
        type=click.Choice(FORMATS),
        default=None,
        expose_value=False,
        callback=_store_output,
        help="Print a table for people (default) or JSON for scripts.",
    )
    return option(func)


def output_format() -> str:
    """The output format chosen for the current command: ``"table"`` unless ``-o json`` was given."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return "table"
    return str(ctx.meta.get("grid_ops.output", "table"))


def wants_json() -> bool:
    """Whether the current command prints JSON."""
    return output_format() == "json"


def to_jsonable(value: object) -> Any:
    """Wire models become their camelCase JSON dicts; lists and dicts are converted item by item."""
    schemas = sys.modules.get("grid_ops.schemas")  # not imported here: it loads pydantic; no model exists without it
    if schemas is not None and isinstance(value, schemas.WireModel):
        return value.wire()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def print_json(value: object) -> None:
    """Print ``value`` as indented JSON on stdout."""
    click.echo(json.dumps(to_jsonable(value), indent=2, default=str))


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns aligned with two spaces between them; ``None`` cells print as ``-``."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in cells:
        lines.append("  ".join(text.ljust(w) for text, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], empty: str | None = None) -> None:
    """Print a table, or ``empty`` instead when there are no rows and it is given."""
    if not rows and empty is not None:
        click.echo(empty)
        return
    click.echo(render_table(headers, rows))


def _cell(value: object) -> str:
    if value is None:
        return "-"
    return str(value).replace("\n", " ")


def duration(seconds: float | None) -> str | None:
    """Human-readable length of time: ``12s``, ``3m04s``, ``2h05m``, ``3d04h``; ``None`` stays ``None``."""
    if seconds is None:
        return None
    total = max(0, int(seconds))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def elapsed(start: datetime | None, finish: datetime | None, now: datetime | None = None) -> float | None:
    """Seconds from ``start`` to ``finish`` (or to now while unfinished); ``None`` before it started."""
    if start is None:
        return None
    end = finish or now or datetime.now(UTC)
    return (end - start).total_seconds()


def money(amount: float | None) -> str | None:
    """Dollars with four decimals, or two significant digits for amounts below a hundredth of a cent."""
    if amount is None:
        return None
    if 0 < amount < 0.0001:
        if amount < 1e-9:
            return "<$0.000000001"
        decimals = 1 - math.floor(math.log10(amount))
        return f"${amount:.{decimals}f}"
    return f"${amount:.4f}"


def timestamp(value: datetime | None) -> str | None:
    """A wire timestamp in local time, to the second: ``2025-01-31 14:05:09``."""
    return None if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
