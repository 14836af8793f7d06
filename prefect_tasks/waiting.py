"""The poll loop of the waiting tasks, in a sync and an async driver.

Each poll fetches the remote object, reports progress, and stops at a terminal status. Before the next
poll it checks two ways the wait can be cut short, and both cancel the remote work: the flow run is being
cancelled (asked of the Prefect API), or the task's own ``timeout`` passed. Anything that interrupts the
wait from outside (Prefect's ``timeout_seconds``, task cancellation, Ctrl-C, SIGTERM) arrives as a
``BaseException`` that is not an ``Exception``: the remote work is cancelled before it propagates. An
ordinary error (the control plane briefly unreachable, say) propagates without cancelling, so that a
retry of the task reattaches to work that is still going.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from grid_ops.errors import ValidationError, WaitTimeout
from grid_ops.sdk.states import TERMINAL_STATUSES
from prefect_tasks.cancellation import aflow_run_cancel_requested, flow_run_cancel_requested
from prefect_tasks.context import current_flow_run_id
from prefect_tasks.errors import FlowRunCancelled


@dataclass
class Poll:
    """What to wait for: ``fetch`` refreshes it and returns its status; ``cancel(reason)`` stops it."""

    what: str
    fetch: Callable[[], str]
    cancel: Callable[[str], object]
    progress: Callable[[], None] | None = None
    poll_interval: float = 5.0
    timeout: float | None = None

    def __post_init__(self) -> None:
        if not self.poll_interval > 0:
            raise ValidationError(f"poll_interval must be > 0 seconds, got {self.poll_interval!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValidationError(f"timeout must be > 0 seconds or None, got {self.timeout!r}")


class _Clock:
    def __init__(self, poll: Poll) -> None:
        self.poll = poll
        self.deadline = None if poll.timeout is None else time.monotonic() + poll.timeout
        self.flow_run_id: UUID | None = current_flow_run_id()

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def pause(self) -> float:
        if self.deadline is None:
            return self.poll.poll_interval
        return max(0.0, min(self.poll.poll_interval, self.deadline - time.monotonic()))

    def timed_out(self, status: str) -> WaitTimeout:
        reason = f"still {status} after the wait's timeout of {self.poll.timeout:g} s"
        self.poll.cancel(reason)
        return WaitTimeout(f"{self.poll.what} was {reason}, so it was cancelled; raise timeout= to wait longer")

    def flow_cancelled(self) -> FlowRunCancelled:
        self.poll.cancel(f"flow run {self.flow_run_id} was cancelled")
        return FlowRunCancelled(f"the flow run was cancelled while waiting for {self.poll.what}, which was cancelled")

    def interrupted(self, exc: BaseException) -> None:
        self.poll.cancel(f"the wait was interrupted ({type(exc).__name__})")


def wait(poll: Poll) -> str:
    """Poll until a terminal status and return it (see the module docstring for what cancels)."""
    clock = _Clock(poll)
    try:
        while True:
            status = poll.fetch()
            if poll.progress is not None:
                poll.progress()
            if status in TERMINAL_STATUSES:
                return status
            if clock.flow_run_id is not None and flow_run_cancel_requested(clock.flow_run_id):
                raise clock.flow_cancelled()
            if clock.expired():
                raise clock.timed_out(status)
            time.sleep(clock.pause())
    except Exception:
        raise
    except BaseException as exc:
        clock.interrupted(exc)
        raise


async def await_(poll: Poll) -> str:
    """Async form of ``wait``: requests go to a worker thread, the pauses are ``asyncio.sleep``."""
    clock = _Clock(poll)
    try:
        while True:
            status = await asyncio.to_thread(poll.fetch)
            if poll.progress is not None:
                await asyncio.to_thread(poll.progress)
            if status in TERMINAL_STATUSES:
                return status
            if clock.flow_run_id is not None and await aflow_run_cancel_requested(clock.flow_run_id):
                raise await asyncio.to_thread(clock.flow_cancelled)
            if clock.expired():
                raise await asyncio.to_thread(clock.timed_out, status)
            await asyncio.sleep(clock.pause())
    except Exception:
        raise
    except BaseException as exc:
        clock.interrupted(exc)  # synchronously: the event loop may not run another step for us
        raise
