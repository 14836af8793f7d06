"""Content and manifest rows are written in one ``executemany`` on the driver's cursor (``_insert_many``):
they must read back exactly as rows the ORM writes, content recorded before is left alone, and a path
recorded again replaces its entry. On SQLite; on PostgreSQL, ``test_postgres.py`` uploads and mounts a
version through the same code (new rows only)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text

from grid_ops.server import datastore_uploads as uploads
from grid_ops.server.datastore_tables import DatastoreBlobRow, DatastoreFileRow, DatastoreRow
from grid_ops.server.db import as_utc, init_db, make_engine, sqlite_url


def test_blob_rows_read_back_as_the_orm_writes_them_and_recorded_content_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = init_db(make_engine(sqlite_url(tmp_path)))
    when = datetime(2026, 11, 27, 5, 40, 1, 0, tzinfo=UTC)  # no microseconds: where text formats differ first
    later = datetime(2026, 11, 28, tzinfo=UTC)
    with sessions.begin() as session:
        session.add(DatastoreBlobRow(cluster_id="local", user_id="u1", blake3="a" * 64, size=1, created_at=when))
    monkeypatch.setattr(uploads, "utcnow", lambda: when)
    with sessions.begin() as session:
        uploads.insert_blobs(session, "local", "u1", [("b" * 64, 2), ("c" * 64, 3)])
    monkeypatch.setattr(uploads, "utcnow", lambda: later)
    with sessions.begin() as session:  # "a" is recorded already: its row stays as it was
        uploads.insert_blobs(session, "local", "u1", [("a" * 64, 1), ("d" * 64, 4)])
    with sessions() as session:
        raw = {sha: at for sha, at in session.execute(text("SELECT blake3, created_at FROM datastore_blobs"))}
        rows = {r.blake3[0]: (r.size, as_utc(r.created_at)) for r in session.scalars(select(DatastoreBlobRow))}
    assert raw["b" * 64] == raw["c" * 64] == raw["a" * 64], raw  # the very text the ORM stores
    assert rows == {"a": (1, when), "b": (2, when), "c": (3, when), "d": (4, later)}


def test_a_path_recorded_again_replaces_its_manifest_entry(tmp_path: Path) -> None:
    sessions = init_db(make_engine(sqlite_url(tmp_path)))
    when = datetime(2026, 11, 27, tzinfo=UTC)
    with sessions.begin() as session:
        row = DatastoreRow(
            id="ds1",
            user_id="u1",
            cluster_id="local",
            name="data",
            version=1,
            source="",
            source_type="EXPANDED_FILES",
            phase="UPLOADING",
            state="UPLOADING",
            created_at=when,
            updated_at=when,
        )
        session.add(row)
        session.flush()
        uploads.put_files(session, row, [("x/a.csv", "a" * 64, 1, 0o644), ("b.csv", "b" * 64, 2, 0o600)])
    with sessions.begin() as session:
        uploads.put_files(session, row, [("x/a.csv", "c" * 64, 3, 0o640)])
    with sessions() as session:
        entries = {
            f.path: (f.blake3[0], f.size, f.mode, f.user_id, f.cluster_id)
            for f in session.scalars(select(DatastoreFileRow).where(DatastoreFileRow.datastore_id == "ds1"))
        }
    assert entries == {"x/a.csv": ("c", 3, 0o640, "u1", "local"), "b.csv": ("b", 2, 0o600, "u1", "local")}
