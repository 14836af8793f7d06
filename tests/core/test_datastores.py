"""Datastores on the local storage backend, against the session's real control plane process: versions,
uploads (SDK, CLI, raw wire API), deduplication, compression, resuming after a real SIGKILL, and bad input.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from grid_ops import Datastore, list_datastores
from grid_ops.cli.main import cli
from grid_ops.errors import GridError, NotFoundError, ValidationError
from grid_ops.server.config import ConfigError, load_config
from grid_ops.upload.progress import Progress
from grid_ops.upload.transfer import SourceChanged
from tests.core.controlplane import ControlPlane, add_user
from tests.core.datastore_helpers import (
    Raw,
    blake3_hex,
    client_of,
    make_tree,
    md5,
    point_sdk_at,
    put,
    random_bytes,
    read_version,
    tree_of,
    unique,
)
from tests.core.s3server import free_port

GRID_OPS = Path(sys.executable).parent / "grid-ops"


@pytest.fixture()
def sdk(cp: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ControlPlane:
    """The SDK and CLI of this process talk to the session's control plane; upload progress in tmp."""
    point_sdk_at(monkeypatch, cp, tmp_path / "home")
    return cp


def dataset(root: Path, count: int = 6, size: int = 20_000, seed: int = 0) -> Path:
    files = {f"part-{i:02d}.bin": random_bytes(size, seed * 1000 + i) for i in range(count)}
    files["nested/deeper/notes.txt"] = b"some notes\n"
    files["empty.txt"] = b""
    return make_tree(root, files)


# --------------------------------------------------------------------------- versions


def test_upload_creates_versions_from_1_that_load_by_name_and_version(sdk: ControlPlane, tmp_path: Path) -> None:
    src = dataset(tmp_path / "data")
    name = unique("versions")
    first = Datastore(name=name, source=src)
    assert (first.version, first.snapshot_status, first.size) == (None, "not uploaded", 0)
    assert first.upload() is True
    assert (first.version, first.snapshot_status, first.file_count) == (1, "succeeded", 8)
    assert first.size == sum(len(d) for d, _ in tree_of(src).values())
    assert first.user == sdk.user_id and first.cluster_id == "local" and first.created_at is not None
    assert first.source == str(src) and first.compression is False

    (src / "part-00.bin").write_bytes(b"changed")
    second = Datastore(name=name, source=src)
    second.upload()
    assert second.version == 2

    loaded = Datastore(name=name, version=1)
    assert (loaded.name, loaded.version, loaded.snapshot_status, loaded.size) == (name, 1, "succeeded", first.size)
    assert loaded.source is None and loaded.id == first.id
    assert read_version(client_of(sdk), f"{name}:2") == tree_of(src)
    assert loaded.refresh().snapshot_status == "succeeded"

    mine = [(d.name, d.version) for d in list_datastores() if d.name == name]
    assert mine == [(name, 1), (name, 2)]
    with pytest.raises(GridError, match="uploaded already"):
        first.upload()

    assert loaded.delete() is True
    assert [d.version for d in list_datastores() if d.name == name] == [2]
    with pytest.raises(NotFoundError, match=r"has no version 1; its versions are 2"):
        Datastore(name=name, version=1)
    third = Datastore(name=name, source=src)
    third.upload()
    assert third.version == 3  # a deleted version's number is never given again


def test_name_defaults_from_the_sources_last_component(sdk: ControlPlane, tmp_path: Path) -> None:
    src = make_tree(tmp_path / f"{unique('Churn_Q1')}.v2", {"a.csv": b"x,y\n1,2\n"})
    ds = Datastore(source=src)
    assert ds.name == src.name.split(".")[0].lower().replace("_", "-")
    ds.upload()
    assert ds.version == 1
    single = tmp_path / "Single-File.csv"
    single.write_bytes(b"a,b\n")
    one = Datastore(name=unique("single"), source=single)
    assert Datastore(source=single).name == "single-file"
    one.upload()
    assert read_version(client_of(sdk), one.id or "") == {"Single-File.csv": (b"a,b\n", 0o644)}


