"""Snapshot a source directory into the gzip tar that a ``localDir`` run uploads.

Files are chosen like git would: ``.gridignore`` files if the root has one, else ``.gitignore`` files (in
the root and in subdirectories, with gitignore pattern rules), and ``.git`` is always left out. Symlinks
are stored as links. Entries are sorted and owner/gzip metadata normalised, so an unchanged tree gives a
byte-identical tar.
"""

from __future__ import annotations

import gzip
import os
import re
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

from grid_ops.errors import ValidationError

DEFAULT_MAX_SOURCE_BYTES = 512 * 1024 * 1024
MAX_SOURCE_ENV = "GRID_OPS_MAX_SOURCE_BYTES"
IGNORE_FILES = (".gridignore", ".gitignore")
ALWAYS_EXCLUDED = ".git"


# --------------------------------------------------------------------------- ignore rules


@dataclass(frozen=True)
class IgnoreRule:
    """One gitignore pattern: a regex over ``/``-separated paths relative to the ignore file's directory."""

    regex: re.Pattern[str]
    negate: bool
    dir_only: bool

    def matches(self, rel_path: str, is_dir: bool) -> bool:
        """Whether the pattern matches ``rel_path`` (``dir/`` patterns only match directories)."""
        return (is_dir or not self.dir_only) and self.regex.fullmatch(rel_path) is not None


