"""Source snapshots: ignore rules (checked against git itself), symlinks, determinism, the size limit."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grid_ops.errors import ValidationError
from grid_ops.source import MAX_SOURCE_ENV, max_source_bytes, snapshot

TREE = [
    "train.py",
    "model.pyc",
    "README.md",
    "build/out.bin",
    "build/keep.txt",
    "src/app.py",
    "src/app.pyc",
    "src/build/gen.py",
    "src/data/big.csv",
    "src/data/small.csv",
    "docs/a/b/c.md",
    "docs/index.md",
    "logs/run.log",
    "logs/important.log",
    "rooted",
    "src/rooted",
    "a/deep/x/y/z.tmp",
    "notes #1.txt",
    "space file.txt",
]


def make_tree(root: Path, files: list[str] = TREE) -> None:
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {rel}\n")


def members(tar_path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tar_path, "r:gz") as tar:
        return {info.name: info for info in tar.getmembers()}


def snapshot_files(root: Path, tmp_path: Path) -> set[str]:
    dest = tmp_path / "out" / "src.tar.gz"
    snapshot(root, dest)
    return {name for name, info in members(dest).items() if not info.isdir()}


def git_files(root: Path) -> set[str]:
    """The files git would add: untracked and not ignored (``.git`` itself aside)."""
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files", "--others", "--exclude-standard", "-z"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    shutil.rmtree(root / ".git")
    return {name for name in listed.split("\0") if name}


needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


# --------------------------------------------------------------------------- ignore rules


def test_without_ignore_files_everything_but_git_is_included(tmp_path: Path) -> None:
    root = tmp_path / "src"
    make_tree(root)
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref\n")
    (root / "sub").mkdir()
    (root / "sub" / ".git").write_text("gitdir: elsewhere\n")  # a submodule's .git file
    assert snapshot_files(root, tmp_path) == set(TREE)


COMMON_PATTERNS = """
# comment line
*.pyc
build/
/rooted
docs/**/*.md
src/data/big.csv
*.log
!logs/important.log
a/**/z.tmp
\\#*
notes\\ #1.txt
"""


def test_common_gitignore_patterns(tmp_path: Path) -> None:
    root = tmp_path / "src"
    make_tree(root)
    (root / ".gitignore").write_text(COMMON_PATTERNS)
    got = snapshot_files(root, tmp_path)
    assert got == {
        ".gitignore", "train.py", "README.md", "src/app.py", "src/data/small.csv", "src/rooted",
        "logs/important.log", "space file.txt",
    }  # fmt: skip


@needs_git
@pytest.mark.parametrize(
    "patterns",
    [
        COMMON_PATTERNS,
        "*\n!*.py\n!*/\n",
        "src/\n!src/app.py\n",  # a file inside an excluded directory cannot be re-included
        "**/build\n",
        "build\n!build/keep.txt\n",
        "/*.md\n",
        "docs/*\n!docs/a/\n",
        "**/data/*.csv\n!**/small.csv\n",
        "*.p[yi]c\n[!s]*.txt\n",
        "docs/**\n",
        "a/**/x/\n",
        "space\\ file.txt   \n",
        "*/app.py\n",
        "src/*/\n",
        "?oote?\n",
    ],
)
def test_ignore_rules_agree_with_git(tmp_path: Path, patterns: str) -> None:
    root = tmp_path / "src"
    make_tree(root)
    (root / ".gitignore").write_text(patterns)
    assert snapshot_files(root, tmp_path) == git_files(root)


@needs_git
def test_nested_gitignore_files_apply_to_their_directory_and_agree_with_git(tmp_path: Path) -> None:
    root = tmp_path / "src"
    make_tree(root)
    (root / ".gitignore").write_text("*.csv\n")
    (root / "src" / ".gitignore").write_text("!small.csv\n/rooted\n*.pyc\n")
    (root / "docs" / "a" / ".gitignore").write_text("b/\n")
    got = snapshot_files(root, tmp_path)
    assert got == git_files(root)
    assert "src/data/small.csv" in got and "src/data/big.csv" not in got
    assert "rooted" in got and "src/rooted" not in got
    assert "model.pyc" in got and "src/app.pyc" not in got


POOL = [
    "*.pyc", "build/", "/rooted", "rooted", "**/build", "docs/**", "docs/**/*.md", "*.log", "!logs/important.log",
    "!*.log", "src/data/", "!src/data/small.csv", "*.csv", "!*small*", "a/**/z.tmp", "/src/*/", "*.md", "!README.md",
    "docs/*", "!docs/a/", "src", "!src/", "logs/*.log", "*/", "!*/",
]  # fmt: skip


@needs_git
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(POOL), min_size=1, max_size=6))
def test_random_pattern_mixes_agree_with_git(tmp_path_factory: pytest.TempPathFactory, patterns: list[str]) -> None:
    base = tmp_path_factory.mktemp("mix")
    root = base / "src"
    make_tree(root)
    (root / ".gitignore").write_text("\n".join(patterns) + "\n")
    assert snapshot_files(root, base) == git_files(root), patterns


def test_gridignore_replaces_gitignore(tmp_path: Path) -> None:
    root = tmp_path / "src"
    make_tree(root)
    (root / ".gitignore").write_text("*.py\n")
    (root / ".gridignore").write_text("*.csv\nlogs/\n")
    (root / "src" / ".gitignore").write_text("*\n")  # not consulted either once .gridignore is in charge
    got = snapshot_files(root, tmp_path)
    assert "train.py" in got and "src/app.py" in got
    assert not any(name.endswith(".csv") or name.startswith("logs/") for name in got)


# --------------------------------------------------------------------------- the tar itself


def test_symlinks_are_stored_as_links_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "huge.bin").write_bytes(b"x" * 10_000)
    root = tmp_path / "src"
    make_tree(root, ["train.py"])
    os.symlink(outside, root / "data")
    os.symlink("train.py", root / "main.py")
    os.symlink(root / "missing", root / "dangling")
    dest = tmp_path / "src.tar.gz"
    count, size = snapshot(root, dest)
    found = members(dest)
    assert set(found) == {"train.py", "data", "main.py", "dangling"}
    assert found["data"].issym() and found["data"].linkname == str(outside)
    assert found["main.py"].issym() and found["main.py"].linkname == "train.py"
    assert found["dangling"].issym()
    assert (count, size) == (4, len("content of train.py\n"))


def test_counts_sizes_modes_and_empty_directories(tmp_path: Path) -> None:
    root = tmp_path / "src"
    make_tree(root, ["run.sh", "pkg/mod.py"])
    (root / "run.sh").chmod(0o755)
    (root / "empty").mkdir()
    dest = tmp_path / "src.tar.gz"
    count, size = snapshot(root, dest)
    found = members(dest)
    assert count == 2
    assert size == len("content of run.sh\n") + len("content of pkg/mod.py\n")
    assert found["empty"].isdir() and found["pkg"].isdir()
    assert found["run.sh"].mode & 0o777 == 0o755
    assert all(info.uid == 0 and info.uname == "" for info in found.values())
    with tarfile.open(dest, "r:gz") as tar:
        extracted = tar.extractfile("pkg/mod.py")
        assert extracted is not None and extracted.read() == b"content of pkg/mod.py\n"


def test_snapshots_are_deterministic_and_sorted(tmp_path: Path) -> None:
    root = tmp_path / "src"
    make_tree(root)
    first, second = tmp_path / "one.tar.gz", tmp_path / "two.tar.gz"
    snapshot(root, first)
    snapshot(root, second)
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first, "r:gz") as tar:
        names = tar.getnames()
    for parent in {name.rpartition("/")[0] for name in names}:
        children = [name for name in names if name.rpartition("/")[0] == parent]
        assert children == sorted(children)


def test_a_destination_inside_the_source_is_left_out(tmp_path: Path) -> None:
    root = tmp_path / "src"
    make_tree(root, ["train.py"])
    dest = root / "snap.tar.gz"
    snapshot(root, dest)
    snapshot(root, dest)  # the second run must not pick up the first tar
    assert set(members(dest)) == {"train.py"}


# --------------------------------------------------------------------------- limits and errors


def test_over_the_limit_nothing_is_written_and_the_largest_files_are_named(tmp_path: Path) -> None:
    root = tmp_path / "src"
    make_tree(root, ["train.py"])
    (root / "data.bin").write_bytes(b"0" * 5000)
    dest = tmp_path / "out" / "src.tar.gz"
    with pytest.raises(ValidationError) as caught:
        snapshot(root, dest, max_bytes=4096)
    message = str(caught.value)
    assert "data.bin" in message and ".gridignore" in message and MAX_SOURCE_ENV in message
    assert not dest.exists() and not dest.parent.exists()
    (root / ".gridignore").write_text("*.bin\n")
    assert snapshot(root, dest, max_bytes=4096)[0] == 2


def test_the_limit_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert max_source_bytes() == 512 * 1024 * 1024 or os.environ.get(MAX_SOURCE_ENV)
    root = tmp_path / "src"
    make_tree(root, ["train.py"])
    monkeypatch.setenv(MAX_SOURCE_ENV, "5")
    with pytest.raises(ValidationError, match="over the"):
        snapshot(root, tmp_path / "x.tar.gz")
    monkeypatch.setenv(MAX_SOURCE_ENV, "lots")
    with pytest.raises(ValidationError, match=f"{MAX_SOURCE_ENV}='lots' must be a positive number"):
        snapshot(root, tmp_path / "x.tar.gz")


def test_a_missing_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"source path '.*nowhere' does not exist"):
        snapshot(tmp_path / "nowhere", tmp_path / "x.tar.gz")


def test_a_file_is_not_a_source_directory(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("")
    with pytest.raises(ValidationError, match="is not a directory"):
        snapshot(tmp_path / "train.py", tmp_path / "x.tar.gz")
