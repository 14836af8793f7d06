"""``compression=True``: one gzip tar of the source's files, written deterministically (sorted members,
their recorded mtimes and modes, no owner names, a zero gzip timestamp) so that packing the same files
again, e.g. to resume an interrupted upload, gives the same bytes."""

from __future__ import annotations

import gzip
import tarfile
from pathlib import Path

from grid_ops.upload.scan import SourceFile


def pack(files: list[SourceFile], dest: Path, level: int = 6) -> None:
    """Write ``files`` (at their datastore paths) into the gzip tar ``dest``."""
    tmp = dest.with_name(dest.name + ".tmp")
    with (
        tmp.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=level, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for f in sorted(files, key=lambda x: x.path):
            info = tarfile.TarInfo(f.path)
            info.size = f.size
            info.mtime = f.mtime_ns // 1_000_000_000
            info.mode = f.mode
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with f.local.open("rb") as handle:
                tar.addfile(info, handle)
    tmp.replace(dest)
