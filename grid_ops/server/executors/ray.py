"""The ``ray`` executor: each experiment is one Ray job on a Ray cluster, submitted through its job API.

The job's entrypoint is our runner (``python -m grid_ops.runner -- COMMAND``, grid-ops installed on the
workers), its ``submission_id`` the experiment id, so that Ray itself refuses a second submission of the
same launch; its CPUs, GPUs, memory and custom resources are the instance type's. Submissions, status
polls, stops and the cluster's resources all go over HTTP from background threads: the scheduler and the
API never wait for Ray. Experiments queue in our control plane (the scheduler admits them by the
resources the Ray cluster reports), and while the cluster cannot be reached they stay queued with a
message that says so. A finished job's log is kept under the state directory, so it outlives the Ray
cluster.
"""

from __future__ import annotations

import contextlib
import math
import queue
import shlex
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grid_ops.server.config import Capacity, ClusterConfig
from grid_ops.server.executors.base import Executor, ExitCallback, LaunchSpec, Outcome, RunnerDirs, runner_env
from grid_ops.server.executors.local import describe_exit
from grid_ops.server.executors.ray_jobs import AlreadySubmitted, RayJobs, RayRefused, RayUnreachable, short
from grid_ops.server.scheduler import experiment_base_env

_CAPACITY_SECONDS = 5.0  # how often the cluster's resources are read while it answers
_RETRY_SECONDS = 2.0  # ... and while it does not
_LIST_ABOVE = 50  # above this many running jobs one list_jobs replaces a status request per job
_SUBMITTERS = 2
_MIB = 1024 * 1024
REASON_MARK = "[grid-ops] experiment ended: "
"""The runner's last log line when an action, not the command, decided the outcome (runner/supervise.py)."""


def submission_id(experiment_id: str, previous_handle: str | None) -> str:
    """The experiment id for its first launch; ``<id>.2``, ``<id>.3`` … when it runs again (resumed after
    a pause, or requeued): Ray never accepts a submission id twice."""
    if not previous_handle:
        return experiment_id
    base, dot, n = previous_handle.rpartition(".")
    return f"{experiment_id}.{int(n) + 1}" if dot and base == experiment_id and n.isdigit() else f"{experiment_id}.2"


def ended_reason(log: str) -> str | None:
    """Why the runner says the experiment ended, when an action decided it (the last such line of the log)."""
    at = log.rfind(REASON_MARK)
    if at < 0:
        return None
    return log[at + len(REASON_MARK) :].split("\n", 1)[0].strip() or None


@dataclass
class _Job:
    """One experiment's Ray job as the executor follows it."""

    submission_id: str
    spec: LaunchSpec | None  # still to be submitted
    submitted: bool = False  # Ray has it, or may have it (adopted, or an answer lost)
    unsure: bool = False  # whether Ray got it is unknown: if Ray does not know it, it never started
    adopted: bool = False  # taken over after a restart
    stop_asked: bool = False
    stop_sent: bool = False


