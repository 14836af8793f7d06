"""One file of a same-host upload copied into the local store (``datastore_local_ingest._copy_one``), called
directly to put the control plane's own files behind a link that appears after its folder was resolved, as a
user racing the server could."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from blake3 import blake3

from grid_ops.schemas import LocalFile
from grid_ops.server.datastore_local_ingest import _copy_one, _sees_client_files
from grid_ops.server.storage.blob_copy import SMALL
from grid_ops.server.storage.local import LocalStore


def _local_file(path: Path, name: str) -> LocalFile:
    st = path.stat()
    return LocalFile(path=name, local_path=str(path), size_bytes=st.st_size, mtime_ns=st.st_mtime_ns)


def test_a_file_reached_through_a_folder_that_became_a_link_to_the_state_dir_is_not_copied(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    secret = state / "grid.db"
    secret.write_bytes(b"the control plane's own data")
    store = LocalStore(state / "datastores" / "local", "local", lambda purpose, text: text)
    forbidden = [os.path.realpath(state)]
    swapped = tmp_path / "data"
    swapped.symlink_to(state)  # resolved as a plain folder a moment ago (stale), a link to the state dir now
    stale = str  # the folder's resolution cached before the swap: it still names the folder itself
    pack = store.new_pack("user-1")
    out = _copy_one(store, "user-1", forbidden, stale, pack, _local_file(swapped / "grid.db", "grid.db"))
    assert not pack.used
    assert (out.problem, out.blake3) == ("unavailable", None)
    assert not any(p.is_file() for p in (state / "datastores").rglob("*"))  # nothing of it stored


def test_a_file_outside_the_state_dir_is_copied_into_the_pack_or_under_its_digest(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    store = LocalStore(state / "datastores" / "local", "local", lambda purpose, text: text)
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.bin").write_bytes(b"x" * 100)
    (data / "big.bin").write_bytes(b"y" * (SMALL + 1))
    pack = store.new_pack("user-1")
    out = _copy_one(store, "user-1", [os.path.realpath(state)], str, pack, _local_file(data / "x.bin", "x.bin"))
    assert out.problem is None and out.size == 100 and out.blake3 == blake3(b"x" * 100).hexdigest()
    pack.publish()
    pack.close()
    packed = state / "datastores" / "local" / pack.key
    assert out.pack_offset == 0 and packed.read_bytes() == b"x" * 100  # a small file: inside the pack
    big = _copy_one(store, "user-1", [os.path.realpath(state)], str, pack, _local_file(data / "big.bin", "big.bin"))
    assert big.blake3 is not None and big.pack_offset is None  # a large one: a file at its digest
    stored = state / "datastores" / "local" / "blobs" / "user-1" / big.blake3[:2] / big.blake3
    assert stored.read_bytes() == b"y" * (SMALL + 1)


def test_a_probe_path_among_the_control_planes_files_is_not_even_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing any descriptor of the control plane's SQLite database would drop the server's locks on it, so
    a probe path there is refused by its path alone."""
    state = tmp_path / "state"
    state.mkdir()
    database = state / "grid.db"
    database.write_text("token-1")  # even a file that holds the token
    probe = tmp_path / "probe"
    probe.write_text("token-1")
    opened: list[str] = []
    real_open = os.open

    def recording_open(path: str, *args: Any, **kwargs: Any) -> int:
        opened.append(os.path.realpath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    forbidden = [os.path.realpath(state)]
    assert _sees_client_files(str(probe), "token-1", forbidden) is True
    assert _sees_client_files(str(database), "token-1", forbidden) is False
    assert _sees_client_files(f"{tmp_path}/x/../state/grid.db", "token-1", forbidden) is False
    assert opened == [os.path.realpath(probe)]
