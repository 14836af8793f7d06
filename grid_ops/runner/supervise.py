"""Runs one experiment's command and looks after it until it ends.

The supervisor is the experiment's process-group leader. It tells the control plane every few seconds
that it is alive (``$GRID_HEARTBEAT_SECONDS``, from a thread of its own, whatever the command does),
makes the experiment's copy of the source (``runner/checkout.py``) and goes into it, builds or finds the
run's dependency environment (``runner/environment.py``), makes the run's datastore version available
(``runner/datastore.py``), starts the command with its output on a
pipe, copies that output to the experiment's log file, reads metrics from it (``name=value`` lines) and
from ``$GRID_METRICS_FILE`` (JSON lines), reports them to the control plane over HTTP, uploads the files
left in ``$GRID_ARTIFACTS_DIR`` when the command ends (also after a failure), and writes the exit status
to ``$GRID_OPS_EXIT_FILE`` so a control plane that restarted meanwhile still learns it.

It is started as ``python -I -S <this folder>/__main__.py -- COMMAND...`` and imports nothing but the
standard library (and the modules of this tree it needs, loaded by path), so it adds milliseconds, not the cost of
importing the package, to every experiment.
"""

from __future__ import annotations

import _signal as signal  # the C module: ``signal`` would load ``enum`` (5 ms a start)
import os
import select
import sys
import time

# Type names for annotations only (they are strings at run time): importing ``typing`` would cost
# the supervisor more than everything else it loads. Type checkers take this branch.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

_CHUNK = 64 * 1024
_FLUSH_SECONDS = 1.0


def load_module_file(relpath: str) -> ModuleType:
    """A module of the ``grid_ops`` tree (``metrics.py``, ``runner/report.py``) imported on its own, by
    adding its folder to ``sys.path``: the package itself, and what it imports, stay out of the supervisor."""
    folder, _, filename = relpath.rpartition("/")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, folder) if folder else root
    if path not in sys.path:
        sys.path.insert(0, path)
    return __import__(filename.removesuffix(".py"))


