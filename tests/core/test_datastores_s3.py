"""Datastores on the S3 storage backend: a real control plane whose ``s3`` cluster keeps its datastores in a
real ``moto_server`` on 127.0.0.1. Parts go straight to S3 through presigned URLs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from grid_ops import Datastore, Run
from grid_ops.errors import GridError
from tests.core.controlplane import ControlPlane, start_control_plane
from tests.core.datastore_helpers import (
    Raw,
    blake3_hex,
    client_of,
    expected_view,
    inspect_project,
    make_tree,
    md5,
    point_sdk_at,
    put,
    random_bytes,
    read_version,
    seen,
    tree_of,
    unique,
)
from tests.core.s3server import CREDENTIALS, S3Server
from tests.core.test_datastores import StopAfter

MIB = 1024 * 1024
BUCKET, PREFIX, SOURCES = "grid-datastores", "team/ds", "source-data"
CONFIG = """
default_cluster: s3
clusters:
  - id: s3
    executor: local
    capacity: {{cpu: 2, gpu: 0, memory_mb: 4096}}
    instance_types:
      - {{name: cpu-1, cpu: 1, gpu: 0, memory_mb: 1024, hourly_cost: 0.1}}
    storage: {{backend: s3, bucket: {bucket}, prefix: {prefix}, endpoint_url: "{url}", region: us-east-1}}
  - id: local
    executor: local
    capacity: {{cpu: 2, gpu: 0, memory_mb: 4096}}
    instance_types:
      - {{name: cpu-1, cpu: 1, gpu: 0, memory_mb: 1024, hourly_cost: 0.1}}
"""


@pytest.fixture(scope="module")
def s3cp(moto: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane whose default cluster ``s3`` stores datastores in the moto bucket."""
    s3 = moto.client()
    for bucket in (BUCKET, SOURCES):
        s3.create_bucket(Bucket=bucket)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in CREDENTIALS.items():
            mp.setenv(key, value)  # inherited by the control plane process (boto3's credential chain)
        plane = start_control_plane(
            tmp_path_factory.mktemp("s3-home"), CONFIG.format(bucket=BUCKET, prefix=PREFIX, url=moto.url)
        )
    yield plane
    plane.stop()


