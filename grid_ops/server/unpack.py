"""Unpack an archive (gzip/bzip2/xz tar, plain tar, or zip) into a folder without letting any member
escape it: absolute paths, ``..`` and links pointing outside are refused with a message naming them."""

from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from grid_ops.server.tarsafe import safe_extract


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


def unpack(archive: Path, dest: Path) -> None:
    """Unpack ``archive`` into ``dest`` (created), refusing members that would escape it."""
    dest.mkdir(parents=True, exist_ok=True)
    kind = archive_kind(archive)
    try:
        if kind == "tar":
            with tarfile.open(archive, "r:*") as tar:
                safe_extract(tar, dest)
        elif kind == "zip":
            _unzip(archive, dest)
        else:
            raise ArchiveError(f"{archive.name} is neither a tar nor a zip archive")
    except ArchiveError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise ArchiveError(f"cannot unpack {archive.name}: {exc}") from exc


def _unzip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:  # check every member before writing any
            name = info.filename
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
                raise ArchiveError(f"archive member {name!r} would be written outside its folder")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ArchiveError(f"archive member {name!r} is a link; zip archives in datastores may not hold links")
        for info in infos:
            target = dest.joinpath(*PurePosixPath(info.filename.replace("\\", "/")).parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out, 4 * 1024 * 1024)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                target.chmod(mode | 0o600)
