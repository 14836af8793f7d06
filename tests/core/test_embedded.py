"""The embedded local control plane: started on demand by the first SDK call when nothing is configured,
shared by every process using the same ``$GRID_OPS_HOME``, stopped gracefully, and keeping its user's key
across restarts.

Each test uses a fresh ``GRID_OPS_HOME`` and drives the SDK from subprocesses of ``sys.executable`` with no
``GRID_URL``/``GRID_USER_ID``/``GRID_API_KEY`` in their environment, as an Airflow or Prefect worker would.
The ``home`` fixture stops every server started for that home, even when the test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from grid_ops.embedded import LOCK_FILE, SERVER_FILE, USER_FILE, stop_local_server

# prints what the SDK of a fresh process connected to: {"url", "user_id", "pid", "default_cluster"}
PROBE = textwrap.dedent(
    """
    import json, os
    from pathlib import Path
    from grid_ops import api
    from grid_ops.client import get_client

    clusters = api.list_clusters()
    client = get_client()
    server = json.loads((Path(os.environ["GRID_OPS_HOME"]) / "local-server.json").read_text())
    print(json.dumps({"url": client.url, "user_id": client.user_id, "pid": server["pid"],
                      "default_cluster": clusters.default_cluster}))
    """
)


def server_pids(home: Path) -> list[int]:
    """The live ``grid_ops.server`` processes serving ``home`` (found by their command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state == "Z" or b"grid_ops.server" not in argv:
            continue
        if str(home).encode() in argv:
            found.append(int(entry.name))
    return sorted(found)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def listening_addresses(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of LISTEN sockets on ``port``."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == "0A":
                out.append(address)
    return out


@pytest.fixture()
def home(tmp_path: Path) -> Iterator[Path]:
    """A fresh GRID_OPS_HOME (not created yet); every server started for it is stopped afterwards."""
    directory = tmp_path / "grid-home"
    yield directory
    try:
        stop_local_server(directory, timeout=15)
    finally:
        for pid in server_pids(directory):  # e.g. a second server a race let through
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture()
def env(home: Path) -> dict[str, str]:
    """The environment of a worker process: nothing of grid-ops configured but the home."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GRID_")}
    clean["GRID_OPS_HOME"] = str(home)
    return clean


def run_python(code: str, env: dict[str, str], cwd: Path, timeout: float = 90) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, f"exit {out.returncode}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}"
    return out.stdout


def probe(env: dict[str, str], cwd: Path) -> dict[str, Any]:
    return json.loads(run_python(PROBE, env, cwd).strip().splitlines()[-1])  # type: ignore[no-any-return]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_sdk_call_starts_a_private_server_on_loopback_only(
    home: Path, env: dict[str, str], tmp_path: Path
) -> None:
    assert not home.exists()
    seen = probe(env, tmp_path)
    assert seen["default_cluster"] == "local"
    assert seen["url"].startswith("http://127.0.0.1:")
    server = json.loads((home / SERVER_FILE).read_text())
    user = json.loads((home / USER_FILE).read_text())
    assert server == {"url": seen["url"], "pid": seen["pid"]}
    assert user["userId"] == seen["user_id"] and user["apiKey"]
    assert mode(home / SERVER_FILE) == 0o600
    assert mode(home / USER_FILE) == 0o600
    assert server_pids(home) == [seen["pid"]]
    # it outlives the process that started it
    assert requests.get(seen["url"] + "/healthz", timeout=5).json()["status"] == "ok"
    # bound to 127.0.0.1 only: one IPv4 loopback LISTEN socket on its port, no wildcard or IPv6 one
    port = int(seen["url"].rsplit(":", 1)[1])
    assert listening_addresses(port) == ["0100007F"]


def test_processes_starting_at_once_share_one_server(home: Path, env: dict[str, str], tmp_path: Path) -> None:
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", PROBE],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    seen = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=90)
        assert worker.returncode == 0, stderr
        seen.append(json.loads(stdout.strip().splitlines()[-1]))
    assert len({(s["url"], s["pid"], s["user_id"]) for s in seen}) == 1, seen
    assert server_pids(home) == [seen[0]["pid"]]


def test_server_is_reused_then_stopped_gracefully_and_restarted_with_the_same_key(
    home: Path, env: dict[str, str], tmp_path: Path
) -> None:
    first = probe(env, tmp_path)
    key = json.loads((home / USER_FILE).read_text())
    again = probe(env, tmp_path)
    assert (again["url"], again["pid"]) == (first["url"], first["pid"])  # reused, not restarted

    assert stop_local_server(home) is True
    assert not alive(first["pid"])
    assert not (home / SERVER_FILE).exists()
    assert server_pids(home) == []
    log = (home / "local-server.log").read_text()
    assert "Traceback" not in log, log[-3000:]

    restarted = probe(env, tmp_path)
    assert restarted["pid"] != first["pid"]
    assert alive(restarted["pid"]) and server_pids(home) == [restarted["pid"]]
    assert json.loads((home / USER_FILE).read_text()) == key  # the key survives restarts
    assert restarted["user_id"] == key["userId"]
    answer = requests.get(restarted["url"] + "/v1/auth/user", auth=(key["userId"], key["apiKey"]), timeout=5)
    assert answer.status_code == 200 and answer.json()["id"] == key["userId"]
    assert (home / LOCK_FILE).exists()

    assert stop_local_server(home) is True
    assert stop_local_server(home) is False  # nothing left to stop


def experiment_pids(tag: str) -> list[int]:
    """Live processes whose command line carries ``tag``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                if tag.encode() in (entry / "cmdline").read_bytes() and alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_graceful_stop_ends_running_experiments_and_records_why(
    home: Path, env: dict[str, str], tmp_path: Path
) -> None:
    tag = f"grid-ops-stop-probe-{os.getpid()}-{time.monotonic_ns()}"
    starter = textwrap.dedent(
        f"""
        import time
        from grid_ops import Run
        run = Run(run_command='python3 -c "import time; time.sleep(60)" --tag {tag}')
        run.start()
        deadline = time.monotonic() + 30
        while run.refresh().status != "running":
            assert time.monotonic() < deadline, run.status
            time.sleep(0.1)
        print(run.name)
        """
    )
    name = run_python(starter, env, tmp_path).split()[-1]
    deadline = time.monotonic() + 10
    while not experiment_pids(tag):
        assert time.monotonic() < deadline, "the experiment's process never showed up"
        time.sleep(0.05)

    assert stop_local_server(home) is True
    deadline = time.monotonic() + 10
    while experiment_pids(tag):  # no orphan experiment outlives its control plane
        assert time.monotonic() < deadline, f"experiment processes left running: {experiment_pids(tag)}"
        time.sleep(0.1)

    reader = textwrap.dedent(
        f"""
        import json
        from grid_ops import Run
        run = Run({name!r})
        print(json.dumps({{"status": run.status, "experiments": [[e.status, e.message] for e in run]}}))
        """
    )
    seen = json.loads(run_python(reader, env, tmp_path).strip().splitlines()[-1])
    assert seen["status"] in {"failed", "cancelled"}
    [[status, message]] = seen["experiments"]
    assert status in {"failed", "cancelled", "paused"}
    assert message and "shut down" in message


def test_a_crashed_server_is_replaced_on_the_next_call_with_the_same_key(
    home: Path, env: dict[str, str], tmp_path: Path
) -> None:
    first = probe(env, tmp_path)
    key = json.loads((home / USER_FILE).read_text())
    os.kill(first["pid"], signal.SIGKILL)  # the server this test started; no chance to clean up
    deadline = time.monotonic() + 10
    while alive(first["pid"]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert (home / SERVER_FILE).exists()  # stale: names a dead process

    second = probe(env, tmp_path)
    assert second["pid"] != first["pid"]
    assert server_pids(home) == [second["pid"]]
    assert json.loads((home / SERVER_FILE).read_text()) == {"url": second["url"], "pid": second["pid"]}
    assert json.loads((home / USER_FILE).read_text()) == key
    assert second["user_id"] == key["userId"]


def test_a_client_whose_server_was_stopped_reconnects_to_a_new_one(
    home: Path, env: dict[str, str], tmp_path: Path
) -> None:
    code = textwrap.dedent(
        """
        import json
        from grid_ops import api
        from grid_ops.client import get_client
        from grid_ops.embedded import local_server_status, stop_local_server

        api.list_clusters()
        before, pid_before = get_client().url, local_server_status()["pid"]
        assert stop_local_server() is True
        clusters = api.list_clusters()  # same process, same cached client
        print(json.dumps({"before": before, "after": get_client().url, "default": clusters.default_cluster,
                          "pid_before": pid_before, "pid_after": local_server_status()["pid"]}))
        """
    )
    seen = json.loads(run_python(code, env, tmp_path).strip().splitlines()[-1])
    assert seen["default"] == "local"
    assert seen["pid_before"] != seen["pid_after"]  # a new server ...
    assert seen["before"] == seen["after"]  # ... back on the port the old one had
    server = json.loads((home / SERVER_FILE).read_text())
    assert server["url"] == seen["after"]
    assert server_pids(home) == [server["pid"]]


def test_run_started_from_one_process_can_be_waited_on_from_another(
    home: Path, env: dict[str, str], tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text("import sys, time\ntime.sleep(1)\nprint('trained with', sys.argv[1:])\n")
    starter = textwrap.dedent(
        """
        from grid_ops import Run
        run = Run(run_command='python3 train.py --lr "[0.1, 0.01]"')
        run.start()
        print(run.name, run.status)
        """
    )
    name, status = run_python(starter, env, source).split()
    assert status in {"pending", "building", "running"}

    waiter = textwrap.dedent(
        f"""
        import json
        from grid_ops import Run
        run = Run({name!r})
        status = run.wait(timeout=60, poll_interval=0.2)
        print(json.dumps({{"status": status, "logs": [e.logs() for e in run]}}))
        """
    )
    result = json.loads(run_python(waiter, env, tmp_path).strip().splitlines()[-1])
    assert result["status"] == "succeeded"
    assert result["logs"] == ["trained with ['--lr', '0.1']\n", "trained with ['--lr', '0.01']\n"]
    assert len(server_pids(home)) == 1
