"""Unpack an archive (gzip/bzip2/xz tar, plain tar, or zip) into a folder without letting any member
escape it: absolute paths, ``..`` and links pointing outside are refused with a message naming them.

Archive bombs are refused before anything is written: the members' sizes (which are what extraction
writes) may add up to at most ``limits.max_bytes`` and ``limits.max_ratio`` times the archive's size, and
there may be at most ``limits.max_files`` members (``datastores.unpack_*`` in the server config)."""

from __future__ import annotations

import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from grid_ops.runner.tarsafe import safe_extract
from grid_ops.server.datastore_config import UnpackLimits

_CHUNK = 4 * 1024 * 1024


class ArchiveError(ValueError):
    """The archive is not one we can unpack, or a member would land outside its folder."""


def archive_kind(path: Path) -> str | None:
    """``"zip"`` or ``"tar"`` (compressed or not) by the file's content, or None for any other file."""
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except OSError:
        return None
    return None


class _Budget:
    """Counts members and their bytes against the limits as they are listed; the first excess raises."""

    def __init__(self, archive: Path, limits: UnpackLimits, label: str) -> None:
        self.name = label
        self.limits = limits
        self.max_bytes = min(limits.max_bytes, int(limits.max_ratio * max(1, archive.stat().st_size)))
        self.files = 0
        self.bytes = 0

    def add(self, size: int) -> None:
        self.files += 1
        self.bytes += max(0, size)
        if self.files > self.limits.max_files:
            raise ArchiveError(
                f"{self.name} holds more than {self.limits.max_files} members, this control plane's limit "
                "(datastores.unpack_max_files in its server config); nothing was unpacked"
            )
        if self.bytes > self.max_bytes:
            if self.max_bytes == self.limits.max_bytes:
                raise ArchiveError(
                    f"{self.name} unpacks to more than {self.limits.max_bytes} bytes, this control plane's limit "
                    "(datastores.unpack_max_bytes in its server config); nothing was unpacked"
                )
            raise ArchiveError(
                f"{self.name} unpacks to more than {self.limits.max_ratio:g} times its own size, this control "
                "plane's limit against archive bombs (datastores.unpack_max_ratio in its server config); "
                "nothing was unpacked"
            )


def unpack(archive: Path, dest: Path, limits: UnpackLimits | None = None, label: str | None = None) -> None:
    """Unpack ``archive`` into ``dest`` (created), refusing members that would escape it and archives over
    ``limits`` (see the module's docstring); ``label`` names the archive in messages."""
    dest.mkdir(parents=True, exist_ok=True)
    budget = _Budget(archive, limits or UnpackLimits(), label or archive.name)
    kind = archive_kind(archive)
    try:
        if kind == "tar":
            with tarfile.open(archive, "r:*") as tar:
                for member in tar:  # listed lazily: a bomb stops being read at the first excess
                    budget.add(member.size if member.isreg() else 0)
                safe_extract(tar, dest)
        elif kind == "zip":
            _unzip(archive, dest, budget)
        else:
            raise ArchiveError(f"{archive.name} is neither a tar nor a zip archive")
    except ArchiveError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise ArchiveError(f"cannot unpack {archive.name}: {exc}") from exc


def _unzip(archive: Path, dest: Path, budget: _Budget) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:  # check every member before writing any
            name = info.filename
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
                raise ArchiveError(f"archive member {name!r} would be written outside its folder")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ArchiveError(f"archive member {name!r} is a link; zip archives in datastores may not hold links")
            budget.add(0 if info.is_dir() else info.file_size)
        for info in infos:
            target = dest.joinpath(*PurePosixPath(info.filename.replace("\\", "/")).parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as out:
                written = 0
                while chunk := src.read(_CHUNK):
                    written += len(chunk)
                    if written > info.file_size:  # never more than the size checked above
                        raise ArchiveError(f"archive member {info.filename!r} holds more than its declared size")
                    out.write(chunk)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                target.chmod(mode | 0o600)
