"""Makes the experiment's own working copy of its run's source (standard library only).

The copy goes to ``$GRID_WORK_DIR`` (replaced if a resumed experiment left one). A snapshot archive is
read from ``$GRID_SOURCE_PATH`` when the runner shares the control plane's files, else downloaded from
the control plane once per node into ``$GRID_SOURCE_CACHE`` and unpacked from there; members that would
land outside the folder are refused. A git source is cloned once per node and commit (shallow: only that
commit, when the server hands out commits by id; else a full fetch) and copied. The command then runs in
``$GRID_RELATIVE_WORK_DIR`` inside the copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

try:
    from grid_ops.runner import node_cache, tarsafe
except ImportError:  # loaded by path in the supervisor, without the package (see supervise.load_module_file)
    import node_cache  # type: ignore[no-redef]
    import tarsafe  # type: ignore[no-redef]

ARCHIVE = "source.tar.gz"
_CHUNK = 1024 * 1024
_GIT_SECONDS = 1800.0


class SourceError(Exception):
    """The source could not be made ready; the message says why."""


def prepare(env: dict[str, str], note: Callable[[str], None]) -> str:
    """Make the experiment's copy of the source and return the folder the command runs in."""
    work = env.get("GRID_WORK_DIR")
    if not work:
        return os.getcwd()
    if os.path.lexists(work):
        node_cache.remove(work)
    kind = env.get("GRID_SOURCE")
    if kind == "snapshot":
        _unpack(_snapshot_archive(env), work)
    elif kind == "git":
        _checkout(env, work, note)
    elif kind:
        raise SourceError(f"unknown source kind GRID_SOURCE={kind!r}")
    else:
        os.makedirs(work)
    rel = env.get("GRID_RELATIVE_WORK_DIR")
    if not rel:
        return work
    cwd = os.path.realpath(os.path.join(work, rel))
    root = os.path.realpath(work)
    if not (cwd == root or cwd.startswith(root + os.sep)) or not os.path.isdir(cwd):
        raise SourceError(f"relative working directory {rel!r} does not exist in the source")
    return cwd


def _cache(env: dict[str, str]) -> tuple[str, str]:
    cache, key = env.get("GRID_SOURCE_CACHE"), env.get("GRID_SOURCE_KEY")
    if not cache or not key:
        raise SourceError("GRID_SOURCE_CACHE or GRID_SOURCE_KEY is unset")
    return cache, key


# ---------------------------------------------------------------------- snapshots


def _snapshot_archive(env: dict[str, str]) -> str:
    """The snapshot's archive: the control plane's own file when readable, else the node's cached copy."""
    local = env.get("GRID_SOURCE_PATH")
    if local and os.access(local, os.R_OK):
        return local
    cache, key = _cache(env)
    node_cache.ensure(cache, key, lambda folder: _download(env, os.path.join(folder, ARCHIVE)))
    return os.path.join(node_cache.entry_dir(cache, key), ARCHIVE)


def _download(env: dict[str, str], dest: str) -> None:
    """GET the run's snapshot into ``dest`` and check that it unpacks safely before it is cached."""
    try:  # here, not at the top: runners that read the control plane's own file never load urllib
        from grid_ops.runner import fetch
    except ImportError:
        import fetch  # type: ignore[no-redef]

    url, token = fetch.experiment_endpoint(env, "source")

    def save(answer: object) -> None:
        with open(dest, "wb") as out:
            while chunk := answer.read(_CHUNK):  # type: ignore[attr-defined]
                out.write(chunk)

    try:
        fetch.get(url, token, "the run's source", save)
        with tarfile.open(dest, "r:gz") as tar:  # reads it all: a truncated download fails here
            tarsafe.check_members(tar)
    except fetch.FetchError as exc:
        raise SourceError(str(exc)) from None
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise SourceError(f"the run's source archive is not usable: {exc}") from None


def _unpack(archive: str, work: str) -> None:
    os.makedirs(work)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tarsafe.safe_extract(tar, Path(work))
    except (OSError, tarfile.TarError, EOFError, ValueError) as exc:
        raise SourceError(f"could not unpack the run's source: {exc}") from None


# ---------------------------------------------------------------------- git


def git_env() -> dict[str, str]:
    """git never waits for a password or a host-key answer nobody will type, and speaks only the usual
    transports (no ``ext::`` commands)."""
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_ALLOW_PROTOCOL"] = "file:git:http:https:ssh"
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    return env


def run_git(args: list[str], seconds: float = _GIT_SECONDS, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """``git ARGS``, its output captured; SourceError when git is missing or takes longer than ``seconds``."""
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=git_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=seconds,
            check=False,
        )
    except FileNotFoundError:
        raise SourceError("git is not installed on this machine") from None
    except subprocess.TimeoutExpired:
        raise SourceError(f"git {args[0]} took longer than {seconds:g} s") from None


def tail(result: subprocess.CompletedProcess[str]) -> str:
    """The last lines git wrote, on one line, for a message."""
    return " ".join((result.stderr or result.stdout).strip().splitlines()[-3:])


def _clone(url: str, commit: str, folder: str) -> bool:
    """``folder`` becomes a checkout of ``commit``: only that commit when the server hands it out by id,
    else everything the repository has."""
    for args in (["init", "-q"], ["config", "advice.detachedHead", "false"]):
        result = run_git(args, cwd=folder)
        if result.returncode != 0:
            raise SourceError(f"git {args[0]} failed: {tail(result)}")
    shallow = run_git(["fetch", "-q", "--depth", "1", "--no-tags", url, commit], cwd=folder)
    if shallow.returncode != 0:
        everything = ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"]
        full = run_git(["fetch", "-q", "--no-tags", url, *everything], cwd=folder)
        if full.returncode != 0:
            raise SourceError(f"git could not fetch {url}: {tail(full)}")
    result = run_git(["checkout", "-q", "--detach", commit], cwd=folder)
    if result.returncode != 0:
        raise SourceError(f"commit {commit} is no longer in {url}: {tail(result)}")
    return True


def _checkout(env: dict[str, str], work: str, note: Callable[[str], None]) -> None:
    url, commit = env.get("GRID_SOURCE_GIT_URL"), env.get("GRID_SOURCE_GIT_COMMIT")
    if not url or not commit:
        raise SourceError("GRID_SOURCE_GIT_URL or GRID_SOURCE_GIT_COMMIT is unset")
    cache, key = _cache(env)
    if node_cache.ensure(cache, key, lambda folder: _clone(url, commit, folder)) is not None:
        note(f"source: {url} at {commit}, cloned into this node's cache")
    else:
        note(f"source: {url} at {commit}, from this node's cache")
    try:
        shutil.copytree(node_cache.entry_dir(cache, key), work, symlinks=True)
    except (OSError, shutil.Error) as exc:
        raise SourceError(f"could not copy the checkout of {url} at {commit}: {exc}") from None
