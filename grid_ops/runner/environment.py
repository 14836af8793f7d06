"""Builds, or finds in the node's cache, the environment an experiment's dependency file asks for
(standard library only, loaded by the supervisor only when a run names a dependency file or julia).

A ``*.txt`` file is a pip requirements file: a clean Python virtual environment (none of the packages of
the Python that runs grid-ops, as in a container image built from the file) gets exactly those
requirements, with uv when the executor hands the runner one (``$GRID_UV``), else ``python -m venv`` and
pip. An ``environment.yml`` is built with conda, mamba or micromamba. The run's build actions run
around the install: ``on_build_start`` before it, ``on_build`` after it, ``on_build_end`` last.

The node keeps one environment per key, the SHA-256 of the file's content (and of the build actions)
with the Python version, in ``$GRID_ENV_CACHE``: ``<key>`` is a symlink to the finished build under
``builds/``, made by an atomic rename once everything succeeded, so a half-built environment is never
used (environments are not relocatable, so a build stays where it was made and the link moves). A lock
per key (``fcntl``) makes concurrent experiments wait for one build, then use it. A failed build leaves
``<key>.failed``: the other experiments of the same run fail with its message without building again;
a later run tries again.

While an experiment builds or waits, the control plane shows it ``image_building``; its build log
(``$GRID_OPS_BUILD_LOG_FILE``) is sent to the control plane apart from its log.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
import time

# Annotations only (strings at run time): ``typing``, ``contextlib`` and ``shutil`` would cost the
# supervisor more than the rest of this module when an environment is found ready in the cache.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_TAIL_LINES = 25
_TAIL_CHARS = 3000
_KEPT_LOG = 256 * 1024
_ACTIONS = (
    ("on_build_start", "GRID_ACTIONS_ON_BUILD_START"),
    ("on_build", "GRID_ACTIONS_ON_BUILD"),
    ("on_build_end", "GRID_ACTIONS_ON_BUILD_END"),
)
_CONDA_TOOLS = ("micromamba", "mamba", "conda")


class BuildFailed(Exception):
    """The experiment cannot have its environment; the message says why (with the build log's end)."""


# ---------------------------------------------------------------------- the build log


class BuildLog:
    """The experiment's build log: a file the reporter sends to the control plane as it grows."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o644)

    def note(self, text: str) -> None:
        """A line of our own, marked as coming from grid-ops."""
        self.output(f"[grid-ops] {text}\n".encode())

    def output(self, data: bytes) -> None:
        os.write(self.fd, data)

    def text(self) -> str:
        with open(self.path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def tail(self) -> str:
        """The last lines of the log, for a failed experiment's message."""
        lines = self.text().rstrip("\n").split("\n")[-_TAIL_LINES:]
        return "\n".join(lines)[-_TAIL_CHARS:]


# ---------------------------------------------------------------------- what to build


def which(program: str, path: str | None) -> str | None:
    """``program``'s executable on ``path`` (``shutil.which`` without importing what it imports)."""
    for folder in (path or "").split(os.pathsep):
        candidate = os.path.join(folder, program)
        if folder and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def source_file(root: str, relpath: str) -> str:
    """The dependency file's path inside the source at ``root``; BuildFailed if it points outside."""
    path = os.path.realpath(os.path.join(root, relpath))
    real_root = os.path.realpath(root)
    if os.path.commonpath([path, real_root]) != real_root:
        raise BuildFailed(f"the dependency file {relpath!r} is outside the source; give a path inside it")
    return path


def kind_of(relpath: str) -> str:
    """``venv`` for a requirements ``.txt``, ``conda`` for an ``environment.yml``; BuildFailed otherwise."""
    lowered = relpath.lower()
    if lowered.endswith(".txt"):
        return "venv"
    if lowered.endswith((".yml", ".yaml")):
        return "conda"
    raise BuildFailed(
        f"the dependency file {relpath!r} is neither a pip requirements file (*.txt) nor a conda "
        "environment file (environment.yml)"
    )


def build_actions(env: dict[str, str]) -> list[tuple[str, list[str]]]:
    """The run's build actions by kind, in the order they run."""
    return [(kind, [str(a) for a in json.loads(env.get(var) or "[]") if str(a).strip()]) for kind, var in _ACTIONS]


def python_version() -> str:
    return ".".join(str(part) for part in sys.version_info[:3])


def env_key(kind: str, content: bytes, actions: list[tuple[str, list[str]]]) -> str:
    """The cache key: the SHA-256 of the file's content and the build actions, with the Python version
    (a conda environment brings its own Python, so its key names the tool instead)."""
    digest = hashlib.sha256(content)
    if any(commands for _, commands in actions):
        digest.update(json.dumps(actions).encode())
    label = f"py{python_version()}" if kind == "venv" else "conda"
    return f"{kind}-{label}-{digest.hexdigest()}"


def activation(folder: str, kind: str, env: dict[str, str]) -> dict[str, str]:
    """The variables that put the environment at ``folder`` first: its ``bin`` on PATH, and
    ``VIRTUAL_ENV`` (or ``CONDA_PREFIX``), as activating it would."""
    out = {"PATH": os.path.join(folder, "bin") + os.pathsep + env.get("PATH", os.defpath)}
    out["VIRTUAL_ENV" if kind == "venv" else "CONDA_PREFIX"] = folder
    return out


# ---------------------------------------------------------------------- the node's cache


def ready(link: str) -> str | None:
    """The finished environment a key's link points at, if there is one."""
    target = os.path.realpath(link)
    if os.path.islink(link) and os.path.isfile(os.path.join(target, "grid-env.json")):
        return target
    return None


class Locked:
    """``with Locked(cache, key, waiting):`` holds the key's lock (released by the kernel if this process
    dies); ``waiting`` is called first when another process holds it."""

    def __init__(self, cache: str, key: str, waiting: Callable[[], None]) -> None:
        self.path = os.path.join(cache, f"{key}.lock")
        self.waiting = waiting
        self.fd = -1

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.waiting()
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise

    def __exit__(self, *_exc: object) -> None:
        os.close(self.fd)


def _unlink(path: str) -> None:
    try:  # noqa: SIM105 - contextlib costs the supervisor milliseconds to import
        os.unlink(path)
    except OSError:
        pass


def _failed_marker(cache: str, key: str) -> str:
    return os.path.join(cache, f"{key}.failed")


def earlier_failure(cache: str, key: str, run_id: str) -> dict[str, Any] | None:
    """The failed build of this key in this run, if there was one; one of an earlier run is forgotten
    (so a later run tries again)."""
    marker = _failed_marker(cache, key)
    try:
        with open(marker) as f:
            failure: dict[str, Any] = json.load(f)
    except (OSError, ValueError):
        return None
    if failure.get("run") == run_id:
        return failure
    _unlink(marker)
    return None


def _write_json(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _remove_tree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _abandoned(cache: str, key: str, keep: str | None) -> None:
    """Remove the builds of ``key`` that no link points at (left by a builder that died or failed);
    called with the key's lock held, so nobody is building them."""
    builds = os.path.join(cache, "builds")
    for name in os.listdir(builds):
        path = os.path.join(builds, name)
        if name.startswith(key + ".") and path != keep:
            _remove_tree(path)


# ---------------------------------------------------------------------- building


class Builder:
    """One build of one key, run by the supervisor ``sup`` (its processes, actions and stop flag)."""

    def __init__(self, sup: Any, env: dict[str, str], log: BuildLog, kind: str, file: str, relpath: str) -> None:
        self.sup = sup
        self.env = env
        self.log = log
        self.kind = kind
        self.file = file
        self.relpath = relpath

    def step(self, what: str, argv: list[str], env: dict[str, str], cwd: str | None = None) -> None:
        """Run one command of the build into the build log; BuildFailed naming ``what`` if it fails."""
        self.log.note(f"{what}: {' '.join(argv)}")
        code = self.sup.run_process(argv, self.log.output, env, cwd)
        if code != 0:
            raise BuildFailed(f"{what} failed ({describe(code)})")

    def actions(self, kind: str, commands: list[str], env: dict[str, str]) -> None:
        for command in commands:
            code = self.sup.action(kind, command, self.log, env)
            if code != 0:
                raise BuildFailed(f"the {kind} action {command!r} failed ({describe(code)})")

    def build(self, target: str, actions: list[tuple[str, list[str]]]) -> None:
        """Make the environment at ``target``: create it, run the actions around installing the file."""
        env = {**self.env, **activation(target, self.kind, self.env)}
        by_kind = dict(actions)
        folder = os.path.dirname(self.file)
        if self.kind == "venv":
            uv = self.env.get("GRID_UV")
            if uv and os.access(uv, os.X_OK):
                self.step(
                    "creating the environment",
                    [uv, "venv", "--seed", "--no-project", "--python", sys.executable, target],
                    env,
                    os.path.dirname(target),
                )
                install = [uv, "pip", "install", "--python", os.path.join(target, "bin", "python"), "-r", self.file]
            else:
                self.step("creating the environment", [sys.executable, "-m", "venv", target], env)
                install = [
                    os.path.join(target, "bin", "python"),
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "-r",
                    self.file,
                ]
            self.actions("on_build_start", by_kind["on_build_start"], env)
            self.step(f"installing {self.relpath}", install, env, folder)
        else:
            tool = conda_tool(self.env, self.relpath)
            self.actions("on_build_start", by_kind["on_build_start"], env)
            if os.path.basename(tool) == "micromamba":
                create = [tool, "create", "--yes", "--prefix", target, "--file", self.file]
            else:
                create = [tool, "env", "create", "--prefix", target, "--file", self.file]
            self.step(f"creating the environment from {self.relpath}", create, env, folder)
        self.actions("on_build", by_kind["on_build"], env)
        self.actions("on_build_end", by_kind["on_build_end"], env)


def conda_tool(env: dict[str, str], relpath: str) -> str:
    """The conda, mamba or micromamba on the experiment's PATH; BuildFailed saying one is needed."""
    for name in _CONDA_TOOLS:
        found = which(name, env.get("PATH"))
        if found:
            return found
    raise BuildFailed(
        f"the dependency file {relpath!r} is a conda environment file and needs conda, mamba or micromamba on "
        "the PATH of the machine that runs the experiment, which has none of them; install one (e.g. "
        "Miniforge) or give a pip requirements.txt instead"
    )


def describe(code: int) -> str:
    """``exited with code N`` or ``killed by signal N``."""
    return f"killed by signal {-code}" if code < 0 else f"exited with code {code}"


def _default_cache() -> str:
    return os.path.join(os.path.expanduser("~"), ".cache", "grid_ops", "envs")


def dependency_environment(sup: Any, env: dict[str, str], relpath: str) -> dict[str, str]:
    """Build or find the environment of the dependency file ``relpath``; the variables that activate it
    (none when the source has no such file). BuildFailed when it cannot be had."""
    root = env.get("GRID_SOURCE_DIR") or os.getcwd()
    file = source_file(root, relpath)
    actions = build_actions(env)
    if not os.path.isfile(file):
        if any(commands for _, commands in actions):
            sup.note(f"the build actions did not run: there is no dependency file {relpath} in the source to build")
        return {}
    kind = kind_of(relpath)
    if kind == "conda":
        conda_tool(env, relpath)  # refused before anything is built or waited for
    with open(file, "rb") as f:
        key = env_key(kind, f.read(), actions)
    cache = env.get("GRID_ENV_CACHE") or _default_cache()
    os.makedirs(os.path.join(cache, "builds"), exist_ok=True)
    link = os.path.join(cache, key)
    log = BuildLog(env.get("GRID_OPS_BUILD_LOG_FILE") or env["GRID_OPS_LOG_FILE"] + ".build")
    found = ready(link)
    if found is not None:  # the common case: built earlier on this node, by this run or another
        _reused(log, found, key)
        sup.after_start(lambda: _send_whole(sup.get_reporter(), log.path))  # off the command's start path
    else:
        reporter = sup.get_reporter()
        reporter.set_phase("image_building")
        reporter.follow_build_log(log.path)
        try:
            found = _build_once(sup, env, log, kind, file, relpath, cache, key, actions)
        finally:
            reporter.finish_build_log()
        reporter.set_phase("running")
    sup.note(f"the command runs in the environment of {relpath}: {found} (its build log: logs --build)")
    return activation(found, kind, env)


def _send_whole(reporter: Any, path: str) -> None:
    """Send a complete build log (from the reporter's thread)."""
    reporter.follow_build_log(path)
    reporter.finish_build_log()


def _reused(log: BuildLog, folder: str, key: str) -> None:
    """The build log of an experiment that did not build: where its environment came from, then the log
    of the build that made it."""
    try:
        with open(os.path.join(folder, "grid-env.json")) as f:
            made = json.load(f)
    except (OSError, ValueError):
        made = {}
    by = made.get("experiment") or "another experiment"
    log.note(f"environment {key} found in this node's cache ({folder}); not built again")
    log.note(f"it was built by {by} in {made.get('seconds', 0):.1f} s; that build's log follows")
    try:
        with open(os.path.join(folder, "grid-build.log"), "rb") as f:
            log.output(f.read())
    except OSError:
        log.note("(that build's log is no longer kept)")


def _build_once(
    sup: Any,
    env: dict[str, str],
    log: BuildLog,
    kind: str,
    file: str,
    relpath: str,
    cache: str,
    key: str,
    actions: list[tuple[str, list[str]]],
) -> str:
    """Under the key's lock: use what another experiment built meanwhile, fail as the earlier build of
    this run failed, or build; the environment's folder."""
    link = os.path.join(cache, key)
    run_id = env.get("GRID_RUN_ID") or env.get("GRID_RUN_NAME") or ""
    with Locked(cache, key, lambda: log.note(f"waiting for another experiment's build of environment {key}")):
        found = ready(link)
        if found is not None:
            _reused(log, found, key)
            return found
        failure = earlier_failure(cache, key, run_id)
        if failure is not None:
            log.note(
                f"the build of environment {key} by {failure.get('experiment')} failed in this run; not "
                "built again (a later run tries again). That build's log follows"
            )
            log.output(str(failure.get("log", "")).encode())
            raise BuildFailed(str(failure["message"]))
        _abandoned(cache, key, keep=None)
        target = os.path.join(cache, "builds", f"{key}.{os.getpid()}-{int(time.time() * 1000)}")
        how = "conda" if kind == "conda" else "uv" if env.get("GRID_UV") else "venv and pip"
        log.note(f"building environment {key} from {relpath} ({how}) in {target}")
        started = time.monotonic()
        try:
            Builder(sup, env, log, kind, file, relpath).build(target, actions)
            if sup.stopping:
                raise BuildFailed("stopped while the environment was being built")
        except BuildFailed as exc:
            _remove_tree(target)
            if sup.stopping:  # cancelled, not broken: the next experiment that needs it builds it
                raise BuildFailed("stopped while its environment was being built") from None
            log.note(str(exc))
            message = (
                f"building the environment from {relpath} failed: {exc}. The end of its build log "
                f"(grid-ops logs {env.get('GRID_EXPERIMENT_NAME', '')} --build shows all of it):\n{log.tail()}"
            )
            _write_json(
                _failed_marker(cache, key),
                {
                    "run": run_id,
                    "experiment": env.get("GRID_EXPERIMENT_NAME"),
                    "message": message,
                    "log": log.text()[-_KEPT_LOG:],
                },
            )
            raise BuildFailed(message) from None
        seconds = time.monotonic() - started
        log.note(f"environment built in {seconds:.1f} s")
        with open(log.path, "rb") as src, open(os.path.join(target, "grid-build.log"), "wb") as dst:
            dst.write(src.read())
        _write_json(
            os.path.join(target, "grid-env.json"),
            {
                "key": key,
                "file": relpath,
                "experiment": env.get("GRID_EXPERIMENT_NAME"),
                "run": run_id,
                "python": python_version(),
                "seconds": round(seconds, 3),
                "built_at": time.time(),
            },
        )
        tmp = f"{link}.tmp-{os.getpid()}"
        os.symlink(target, tmp)
        os.replace(tmp, link)  # the environment exists from this instant on, whole
        _unlink(_failed_marker(cache, key))
        return target


# ---------------------------------------------------------------------- frameworks


def check_julia(sup: Any, framework: str, path: str | None) -> None:
    """A julia experiment needs ``julia`` on PATH (of the version asked for, with ``julia:X.Y.Z``)."""
    julia = which("julia", path)
    if julia is None:
        raise BuildFailed(
            f"framework {framework!r} needs the julia executable on PATH, and this machine has none; install "
            "Julia (https://julialang.org/downloads) on the machine, or run on a cluster that has it"
        )
    wanted = framework.partition(":")[2]
    if wanted:
        out: list[bytes] = []
        code = sup.run_process([julia, "--version"], out.append, None, None)
        have = b"".join(out).decode("utf-8", "replace").strip().rsplit(" ", 1)[-1] if code == 0 else "unknown"
        if have != wanted:
            raise BuildFailed(f"framework {framework!r} asks for Julia {wanted}, but {julia} is Julia {have}")


def prepare(sup: Any, env: dict[str, str]) -> dict[str, str]:
    """What the experiment's environment needs before its command runs: the dependency environment
    (the variables that activate it) and the framework's tools. BuildFailed when it cannot be had."""
    updates: dict[str, str] = {}
    relpath = env.get("GRID_DEPENDENCY_FILE")
    if relpath:
        updates = dependency_environment(sup, env, relpath)
        program = sup.argv[0] if sup.argv else ""
        if updates and "/" not in program and which(program, updates["PATH"]) is None:
            raise BuildFailed(f"command not found: {program!r} is not on PATH, nor in the environment of {relpath}")
    framework = env.get("GRID_FRAMEWORK") or ""
    if framework == "julia" or framework.startswith("julia:"):
        check_julia(sup, framework, updates.get("PATH", env.get("PATH")))
    return updates
