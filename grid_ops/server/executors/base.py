"""The interface every executor offers the scheduler: launch, cancel, adopt after a restart, logs; and
``runner_env``, the runner's environment, which every executor builds the same way.

An executor reports each experiment's end through the ``on_exit`` callback it was built with; the
scheduler records it. Executors never touch the database.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from grid_ops.runner.datastore import version_dir
from grid_ops.server.config import Capacity


class LaunchError(Exception):
    """The experiment could not be started; the message says why and is shown to the user."""


@dataclass(frozen=True)
class SourceSpec:
    """Where an experiment's source comes from: the run's uploaded snapshot, or one commit of a git
    repository (resolved once, when the run was created, so every experiment gets the same one)."""

    kind: str
    """``snapshot`` or ``git``."""
    key: str
    """The source's name in a node's cache: ``snapshot-<run id>``, or ``git-<url hash>-<commit>``."""
    archive: Path | None = None
    """A snapshot's archive in the control plane's state directory."""
    git_url: str | None = None
    git_ref: str | None = None
    git_commit: str | None = None


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
    source: SourceSpec | None = None
    relative_work_dir: str | None = None
    datastore_id: str | None = None
    """The datastore version the experiment mounts (the runner fetches it into the node's cache)."""
    previous_handle: str | None = None
    """The handle of the experiment's earlier launch, when it runs again (resumed, or requeued)."""
    runner_url: str | None = None
    """Where the runner reaches the control plane (None: it reports nothing and sends no heartbeats)."""
    runner_token: str | None = None
    heartbeat_seconds: float = 0.0
    """How often the runner says it is alive (0: never)."""
    extra: dict[str, str] = field(default_factory=dict)


LOG_FILE = "output.log"
"""The experiment's log, in its folder on the node."""
EXIT_FILE = "exit_code"
"""Where the runner writes the experiment's exit status, in its folder on the node."""


@dataclass(frozen=True)
class RunnerDirs:
    """Where, on the node that runs it, an experiment's runner keeps its files."""

    experiment_dir: str
    """The experiment's own folder: its working copy of the source, artifacts, scratch, log, exit status."""
    source_cache: str
    """The node's cache of run sources (snapshot archives, git checkouts), shared by its experiments."""
    datastore_cache: str
    """The node's cache of datastore versions, shared by its experiments."""
    datastore_cache_max_bytes: int = 0
    """The size the datastore cache is kept under, evicting versions no experiment uses (0: no limit)."""
    env_cache: str = ""
    """The node's cache of dependency environments (``runner/environment.py``; empty: beside the source cache)."""
    uv: str | None = None
    """``uv`` on the node, which builds environments 8-15x faster than pip (None: ``venv`` and pip)."""


def runner_env(spec: LaunchSpec, dirs: RunnerDirs, local_files: bool) -> dict[str, str]:
    """The environment the runner (``grid_ops/runner``) starts with: ``spec.env`` (the experiment's own
    variables, ``GRID_EXPERIMENT_ID`` ... ``GRID_ACTIONS_*``, ``GRID_DATASTORE_ID``/``_MOUNT``/``_NAME``,
    ``GRID_METRICS_PATTERN``) plus what tells the runner where things are. Every executor starts the
    runner with it; ``local_files`` says whether the runner can read the control plane's files (same
    machine or shared file system), which saves it a download.

    - ``GRID_RUNNER_URL``, ``GRID_RUNNER_TOKEN``: the control plane and the experiment's token for the
      runner endpoints (``/v1/runner/experiments/{id}/...``: source, heartbeat, metrics, artifacts,
      datastore files).
    - ``GRID_HEARTBEAT_SECONDS``: how often the runner POSTs its heartbeat (unset: never).
    - ``GRID_WORK_DIR``: where the runner puts the experiment's own copy of the source (replaced if it
      exists); ``GRID_RELATIVE_WORK_DIR``: the folder inside it the command runs in.
    - ``GRID_SOURCE``: ``snapshot`` or ``git`` (unset: no source, an empty working directory);
      ``GRID_SOURCE_KEY``: its name in the node's cache; ``GRID_SOURCE_CACHE``: that cache.
      A snapshot is read from ``GRID_SOURCE_PATH`` when set and readable, else downloaded (once per node)
      from ``GET .../source``. A git source is ``GRID_SOURCE_GIT_URL`` at ``GRID_SOURCE_GIT_COMMIT``
      (``GRID_SOURCE_GIT_REF``: the ref it was resolved from), cloned once per node.
    - ``GRID_ARTIFACTS_DIR``, ``GRID_SCRATCH_DIR``, ``GRID_METRICS_FILE``: the experiment's folders and
      metrics file (the run's ``env_vars`` may set the last two);
      ``GRID_OPS_LOG_FILE``, ``GRID_OPS_EXIT_FILE``: its log and the file its exit status is written to.
    - ``GRID_DATASTORE_CACHE``, ``GRID_DATASTORE_DIR``: the node's datastore cache and the version's
      folder in it, when the run mounts a datastore; ``GRID_DATASTORE_CACHE_MAX_BYTES``: the size the
      runner keeps that cache under (0: no limit).
    - ``GRID_SOURCE_DIR``: the root of the experiment's copy of the source, where the run's dependency file
      is; ``GRID_ENV_CACHE``: the node's cache of dependency environments; ``GRID_UV``: the ``uv`` that
      builds them (a run's ``env_vars`` may set it empty to build with pip); ``GRID_OPS_BUILD_LOG_FILE``:
      the environment's build log on the node.
    """
    base = dirs.experiment_dir
    env = dict(spec.env)
    if spec.runner_url and spec.runner_token:
        env["GRID_RUNNER_URL"] = spec.runner_url
        env["GRID_RUNNER_TOKEN"] = spec.runner_token
        if spec.heartbeat_seconds > 0:
            env["GRID_HEARTBEAT_SECONDS"] = f"{spec.heartbeat_seconds:g}"
    env["GRID_WORK_DIR"] = env["GRID_SOURCE_DIR"] = os.path.join(base, "source")
    if spec.relative_work_dir:
        env["GRID_RELATIVE_WORK_DIR"] = spec.relative_work_dir
    source = spec.source
    if source is not None:
        env["GRID_SOURCE"] = source.kind
        env["GRID_SOURCE_KEY"] = source.key
        env["GRID_SOURCE_CACHE"] = dirs.source_cache
        if source.archive is not None and local_files:
            env["GRID_SOURCE_PATH"] = str(source.archive)
        for name, value in (
            ("GRID_SOURCE_GIT_URL", source.git_url),
            ("GRID_SOURCE_GIT_REF", source.git_ref),
            ("GRID_SOURCE_GIT_COMMIT", source.git_commit),
        ):
            if value:
                env[name] = value
    env.setdefault("GRID_ARTIFACTS_DIR", os.path.join(base, "artifacts"))
    env.setdefault("GRID_SCRATCH_DIR", os.path.join(base, "scratch"))
    env.setdefault("GRID_METRICS_FILE", os.path.join(base, "metrics.jsonl"))
    env["GRID_OPS_EXIT_FILE"] = os.path.join(base, EXIT_FILE)
    env["GRID_OPS_LOG_FILE"] = os.path.join(base, LOG_FILE)
    env["GRID_OPS_BUILD_LOG_FILE"] = os.path.join(base, "build.log")
    env["GRID_ENV_CACHE"] = dirs.env_cache or os.path.join(os.path.dirname(dirs.source_cache), "env-cache")
    if dirs.uv:
        env.setdefault("GRID_UV", dirs.uv)
    if spec.datastore_id:
        env["GRID_DATASTORE_CACHE"] = dirs.datastore_cache
        env["GRID_DATASTORE_DIR"] = version_dir(dirs.datastore_cache, spec.datastore_id)
        env["GRID_DATASTORE_CACHE_MAX_BYTES"] = str(dirs.datastore_cache_max_bytes)
    return env


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
