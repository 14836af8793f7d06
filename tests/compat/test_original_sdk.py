"""The ORIGINAL Grid SDK (lightning-grid 0.8.81, from PyPI) drives our control plane.

Each SDK operation runs in its own process of the compat env (see conftest.py); what it printed is
checked, and so is what our API holds afterwards, through plain ``requests`` calls.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.compat.conftest import CLUSTER, ControlPlane, SdkResult, SdkRunner

try:  # the metadata only: importing `grid` would write to the real $HOME
    SDK_VERSION = importlib.metadata.version("lightning-grid")
except importlib.metadata.PackageNotFoundError:
    pytest.skip(
        "the original Grid SDK is not installed here: run these tests with .venvs/compat/bin/python "
        "(scripts/setup-compat)",
        allow_module_level=True,
    )

SWEEP = 'python train.py --x "[1, 2]"'
SLEEP_SWEEP = 'python -c "import time; time.sleep(60)" --x "[1, 2]"'
RUN_DONE = {"RUN_STATE_SUCCEEDED", "RUN_STATE_FAILED", "RUN_STATE_CANCELED"}

# The exact create-run body the SDK sends for `Run(name, run_command, localdir=True).start()` with its
# default Resources() (captured from lightning-grid 0.8.81).
SDK_DEFAULT_CREATE_BODY: dict[str, Any] = {
    "localDir": True,
    "spec": {
        "actions": {}, "autoResume": False, "clusterId": CLUSTER, "desiredState": "RUN_STATE_SUCCEEDED",
        "dryRun": False, "env": {},
        "image": {"dependencyFileInfo": {"packageManager": "PACKAGE_MANAGER_PIP", "path": "./requirements.txt"},
                  "framework": "lightning"},
        "instanceType": "t2.medium",
        "resources": {"cpu": 0, "extra": {}, "gpu": 0, "storageGb": 100},
        "runControllerCommand": SWEEP,
        "scratch": [{"mountPath": "/scratch", "sizeGb": 100}],
        "sweepType": "grid_search", "useSpot": False,
    },
}


def wait_for(what: str, check: Callable[[], Any], timeout: float = 45, every: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {value!r}")
        time.sleep(every)


def wait_run_done(cp: ControlPlane, name: str, timeout: float = 45) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        run = cp.run(name)
        return run if run["status"]["phase"] in RUN_DONE else None

    return wait_for(f"run {name} to finish", done, timeout)  # type: ignore[no-any-return]


def wait_phases(cp: ControlPlane, run: str, phases: list[str], timeout: float = 30) -> list[dict[str, Any]]:
    def check() -> list[dict[str, Any]] | None:
        exps = cp.experiments(run)
        return exps if [e["status"]["phase"] for e in exps] == phases else None

    return wait_for(f"experiments of {run} to be {phases}", check, timeout)  # type: ignore[no-any-return]


def start(sdk: SdkRunner, name: str, command: str) -> SdkResult:
    res = sdk("start", name, command, "cpu-1")
    assert res.result["name"] == name, res
    assert res.result["num_experiments"] == 2, res
    return res


@pytest.fixture(scope="module")
def finished_sweep(cp: ControlPlane, sdk: SdkRunner) -> tuple[SdkResult, dict[str, Any]]:
    """`Run(name, 'python train.py --x "[1, 2]"', localdir=True, cpu-1).start()`, run to its end."""
    started = start(sdk, "compat-sweep", SWEEP)
    return started, wait_run_done(cp, "compat-sweep")


def test_the_sdk_under_test_is_lightning_grid_0_8_81() -> None:
    assert SDK_VERSION == "0.8.81"


# --------------------------------------------------------------------------- 1. Run(...).start()


def test_run_start_localdir_sweep_uploads_source_and_both_experiments_succeed(
    cp: ControlPlane, finished_sweep: tuple[SdkResult, dict[str, Any]]
) -> None:
    started, run = finished_sweep
    assert started.result["instance_type"] == "cpu-1"
    assert started.result["run_command"] == SWEEP
    assert started.result["cluster_id"] == CLUSTER
    assert run["status"]["phase"] == "RUN_STATE_SUCCEEDED", run
    assert run["spec"]["instanceType"] == "cpu-1"
    assert run["spec"]["runControllerCommand"] == SWEEP
    assert run["status"]["experimentIds"] == started.result["experiment_ids"]
    exps = cp.experiments("compat-sweep")
    assert [e["name"] for e in exps] == ["compat-sweep-exp0", "compat-sweep-exp1"]
    for exp, x in zip(exps, ("1", "2"), strict=True):
        assert exp["status"]["phase"] == "EXPERIMENT_STATE_SUCCEEDED", exp
        assert exp["spec"]["command"] == ["python", "train.py", "--x", x]
        # train.py came from the SDK's upload of the project directory
        assert f"training with x={x}" in cp.log(exp["name"])


def test_run_with_a_git_url_runs_the_repository_at_the_commit_its_ref_names(
    cp: ControlPlane, sdk: SdkRunner, tmp_path: Path
) -> None:
    # the SDK sends `sourceCode` = the url and no localDir, as it does for GitHub URLs with #ref=<sha>
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "hello.py").write_text("print('from git')\n")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # fmt: skip
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "one"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=env, capture_output=True)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    started = sdk("start-git", "compat-git", "python hello.py", "cpu-1", f"file://{repo}#ref=main")
    assert started.result["name"] == "compat-git", started
    run = wait_run_done(cp, "compat-git")
    assert run["status"]["phase"] == "RUN_STATE_SUCCEEDED", run
    assert run["spec"]["sourceCommit"] == head.stdout.strip()
    assert cp.log("compat-git-exp0").endswith("from git\n")


def test_sdk_default_instance_type_t2_medium_gets_clear_400_and_nothing_is_stored(
    cp: ControlPlane, sdk: SdkRunner
) -> None:
    # the server's answer to the SDK's exact request
    body = dict(SDK_DEFAULT_CREATE_BODY, name="compat-t2-direct")
    r = cp.call("POST", f"/v1/core/{CLUSTER}/runs", json=body)
    assert r.status_code == 400, r.text
    err = r.json()
    assert err["code"] == 400
    assert len(err["details"]) == 1  # exactly one detail: the SDK shows it as the error's message
    message = err["details"][0]["message"]
    assert "'t2.medium'" in message and "cpu-1" in message and "cpu-2" in message, message

    # the SDK surfaces that message to its user
    res = sdk("start", "compat-t2", SWEEP, ok=False)
    assert res.returncode != 0, res
    assert res.result is None, res
    assert "GridException: " + message in res.stderr, res

    for name in ("compat-t2", "compat-t2-direct"):
        assert name not in cp.run_names()
        assert cp.call("GET", f"/v1/core/{CLUSTER}/runs/{name}").status_code == 404
        listed = cp.ok("GET", f"/v1/core/{CLUSTER}/experiments", params={"names": f"{name}-exp0"})
        assert listed["experiments"] == []


# --------------------------------------------------------------------------- 2. Run(name)


def test_run_by_name_loads_name_status_and_experiments(
    sdk: SdkRunner, finished_sweep: tuple[SdkResult, dict[str, Any]]
) -> None:
    _, run = finished_sweep
    loaded = sdk("run", "compat-sweep").result
    assert loaded["name"] == "compat-sweep"
    assert loaded["id"] == run["id"]
    assert loaded["status"] == "succeeded"
    assert loaded["desired_status"] == "succeeded"
    assert loaded["run_command"] == SWEEP
    assert loaded["instance_type"] == "cpu-1"
    assert loaded["num_experiments"] == 2
    assert [e["name"] for e in loaded["experiments"]] == ["compat-sweep-exp0", "compat-sweep-exp1"]
    assert [e["status"] for e in loaded["experiments"]] == ["succeeded", "succeeded"]


# --------------------------------------------------------------------------- 3. Experiment(name)


def test_experiment_by_name_reads_status_and_command(
    sdk: SdkRunner, finished_sweep: tuple[SdkResult, dict[str, Any]]
) -> None:
    exp = sdk("experiment", "compat-sweep-exp1").result
    assert exp["name"] == "compat-sweep-exp1"
    assert exp["status"] == "succeeded"
    assert exp["command"] == ["python", "train.py", "--x", "2"]
    assert exp["run_name"] == "compat-sweep"
    assert exp["cluster_id"] == CLUSTER
    assert exp["instance_type"] == "cpu-1"


# --------------------------------------------------------------------------- 4. cancel()


def test_run_cancel_ends_run_canceled_and_its_experiments_cancelled(cp: ControlPlane, sdk: SdkRunner) -> None:
    name = "compat-cancel-run"
    start(sdk, name, SLEEP_SWEEP)
    wait_phases(cp, name, ["EXPERIMENT_STATE_RUNNING"] * 2)

    cancelled = sdk("cancel-run", name).result
    assert cancelled["desired_status"] == "cancelled"

    run = wait_run_done(cp, name, timeout=20)
    assert run["status"]["phase"] == "RUN_STATE_CANCELED", run
    assert [e["status"]["phase"] for e in cp.experiments(name)] == ["EXPERIMENT_STATE_CANCELLED"] * 2
    # and the SDK reads that back
    loaded = sdk("run", name).result
    assert loaded["status"] == "cancelled"
    assert [e["status"] for e in loaded["experiments"]] == ["cancelled", "cancelled"]


def test_experiment_cancel_stops_only_that_experiment(cp: ControlPlane, sdk: SdkRunner) -> None:
    name = "compat-cancel-exp"
    start(sdk, name, SLEEP_SWEEP)
    try:
        wait_phases(cp, name, ["EXPERIMENT_STATE_RUNNING"] * 2)
        cancelled = sdk("cancel-experiment", f"{name}-exp0").result
        assert cancelled["name"] == f"{name}-exp0"
        assert cancelled["desired_state"] == "cancelled"
        wait_phases(cp, name, ["EXPERIMENT_STATE_CANCELLED", "EXPERIMENT_STATE_RUNNING"], timeout=20)
        assert cp.run(name)["status"]["phase"] == "RUN_STATE_RUNNING"
        assert sdk("experiment", f"{name}-exp0").result["status"] == "cancelled"
    finally:  # free the capacity for the other tests
        cp.call("PUT", f"/v1/core/{CLUSTER}/runs/{name}", json={"spec": {"desiredState": "RUN_STATE_CANCELED"}})
    assert wait_run_done(cp, name, timeout=20)["status"]["phase"] == "RUN_STATE_CANCELED"


# --------------------------------------------------------------------------- 5. delete()


def test_experiment_delete_removes_it_from_our_listing(cp: ControlPlane, sdk: SdkRunner) -> None:
    name = "compat-del-exp"
    start(sdk, name, SWEEP)
    wait_run_done(cp, name)

    assert sdk("delete-experiment", f"{name}-exp0").result == {"deleted": True}
    assert [e["name"] for e in cp.experiments(name)] == [f"{name}-exp1"]
    listed = cp.ok("GET", f"/v1/core/{CLUSTER}/experiments", params={"names": f"{name}-exp0"})
    assert listed["experiments"] == []
    assert name in cp.run_names()  # the run itself stays
    # the SDK no longer finds it by name
    res = sdk("experiment", f"{name}-exp0", ok=False)
    assert res.returncode != 0 and f"Experiment {name}-exp0 does not exist" in res.stderr, res


def test_run_delete_removes_run_and_its_experiments_from_our_listing(cp: ControlPlane, sdk: SdkRunner) -> None:
    name = "compat-del-run"
    start(sdk, name, SLEEP_SWEEP)
    run_id = cp.run(name)["id"]
    wait_phases(cp, name, ["EXPERIMENT_STATE_RUNNING"] * 2)

    assert sdk("delete-run", name).result == {"deleted": True}
    assert name not in cp.run_names()
    assert cp.call("GET", f"/v1/core/{CLUSTER}/runs/{name}").status_code == 404
    # its running experiments are stopped, then gone from the listing too
    wait_for(
        f"experiments of {name} to leave the listing",
        lambda: cp.ok("GET", f"/v1/core/{CLUSTER}/experiments", params={"runIds": run_id})["experiments"] == [],
        timeout=20,
    )


# --------------------------------------------------------------------------- 6. clusters


def test_list_clusters_and_get_instance_types_answer_our_cluster(cp: ControlPlane, sdk: SdkRunner) -> None:
    got = sdk("clusters").result
    assert got["default_cluster"] == CLUSTER
    assert got["clusters"] == [
        {"id": CLUSTER, "name": CLUSTER, "type": "CLUSTER_TYPE_GLOBAL", "phase": "CLUSTER_STATE_RUNNING"}
    ]
    assert got["instance_types"] == [
        {"name": "cpu-1", "cpu": "1", "gpu": "0", "memory": "2048Mi", "hourly_cost": 0.36, "spot": True},
        {"name": "cpu-2", "cpu": "2", "gpu": "0", "memory": "4096Mi", "hourly_cost": 0.72, "spot": False},
    ]
    api = cp.ok("GET", f"/v1/core/clusters/{CLUSTER}/instance-types")["instanceTypes"]
    assert [t["name"] for t in api] == [t["name"] for t in got["instance_types"]]


# --------------------------------------------------------------------------- 7. datastores


@pytest.fixture(scope="module")
def uploaded(
    cp: ControlPlane, sdk: SdkRunner, tmp_path_factory: pytest.TempPathFactory
) -> tuple[SdkResult, dict[str, bytes]]:
    """`Datastore(name="compat-data", source=<a local directory>).upload()` with the original SDK."""
    source = tmp_path_factory.mktemp("compat-data")
    files = {
        "hello.txt": b"hello from the original sdk\n",
        "sub/notes.txt": b"nested notes\n",
        "sub/blob.bin": bytes(range(256)) * 400,
    }
    for rel, data in files.items():
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_bytes(data)
    return sdk("datastore-upload", "compat-data", str(source)), files


def test_datastore_upload_of_a_local_directory_creates_version_1_with_its_files(
    cp: ControlPlane, sdk: SdkRunner, uploaded: tuple[SdkResult, dict[str, bytes]]
) -> None:
    result, files = uploaded
    got = result.result
    assert (got["name"], got["version"], got["status"], got["cluster_id"]) == ("compat-data", 1, "available", CLUSTER)
    ours = cp.ok("GET", f"/v1/core/{CLUSTER}/datastores/compat-data:1")
    assert ours["id"] == got["id"]
    assert ours["status"]["phase"] == "DATASTORE_OPTIMIZATION_STATUS_SUCCEEDED"
    assert ours["spec"]["sizeBytes"] == sum(len(d) for d in files.values())
    listed = cp.ok("GET", f"/v1/core/datastores/{got['id']}/files")["files"]
    assert {f["filename"]: int(f["sizeBytes"]) for f in listed} == {k: len(v) for k, v in files.items()}
    plain = requests.Session()
    plain.trust_env = False  # signed URLs on 127.0.0.1: no proxy
    for f in listed:
        assert plain.get(f["url"], timeout=30).content == files[f["filename"]]
    # and the SDK reads it back by name and version
    assert sdk("datastore", "compat-data", "1").result["id"] == got["id"]


def test_a_run_of_ours_mounts_the_datastore_the_original_sdk_uploaded(
    cp: ControlPlane, uploaded: tuple[SdkResult, dict[str, bytes]]
) -> None:
    _, files = uploaded
    command = "sh -c 'cat data/hello.txt \"$GRID_DATASTORE_DIR/sub/notes.txt\"'"
    body = {
        "name": "compat-mounts",
        "spec": {
            "runControllerCommand": command,
            "instanceType": "cpu-1",
            "datastores": [{"id": "compat-data", "mountPath": "data"}],
        },
    }
    created = cp.ok("POST", f"/v1/core/{CLUSTER}/runs", json=body)
    assert created["spec"]["datastores"][0]["version"] == 1
    run = wait_run_done(cp, "compat-mounts")
    assert run["status"]["phase"] == "RUN_STATE_SUCCEEDED", run
    log = cp.log("compat-mounts-exp0")
    assert (files["hello.txt"] + files["sub/notes.txt"]).decode() in log, log


def test_a_run_of_the_original_sdk_mounts_it_too(
    cp: ControlPlane, sdk: SdkRunner, uploaded: tuple[SdkResult, dict[str, bytes]]
) -> None:
    result, files = uploaded
    started = sdk("start-mounting", "compat-sdk-mounts", "cat data/sub/notes.txt", "cpu-1", "compat-data", "1", "data")
    assert started.result["name"] == "compat-sdk-mounts", started
    run = wait_run_done(cp, "compat-sdk-mounts")
    assert run["status"]["phase"] == "RUN_STATE_SUCCEEDED", run
    assert run["spec"]["datastores"] == [
        {"id": result.result["id"], "mountPath": "data", "name": "compat-data", "version": 1}
    ]
    assert files["sub/notes.txt"].decode() in cp.log("compat-sdk-mounts-exp0")
