"""The copy behind same-host uploads: the stored bytes are the bytes hashed, nothing is visible before it
is kept, and a copy dropped or interrupted leaves no file behind; for small files (through memory), large
ones (copied by the kernel, hashed from the copy) and large ones where the kernel cannot copy."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from grid_ops import digests
from grid_ops.server.storage.blob_copy import CHUNK, SMALL, BlobCopier, TempBlob


def _open(path: Path) -> int:
    return os.open(path, os.O_RDONLY)


def _copy(copier: BlobCopier, path: Path, size: int) -> tuple[TempBlob, int, str]:
    """``copier.copy`` of the file at ``path``, said to hold ``size`` bytes."""
    fd = _open(path)
    try:
        return copier.copy(fd, size)
    finally:
        os.close(fd)


SIZES = [
    pytest.param(SMALL - 1, True, id="small"),
    pytest.param(2 * CHUNK + 12_345, True, id="large"),
    pytest.param(2 * CHUNK + 12_345, False, id="large-through-memory"),
]


@pytest.mark.parametrize(("length", "kernel"), SIZES)
def test_copy_hashes_the_bytes_it_stores_and_is_invisible_until_kept(tmp_path: Path, length: int, kernel: bool) -> None:
    tmp_dir, blobs = tmp_path / "tmp", tmp_path / "blobs"
    tmp_dir.mkdir()
    data = os.urandom(length)
    (tmp_path / "src").write_bytes(data)
    copier = BlobCopier(tmp_dir)
    copier.kernel_copies = kernel
    copy, size, sha = _copy(copier, tmp_path / "src", len(data))
    assert (size, sha) == (len(data), digests.of_bytes(data))
    assert not list(tmp_dir.iterdir()) or copy.named is not None  # unnamed where the system allows it
    target = blobs / sha[:2] / sha
    assert not target.exists()
    copy.keep(target, size)
    assert target.read_bytes() == data
    assert not list(tmp_dir.iterdir())  # nothing left to clean up


@pytest.mark.parametrize(("length", "kernel"), SIZES)
def test_a_shorter_source_copies_what_is_there_and_discard_leaves_nothing(
    tmp_path: Path, length: int, kernel: bool
) -> None:
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    data = os.urandom(length // 2)
    (tmp_path / "src").write_bytes(data)
    copier = BlobCopier(tmp_dir)
    copier.kernel_copies = kernel
    copy, size, sha = _copy(copier, tmp_path / "src", length)  # the scan said ``length`` bytes
    assert (size, sha) == (len(data), digests.of_bytes(data))  # the caller sees the size differ
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


@pytest.mark.parametrize("kernel_says", ["EXDEV", "nothing"])
def test_large_files_go_through_memory_where_the_kernel_cannot_copy_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_says: str
) -> None:
    calls: list[int] = []

    def copy_file_range(source: int, target: int, count: int) -> int:
        calls.append(count)
        if kernel_says == "EXDEV":
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return 0  # what some file systems answer for a file with content

    monkeypatch.setattr(os, "copy_file_range", copy_file_range)
    data = os.urandom(2 * CHUNK + 7)
    (tmp_path / "src").write_bytes(data)
    copy, size, digest = _copy(BlobCopier(tmp_path), tmp_path / "src", len(data))
    assert calls and (size, digest) == (len(data), digests.of_bytes(data))
    copy.keep(tmp_path / "blobs" / digest, size)
    assert (tmp_path / "blobs" / digest).read_bytes() == data


def test_large_files_are_copied_by_the_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copied: list[int] = []
    real = os.copy_file_range

    def counting(source: int, target: int, count: int) -> int:
        n = real(source, target, count)
        copied.append(n)
        return n

    monkeypatch.setattr(os, "copy_file_range", counting)
    data = os.urandom(SMALL + 1)
    (tmp_path / "src").write_bytes(data)
    copy, size, digest = _copy(BlobCopier(tmp_path), tmp_path / "src", len(data))
    assert sum(copied) == len(data) == size and digest == digests.of_bytes(data)
    copy.discard()


@pytest.mark.parametrize(("length", "kernel"), SIZES[:2])
def test_a_folder_removed_after_it_was_made_is_made_again(
    tmp_path: Path, length: int, kernel: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Folders made are remembered (no check per file), yet one removed meanwhile is made again, and a
    missing folder is not taken for a file system without unnamed files."""
    tmp_dir, blobs = tmp_path / "tmp", tmp_path / "blobs"
    tmp_dir.mkdir()
    copier = BlobCopier(tmp_dir)
    made: list[str] = []
    makedirs = os.makedirs

    def counting_makedirs(name: str, *args: Any, **kwargs: Any) -> None:
        if os.path.basename(name) != "blobs":  # made on the way by the call for its subfolder
            made.append(os.path.basename(name))
        makedirs(name, *args, **kwargs)

    monkeypatch.setattr(os, "makedirs", counting_makedirs)
    for n in range(3):  # three contents in one folder: it is made once
        small = tmp_path / f"small-{n}"
        small.write_bytes(b"%d" % n)
        copy, size, _ = _copy(copier, small, 1)
        copy.keep(blobs / "ab" / f"c{n}", size)
    assert made == ["ab"]
    made.clear()
    copier.kernel_copies = kernel
    unnamed = copier._unnamed
    data = os.urandom(length)
    source = tmp_path / "source"
    source.write_bytes(data)
    for _ in range(2):  # the same content: the same folder, removed after the first round
        copy, size, sha = _copy(copier, source, length)
        target = blobs / sha[:2] / sha
        copy.keep(target, size)
        assert target.read_bytes() == data
        shutil.rmtree(blobs)
    assert made == [sha[:2], sha[:2]]  # made for the first copy, and again once it was removed
    assert copier._unnamed == unnamed
    assert os.listdir(tmp_dir) == []
