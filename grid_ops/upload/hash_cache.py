"""The BLAKE3 of files uploaded before, so that a new version of a source whose files mostly did not change
reads only the files that did (``$GRID_OPS_HOME/hashes-blake3.sqlite``; ``hashes.sqlite`` held SHA-256s).

An entry is trusted while the file's device, inode, size, modification time and change time are all as
recorded; the change time cannot be set by users and moves with every write. As git does with its index,
a file changed within ``RACY_NS`` of being scanned is not recorded, since a second write within the same
clock tick would leave its times as they were.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from grid_ops.upload.scan import SourceFile

RACY_NS = 2_000_000_000
MAX_ENTRIES = 200_000
_SCHEMA = """create table if not exists hashes (
    local text primary key, dev integer, ino integer, size integer, mtime_ns integer, ctime_ns integer,
    blake3 text, used real)"""


def _identity(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class HashCache:
    """Known hashes of local files; every failure to read or write it only means hashing again."""

    def __init__(self, home: Path) -> None:
        self.path = home / "hashes-blake3.sqlite"  # hashes.sqlite held SHA-256s

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = sqlite3.connect(self.path, timeout=10)
        db.execute(_SCHEMA)
        return db

    def lookup(self, files: list[SourceFile]) -> list[SourceFile]:
        """``files`` with the hash filled in where the file is as it was when its hash was recorded."""
        if not files or not self.path.is_file():
            return files
        try:
            with contextlib.closing(self._connect()) as db:
                known = {}
                locals_ = [str(f.local) for f in files]
                for start in range(0, len(locals_), 500):
                    chunk = locals_[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    for row in db.execute(f"select * from hashes where local in ({marks})", chunk):
                        known[row[0]] = (tuple(row[1:6]), row[6])
        except sqlite3.Error:
            return files
        out = []
        for f in files:
            entry = known.get(str(f.local))
            if entry is not None and f.blake3 is None:
                with contextlib.suppress(OSError):
                    if _identity(os.stat(f.local)) == entry[0]:
                        f = replace(f, blake3=entry[1])
            out.append(f)
        return out

    def remember(self, files: Iterable[SourceFile], scanned_ns: int) -> None:
        """Record the hashes of ``files`` (scanned at ``scanned_ns``, wall clock) that are still as scanned."""
        rows = []
        now = time.time()
        for f in files:
            if f.blake3 is None:
                continue
            try:
                st = os.stat(f.local)
            except OSError:
                continue
            if (st.st_size, st.st_mtime_ns) != (f.size, f.mtime_ns) or st.st_ctime_ns > scanned_ns - RACY_NS:
                continue
            rows.append((str(f.local), *_identity(st), f.blake3, now))
        if not rows:
            return
        try:
            with contextlib.closing(self._connect()) as db, db:
                db.executemany("insert or replace into hashes values (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                (count,) = db.execute("select count(*) from hashes").fetchone()
                if count > MAX_ENTRIES:  # forget the least recently used
                    db.execute(
                        "delete from hashes where local in (select local from hashes order by used limit ?)",
                        (count - MAX_ENTRIES,),
                    )
        except sqlite3.Error:
            return
