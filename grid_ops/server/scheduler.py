"""The scheduler: admits queued experiments by capacity (oldest run first), records how they end,
carries out cancellations, and keeps each run's phase in step with its experiments.

It runs in one background thread and wakes as soon as something happens (an experiment ends, a run
arrives, a cancel is asked for), so dispatch adds only milliseconds per experiment.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from grid_ops.schemas import ExperimentState, RunState
from grid_ops.server.config import ServerConfig
from grid_ops.server.db import as_utc, utcnow
from grid_ops.server.executors.base import Executor, LaunchError, LaunchSpec, Outcome, SourceSpec
from grid_ops.server.git_sources import cache_key, split_ref
from grid_ops.server.models import EventRow, ExperimentRow, RunRow
from grid_ops.server.phases import ACTIVE, derive_run_phase

log = logging.getLogger("grid_ops.scheduler")
E = ExperimentState
_SECRET_ENV = ("GRID_API_KEY", "GRID_USER_ID", "GRID_URL", "GRID_OPS_HOME")
_IDLE_SECONDS = 1.0
_CANCEL_SWEEP_SECONDS = 5.0


def experiment_base_env() -> dict[str, str]:
    """The environment experiments start from: the server's, minus its credentials, with the Python
    that runs grid-ops first on PATH (so ``python train.py`` finds what grid-ops was installed with)."""
    env = {k: v for k, v in os.environ.items() if k not in _SECRET_ENV}
    bindir = os.path.dirname(sys.executable)
    paths = [p for p in env.get("PATH", os.defpath).split(os.pathsep) if p and p != bindir]
    env["PATH"] = os.pathsep.join([bindir, *paths])
    # Python output reaches the log as it is written (followable with `logs -f`, in the order written),
    # as on other ML platforms; a run's own env_vars can still set it to something else.
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def hours_between(start: datetime | None, end: datetime | None) -> float:
    """Hours from ``start`` to ``end`` (0 when either is missing)."""
    s, e = as_utc(start), as_utc(end)
    if s is None or e is None:
        return 0.0
    return max(0.0, (e - s).total_seconds() / 3600.0)


def add_event(session: Session, exp: ExperimentRow, message: str | None, when: datetime) -> None:
    session.add(
        EventRow(
            experiment_id=exp.id,
            phase=exp.phase,
            desired_state=exp.desired_state,
            message=message,
            timestamp=when,
        )
    )


def refresh_runs(session: Session, run_ids: Iterable[str]) -> None:
    """Recompute the phase, start and finish of each run from its experiments."""
    now = utcnow()
    for run_id in set(run_ids):
        run = session.get(RunRow, run_id)
        if run is None:
            continue
        if run.phase == RunState.RUNNING.value and run.deleted_at is None:
            # The common case mid-sweep: still running while an experiment runs, found through an index
            # instead of counting every experiment of a large run.
            running = session.scalar(
                select(ExperimentRow.id)
                .where(ExperimentRow.run_id == run_id, ExperimentRow.phase == E.RUNNING.value)
                .limit(1)
            )
            if running is not None:
                continue
        by_phase = dict(
            session.execute(
                select(ExperimentRow.phase, func.count())
                .where(ExperimentRow.run_id == run_id)
                .group_by(ExperimentRow.phase)
            ).all()
        )
        phase = derive_run_phase(by_phase, run.desired_state == RunState.CANCELED.value, run.deleted_at is not None)
        changed = run.phase != phase.value
        if changed:
            run.phase = phase.value
            run.updated_at = now
        if run.started_at is None and phase != RunState.PENDING:
            run.started_at = (
                session.scalar(select(func.min(ExperimentRow.started_at)).where(ExperimentRow.run_id == run_id)) or now
            )
        if phase in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELED) and (run.finished_at is None or changed):
            run.finished_at = run.finished_at or now
            failed = by_phase.get(E.FAILED.value, 0)
            live = sum(n for p, n in by_phase.items() if p != E.DELETED.value)
            if phase == RunState.FAILED:
                run.message = f"{failed} of {live} experiments failed"
            elif phase == RunState.CANCELED:
                run.message = "cancelled by user"
            else:
                run.message = f"all {live} experiments succeeded"


class Scheduler:
    """Owns the executors and every transition an experiment makes after it is queued."""

    def __init__(
        self,
        config: ServerConfig,
        sessions: sessionmaker[Session],
        state_dir: Path,
        executors: dict[str, Executor] | None = None,
    ) -> None:
        self.config = config
        self.sessions = sessions
        self.state_dir = state_dir
        self.sources_dir = state_dir / "sources"
        self.sources_dir.mkdir(parents=True, exist_ok=True)
        self.executors: dict[str, Executor] = executors or {}
        self._outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shutting_down = False
        self._cancel_pending = True
        # CPU, GPU and memory held by active experiments, per cluster: only this thread changes
        # which experiments are active, so it keeps the sums instead of asking the database each time.
        self._used: dict[str, list[float]] = {cid: [0.0, 0.0, 0.0] for cid in config.clusters}
        self._last_cancel_sweep = 0.0
        self._waiting: dict[str, str] = {}  # per cluster: why its queued experiments wait, as shown on them
        self._base_env = experiment_base_env()
        # where experiments (and runners) reach this control plane, and their per-experiment token
        self.public_url: str | None = None
        self.runner_token: Callable[[str], str] | None = None
        # experiment id -> when (time.monotonic) it counts as lost unless its runner sends a heartbeat
        self._heartbeat_deadlines: dict[str, float] = {}
        self._heartbeat_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def report(self, outcome: Outcome) -> None:
        """Executors call this (from any thread) when an experiment ends."""
        self._outcomes.put(outcome)
        self._wake.set()

    def wake(self, cancel: bool = False) -> None:
        """Look again now; ``cancel`` when running experiments were asked to stop."""
        if cancel:
            self._cancel_pending = True
        self._wake.set()

    def drop_datastore(self, cluster_id: str, datastore_id: str) -> None:
        """A datastore version was deleted: its cluster's executor may forget its copy."""
        executor = self.executors.get(cluster_id)
        if executor is not None:
            executor.drop_datastore(datastore_id)

    def source_path(self, run_id: str) -> Path:
        return self.sources_dir / f"{run_id}.tar.gz"

    def start(self) -> None:
        self._reconcile()
        self._resume_paused()
        self._thread = threading.Thread(target=self._loop, name="grid-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop admitting and end running experiments with SIGTERM: those with ``auto_resume`` pause
        (and resume after a restart), the others fail as interrupted. Safe to call twice."""
        if self._shutting_down:
            return
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._shutting_down = True
        for executor in self.executors.values():
            executor.shutdown(self.config.cancel_grace_seconds)
        self._drain_outcomes()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(_IDLE_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.tick()
            except Exception:  # keep scheduling whatever one tick hit
                log.exception("scheduler tick failed")

    def tick(self) -> None:
        self._drain_outcomes()
        self._end_silent()
        now = time.monotonic()
        if self._cancel_pending or now - self._last_cancel_sweep > _CANCEL_SWEEP_SECONDS:
            self._cancel_pending = False
            self._last_cancel_sweep = now
            self._carry_out_cancels()
        self._admit()

    # ------------------------------------------------------------------ restart

    def _reconcile(self) -> None:
        """Hand experiments that were running before a restart back to their executors."""
        with self.sessions() as session:
            rows = session.execute(
                select(
                    ExperimentRow.id,
                    ExperimentRow.cluster_id,
                    ExperimentRow.handle,
                    ExperimentRow.cpu,
                    ExperimentRow.gpu,
                    ExperimentRow.memory_mb,
                ).where(ExperimentRow.phase.in_(list(ACTIVE)))
            ).all()
        for exp_id, cluster_id, handle, cpu, gpu, mem in rows:
            self._hold(cluster_id, cpu, gpu, mem, +1)
            executor = self.executors.get(cluster_id)
            if executor is None:
                self.report(Outcome(exp_id, None, f"cluster {cluster_id!r} is no longer configured"))
                continue
            # runners could not reach a control plane that was down: give them a grace period to report back
            self._watch(exp_id, self.config.heartbeat_grace_seconds)
            executor.adopt(exp_id, handle)

    # ------------------------------------------------------------------ heartbeats

    def _heartbeats_on(self) -> bool:
        return self.config.heartbeat_seconds() > 0 and self.public_url is not None and self.runner_token is not None

    def _watch(self, experiment_id: str, extra_seconds: float = 0.0) -> None:
        """Expect heartbeats from the experiment's runner from now on."""
        if self._heartbeats_on():
            deadline = time.monotonic() + self.config.heartbeat_timeout_seconds + extra_seconds
            with self._heartbeat_lock:
                self._heartbeat_deadlines[experiment_id] = deadline

    def heartbeat(self, experiment_id: str) -> bool:
        """A heartbeat of the experiment's runner arrived (any thread); False if it is not being watched."""
        with self._heartbeat_lock:
            if experiment_id not in self._heartbeat_deadlines:
                return False
            self._heartbeat_deadlines[experiment_id] = time.monotonic() + self.config.heartbeat_timeout_seconds
            return True

    def _end_silent(self) -> None:
        """Fail the experiments whose runner has gone silent, and ask their executors to stop them."""
        now = time.monotonic()
        with self._heartbeat_lock:
            silent = [exp_id for exp_id, deadline in self._heartbeat_deadlines.items() if deadline < now]
            for exp_id in silent:
                del self._heartbeat_deadlines[exp_id]
        if not silent:
            return
        with self.sessions() as session:
            rows = session.execute(
                select(ExperimentRow.id, ExperimentRow.cluster_id, ExperimentRow.handle).where(
                    ExperimentRow.id.in_(silent), ExperimentRow.phase.in_(list(ACTIVE))
                )
            ).all()
        timeout = self.config.heartbeat_timeout_seconds
        for exp_id, cluster_id, handle in rows:
            log.warning("experiment %s: no heartbeat for %g s; stopping it", exp_id, timeout)
            self.report(Outcome(exp_id, None, f"lost heartbeat: its runner went silent for more than {timeout:g} s"))
            executor = self.executors.get(cluster_id)
            if executor is not None:
                executor.cancel(exp_id, handle, self.config.cancel_grace_seconds)
        self._drain_outcomes()

    def _resume_paused(self) -> None:
        """Experiments paused by a graceful shutdown go back in the queue, keeping their folders."""
        now = utcnow()
        with self.sessions.begin() as session:
            paused = session.scalars(select(ExperimentRow).where(ExperimentRow.phase == E.PAUSED.value)).all()
            for exp in paused:
                exp.phase, exp.message, exp.updated_at = E.QUEUED.value, "resumed after a restart", now
                add_event(session, exp, exp.message, now)

    @staticmethod
    def _auto_resume(session: Session, run_id: str) -> bool:
        run = session.get(RunRow, run_id)
        return bool(run is not None and run.spec.get("autoResume"))

    def _hold(self, cluster_id: str, cpu: float, gpu: int, memory_mb: int, sign: int) -> None:
        used = self._used.setdefault(cluster_id, [0.0, 0.0, 0.0])
        used[0] += sign * cpu
        used[1] += sign * gpu
        used[2] += sign * memory_mb

    # ------------------------------------------------------------------ outcomes

    def _drain_outcomes(self) -> None:
        outcomes: list[Outcome] = []
        while True:
            try:
                outcomes.append(self._outcomes.get_nowait())
            except queue.Empty:
                break
        if not outcomes:
            return
        now = utcnow()
        with self._heartbeat_lock:
            for o in outcomes:
                self._heartbeat_deadlines.pop(o.experiment_id, None)
        with self.sessions.begin() as session:
            touched: set[str] = set()
            for o in outcomes:
                exp = session.get(ExperimentRow, o.experiment_id)
                if exp is None or exp.phase not in ACTIVE:
                    continue
                self._hold(exp.cluster_id, exp.cpu, exp.gpu, exp.memory_mb, -1)
                if o.retry and exp.desired_state is None and not self._shutting_down:
                    exp.phase, exp.message, exp.started_at, exp.updated_at = E.QUEUED.value, o.message, None, now
                    add_event(session, exp, exp.message, now)
                    continue
                exp.exit_code = o.exit_code
                exp.finished_at = now
                exp.updated_at = now
                exp.cost = exp.hourly_cost * hours_between(exp.started_at, now)
                if exp.desired_state == E.DELETED.value:
                    exp.phase, exp.message = E.DELETED.value, "deleted by user"
                    exp.deleted_at = exp.deleted_at or now
                elif exp.desired_state == E.CANCELLED.value:
                    exp.phase, exp.message = E.CANCELLED.value, f"cancelled by user ({o.message})"
                elif self._shutting_down and self._auto_resume(session, exp.run_id):
                    exp.phase = E.PAUSED.value
                    exp.message = "paused: the control plane shut down; it resumes when the control plane restarts"
                    exp.finished_at = None
                elif self._shutting_down:
                    exp.phase = E.FAILED.value
                    exp.message = f"interrupted: the control plane shut down ({o.message})"
                elif o.exit_code == 0:
                    exp.phase, exp.message = E.SUCCEEDED.value, o.message
                else:
                    exp.phase, exp.message = E.FAILED.value, o.message
                add_event(session, exp, exp.message, now)
                touched.add(exp.run_id)
            refresh_runs(session, touched)

    # ------------------------------------------------------------------ cancel

    def _carry_out_cancels(self) -> None:
        with self.sessions() as session:
            rows = session.execute(
                select(ExperimentRow.id, ExperimentRow.cluster_id, ExperimentRow.handle).where(
                    ExperimentRow.phase.in_(list(ACTIVE)),
                    ExperimentRow.desired_state.in_([E.CANCELLED.value, E.DELETED.value]),
                )
            ).all()
        for exp_id, cluster_id, handle in rows:
            executor = self.executors.get(cluster_id)
            if executor is not None:
                executor.cancel(exp_id, handle, self.config.cancel_grace_seconds)

    # ------------------------------------------------------------------ admission

    def _admit(self) -> None:
        for cluster_id, cluster in self.config.clusters.items():
            executor = self.executors.get(cluster_id)
            if executor is None:
                continue
            if self._note_waiting(cluster_id, executor.waiting_reason()):
                continue
            capacity = executor.capacity() or cluster.capacity
            used_cpu, used_gpu, used_mem = self._used.get(cluster_id, [0.0, 0.0, 0.0])
            with self.sessions() as session:
                free_cpu = capacity.cpu - float(used_cpu)
                free_gpu = capacity.gpu - int(used_gpu)
                free_mem = capacity.memory_mb - int(used_mem)
                if free_cpu <= 0:
                    continue
                candidates = session.execute(
                    select(ExperimentRow, RunRow)
                    .join(RunRow, RunRow.id == ExperimentRow.run_id)
                    .where(
                        ExperimentRow.cluster_id == cluster_id,
                        ExperimentRow.phase == E.QUEUED.value,
                        ExperimentRow.desired_state.is_(None),
                    )
                    .order_by(RunRow.created_at, RunRow.id, ExperimentRow.index)
                    .limit(max(1, int(free_cpu)) * 4)
                ).all()
                active_per_run: dict[str, int] = {}
                chosen: list[tuple[ExperimentRow, RunRow]] = []
                for exp, run in candidates:
                    if run.max_parallel:
                        if run.id not in active_per_run:
                            active_per_run[run.id] = (
                                session.scalar(
                                    select(func.count()).where(
                                        ExperimentRow.run_id == run.id, ExperimentRow.phase.in_(list(ACTIVE))
                                    )
                                )
                                or 0
                            )
                        if active_per_run[run.id] >= run.max_parallel:
                            continue
                    if exp.cpu > free_cpu + 1e-9 or exp.gpu > free_gpu or exp.memory_mb > free_mem:
                        break  # strict order: the oldest waiting experiment goes first
                    free_cpu -= exp.cpu
                    free_gpu -= exp.gpu
                    free_mem -= exp.memory_mb
                    active_per_run[run.id] = active_per_run.get(run.id, 0) + 1
                    chosen.append((exp, run))
            if chosen:
                self._launch(executor, chosen)

    def _note_waiting(self, cluster_id: str, reason: str | None) -> bool:
        """Show why a cluster's queued experiments wait (its executor cannot launch now), and take the note
        back once they can start; True while they wait."""
        shown = self._waiting.get(cluster_id)
        if reason is None and shown is None:
            return False
        waiting = (ExperimentRow.cluster_id == cluster_id, ExperimentRow.phase == E.QUEUED.value)
        with self.sessions.begin() as session:
            if reason is None:
                back = update(ExperimentRow).where(*waiting, ExperimentRow.message == shown).values(message=None)
                session.execute(back)
                del self._waiting[cluster_id]
                return False
            self._waiting[cluster_id] = reason
            stale = (ExperimentRow.message.is_(None)) | (ExperimentRow.message != reason)
            if session.scalar(select(ExperimentRow.id).where(*waiting, stale).limit(1)) is not None:
                now = utcnow()
                for exp in session.scalars(select(ExperimentRow).where(*waiting, stale)):
                    exp.message, exp.updated_at = reason, now
                    add_event(session, exp, reason, now)
        return True

    def _launch(self, executor: Executor, chosen: list[tuple[ExperimentRow, RunRow]]) -> None:
        now = utcnow()
        claimed: list[tuple[ExperimentRow, RunRow]] = []
        with self.sessions.begin() as session:
            for exp, run in chosen:
                result = session.execute(
                    update(ExperimentRow)
                    .where(
                        ExperimentRow.id == exp.id,
                        ExperimentRow.phase == E.QUEUED.value,
                        ExperimentRow.desired_state.is_(None),
                    )
                    .values(phase=E.RUNNING.value, started_at=now, updated_at=now, message=None)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    self._hold(exp.cluster_id, exp.cpu, exp.gpu, exp.memory_mb, +1)
                    session.add(EventRow(experiment_id=exp.id, phase=E.RUNNING.value, message="started", timestamp=now))
                    claimed.append((exp, run))
            refresh_runs(session, {run.id for _, run in claimed})
        handles: dict[str, str] = {}
        for exp, run in claimed:
            self._watch(exp.id)
            try:
                handles[exp.id] = executor.launch(self._launch_spec(exp, run))
            except LaunchError as exc:
                self.report(Outcome(exp.id, None, str(exc), not_started=True))
        if handles:
            with self.sessions.begin() as session:
                for exp_id, handle in handles.items():
                    session.execute(update(ExperimentRow).where(ExperimentRow.id == exp_id).values(handle=handle))

    def _launch_spec(self, exp: ExperimentRow, run: RunRow) -> LaunchSpec:
        env = dict(self._base_env)
        env.update(run.spec.get("env") or {})
        env.update(
            {
                "GRID_EXPERIMENT_ID": exp.id,
                "GRID_EXPERIMENT_NAME": exp.name,
                "GRID_RUN_ID": run.id,
                "GRID_RUN_NAME": run.name,
                "GRID_USER_ID": exp.user_id,
                "GRID_CLUSTER_ID": exp.cluster_id,
                "GRID_INSTANCE_TYPE": exp.instance_type,
            }
        )
        actions = run.spec.get("actions") or {}
        for key, variable in (
            ("onExperimentStart", "GRID_ACTIONS_ON_EXPERIMENT_START"),
            ("onExperimentEnd", "GRID_ACTIONS_ON_EXPERIMENT_END"),
            ("onBuildStart", "GRID_ACTIONS_ON_BUILD_START"),
            ("onBuild", "GRID_ACTIONS_ON_BUILD"),
            ("onBuildEnd", "GRID_ACTIONS_ON_BUILD_END"),
        ):
            if actions.get(key):
                env[variable] = json.dumps(actions[key])
        datastores = run.spec.get("datastores") or []
        mount = datastores[0] if datastores else {}
        if mount.get("id"):
            env["GRID_DATASTORE_ID"] = mount["id"]
            env["GRID_DATASTORE_MOUNT"] = mount.get("mountPath") or ""
            env["GRID_DATASTORE_NAME"] = f"{mount.get('name', mount['id'])}:{mount.get('version', '?')}"
        image = run.spec.get("image") or {}
        dependency = (image.get("dependencyFileInfo") or {}).get("path")
        if dependency:  # the runner builds (or finds) its environment: runner/environment.py
            env["GRID_DEPENDENCY_FILE"] = dependency
        if image.get("framework"):
            env["GRID_FRAMEWORK"] = image["framework"]
        scratch = run.spec.get("scratch") or []
        if scratch and scratch[0].get("mountPath"):
            env["GRID_SCRATCH_MOUNT"] = scratch[0]["mountPath"]
        if run.spec.get("metricsPattern"):
            env["GRID_METRICS_PATTERN"] = run.spec["metricsPattern"]
        return LaunchSpec(
            experiment_id=exp.id,
            experiment_name=exp.name,
            run_id=run.id,
            run_name=run.name,
            user_id=exp.user_id,
            cluster_id=exp.cluster_id,
            instance_type=exp.instance_type,
            argv=tuple(exp.command),
            env=env,
            cpu=exp.cpu,
            gpu=exp.gpu,
            memory_mb=exp.memory_mb,
            source=self._source_of(run),
            relative_work_dir=run.spec.get("relativeWorkDir") or None,
            datastore_id=mount.get("id") or None,
            previous_handle=exp.handle,
            runner_url=self.public_url,
            runner_token=self.runner_token(exp.id) if self.runner_token is not None else None,
            heartbeat_seconds=self.config.heartbeat_seconds(),
        )

    def _source_of(self, run: RunRow) -> SourceSpec | None:
        """The run's uploaded snapshot, or its git repository at the commit resolved when it was created."""
        if run.source_state == "ready":
            return SourceSpec(kind="snapshot", key=f"snapshot-{run.id}", archive=self.source_path(run.id))
        commit = run.spec.get("sourceCommit")
        if run.source_state == "git" and commit:
            url, ref = split_ref(run.spec.get("sourceCode") or "")
            return SourceSpec(kind="git", key=cache_key(url, commit), git_url=url, git_ref=ref, git_commit=commit)
        return None
