"""The ``local`` executor: each experiment is a process group on this machine.

The command runs under the runner's supervisor (``grid_ops/runner``), which writes its output to a log
file and its exit code to a file next to it, so experiments keep running and logging if the control
plane dies, and a control plane that restarts still learns how an experiment that outlived it ended.
Datastore versions are kept once per machine in ``datastore-cache/<version id>/``, shared read-only by
the experiments that mount them; dependency environments in ``env-cache/`` (``runner/environment.py``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from grid_ops.runner.datastore import drop as drop_cached_version
from grid_ops.server.executors.base import (
    EXIT_FILE,
    LOG_FILE,
    Executor,
    ExitCallback,
    LaunchError,
    LaunchSpec,
    Outcome,
    RunnerDirs,
    runner_env,
)
from grid_ops.server.executors.spare import Spares
from grid_ops.server.log_files import read_slice

_POLL_SECONDS = 0.5


def describe_exit(code: int | None) -> str:
    """A person's reading of an exit status: code, or the signal that ended it."""
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    if code > 128 and code - 128 < 65:
        try:
            return f"exited with code {code} ({signal.Signals(code - 128).name})"
        except ValueError:
            pass
    return f"exited with code {code}"


def _proc_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (to tell a recycled pid from ours), or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return fields[19]


