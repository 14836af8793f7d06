"""Git sources of runs: ``spec.sourceCode`` as ``URL[#ref=REF]``, checked and pinned to one commit.

``URL`` is an ``https://``, ``http://``, ``ssh://`` or ``git://`` URL, an scp-like ``git@host:owner/repo``,
a ``file://`` URL, or the absolute path of a repository on the control plane's machine. ``REF`` is a
branch, a tag or a commit sha (default: the repository's ``HEAD``). The ref is resolved to a commit once,
when the run is created (``git ls-remote`` for remote URLs, ``git rev-parse`` for local repositories,
with a timeout), and every experiment of the run checks out that commit, so a branch that moves
mid-run changes nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import dataclass

from grid_ops import git_url
from grid_ops.runner.checkout import SourceError, run_git, tail
from grid_ops.server.errors import bad_request

RESOLVE_SECONDS = 30.0
_REMOTE_SCHEMES = ("https", "http", "ssh", "git")
_FULL_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_SHORT_SHA = re.compile(r"^[0-9a-f]{4,63}$")
_BAD_REF = re.compile(r"(^-)|\.\.|[\s~^:?*\[\\]|@\{|//|/$|\.lock$")


@dataclass(frozen=True)
class GitSource:
    """A git source pinned to one commit."""

    url: str
    """The repository, without the ``#ref=`` part."""
    ref: str | None
    commit: str


def split_ref(source: str) -> tuple[str, str | None]:
    """``URL#ref=REF`` -> (URL, REF); (URL, None) without a ref; a 400 for any other ``#`` part."""
    try:
        return git_url.split_ref(source)
    except ValueError as exc:
        raise bad_request(f"spec.sourceCode {source!r}: {exc}") from None


def resolve(source: str, relative_work_dir: str | None = None, seconds: float = RESOLVE_SECONDS) -> GitSource:
    """Check a git source and pin its ref to a commit; a 400 naming what is wrong otherwise."""
    source = source.strip()
    url, ref = split_ref(source)
    if not url or url.startswith("-"):
        raise bad_request(f"spec.sourceCode {source!r} is not a git repository URL or path")
    if ref is not None and _BAD_REF.search(ref):
        raise bad_request(f"spec.sourceCode {source!r}: {ref!r} is not a valid branch, tag or commit name")
    try:
        path = git_url.local_path(url)
    except ValueError as exc:
        raise bad_request(f"spec.sourceCode {url!r}: {exc}") from None
    if path is not None:
        return _resolve_local(url, path, ref, relative_work_dir, seconds)
    scheme = url.split("://", 1)[0].lower() if "://" in url else "ssh"
    if scheme not in _REMOTE_SCHEMES:
        raise bad_request(
            f"spec.sourceCode {url!r}: unsupported scheme {scheme!r}; use https://, ssh://, git@host:repo, "
            "file:// or an absolute path"
        )
    return GitSource(url, ref, _resolve_remote(url, ref, seconds))


def _git(args: list[str], what: str, seconds: float) -> subprocess.CompletedProcess[str]:
    try:
        return run_git(args, seconds)
    except SourceError as exc:
        raise bad_request(f"spec.sourceCode {what!r}: {exc}; check the URL and the network") from None


def _resolve_local(url: str, path: str, ref: str | None, relative_work_dir: str | None, seconds: float) -> GitSource:
    if not os.path.isabs(path):
        raise bad_request(
            f"spec.sourceCode {url!r}: a local repository must be given by its absolute path "
            "(the SDK and CLI make relative paths absolute)"
        )
    if not os.path.exists(path):
        raise bad_request(f"spec.sourceCode {url!r}: {path} does not exist")
    top = _git(["-C", path, "rev-parse", "--show-toplevel", "--git-dir"], url, seconds)
    if top.returncode != 0:
        raise bad_request(f"spec.sourceCode {url!r}: {path} is not a git repository ({tail(top)})")
    lines = top.stdout.splitlines()
    root = lines[0] if len(lines) == 2 else None  # a bare repository has no top level
    if root is not None and os.path.realpath(root) != os.path.realpath(path):
        inner = os.path.relpath(os.path.realpath(path), os.path.realpath(root))
        raise bad_request(
            f"spec.sourceCode {url!r}: {path} is inside the git repository {root}; give the repository "
            f"itself as the url and {inner!r} as the relative working directory"
        )
    name = ref or "HEAD"
    found = _git(["-C", path, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"], url, seconds)
    commit = found.stdout.strip()
    if found.returncode != 0 or not commit:
        raise bad_request(f"spec.sourceCode {url!r}: ref {name!r} does not exist in the repository {path}")
    if relative_work_dir:
        kind = _git(["-C", path, "cat-file", "-t", f"{commit}:{relative_work_dir.strip('/')}"], url, seconds)
        if kind.stdout.strip() != "tree":
            raise bad_request(
                f"relativeWorkDir {relative_work_dir!r} is not a folder of {url} at {name} ({commit[:12]})"
            )
    return GitSource(url, ref, commit)


def _resolve_remote(url: str, ref: str | None, seconds: float) -> str:
    if ref is not None and _FULL_SHA.match(ref):
        return ref  # a commit by id: nothing to resolve (the runner fetches it, or fails naming it)
    listed = _git(["ls-remote", url], url, seconds)
    if listed.returncode != 0:
        raise bad_request(f"spec.sourceCode {url!r} is not a git repository that can be read: {tail(listed)}")
    refs: dict[str, str] = {}
    for line in listed.stdout.splitlines():
        sha, _, name = line.partition("\t")
        refs[name] = sha
    name = ref or "HEAD"
    for candidate in (name, f"refs/heads/{name}", f"refs/tags/{name}^{{}}", f"refs/tags/{name}"):
        if candidate in refs:
            return refs[candidate]
    if _SHORT_SHA.match(name):
        raise bad_request(
            f"spec.sourceCode {url!r}: {name!r} is neither a branch nor a tag; give a commit by its full "
            "40-character sha"
        )
    branches = sorted(n.removeprefix("refs/heads/") for n in refs if n.startswith("refs/heads/"))
    raise bad_request(
        f"spec.sourceCode {url!r}: ref {name!r} does not exist; branches: {', '.join(branches[:20]) or 'none'}"
    )


def cache_key(url: str, commit: str) -> str:
    """The name of a checkout in a node's cache: the repository and the commit."""
    return f"git-{hashlib.sha256(url.encode()).hexdigest()[:16]}-{commit}"
