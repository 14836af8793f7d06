"""Experiments' environment build logs, kept apart from their logs: ``<state_dir>/build-logs/<id>.log``.

The runner sends a build log as it grows, each piece with the byte offset it starts at, so that a
piece sent twice (a retry after a lost answer) lands once; ``<id>.done`` marks a build log complete.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from grid_ops.server.log_files import read_slice


class OffsetMismatch(Exception):
    """A piece starts past the end of what is stored; ``size`` is where the stored log ends."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the build log holds {size} bytes")
        self.size = size


class BuildLogs:
    """The build logs under one control plane's state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "build-logs"

    def path(self, experiment_id: str) -> Path:
        return self.root / f"{experiment_id}.log"

    def _done(self, experiment_id: str) -> Path:
        return self.root / f"{experiment_id}.done"

    def write(self, experiment_id: str, offset: int, data: bytes, final: bool) -> int:
        """Store ``data`` at ``offset`` (dropping anything stored after it); return the log's size."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path(experiment_id)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if offset > size:
                raise OffsetMismatch(size)
            os.ftruncate(fd, offset)
            os.lseek(fd, offset, os.SEEK_SET)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            size = offset + len(data)
        finally:
            os.close(fd)
        if final:
            self._done(experiment_id).touch()
        return size

    def read(self, experiment_id: str, offset: int, limit: int) -> tuple[bytes, int]:
        """Up to ``limit`` bytes from ``offset``, and the log's size (0 when there is none)."""
        return read_slice(self.path(experiment_id), offset, limit)

    def exists(self, experiment_id: str) -> bool:
        return self.path(experiment_id).exists()

    def complete(self, experiment_id: str) -> bool:
        """Whether the runner said the build log is whole (the build is over)."""
        return self._done(experiment_id).exists()

    def remove(self, experiment_ids: Iterable[str]) -> None:
        """Forget the build logs of deleted experiments."""
        for experiment_id in experiment_ids:
            for path in (self.path(experiment_id), self._done(experiment_id)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
