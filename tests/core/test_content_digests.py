"""Content is named by its BLAKE3 digest; what was named by SHA-256 before keeps working: an older
database's columns are renamed in place, the runner (also without site-packages) and the server accept
content named either way (and nothing else), and an upload saved in the older format is refused with
what to do."""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from grid_ops import digests
from grid_ops.errors import ValidationError
from grid_ops.runner import datastore as runner_datastore
from grid_ops.server import datastore_tables
from grid_ops.server.db import init_db
from grid_ops.server.models import Base
from grid_ops.upload.state import FORMAT, StateStore


def test_digest_is_blake3_of_the_content(tmp_path: Path) -> None:
    data = b"abc" * 100_000
    (tmp_path / "f").write_bytes(data)
    (tmp_path / "empty").write_bytes(b"")
    blake3_abc = "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"  # the reference vector
    assert digests.of_bytes(b"abc") == blake3_abc
    assert digests.of_file(tmp_path / "f") == digests.of_bytes(data) != hashlib.sha256(data).hexdigest()
    assert digests.of_file(tmp_path / "empty") == digests.of_bytes(b"")
    assert digests.HEX.match(digests.of_bytes(data))


def test_a_database_from_the_sha256_days_has_its_columns_renamed_and_keeps_its_rows(tmp_path: Path) -> None:
    assert datastore_tables.DatastoreBlobRow.__tablename__ in Base.metadata.tables
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    Base.metadata.create_all(engine)
    tables = ("datastore_files", "datastore_blobs", "datastore_uploads")
    with engine.begin() as conn:  # as an older grid-ops made it
        for table in tables:
            conn.execute(text(f"ALTER TABLE {table} RENAME COLUMN blake3 TO sha256"))
        conn.execute(
            text(
                "INSERT INTO datastore_blobs (cluster_id, user_id, sha256, size, created_at) "
                "VALUES ('local', 'u1', :sha, 3, '2026-01-01 00:00:00')"
            ),
            {"sha": hashlib.sha256(b"old").hexdigest()},
        )
    init_db(engine)
    init_db(engine)  # a second start finds nothing to rename
    for table in tables:
        columns = {c["name"] for c in inspect(engine).get_columns(table)}
        assert "blake3" in columns and "sha256" not in columns, table
    with engine.connect() as conn:
        assert conn.execute(text("SELECT blake3 FROM datastore_blobs")).scalar() == hashlib.sha256(b"old").hexdigest()


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A plain HTTP server on 127.0.0.1 serving ``tmp_path / 'served'``."""
    served = tmp_path / "served"
    served.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(served), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()


def test_the_runner_checks_downloads_by_blake3_or_by_the_sha256_of_older_content(
    tmp_path: Path, file_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, served = file_server
    monkeypatch.setattr(runner_datastore, "_ATTEMPTS", 1)  # a mismatch is not retried with back-off here
    data = b"datastore content " * 5000
    (served / "f.bin").write_bytes(data)

    def download(name: str, digest: str, size: int = len(data)) -> int:
        entry = {"url": f"{url}/f.bin", "blake3": digest, "sizeBytes": size, "path": "f.bin"}
        return runner_datastore._download(entry, str(tmp_path / name), 0o444)

    assert runner_datastore._blake3() is not None  # grid-ops' own environment has it
    assert download("new", digests.of_bytes(data)) == len(data)
    assert (tmp_path / "new").read_bytes() == data
    assert download("old", hashlib.sha256(data).hexdigest()) == len(data)
    with pytest.raises(runner_datastore.DatastoreError, match=r"could not be downloaded.*expected"):
        download("wrong", digests.of_bytes(b"something else"))
    with pytest.raises(runner_datastore.DatastoreError, match="could not be downloaded"):
        download("short", digests.of_bytes(data), size=len(data) + 1)


def test_an_upload_saved_when_content_was_named_by_sha256_is_refused_saying_what_to_do(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.root.mkdir(parents=True)
    (store.root / "k1.json").write_text(json.dumps({"format": 1, "key": "k1", "files": [], "objects": {}}))
    with pytest.raises(ValidationError) as caught:
        store.load("k1")
    message = str(caught.value)
    assert "named content by SHA-256" in message and "delete it to start the upload afresh" in message
    assert str(store.root / "k1.json") in message
    assert FORMAT == 2


def test_names_file_takes_blake3_or_the_sha256_of_older_content(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"content")
    assert digests.names_file(digests.of_bytes(b"content"), path)
    assert digests.names_file(hashlib.sha256(b"content").hexdigest(), path)
    assert not digests.names_file(digests.of_bytes(b"other"), path)


def test_the_runner_finds_blake3_when_started_without_site_packages() -> None:
    """The supervisor runs ``python -I -S`` and loads runner modules by path: blake3 must still be found."""
    folder = Path(runner_datastore.__file__).parent
    code = (
        f"import sys; sys.path.insert(0, {str(folder)!r}); import datastore; "
        "assert 'blake3' not in sys.modules; print(datastore._blake3() is not None)"
    )
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