def _glob_segment(segment: str) -> str:
    """Regex for one path segment of a glob: ``*``, ``?``, ``[...]`` and ``\\`` escapes."""
    out: list[str] = []
    i = 0
    while i < len(segment):
        char = segment[i]
        if char == "\\" and i + 1 < len(segment):
            out.append(re.escape(segment[i + 1]))
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            negated = segment[i + 1 : i + 2] in ("!", "^")
            start = i + 2 if negated else i + 1
            end = segment.find("]", start + 1)  # a "]" right after "[" or "[!" is a literal
            if end == -1:
                out.append(re.escape(char))
            else:
                body = "".join(c if c == "-" else re.escape(c) for c in segment[start:end])
                out.append("[" + ("^" if negated else "") + body + "]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def parse_ignore_line(line: str) -> IgnoreRule | None:
    """The rule of one ignore-file line, or ``None`` for blank lines and comments."""
    line = line.rstrip("\r\n")
    while line.endswith(" ") and not line.endswith("\\ "):
        line = line[:-1]
    if not line or line.startswith("#"):
        return None
    negate = line.startswith("!")
    if negate or line.startswith(("\\!", "\\#")):
        line = line[1:]
    dir_only = line.endswith("/")
    line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    segments = line.lstrip("/").split("/")
    regex = ""
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            regex += ".*" if last else "(?:.*/)?"
            continue
        regex += _glob_segment(segment) + ("" if last else "/")
    if not anchored:
        regex = "(?:.*/)?" + regex
    return IgnoreRule(re.compile(regex, re.DOTALL), negate, dir_only)


def read_ignore_file(path: Path) -> list[IgnoreRule]:
    """The rules of an ignore file (empty if it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ValidationError(f"cannot read ignore file {path}: {exc}") from exc
    return [rule for rule in map(parse_ignore_line, text.splitlines()) if rule is not None]


def is_ignored(rel_path: str, is_dir: bool, scopes: list[tuple[str, list[IgnoreRule]]]) -> bool:
    """Whether ``rel_path`` is ignored under ``scopes`` (``(base_dir, rules)``, outermost first).

    As in git, the last matching rule decides, and deeper ignore files come later.
    """
    ignored = False
    for base, rules in scopes:
        if base:
            if not rel_path.startswith(base + "/"):
                continue
            local = rel_path[len(base) + 1 :]
        else:
            local = rel_path
        for rule in rules:
            if rule.matches(local, is_dir):
                ignored = not rule.negate
    return ignored


# --------------------------------------------------------------------------- collecting files


@dataclass(frozen=True)
class _Entry:
    rel: str
    path: Path
    kind: str  # "dir", "file" or "link"
    size: int
    mode: int
    mtime: int


def _scan(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as found:
            return sorted(found, key=lambda entry: entry.name)
    except OSError as exc:
        raise ValidationError(
            f"cannot list {directory}: {exc.strerror or exc}; fix its permissions or add it to .gridignore"
        ) from exc


def collect(root: Path, skip: Path | None = None) -> list[_Entry]:
    """The entries of ``root`` that go into a snapshot, in a stable order (``skip``: a path to leave out)."""
    ignore_name = IGNORE_FILES[0] if (root / IGNORE_FILES[0]).is_file() else IGNORE_FILES[1]
    entries: list[_Entry] = []

    def visit(directory: Path, rel_dir: str, scopes: list[tuple[str, list[IgnoreRule]]]) -> None:
        rules = read_ignore_file(directory / ignore_name)
        if rules:
            scopes = [*scopes, (rel_dir, rules)]
        for child in _scan(directory):
            if child.name == ALWAYS_EXCLUDED:
                continue
            path = directory / child.name
            rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
            info = child.stat(follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                kind = "link"
            elif stat.S_ISDIR(info.st_mode):
                kind = "dir"
            elif stat.S_ISREG(info.st_mode):
                kind = "file"
            else:
                continue  # sockets, fifos, devices cannot be shipped
            if is_ignored(rel, kind == "dir", scopes) or path == skip:
                continue
            size = info.st_size if kind == "file" else 0
            entries.append(_Entry(rel, path, kind, size, stat.S_IMODE(info.st_mode), int(info.st_mtime)))
            if kind == "dir":
                visit(path, rel, scopes)

    visit(root, "", [])
    return entries


# --------------------------------------------------------------------------- writing the tar


def max_source_bytes() -> int:
    """The snapshot size limit: ``$GRID_OPS_MAX_SOURCE_BYTES``, default 512 MiB."""
    raw = os.environ.get(MAX_SOURCE_ENV)
    if not raw:
        return DEFAULT_MAX_SOURCE_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValidationError(f"{MAX_SOURCE_ENV}={raw!r} must be a positive number of bytes, e.g. 1073741824")
    return value


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def _tar_info(entry: _Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.rel)
    info.mode, info.mtime = entry.mode, entry.mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif entry.kind == "link":
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(entry.path)
    else:
        info.size = entry.size
    return info


def _write(entries: list[_Entry], dest: Path) -> None:
    with (
        open(dest, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for entry in entries:
            info = _tar_info(entry)
            if entry.kind != "file":
                tar.addfile(info)
                continue
            try:
                with open(entry.path, "rb") as handle:
                    tar.addfile(info, handle)
            except OSError as exc:
                raise ValidationError(
                    f"cannot add {entry.path} to the source snapshot ({exc}); if it is not needed, "
                    "add it to .gridignore, else make it readable and stop changing it, then retry"
                ) from exc


def snapshot(path: str | Path, dest_tar_gz: str | Path, max_bytes: int | None = None) -> tuple[int, int]:
    """Write the gzip tar of the source at ``path`` to ``dest_tar_gz``; return ``(n_files, total_bytes)``.

    ``total_bytes`` is the size of the files before compression. Over ``max_bytes`` (default
    ``max_source_bytes()``) nothing is written and a ValidationError names the largest files.
    """
    root = Path(path).expanduser().absolute()
    if not root.exists():
        raise ValidationError(f"source path {str(root)!r} does not exist; pass an existing directory as path=")
    if not root.is_dir():
        raise ValidationError(f"source path {str(root)!r} is not a directory; pass the project directory")
    dest = Path(dest_tar_gz).expanduser().absolute()
    entries = collect(root, skip=dest)
    files = [entry for entry in entries if entry.kind != "dir"]
    total = sum(entry.size for entry in files)
    limit = max_source_bytes() if max_bytes is None else max_bytes
    if total > limit:
        largest = sorted(files, key=lambda entry: entry.size, reverse=True)[:5]
        raise ValidationError(
            f"source directory {str(root)!r} holds {_mib(total)} in {len(files)} files, over the "
            f"{_mib(limit)} limit. Largest: "
            + ", ".join(f"{entry.rel} ({_mib(entry.size)})" for entry in largest)
            + f". Leave data out with .gridignore entries (and use a datastore for it), or raise "
            f"{MAX_SOURCE_ENV}."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        _write(entries, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return len(files), total
