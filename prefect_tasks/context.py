"""What the tasks need to know about the Prefect run they execute in (if any), and its logger."""

from __future__ import annotations

from uuid import UUID

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging import get_run_logger


def in_prefect_run() -> bool:
    """Whether code runs inside a Prefect flow or task run (artifacts and run loggers need one)."""
    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def current_flow_run_id() -> UUID | None:
    """The id of the flow run this code runs in (directly or in one of its tasks), if any."""
    task_ctx = TaskRunContext.get()
    if task_ctx is not None and task_ctx.task_run.flow_run_id is not None:
        return task_ctx.task_run.flow_run_id
    flow_ctx = FlowRunContext.get()
    return flow_ctx.flow_run.id if flow_ctx is not None and flow_ctx.flow_run is not None else None


def log_info(message: str, *args: object) -> None:
    """Log to the run's log in Prefect (shown in the UI); outside a run there is no one to tell."""
    if in_prefect_run():
        get_run_logger().info(message, *args)