def _spawn(argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> tuple[int, int]:
    """Fork and exec ``argv`` (with ``env`` and in ``cwd`` if given) with stdout and stderr on a new pipe;
    return (pid, read end)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: become the command
        try:
            os.close(r)
            os.dup2(w, 1)
            os.dup2(w, 2)
            os.close(w)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            if cwd is not None:
                os.chdir(cwd)
            if env is None:
                os.execvp(argv[0], argv)
            else:
                os.execvpe(argv[0], argv, env)
        except OSError as exc:
            os.write(2, f"grid-ops: cannot run {argv[0]!r}: {exc.strerror}\n".encode())
        os._exit(127)
    os.close(w)
    return pid, r


class MetricsFile:
    """Follows ``$GRID_METRICS_FILE`` as the command appends JSON lines to it."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""

    def new_lines(self) -> list[str]:
        if not self.path:
            return []
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        return [line.decode("utf-8", "replace") for line in lines]


class Supervisor:
    """One experiment's command, its log, its metrics and its artifacts."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv = argv
        self.env = env
        self.log_fd = os.open(env["GRID_OPS_LOG_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.reporter: Any = None
        self.metrics: ModuleType | None = None
        self.pattern: Any = None
        self.metrics_file = MetricsFile(env.get("GRID_METRICS_FILE"))
        self.partial = b""
        self.seq = 0
        self.metrics_broken = False
        self.reason: str | None = None
        self.stopping = False  # SIGTERM or SIGINT arrived
        self.started: list[Any] = []  # what to do once the experiment's first process has started

    def note(self, text: str) -> None:
        """A line of our own in the experiment's log, marked as coming from grid-ops."""
        os.write(self.log_fd, f"[grid-ops] {text}\n".encode())

    def get_reporter(self) -> Any:
        """The experiment's channel to the control plane (``runner/report.py``), started on first use."""
        if self.reporter is None:
            self.reporter = load_module_file("runner/report.py").Reporter(self.env, self.note)
        return self.reporter

    def _metric_lines(self, lines: list[str], from_file: bool) -> None:
        """Record the metric points in ``lines``; a problem here is noted once and never stops the command."""
        if self.metrics_broken:
            return
        try:
            self._parse_metrics(lines, from_file)
        except Exception as exc:  # the experiment matters more than its metrics
            self.metrics_broken = True
            self.note(f"metrics are no longer read: {type(exc).__name__}: {exc}")

    def _parse_metrics(self, lines: list[str], from_file: bool) -> None:
        if self.metrics is None:
            import re

            self.metrics = load_module_file("metrics.py")
            self.pattern = re.compile(self.env.get("GRID_METRICS_PATTERN") or self.metrics.DEFAULT_METRICS_PATTERN)
        now = time.time()
        points = []
        for line in lines:
            if from_file:
                parsed = self.metrics.parse_metrics_file_line(line)
                found = [parsed] if parsed is not None else []
            else:
                found = [(name, value, None) for name, value in self.metrics.parse_metric_line(line, self.pattern)]
            for name, value, step in found:
                self.seq += 1
                points.append({"name": name, "value": value, "step": step, "timestamp": now, "seq": self.seq})
        if points:
            self.get_reporter().add(points)

    def output(self, data: bytes) -> None:
        """The command's output: into the log, and its metric lines to the control plane."""
        os.write(self.log_fd, data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        if len(self.partial) > _CHUNK:  # a very long line without a newline carries no metric
            self.partial = b""
        if lines and b"=" in data:
            self._metric_lines([line.decode("utf-8", "replace") for line in lines], from_file=False)

    def run(self) -> int:
        """Run the actions and the command; return the status the way ``subprocess`` does (-N for signal
        N). ``self.reason`` says why, when an action rather than the command decided the outcome."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            # The whole group gets the signal: let the command decide how to stop, and wait for it.
            signal.signal(sig, self._on_stop)
        for folder in ("GRID_ARTIFACTS_DIR", "GRID_SCRATCH_DIR"):  # made here on a node the executor cannot reach
            if self.env.get(folder):
                os.makedirs(self.env[folder], exist_ok=True)
        self._start_heartbeat()
        code = self._source()
        if code == 0:
            self._scratch_link()
            code = self._environment()
            code = code or self._datastore()
        if code == 0 and self.stopping:  # stopped while preparing: the command never starts
            self.reason = "stopped before the command started"
            self.note(self.reason)
            code = 128 + signal.SIGTERM
        starts = self._actions("GRID_ACTIONS_ON_EXPERIMENT_START") if code == 0 else []
        for action in starts:
            code = self.action("on_experiment_start", action)
            if code != 0:
                break
        if code == 0:
            code = self._command()
        for action in self._actions("GRID_ACTIONS_ON_EXPERIMENT_END"):  # also after a failure
            end = self.action("on_experiment_end", action)
            if end != 0 and code == 0:
                code = end
        self._finish()
        return code

    def _on_stop(self, _signum: int, _frame: object) -> None:
        self.stopping = True

    def _start_heartbeat(self) -> None:
        """Heartbeats from a thread of their own (``_thread``: ``threading`` costs the supervisor a few
        ms), so that a command busy without output still counts as alive. Nothing is imported for them
        until the first one is due."""
        seconds = float(self.env.get("GRID_HEARTBEAT_SECONDS") or 0)
        if seconds > 0 and self.env.get("GRID_RUNNER_URL") and self.env.get("GRID_RUNNER_TOKEN"):
            import _thread

            _thread.start_new_thread(self._heartbeats, (seconds,))

    def _heartbeats(self, seconds: float) -> None:
        time.sleep(seconds)
        try:
            load_module_file("runner/report.py").heartbeats(self.env, seconds, self.note)
        except Exception as exc:  # the experiment matters more than its heartbeats
            self.note(f"heartbeats stopped: {type(exc).__name__}: {exc}")

    def _source(self) -> int:
        """Make the experiment's copy of the source and go into it; 0, or 1 with ``self.reason`` set."""
        work = self.env.get("GRID_WORK_DIR")
        if not work:
            return 0
        if not self.env.get("GRID_SOURCE") and not self.env.get("GRID_RELATIVE_WORK_DIR"):
            try:  # no source: an empty folder, without loading what copying a source needs
                os.mkdir(work)
                os.chdir(work)
                return 0
            except OSError:
                pass  # a folder left by an earlier attempt: checkout.py replaces it
        try:
            os.chdir(load_module_file("runner/checkout.py").prepare(self.env, self.note))
        except Exception as exc:
            self.reason = f"the source could not be prepared: {exc}"
            self.note(self.reason)
            return 1
        return 0

    def _command(self) -> int:
        """Run the command once it is known to exist (127, with ``self.reason`` set, when it does not)."""
        argv, problem = resolve_command(expand_vars(self.argv, self.env), self.env.get("PATH") or os.defpath)
        if problem is not None:
            self.reason = problem
            self.note(f"the experiment could not start: {problem}")
            return 127
        return self.run_process(argv)

    def _actions(self, variable: str) -> list[str]:
        import json

        return [str(a) for a in json.loads(self.env.get(variable) or "[]") if str(a).strip()]

    def action(self, kind: str, command: str, log: Any = None, env: dict[str, str] | None = None) -> int:
        """One action, run by the shell (so ``${VAR}`` takes the experiment's environment, or ``env``), into
        the experiment's log or ``log`` (an object with ``note`` and ``output``, such as the build log)."""
        log = log or self
        log.note(f"{kind}: {command}")
        code = self.run_process(["/bin/sh", "-c", command], log.output, env)
        if code != 0:
            failure = f"{kind} action {command!r} failed ({describe(code)})"
            log.note(failure)
            self.reason = self.reason or failure
        return code

    def after_start(self, work: Any) -> None:
        """Do ``work`` (a callable) right after the experiment's first process (action or command) has
        started, rather than on the way to starting it."""
        self.started.append(work)

    def _after_start(self) -> None:
        while self.started:
            try:
                self.started.pop(0)()
            except Exception as exc:  # reporting must never stop the experiment
                self.note(f"reporting failed: {type(exc).__name__}: {exc}")

    def _environment(self) -> int:
        """Build or find the run's dependency environment and check the framework's tools
        (``runner/environment.py``, loaded only when the run asks for either); 0, or 1 with ``self.reason``."""
        framework = self.env.get("GRID_FRAMEWORK") or ""
        if not self.env.get("GRID_DEPENDENCY_FILE") and not framework.startswith("julia"):
            return 0
        environment = load_module_file("runner/environment.py")
        try:
            updates = environment.prepare(self, self.env)
        except environment.BuildFailed as exc:
            self.reason = str(exc)
            self.note(self.reason)
            return 1
        except Exception as exc:  # a machine problem (a full disk, say): fail this experiment, saying so
            self.reason = f"the environment could not be prepared: {type(exc).__name__}: {exc}"
            self.note(self.reason)
            return 1
        self.env.update(updates)
        os.environ.update(updates)  # what the actions and the command start with
        return 0

    def _scratch_link(self) -> None:
        """Make the scratch folder reachable at the run's ``mount_path`` where that can be done safely."""
        mount, scratch = self.env.get("GRID_SCRATCH_MOUNT"), self.env.get("GRID_SCRATCH_DIR")
        if mount and scratch:
            self._link_at(mount, scratch, "scratch space", "GRID_SCRATCH_DIR")

    def _datastore(self) -> int:
        """Make the run's datastore version available read-only at ``$GRID_DATASTORE_DIR`` (and its mount
        path); 0, or 1 with ``self.reason`` set when it cannot be."""
        if not self.env.get("GRID_DATASTORE_ID"):
            return 0
        label = self.env.get("GRID_DATASTORE_NAME") or self.env["GRID_DATASTORE_ID"]
        try:
            folder = load_module_file("runner/datastore.py").make_available(self.env, self.note)
        except Exception as exc:
            self.reason = f"datastore {label} could not be made available: {exc}"
            self.note(self.reason)
            return 1
        mount = self.env.get("GRID_DATASTORE_MOUNT")
        if mount:
            self._link_at(mount, folder, f"datastore {label}", "GRID_DATASTORE_DIR")
        return 0

    def _link_at(self, mount: str, target: str, what: str, variable: str) -> None:
        """Link ``target`` at ``mount`` when it is relative to the working directory; an absolute mount path
        is only noted: other experiments on this machine would share it."""
        if os.path.isabs(mount):
            self.note(
                f"{what} is at ${variable} ({target}); this executor does not link it at the "
                f"absolute path {mount}, which other experiments on this machine would share"
            )
            return
        link = os.path.join(os.getcwd(), mount)
        if os.path.lexists(link):
            self.note(f"{what} is at ${variable}; {mount} already exists in the source, not linked")
            return
        os.makedirs(os.path.dirname(link) or ".", exist_ok=True)
        os.symlink(target, link)

    def run_process(
        self,
        argv: list[str],
        output: Any = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> int:
        """Run ``argv`` to its end with its output going to ``output`` (default: the experiment's log and
        metrics); its status as ``subprocess`` gives it."""
        write = output or self.output
        pid, out = _spawn(argv, env, cwd)
        if output is None:
            self._after_start()
        last_file_check = time.monotonic()
        while True:
            try:
                ready, _, _ = select.select([out], [], [], _FLUSH_SECONDS)
            except InterruptedError:
                continue
            if ready:
                data = os.read(out, _CHUNK)
                if not data:
                    break
                write(data)
            now = time.monotonic()
            if now - last_file_check >= _FLUSH_SECONDS:
                last_file_check = now
                if self.metrics_file.path:
                    self._metric_lines(self.metrics_file.new_lines(), from_file=True)
                if self.reporter is not None:
                    self.reporter.flush_soon()
        os.close(out)
        if output is None and self.partial:
            self.output(b"\n")
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        return os.waitstatus_to_exitcode(status)

    def _finish(self) -> None:
        """Report what is left and upload the artifacts; a failure here is noted, never raised."""
        self._after_start()  # when nothing started (a datastore that failed, say)
        try:
            self._report_rest()
        except Exception as exc:
            self.note(f"reporting failed: {type(exc).__name__}: {exc}")

    def _report_rest(self) -> None:
        if self.metrics_file.path and os.path.exists(self.metrics_file.path):
            self._metric_lines(self.metrics_file.new_lines(), from_file=True)
        artifacts = self.env.get("GRID_ARTIFACTS_DIR")
        has_artifacts = artifacts is not None and any(files for _, _, files in os.walk(artifacts))
        if self.reporter is None and not has_artifacts:
            return
        reporter = self.get_reporter()
        reporter.close()
        if has_artifacts and artifacts:
            reporter.upload_artifacts(artifacts)


def expand_vars(argv: list[str], env: dict[str, str]) -> list[str]:
    """``$NAME`` and ``${NAME}`` in the command's arguments replaced by the experiment's variables, as a
    shell would (``--data-dir $GRID_DATASTORE_DIR``); a name the environment does not define stays as
    written, and ``$$`` is a literal ``$``. The command itself runs without a shell."""
    if not any("$" in arg for arg in argv):
        return argv
    import re

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    pattern = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)|\$\$")
    return [pattern.sub(value, arg) for arg in argv]


def resolve_command(argv: list[str], path: str) -> tuple[list[str], str | None]:
    """The command as it will run, or why it cannot (in the working directory, with ``PATH``).

    ``train.py --lr 1`` runs as ``python train.py --lr 1``, as with the Grid CLI: a Python script of the
    source needs no executable bit or shebang. Any other command runs as written."""
    prog = argv[0]
    if prog.endswith(".py") and os.path.isfile(prog) and not os.access(prog, os.X_OK):
        return ["python", *argv], None
    if "/" in prog:
        if not os.path.exists(prog):
            return argv, f"command not found: {prog!r} does not exist in the working directory"
        if not os.access(prog, os.X_OK) or os.path.isdir(prog):
            return argv, f"command {prog!r} is not executable (chmod +x it, or run it with its interpreter)"
        return argv, None
    for folder in path.split(os.pathsep):
        candidate = os.path.join(folder or ".", prog)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return argv, None
    return argv, f"command not found: {prog!r} is not on PATH"


def describe(code: int) -> str:
    """``exited with code N`` or ``killed by signal N``."""
    return f"killed by signal {-code}" if code < 0 else f"exited with code {code}"


def exit_like(code: int) -> None:
    """Leave with the command's status: the same exit code, or killed by the same signal.

    ``os._exit`` skips the interpreter's tear-down (milliseconds per experiment): everything worth
    keeping has been written and the reporter has finished by now."""
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib costs the supervisor 4 ms to import
            stream.flush()
        except Exception:
            pass
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        time.sleep(1)
    os._exit(code if 0 <= code < 256 else 1)


def main_spare() -> None:
    """Wait for one job on standard input, take on its environment, folder and log, and run it."""
    import json  # loaded while waiting (it brings ``re``, which metrics need too), not after the job came

    line = sys.stdin.readline()
    if not line.strip():
        sys.exit(0)  # the executor let this spare go unused

    job = json.loads(line)
    os.chdir(job["cwd"])
    os.environ.clear()
    os.environ.update(job["env"])
    fd = os.open(job["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    main(["--", *job["argv"]])


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        sys.stderr.write("usage: python -m grid_ops.runner -- COMMAND [ARGS...]\n")
        sys.exit(2)
    env = dict(os.environ)
    supervisor = Supervisor(argv, env)
    code = supervisor.run()
    exit_file = env.get("GRID_OPS_EXIT_FILE")
    if exit_file:  # the status, and on a second line why, when an action decided it
        tmp = exit_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{code}\n{supervisor.reason or ''}\n")
        os.replace(tmp, exit_file)
    elif supervisor.reason:  # no exit file (a Ray job): the executor reads why from the log's end
        supervisor.note(f"experiment ended: {supervisor.reason}")
    node_dir = env.get("GRID_OPS_NODE_EXPERIMENT_DIR")
    if node_dir:  # the experiment's folder on a node of a remote cluster: its artifacts are uploaded by now
        import shutil

        shutil.rmtree(node_dir, ignore_errors=True)
    exit_like(code)
