"""The ``ray`` executor against a real Ray head on 127.0.0.1 (started by these tests, 2 CPUs): sweeps run
as Ray jobs with their metrics, artifacts and datastore; cancel stops every job; a control plane killed
with ``kill -9`` settles every experiment once after a restart; a head that cannot be reached keeps
experiments queued with a message that says so until it is back."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from grid_ops import Datastore, Experiment, Run
from grid_ops.client import set_client
from grid_ops.server.config import Capacity, ConfigError, load_config
from grid_ops.server.executors.base import LaunchSpec
from grid_ops.server.executors.ray import RayExecutor
from tests.core.controlplane import ControlPlane, start_control_plane
from tests.core.datastore_helpers import point_sdk_at, unique
from tests.core.rayhead import RayHead, ray_config, start_ray_head
from tests.core.s3server import free_port

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayHead]:
    head = start_ray_head(tmp_path_factory.mktemp("ray"))
    yield head
    head.stop()


@pytest.fixture(scope="session")
def ray_cp(ray_head: RayHead, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    home = tmp_path_factory.mktemp("grid-ray")
    plane = start_control_plane(home, ray_config(ray_head.address, home / "node"))
    yield plane
    plane.stop()


def post_run(cp: ControlPlane, name: str, command: str) -> None:
    body = {"name": name, "spec": {"runControllerCommand": command, "clusterId": "ray"}}
    answer = cp.call("POST", "/v1/core/ray/runs", json=body)
    assert answer.status_code == 200, answer.text


def ray_jobs_of(head: RayHead, run: str) -> dict[str, dict[str, Any]]:
    """The head's jobs of one run, by experiment name (from the metadata the executor gives them)."""
    return {
        str(job["metadata"]["grid_experiment"]): job  # type: ignore[index]
        for job in head.jobs()
        if (job.get("metadata") or {}).get("grid_run") == run  # type: ignore[union-attr]
    }


def phases(cp: ControlPlane, run: str) -> list[str]:
    return [e["status"]["phase"].removeprefix("EXPERIMENT_STATE_") for e in cp.experiments(run, cluster="ray")]


