"""The control plane's tables (SQLAlchemy 2 declarative style).

Runs and experiments keep their wire spec as JSON next to the columns the scheduler and the queries
need, so the API answers exactly what was asked for without a column per field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of every table."""


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    api_key_hash: Mapped[str] = mapped_column(String(64), index=True)
    team: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Token(Base):
    """A bearer token from ``/v1/auth/login``, stored by its hash."""

    __tablename__ = "tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Setting(Base):
    """Server-wide values that must survive restarts (e.g. the URL-signing secret)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index(
            "uq_runs_user_name_live",
            "user_id",
            "name",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    cluster_id: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    phase: Mapped[str] = mapped_column(String(32), index=True)
    desired_state: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    source_state: Mapped[str] = mapped_column(String(16))  # none | awaiting | ready | git
    source_path: Mapped[str | None] = mapped_column(Text)
    max_parallel: Mapped[int | None] = mapped_column(Integer)
    experiment_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ExperimentRow(Base):
    __tablename__ = "experiments"
    __table_args__ = (
        Index("ix_experiments_run_index", "run_id", "index"),
        Index("ix_experiments_run_phase", "run_id", "phase"),
        Index("ix_experiments_user_name", "user_id", "name"),
        Index("ix_experiments_cluster_phase", "cluster_id", "phase"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    user_id: Mapped[str] = mapped_column(String(32))
    cluster_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(80))
    index: Mapped[int] = mapped_column(Integer)
    command: Mapped[list[str]] = mapped_column(JSON)
    parameters: Mapped[dict[str, str]] = mapped_column(JSON)
    instance_type: Mapped[str] = mapped_column(String(64))
    cpu: Mapped[float] = mapped_column(Float)
    gpu: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    hourly_cost: Mapped[float] = mapped_column(Float)
    cost: Mapped[float | None] = mapped_column(Float)
    phase: Mapped[str] = mapped_column(String(40))
    desired_state: Mapped[str | None] = mapped_column(String(40))
    message: Mapped[str | None] = mapped_column(Text)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    handle: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EventRow(Base):
    """One change of an experiment's phase or desired state, with its message."""

    __tablename__ = "experiment_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    experiment_id: Mapped[str] = mapped_column(String(32), index=True)
    phase: Mapped[str | None] = mapped_column(String(40))
    desired_state: Mapped[str | None] = mapped_column(String(40))
    message: Mapped[str | None] = mapped_column(Text)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MetricPointRow(Base):
    """One reported metric point, in arrival order (``id``); ``seq`` is the reporter's sequence number."""

    __tablename__ = "metric_points"
    __table_args__ = (
        Index("ix_metric_points_exp_name", "experiment_id", "name", "id"),
        Index("ix_metric_points_exp_seq", "experiment_id", "seq"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    experiment_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[float] = mapped_column(Float)
    step: Mapped[int | None] = mapped_column(BigInteger)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    seq: Mapped[int | None] = mapped_column(BigInteger)


class MetricSummaryRow(Base):
    """Last, min, max and count of one metric of one experiment, kept up to date as points arrive."""

    __tablename__ = "metric_summaries"

    experiment_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32), index=True)
    last_value: Mapped[float] = mapped_column(Float)
    min_value: Mapped[float] = mapped_column(Float)
    max_value: Mapped[float] = mapped_column(Float)
    last_step: Mapped[int | None] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ArtifactRow(Base):
    """One file under ``<state_dir>/artifacts/<experiment_id>/``; keyed by a hash of its path so that
    paths of any length fit the index."""

    __tablename__ = "artifacts"

    experiment_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    path_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    md5: Mapped[str] = mapped_column(String(32))
    modified_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
