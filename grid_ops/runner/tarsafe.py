"""Unpack tar archives without letting any member escape the target folder (standard library only: the
runner unpacks run sources with it, and the control plane checks uploads and datastore archives)."""

from __future__ import annotations

import tarfile
from pathlib import Path


def check_members(tar: tarfile.TarFile) -> None:
    """Raise ValueError for absolute paths, ``..`` escapes, links pointing outside, or device files."""
    for member in tar.getmembers():
        name = member.name
        if name.startswith("/") or ".." in Path(name).parts:
            raise ValueError(f"archive member {name!r} would be written outside its folder")
        if member.isdev() or member.isfifo():
            raise ValueError(f"archive member {name!r} is a device or pipe")
        if member.issym() or member.islnk():
            target = Path(name).parent / member.linkname if member.issym() else Path(member.linkname)
            if member.linkname.startswith("/") or (".." in target.parts and _escapes(target)):
                raise ValueError(f"archive link {name!r} -> {member.linkname!r} points outside its folder")


def _escapes(path: Path) -> bool:
    depth = 0
    for part in path.parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def safe_extract(tar: tarfile.TarFile, dest: Path) -> None:
    """Extract every member under ``dest`` using the standard library's ``data`` filter as well."""
    check_members(tar)
    tar.extractall(dest, filter="data")