@pytest.fixture()
def sdk(s3cp: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ControlPlane:
    point_sdk_at(monkeypatch, s3cp, tmp_path / "home", cluster="s3")
    monkeypatch.setenv("GRID_OPS_UPLOAD_PART_SIZE", str(5 * MIB))
    return s3cp


def keys(moto: S3Server, prefix: str) -> list[str]:
    pages = moto.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [str(o["Key"]) for page in pages for o in page.get("Contents", [])]


def source(root: Path, name: str, big: int = 11 * MIB) -> Path:
    seed = int(blake3_hex(name.encode())[:8], 16)
    files = {f"small/{i}.txt": f"{name} {i}\n".encode() for i in range(5)}
    files["big.bin"] = random_bytes(big, seed)
    return make_tree(root, files)


def test_a_directory_uploads_straight_to_the_bucket_in_parts(sdk: ControlPlane, moto: S3Server, tmp_path: Path) -> None:
    name = unique("s3dir")
    src = source(tmp_path / "data", name)
    ds = Datastore(name=name, source=src)
    ds.upload()
    assert (ds.version, ds.snapshot_status, ds.cluster_id, ds.file_count) == (1, "succeeded", "s3", 6)
    assert ds.last_upload is not None and ds.last_upload.parts_sent == 3 + 5  # 11 MiB in 5 MiB parts, 5 small
    assert ds.last_upload.bytes_sent == ds.size
    client = client_of(sdk, "s3")
    files = list(client.iter_datastore_files(ds.id or ""))
    assert all((f.url or "").startswith(moto.url + f"/{BUCKET}/{PREFIX}/blobs/") for f in files)
    assert read_version(client, ds.id or "") == tree_of(src)
    stored = keys(moto, f"{PREFIX}/blobs/{sdk.user_id}/")
    assert sorted(k.rsplit("/", 1)[1] for k in stored) == sorted({f.blake3 or "" for f in files})
    assert not (sdk.home / "server" / "datastores" / "s3").exists()  # no bytes on the control plane's disk


def test_versions_share_content_in_the_bucket_and_deleting_one_keeps_the_other(
    sdk: ControlPlane, moto: S3Server, tmp_path: Path
) -> None:
    name = unique("s3versions")
    src = source(tmp_path / "data", name, big=6 * MIB)
    first = Datastore(name=name, source=src)
    first.upload()
    (src / "small" / "0.txt").write_text("changed\n")
    second = Datastore(name=name, source=src)
    second.upload()
    assert second.version == 2 and second.last_upload is not None
    assert second.last_upload.bytes_sent == len("changed\n")
    blob_prefix = f"{PREFIX}/blobs/{sdk.user_id}/"
    before = set(keys(moto, blob_prefix))
    first.delete()
    after = set(keys(moto, blob_prefix))
    gone = before - after
    assert [k.rsplit("/", 1)[1] for k in gone] == [blake3_hex(f"{name} 0\n".encode())]  # only what v2 does not use
    assert read_version(client_of(sdk, "s3"), f"{name}:2") == tree_of(src)


def test_compression_unpacks_into_the_bucket(sdk: ControlPlane, tmp_path: Path) -> None:
    name = unique("s3packed")
    src = source(tmp_path / "data", name, big=1 * MIB)
    ds = Datastore(name=name, source=src, compression=True)
    ds.upload()
    assert ds.snapshot_status == "succeeded" and ds.file_count == 6
    assert read_version(client_of(sdk, "s3"), ds.id or "") == tree_of(src)


def test_parts_are_checked_against_what_s3_holds(sdk: ControlPlane, moto: S3Server) -> None:
    raw = Raw(sdk, "s3")
    ds = raw.create(unique("s3wire"))
    data = random_bytes(5 * MIB + 10, 77)
    obj: dict[str, Any] = {"key": "x.bin", "blake3": blake3_hex(data), "sizeBytes": len(data)}
    r = raw.call(
        "POST", f"/{ds['id']}/presigned-urls", json={"objects": [{**obj, "partCount": "2", "partSizeBytes": MIB}]}
    )
    assert r.status_code == 400 and "smaller than the s3 storage's minimum" in r.json()["message"]
    (up,) = raw.presign(ds["id"], {**obj, "partCount": "2", "partSizeBytes": 5 * MIB})
    urls = {int(u["partNumber"]): u["url"] for u in up["urls"]}
    assert all(u.startswith(moto.url) for u in urls.values())
    etags = {1: put(urls[1], data[: 5 * MIB])}
    assert etags[1] == md5(data[: 5 * MIB])
    r = raw.complete_parts(ds["id"], "x.bin", up["uploadId"], {**etags, 2: md5(data[5 * MIB :])})
    assert r.status_code == 409 and "part(s) 2 of 2 have not arrived" in r.json()["message"]
    etags[2] = put(urls[2], data[5 * MIB :])
    r = raw.complete_parts(ds["id"], "x.bin", up["uploadId"], {**etags, 2: "f" * 32})
    assert r.status_code == 409 and "the ETag of part 2 of 'x.bin'" in r.json()["message"]
    for _ in range(2):
        assert raw.complete_parts(ds["id"], "x.bin", up["uploadId"], etags).status_code == 200
    raw.ok(
        "POST",
        f"/{ds['id']}/manifest",
        json={"files": [{"path": "x.bin", "blake3": blake3_hex(data), "sizeBytes": len(data)}]},
    )
    for _ in range(2):
        assert raw.ok("POST", f"/{ds['id']}/completed")["status"]["phase"] == "DATASTORE_OPTIMIZATION_STATUS_SUCCEEDED"
    assert read_version(client_of(sdk, "s3"), ds["id"]) == {"x.bin": (data, 0o644)}


def test_an_object_of_one_part_is_a_single_put_checked_like_a_part(sdk: ControlPlane, moto: S3Server) -> None:
    raw = Raw(sdk, "s3")
    ds = raw.create(unique("s3single"))
    data = random_bytes(300_000, int(blake3_hex(ds["name"].encode())[:8], 16))
    key = f"{PREFIX}/blobs/{sdk.user_id}/{blake3_hex(data)[:2]}/{blake3_hex(data)}"
    obj = {"key": "one.bin", "blake3": blake3_hex(data), "sizeBytes": len(data), "partCount": "1", "partSizeBytes": MIB}
    (up,) = raw.presign(ds["id"], obj)
    (url,) = [u["url"] for u in up["urls"]]
    uploads = moto.client().list_multipart_uploads(Bucket=BUCKET, Prefix=key).get("Uploads", [])
    assert uploads == []  # no multipart upload: one PutObject straight to the content's address
    r = raw.complete_parts(ds["id"], "one.bin", up["uploadId"], {1: md5(data)})
    assert r.status_code == 409 and "part(s) 1 of 1 have not arrived" in r.json()["message"]
    assert put(url, data[:1000]) == md5(data[:1000])  # the wrong bytes: S3 keeps them, completing refuses them
    r = raw.complete_parts(ds["id"], "one.bin", up["uploadId"], {1: md5(data)})
    assert r.status_code == 409 and "the ETag of part 1 of 'one.bin'" in r.json()["message"]
    (again,) = raw.presign(ds["id"], {**obj, "uploadId": up["uploadId"]})  # a fresh URL for the same upload
    assert again["uploadId"] == up["uploadId"]
    assert put(again["urls"][0]["url"], data) == md5(data)
    for _ in range(2):
        assert raw.complete_parts(ds["id"], "one.bin", up["uploadId"], {1: md5(data)}).status_code == 200
    manifest = {"files": [{"path": "one.bin", "blake3": blake3_hex(data), "sizeBytes": len(data)}]}
    raw.ok("POST", f"/{ds['id']}/manifest", json=manifest)
    assert raw.ok("POST", f"/{ds['id']}/completed")["status"]["phase"] == "DATASTORE_OPTIMIZATION_STATUS_SUCCEEDED"
    assert read_version(client_of(sdk, "s3"), ds["id"]) == {"one.bin": (data, 0o644)}


def test_an_s3_prefix_is_copied_and_an_empty_one_fails(sdk: ControlPlane, moto: S3Server) -> None:
    s3 = moto.client()
    prefix = unique("exports")
    wanted = {"a.csv": b"1,2\n", "deep/b.csv": b"3,4\n"}
    for rel, data in wanted.items():
        s3.put_object(Bucket=SOURCES, Key=f"{prefix}/{rel}", Body=data)
    ds = Datastore(source=f"s3://{SOURCES}/{prefix}/")
    assert ds.name == prefix
    ds.upload()
    assert {k: v[0] for k, v in read_version(client_of(sdk, "s3"), ds.id or "").items()} == wanted
    with pytest.raises(GridError, match=rf"there are no objects under s3://{SOURCES}/nothing-here/"):
        Datastore(name=unique("empty"), source=f"s3://{SOURCES}/nothing-here/").upload()


def test_an_interrupted_s3_upload_resumes_with_the_missing_parts(
    sdk: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRID_OPS_UPLOAD_THREADS", "1")
    name = unique("s3resume")
    src = make_tree(tmp_path / "data", {"big.bin": random_bytes(16 * MIB, int(blake3_hex(name.encode())[:8], 16))})
    with pytest.raises(KeyboardInterrupt):
        Datastore(name=name, source=src).upload(progress=StopAfter(1))
    again = Datastore(name=name, source=src)
    again.upload()
    assert again.last_upload is not None
    resumed = again.last_upload.bytes_resumed
    assert resumed >= 5 * MIB and again.last_upload.bytes_sent == 16 * MIB - resumed
    assert read_version(client_of(sdk, "s3"), f"{name}:1") == tree_of(src)
    assert os.listdir(tmp_path / "home" / "uploads") == []


# --------------------------------------------------------------------------- mounting into experiments


def test_twenty_experiments_on_s3_download_the_version_once(
    sdk: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = unique("s3mount")
    src = source(tmp_path / "data", name, big=2 * MIB)
    (src / "small" / "0.txt").chmod(0o755)
    ds = Datastore(name=name, source=src)
    ds.upload()
    monkeypatch.chdir(inspect_project(tmp_path / "project"))
    run = Run(run_command='python3 inspect_ds.py data --i "range(20)"', datastore=ds, datastore_mount_dir="data")
    run.start()
    assert run.wait(timeout=180) == "succeeded"
    views, logs = zip(*(seen(sdk, f"{run.name}-exp{i}", "s3") for i in range(20)), strict=True)
    fetched = [line for log in logs for line in log.splitlines() if "fetched into this node's cache" in line]
    assert len(fetched) == 1 and sum(log.count("found in this node's cache") for log in logs) == 19
    assert (
        f"6 files, {ds.size} bytes (0 copied from the local store, 6 downloaded, {ds.size} bytes" in (fetched[0])
    )  # every byte once, for twenty experiments
    cache = sdk.home / "server" / "datastore-cache" / (ds.id or "")
    for view in views:
        assert view["dir"] == str(cache) and view["link"] == str(cache)
        assert {path: (digest, mode) for path, (digest, mode, _) in view["files"].items()} == expected_view(src)


def test_an_experiment_whose_version_cannot_be_fetched_fails_saying_why(
    sdk: ControlPlane, moto: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = unique("s3lost")
    src = make_tree(tmp_path / "data", {"kept.txt": f"{name} kept\n".encode(), "lost.txt": f"{name} lost\n".encode()})
    ds = Datastore(name=name, source=src)
    ds.upload()
    lost = blake3_hex(f"{name} lost\n".encode())
    moto.client().delete_object(Bucket=BUCKET, Key=f"{PREFIX}/blobs/{sdk.user_id}/{lost[:2]}/{lost}")
    monkeypatch.chdir(inspect_project(tmp_path / "project"))
    run = Run(run_command="python3 inspect_ds.py", datastore=ds)
    run.start()
    assert run.wait(timeout=60) == "failed"
    (exp,) = sdk.experiments(run.name or "", cluster="s3")
    says = f"datastore {name}:1 could not be made available: file 'lost.txt' could not be downloaded: HTTP 404"
    assert exp["status"]["message"] == says
    assert says in sdk.ok("GET", f"/v1/core/s3/experiments/{exp['name']}/logs")["data"]
    cache = sdk.home / "server" / "datastore-cache"
    assert not [e for e in os.listdir(cache) if ds.id in e and not e.endswith((".lock", ".use"))]  # locks stay
