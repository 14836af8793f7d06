"""Runs that mount a datastore version, against the session's real control plane and real experiments: the
reference is resolved and pinned at create-run, every experiment sees that version's files read-only at
``$GRID_DATASTORE_DIR`` (and at a relative mount path), a machine fetches a version once for all its
experiments, a version in use cannot be deleted, and bad references are refused with nothing stored.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from grid_ops import Datastore, Run
from grid_ops.errors import ConflictError
from tests.core.controlplane import ControlPlane, add_user
from tests.core.datastore_helpers import (
    Raw,
    blake3_hex,
    expected_view,
    inspect_project,
    make_tree,
    point_sdk_at,
    random_bytes,
    seen,
    unique,
)

FETCHED = "fetched into this node's cache"
FOUND = "found in this node's cache"


@pytest.fixture()
def sdk(cp: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ControlPlane:
    """The SDK of this process talks to the session's control plane from a project with ``inspect_ds.py``."""
    point_sdk_at(monkeypatch, cp, tmp_path / "home")
    monkeypatch.chdir(inspect_project(tmp_path / "project"))
    return cp


def upload(name: str, root: Path) -> Datastore:
    ds = Datastore(name=name, source=root)
    ds.upload()
    return ds


def cache_of(cp: ControlPlane, version_id: str) -> Path:
    return cp.home / "server" / "datastore-cache" / version_id


def create_run(
    cp: ControlPlane, name: str, command: str, cluster: str = "local", local_dir: bool = False, **spec: Any
) -> requests.Response:
    body = {"name": name, "localDir": local_dir, "spec": {"runControllerCommand": command, **spec}}
    return cp.call("POST", f"/v1/core/{cluster}/runs", json=body)


def test_a_run_mounts_the_pinned_version_read_only(sdk: ControlPlane, tmp_path: Path) -> None:
    name = unique("mounted")
    seed = int(blake3_hex(name.encode())[:8], 16)
    data = make_tree(
        tmp_path / "data",
        {"train/a.csv": b"x,y\n1,2\n", "run.sh": b"#!/bin/sh\necho mounted\n", "big.bin": random_bytes(300_000, seed)},
    )
    (data / "run.sh").chmod(0o755)
    first = upload(name, data)
    first_view = expected_view(data)
    (data / "train" / "a.csv").write_bytes(b"x,y\n3,4\n")
    second = upload(name, data)

    run = Run(
        run_command="python3 inspect_ds.py data/train",
        datastore=Datastore(name=name, version=1),
        datastore_mount_dir="data",
    )
    run.start()
    assert run.wait(timeout=60) == "succeeded"
    stored = sdk.ok("GET", f"/v1/core/local/runs/{run.name}")["spec"]["datastores"]
    assert stored == [{"id": first.id, "mountPath": "data", "name": name, "version": 1}]  # pinned to version 1
    assert Run(run.name).datastore == f"{name}:1"
    got, log = seen(sdk, f"{run.name}-exp0")
    cache = cache_of(sdk, first.id or "")
    assert got["dir"] == str(cache)
    assert {path: (digest, mode) for path, (digest, mode, _) in got["files"].items()} == first_view
    assert got["folders"] and all(mode & 0o222 == 0 for mode in got["folders"])  # nothing writable
    assert got["link"] == str(cache / "train")  # the relative mount path links there
    store = sdk.home / "server" / "datastores" / "local"
    inodes = {p.stat().st_ino for p in store.rglob("*") if p.is_file()}
    assert inodes and got["files"]["big.bin"][2] not in inodes  # a copy: experiments cannot reach the store
    assert FETCHED in log and "(3 copied from the local store, 0 downloaded" in log

    # a bare name means its latest version that succeeded; the default mount path is absolute: explained
    latest = Run(run_command="python3 inspect_ds.py", datastore=name)
    latest.start()
    assert latest.wait(timeout=60) == "succeeded"
    stored = sdk.ok("GET", f"/v1/core/local/runs/{latest.name}")["spec"]["datastores"]
    assert stored == [{"id": second.id, "mountPath": f"/datastores/{name}", "name": name, "version": 2}]
    got, log = seen(sdk, f"{latest.name}-exp0")
    assert got["dir"] == str(cache_of(sdk, second.id or ""))
    assert {path: (digest, mode) for path, (digest, mode, _) in got["files"].items()} == expected_view(data)
    assert f"does not link it at the absolute path /datastores/{name}, which other experiments" in log


def test_twenty_experiments_of_a_run_fetch_the_version_once(sdk: ControlPlane, tmp_path: Path) -> None:
    name = unique("twenty")
    seed = int(blake3_hex(name.encode())[:8], 16)
    data = make_tree(tmp_path / "data", {f"shard-{i}.bin": random_bytes(100_000, seed + i) for i in range(5)})
    ds = upload(name, data)
    run = Run(run_command='python3 inspect_ds.py --i "range(20)"', datastore=ds)
    run.start()
    assert run.wait(timeout=180) == "succeeded"
    views, logs = zip(*(seen(sdk, f"{run.name}-exp{i}") for i in range(20)), strict=True)
    assert sum(log.count(FETCHED) for log in logs) == 1  # one build of the cache ...
    assert sum(log.count(FOUND) for log in logs) == 19  # ... that the 19 others used
    assert {v["dir"] for v in views} == {str(cache_of(sdk, ds.id or ""))}
    inodes = {path: {v["files"][path][2] for v in views} for path in views[0]["files"]}
    assert all(len(found) == 1 for found in inodes.values())  # the same files, not copies


