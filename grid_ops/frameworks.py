"""The frameworks a run may name (``framework=``): one list and one check for the SDK and the server."""

from __future__ import annotations

import re

FRAMEWORKS = ("lightning", "pytorch", "torch", "tensorflow", "julia", "torchelastic")
_JULIA_VERSION = re.compile(r"julia:\d+\.\d+\.\d+")


def normalize_framework(value: object) -> str:
    """``value`` as the framework recorded for the run (``torch`` is recorded as ``pytorch``); ValueError
    naming the allowed values when it is not one of them."""
    if not isinstance(value, str) or not (value in FRAMEWORKS or _JULIA_VERSION.fullmatch(value)):
        raise ValueError(f"framework {value!r} is not supported; use one of {', '.join(FRAMEWORKS)} or julia:X.Y.Z")
    return "pytorch" if value == "torch" else value
