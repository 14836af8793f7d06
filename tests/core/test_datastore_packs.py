"""Small files of same-host uploads kept inside pack files (``storage/packs.py``): one pack per request,
read back exactly through range URLs and by mounts, space freed when the last version using a content is
deleted, and no pack left that nothing points into."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest

from grid_ops.client import GridClient
from grid_ops.runner import datastore as runner_datastore
from grid_ops.server.storage.blob_copy import SMALL, BlobCopier
from grid_ops.server.storage.packs import PackWriter, merge_ranges, punch_hole
from grid_ops.upload.uploader import DatastoreUploader, UploadOptions
from tests.core.controlplane import ControlPlane, add_user
from tests.core.datastore_helpers import (
    PLAIN,
    blake3_hex,
    make_tree,
    pack_files,
    random_bytes,
    read_version,
    stored_content,
    tree_of,
    unique,
)


def _user(cp: ControlPlane, tag: str) -> GridClient:
    """A client of a user of its own, so that the packs counted are this test's alone."""
    user, key = add_user(cp.home, unique(tag))
    return GridClient(cp.url, user, key, cluster_id="local")


def _upload(client: GridClient, home: Path, name: str, src: Path) -> None:
    result = DatastoreUploader(client, home=home).upload(name, str(src))
    assert result.stats.bytes_sent == 0 and result.stats.bytes_copied_on_host > 0  # a same-host upload


def test_small_files_go_into_one_pack_per_request_and_read_back_exactly(cp: ControlPlane, tmp_path: Path) -> None:
    client = _user(cp, "packs")
    files = {f"img/{i:04d}.jpg": random_bytes(1 + i * 7 % 5000, i) for i in range(1100)}  # two requests
    files["big.bin"] = random_bytes(SMALL + 10, 1000)
    files["empty"] = b""
    src = make_tree(tmp_path / "data", files)
    _upload(client, tmp_path / "home", "photos", src)
    where = stored_content(cp, client.user_id)
    assert where.pop(blake3_hex(files["big.bin"])) == "file"  # a large file has a file of its own
    assert set(where.values()) == {"pack"} and len(where) == 1101
    assert len(pack_files(cp, client.user_id)) == 2  # one per request (of at most 1,000 files), not one a file
    assert read_version(client, "photos:1") == tree_of(src)  # range URLs give exactly each content


def test_a_range_url_with_its_range_changed_is_refused(cp: ControlPlane, tmp_path: Path) -> None:
    client = _user(cp, "packs-url")
    src = make_tree(tmp_path / "data", {"a.txt": b"alpha" * 100, "b.txt": b"beta" * 100})
    _upload(client, tmp_path / "home", "texts", src)
    url = next(f.url for f in client.iter_datastore_files("texts:1") if f.filename == "a.txt")
    assert url is not None
    answer = PLAIN.get(url, timeout=30)
    assert answer.status_code == 200 and answer.content == b"alpha" * 100
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for change in ({"offset": "0"}, {"length": str(int(query["length"]) + 400)}, {"offset": None, "length": None}):
        changed = {k: v for k, v in {**query, **change}.items() if v is not None}
        if changed == query:
            changed["offset"] = str(int(query["offset"]) + 1)
        refused = PLAIN.get(urlunsplit(parts._replace(query=urlencode(changed))), timeout=30)
        assert refused.status_code == 403 and "invalid signature" in refused.text, change


def test_deleting_versions_frees_their_packed_content_and_removes_packs_nothing_uses(
    cp: ControlPlane, tmp_path: Path
) -> None:
    client = _user(cp, "packs-delete")
    shared, gone = random_bytes(200_000, 1), random_bytes(600_000, 2)
    src = make_tree(tmp_path / "data", {"shared.bin": shared, "gone.bin": gone})
    _upload(client, tmp_path / "home", "days", src)  # version 1: shared and gone, in one pack
    (src / "gone.bin").unlink()
    (src / "new.bin").write_bytes(random_bytes(1000, 3))
    _upload(client, tmp_path / "home", "days", src)  # version 2: shared (stored already) and new
    packs = pack_files(cp, client.user_id)
    assert len(packs) == 2
    older = max(packs, key=lambda p: p.stat().st_size)  # version 1's: shared and gone
    blocks = older.stat().st_blocks
    gone_url = next(f.url for f in client.iter_datastore_files("days:1") if f.filename == "gone.bin")
    assert gone_url is not None and PLAIN.get(gone_url, timeout=30).content == gone
    client.delete_datastore("days:1")
    _wait(lambda: older.stat().st_blocks < blocks)  # gone.bin's space given back, the pack kept for shared
    assert older.stat().st_blocks * 512 < 600_000 and blake3_hex(gone) not in stored_content(cp, client.user_id)
    assert read_version(client, "days:2") == tree_of(src)
    assert PLAIN.get(gone_url, timeout=30).status_code == 404  # signed before, but its range is given up
    client.delete_datastore("days:2")
    _wait(lambda: not pack_files(cp, client.user_id))
    assert stored_content(cp, client.user_id) == {}