class LocalExecutor(Executor):
    """Runs experiments as child process groups under ``state_dir/experiments/<id>/``."""

    def __init__(
        self,
        on_exit: ExitCallback,
        state_dir: Path,
        gpus: int = 0,
        datastore_cache: Path | None = None,
        env_cache: Path | None = None,
        source_cache: Path | None = None,
        local_files: bool = True,
        datastore_cache_max_bytes: int = 0,
    ) -> None:
        super().__init__(on_exit)
        self.root = state_dir / "experiments"
        self.root.mkdir(parents=True, exist_ok=True)
        self.datastore_cache = datastore_cache or state_dir / "datastore-cache"
        self.env_cache = env_cache or state_dir / "env-cache"
        # uv builds environments 8-15x faster than pip: the runner uses it when the executor hands it one
        self.uv = shutil.which("uv") or shutil.which("uv", path=os.path.dirname(sys.executable))
        self.source_cache = source_cache or state_dir / "source-cache"
        # False: runners download sources over HTTP as on a node without the control plane's files
        self.local_files = local_files
        self.datastore_cache_max_bytes = datastore_cache_max_bytes  # 0: no limit
        self._lock = threading.Lock()
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._pgids: dict[str, int] = {}
        self._free_gpus = list(range(gpus))
        self._gpu_of: dict[str, list[int]] = {}
        self._stopping: set[str] = set()
        self.spares = Spares(self.root)

    # ------------------------------------------------------------------ paths

    def exp_dir(self, experiment_id: str) -> Path:
        return self.root / experiment_id

    def log_path(self, experiment_id: str) -> Path:
        return self.exp_dir(experiment_id) / LOG_FILE

    def _exit_file(self, experiment_id: str) -> Path:
        return self.exp_dir(experiment_id) / EXIT_FILE

    def runner_dirs(self, experiment_id: str) -> RunnerDirs:
        return RunnerDirs(
            experiment_dir=str(self.exp_dir(experiment_id)),
            source_cache=str(self.source_cache),
            datastore_cache=str(self.datastore_cache),
            env_cache=str(self.env_cache),
            uv=self.uv,
            datastore_cache_max_bytes=self.datastore_cache_max_bytes,
        )

    # ------------------------------------------------------------------ launch

    def launch(self, spec: LaunchSpec) -> str:
        base = self.exp_dir(spec.experiment_id)
        (base / "artifacts").mkdir(parents=True, exist_ok=True)
        (base / "scratch").mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self._exit_file(spec.experiment_id).unlink()
        # The runner makes the experiment's copy of the source (reading the snapshot straight from the
        # control plane's files when it may) and checks the command once it is there.
        env = runner_env(spec, self.runner_dirs(spec.experiment_id), local_files=self.local_files)
        gpus: list[int] = []
        with self._lock:
            if spec.gpu:
                if len(self._free_gpus) < spec.gpu:
                    raise LaunchError(f"needs {spec.gpu} GPU(s) but only {len(self._free_gpus)} are free")
                gpus, self._free_gpus = self._free_gpus[: spec.gpu], self._free_gpus[spec.gpu :]
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)
        try:
            proc = self.spares.take(list(spec.argv), env, base, self.log_path(spec.experiment_id))
        except LaunchError:
            self._release_gpus_list(gpus)
            raise
        with self._lock:
            self._procs[spec.experiment_id] = proc
            self._pgids[spec.experiment_id] = proc.pid
            if gpus:
                self._gpu_of[spec.experiment_id] = gpus
        threading.Thread(
            target=self._wait, args=(spec.experiment_id, proc), name=f"wait-{spec.experiment_id}", daemon=True
        ).start()
        start = _proc_start_time(proc.pid) or ""
        return f"{proc.pid}:{start}"

    def _release_gpus_list(self, gpus: list[int]) -> None:
        with self._lock:
            self._free_gpus.extend(gpus)
            self._free_gpus.sort()

    def _finish(self, experiment_id: str, code: int | None, message: str) -> None:
        # The experiment's copy of the source is only needed while it runs (a resumed one gets a new copy).
        shutil.rmtree(self.exp_dir(experiment_id) / "source", ignore_errors=True)
        with self._lock:
            self._procs.pop(experiment_id, None)
            self._pgids.pop(experiment_id, None)
            self._stopping.discard(experiment_id)
            gpus = self._gpu_of.pop(experiment_id, [])
        if gpus:
            self._release_gpus_list(gpus)
        self.on_exit(Outcome(experiment_id, code, message))

    def _wait(self, experiment_id: str, proc: subprocess.Popen[bytes]) -> None:
        code = proc.wait()
        # Kill anything the command left behind in its group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self._finish(experiment_id, code, self._read_exit_reason(experiment_id) or describe_exit(code))

    # ------------------------------------------------------------------ cancel

    def cancel(self, experiment_id: str, handle: str | None, grace_seconds: float) -> None:
        with self._lock:
            pgid = self._pgids.get(experiment_id)
            if pgid is None and handle:
                pgid = int(handle.split(":", 1)[0])
            if pgid is None or experiment_id in self._stopping:
                return
            self._stopping.add(experiment_id)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        timer = threading.Timer(grace_seconds, self._force_kill, args=(experiment_id, pgid))
        timer.daemon = True
        timer.start()

    def _force_kill(self, experiment_id: str, pgid: int) -> None:
        with self._lock:
            still = experiment_id in self._stopping
        if still:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)

    # ------------------------------------------------------------------ restart

    def _read_exit_file(self, experiment_id: str) -> int | None:
        try:
            return int(self._exit_file(experiment_id).read_text().split("\n", 1)[0].strip())
        except (OSError, ValueError):
            return None

    def _read_exit_reason(self, experiment_id: str) -> str | None:
        """The supervisor's word on why the experiment ended, when an action or the environment's build
        (not the command) decided it: everything after the status line."""
        try:
            text = self._exit_file(experiment_id).read_text()
        except OSError:
            return None
        return text.partition("\n")[2].strip() or None

    def adopt(self, experiment_id: str, handle: str | None) -> None:
        pid, _, start = (handle or "").partition(":")
        alive = bool(pid) and _proc_start_time(int(pid)) == start and bool(start)
        if not alive:
            code = self._read_exit_file(experiment_id)
            if code is None:
                msg = "the experiment's process vanished while the control plane was down; exit status unknown"
            else:
                msg = (
                    self._read_exit_reason(experiment_id) or describe_exit(code)
                ) + " (while the control plane was down)"
            self.on_exit(Outcome(experiment_id, code, msg))
            return
        with self._lock:
            self._pgids[experiment_id] = int(pid)
        threading.Thread(target=self._watch_adopted, args=(experiment_id, int(pid), start), daemon=True).start()

    def _watch_adopted(self, experiment_id: str, pid: int, start: str) -> None:
        while _proc_start_time(pid) == start:
            time.sleep(_POLL_SECONDS)
        for _ in range(20):  # the wrapper writes the file as its last act
            code = self._read_exit_file(experiment_id)
            if code is not None:
                break
            time.sleep(0.05)
        self._finish(experiment_id, code, self._read_exit_reason(experiment_id) or describe_exit(code))

    # ------------------------------------------------------------------ logs and shutdown

    def read_log(self, experiment_id: str, offset: int, limit: int) -> tuple[bytes, int]:
        return read_slice(self.log_path(experiment_id), offset, limit)

    def drop_datastore(self, datastore_id: str) -> None:
        drop_cached_version(str(self.datastore_cache), datastore_id)

    def running(self) -> list[str]:
        with self._lock:
            return list(self._pgids)

    def shutdown(self, grace_seconds: float) -> list[str]:
        self.spares.close()
        ids = self.running()
        for exp_id in ids:
            self.cancel(exp_id, None, grace_seconds)
        deadline = time.monotonic() + grace_seconds + 2
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        return ids
