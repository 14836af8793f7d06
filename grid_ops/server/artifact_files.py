"""Artifact files on disk: ``<state_dir>/artifacts/<experiment_id>/<path>``.

Uploads are written to ``<state_dir>/artifacts/.tmp/`` first and renamed into place, so a failed
upload leaves nothing behind and readers never see half a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

from grid_ops.server.errors import ApiError, bad_request

MAX_PATH_LENGTH = 1024
STALE_UPLOAD_SECONDS = 3600


def check_path(path: str) -> str:
    """``path`` if it is a safe relative artifact path (400 saying why otherwise)."""
    if not path:
        raise bad_request("the artifact path is empty: give the file's path relative to the artifacts directory")
    if len(path) > MAX_PATH_LENGTH:
        raise bad_request(f"the artifact path is {len(path)} characters long; at most {MAX_PATH_LENGTH} are allowed")
    if path.startswith("/"):
        raise bad_request(f"artifact path {path!r} is absolute: give it relative to the artifacts directory")
    if any(ord(c) < 32 or c == "\\" for c in path):
        raise bad_request(f"artifact path {path!r} contains a control character or a backslash")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise bad_request(f"artifact path {path!r} has an empty, '.' or '..' segment: give a plain relative path")
    return path


@dataclass(frozen=True)
class Upload:
    """A finished temporary upload: where it is, its size and its MD5."""

    temp: Path
    size: int
    md5: str


class ArtifactFiles:
    """The artifacts directory of a control plane."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "artifacts"
        self.temp_dir = self.root / ".tmp"
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        self._drop_stale_uploads()

    def _drop_stale_uploads(self) -> None:
        """Remove temporary uploads an earlier process left behind (killed mid-upload)."""
        cutoff = time.time() - STALE_UPLOAD_SECONDS
        for temp in self.temp_dir.glob("*.part"):
            with contextlib.suppress(OSError):
                if temp.stat().st_mtime < cutoff:
                    temp.unlink()

    def experiment_dir(self, experiment_id: str) -> Path:
        return self.root / experiment_id

    def file(self, experiment_id: str, path: str) -> Path:
        """Where an artifact lives (``path`` already checked)."""
        return self.experiment_dir(experiment_id) / path

    async def receive(self, chunks: AsyncIterator[bytes]) -> Upload:
        """Write a request body to a temporary file, counting its size and MD5 on the way."""
        temp = self.temp_dir / f"{uuid.uuid4().hex}.part"
        digest, size = hashlib.md5(usedforsecurity=False), 0
        try:
            with open(temp, "wb") as f:
                async for chunk in chunks:
                    f.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
        except BaseException:
            discard(temp)
            raise
        return Upload(temp, size, digest.hexdigest())

    def place(self, upload: Upload, experiment_id: str, path: str) -> Path:
        """Rename the upload into place, replacing an older file of the same path (409 when the path
        clashes with a directory of other artifacts, or runs through a file)."""
        target = self.file(experiment_id, path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(upload.temp, target)
        except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
            raise ApiError(
                409, f"artifact path {path!r} clashes with another artifact (a file cannot also be a directory)"
            ) from exc
        return target

    def remove(self, experiment_ids: Iterable[str]) -> None:
        """Delete the artifacts of these experiments from disk."""
        for experiment_id in experiment_ids:
            shutil.rmtree(self.experiment_dir(experiment_id), ignore_errors=True)


def discard(temp: Path) -> None:
    """Remove a temporary upload if it is still there."""
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
