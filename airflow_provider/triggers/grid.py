"""Triggers that wait, in the triggerer's event loop, for a run or an experiment to reach a state.

Fully async: every call goes through ``GridHook``'s ``httpx.AsyncClient`` path (the embedded control plane,
when no connection is defined, is located in a worker thread). An absolute deadline (``end_time``, epoch
seconds) ends the wait with a ``timeout`` event, cancelling the run first when ``cancel_on_timeout``. When a
user kills the deferred task (mark failed/success, clear), Airflow 3.3 calls ``on_kill()``, which cancels
the run when ``cancel_on_kill``; ``cleanup()`` is left alone, since it also runs on triggerer restarts,
when the run must go on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider.hooks.grid import DEFAULT_CONN_ID, GridHook
from airflow_provider.states import CANCELLED, DELETED, FAILED, SUCCEEDED, RemoteState
from grid_ops.errors import GridError


class _GridStateTrigger(BaseTrigger):
    """Polls one run or experiment until it reaches ``target_states`` (event ``success``), a failure
    state or any other end (``failure``), the deadline (``timeout``) or an API error (``error``)."""

    kind = "run"

    def __init__(
        self,
        name: str,
        cluster_id: str | None = None,
        grid_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 10.0,
        end_time: float | None = None,
        target_states: Iterable[str] = (SUCCEEDED,),
        failure_states: Iterable[str] = (FAILED, CANCELLED, DELETED),
        cancel_on_kill: bool = False,
        cancel_on_timeout: bool = False,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.name = name
        self.cluster_id = cluster_id
        self.grid_conn_id = grid_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = end_time
        self.target_states = sorted(target_states)
        self.failure_states = sorted(failure_states)
        self.cancel_on_kill = cancel_on_kill
        self.cancel_on_timeout = cancel_on_timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and the keyword arguments that rebuild this trigger (no secrets: only the conn id)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "name": self.name,
                "cluster_id": self.cluster_id,
                "grid_conn_id": self.grid_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "target_states": list(self.target_states),
                "failure_states": list(self.failure_states),
                "cancel_on_kill": self.cancel_on_kill,
                "cancel_on_timeout": self.cancel_on_timeout,
            },
        )

    def _hook(self) -> GridHook:
        return GridHook(grid_conn_id=self.grid_conn_id, cluster_id=self.cluster_id)

    def _event(self, status: str, state: RemoteState | None, message: str) -> TriggerEvent:
        return TriggerEvent(  # type: ignore[no-untyped-call]
            {
                "status": status,
                "kind": self.kind,
                "name": self.name,
                "cluster_id": self.cluster_id,
                "message": message,
                "state": state.to_event() if state is not None else None,
            }
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the state is decided or the deadline passes; yield exactly one event."""
        hook = self._hook()
        state: RemoteState | None = None
        while True:
            try:
                state = await hook.aget_state(self.kind, self.name, self.cluster_id)
            except GridError as exc:
                yield self._event("error", state, f"checking {self.kind} {self.name!r} failed: {exc}")
                return
            if state.status in self.target_states:
                yield self._event("success", state, f"{self.kind} {self.name!r} is {state.status}")
                return
            if state.status in self.failure_states or state.terminal:
                reason = f": {state.message}" if state.message else ""
                yield self._event("failure", state, f"{self.kind} {self.name!r} is {state.status}{reason}")
                return
            now = time.time()
            if self.end_time is not None and now >= self.end_time:
                message = f"{self.kind} {self.name!r} is still {state.status} at its deadline"
                if self.cancel_on_timeout and self.kind == "run":
                    try:
                        await hook.acancel_run(self.name, self.cluster_id)
                        message += "; it was cancelled"
                    except GridError as exc:
                        message += f"; cancelling it failed: {exc}"
                yield self._event("timeout", state, message)
                return
            left = self.poll_interval if self.end_time is None else min(self.poll_interval, self.end_time - now)
            self.log.debug("%s %s is %s; next check in %.1f s", self.kind, self.name, state.status, left)
            await asyncio.sleep(max(0.0, left))

    async def on_kill(self) -> None:
        """A user killed the deferred task: cancel the run when ``cancel_on_kill`` (Airflow >= 3.3)."""
        if self.cancel_on_kill and self.kind == "run":
            self.log.info("Task killed: cancelling run %s", self.name)
            await self._hook().acancel_run(self.name, self.cluster_id)


class GridRunTrigger(_GridStateTrigger):
    """Waits for a run (by name) to reach ``target_states``; may cancel it on kill or at the deadline."""

    kind = "run"


class GridExperimentTrigger(_GridStateTrigger):
    """Waits for an experiment (``<run>-exp<N>``) to reach ``target_states``."""

    kind = "experiment"