def wait_for(what: str, check: Any, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def log_of(cp: ControlPlane, experiment: str) -> str:
    return str(cp.ok("GET", f"/v1/core/ray/experiments/{experiment}/logs")["data"])


@pytest.mark.parametrize(
    ("cluster", "needle"),
    [
        ("{id: r, executor: ray, instance_types: [{name: a}]}", "address must be the URL of the Ray cluster's"),
        ("{id: r, executor: ray, address: '127.0.0.1:8265', instance_types: [{name: a}]}", "e.g. http://127.0.0.1:8265"),
        ("{id: r, executor: ray, address: 'http://h:8265'}", "instance_types is required for executor 'ray'"),
        (
            "{id: r, executor: ray, address: 'http://h:8265', options: {pyhton: p}, instance_types: [{name: a}]}",
            "unknown key(s) pyhton",
        ),
        (
            "{id: r, executor: ray, address: 'http://h:8265', options: {poll_seconds: 0}, instance_types: [{name: a}]}",
            "poll_seconds must be above 0",
        ),
    ],
)
def test_a_ray_cluster_config_without_a_dashboard_url_or_with_unknown_options_is_refused_clearly(
    cluster: str, needle: str, tmp_path: Path
) -> None:
    cfg = tmp_path / "server.yml"
    cfg.write_text(f"clusters:\n  - {cluster}\n")
    with pytest.raises(ConfigError) as refused:
        load_config(cfg)
    assert needle in str(refused.value)


def test_the_ray_head_listens_on_loopback_only(ray_head: RayHead) -> None:
    import psutil  # a dependency of Ray

    head = psutil.Process(ray_head.proc.pid)
    addresses = {
        conn.laddr.ip
        for proc in [head, *head.children(recursive=True)]
        for conn in proc.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    }
    assert addresses and addresses <= {"127.0.0.1", "::ffff:127.0.0.1"}, addresses


def test_a_sweep_of_the_example_over_a_datastore_runs_on_ray_with_metrics_artifacts_and_best(
    ray_cp: ControlPlane, ray_head: RayHead, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from examples.daily_data import write_day

    point_sdk_at(monkeypatch, ray_cp, tmp_path / "home", cluster="ray")
    data = Datastore(name=unique("digits"), source=write_day("2026-11-26", tmp_path / "day"))
    data.upload()
    run = Run(
        name=unique("ray-digits"),
        path=EXAMPLES,
        run_command='train.py --data-dir data --C "[1, 10]" --gamma "[0.001, 0.01]"',
        datastore=data,
        datastore_mount_dir="data",
    )
    run.start()
    assert run.wait(timeout=240) == "succeeded"
    exps = run.experiments
    assert len(exps) == 4 and {e.status for e in exps} == {"succeeded"}
    jobs = ray_jobs_of(ray_head, run.name)
    assert sorted(jobs) == sorted(e.name for e in exps)  # one Ray job per experiment
    for e in exps:
        job = jobs[e.name]
        assert job["status"] == "SUCCEEDED" and job["submission_id"] == e.id
        assert job["metadata"]["grid_run"] == run.name and job["metadata"]["grid_instance_type"] == "cpu-1"
        assert "on 1125 images" in log_of(ray_cp, e.name)  # the datastore's 1,500 digits, not the bundled 1,797
    values = {e.name: e.metrics["val_accuracy"].last for e in exps}
    best = run.best_experiment("val_accuracy")
    assert best.name == max(values, key=lambda n: (values[n], -int(n.rsplit("exp", 1)[1])))
    assert {a.filename for a in Experiment(best.name).artifacts} >= {"model.pkl", "report.json"}
    report = Experiment(best.name).download_artifacts(tmp_path / "got", pattern=r"report\.json$")
    assert json.loads(report[0].read_text())["val_accuracy"] == pytest.approx(values[best.name], abs=1e-4)
    set_client(None)


def test_instance_types_map_to_the_ray_resources_of_each_job(ray_head: RayHead, tmp_path: Path) -> None:
    cfg = tmp_path / "server.yml"
    cfg.write_text(
        ray_config(ray_head.address, tmp_path / "node")
        + "      - {name: gpu-a100, cpu: 8, gpu: 2, memory_mb: 65536, hourly_cost: 9.8, resources: {a100: 2}}\n"
    )
    cluster = load_config(cfg).clusters["ray"]
    assert cluster.capacity_from_executor  # no capacity declared: the scheduler uses what Ray reports
    executor = RayExecutor(lambda _outcome: None, cluster, tmp_path / "state", grace_seconds=7.5)
    try:
        spec = LaunchSpec(
            experiment_id="EXP1", experiment_name="big-exp0", run_id="RUN1", run_name="big", user_id="u",
            cluster_id="ray", instance_type="gpu-a100", argv=("train.py", "--lr", "0.1"),
            env={"GRID_EXPERIMENT_ID": "EXP1", "MY_FLAG": "on"}, cpu=8, gpu=2, memory_mb=65536,
        )  # fmt: skip
        job = executor.submission(spec, "EXP1")
        assert job["entrypoint"] == "exec python -m grid_ops.runner -- train.py --lr 0.1"
        assert (job["entrypoint_num_cpus"], job["entrypoint_num_gpus"]) == (8, 2)
        assert job["entrypoint_memory"] == 65536 * 1024 * 1024 and job["entrypoint_resources"] == {"a100": 2}
        assert job["metadata"]["grid_run"] == "big" and job["metadata"]["grid_experiment"] == "big-exp0"
        env = job["runtime_env"]["env_vars"]
        assert env["MY_FLAG"] == "on" and env["RAY_JOB_STOP_WAIT_TIME_S"] == "8"
        assert "PATH" not in env and "HOME" not in env  # the control plane's own environment stays home
        wait_for("Ray's resources", lambda: executor.capacity() != Capacity(cpu=0.0, gpu=0, memory_mb=0))
        assert executor.capacity().cpu == 2  # type: ignore[union-attr]
    finally:
        executor.shutdown(0)


def test_cancelling_a_running_sweep_stops_every_ray_job_and_every_experiment_ends_cancelled(
    ray_cp: ControlPlane, ray_head: RayHead
) -> None:
    name = unique("ray-cancel")
    post_run(ray_cp, name, 'python -c "import time; print(\'up\', flush=True); time.sleep(300)" --i "[1, 2, 3]"')
    # two run at once (2 CPUs reported by Ray); the third waits in our queue, not in Ray's
    wait_for("two experiments to start", lambda: all("up" in log_of(ray_cp, f"{name}-exp{i}") for i in (0, 1)))
    assert phases(ray_cp, name) == ["RUNNING", "RUNNING", "QUEUED"]
    assert sorted(ray_jobs_of(ray_head, name)) == [f"{name}-exp0", f"{name}-exp1"]
    ray_cp.ok("PUT", f"/v1/core/ray/runs/{name}", json={"spec": {"desiredState": "RUN_STATE_CANCELED"}})
    run = ray_cp.wait_run(name, cluster="ray", timeout=90)
    assert run["status"]["phase"] == "RUN_STATE_CANCELED"
    assert phases(ray_cp, name) == ["CANCELLED", "CANCELLED", "CANCELLED"]
    jobs = ray_jobs_of(ray_head, name)
    assert sorted(jobs) == [f"{name}-exp0", f"{name}-exp1"]  # the queued one never reached Ray
    assert {job["status"] for job in jobs.values()} == {"STOPPED"}
    for exp in ray_cp.experiments(name, cluster="ray")[:2]:
        assert exp["status"]["message"].startswith("cancelled by user (Ray job ")


def test_kill_9_of_the_control_plane_while_ray_jobs_run_loses_nothing_and_runs_nothing_twice(
    ray_head: RayHead, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    cp = start_control_plane(home, ray_config(ray_head.address, home / "node"))
    name = "crashy"
    script = "import sys, time; n = int(sys.argv[2]); print('start', n, flush=True); time.sleep(n); sys.exit(n % 2)"
    try:
        # exp0 (4 s) and exp1 (10 s) run; exp2 (2 s) and exp3 (3 s) wait for a CPU in our queue
        post_run(cp, name, f'python -c "{script}" --n "[4, 10, 2, 3]"')
        wait_for("two experiments to start", lambda: all("start" in log_of(cp, f"{name}-exp{i}") for i in (0, 1)))
        assert cp.stop(signal.SIGKILL) == -signal.SIGKILL
        time.sleep(6)  # exp0 ends while nobody watches; exp1 runs on past the restart
    finally:
        cp.stop(signal.SIGKILL)

    again = start_control_plane(home, ray_config(ray_head.address, home / "node"))
    try:
        run = again.wait_run(name, cluster="ray", timeout=120)
        exps = again.experiments(name, cluster="ray")
        assert phases(again, name) == ["SUCCEEDED", "SUCCEEDED", "SUCCEEDED", "FAILED"]
        assert [e["status"].get("exitCode") for e in exps] == [0, 0, 0, 1]
        assert run["status"]["phase"] == "RUN_STATE_FAILED"
        jobs = ray_jobs_of(ray_head, name)
        assert sorted(jobs) == [f"{name}-exp{i}" for i in range(4)]  # one Ray job each: none ran twice
        assert all(jobs[e["name"]]["submission_id"] == e["id"] for e in exps)
        for i, n in enumerate([4, 10, 2, 3]):
            assert log_of(again, f"{name}-exp{i}").count(f"start {n}") == 1
    finally:
        again.stop()


def test_an_unreachable_ray_head_keeps_experiments_queued_with_a_message_until_it_is_back(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    port = free_port()
    cp = start_control_plane(tmp_path / "home", ray_config(f"http://127.0.0.1:{port}", tmp_path / "node"))
    head: RayHead | None = None
    try:
        name = "patient"
        post_run(cp, name, 'python -c "print(\'ran\', 40 + 2)" --i "[1, 2]"')
        wait_for(
            "the waiting message",
            lambda: all(
                "cannot be reached" in e["status"].get("message", "") for e in cp.experiments(name, cluster="ray")
            ),
        )
        time.sleep(3)  # nothing runs, nothing fails, however long it takes
        assert phases(cp, name) == ["QUEUED", "QUEUED"]
        for exp in cp.experiments(name, cluster="ray"):
            message = exp["status"]["message"]
            assert f"waiting for the Ray cluster at http://127.0.0.1:{port}, which cannot be reached" in message
            assert "stays queued and starts when the cluster is back" in message
        head = start_ray_head(tmp_path_factory.mktemp("ray"), dashboard_port=port)  # a short path: Ray's sockets
        run = cp.wait_run(name, cluster="ray", timeout=120)
        assert run["status"]["phase"] == "RUN_STATE_SUCCEEDED"
        for exp in cp.experiments(name, cluster="ray"):
            assert exp["status"]["message"] == "exited with code 0"
            assert log_of(cp, exp["name"]).count("ran 42") == 1
        assert sorted(ray_jobs_of(head, name)) == [f"{name}-exp0", f"{name}-exp1"]
    finally:
        cp.stop()
        if head is not None:
            head.stop()


def test_a_runs_dependency_environment_is_built_once_on_the_ray_node_and_its_experiments_run_in_it(
    ray_cp: ControlPlane,
) -> None:
    from tests.core.sources import tar_gz
    from tests.core.test_environments import BUILDER, SHOW, source

    body = {
        "name": "ray-env",
        "localDir": True,
        "spec": {
            "runControllerCommand": SHOW.format(tag="ray") + ' --i "[1, 2]"',
            "clusterId": "ray",
            "image": {"dependencyFileInfo": {"path": "./requirements.txt"}},
        },
    }
    answer = ray_cp.call("POST", "/v1/core/ray/runs", json=body)
    assert answer.status_code == 200, answer.text
    put = ray_cp.session.put(answer.json()["status"]["uploadUrl"], data=tar_gz(source("ray")), timeout=30)
    assert put.status_code == 200, put.text
    assert ray_cp.wait_run("ray-env", timeout=240, cluster="ray")["status"]["phase"] == "RUN_STATE_SUCCEEDED"
    names = [e["name"] for e in ray_cp.experiments("ray-env", cluster="ray")]
    build_logs = {
        n: str(ray_cp.ok("GET", f"/v1/core/ray/experiments/{n}/logs", params={"build": "true"})["data"]) for n in names
    }
    # one build on the node (the runner there made it and sent its log back), used by both experiments
    assert len([n for n, text in build_logs.items() if text.startswith(BUILDER)]) == 1, build_logs
    for n in names:
        assert "value 42 in-env True base-packages False" in log_of(ray_cp, n)