class RayExecutor(Executor):
    """Runs a cluster's experiments as jobs of the Ray cluster at ``cluster.address``."""

    def __init__(self, on_exit: ExitCallback, cluster: ClusterConfig, state_dir: Path, grace_seconds: float) -> None:
        super().__init__(on_exit)
        assert cluster.address is not None
        self.cluster = cluster
        self.api = RayJobs(cluster.address)
        options = cluster.options
        self.python = str(options.get("python", "python"))
        self.node_dir = str(options.get("node_dir", "/tmp/grid-ops")).rstrip("/")
        self.control_plane_url: str | None = options.get("control_plane_url")
        self.poll_seconds = float(options.get("poll_seconds", 0.25))
        self.stop_wait = str(max(1, math.ceil(grace_seconds)))
        self.logs_dir = state_dir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self._base_env = experiment_base_env()
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._submits: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._capacity: Capacity | None = None
        self._unreachable: str | None = None
        self._next_capacity = 0.0
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._threads = [threading.Thread(target=self._poll_loop, name=f"ray-poll-{cluster.id}", daemon=True)]
        self._threads += [
            threading.Thread(target=self._submit_loop, name=f"ray-submit-{cluster.id}", daemon=True)
            for _ in range(_SUBMITTERS)
        ]
        for thread in self._threads:
            thread.start()

    # ------------------------------------------------------------------ what the scheduler reads

    def capacity(self) -> Capacity | None:
        if not self.cluster.capacity_from_executor:
            return None
        return self._capacity or Capacity(cpu=0.0, gpu=0, memory_mb=0)  # nothing runs before Ray answered

    def waiting_reason(self) -> str | None:
        reason = self._unreachable
        if reason is None:
            return None
        return (
            f"waiting for the Ray cluster at {self.api.address}, which cannot be reached ({reason}); "
            "the experiment stays queued and starts when the cluster is back"
        )

    def _set_unreachable(self, reason: str) -> None:
        self._unreachable = reason
        self._next_capacity = min(self._next_capacity, time.monotonic() + _RETRY_SECONDS)

    # ------------------------------------------------------------------ launch

    def launch(self, spec: LaunchSpec) -> str:
        sid = submission_id(spec.experiment_id, spec.previous_handle)
        with self._lock:
            self._jobs[spec.experiment_id] = _Job(sid, spec)
        self._submits.put(spec.experiment_id)
        return sid

    def _runner_env(self, spec: LaunchSpec, sid: str) -> dict[str, str]:
        """The job's environment: the runner's (``runner_env``) without the control plane's own variables,
        with the experiment's files in ``node_dir`` on the Ray node, and its log in the job's log."""
        node = f"{self.node_dir}/experiments/{sid}"
        dirs = RunnerDirs(node, f"{self.node_dir}/source-cache", f"{self.node_dir}/datastore-cache")
        env = runner_env(spec, dirs, local_files=False)  # no shared file system: sources come over HTTP
        env = {k: v for k, v in env.items() if k.startswith("GRID_") or self._base_env.get(k) != v}
        env.setdefault("PYTHONUNBUFFERED", "1")
        env["GRID_OPS_NODE_EXPERIMENT_DIR"] = node  # removed by the runner when the experiment ends
        env["GRID_OPS_LOG_FILE"] = "/dev/stdout"  # the job's log, which Ray keeps
        env.pop("GRID_OPS_EXIT_FILE", None)  # Ray keeps the exit code
        if self.control_plane_url and "GRID_RUNNER_URL" in env:
            env["GRID_RUNNER_URL"] = self.control_plane_url
        env["RAY_JOB_STOP_WAIT_TIME_S"] = self.stop_wait  # SIGTERM, then SIGKILL after the cancel grace
        return env

    def submission(self, spec: LaunchSpec, sid: str) -> dict[str, Any]:
        """The arguments of ``JobSubmissionClient.submit_job`` for this launch."""
        argv = list(spec.argv)  # the runner resolves it in the source (``train.py`` runs with python)
        instance_type = self.cluster.instance_type(spec.instance_type)
        resources = dict(instance_type.resources) if instance_type is not None else {}
        return {
            "entrypoint": "exec " + shlex.join([self.python, "-m", "grid_ops.runner", "--", *argv]),
            "submission_id": sid,
            "runtime_env": {"env_vars": self._runner_env(spec, sid)},
            "metadata": {
                "grid_run": spec.run_name,
                "grid_run_id": spec.run_id,
                "grid_experiment": spec.experiment_name,
                "grid_experiment_id": spec.experiment_id,
                "grid_user_id": spec.user_id,
                "grid_cluster_id": spec.cluster_id,
                "grid_instance_type": spec.instance_type,
            },
            "entrypoint_num_cpus": spec.cpu,
            "entrypoint_num_gpus": spec.gpu or None,
            "entrypoint_memory": spec.memory_mb * _MIB or None,
            "entrypoint_resources": resources or None,
        }

    def _submit_loop(self) -> None:
        while True:
            exp_id = self._submits.get()
            if exp_id is None:
                return
            try:
                self._submit(exp_id)
            except Exception as exc:  # keep submitting the others whatever one hit
                self._end(exp_id, Outcome(exp_id, None, f"could not submit the Ray job: {exc}", not_started=True))

    def _submit(self, exp_id: str) -> None:
        with self._lock:
            job = self._jobs.get(exp_id)
            spec = job.spec if job is not None else None
        if job is None or spec is None:
            return
        if job.stop_asked:
            self._end(exp_id, Outcome(exp_id, None, "stopped before it was submitted to Ray", not_started=True))
            return
        try:
            self.api.submit(**self.submission(spec, job.submission_id))
        except AlreadySubmitted:
            pass  # an earlier submission of this launch reached Ray: follow that job, never start a second
        except RayUnreachable as exc:
            self._set_unreachable(str(exc))
            if not exc.sent:  # surely never reached Ray: back to the queue
                self._end(exp_id, Outcome(exp_id, None, self.waiting_reason() or str(exc), retry=True))
                return
            job.unsure = True  # the poller asks Ray whether it arrived once Ray answers again
        except RayRefused as exc:
            self._end(exp_id, Outcome(exp_id, None, f"the Ray cluster refused the job: {exc}", not_started=True))
            return
        with self._lock:
            job.spec, job.submitted = None, True
        if job.stop_asked:
            self._wake.set()

    def _end(self, exp_id: str, outcome: Outcome) -> None:
        with self._lock:
            self._jobs.pop(exp_id, None)
        self.on_exit(outcome)

    # ------------------------------------------------------------------ the poller

    def _poll_loop(self) -> None:
        while not self._closed.is_set():
            try:
                if time.monotonic() >= self._next_capacity:
                    self._refresh_capacity()
                if self._unreachable is None:
                    self._send_stops()
                    self._poll_jobs()
            except RayUnreachable as exc:
                self._set_unreachable(str(exc))
            except Exception as exc:  # a surprise from Ray: say so where people look, and go on
                self._set_unreachable(f"unexpected answer: {short(str(exc))}")
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def _refresh_capacity(self) -> None:
        try:
            self._capacity, _ = self.api.capacity()
        except RayUnreachable as exc:
            self._unreachable = str(exc)
            self._next_capacity = time.monotonic() + _RETRY_SECONDS
            return
        self._unreachable = None
        self._next_capacity = time.monotonic() + _CAPACITY_SECONDS

    def _send_stops(self) -> None:
        with self._lock:
            stops = [job for job in self._jobs.values() if job.stop_asked and job.submitted and not job.stop_sent]
        for job in stops:
            self.api.stop(job.submission_id)
            job.stop_sent = True

    def _poll_jobs(self) -> None:
        with self._lock:
            watched = [(exp_id, job) for exp_id, job in self._jobs.items() if job.submitted]
        if not watched:
            return
        if len(watched) > _LIST_ABOVE:
            known = {d.submission_id: d for d in self.api.list()}
            details = [known.get(job.submission_id) for _, job in watched]
        else:
            details = [self.api.info(job.submission_id) for _, job in watched]
        for (exp_id, job), info in zip(watched, details, strict=True):
            if info is None:
                self._never_arrived(exp_id, job)
            elif info.status.is_terminal():
                self._ended(exp_id, job, info)
            elif job.unsure:
                job.unsure = False  # it did arrive

    def _never_arrived(self, exp_id: str, job: _Job) -> None:
        """Ray does not know the job: it never arrived (its answer was lost, or the control plane stopped
        before submitting it), or the Ray cluster was replaced since (its jobs go with it)."""
        if job.unsure:
            message = (
                f"requeued: its Ray job {job.submission_id} never reached the Ray cluster at {self.api.address}"
            )
            self._end(exp_id, Outcome(exp_id, None, message, retry=True))
            return
        message = (
            f"its Ray job {job.submission_id} is unknown to the Ray cluster at {self.api.address} "
            "(was the cluster restarted?); exit status unknown"
        )
        self._save_log(exp_id, f"[grid-ops] {message}\n")
        self._end(exp_id, Outcome(exp_id, None, message))

    def _ended(self, exp_id: str, job: _Job, info: Any) -> None:
        if job.adopted:
            job.adopted = False
            later = submission_id(exp_id, job.submission_id)
            if self.api.info(later) is not None:  # relaunched just before the restart: follow that run
                job.submission_id = later
                return
        log = self.api.logs(job.submission_id) or ""
        self._save_log(exp_id, log)
        status = str(info.status)
        code: int | None = info.driver_exit_code
        if status == "STOPPED":
            code, message = None, f"Ray job {job.submission_id} stopped"
        elif code is None and status != "SUCCEEDED":
            message = f"the Ray job failed: {short(info.message or 'no reason given')}"
        else:
            code = 0 if code is None else code
            message = ended_reason(log) or describe_exit(code)
        self._end(exp_id, Outcome(exp_id, code, message))

    # ------------------------------------------------------------------ cancel, adopt

    def cancel(self, experiment_id: str, handle: str | None, grace_seconds: float) -> None:
        with self._lock:
            job = self._jobs.get(experiment_id)
            if job is None or job.stop_asked:
                return
            job.stop_asked = True
        self._wake.set()

    def adopt(self, experiment_id: str, handle: str | None) -> None:
        # Handles are stored right after launch returns, before the submission happens: a control plane
        # killed in between finds a job Ray may not know, which then goes back to the queue.
        sid = handle or submission_id(experiment_id, None)
        with self._lock:
            self._jobs[experiment_id] = _Job(sid, None, submitted=True, unsure=True, adopted=True)
        self._wake.set()

    # ------------------------------------------------------------------ logs

    def _log_path(self, experiment_id: str) -> Path:
        return self.logs_dir / f"{experiment_id}.log"

    def _save_log(self, experiment_id: str, text: str) -> None:
        """Keep an ended job's log (after the logs of the experiment's earlier runs, as on ``local``)."""
        with open(self._log_path(experiment_id), "ab") as f:
            f.write(text.encode())

    def read_log(self, experiment_id: str, offset: int, limit: int) -> tuple[bytes, int]:
        try:
            data = self._log_path(experiment_id).read_bytes()
        except FileNotFoundError:
            data = b""
        with self._lock:
            job = self._jobs.get(experiment_id)
            sid = job.submission_id if job is not None and job.submitted else None
        if sid is not None:
            with contextlib.suppress(RayUnreachable, RayRefused):
                data += (self.api.logs(sid) or "").encode()
        start = min(offset, len(data))
        return data[start : start + max(0, limit)], len(data)

    # ------------------------------------------------------------------ shutdown

    def running(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    def shutdown(self, grace_seconds: float) -> list[str]:
        ids = self.running()
        for exp_id in ids:
            self.cancel(exp_id, None, grace_seconds)
        deadline = time.monotonic() + grace_seconds + 10  # Ray's own stop takes a few seconds
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._closed.set()
        self._wake.set()
        for _ in range(_SUBMITTERS):
            self._submits.put(None)
        return ids