def test_a_version_in_use_cannot_be_deleted(sdk: ControlPlane, tmp_path: Path) -> None:
    name = unique("inuse")
    data = make_tree(tmp_path / "data", {"a.txt": f"{name}\n".encode()})
    ds = upload(name, data)
    waiting, running = unique("waits"), unique("sleeps")
    # queued: the run waits for its source, which never comes
    answer = create_run(sdk, waiting, "true", local_dir=True, datastores=[{"id": f"{name}:1"}])
    assert answer.status_code == 200, answer.text
    refused = sdk.call("DELETE", f"/v1/core/local/datastores/{name}:1")
    assert refused.status_code == 409
    message = refused.json()["message"]
    assert f"version 1 of datastore {name!r} is in use by run {waiting!r} (1 experiment(s) not finished)" in message
    assert f"grid-ops stop {waiting}" in message
    sdk.ok("DELETE", f"/v1/core/local/runs/{waiting}")

    answer = create_run(sdk, running, 'python3 -c "import time; time.sleep(60)"', datastores=[{"id": ds.id}])
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 30
    while sdk.experiments(running)[0]["status"]["phase"] != "EXPERIMENT_STATE_RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    with pytest.raises(ConflictError, match=f"in use by run {running!r}"):
        Datastore(name=name, version=1).delete()
    assert Datastore(name=name, version=1).snapshot_status == "succeeded"  # nothing changed

    sdk.ok("PUT", f"/v1/core/local/runs/{running}", json={"spec": {"desiredState": "RUN_STATE_CANCELED"}})
    sdk.wait_run(running, timeout=30)
    cache = cache_of(sdk, ds.id or "")
    assert cache.is_dir()
    assert Datastore(name=name, version=1).delete() is True
    deadline = time.monotonic() + 10
    while cache.exists():  # the machine's copy goes with the version
        assert time.monotonic() < deadline, f"{cache} was not removed"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def refs(cp: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A datastore that succeeded, one still uploading, and another user's."""
    root = tmp_path_factory.mktemp("refs")
    with pytest.MonkeyPatch.context() as mp:
        point_sdk_at(mp, cp, root / "home")
        done = upload(unique("refdone"), make_tree(root / "data", {"a.txt": b"a\n"}))
        uploading = Raw(cp).create(unique("refuploading"))
        other_id, other_key = add_user(cp.home, unique("mallory"))
        theirs = Raw(cp, auth=(other_id, other_key)).create(unique("theirs"))
        yield {"done": done.name or "", "uploading": uploading["name"], "theirs": theirs["name"]}


@pytest.mark.parametrize(
    ("case", "status", "says"),
    [
        ("missing", 404, "datastore 'no-such-data' not found"),
        ("no-version", 404, "has no version 9; its versions are 1"),
        ("uploading", 409, "is uploading: runs can use it once it has succeeded"),
        ("theirs", 404, "not found"),
        ("two", 400, "a run mounts one datastore"),
        ("dotdot", 400, "invalid datastore mountPath '../up'"),
        ("empty", 400, "spec.datastores[0].id is empty"),
        ("other-cluster", 404, "is on cluster 'local', not 'big'"),
        ("dry-run", 404, "datastore 'no-such-data' not found"),
    ],
)
def test_bad_datastore_references_are_refused_and_nothing_is_stored(
    cp: ControlPlane, refs: dict[str, str], case: str, status: int, says: str
) -> None:
    done = refs["done"]
    mounts = {
        "missing": [{"id": "no-such-data"}],
        "no-version": [{"id": f"{done}:9"}],
        "uploading": [{"id": refs["uploading"]}],
        "theirs": [{"id": refs["theirs"]}],
        "two": [{"id": done}, {"id": f"{done}:1"}],
        "dotdot": [{"id": done, "mountPath": "../up"}],
        "empty": [{"id": ""}],
        "other-cluster": [{"id": done}],
        "dry-run": [{"id": "no-such-data"}],
    }[case]
    cluster = "big" if case == "other-cluster" else "local"
    name = unique(f"bad-{case}")
    extra = {"dryRun": True} if case == "dry-run" else {}
    answer = create_run(cp, name, "true", cluster=cluster, datastores=mounts, **extra)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["message"]
    assert cp.call("GET", f"/v1/core/{cluster}/runs/{name}").status_code == 404
    assert cp.ok("GET", f"/v1/core/{cluster}/experiments", params={"names": f"{name}-exp0"})["experiments"] == []
