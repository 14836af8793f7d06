"""Reading log files by byte range, as the log endpoints serve them."""

from __future__ import annotations

import os
from pathlib import Path


def read_slice(path: Path, offset: int, limit: int) -> tuple[bytes, int]:
    """Up to ``limit`` bytes of the file at ``path`` from ``offset``, and its size (0 when there is none)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(min(offset, size))
            return f.read(max(0, limit)), size
    except FileNotFoundError:
        return b"", 0
