"""Shared pieces of the datastore tests: source trees, the raw upload API, and reading a version back."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from grid_ops import digests
from grid_ops.client import GridClient, set_client
from tests.core.controlplane import ControlPlane

_counter = itertools.count()
PLAIN = requests.Session()
PLAIN.trust_env = False  # presigned URLs on 127.0.0.1: no proxy, no credentials


def unique(prefix: str) -> str:
    """A datastore name no other test uses."""
    return f"{prefix}-{os.getpid() % 10_000}-{next(_counter)}"


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    """Write ``files`` (path -> content) under ``root``."""
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def random_bytes(n: int, seed: int) -> bytes:
    """``n`` reproducible pseudo-random (incompressible) bytes."""
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 32
    return bytes(out[:n])


def point_sdk_at(mp: pytest.MonkeyPatch, cp: ControlPlane, home: Path, cluster: str = "local") -> None:
    """Make the SDK and CLI of this process use ``cp`` and keep upload progress under ``home``."""
    for key, value in cp.env().items():
        mp.setenv(key, value)
    mp.setenv("GRID_OPS_HOME", str(home))
    mp.setenv("GRID_CLUSTER_ID", cluster)
    for key in (
        "GRID_OPS_UPLOAD_PART_SIZE",
        "GRID_OPS_UPLOAD_THREADS",
        "GRID_OPS_UPLOAD_MAX_BPS",
        "GRID_OPS_UPLOAD_SAME_HOST",
    ):
        mp.delenv(key, raising=False)
    set_client(None)


def client_of(cp: ControlPlane, cluster: str = "local") -> GridClient:
    return GridClient(cp.url, cp.user_id, cp.api_key, cluster_id=cluster)


def read_version(client: GridClient, ref: str) -> dict[str, tuple[bytes, int]]:
    """Every file of a version, downloaded through the URLs of the files listing: path -> (bytes, mode)."""
    out = {}
    for f in client.iter_datastore_files(ref, page_size=2):
        assert f.url is not None
        answer = PLAIN.get(f.url, timeout=30)
        assert answer.status_code == 200, answer.text
        assert digests.of_bytes(answer.content) == f.blake3
        out[f.filename] = (answer.content, f.mode or 0)
    return out


def tree_of(root: Path) -> dict[str, tuple[bytes, int]]:
    """The files under ``root`` as ``read_version`` returns them."""
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mode & 0o777)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------------- the raw wire API


class Raw:
    """The datastore endpoints called directly, as any client of the wire format would."""

    def __init__(self, cp: ControlPlane, cluster: str = "local", auth: tuple[str, str] | None = None) -> None:
        self.cp, self.cluster, self.auth = cp, cluster, auth

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        return self.cp.call(method, f"/v1/core/{self.cluster}/datastores{path}", auth=self.auth, **kw)

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        answer = self.call(method, path, **kw)
        assert answer.status_code == 200, f"{method} {path} -> {answer.status_code} {answer.text}"
        return answer.json()

    def create(self, name: str, **spec: Any) -> dict[str, Any]:
        return self.ok("POST", "", json={"name": name, "spec": spec})  # type: ignore[no-any-return]

    def presign(self, ds: str, *objects: dict[str, Any]) -> list[dict[str, Any]]:
        return self.ok("POST", f"/{ds}/presigned-urls", json={"objects": list(objects)})["objects"]  # type: ignore[no-any-return]

    def complete_parts(self, ds: str, key: str, upload_id: str, etags: dict[int, str]) -> requests.Response:
        urls = [{"partNumber": str(n), "etag": e} for n, e in sorted(etags.items())]
        body = {"objects": [{"key": key, "uploadId": upload_id, "urls": urls}]}
        return self.call("POST", f"/{ds}/presigned-urls/completed", json=body)

    def wait(self, ds: str, timeout: float = 30) -> dict[str, Any]:
        """The version once it is no longer optimizing."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.ok("GET", f"/{ds}")
            if got["status"]["phase"] != "DATASTORE_OPTIMIZATION_STATUS_OPTIMIZING":
                return got  # type: ignore[no-any-return]
            assert time.monotonic() < deadline, f"{ds} still optimizing"
            time.sleep(0.05)


def put(url: str, data: bytes) -> str:
    """PUT one part to its presigned URL; returns the ETag answered (unquoted)."""
    answer = PLAIN.put(url, data=data, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.headers["ETag"].strip('"')


def blake3_hex(data: bytes) -> str:
    return digests.of_bytes(data)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# ---------------------------------------------------------------------- experiments that mount a version

INSPECT = """\
import hashlib, json, os, stat, sys
root = os.environ["GRID_DATASTORE_DIR"]
files = {}
for folder, _dirs, names in os.walk(root):
    for name in names:
        path = os.path.join(folder, name)
        st = os.stat(path)
        digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
        files[os.path.relpath(path, root)] = [digest, stat.S_IMODE(st.st_mode), st.st_ino]
folders = [stat.S_IMODE(os.stat(folder).st_mode) for folder, _d, _n in os.walk(root)]
link = os.path.realpath(sys.argv[1]) if len(sys.argv) > 1 and os.path.exists(sys.argv[1]) else None
print("DS " + json.dumps({"dir": root, "files": files, "folders": folders, "link": link}), flush=True)
"""


def inspect_project(root: Path) -> Path:
    """A source folder with ``inspect_ds.py``, which prints what the experiment sees of its datastore."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "inspect_ds.py").write_text(INSPECT)
    return root


def seen(cp: ControlPlane, experiment: str, cluster: str = "local") -> tuple[dict[str, Any], str]:
    """What ``inspect_ds.py`` printed in an experiment, and its whole log."""
    log = cp.ok("GET", f"/v1/core/{cluster}/experiments/{experiment}/logs")["data"]
    lines = [line for line in log.splitlines() if line.startswith("DS ")]
    assert lines, f"{experiment} printed no DS line:\n{log}"
    return json.loads(lines[-1][3:]), log


def expected_view(root: Path) -> dict[str, tuple[str, int]]:
    """A source tree as an experiment should see it mounted: path -> (SHA-256, as INSPECT hashes, and mode)."""
    return {
        p.relative_to(root).as_posix(): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            0o555 if p.stat().st_mode & 0o111 else 0o444,
        )
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def stored_content(cp: ControlPlane, user_id: str | None = None, cluster: str = "local") -> dict[str, str]:
    """The content a user has in a local cluster's storage, by BLAKE3: ``"file"`` for a file at its blob key,
    ``"pack"`` for a range of a pack file (read from the control plane's database, read-only)."""
    user = user_id or cp.user_id
    root = cp.home / "server" / "datastores" / cluster / "blobs" / user
    found = {p.name: "file" for p in root.rglob("*") if p.is_file()} if root.is_dir() else {}
    database = next((cp.home / "server").glob("*.db"))
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT blake3 FROM datastore_packed_blobs WHERE cluster_id = ? AND user_id = ?", (cluster, user)
        ).fetchall()
    found.update((sha, "pack") for (sha,) in rows)
    return found


def pack_files(cp: ControlPlane, user_id: str | None = None, cluster: str = "local") -> list[Path]:
    """The pack files of a user in a local cluster's storage."""
    root = cp.home / "server" / "datastores" / cluster / "packs" / (user_id or cp.user_id)
    return sorted(p for p in root.iterdir() if p.is_file()) if root.is_dir() else []