def test_content_already_inside_a_pack_is_not_packed_again(cp: ControlPlane, tmp_path: Path) -> None:
    client = _user(cp, "packs-again")
    files = {f"f{i}": random_bytes(5000, 10 + i) for i in range(20)}
    files["twin"] = files["f0"]  # the same content twice in one request: one copy kept
    src = make_tree(tmp_path / "data", files)
    _upload(client, tmp_path / "home-1", "first", src)
    packs = pack_files(cp, client.user_id)
    assert len(packs) == 1
    _upload(client, tmp_path / "home-2", "second", src)  # another home: the client does not know it is stored
    assert pack_files(cp, client.user_id) == packs  # the second request's pack held nothing new: removed
    assert read_version(client, "second:1") == tree_of(src)


def test_threads_appending_to_one_pack_get_their_own_ranges(tmp_path: Path) -> None:
    pack = PackWriter(str(tmp_path), "owner", BlobCopier(tmp_path))
    folder = tmp_path / "packs" / "owner"
    assert not pack.used and not folder.exists()  # no file until the first blob
    blobs = {i: os.urandom(1000 + i) for i in range(200)}
    offsets: dict[int, int] = {}

    def write(keys: list[int]) -> None:
        for i in keys:
            offsets[i] = pack.append(f"{i:064x}", blobs[i])

    threads = [threading.Thread(target=write, args=(list(range(k, 200, 4)),)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert pack.append(f"{7:064x}", blobs[7]) == offsets[7]  # the same content again: the same place
    assert not list(folder.iterdir())  # unnamed until published: a process killed now leaves nothing
    pack.publish()
    pack.close()
    data = (tmp_path / pack.key).read_bytes()
    assert len(data) == sum(len(b) for b in blobs.values())
    assert all(data[offsets[i] : offsets[i] + len(b)] == b for i, b in blobs.items())
    assert punch_hole(str(tmp_path / pack.key), offsets[7], len(blobs[7]))  # this file system frees ranges
    after = (tmp_path / pack.key).read_bytes()
    assert len(after) == len(data)  # the size stays, and only whole blocks inside the range become zeros
    assert all(after[offsets[i] : offsets[i] + len(b)] == b for i, b in blobs.items() if i != 7)
    pack.discard()
    assert not list(folder.iterdir())


def test_adjacent_ranges_are_freed_together() -> None:
    assert merge_ranges([(10, 5), (0, 10), (30, 1), (15, 3), (31, 0)]) == [(0, 18), (30, 1)]


def test_a_range_copy_is_checked_by_its_digest(tmp_path: Path) -> None:
    content = os.urandom(5000)
    (tmp_path / "pack").write_bytes(os.urandom(100) + content + os.urandom(100))
    want = blake3_hex(content)
    assert runner_datastore._copy(str(tmp_path / "pack"), str(tmp_path / "a"), 0o444, 5000, 100, want)
    assert (tmp_path / "a").read_bytes() == content
    (tmp_path / "pack").write_bytes(bytes(5200))  # the range was given up (a hole reads as zeros)
    assert not runner_datastore._copy(str(tmp_path / "pack"), str(tmp_path / "b"), 0o444, 5000, 100, want)
    assert not (tmp_path / "b").exists()  # the caller downloads it instead


def test_content_stored_as_its_own_file_is_not_packed_again(cp: ControlPlane, tmp_path: Path) -> None:
    client = _user(cp, "packs-loose")
    src = make_tree(tmp_path / "data", {f"f{i}": random_bytes(3000, 40 + i) for i in range(5)})
    result = DatastoreUploader(client, home=tmp_path / "home-1", options=UploadOptions(same_host=False)).upload(
        "first", str(src)
    )
    assert result.stats.bytes_sent > 0  # through presigned URLs: a file per content
    assert set(stored_content(cp, client.user_id).values()) == {"file"}
    _upload(client, tmp_path / "home-2", "second", src)  # same host, from a home that knows nothing
    assert set(stored_content(cp, client.user_id).values()) == {"file"}  # kept where it was
    assert not pack_files(cp, client.user_id)  # the pack held only copies of stored content: removed
    assert read_version(client, "second:1") == tree_of(src)


def _wait(check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait until ``check()`` holds: the control plane frees storage just after it answers a deletion."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not true after {timeout} s: {check}")
        time.sleep(0.05)
