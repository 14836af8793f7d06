"""The one-pass copy behind same-host uploads: the stored bytes are the bytes hashed, nothing is visible
before it is kept, and a copy dropped or interrupted leaves no file behind."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from grid_ops.server.storage.blob_copy import CHUNK, BlobCopier


def _open(path: Path) -> int:
    return os.open(path, os.O_RDONLY)


def test_copy_hashes_the_bytes_it_stores_and_is_invisible_until_kept(tmp_path: Path) -> None:
    tmp_dir, blobs = tmp_path / "tmp", tmp_path / "blobs"
    tmp_dir.mkdir()
    data = os.urandom(3 * CHUNK + 12_345)  # several chunks and a partial one
    (tmp_path / "src").write_bytes(data)
    fd = _open(tmp_path / "src")
    try:
        copy, size, sha = BlobCopier(tmp_dir).copy(fd, len(data))
    finally:
        os.close(fd)
    assert (size, sha) == (len(data), hashlib.sha256(data).hexdigest())
    assert not list(tmp_dir.iterdir()) or copy.named is not None  # unnamed where the system allows it
    target = blobs / sha[:2] / sha
    assert not target.exists()
    copy.keep(target, size)
    assert target.read_bytes() == data
    assert not list(tmp_dir.iterdir())  # nothing left to clean up


def test_a_shorter_source_copies_what_is_there_and_discard_leaves_nothing(tmp_path: Path) -> None:
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    (tmp_path / "src").write_bytes(b"short")
    fd = _open(tmp_path / "src")
    try:
        copy, size, sha = BlobCopier(tmp_dir).copy(fd, 1000)  # the scan said 1000 bytes
    finally:
        os.close(fd)
    assert (size, sha) == (5, hashlib.sha256(b"short").hexdigest())  # the caller sees the size differ
    copy.discard()
    assert not list(tmp_dir.iterdir())


def test_keep_leaves_stored_content_alone_and_replaces_a_damaged_copy(tmp_path: Path) -> None:
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    data = b"content" * 1000
    (tmp_path / "src").write_bytes(data)
    copier = BlobCopier(tmp_dir)
    target = tmp_path / "blobs" / "ab" / "blob"
    target.parent.mkdir(parents=True)
    target.write_bytes(data)
    before = target.stat().st_ino
    fd = _open(tmp_path / "src")
    try:
        copy, size, _ = copier.copy(fd, len(data))
        copy.keep(target, size)  # the same content is stored already: left as it is
        assert target.stat().st_ino == before
        target.write_bytes(b"cut")  # a copy damaged by something else: replaced whole
        os.lseek(fd, 0, os.SEEK_SET)
        copy, size, _ = copier.copy(fd, len(data))
        copy.keep(target, size)
    finally:
        os.close(fd)
    assert target.read_bytes() == data
    assert sorted(p.name for p in target.parent.iterdir()) == ["blob"]
    assert not list(tmp_dir.iterdir())
