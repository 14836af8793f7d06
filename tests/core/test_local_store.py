"""The local storage backend's object keys: they stay inside its folder, checked by their text."""

from __future__ import annotations

from pathlib import Path

import pytest

from grid_ops.server.storage.base import StorageError
from grid_ops.server.storage.local import LocalStore


def _store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store", "local", lambda purpose, text: f"{purpose}:{text}")


def test_keys_name_files_inside_the_store(tmp_path: Path) -> None:
    store = _store(tmp_path)
    key = "blobs/user-1/ab/" + "ab" * 32
    assert store.local_path(key) == tmp_path / "store" / "blobs" / "user-1" / "ab" / ("ab" * 32)
    assert store.object_size(key) is None  # not stored yet


@pytest.mark.parametrize(
    "key", ["../outside", "blobs/../../outside", "/etc/passwd", "blobs//x", "blobs/./x", "", "blobs/x\x00y", "blobs/"]
)
def test_keys_that_leave_the_store_are_refused(tmp_path: Path, key: str) -> None:
    store = _store(tmp_path)
    (tmp_path / "outside").write_text("not the store's")
    with pytest.raises(StorageError, match="points outside the storage directory"):
        store.local_path(key)
    with pytest.raises(StorageError, match="points outside the storage directory"):
        store.delete_object(key)
    assert (tmp_path / "outside").read_text() == "not the store's"
