"""Datastore behaviour around the upload and fetch paths, against real control plane processes: same-host
uploads (the control plane copies files from disk), updating a version (``PUT``), the ``http(s)`` allow-list
against SSRF, and limits against archive bombs. ``locked`` is a control plane whose config turns same-host
uploads off, allows one URL prefix of a local web server, and lowers the unpack limits and node cache.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from grid_ops import Datastore, digests
from grid_ops.errors import GridError
from grid_ops.upload import same_host
from grid_ops.upload.progress import Progress
from grid_ops.upload.state import StateStore
from grid_ops.upload.transfer import SourceChanged
from tests.core.controlplane import ControlPlane, add_user, start_control_plane
from tests.core.datastore_helpers import (
    Raw,
    blake3_hex,
    client_of,
    make_tree,
    point_sdk_at,
    random_bytes,
    read_version,
    stored_content,
    tree_of,
    unique,
)

ZEROS = 400_000  # highly compressible: a few hundred bytes packed


class Handler(http.server.SimpleHTTPRequestHandler):
    """Static files, ``/public/redirect`` answering a redirect to ``/private/data.tar.gz``, and
    ``/public/endless`` sending zeros without announcing a length, until the client hangs up."""

    def do_GET(self) -> None:
        if self.path.startswith("/public/endless"):
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            self.close_connection = True
            chunk = bytes(64 * 1024)
            with contextlib.suppress(OSError):
                for _ in range(1000):  # 64 MiB at most, should the client not stop
                    self.wfile.write(chunk)
            return
        if self.path.startswith("/public/redirect"):
            self.send_response(302)
            self.send_header("Location", "/private/data.tar.gz")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("web")
    (root / "public").mkdir()
    (root / "private").mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: Handler(*a, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()


LOCKED = """
cancel_grace_seconds: 2
datastores:
  same_host_ingest: false
  http_allow: ["{prefix}"]
  download_max_bytes: 2000000
  unpack_max_bytes: 1000000
  unpack_max_files: 20
  unpack_max_ratio: 50
  node_cache_max_bytes: 150000
clusters:
  - id: local
    executor: local
    capacity: {{cpu: 2, gpu: 0, memory_mb: 8192}}
    instance_types:
      - {{name: cpu-1, cpu: 1, gpu: 0, memory_mb: 2048, hourly_cost: 0.36}}
