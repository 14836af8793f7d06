"""Running DAGs for real in the tests: ``dag.test()`` against the metadata DB, and reading back what the
task instances left (state, XCom, task state store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG

START = datetime(2026, 1, 1, tzinfo=UTC)


def run_dag(dag: DAG, logical_date: datetime | None = None, run_after: datetime | None = None, **kwargs: Any) -> Any:
    """``dag.test()`` (tasks in this process, triggers inline); returns the DagRun."""
    return dag.test(logical_date=logical_date, run_after=run_after, **kwargs)


def ti_state(dagrun: Any, task_id: str) -> str | None:
    """The final state of one task instance of ``dagrun``."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=dagrun.dag_id, run_id=dagrun.run_id, task_id=task_id).one()
        return None if ti.state is None else str(ti.state)


def ti_try(dagrun: Any, task_id: str) -> int:
    """The try number the task instance ended on."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=dagrun.dag_id, run_id=dagrun.run_id, task_id=task_id).one()
        return int(ti.try_number)


def xcom(dagrun: Any, task_id: str, key: str = "return_value") -> Any:
    """The XCom ``key`` of one task instance of ``dagrun`` (deserialised), or None."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(
            XComModel.get_many(key=key, run_id=dagrun.run_id, dag_ids=dagrun.dag_id, task_ids=task_id)
        ).first()
        if row is None:
            return None
        return XComModel.deserialize_value(row[0])


_day = 0


def fresh_date() -> datetime:
    """A logical date no other DAG run of these tests uses (so each call makes a new DAG run)."""
    global _day
    _day += 1
    return START + timedelta(days=_day)


EXAMPLES = str(Path(__file__).resolve().parents[2] / "examples")
