"""Fixtures for driving a REAL control plane with the ORIGINAL Grid SDK (lightning-grid 0.8.81).

These tests run in ``.venvs/compat`` (``scripts/setup-compat``), which holds the original SDK but not
grid-ops: lightning-grid pins ``websockets<10`` and grid-ops' ``uvicorn[standard]`` needs ``>=10.4``, so
the two cannot share an environment. The control plane is therefore started, as
``tests/core/controlplane.py`` starts it (``python -m grid_ops.server --embedded``), with the python of
``GRID_OPS_SERVER_PYTHON`` (default ``.venvs/core/bin/python``, made by ``scripts/setup-core``).

Every SDK operation runs as its own process (``scenarios/grid_sdk.py``) whose environment is set before
``grid`` is imported, since the SDK reads ``GRID_URL``, the credentials and ``GRID_CLUSTER_ID`` at import
time and writes ``$HOME/.grid/settings.json``: ``HOME`` is a temporary directory. The tests check what
the SDK printed and, with plain ``requests``, what the control plane then holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.core import controlplane as core

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).resolve().parent / "scenarios" / "grid_sdk.py"
CLUSTER = "local"

# A local cluster whose instance types the SDK can name (``Resources(instance_type="cpu-1")``); the SDK's
# own default, ``t2.medium``, is deliberately not among them. Capacity for four 1-CPU experiments at once
# (they mostly sleep), so the scenarios do not queue behind each other.
COMPAT_CONFIG = """
cancel_grace_seconds: 2
clusters:
  - id: local
    executor: local
    capacity: {cpu: 4, gpu: 0, memory_mb: 8192}
    instance_types:
      - {name: cpu-1, cpu: 1, gpu: 0, memory_mb: 2048, hourly_cost: 0.36, spot_hourly_cost: 0.12}
      - {name: cpu-2, cpu: 2, gpu: 0, memory_mb: 4096, hourly_cost: 0.72}
    default_instance_type: cpu-1
"""

TRAIN_PY = """\
import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=int, required=True)
args = parser.parse_args()
print(f"training with x={args.x}", flush=True)
"""


def server_python() -> Path:
    """The python that runs the control plane (one with grid-ops installed)."""
    configured = os.environ.get("GRID_OPS_SERVER_PYTHON")
    path = Path(configured) if configured else ROOT / ".venvs" / "core" / "bin" / "python"
    if not path.is_absolute():
        path = ROOT / path
    if not path.exists():
        pytest.fail(
            f"no python to run the control plane at {path}: run scripts/setup-compat (it also runs "
            "scripts/setup-core), or set GRID_OPS_SERVER_PYTHON to a python with grid-ops installed",
            pytrace=False,
        )
    return path


class ControlPlane(core.ControlPlane):
    """The control plane of ``tests/core``, with helpers the compatibility tests read it through."""

    def run(self, name: str) -> dict[str, Any]:
        return self.ok("GET", f"/v1/core/{CLUSTER}/runs/{name}")  # type: ignore[no-any-return]

    def run_names(self) -> list[str]:
        return [r["name"] for r in self.ok("GET", f"/v1/core/{CLUSTER}/runs", params={"pageSize": 1000})["runs"]]

    def log(self, experiment: str) -> str:
        return self.ok("GET", f"/v1/core/{CLUSTER}/experiments/{experiment}/logs")["data"]  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = core.start_control_plane(
        tmp_path_factory.mktemp("grid-ops-home"), COMPAT_CONFIG, python=str(server_python()), plane=ControlPlane
    )
    yield plane
    plane.stop()


@dataclass
class SdkResult:
    """What one SDK process did: its exit code, its output, and the RESULT it printed (if it got there)."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    result: Any = None

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return f"grid_sdk.py {' '.join(self.args)} -> exit {self.returncode}\n{self.output[-4000:]}"


SdkRunner = Callable[..., SdkResult]


@pytest.fixture(scope="session")
def project_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's project directory with a small ``train.py`` (no git repository: ``localdir=True``)."""
    path = tmp_path_factory.mktemp("project")
    (path / "train.py").write_text(TRAIN_PY)
    return path


@pytest.fixture(scope="session")
def sdk(cp: ControlPlane, tmp_path_factory: pytest.TempPathFactory, project_dir: Path) -> SdkRunner:
    """``sdk(op, *args, ok=True)``: one operation of the original SDK in its own process (see module doc)."""
    home = tmp_path_factory.mktemp("sdk-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRID_")}
    env.update(
        {
            "HOME": str(home),
            "GRID_URL": cp.url,
            "GRID_USER_ID": cp.user_id,
            "GRID_API_KEY": cp.api_key,
            "GRID_CLUSTER_ID": CLUSTER,
            "PYTHONUNBUFFERED": "1",
        }
    )

    def run(op: str, *args: str, ok: bool = True, cwd: Path | None = None) -> SdkResult:
        argv = (op, *args)
        proc = subprocess.run(
            [sys.executable, str(SCENARIO), *argv],
            cwd=cwd or project_dir, env=env, capture_output=True, text=True, timeout=90,
        )
        res = SdkResult(argv, proc.returncode, proc.stdout, proc.stderr)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if lines:
            res.result = json.loads(lines[-1][len("RESULT "):])
        if ok:
            assert proc.returncode == 0 and lines, str(res)
        return res

    return run

