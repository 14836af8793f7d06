"""A private PostgreSQL server for the tests: ``initdb`` into a temporary folder and ``pg_ctl start``
on 127.0.0.1 with a free port, as the ``postgres`` system user (PostgreSQL refuses to run as root)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


def find_pg_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (Debian keeps them outside PATH)."""
    for cand in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (cand / "initdb").exists():
            return cand
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Postgres:
    bindir: Path
    datadir: Path
    port: int
    as_user: list[str]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/grid"

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def start_postgres() -> Postgres:
    """Start a throwaway server with a ``grid`` database; raise RuntimeError saying why if it cannot."""
    bindir = find_pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL's initdb was not found (install the 'postgresql' package)")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="grid-pg-"))
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    os.chmod(root, 0o755)
    datadir = root / "data"
    port = _free_port()
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        capture_output=True,
        check=True,
    )
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
    subprocess.run(
        [*as_user, str(bindir / "pg_ctl"), "-D", str(datadir), "-o", opts, "-l", str(root / "pg.log"), "-w", "start"],
        capture_output=True,
        check=True,
    )
    subprocess.run(
        [*as_user, str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "grid"],
        capture_output=True,
        check=True,
    )
    return Postgres(bindir=bindir, datadir=datadir, port=port, as_user=as_user)