"""


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory, web: tuple[str, Path]) -> Iterator[ControlPlane]:
    plane = start_control_plane(tmp_path_factory.mktemp("locked"), LOCKED.format(prefix=f"{web[0]}/public/"))
    yield plane
    plane.stop()


def blobs_of(plane: ControlPlane) -> set[str]:
    return set(stored_content(plane))


# --------------------------------------------------------------------------- same-host uploads


def test_same_host_upload_copies_from_disk_and_stores_each_content_once(
    cp: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_sdk_at(monkeypatch, cp, tmp_path / "home")
    name = unique("samehost")
    seed = int(blake3_hex(name.encode())[:8], 16)
    src = make_tree(tmp_path / "data", {f"d/f{i}.bin": random_bytes(30_000 + i, seed + i) for i in range(6)})
    (src / "twin.bin").write_bytes((src / "d" / "f0.bin").read_bytes())  # same content, stored once
    (src / "run.sh").write_bytes(b"#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    before = blobs_of(cp)
    first = Datastore(name=name, source=src)
    first.upload()
    stats = first.last_upload
    assert stats is not None and stats.bytes_sent == 0 and stats.parts_sent == 0  # nothing over HTTP
    assert stats.bytes_copied_on_host == first.size == sum(len(d) for d, _ in tree_of(src).values())
    assert read_version(client_of(cp), f"{name}:1") == tree_of(src)  # content and modes
    new = blobs_of(cp) - before
    assert new == {blake3_hex(d) for d, _ in tree_of(src).values()} and len(new) == 7  # the twin shares f0's blob
    assert {stored_content(cp)[sha] for sha in new} == {"pack"}  # small files: inside a pack, no file each

    changed = f"changed {name}".encode()  # content no other test stored for this user
    (src / "d" / "f3.bin").write_bytes(changed)
    second = Datastore(name=name, source=src)
    second.upload()
    assert read_version(client_of(cp), f"{name}:2") == tree_of(src)
    assert blobs_of(cp) - before - new == {blake3_hex(changed)}  # only the new content was added
    assert not list((tmp_path / "home" / "uploads").glob("*"))  # progress (and the probe file) gone


def test_files_unchanged_since_an_earlier_upload_are_not_read_again(
    cp: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_sdk_at(monkeypatch, cp, tmp_path / "home")
    name = unique("cached-hashes")
    seed = int(blake3_hex(name.encode())[:8], 16)
    src = make_tree(tmp_path / "data", {f"f{i}.bin": random_bytes(20_000, seed + i) for i in range(5)})
    time.sleep(2.1)  # files changed in the last two seconds are never trusted by their times alone
    Datastore(name=name, source=src).upload()
    (src / "f1.bin").write_bytes(random_bytes(20_000, seed + 100))  # changed
    old = (src / "f2.bin").stat()
    (src / "f2.bin").write_bytes(random_bytes(20_000, seed + 200))  # changed, size and mtime put back:
    os.utime(src / "f2.bin", ns=(old.st_atime_ns, old.st_mtime_ns))  # only its change time tells
    second = Datastore(name=name, source=src)
    second.upload()
    stats = second.last_upload
    assert stats is not None
    assert stats.bytes_copied_on_host == 40_000 and stats.files_already_stored == 3  # f0, f3, f4 not read
    assert read_version(client_of(cp), f"{name}:2") == tree_of(src)


class StopAfterBatch(Progress):
    """Interrupts a same-host upload once a batch has been stored (as Ctrl-C would)."""

    def advance(self, nbytes: int) -> None:
        raise KeyboardInterrupt


def test_an_interrupted_same_host_upload_resumes_with_the_files_not_recorded(
    cp: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(same_host, "BATCH_FILES", 2)  # small batches (the default is 1,000 files)
    monkeypatch.setattr(same_host, "IN_FLIGHT", 1)
    point_sdk_at(monkeypatch, cp, tmp_path / "home")
    name = unique("interrupted")
    seed = int(blake3_hex(name.encode())[:8], 16)
    src = make_tree(tmp_path / "data", {f"f{i}.bin": random_bytes(10_000, seed + i) for i in range(6)})
    with pytest.raises(KeyboardInterrupt):
        Datastore(name=name, source=src).upload(progress=StopAfterBatch())
    (saved,) = (tmp_path / "home" / "uploads").glob("*.json")
    state = StateStore(tmp_path / "home").load(saved.stem)
    assert state is not None and len(state.recorded) == 2  # the first batch is stored and recorded
    assert all(f.blake3 == blake3_hex(f.local.read_bytes()) for f in state.files if f.path in state.recorded)
    again = Datastore(name=name, source=src)
    again.upload()
    assert again.last_upload is not None and again.last_upload.bytes_copied_on_host == 40_000  # the rest only
    assert again.version == 1 and read_version(client_of(cp), f"{name}:1") == tree_of(src)


class EditWhenCopying(Progress):
    """Changes a file of the source just before the control plane copies the files (a user still writing)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def stage(self, text: str) -> None:
        if text.startswith("copying"):
            time.sleep(0.02)  # a new modification time, whatever the clock's resolution
            self.path.write_bytes(self.path.read_bytes()[::-1])


