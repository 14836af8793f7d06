"""The node's cache of datastore versions keeps within its size limit (``datastores.node_cache_max_bytes``):
least recently used versions go first, and never one that a running experiment uses. First the runner's
cache functions on real files with a real process holding a version, then real runs on a control plane
whose cache holds 150,000 bytes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import grid_ops.runner.datastore as node_cache
from grid_ops import Datastore, Run
from tests.core.controlplane import ControlPlane
from tests.core.datastore_helpers import (
    blake3_hex,
    inspect_project,
    make_tree,
    point_sdk_at,
    random_bytes,
    seen,
    unique,
)
from tests.core.test_datastore_guards import locked, web  # noqa: F401  (the control plane with a small cache)

RUNNER = Path(node_cache.__file__).parent


def files_of(root: Path) -> list[dict[str, Any]]:
    """A version's listing as the control plane gives it, pointing at local files to copy."""
    return [
        {"path": p.name, "sizeBytes": p.stat().st_size, "mode": 0o644, "localPath": str(p), "url": "", "blake3": ""}
        for p in sorted(root.iterdir())
    ]


def holder(cache: Path, version_id: str) -> subprocess.Popen[str]:
    """A process that uses a version as an experiment's supervisor does (stdlib module, shared lock)."""
    code = (
        f"import sys; sys.path.insert(0, {str(RUNNER)!r}); import datastore; "
        f"datastore.hold({str(cache)!r}, {version_id!r}); print('held', flush=True); sys.stdin.read()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_eviction_removes_least_recently_used_versions_but_never_one_in_use(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for index, vid in enumerate(["v-old", "v-mid", "v-new"]):
        src = make_tree(tmp_path / vid, {"data.bin": random_bytes(1000, index)})
        assert node_cache.ensure(str(cache), vid, lambda src=src: files_of(src)) is not None
        os.utime(cache / vid, (1000 + index, 1000 + index))  # used in this order
    assert [(vid, size) for _, vid, size in node_cache.cached_versions(str(cache))] == [
        ("v-old", 1000),
        ("v-mid", 1000),
        ("v-new", 1000),
    ]
    assert node_cache.evict(str(cache), 0) == []  # no limit
    user = holder(cache, "v-old")  # the least recently used version is in use
    try:
        assert node_cache.evict(str(cache), 1500) == ["v-mid", "v-new"]
        assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == ["v-old"]
        assert (cache / "v-old" / "data.bin").read_bytes() == random_bytes(1000, 0)
    finally:
        user.communicate("")  # the experiment ends
    assert node_cache.evict(str(cache), 500) == ["v-old"]  # no longer in use
    assert node_cache.cached_versions(str(cache)) == []


@pytest.fixture()
def sdk(locked: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ControlPlane:  # noqa: F811
    point_sdk_at(monkeypatch, locked, tmp_path / "home")
    monkeypatch.chdir(inspect_project(tmp_path / "project"))
    return locked


def cached(plane: ControlPlane) -> set[str]:
    root = plane.home / "server" / "datastore-cache"
    return {p.name for p in root.iterdir() if not p.name.startswith(".")} if root.is_dir() else set()


def test_runs_keep_the_node_cache_within_its_limit_without_evicting_a_version_in_use(
    sdk: ControlPlane, tmp_path: Path
) -> None:
    name = unique("cached")
    seed = int(blake3_hex(name.encode())[:8], 16)
    versions = []
    for i in range(3):  # three versions of 100,000 bytes: two do not fit in 150,000
        src = make_tree(tmp_path / f"v{i}", {"data.bin": random_bytes(100_000, seed + i)})
        ds = Datastore(name=name, source=src)
        ds.upload()
        versions.append(ds.id or "")
    a, b, c = versions

    def run(version: int, command: str = "python3 inspect_ds.py") -> Run:
        r = Run(run_command=command, datastore=f"{name}:{version}")
        r.start()
        return r

    first = run(1)
    assert first.wait(timeout=60) == "succeeded"
    assert a in cached(sdk)
    sleeper = run(2, 'python3 -c "import time; time.sleep(120)"')
    deadline = time.monotonic() + 60
    while b not in cached(sdk):  # fetched by the sleeping experiment, which now uses it
        assert time.monotonic() < deadline, "version 2 was not fetched"
        time.sleep(0.1)
    time.sleep(0.5)
    assert a not in cached(sdk)  # evicted: least recently used, and nobody uses it
    third = run(3)
    assert third.wait(timeout=60) == "succeeded"
    assert {b, c} <= cached(sdk)  # over the limit for now: version 2 is in use, version 3 was just used
    got, _log = seen(sdk, f"{third.name}-exp0")
    assert got["files"]["data.bin"][0] == hashlib.sha256(random_bytes(100_000, seed + 2)).hexdigest()
    sleeper.cancel()
    assert sleeper.wait(timeout=60) == "cancelled"
    again = run(1)
    assert again.wait(timeout=60) == "succeeded"
    _got, log = seen(sdk, f"{again.name}-exp0")
    assert "fetched into this node's cache" in log and "evicted 2 least recently used version(s)" in log
    assert cached(sdk) == {a}