def test_compression_round_trips_the_directory_structure_and_modes(sdk: ControlPlane, tmp_path: Path) -> None:
    src = dataset(tmp_path / "data", count=3)
    (src / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (src / "run.sh").chmod(0o755)
    ds = Datastore(name=unique("packed"), source=src, compression=True)
    ds.upload()
    assert (ds.snapshot_status, ds.compression, ds.file_count) == ("succeeded", True, 6)
    assert read_version(client_of(sdk), ds.id or "") == tree_of(src)
    events = [e.message for e in client_of(sdk).datastore_events(ds.id or "")]
    assert events[1] == "unpacking the uploaded archive"
    assert events[2].startswith("unpacked the uploaded archive: 6 files")
    assert Datastore(name=ds.name, version=1).compression is True


def test_a_new_version_sends_only_the_files_that_changed(
    sdk: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRID_OPS_UPLOAD_SAME_HOST", "0")  # through presigned URLs, as from another machine
    src = dataset(tmp_path / "data", count=20, size=50_000)
    name = unique("dedup")
    first = Datastore(name=name, source=src)
    first.upload()
    assert first.last_upload is not None  # (the small files' content may be stored already by other tests)
    assert first.last_upload.bytes_sent + first.last_upload.bytes_already_stored == first.size

    (src / "part-07.bin").write_bytes(random_bytes(50_000, 999))
    (src / "new.bin").write_bytes(random_bytes(30_000, 998))
    second = Datastore(name=name, source=src)
    second.upload()
    stats = second.last_upload
    assert stats is not None
    assert stats.bytes_sent == 80_000  # the changed file and the new one, nothing else
    assert stats.files_already_stored == 21 and stats.bytes_already_stored == 19 * 50_000 + 11
    assert read_version(client_of(sdk), f"{name}:2") == tree_of(src)
    first.delete()  # content version 2 still uses stays readable
    assert read_version(client_of(sdk), f"{name}:2") == tree_of(src)


# --------------------------------------------------------------------------- resuming


def journal_lines(home: Path) -> int:
    """The parts and batches journaled so far (each entry starts on a line of its own: blank lines between)."""
    return sum(1 for p in (home / "uploads").glob("*.journal") for line in p.read_text().splitlines() if line)


def test_an_upload_killed_half_way_resumes_sending_only_the_missing_parts(cp: ControlPlane, tmp_path: Path) -> None:
    part, files, per_file = 32 * 1024, 24, 6
    src = make_tree(tmp_path / "data", {f"f{i:02d}.bin": random_bytes(part * per_file, i) for i in range(files)})
    total, parts = part * per_file * files, per_file * files
    home, name = tmp_path / "home", unique("killed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRID_")}
    env.update(cp.env(), GRID_OPS_HOME=str(home), GRID_CLUSTER_ID="local", GRID_OPS_UPLOAD_PART_SIZE=str(part))
    env["GRID_OPS_UPLOAD_SAME_HOST"] = "0"  # parts over HTTP, as from another machine
    slow = {**env, "GRID_OPS_UPLOAD_THREADS": "2", "GRID_OPS_UPLOAD_MAX_BPS": str(total // 3)}
    proc = subprocess.Popen(
        [str(GRID_OPS), "datastore", "create", str(src), "--name", name],
        env=slow,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while (home / "uploads").is_dir() is False or journal_lines(home) < parts // 2:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        assert time.monotonic() < deadline, "the upload did not get half way"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = journal_lines(home)
    assert parts // 2 <= done < parts
    raw = Raw(cp)
    assert raw.ok("GET", f"/{name}:1")["status"]["phase"] == "DATASTORE_OPTIMIZATION_STATUS_UNSPECIFIED"

    out = subprocess.run(
        [str(GRID_OPS), "-o", "json", "datastore", "resume"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    (result,) = json.loads(out.stdout)
    stats = result["upload"]
    assert stats["bytes_resumed"] == done * part
    assert stats["bytes_sent"] == total - done * part  # only the missing parts
    assert result["datastore"]["spec"]["version"] == 1
    assert read_version(client_of(cp), f"{name}:1") == tree_of(src)
    assert not list((home / "uploads").glob("*"))  # progress is forgotten once complete


class StopAfter(Progress):
    """Interrupts an upload after ``n`` parts arrived (as Ctrl-C would)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def advance(self, nbytes: int) -> None:
        self.n -= 1
        if self.n <= 0:
            raise KeyboardInterrupt


def test_upload_again_with_the_same_arguments_resumes_and_detects_changed_files(
    sdk: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRID_OPS_UPLOAD_PART_SIZE", "10000")
    monkeypatch.setenv("GRID_OPS_UPLOAD_THREADS", "1")
    monkeypatch.setenv("GRID_OPS_UPLOAD_SAME_HOST", "0")
    name = unique("resumed")
    seed = int(blake3_hex(name.encode())[:8], 16)  # content no other test stores
    src = make_tree(tmp_path / "data", {f"part-{i:02d}.bin": random_bytes(40_000, seed + i) for i in range(4)})
    with pytest.raises(KeyboardInterrupt):
        Datastore(name=name, source=src).upload(progress=StopAfter(5))
    again = Datastore(name=name, source=src)
    again.upload()
    assert again.last_upload is not None
    resumed = again.last_upload.bytes_resumed  # the five parts of 10,000 bytes (and any already in flight)
    assert 50_000 <= resumed <= 70_000 and resumed % 10_000 == 0
    assert again.last_upload.bytes_sent == again.size - resumed  # only what had not arrived
    assert read_version(client_of(sdk), f"{name}:1") == tree_of(src)

    other = unique("changed")
    src = make_tree(tmp_path / "data2", {f"part-{i:02d}.bin": random_bytes(40_000, seed + 10 + i) for i in range(4)})
    with pytest.raises(KeyboardInterrupt):
        Datastore(name=other, source=src).upload(progress=StopAfter(3))
    (src / "nested").mkdir()
    (src / "part-01.bin").write_bytes(b"edited after the interruption")
    (src / "part-02.bin").unlink()
    (src / "added.txt").write_text("new")
    with pytest.raises(SourceChanged) as caught:
        Datastore(name=other, source=src).upload()
    message = str(caught.value)
    assert "part-01.bin (changed)" in message and "part-02.bin (removed)" in message and "added.txt (added)" in message
    assert f"grid-ops datastore delete --name {other} --version 1" in message
    Datastore(name=other, version=1).delete()  # discard the interrupted upload (and its saved progress)
    fresh = Datastore(name=other, source=src)
    fresh.upload()
    assert fresh.version == 2 and read_version(client_of(sdk), f"{other}:2") == tree_of(src)
    assert fresh.file_count == 4


# --------------------------------------------------------------------------- the wire flow


def test_completing_twice_is_harmless_and_every_part_is_checked(cp: ControlPlane) -> None:
    raw, name = Raw(cp), unique("wire")
    ds = raw.create(name, sourceType="DATASTORE_SOURCE_TYPE_EXPANDED_FILES")
    assert (ds["spec"]["version"], ds["status"]["phase"]) == (1, "DATASTORE_OPTIMIZATION_STATUS_UNSPECIFIED")
    data = random_bytes(250, 1)
    (obj,) = raw.presign(
        ds["id"], {"key": "a.bin", "partCount": "3", "blake3": blake3_hex(data), "sizeBytes": 250, "partSizeBytes": 100}
    )
    assert [u["partNumber"] for u in obj["urls"]] == ["1", "2", "3"]
    urls = {int(u["partNumber"]): u["url"] for u in obj["urls"]}
    etags = {1: put(urls[1], data[:100])}

    # completing before all parts arrived: a clear 409, nothing changes
    r = raw.complete_parts(ds["id"], "a.bin", obj["uploadId"], {**etags, 2: md5(data[100:200]), 3: md5(data[200:])})
    assert r.status_code == 409 and "part(s) 2, 3 of 3 have not arrived" in r.json()["message"]
    r = raw.call("POST", f"/{ds['id']}/completed")
    assert (
        r.status_code == 409 and "1 upload(s) are not complete: 'a.bin' (1 of 3 parts arrived)" in r.json()["message"]
    )
    r = raw.complete_parts(ds["id"], "a.bin", obj["uploadId"], etags)
    assert r.status_code == 409 and "part(s) 2, 3 of 3 were not reported" in r.json()["message"]

    # a part whose size or ETag does not match
    etags[2] = put(urls[2], data[100:190])
    etags[3] = put(urls[3], data[200:])
    r = raw.complete_parts(ds["id"], "a.bin", obj["uploadId"], etags)
    assert r.status_code == 409 and "part 2 of 'a.bin' has 90 bytes but should have 100" in r.json()["message"]
    etags[2] = put(urls[2], data[100:200])
    r = raw.complete_parts(ds["id"], "a.bin", obj["uploadId"], {**etags, 3: "0" * 32})
    assert r.status_code == 409 and "the ETag of part 3 of 'a.bin'" in r.json()["message"]
    assert raw.ok("GET", f"/{ds['id']}")["status"]["phase"] == "DATASTORE_OPTIMIZATION_STATUS_UNSPECIFIED"

    for _ in range(2):  # twice: harmless
        assert raw.complete_parts(ds["id"], "a.bin", obj["uploadId"], etags).status_code == 200
    manifest = {"files": [{"path": "dir/a.bin", "blake3": blake3_hex(data), "sizeBytes": 250, "mode": 0o640}]}
    assert raw.ok("POST", f"/{ds['id']}/manifest", json=manifest) == {"fileCount": 1, "sizeBytes": 250}
    for _ in range(2):
        done = raw.ok("POST", f"/{ds['id']}/completed")
        assert done["status"]["phase"] == "DATASTORE_OPTIMIZATION_STATUS_SUCCEEDED"
        assert done["status"]["state"] == "DATASTORE_STATE_CREATED"
        assert (done["spec"]["version"], done["spec"]["sizeBytes"], done["spec"]["fileCount"]) == (1, 250, 1)
    assert raw.complete_parts(ds["id"], "a.bin", obj["uploadId"], etags).status_code == 200
    assert read_version(client_of(cp), ds["id"]) == {"dir/a.bin": (data, 0o640)}
    # a complete version is immutable
    r = raw.call("POST", f"/{ds['id']}/manifest", json=manifest)
    assert r.status_code == 409 and "its content cannot change" in r.json()["message"]
    events = raw.ok("GET", f"/{ds['id']}/events")["events"]
    assert [e["phase"] for e in events] == [
        "DATASTORE_OPTIMIZATION_STATUS_UNSPECIFIED",
        "DATASTORE_OPTIMIZATION_STATUS_SUCCEEDED",
    ]


def test_files_sent_by_path_alone_as_the_original_client_does_are_hashed_by_the_server(cp: ControlPlane) -> None:
    raw = Raw(cp)
    ds = raw.create(unique("bypath"), sourceType="DATASTORE_SOURCE_TYPE_EXPANDED_FILES", source="", version=0)
    files = {"dir/a.txt": b"first half|second half", "b.bin": b"\x00\x01"}
    objects = raw.presign(ds["id"], {"key": "dir/a.txt", "partCount": "2"}, {"key": "b.bin", "partCount": "1"})
    for obj, data in zip(objects, files.values(), strict=True):
        urls = {int(u["partNumber"]): u["url"] for u in obj["urls"]}
        chunks = [data[:11], data[11:]] if len(urls) == 2 else [data]
        etags = {n: put(urls[n], chunk) for n, chunk in enumerate(chunks, 1)}
        assert raw.complete_parts(ds["id"], obj["key"], obj["uploadId"], etags).status_code == 200
    done = raw.ok("POST", f"/{ds['id']}/completed")
    assert (done["status"]["phase"], done["spec"]["fileCount"]) == ("DATASTORE_OPTIMIZATION_STATUS_SUCCEEDED", 2)
    assert read_version(client_of(cp), ds["id"]) == {k: (v, 0o644) for k, v in files.items()}


def test_a_path_that_is_a_file_and_a_folder_at_once_is_refused_at_completion(cp: ControlPlane) -> None:
    raw = Raw(cp)
    ds = raw.create(unique("clash"), sourceType="DATASTORE_SOURCE_TYPE_EXPANDED_FILES", source="", version=0)
    for key in ("data/x", "data/xy/z.txt", "data/x/deep/y.txt"):
        (obj,) = raw.presign(ds["id"], {"key": key, "partCount": "1"})
        etag = put(obj["urls"][0]["url"], key.encode())
        assert raw.complete_parts(ds["id"], key, obj["uploadId"], {1: etag}).status_code == 200
    r = raw.call("POST", f"/{ds['id']}/completed")
    assert r.status_code == 400, r.text
    assert "'data/x' is both a file and the directory of 'data/x/deep/y.txt'; fix the manifest" in r.json()["message"]
    assert raw.ok("GET", f"/{ds['id']}")["status"]["phase"] != "DATASTORE_OPTIMIZATION_STATUS_SUCCEEDED"


def test_content_that_does_not_match_its_hash_or_is_not_stored_is_refused(cp: ControlPlane) -> None:
    raw, name = Raw(cp), unique("hashes")
    ds = raw.create(name)
    data = b"the real bytes"
    (obj,) = raw.presign(
        ds["id"], {"key": "x", "partCount": "1", "blake3": blake3_hex(b"other"), "sizeBytes": len(data)}
    )
    etag = put(obj["urls"][0]["url"], data)
    r = raw.complete_parts(ds["id"], "x", obj["uploadId"], {1: etag})
    assert r.status_code == 409 and f"not the declared {blake3_hex(b'other')}" in r.json()["message"]
    entry = {"path": "x", "blake3": blake3_hex(b"never uploaded"), "sizeBytes": 14}
    r = raw.call("POST", f"/{ds['id']}/manifest", json={"files": [entry]})
    assert r.status_code == 409 and "is not stored yet: 'x'" in r.json()["message"]
    assert raw.ok(
        "POST", f"/{ds['id']}/missing-blobs", json={"blobs": [{"blake3": blake3_hex(b"nope"), "sizeBytes": 4}]}
    ) == {"missing": [blake3_hex(b"nope")]}
    for bad in ("../x", "/abs", "a//b", "a/./b"):
        r = raw.call("POST", f"/{ds['id']}/presigned-urls", json={"objects": [{"key": bad, "partCount": "1"}]})
        assert r.status_code == 400 and "invalid file path" in r.json()["message"], bad
    # a client from when content was named by SHA-256 is told what changed, not that a field is missing
    for path, body in [
        ("missing-blobs", {"blobs": [{"sha256": "0" * 64, "sizeBytes": 4}]}),
        ("manifest", {"files": [{"path": "x", "sha256": "0" * 64, "sizeBytes": 4}]}),
        ("presigned-urls", {"objects": [{"key": "x", "partCount": "1", "sha256": "0" * 64, "sizeBytes": 4}]}),
    ]:
        r = raw.call("POST", f"/{ds['id']}/{path}", json=body)
        assert r.status_code in (400, 422), path
        assert "named by its BLAKE3 (field blake3); upgrade grid-ops" in r.text, r.text


def test_lists_and_files_paginate(cp: ControlPlane, sdk: ControlPlane, tmp_path: Path) -> None:
    name = unique("pages")
    src = dataset(tmp_path / "data", count=3)
    for _ in range(3):
        Datastore(name=name, source=src).upload()
    raw = Raw(cp)
    first = raw.ok("GET", "", params={"names": name, "pageSize": 2})
    assert [d["spec"]["version"] for d in first["datastores"]] == [1, 2] and first["totalSize"] == "3"
    rest = raw.ok("GET", "", params={"names": name, "pageSize": 2, "pageToken": first["nextPageToken"]})
    assert [d["spec"]["version"] for d in rest["datastores"]] == [3] and "nextPageToken" not in rest
    files = cp.ok("GET", f"/v1/core/datastores/{name}:2/files", params={"pageSize": 4})
    assert len(files["files"]) == 4 and files["nextPageToken"]
    assert raw.ok("GET", f"/{name}")["spec"]["version"] == 3  # a bare name: the latest that succeeded


# --------------------------------------------------------------------------- bad input


def evil_tar(kind: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        fine = tarfile.TarInfo("fine.txt")
        fine.size = 2
        tar.addfile(fine, io.BytesIO(b"ok"))
        info = tarfile.TarInfo({"dotdot": "../escaped.txt", "absolute": "/tmp/escaped.txt"}.get(kind, "link"))
        if kind in ("dotdot", "absolute"):
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
        else:
            info.type = {"symlink": tarfile.SYMTYPE, "abs-symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}[kind]
            info.linkname = "/etc/passwd" if kind == "abs-symlink" else "../../outside"
            tar.addfile(info)
    return buffer.getvalue()


def upload_archive(raw: Raw, name: str, archive: bytes) -> dict[str, Any]:
    ds = raw.create(name, sourceType="DATASTORE_SOURCE_TYPE_COMPRESSED_FILE")
    (obj,) = raw.presign(ds["id"], {"key": "data.tar.gz", "partCount": "1"})
    etag = put(obj["urls"][0]["url"], archive)
    assert raw.complete_parts(ds["id"], "data.tar.gz", obj["uploadId"], {1: etag}).status_code == 200
    assert raw.ok("POST", f"/{ds['id']}/completed")["status"]["phase"] == "DATASTORE_OPTIMIZATION_STATUS_OPTIMIZING"
    return raw.wait(ds["id"])


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "abs-symlink", "hardlink"])
def test_archive_members_escaping_their_folder_fail_the_version_and_store_nothing(cp: ControlPlane, kind: str) -> None:
    raw = Raw(cp)
    done = upload_archive(raw, unique(f"evil-{kind}"), evil_tar(kind))
    assert done["status"]["phase"] == "DATASTORE_OPTIMIZATION_STATUS_FAILED"
    assert "outside its folder" in done["status"]["message"]
    assert (done["spec"]["fileCount"], done["spec"]["sizeBytes"]) == (0, 0)
    r = cp.call("GET", f"/v1/core/datastores/{done['id']}/files")
    assert r.status_code == 409 and "is failed" in r.json()["message"]
    assert not list((cp.home / "server").rglob("escaped.txt")) and not Path("/tmp/escaped.txt").exists()
    assert not list((cp.home / "server" / "datastores" / "work").glob("*"))
    r = raw.call("POST", f"/{done['id']}/completed")
    assert r.status_code == 409 and "failed" in r.json()["message"]


def test_missing_or_unreadable_source_is_refused_before_anything_is_created(sdk: ControlPlane, tmp_path: Path) -> None:
    name = unique("nosource")
    with pytest.raises(ValidationError, match=r"the datastore source .*nope does not exist"):
        Datastore(name=name, source=tmp_path / "nope").upload()
    src = make_tree(tmp_path / "data", {"ok.txt": b"fine"})
    (src / "dangling").symlink_to(tmp_path / "gone")
    if os.geteuid() != 0:  # root reads anything: a dangling link is what it cannot read
        (src / "secret.txt").write_text("x")
        (src / "secret.txt").chmod(0)
    with pytest.raises(ValidationError, match=r"cannot read .*dangling: No such file or directory"):
        Datastore(name=name, source=src).upload()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValidationError, match="holds no files"):
        Datastore(name=name, source=empty).upload()
    assert [d for d in list_datastores() if d.name == name] == []


@pytest.mark.parametrize("bad", ["Upper", "under_score", "-leading", "a" * 64, "dot.ted"])
def test_invalid_names_are_refused_by_the_sdk_and_the_server(cp: ControlPlane, sdk: ControlPlane, bad: str) -> None:
    with pytest.raises(ValidationError, match=rf"invalid datastore name {bad!r}"):
        Datastore(name=bad, source=".")
    r = Raw(cp).call("POST", "", json={"name": bad, "spec": {}})
    assert r.status_code == 400 and f"invalid datastore name {bad!r}" in r.json()["message"]


def test_a_version_that_does_not_exist_is_a_clear_not_found(
    cp: ControlPlane, sdk: ControlPlane, tmp_path: Path
) -> None:
    name = unique("exists")
    Datastore(name=name, source=make_tree(tmp_path / "d", {"a": b"a"})).upload()
    with pytest.raises(NotFoundError, match=rf"datastore '{name}' has no version 7; its versions are 1"):
        Datastore(name=name, version=7)
    with pytest.raises(NotFoundError, match=r"datastore 'never-made' not found.*pass source= as well"):
        Datastore(name="never-made")
    with pytest.raises(ValidationError, match="version must be a whole number >= 1"):
        Datastore(name=name, version=0)
    assert Raw(cp).call("GET", f"/{name}:7").status_code == 404
    r = Raw(cp).call("DELETE", f"/{name}")
    assert r.status_code == 400 and f"use {name}:N" in r.json()["message"]


def test_another_users_datastore_is_a_404(cp: ControlPlane, sdk: ControlPlane, tmp_path: Path) -> None:
    name = unique("private")
    ds = Datastore(name=name, source=make_tree(tmp_path / "d", {"a": b"a"}))
    ds.upload()
    other = Raw(cp, auth=add_user(cp.home, unique("mallory")))
    for method, path in [
        ("GET", f"/{ds.id}"),
        ("GET", f"/{name}:1"),
        ("GET", f"/{name}"),
        ("DELETE", f"/{name}:1"),
        ("GET", f"/{ds.id}/events"),
        ("POST", f"/{ds.id}/completed"),
    ]:
        r = other.call(method, path)
        assert r.status_code == 404, (method, path, r.text)
    assert other.call("POST", f"/{ds.id}/presigned-urls", json={"objects": []}).status_code == 404
    assert cp.call("GET", f"/v1/core/datastores/{ds.id}/files", auth=other.auth).status_code == 404
    assert [d for d in other.ok("GET", "")["datastores"] if d["name"] == name] == []
    assert ds.refresh().snapshot_status == "succeeded"


# --------------------------------------------------------------------------- remote sources


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A static HTTP server on 127.0.0.1 serving a folder of archives."""
    root = tmp_path_factory.mktemp("web")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(root))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()


def test_http_sources_are_downloaded_and_unpacked_by_the_server(
    sdk: ControlPlane, web: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = web
    src = dataset(tmp_path / "data", count=2)
    with tarfile.open(root / "data.tar.gz", "w:gz") as tar:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                tar.add(p, p.relative_to(src).as_posix())
    with zipfile.ZipFile(root / "data.zip", "w") as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(src).as_posix())
    (root / "plain.csv").write_bytes(b"a,b\n1,2\n")
    expected = {k: v[0] for k, v in tree_of(src).items()}
    for archive in ("data.tar.gz", "data.zip"):
        ds = Datastore(name=unique("web"), source=f"{url}/{archive}")
        ds.upload()
        assert ds.snapshot_status == "succeeded" and ds.source == f"{url}/{archive}"
        assert {k: v[0] for k, v in read_version(client_of(sdk), ds.id or "").items()} == expected
    plain = Datastore(source=f"{url}/plain.csv")
    assert plain.name == "plain"
    plain.upload()
    assert {k: v[0] for k, v in read_version(client_of(sdk), plain.id or "").items()} == {"plain.csv": b"a,b\n1,2\n"}


def test_an_unreachable_url_or_a_bad_zip_fails_the_version_with_the_reason(
    sdk: ControlPlane, web: tuple[str, Path]
) -> None:
    url, root = web
    port = free_port()
    with pytest.raises(GridError, match=rf"could not download http://127.0.0.1:{port}/x.tar.gz: .*refused"):
        Datastore(name=unique("unreachable"), source=f"http://127.0.0.1:{port}/x.tar.gz").upload()
    with pytest.raises(GridError, match="HTTP 404"):
        Datastore(name=unique("missing"), source=f"{url}/missing.tar.gz").upload()
    with zipfile.ZipFile(root / "evil.zip", "w") as zf:
        zf.writestr("../escaped.txt", b"evil")
    with pytest.raises(GridError, match=r"'../escaped.txt' would be written outside its folder"):
        Datastore(name=unique("evilzip"), source=f"{url}/evil.zip").upload()


# --------------------------------------------------------------------------- CLI and config


def test_cli_creates_lists_deletes_and_has_nothing_to_resume(sdk: ControlPlane, tmp_path: Path) -> None:
    src = dataset(tmp_path / "data", count=2)
    name = unique("cli")
    runner = CliRunner()
    created = runner.invoke(cli, ["datastore", "create", str(src), "--name", name, "--compression"])
    assert created.exit_code == 0, created.output
    assert f"datastore {name} version 1 is ready: 4 files" in created.output
    assert f"{name}: packing 4 files into one gzip tar" in created.output  # plain lines: not a terminal
    listed = runner.invoke(cli, ["-o", "json", "datastore", "list"])
    assert [d["spec"]["version"] for d in json.loads(listed.output) if d["name"] == name] == [1]
    table = runner.invoke(cli, ["datastore", "list"]).output
    assert any(line.split()[:3] == [name, "1", "succeeded"] for line in table.splitlines())
    deleted = runner.invoke(cli, ["datastore", "delete", "--name", name, "--version", "1"])
    assert deleted.exit_code == 0 and f"deleted version 1 of datastore {name}" in deleted.output
    again = runner.invoke(cli, ["datastore", "delete", "--name", name, "--version", "1"])
    assert again.exit_code == 1 and "not found" in again.output
    nothing = runner.invoke(cli, ["datastore", "resume"])
    assert nothing.exit_code == 1 and "no interrupted upload to resume" in nothing.output


def test_storage_config_is_validated_with_clear_errors(tmp_path: Path) -> None:
    def load(storage: str) -> None:
        cfg = tmp_path / "cfg.yml"
        cfg.write_text(f"clusters:\n  - id: c\n    executor: local\n    storage: {storage}\n")
        load_config(cfg)

    with pytest.raises(ConfigError, match=r"clusters\[0\].storage: unknown key\(s\) bukket; allowed: backend, bucket"):
        load("{backend: s3, bukket: x}")
    with pytest.raises(ConfigError, match=r"storage.backend must be one of local, s3, got 'gcs'"):
        load("{backend: gcs}")
    with pytest.raises(ConfigError, match=r"storage.bucket is required for the s3 backend"):
        load("{backend: s3}")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) bucket; allowed: backend, path"):
        load("{backend: local, bucket: x}")
    cfg = tmp_path / "ok.yml"
    cfg.write_text("clusters:\n  - id: c\n    storage: {backend: s3, bucket: b, prefix: /p/, endpoint_url: http://h}\n")
    storage = load_config(cfg).clusters["c"].storage
    assert (storage.backend, storage.bucket, storage.prefix, storage.endpoint_url) == ("s3", "b", "p", "http://h")
