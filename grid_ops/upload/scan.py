"""The files of a datastore source: their paths, sizes, modification times, modes and BLAKE3 hashes.

A source is a directory (every regular file under it; links to files count as those files, links to
directories are skipped) or a single file. Files that cannot be read are reported all at once, by name,
before anything is sent.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from grid_ops import digests
from grid_ops.errors import ValidationError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceFile:
    """One file of a source: ``path`` inside the datastore (``/``-separated), where it is on disk, and what
    it was when scanned."""

    path: str
    local: Path
    size: int
    mtime_ns: int
    mode: int
    blake3: str | None = None


def _describe(errors: list[str]) -> str:
    shown = "; ".join(errors[:10])
    return shown + (f"; and {len(errors) - 10} more" if len(errors) > 10 else "")


def scan_source(source: Path) -> list[SourceFile]:
    """Every file of ``source`` with its size, mtime and mode (sorted by path); nothing is read yet."""
    if not source.exists():
        raise ValidationError(f"the datastore source {source} does not exist; pass an existing file or directory")
    if source.is_file():
        st = source.stat()
        return [SourceFile(source.name, source, st.st_size, st.st_mtime_ns, st.st_mode & 0o777)]
    if not source.is_dir():
        raise ValidationError(f"the datastore source {source} is neither a file nor a directory")
    errors: list[str] = []
    files: list[SourceFile] = []

    def on_error(exc: OSError) -> None:
        errors.append(f"{exc.filename}: {exc.strerror}")

    top = os.path.join(source, "")  # ends with "/": what follows it in a path is the path in the datastore
    for folder, dirs, names in os.walk(top, onerror=on_error):  # strings, not pathlib: this runs per file
        for name in dirs:
            if os.path.islink(os.path.join(folder, name)):
                log.warning("skipping %s: links to directories are not uploaded", os.path.join(folder, name))
        for name in names:
            local = os.path.join(folder, name)
            try:
                st = os.stat(local)
            except OSError as exc:
                errors.append(f"{local}: {exc.strerror or exc}")
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            files.append(SourceFile(local[len(top) :], Path(local), st.st_size, st.st_mtime_ns, st.st_mode & 0o777))
    if errors:
        raise ValidationError(
            f"cannot read {len(errors)} part(s) of the datastore source {source}: {_describe(errors)}; "
            "fix their permissions or move them out of the source"
        )
    return sorted(files, key=lambda f: f.path)


def hash_files(
    files: list[SourceFile], threads: int = 4, on_hashed: Callable[[SourceFile], None] | None = None
) -> list[SourceFile]:
    """``files`` with their BLAKE3 filled in (hashed in parallel); unreadable files are one error naming them."""
    errors: list[str] = []

    def one(f: SourceFile) -> SourceFile:
        try:
            out = replace(f, blake3=digests.of_file(f.local))
        except OSError as exc:
            errors.append(f"{f.local}: {exc.strerror or exc}")
            return f
        if on_hashed is not None:
            on_hashed(out)
        return out

    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="grid-ops-hash") as pool:
        hashed = list(pool.map(one, files))
    if errors:
        raise ValidationError(
            f"cannot read {len(errors)} file(s) of the datastore source: {_describe(errors)}; "
            "fix their permissions or move them out of the source"
        )
    return hashed


def changed_files(recorded: list[SourceFile], current: list[SourceFile]) -> list[str]:
    """What differs between a recorded scan and the source now: ``"a.csv (changed)"``, ``"b (removed)"``,
    ``"c (added)"``. A file whose mtime moved but whose content hashes the same has not changed."""
    now = {f.path: f for f in current}
    out: list[str] = []
    for old in recorded:
        new = now.pop(old.path, None)
        if new is None:
            out.append(f"{old.path} (removed)")
        elif new.size != old.size:
            out.append(f"{old.path} (changed)")
        elif new.mtime_ns != old.mtime_ns:
            try:
                same = digests.of_file(new.local) == old.blake3
            except OSError:
                same = False
            if not same:
                out.append(f"{old.path} (changed)")
    out.extend(f"{path} (added)" for path in sorted(now))
    return out
