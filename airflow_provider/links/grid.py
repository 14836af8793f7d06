"""The operator extra link "Grid run": the run's resource on the control plane.

The operator pushes the URL to XCom (key ``grid_run_url``) right after the run is submitted or re-attached,
so the link shows while the task is still running or deferred. It points at
``<control plane>/v1/core/<cluster>/runs/<name>``: the control plane has no web UI, and that resource is the
run's JSON (status, experiment counts, cost) behind the API's Basic auth (user id and API key).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

XCOM_RUN_URL = "grid_run_url"


class GridRunLink(BaseOperatorLink):
    """Link from a task to the grid-ops run it started or re-attached to."""

    name = "Grid run"

    @property
    def xcom_key(self) -> str:
        """Where the operator stores the URL (the API server reads it from there)."""
        return XCOM_RUN_URL

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The URL the task pushed, or an empty string before the run was submitted."""
        from airflow.sdk.execution_time.xcom import XCom

        url: Any = XCom.get_value(ti_key=ti_key, key=self.xcom_key)
        return str(url) if url else ""

    @staticmethod
    def persist(context: Any, url: str) -> None:
        """Push ``url`` for this task instance, so the link shows from now on."""
        context["ti"].xcom_push(key=XCOM_RUN_URL, value=url)
