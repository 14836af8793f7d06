"""The interface every executor offers the scheduler: launch, cancel, adopt after a restart, logs.

An executor reports each experiment's end through the ``on_exit`` callback it was built with; the
scheduler records it. Executors never touch the database.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from grid_ops.server.config import Capacity


class LaunchError(Exception):
    """The experiment could not be started; the message says why and is shown to the user."""


@dataclass(frozen=True)
class LaunchSpec:
    """Everything an executor needs to start one experiment."""

    experiment_id: str
    experiment_name: str
    run_id: str
    run_name: str
    user_id: str
    cluster_id: str
    instance_type: str
    argv: tuple[str, ...]
    env: dict[str, str]
    cpu: float
    gpu: int
    memory_mb: int
    source_tarball: Path | None = None
    relative_work_dir: str | None = None
    datastore_id: str | None = None
    """The datastore version the experiment mounts (the runner fetches it into the node's cache)."""
    previous_handle: str | None = None
    """The handle of the experiment's earlier launch, when it runs again (resumed, or requeued)."""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """How an experiment ended: its exit code (None when unknown) and a message for people."""

    experiment_id: str
    exit_code: int | None
    message: str
    not_started: bool = False
    retry: bool = False
    """It never started and goes back in the queue (its cluster could not be reached, say); ``message`` says why."""


ExitCallback = Callable[[Outcome], None]


class Executor(ABC):
    """Runs experiments somewhere and tells the scheduler when they end."""

    def __init__(self, on_exit: ExitCallback) -> None:
        self.on_exit = on_exit

    @abstractmethod
    def launch(self, spec: LaunchSpec) -> str:
        """Start the experiment; return an opaque handle to store. Raise LaunchError if it cannot."""

    @abstractmethod
    def cancel(self, experiment_id: str, handle: str | None, grace_seconds: float) -> None:
        """Ask the experiment to stop (SIGTERM or equivalent), forcing it after ``grace_seconds``."""

    @abstractmethod
    def adopt(self, experiment_id: str, handle: str | None) -> None:
        """After a control-plane restart: watch an experiment launched earlier, or report it ended."""

    @abstractmethod
    def read_log(self, experiment_id: str, offset: int, limit: int) -> tuple[bytes, int]:
        """Up to ``limit`` bytes of the experiment's log from ``offset``, and the log's current size."""

    @abstractmethod
    def shutdown(self, grace_seconds: float) -> list[str]:
        """Stop every experiment still running; return their ids."""

    def capacity(self) -> Capacity | None:
        """What the cluster offers in all when the executor learns it from the cluster itself, else None (the
        server config's capacity counts). Never blocks: executors that ask their cluster do so in the background."""
        return None

    def waiting_reason(self) -> str | None:
        """Why nothing can be launched now (the cluster cannot be reached, say), shown on queued experiments."""
        return None

    def drop_datastore(self, datastore_id: str) -> None:
        """Forget the copy of a deleted datastore version kept for experiments, if the executor keeps one."""
        return None
