"""Upload progress on the command line: a bar with bytes and rate, redrawn in place, when stdout is a
terminal; otherwise plain lines on stderr (each step, and the bytes sent every 10% or 5 seconds), so that
stdout stays clean for ``-o json``."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from typing import TextIO

from grid_ops.upload.progress import Progress


def human_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class CliProgress(Progress):
    """Draws a bar (``bar=True``) or prints lines for one upload labelled ``label``."""

    def __init__(self, label: str, bar: bool | None = None, stream: TextIO | None = None) -> None:
        self.label = label
        self.bar = sys.stdout.isatty() if bar is None else bar
        self.stream = stream or (sys.stdout if self.bar else sys.stderr)
        self._lock = threading.Lock()
        self._total = self._done = self._base = 0
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._next_line = 0.0
        self._drawn = False
        self._decile = 0

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def stage(self, text: str) -> None:
        with self._lock:
            if self.bar:
                self._clear()
                self._write(f"{self.label}: {text}\n")
            else:
                self._write(f"{self.label}: {text}\n")

    def start(self, total_bytes: int, done_bytes: int) -> None:
        with self._lock:
            self._total, self._done, self._base = total_bytes, done_bytes, done_bytes
            self._started = time.monotonic()
            self._next_line = self._started + 5.0
            self._decile = 10 * done_bytes // max(1, total_bytes)
            if done_bytes:
                self._write(f"{self.label}: resuming, {human_bytes(done_bytes)} sent before\n")
            self._draw(force=True)

    def advance(self, nbytes: int) -> None:
        with self._lock:
            self._done += nbytes
            self._draw()

    def finish(self, text: str) -> None:
        with self._lock:
            self._clear()

    def _rate(self) -> float:
        elapsed = max(1e-6, time.monotonic() - self._started)
        return (self._done - self._base) / elapsed

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        total = max(1, self._total)
        if self.bar:
            if not force and now - self._last_draw < 0.1 and self._done < self._total:
                return
            self._last_draw = now
            text = f"{human_bytes(self._done)} / {human_bytes(self._total)}  {human_bytes(self._rate())}/s"
            width = max(10, min(40, shutil.get_terminal_size((80, 20)).columns - len(self.label) - len(text) - 8))
            filled = int(width * min(1.0, self._done / total))
            self._write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {text}")
            self._drawn = True
            return
        decile = 10 * self._done // total
        if force or now >= self._next_line or decile > self._decile:
            self._next_line, self._decile = now + 5.0, decile
            pct = 100 * self._done // total
            self._write(
                f"{self.label}: {human_bytes(self._done)} of {human_bytes(self._total)} sent ({pct}%), "
                f"{human_bytes(self._rate())}/s\n"
            )

    def _clear(self) -> None:
        if self.bar and self._drawn:
            self._write("\r" + " " * (shutil.get_terminal_size((80, 20)).columns - 1) + "\r")
            self._drawn = False
