"""An upload's saved progress (``upload/state.py``): what a batch recorded by the control plane leaves on
disk, and what a process killed while writing it leaves."""

from __future__ import annotations

from pathlib import Path

from grid_ops.upload.scan import SourceFile
from grid_ops.upload.state import StateStore, UploadState


def _state(tmp_path: Path) -> UploadState:
    files = [SourceFile(f"f{i}", tmp_path / f"f{i}", 10, 1, 0o644) for i in range(4)]
    return UploadState(
        key="k1", url="http://127.0.0.1:1", user_id="u", cluster_id="local", name="n", source=str(tmp_path),
        compression=False, token="t", part_size=1, files=files, datastore_id="ds-1", version=1,
    )  # fmt: skip


def test_a_recorded_batch_is_journaled_at_once_and_read_back_without_rewriting_the_snapshot(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "home")
    state = _state(tmp_path)
    store.save(state)
    snapshot = (store.root / "k1.json").read_text()
    store.record_batch(state, {"f0": "a" * 64, "f2": "b" * 64})
    store.record_batch(state, {"f3": "c" * 64})
    assert (store.root / "k1.json").read_text() == snapshot  # only the journal grew
    assert state.recorded == ["f0", "f2", "f3"] and state.same_host is True
    again = store.load("k1")
    assert again is not None
    assert again.recorded == ["f0", "f2", "f3"] and again.same_host is True
    assert [f.blake3 for f in again.files] == ["a" * 64, None, "b" * 64, "c" * 64]
    store.save(again)  # a snapshot takes the journal in, and starts it afresh
    assert not (store.root / "k1.journal").exists()
    assert store.load("k1") == again


def test_a_batch_line_cut_short_by_a_kill_is_sent_again_and_the_next_line_still_counts(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "home")
    state = _state(tmp_path)
    store.save(state)
    store.record_batch(state, {"f0": "a" * 64})
    with (store.root / "k1.journal").open("a") as journal:
        journal.write('{"d": "ds-1", "b": [["f1", "' + "d" * 30)  # the process died while writing this line
    resumed = store.load("k1")
    assert resumed is not None and resumed.recorded == ["f0"]
    assert [f.blake3 for f in resumed.files] == ["a" * 64, None, None, None]
    store.record_batch(resumed, {"f1": "d" * 64})  # the resumed upload's first batch, after the cut line
    again = store.load("k1")
    assert again is not None and again.recorded == ["f0", "f1"]
    assert [f.blake3 for f in again.files] == ["a" * 64, "d" * 64, None, None]


def test_batches_of_a_version_deleted_since_do_not_count_for_the_new_one(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "home")
    state = _state(tmp_path)
    store.save(state)
    store.record_batch(state, {"f0": "a" * 64, "f1": "b" * 64})
    journal = (store.root / "k1.journal").read_text()
    # the version was deleted on the server: the upload starts a new one, and is killed after writing its
    # snapshot but before removing the old journal
    state.datastore_id, state.version, state.recorded = "ds-2", 2, []
    store.save(state)
    (store.root / "k1.journal").write_text(journal)
    again = store.load("k1")
    assert again is not None and again.datastore_id == "ds-2" and again.recorded == []


class _CountedList(list[SourceFile]):
    """A list of files that counts how often it is walked whole."""

    walks = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        _CountedList.walks += 1
        return super().__iter__()


def test_recording_a_batch_reads_the_batch_not_the_whole_upload(tmp_path: Path) -> None:
    # a million files come in a thousand batches or more: walking every file per batch made that quadratic
    store = StateStore(tmp_path / "home")
    state = _state(tmp_path)
    state.files = _CountedList(SourceFile(f"f{i}", tmp_path / f"f{i}", 10, 1, 0o644) for i in range(1000))
    store.save(state)
    _CountedList.walks = 0
    for start in range(0, 1000, 250):
        store.record_batch(state, {f"f{i}": f"{i:064x}" for i in range(start, start + 250)})
    assert _CountedList.walks == 1  # once, to find where each path is
    assert state.recorded == [f"f{i}" for i in range(1000)]
    assert [f.blake3 for f in state.files] == [f"{i:064x}" for i in range(1000)]
    store.record_batch(state, {"f7": "e" * 64})  # a path sent again (a retried batch) is recorded once
    assert state.recorded.count("f7") == 1 and state.files[7].blake3 == "e" * 64


def test_recording_after_the_files_or_the_recorded_paths_were_replaced_sees_the_new_ones(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "home")
    state = _state(tmp_path)
    store.save(state)
    store.record_batch(state, {"f0": "a" * 64})
    # the uploader replaces the list of files once it hashed the ones left, and starts the recorded paths
    # afresh when the version was deleted on the server: nothing noted about the old lists may count
    state.files = [SourceFile(f.path, f.local, f.size, f.mtime_ns, f.mode, "f" * 64) for f in reversed(state.files)]
    state.recorded = []
    store.record_batch(state, {"f0": "b" * 64, "f3": "c" * 64})
    assert state.recorded == ["f0", "f3"]
    assert {f.path: f.blake3 for f in state.files} == {"f0": "b" * 64, "f1": "f" * 64, "f2": "f" * 64, "f3": "c" * 64}
