"""What experiments leave behind, as SDK values: metrics (last, min, max, series) and artifacts, and
downloading artifacts safely into a local directory."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from grid_ops import schemas
from grid_ops.client import GridClient
from grid_ops.errors import ValidationError


@dataclass(frozen=True)
class MetricPoint:
    """One point of a metric's series."""

    step: int | None
    value: float
    timestamp: datetime | None


@dataclass(frozen=True)
class Metric:
    """One metric of an experiment: its last, lowest and highest value, and every point in order."""

    name: str
    last: float
    min: float
    max: float
    last_step: int | None
    count: int
    series: tuple[MetricPoint, ...]

    @classmethod
    def from_wire(cls, wire: schemas.MetricSummary) -> Metric:
        return cls(
            name=wire.name,
            last=wire.last,
            min=wire.min,
            max=wire.max,
            last_step=wire.last_step,
            count=wire.count,
            series=tuple(MetricPoint(p.step, p.value, p.timestamp) for p in wire.series or []),
        )


@dataclass(frozen=True)
class Artifact:
    """A file an experiment kept: ``filename`` is its path under the experiment's artifacts directory;
    ``url`` downloads it without credentials for a day."""

    filename: str
    size: int
    md5_checksum: str | None
    last_modified: datetime | None
    url: str | None
    experiment_name: str
    run_name: str

    @classmethod
    def from_wire(cls, wire: schemas.Artifact, experiment_name: str, run_name: str) -> Artifact:
        return cls(
            filename=wire.filename,
            size=int(wire.size_bytes or 0),
            md5_checksum=wire.md5_checksum,
            last_modified=wire.last_modified,
            url=wire.url,
            experiment_name=experiment_name,
            run_name=run_name,
        )


def artifact_filter(pattern: str | None) -> Callable[[str], bool]:
    """A test of artifact paths: ``re.search`` with ``pattern`` (everything when ``None``)."""
    if pattern is None:
        return lambda _path: True
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValidationError(f"artifact pattern {pattern!r} is not a valid regular expression: {exc}") from exc
    return lambda path: compiled.search(path) is not None


def destination(dest: Path, filename: str) -> Path:
    """Where the artifact ``filename`` goes under ``dest``; refuses paths that would leave ``dest``."""
    parts = PurePosixPath(filename).parts
    if not parts or PurePosixPath(filename).is_absolute() or any(p in ("..", ".") for p in parts):
        raise ValidationError(f"refusing to download artifact {filename!r}: its path would leave {str(dest)!r}")
    return dest.joinpath(*parts)


def download(
    client: GridClient,
    experiment_id: str,
    cluster_id: str | None,
    artifacts: list[Artifact],
    dest: str | Path,
    pattern: str | None,
) -> list[Path]:
    """Download the artifacts matching ``pattern`` to ``dest/<filename>``; returns the files written."""
    wanted = artifact_filter(pattern)
    root = Path(dest)
    written: list[Path] = []
    for artifact in artifacts:
        if wanted(artifact.filename):
            target = destination(root, artifact.filename)
            written.append(client.download_artifact(experiment_id, artifact.filename, target, cluster_id=cluster_id))
    return written
