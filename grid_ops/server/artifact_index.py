"""The artifacts table: one row per stored file (path, size, MD5, when), so listings are one indexed
query and checksums are computed once, at upload.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from grid_ops.server.models import ArtifactRow


def path_hash(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()


def put(session: Session, experiment_id: str, path: str, size: int, md5: str, now: datetime) -> None:
    """Record a stored file, replacing the row of an earlier upload of the same path."""
    key = path_hash(path)
    row = session.get(ArtifactRow, (experiment_id, key))
    if row is None:
        session.add(
            ArtifactRow(experiment_id=experiment_id, path_hash=key, path=path, size=size, md5=md5, modified_at=now)
        )
    else:
        row.size, row.md5, row.modified_at = size, md5, now


def page(session: Session, experiment_id: str, offset: int, limit: int) -> tuple[Sequence[ArtifactRow], int]:
    """One page of an experiment's artifacts sorted by path, and how many there are in all."""
    total = session.scalar(select(func.count()).where(ArtifactRow.experiment_id == experiment_id)) or 0
    rows = session.scalars(
        select(ArtifactRow)
        .where(ArtifactRow.experiment_id == experiment_id)
        .order_by(ArtifactRow.path)
        .offset(offset)
        .limit(limit)
    ).all()
    return rows, total


def forget(session: Session, experiment_ids: Sequence[str]) -> None:
    """Drop the rows of these experiments' artifacts (in the caller's transaction)."""
    if experiment_ids:
        session.execute(delete(ArtifactRow).where(ArtifactRow.experiment_id.in_(list(experiment_ids))))