def test_a_file_changed_during_a_same_host_upload_is_named_and_not_stored(
    cp: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_sdk_at(monkeypatch, cp, tmp_path / "home")
    name = unique("edited")
    src = make_tree(tmp_path / "data", {"a.bin": random_bytes(5000, 1), "b.bin": b"edited while uploading"})
    with pytest.raises(SourceChanged) as caught:
        Datastore(name=name, source=src).upload(progress=EditWhenCopying(src / "b.bin"))
    message = str(caught.value)
    assert "1 file(s) of" in message and "changed during the upload" in message and "b.bin" in message
    assert f"grid-ops datastore delete --name {name} --version 1" in message
    assert blake3_hex(b"edited while uploading"[::-1]) not in blobs_of(cp)
    assert Raw(cp).ok("GET", f"/{name}:1")["status"]["phase"] == "DATASTORE_OPTIMIZATION_STATUS_UNSPECIFIED"


def test_same_host_requests_are_checked(cp: ControlPlane, tmp_path: Path) -> None:
    raw = Raw(cp)
    ds = raw.create(unique("localfiles"))
    data = tmp_path / "x.bin"
    data.write_bytes(b"x" * 100)
    st = data.stat()
    probe = tmp_path / "probe"
    probe.write_text("token-1")

    def body(**f: Any) -> dict[str, Any]:
        entry = {"path": "x.bin", "localPath": str(data), "sizeBytes": 100, "mtimeNs": st.st_mtime_ns, **f}
        return {"probePath": str(probe), "probeToken": "token-1", "files": [entry]}

    r = raw.call("POST", f"/{ds['id']}/local-files", json=body(localPath="x.bin"))
    assert r.status_code == 400 and "must be an absolute path" in r.json()["message"]
    r = raw.call("POST", f"/{ds['id']}/local-files", json=body(path="../x"))
    assert r.status_code == 400 and "invalid file path" in r.json()["message"]
    twice = body()
    twice["files"] *= 2
    r = raw.call("POST", f"/{ds['id']}/local-files", json=twice)
    assert r.status_code == 400 and "'x.bin' appears more than once in the request" in r.json()["message"]
    wrong_probe = {**body(), "probeToken": "another"}  # the server does not see the client's files
    assert raw.ok("POST", f"/{ds['id']}/local-files", json=wrong_probe) == {
        "sameHost": False,
        "files": [],
        "changed": [],
        "unavailable": [],
    }
    stale = raw.ok("POST", f"/{ds['id']}/local-files", json=body(mtimeNs=st.st_mtime_ns - 1))
    assert stale["changed"] == ["x.bin"] and stale["files"] == []
    wrong_hash = raw.ok("POST", f"/{ds['id']}/local-files", json=body(blake3=blake3_hex(b"other")))
    assert wrong_hash["changed"] == ["x.bin"]
    database = next((cp.home / "server").glob("*.db"))  # the control plane's own files are never read
    dbst = database.stat()
    own = body(localPath=str(database), sizeBytes=dbst.st_size, mtimeNs=dbst.st_mtime_ns)
    assert raw.ok("POST", f"/{ds['id']}/local-files", json=own)["unavailable"] == ["x.bin"]
    link = tmp_path / "db-link"
    link.symlink_to(database)
    through_link = body(localPath=str(link), sizeBytes=dbst.st_size, mtimeNs=dbst.st_mtime_ns)
    assert raw.ok("POST", f"/{ds['id']}/local-files", json=through_link)["unavailable"] == ["x.bin"]
    roundabout = f"{database.parent}/../{database.parent.name}/{database.name}"  # the database by another way
    around = body(localPath=roundabout, sizeBytes=dbst.st_size, mtimeNs=dbst.st_mtime_ns)
    assert raw.ok("POST", f"/{ds['id']}/local-files", json=around)["unavailable"] == ["x.bin"]
    beside = database.parent.parent / f"{database.parent.name}-beside"  # a name that only starts like it
    beside.mkdir()
    (beside / "x.bin").write_bytes(b"x" * 100)
    os.utime(beside / "x.bin", ns=(st.st_atime_ns, st.st_mtime_ns))
    near = raw.ok("POST", f"/{ds['id']}/local-files", json=body(localPath=str(beside / "x.bin")))
    assert near["unavailable"] == [] and near["files"][0]["path"] == "x.bin"
    fifo = tmp_path / "fifo"  # nobody writes to it: opening it to read would wait for a writer for ever
    os.mkfifo(fifo)
    piped = raw.ok("POST", f"/{ds['id']}/local-files", json=body(localPath=str(fifo)))
    assert piped["changed"] == ["x.bin"] and piped["files"] == []  # not the regular file that was scanned
    probe_fifo = tmp_path / "probe-fifo"
    os.mkfifo(probe_fifo)
    piped_probe = raw.ok("POST", f"/{ds['id']}/local-files", json={**body(), "probePath": str(probe_fifo)})
    assert piped_probe["sameHost"] is False
    good = raw.ok("POST", f"/{ds['id']}/local-files", json=body())
    assert good["files"] == [{"path": "x.bin", "blake3": blake3_hex(b"x" * 100), "sizeBytes": 100}]
    done = raw.ok("POST", f"/{ds['id']}/completed")
    assert (done["spec"]["fileCount"], done["spec"]["sizeBytes"]) == (1, 100)
    r = raw.call("POST", f"/{ds['id']}/local-files", json=body())
    assert r.status_code == 409 and "its content cannot change" in r.json()["message"]


def test_same_host_uploads_off_are_refused_and_the_sdk_sends_parts(
    locked: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = Raw(locked)
    ds = raw.create(unique("off"))
    body = {"probePath": "/nonexistent", "probeToken": "t", "files": []}
    r = raw.call("POST", f"/{ds['id']}/local-files", json=body)
    assert r.status_code == 403 and "datastores.same_host_ingest" in r.json()["message"]
    point_sdk_at(monkeypatch, locked, tmp_path / "home")
    src = make_tree(tmp_path / "data", {"a.bin": random_bytes(20_000, 5), "b.txt": b"b"})
    store = Datastore(name=unique("parts"), source=src)
    store.upload()
    assert store.last_upload is not None and store.last_upload.bytes_copied_on_host == 0
    assert store.last_upload.bytes_sent == 20_001
    assert read_version(client_of(locked), store.id or "") == tree_of(src)


# --------------------------------------------------------------------------- updating a version


def test_update_changes_only_the_source_of_an_uploading_version(cp: ControlPlane, web: tuple[str, Path]) -> None:
    raw = Raw(cp)
    name = unique("update")
    ds = raw.create(name)
    changed = raw.ok("PUT", f"/{ds['id']}", json={"name": name, "spec": {"source": "laptop:/data/2026-11-26"}})
    assert changed["spec"]["source"] == "laptop:/data/2026-11-26"
    current = raw.ok("GET", f"/{name}:1")
    assert raw.ok("PUT", f"/{name}:1", json={"name": current["name"], "spec": current["spec"]}) == current
    refusals = [
        ({"name": "renamed"}, 409, "cannot be renamed to 'renamed'"),
        ({"spec": {"version": 5}}, 409, "spec.version of version 1 of datastore"),
        ({"spec": {"clusterId": "big"}}, 409, "spec.clusterId"),
        ({"spec": {"sourceType": "DATASTORE_SOURCE_TYPE_HTTP_URL"}}, 409, "spec.sourceType"),
        ({"spec": {"sizeMib": 7}}, 409, "spec.sizeMib"),
        ({"spec": {"fsxSpec": {"storageCapacityGib": 1}}}, 400, "offers no FSx"),
    ]
    for body, status, says in refusals:
        r = raw.call("PUT", f"/{ds['id']}", json=body)
        assert r.status_code == status and says in r.json()["message"], (body, r.text)
    assert raw.ok("GET", f"/{ds['id']}") == current  # nothing changed
    manifest = {"files": []}
    raw.ok("POST", f"/{ds['id']}/manifest", json=manifest)
    raw.ok("POST", f"/{ds['id']}/completed")
    r = raw.call("PUT", f"/{ds['id']}", json={"spec": {"source": "elsewhere"}})
    assert r.status_code == 409 and "is succeeded and immutable" in r.json()["message"]
    assert raw.ok("GET", f"/{ds['id']}")["spec"]["source"] == "laptop:/data/2026-11-26"

    url, root = web
    (root / "private" / "note.txt").write_text("hello")
    fetched = raw.create(unique("fetched"), source=f"{url}/private/note.txt")
    r = raw.call("PUT", f"/{fetched['id']}", json={"spec": {"source": f"{url}/private/other.txt"}})
    assert r.status_code == 409 and "the server fetched this version from" in r.json()["message"]
    r = raw.call("PUT", f"/{name}:9", json={"spec": {"source": "x"}})
    assert r.status_code == 404 and "has no version 9" in r.json()["message"]
    other = Raw(cp, auth=add_user(cp.home, unique("eve")))
    assert other.call("PUT", f"/{ds['id']}", json={"spec": {"source": "x"}}).status_code == 404


# --------------------------------------------------------------------------- http(s) sources and SSRF


def test_http_sources_outside_the_allow_list_are_refused_before_anything_is_stored(
    locked: ControlPlane, web: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = web
    data = make_tree(tmp_path / "data", {"a.txt": b"a\n", "b/c.txt": b"c\n"})
    for folder in ("public", "private"):
        with tarfile.open(root / folder / "data.tar.gz", "w:gz") as tar:
            for p in sorted(data.rglob("*")):
                if p.is_file():
                    tar.add(p, p.relative_to(data).as_posix())
    raw = Raw(locked)
    for refused in (f"{url}/private/data.tar.gz", f"http://localhost:{url.rsplit(':', 1)[1]}/public/data.tar.gz"):
        name = unique("ssrf")
        r = raw.call("POST", "", json={"name": name, "spec": {"source": refused}})
        assert r.status_code == 400, r.text
        message = r.json()["message"]
        assert "a loopback, private or link-local address" in message and "datastores.http_allow" in message
        assert raw.ok("GET", "", params={"names": name})["datastores"] == []  # nothing stored

    allowed = raw.create(unique("allowed"), source=f"{url}/public/data.tar.gz")
    raw.ok("POST", f"/{allowed['id']}/completed")
    assert raw.wait(allowed["id"])["status"]["phase"] == "DATASTORE_OPTIMIZATION_STATUS_SUCCEEDED"
    assert {k: v[0] for k, v in read_version(client_of(locked), allowed["id"]).items()} == {
        "a.txt": b"a\n",
        "b/c.txt": b"c\n",
    }

    redirected = raw.create(unique("redirect"), source=f"{url}/public/redirect")
    raw.ok("POST", f"/{redirected['id']}/completed")
    failed = raw.wait(redirected["id"])
    assert failed["status"]["phase"] == "DATASTORE_OPTIMIZATION_STATUS_FAILED"
    assert (
        f"could not download {url}/public/redirect: {url}/private/data.tar.gz points at" in failed["status"]["message"]
    )
    assert "datastores.http_allow" in failed["status"]["message"]


# --------------------------------------------------------------------------- archive bombs


def bomb(kind: str) -> tuple[str, dict[str, bytes]]:
    """Files that pack into an archive over one of ``locked``'s limits, and the setting it should name."""
    if kind == "ratio":
        return "datastores.unpack_max_ratio", {"zeros.bin": bytes(ZEROS)}
    if kind == "bytes":
        return "datastores.unpack_max_bytes", {"noise.bin": random_bytes(1_100_000, 77)}
    return "datastores.unpack_max_files", {f"f{i:02d}.txt": f"{i}\n".encode() for i in range(25)}


@pytest.mark.parametrize("kind", ["ratio", "bytes", "files"])
def test_an_uploaded_archive_over_the_unpack_limits_fails_the_version_and_stores_nothing(
    locked: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    setting, files = bomb(kind)
    point_sdk_at(monkeypatch, locked, tmp_path / "home")
    src = make_tree(tmp_path / "data", files)
    name = unique(f"bomb-{kind}")
    with pytest.raises(GridError, match=setting.replace(".", r"\.")):
        Datastore(name=name, source=src, compression=True).upload()
    got = Raw(locked).ok("GET", f"/{name}:1")
    assert (
        got["status"]["phase"] == "DATASTORE_OPTIMIZATION_STATUS_FAILED"
        and "nothing was unpacked" in got["status"]["message"]
    )
    assert (got["spec"]["fileCount"], got["spec"]["sizeBytes"]) == (0, 0)
    assert not {blake3_hex(d) for d in files.values()} & blobs_of(locked)
    assert not list((locked.home / "server" / "datastores" / "work").glob("*"))
    r = locked.call("GET", f"/v1/core/datastores/{got['id']}/files")
    assert r.status_code == 409


def test_a_downloaded_zip_bomb_fails_the_version_naming_the_limit(locked: ControlPlane, web: tuple[str, Path]) -> None:
    url, root = web
    with zipfile.ZipFile(root / "public" / "bomb.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i in range(3):
            zf.writestr(f"layer{i}.bin", bytes(ZEROS))
    assert os.path.getsize(root / "public" / "bomb.zip") * 50 < 3 * ZEROS  # over the ratio of 50
    raw = Raw(locked)
    ds = raw.create(unique("zipbomb"), source=f"{url}/public/bomb.zip")
    raw.ok("POST", f"/{ds['id']}/completed")
    failed = raw.wait(ds["id"])
    assert failed["status"]["phase"] == "DATASTORE_OPTIMIZATION_STATUS_FAILED"
    assert "bomb.zip unpacks to more than 50 times its own size" in failed["status"]["message"]
    assert "datastores.unpack_max_ratio" in failed["status"]["message"]
    assert digests.of_bytes(bytes(ZEROS)) not in blobs_of(locked)


@pytest.mark.parametrize(
    ("name", "says"),
    [("big.bin", "it is 3000000 bytes"), ("endless", "it sent more than 2000000 bytes")],
    ids=["announced", "streamed"],
)
def test_a_download_over_the_size_limit_fails_the_version_and_stores_nothing(
    locked: ControlPlane, web: tuple[str, Path], name: str, says: str
) -> None:
    url, root = web
    (root / "public" / "big.bin").write_bytes(random_bytes(3_000_000, 5))
    raw = Raw(locked)
    ds = raw.create(unique("toolarge"), source=f"{url}/public/{name}")
    raw.ok("POST", f"/{ds['id']}/completed")
    failed = raw.wait(ds["id"])
    assert failed["status"]["phase"] == "DATASTORE_OPTIMIZATION_STATUS_FAILED"
    message = failed["status"]["message"]
    assert says in message and "datastores.download_max_bytes" in message, message
    assert (failed["spec"]["fileCount"], failed["spec"]["sizeBytes"]) == (0, 0)
    assert not list((locked.home / "server" / "datastores" / "work").glob("*"))


def test_datastore_settings_are_validated_with_clear_errors(tmp_path: Path) -> None:
    from grid_ops.server.config import ConfigError, load_config

    cluster = "clusters: [{id: local, executor: local}]\n"
    for text, says in [
        ("datastores: {http_allow: 127.0.0.1}\n", "datastores.http_allow must be a list"),
        ("datastores: {unpack_max_ratio: 0}\n", "datastores.unpack_max_ratio must be a number of at least 1"),
        ("datastores: {same_host_ingest: maybe}\n", "datastores.same_host_ingest must be true or false"),
        ("datastores: {unpack_limit: 3}\n", "datastores: unknown key(s) unpack_limit"),
        ("datastores: {download_max_bytes: 0}\n", "datastores.download_max_bytes must be a number of at least 1"),
    ]:
        path = tmp_path / "c.yml"
        path.write_text(text + cluster)
        with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
            load_config(path)
    path.write_text("datastores: {http_allow: [10.0.0.0/8], node_cache_max_bytes: 0}\n" + cluster)
    settings = load_config(path).datastores
    assert settings.http_allow == ("10.0.0.0/8",) and settings.node_cache_max_bytes == 0
    assert settings.same_host_ingest is None and settings.unpack.max_ratio == 200
