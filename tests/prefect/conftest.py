"""Fixtures: Prefect's real test harness (a temporary Prefect server and database) and a real grid-ops
control plane on 127.0.0.1, both for the whole session; small real experiment scripts."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

# Prefect reads its settings when imported: keep it off ~/.prefect, offline and quiet before that.
_PREFECT_HOME = Path(os.environ.get("TMPDIR", "/tmp")) / f"grid-ops-prefect-tests-{os.getpid()}"
os.environ["PREFECT_HOME"] = str(_PREFECT_HOME)
atexit.register(shutil.rmtree, _PREFECT_HOME, True)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_UI_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_TO_API_BATCH_INTERVAL"] = "0.3"
os.environ["DO_NOT_TRACK"] = "1"

from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from prefect_tasks import GridCredentials  # noqa: E402
from tests.core.controlplane import ControlPlane, start_control_plane  # noqa: E402

SCRIPTS = {
    "sleep.py": """
        import os, sys, time
        seconds = float(sys.argv[sys.argv.index("--seconds") + 1]) if "--seconds" in sys.argv else 0.2
        score = float(sys.argv[sys.argv.index("--score") + 1]) if "--score" in sys.argv else 1.0
        time.sleep(seconds)
        print(f"score={score}", flush=True)
        out = os.environ.get("GRID_ARTIFACTS_DIR")
        if out:
            os.makedirs(out, exist_ok=True)
            open(os.path.join(out, "model.txt"), "w").write(f"model with score {score}\\n")
    """,
    "fail.py": """
        import sys
        print("loading the data", flush=True)
        print("error: the training data is empty", file=sys.stderr, flush=True)
        sys.exit(3)
    """,
}


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    """One temporary Prefect server (the real ``prefect_test_harness``) for every test."""
    with prefect_test_harness(server_startup_timeout=180):  # a loaded 2-core machine can take a while
        yield


@pytest.fixture(scope="session")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A real grid-ops control plane; experiments run with this environment's Python."""
    home = tmp_path_factory.mktemp("grid-home")
    os.environ["GRID_OPS_HOME"] = str(tmp_path_factory.mktemp("client-home"))  # never ~/.grid_ops
    for key in ("GRID_URL", "GRID_USER_ID", "GRID_API_KEY", "GRID_CLUSTER_ID"):
        os.environ.pop(key, None)
    plane = start_control_plane(home, python=sys.executable)
    yield plane
    plane.stop()


@pytest.fixture(scope="session")
def creds(cp: ControlPlane) -> GridCredentials:
    return GridCredentials(url=cp.url, user_id=cp.user_id, api_key=cp.api_key, cluster_id="local")


@pytest.fixture(scope="session")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A source directory with the example training script and the small test scripts."""
    root = tmp_path_factory.mktemp("src")
    for name, body in SCRIPTS.items():
        (root / name).write_text(textwrap.dedent(body))
    train = Path(__file__).resolve().parents[2] / "examples" / "train.py"
    (root / "train.py").write_text(train.read_text())
    return root
