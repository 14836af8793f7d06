"""An upload's progress, kept under ``$GRID_OPS_HOME/uploads/`` until the version is complete.

``<key>.json`` is a snapshot: the arguments of the upload (server, user, cluster, name, source,
compression), the version it creates, the source's files as scanned (size, mtime, mode, blake3), and per
content object its upload id and the ETags of the parts that arrived. ``<key>.journal`` gets a line per
part as soon as the part has arrived, and a line per same-host batch once the control plane has recorded
it (its files' digests), so that a killed process loses at most what was in flight and no batch rewrites
the whole snapshot. The key is a hash of the arguments: calling ``upload()`` again with the same ones finds
the same state.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from grid_ops.errors import ValidationError
from grid_ops.upload.scan import SourceFile

FORMAT = 2  # 1: content named by SHA-256


def state_key(url: str, user_id: str, cluster_id: str, name: str, source: str, compression: bool) -> str:
    """The name of the state files of one upload's arguments."""
    text = json.dumps([url, user_id, cluster_id, name, source, compression])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class ObjectState:
    """One content object to upload: a distinct file content, or the packed archive."""

    blake3: str
    size: int
    key: str  # the datastore path of a file with this content (or the archive's name)
    local: str  # the file on disk it is read from
    upload_id: str | None = None
    part_count: int = 0
    etags: dict[int, str] = field(default_factory=dict)
    completed: bool = False


