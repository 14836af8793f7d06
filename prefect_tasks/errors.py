"""Errors the Prefect tasks raise on top of ``grid_ops.errors``: a run that did not succeed, a flow run that
was cancelled while it waited. Both are ``GridError``\\ s, so one ``except GridError`` catches everything."""

from __future__ import annotations

from grid_ops.errors import GridError


class RunNotSucceeded(GridError):
    """The run (or experiment) ended failed or cancelled; ``status`` says which, the message says why."""

    def __init__(self, message: str, *, status: str, details: list[str] | None = None) -> None:
        super().__init__(message, details=details or [])
        self.status = status


class FlowRunCancelled(GridError):
    """The flow run was cancelled while a task waited; the grid-ops work it waited for was cancelled too."""
