"""Engine and sessions: SQLite by default (WAL, one file under the state directory), or any URL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from grid_ops.server.models import Base


class DatabaseUnavailable(RuntimeError):
    """The database named by ``--db`` cannot be reached or used."""


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
@overload
def as_utc(value: datetime | None) -> datetime | None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes: read them back as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def sqlite_url(state_dir: Path) -> str:
    """The default database: ``<state_dir>/grid.db``."""
    return f"sqlite:///{state_dir / 'grid.db'}"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        kwargs["pool_size"] = 20
        kwargs["max_overflow"] = 20
    elif url.startswith("postgresql:") or url.startswith("postgres:"):
        url = "postgresql+psycopg:" + url.split(":", 1)[1]
    try:
        engine = create_engine(url, **kwargs)
    except ModuleNotFoundError as exc:
        raise DatabaseUnavailable(
            f"the database driver {exc.name!r} is not installed: pip install 'grid-ops[postgres]'"
        ) from exc
    except ArgumentError as exc:
        raise DatabaseUnavailable(f"invalid database URL {url!r}: {exc}") from exc
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    return engine


_DIGEST_TABLES = ("datastore_files", "datastore_blobs", "datastore_uploads")


def _rename_digest_columns(engine: Engine) -> None:
    """Databases made when datastore content was named by SHA-256 call the digest column ``sha256``: it is
    renamed ``blake3``. The old values stay valid names of the content stored under them (the runner checks
    such content by SHA-256 when BLAKE3 does not match); new content is named by BLAKE3."""
    names = set(inspect(engine).get_table_names())
    with engine.begin() as conn:
        for table in _DIGEST_TABLES:
            if table in names and "sha256" in {c["name"] for c in inspect(conn).get_columns(table)}:
                try:
                    conn.execute(text(f"ALTER TABLE {table} RENAME COLUMN sha256 TO blake3"))
                except ProgrammingError as exc:
                    raise DatabaseUnavailable(
                        f"could not rename the column sha256 of {table} to blake3 ({exc.orig}); start the "
                        "control plane once as a database user that may alter its tables"
                    ) from exc


def init_db(engine: Engine) -> sessionmaker[Session]:
    """Create missing tables (renaming the columns of older databases) and return the session factory."""
    try:
        _rename_digest_columns(engine)
        Base.metadata.create_all(engine)
    except (OperationalError, InterfaceError) as exc:
        url = engine.url.render_as_string(hide_password=True)
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailable(f"could not connect to the database {url}: {reason}") from exc
    return sessionmaker(engine, expire_on_commit=False)