@dataclass
class UploadState:
    """Everything needed to resume one upload."""

    key: str
    url: str
    user_id: str
    cluster_id: str
    name: str
    source: str
    compression: bool
    token: str
    part_size: int
    files: list[SourceFile]
    archive: str | None = None  # the packed archive, with compression
    datastore_id: str | None = None
    version: int | None = None
    objects: dict[str, ObjectState] = field(default_factory=dict)
    manifest_sent: bool = False
    same_host: bool | None = None  # whether the control plane copies the files from this machine's disk
    recorded: list[str] = field(default_factory=list)  # paths in the version's manifest already
    scanned_ns: int = 0  # when the source was scanned (wall clock), for the hash cache

    def to_json(self) -> dict[str, Any]:
        # field by field: ``asdict`` would deep-copy every file first
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("files", "objects")}
        data["objects"] = {sha: asdict(obj) for sha, obj in self.objects.items()}
        data["recorded"] = list(self.recorded)
        data["format"] = FORMAT
        data["files"] = [
            {
                "path": f.path,
                "local": str(f.local),
                "size": f.size,
                "mtimeNs": f.mtime_ns,
                "mode": f.mode,
                "blake3": f.blake3,
            }
            for f in self.files
        ]
        for obj in data["objects"].values():
            obj["etags"] = {str(k): v for k, v in obj["etags"].items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UploadState:
        files = [
            SourceFile(f["path"], Path(f["local"]), f["size"], f["mtimeNs"], f["mode"], f.get("blake3"))
            for f in data["files"]
        ]
        objects = {}
        for sha, obj in data.get("objects", {}).items():
            obj = dict(obj)
            obj["etags"] = {int(k): v for k, v in obj.get("etags", {}).items()}
            objects[sha] = ObjectState(**obj)
        fields = {k: v for k, v in data.items() if k not in ("files", "objects", "format")}
        return cls(files=files, objects=objects, **fields)

    def describe(self) -> str:
        version = f" version {self.version}" if self.version else ""
        return f"datastore {self.name!r}{version} from {self.source}"


def _apply_batch(state: UploadState, stored: dict[str, str]) -> None:
    """Mark the files of a same-host batch as recorded, with their digests. The work is the batch's, not
    the upload's: a million files come in a thousand batches or more."""
    index = _file_index(state)
    for path, sha in stored.items():
        at = index.get(path)
        if at is not None and state.files[at].blake3 != sha:
            state.files[at] = replace(state.files[at], blake3=sha)
    known = _recorded_set(state)
    for path in stored:
        if path not in known:
            known.add(path)
            state.recorded.append(path)
    state.same_host = True


def _file_index(state: UploadState) -> dict[str, int]:
    """Where each path is in ``state.files``, kept beside the state while that list is the same one."""
    cached: tuple[list[SourceFile], int, dict[str, int]] | None = state.__dict__.get("_file_index")
    if cached is None or cached[0] is not state.files or cached[1] != len(state.files):
        cached = (state.files, len(state.files), {f.path: at for at, f in enumerate(state.files)})
        state.__dict__["_file_index"] = cached
    return cached[2]


def _recorded_set(state: UploadState) -> set[str]:
    """``state.recorded`` as a set, kept beside the state while that list is the same one, grown only here."""
    cached: tuple[list[str], set[str]] | None = state.__dict__.get("_recorded_set")
    if cached is None or cached[0] is not state.recorded or len(cached[1]) != len(state.recorded):
        cached = (state.recorded, set(state.recorded))
        state.__dict__["_recorded_set"] = cached
    return cached[1]


class StateStore:
    """The state files of the uploads of one ``$GRID_OPS_HOME``; safe to use from several threads."""

    def __init__(self, home: Path) -> None:
        self.root = home / "uploads"
        self._lock = threading.Lock()

    def _json(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def _journal(self, key: str) -> Path:
        return self.root / f"{key}.journal"

    def archive_path(self, key: str) -> Path:
        """Where the packed archive of an upload with compression is kept until it completes."""
        return self.root / f"{key}.tar.gz"

    def load(self, key: str) -> UploadState | None:
        """The saved state with the journal's parts applied, or None if there is none."""
        path = self._json(key)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            if data.get("format") == 1:
                raise ValueError(
                    "it was saved by an earlier grid-ops that named content by SHA-256, and its parts cannot be "
                    "continued"
                )
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}")
            state = UploadState.from_json(data)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValidationError(
                f"the saved progress {path} cannot be read ({exc}); delete it to start the upload afresh"
            ) from exc
        journal = self._journal(key)
        if journal.is_file():
            batches: dict[str, str] = {}
            for line in journal.read_text().splitlines():
                try:
                    entry = json.loads(line)
                    if "b" in entry:  # only for the version this state uploads to (not one deleted since)
                        if entry["d"] == state.datastore_id:
                            batches.update((str(path), str(sha)) for path, sha in entry["b"])
                        continue
                    obj = state.objects.get(entry["s"])
                    if obj is not None and obj.upload_id == entry["u"]:
                        obj.etags[int(entry["p"])] = str(entry["e"])
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a kill (or an empty one): what it noted is sent again
            if batches:
                _apply_batch(state, batches)
        return state

    def save(self, state: UploadState) -> None:
        """Write the whole state atomically and start a fresh journal."""
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = self._json(state.key)
            tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(state.to_json()))
            os.replace(tmp, path)
            with contextlib.suppress(FileNotFoundError):
                self._journal(state.key).unlink()

    def record_part(self, state: UploadState, obj: ObjectState, number: int, etag: str) -> None:
        """Note that a part arrived (in memory and in the journal, flushed at once)."""
        with self._lock:
            obj.etags[number] = etag
            self._append(state, {"s": obj.blake3, "u": obj.upload_id, "p": number, "e": etag})

    def record_batch(self, state: UploadState, stored: dict[str, str]) -> None:
        """Note that the control plane recorded these files (path -> blake3) in the version's manifest (in
        memory and in the journal, at once)."""
        with self._lock:
            _apply_batch(state, stored)
            self._append(state, {"d": state.datastore_id, "b": sorted(stored.items())})

    def _append(self, state: UploadState, entry: dict[str, Any]) -> None:
        """Add an entry to the journal, on a line of its own even after a line a kill cut short (the lock is
        held)."""
        with self._journal(state.key).open("a") as journal:
            journal.write("\n" + json.dumps(entry) + "\n")

    def delete(self, key: str) -> None:
        """Forget an upload: its state, journal and packed archive."""
        with self._lock:
            for path in (self._json(key), self._journal(key), self.archive_path(key)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def all(self) -> list[UploadState]:
        """Every saved upload, oldest first (unreadable ones are skipped)."""
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.glob("*.json"), key=lambda p: p.stat().st_mtime):
            try:
                state = self.load(path.stem)
            except ValidationError:
                continue
            if state is not None:
                found.append(state)
        return found
