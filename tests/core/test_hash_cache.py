"""The client's cache of file hashes (``upload/hash_cache.py``): a file is trusted as hashed before only
while it is as it was recorded, a file changed right before its scan is not recorded, and a cache that
cannot be written costs the upload nothing."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

from grid_ops import digests
from grid_ops.client import GridClient
from grid_ops.upload.hash_cache import RACY_NS, HashCache
from grid_ops.upload.scan import SourceFile, scan_source
from grid_ops.upload.state import UploadState
from grid_ops.upload.uploader import DatastoreUploader


def _hashed(files: list[SourceFile]) -> list[SourceFile]:
    return [replace(f, blake3=digests.of_file(f.local)) for f in files]


def _age(path: Path, seconds: float) -> None:
    """Make ``path`` look written ``seconds`` ago (its mtime; its ctime moves to now, as any change does)."""
    when = time.time_ns() - int(seconds * 1e9)
    os.utime(path, ns=(when, when))


def test_hashes_are_reused_only_for_files_as_they_were_recorded(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a", "b", "c"):
        (src / name).write_bytes(name.encode() * 100)
        _age(src / name, 60)
    cache = HashCache(tmp_path / "home")
    scanned = time.time_ns() + RACY_NS + 1  # files changed more than RACY_NS before the scan
    cache.remember(_hashed(scan_source(src)), scanned)
    (src / "b").write_bytes(b"B" * 100)  # same size, new content and times
    os.utime(src / "c", ns=(0, 0))  # only the times
    found = {f.path: f.blake3 for f in cache.lookup(scan_source(src))}
    assert found == {"a": digests.of_bytes(b"a" * 100), "b": None, "c": None}


def test_a_file_changed_just_before_its_scan_is_not_recorded(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "racy").write_bytes(b"x")
    cache = HashCache(tmp_path / "home")
    scanned = time.time_ns()  # its change time is within RACY_NS of the scan: a second write may follow unseen
    cache.remember(_hashed(scan_source(src)), scanned)
    assert [f.blake3 for f in cache.lookup(scan_source(src))] == [None]


def test_a_cache_that_cannot_be_written_costs_the_upload_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"a")
    home = tmp_path / "home"
    home.write_text("a file where the folder should be")  # mkdir of the cache's folder fails
    uploader = DatastoreUploader(GridClient("http://127.0.0.1:9", "u", "k"), home=home)
    scanned = time.time_ns() + RACY_NS + 1  # the file is old enough to be recorded
    state = UploadState(
        key="k", url="http://127.0.0.1:9", user_id="u", cluster_id="local", name="n", source=str(src),
        compression=False, token="t", part_size=1, files=_hashed(scan_source(src)), scanned_ns=scanned,
    )  # fmt: skip
    try:
        uploader.hashes.remember(state.files, state.scanned_ns)
    except OSError:
        pass
    else:
        raise AssertionError("the cache was written: this test no longer shows what it is named after")
    uploader._remember(state)  # what the upload calls while the version completes: no exception
