"""The control plane's REST API against a real server process and real experiments."""

from __future__ import annotations

import gzip
import io
import tarfile
import time
from datetime import datetime
from typing import Any

import pytest
import requests

from tests.core.controlplane import ControlPlane, add_user

PY = "python3"
SLEEP = f'{PY} -c "import sys, time; time.sleep(float(sys.argv[1]))"'


def create(cp: ControlPlane, name: str | None, command: str, cluster: str = "local", **spec: Any) -> requests.Response:
    body: dict[str, Any] = {"spec": {"runControllerCommand": command, **spec}}
    if name:
        body["name"] = name
    for key in ("localDir", "description"):
        if key in spec:
            body[key] = body["spec"].pop(key)
    return cp.call("POST", f"/v1/core/{cluster}/runs", json=body)


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_openapi_and_health_are_served(cp: ControlPlane) -> None:
    assert requests.get(cp.url + "/healthz", timeout=5).json()["status"] == "ok"
    spec = requests.get(cp.url + "/openapi.json", timeout=5).json()
    assert "/v1/core/{cluster_id}/runs" in spec["paths"]
    assert "/v1/core/{cluster_id}/experiments/{exp_ref}/logs" in spec["paths"]


def test_clusters_and_instance_types_come_from_the_config(cp: ControlPlane) -> None:
    out = cp.ok("GET", "/v1/core/clusters")
    assert out["defaultCluster"] == "local"
    assert {c["id"] for c in out["clusters"]} == {"local", "big"}
    types = cp.ok("GET", "/v1/core/clusters/local/instance-types")["instanceTypes"]
    assert [(t["name"], t["cpu"], t["hourlyCost"]) for t in types] == [
        ("cpu-1", "1", 0.36),
        ("cpu-2", "2", 0.72),
    ]
    r = cp.call("GET", "/v1/core/clusters/nope/instance-types")
    assert r.status_code == 404 and "cluster 'nope' not found" in r.json()["message"]


def test_grid_sweep_runs_every_experiment_with_its_parameters_and_environment(cp: ControlPlane) -> None:
    cmd = (
        f"{PY} -c \"import os,sys; print(sys.argv[1:], os.environ['GRID_EXPERIMENT_NAME'], "
        "os.environ['GRID_RUN_NAME'], os.environ['FOO'])\" --lr \"[0.1, 0.01]\" --layers=\"[1, 2]\" --msg 'a b'"
    )
    r = create(cp, "grid-env", cmd, env={"FOO": "bar"})
    assert r.status_code == 200, r.text
    run = cp.wait_run("grid-env")
    assert run["status"]["phase"] == "RUN_STATE_SUCCEEDED"
    assert run["status"]["experimentCounts"]["succeeded"] == 4
    exps = cp.experiments("grid-env")
    assert [e["spec"]["parameters"] for e in exps] == [
        {"lr": "0.1", "layers": "1"},
        {"lr": "0.1", "layers": "2"},
        {"lr": "0.01", "layers": "1"},
        {"lr": "0.01", "layers": "2"},
    ]
    log = cp.ok("GET", "/v1/core/local/experiments/grid-env-exp3/logs")
    assert log["eof"] is True
    assert log["data"].strip() == "['--lr', '0.01', '--layers=2', '--msg', 'a b'] grid-env-exp3 grid-env bar"
    assert all(e["status"]["exitCode"] == 0 for e in exps)


def test_failed_experiment_fails_the_run_with_its_exit_code(cp: ControlPlane) -> None:
    r = create(cp, "fails", f'{PY} -c "import sys; sys.exit(int(sys.argv[2]))" --code "[0, 3]"')
    assert r.status_code == 200, r.text
    run = cp.wait_run("fails")
    assert run["status"]["phase"] == "RUN_STATE_FAILED"
    assert run["status"]["message"] == "1 of 2 experiments failed"
    exps = cp.experiments("fails")
    assert exps[0]["status"]["phase"] == "EXPERIMENT_STATE_SUCCEEDED"
    assert exps[1]["status"]["phase"] == "EXPERIMENT_STATE_FAILED"
    assert exps[1]["status"]["message"] == "exited with code 3"


def test_missing_command_fails_the_experiment_with_a_clear_message(cp: ControlPlane) -> None:
    assert create(cp, "nocmd", "definitely-not-a-command-xyz --a 1").status_code == 200
    run = cp.wait_run("nocmd")
    assert run["status"]["phase"] == "RUN_STATE_FAILED"
    exp = cp.experiments("nocmd")[0]
    assert exp["status"]["message"] == "command not found: 'definitely-not-a-command-xyz' is not on PATH"


def test_capacity_limits_how_many_experiments_run_at_once(cp: ControlPlane) -> None:
    # local has 2 CPUs; cpu-1 experiments: at most two overlap; cpu-2 experiments run one at a time.
    r = create(cp, "cap1", f'{SLEEP} 0.6 --x "[1, 2, 3, 4]"')
    assert r.status_code == 200, r.text
    r = create(cp, "cap2", f'{SLEEP} 0.4 --x "[1, 2, 3]"', instanceType="cpu-2")
    assert r.status_code == 200, r.text
    cp.wait_run("cap1")
    cp.wait_run("cap2")
    spans = [
        (ts(e["status"]["startTimestamp"]), ts(e["status"]["finishTimestamp"]), e["spec"]["instanceType"])
        for name in ("cap1", "cap2")
        for e in cp.experiments(name)
    ]
    events = sorted(
        [(s, 1 if it == "cpu-1" else 2) for s, _, it in spans]
        + [(f, -(1 if it == "cpu-1" else 2)) for _, f, it in spans],
        key=lambda x: (x[0], x[1]),
    )
    used = peak = 0
    for _, delta in events:
        used += delta
        peak = max(peak, used)
    assert peak <= 2
    # oldest run first: every cap1 experiment started before any cap2 experiment
    cap1_starts = [s for s, _, it in spans if it == "cpu-1"]
    cap2_starts = [s for s, _, it in spans if it == "cpu-2"]
    assert max(cap1_starts) <= min(cap2_starts)


def test_max_parallel_caps_a_run(cp: ControlPlane) -> None:
    r = create(cp, "maxpar", f'{SLEEP} 0.3 --x "[1, 2, 3]"', maxParallel=1, clusterId="big", cluster="big")
    assert r.status_code == 200, r.text
    cp.wait_run("maxpar", cluster="big")
    spans = sorted(
        (ts(e["status"]["startTimestamp"]), ts(e["status"]["finishTimestamp"]))
        for e in cp.experiments("maxpar", cluster="big")
    )
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1))


def test_cancel_sends_sigterm_then_sigkill_and_marks_experiments_cancelled(cp: ControlPlane) -> None:
    # exp0 exits on SIGTERM; exp1 ignores it and must be killed after the 2 s grace period.
    script = (
        "import signal,sys,time\n"
        "if sys.argv[2] == '1': signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    r = create(cp, "tocancel", f'{PY} -c "{script}" --mode "[0, 1]"', clusterId="big", cluster="big")
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 20
    while not all("ready" in cp.ok("GET", f"/v1/core/big/experiments/tocancel-exp{i}/logs")["data"] for i in (0, 1)):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    t0 = time.monotonic()
    run = cp.ok("PUT", "/v1/core/big/runs/tocancel", json={"spec": {"desiredState": "RUN_STATE_CANCELED"}})
    assert run["spec"]["desiredState"] == "RUN_STATE_CANCELED"
    run = cp.wait_run("tocancel", cluster="big", timeout=20)
    elapsed = time.monotonic() - t0
    assert run["status"]["phase"] == "RUN_STATE_CANCELED"
    exps = cp.experiments("tocancel", cluster="big")
    assert [e["status"]["phase"] for e in exps] == ["EXPERIMENT_STATE_CANCELLED"] * 2
    assert exps[1]["status"]["message"] == "cancelled by user (killed by SIGKILL)"
    assert 1.5 <= elapsed < 15


def test_cancel_of_queued_experiments_is_immediate_and_experiment_cancel_works(cp: ControlPlane) -> None:
    r = create(cp, "queued", f'{SLEEP} 30 --x "[1, 2, 3, 4, 5, 6]"', instanceType="cpu-2")
    assert r.status_code == 200, r.text
    out = cp.ok(
        "PUT",
        "/v1/core/local/experiments/queued-exp5",
        json={"spec": {"desiredState": "EXPERIMENT_STATE_CANCELLED"}},
    )
    assert out["status"]["phase"] == "EXPERIMENT_STATE_CANCELLED"
    cp.ok("PUT", "/v1/core/local/runs/queued", json={"spec": {"desiredState": "RUN_STATE_CANCELED"}})
    run = cp.wait_run("queued", timeout=20)
    assert run["status"]["phase"] == "RUN_STATE_CANCELED"
    assert run["status"]["experimentCounts"]["cancelled"] == 6


def test_delete_frees_the_name_and_hides_the_run(cp: ControlPlane) -> None:
    assert create(cp, "todelete", "true").status_code == 200
    cp.wait_run("todelete")
    r = cp.call("POST", "/v1/core/local/runs", json={"name": "todelete", "spec": {"runControllerCommand": "true"}})
    assert r.status_code == 409 and "already exists" in r.json()["message"]
    assert cp.call("DELETE", "/v1/core/local/runs/todelete").status_code == 200
    assert cp.call("GET", "/v1/core/local/runs/todelete").status_code == 404
    names = [x["name"] for x in cp.ok("GET", "/v1/core/local/runs", params={"pageSize": 1000})["runs"]]
    assert "todelete" not in names
    assert create(cp, "todelete", "true").status_code == 200


def test_dry_run_plans_without_storing(cp: ControlPlane) -> None:
    r = create(cp, "plan", 'python train.py --lr "[0.1, 0.2, 0.3]"', dryRun=True, useSpot=True)
    assert r.status_code == 200, r.text
    plan = r.json()["status"]["plan"]
    assert [e["name"] for e in plan["experiments"]] == ["plan-exp0", "plan-exp1", "plan-exp2"]
    assert plan["experiments"][2]["command"] == ["python", "train.py", "--lr", "0.3"]
    assert plan["hourlyCostPerExperiment"] == 0.12
    assert plan["hourlyCostAllParallel"] == pytest.approx(0.36)
    assert plan["maxConcurrent"] == 2
    assert cp.call("GET", "/v1/core/local/runs/plan").status_code == 404


def test_random_search_makes_num_trials_experiments(cp: ControlPlane) -> None:
    r = create(
        cp,
        "rnd",
        'true --a "[1, 2, 3]" --b "[4, 5, 6]"',
        sweepType="random_search",
        sweepOptions={"num_trials": "4", "seed": "7"},
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["status"]["experimentIds"]) == 4
    params = [tuple(e["spec"]["parameters"].values()) for e in cp.experiments("rnd")]
    assert len(set(params)) == 4


def test_pagination_walks_every_experiment_once(cp: ControlPlane) -> None:
    assert create(cp, "pages", 'true --x "range(25)"', dryRun=False).status_code == 200
    seen: list[str] = []
    token = None
    while True:
        params: dict[str, Any] = {"runIds": "pages", "pageSize": 10}
        if token:
            params["pageToken"] = token
        out = cp.ok("GET", "/v1/core/local/experiments", params=params)
        seen += [e["name"] for e in out["experiments"]]
        token = out.get("nextPageToken")
        if not token:
            break
    assert sorted(seen) == sorted(f"pages-exp{i}" for i in range(25))
    assert len(seen) == 25
    r = cp.call("GET", "/v1/core/local/experiments", params={"pageToken": "garbage!"})
    assert r.status_code == 400 and "pageToken" in r.json()["message"]


def test_logs_follow_by_offset_and_tail(cp: ControlPlane) -> None:
    script = "import time\nfor i in range(5):\n    print(f'line {i}', flush=True)\n    time.sleep(0.2)\n"
    assert create(cp, "logs", f'{PY} -c "{script}"').status_code == 200
    data, offset = "", 0
    deadline = time.monotonic() + 30
    while True:
        chunk = cp.ok("GET", "/v1/core/local/experiments/logs-exp0/logs", params={"offset": offset})
        data += chunk["data"]
        offset = chunk["nextOffset"]
        if chunk["eof"]:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert data == "".join(f"line {i}\n" for i in range(5))
    tail = cp.ok("GET", "/v1/core/local/experiments/logs-exp0/logs", params={"tail": 2})
    assert tail["data"] == "line 3\nline 4\n"
    events = cp.ok("GET", "/v1/core/local/experiments/logs-exp0/events")["events"]
    assert [e.get("phase") for e in events] == [
        "EXPERIMENT_STATE_PENDING",
        "EXPERIMENT_STATE_RUNNING",
        "EXPERIMENT_STATE_SUCCEEDED",
    ]


def test_cost_is_hourly_cost_times_running_time(cp: ControlPlane) -> None:
    assert create(cp, "cost", "sleep 1").status_code == 200
    run = cp.wait_run("cost")
    exp = cp.experiments("cost")[0]
    hours = (ts(exp["status"]["finishTimestamp"]) - ts(exp["status"]["startTimestamp"])).total_seconds() / 3600
    assert exp["status"]["hourlyCost"] == 0.36
    assert exp["status"]["cost"] == pytest.approx(0.36 * hours, rel=1e-3)
    assert run["status"]["cost"] == pytest.approx(exp["status"]["cost"], rel=1e-6)


def _tar(members: dict[str, bytes]) -> bytes:
    """A gzip tar of ``members``, byte-for-byte the same for the same members."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def test_local_dir_runs_wait_for_their_source_upload(cp: ControlPlane) -> None:
    r = create(cp, "withsrc", f'{PY} hello.py --n "[1, 2]"', localDir=True)
    assert r.status_code == 200, r.text
    url = r.json()["status"]["uploadUrl"]
    assert url.startswith(cp.url)
    time.sleep(0.5)
    assert {e["status"]["phase"] for e in cp.experiments("withsrc")} == {"EXPERIMENT_STATE_PENDING"}
    bad = requests.put(url.replace("token=", "token=x"), data=b"x", timeout=10)
    assert bad.status_code == 403
    notgz = requests.put(url, data=b"not a tarball", timeout=10)
    assert notgz.status_code == 400 and "gzip tar" in notgz.json()["message"]
    evil = requests.put(url, data=_tar({"../escape.py": b"print(1)"}), timeout=10)
    assert evil.status_code == 400 and "outside" in evil.json()["message"]
    good = requests.put(url, data=_tar({"hello.py": b"import sys; print('hello', sys.argv[2])"}), timeout=10)
    assert good.status_code == 200 and good.headers["ETag"]
    same = requests.put(url, data=_tar({"hello.py": b"import sys; print('hello', sys.argv[2])"}), timeout=10)
    assert same.status_code == 200 and same.headers["ETag"] == good.headers["ETag"]
    other = requests.put(url, data=_tar({"hello.py": b"print(2)"}), timeout=10)
    assert other.status_code == 409 and "other content" in other.json()["message"]
    assert cp.wait_run("withsrc")["status"]["phase"] == "RUN_STATE_SUCCEEDED"
    assert cp.ok("GET", "/v1/core/local/experiments/withsrc-exp1/logs")["data"] == "hello 2\n"


BAD_REQUESTS = [
    ("malformed sweep", {"runControllerCommand": 'python t.py --lr "[1, 2"'}, 400, "'[1, 2'"),
    ("bad distribution", {"runControllerCommand": 'python t.py --lr "uniform(1)"'}, 400, "'uniform(1)'"),
    ("grid too large", {"runControllerCommand": 't --a "range(200)" --b "range(100)"'}, 400, "20000"),
    (
        "num_trials missing",
        {"runControllerCommand": 't --a "[1, 2]"', "sweepType": "random_search"},
        400,
        "num_trials",
    ),
    (
        "num_trials zero",
        {
            "runControllerCommand": 't --a "[1, 2]"',
            "sweepType": "random_search",
            "sweepOptions": {"num_trials": "0"},
        },
        400,
        "num_trials",
    ),
    (
        "num_trials too many",
        {
            "runControllerCommand": 't --a "[1, 2]"',
            "sweepType": "random_search",
            "sweepOptions": {"num_trials": "3"},
        },
        400,
        "3",
    ),
    ("unknown strategy", {"runControllerCommand": "t", "sweepType": "bayes"}, 400, "'bayes'"),
    ("unknown framework", {"runControllerCommand": "t", "image": {"framework": "caffe"}}, 400, "'caffe'"),
    (
        "unknown instance type",
        {"runControllerCommand": "t", "instanceType": "p3.16xlarge"},
        400,
        "'p3.16xlarge'",
    ),
    (
        "resources beyond instance type",
        {"runControllerCommand": "t", "instanceType": "cpu-1", "resources": {"cpu": "2"}},
        400,
        "cpus 2 > 1",
    ),
    (
        "no instance type fits",
        {"runControllerCommand": "t", "resources": {"gpu": 1}},
        400,
        "no instance type",
    ),
    (
        "dockerfile on local",
        {"runControllerCommand": "t", "image": {"dockerfile": "Dockerfile"}},
        400,
        "cannot build the dockerfile",
    ),
    ("wrong json type", {"runControllerCommand": ["not", "a", "string"]}, 400, "runControllerCommand"),
    ("empty command", {"runControllerCommand": "  "}, 400, "runControllerCommand is empty"),
    (
        "unreadable git source",
        {"runControllerCommand": "t", "sourceCode": "https://example.invalid/r.git"},
        400,
        "'https://example.invalid/r.git' is not a git repository that can be read",
    ),
]


@pytest.mark.parametrize(("what", "spec", "status", "needle"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_run_requests_are_refused_clearly_and_store_nothing(
    cp: ControlPlane, what: str, spec: dict[str, Any], status: int, needle: str
) -> None:
    before = cp.ok("GET", "/v1/core/local/runs", params={"pageSize": 1})["totalSize"]
    r = cp.call("POST", "/v1/core/local/runs", json={"name": "badreq", "spec": spec})
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == status and needle in body["message"], body
    assert body["details"][0]["message"]
    assert cp.ok("GET", "/v1/core/local/runs", params={"pageSize": 1})["totalSize"] == before


@pytest.mark.parametrize("name", ["Upper", "-lead", "trail-", "under_score", "x" * 64])
def test_invalid_run_names_are_refused(cp: ControlPlane, name: str) -> None:
    r = cp.call("POST", "/v1/core/local/runs", json={"name": name, "spec": {"runControllerCommand": "true"}})
    assert r.status_code == 400 and repr(name)[1:-1][:20] in r.json()["message"], r.text


def test_unknown_cluster_and_malformed_json_are_refused(cp: ControlPlane) -> None:
    r = cp.call("POST", "/v1/core/nope/runs", json={"spec": {"runControllerCommand": "true"}})
    assert r.status_code == 404 and "'nope'" in r.json()["message"]
    r = cp.call("POST", "/v1/core/local/runs", data=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == 400


def test_wrong_or_missing_credentials_are_401(cp: ControlPlane) -> None:
    r = cp.call("GET", "/v1/core/clusters", auth=(cp.user_id, "wrong-key"))
    assert r.status_code == 401 and "wrong user id or API key" in r.json()["message"]
    r = requests.get(cp.url + "/v1/core/clusters", timeout=5)
    assert r.status_code == 401 and "missing credentials" in r.json()["message"]


def test_bearer_tokens_from_login_work_until_logout(cp: ControlPlane) -> None:
    r = requests.post(cp.url + "/v1/auth/login", json={"username": cp.user_id, "apiKey": cp.api_key}, timeout=5)
    token = r.json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    user = requests.get(cp.url + "/v1/auth/user", headers=headers, timeout=5).json()
    assert user["id"] == cp.user_id and user["username"] == "local" and "apiKey" not in user
    bad = requests.post(cp.url + "/v1/auth/login", json={"username": cp.user_id, "apiKey": "nope"}, timeout=5)
    assert bad.status_code == 401
    assert requests.post(cp.url + "/v1/auth/logout", json={}, headers=headers, timeout=5).status_code == 200
    assert requests.get(cp.url + "/v1/auth/user", headers=headers, timeout=5).status_code == 401


def test_other_users_cannot_see_or_touch_a_run(cp: ControlPlane) -> None:
    assert create(cp, "private", "true").status_code == 200
    cp.wait_run("private")
    run_id = cp.ok("GET", "/v1/core/local/runs/private")["id"]
    bob = add_user(cp.home, "bob")
    for ref in ("private", run_id):
        assert cp.call("GET", f"/v1/core/local/runs/{ref}", auth=bob).status_code == 404
        assert cp.call("DELETE", f"/v1/core/local/runs/{ref}", auth=bob).status_code == 404
    assert cp.call("GET", "/v1/core/local/experiments/private-exp0", auth=bob).status_code == 404
    assert cp.ok("GET", "/v1/core/local/runs", auth=bob)["runs"] == []
    # bob may use the same run name: names are unique per user
    r = cp.call(
        "POST",
        "/v1/core/local/runs",
        auth=bob,
        json={"name": "private", "spec": {"runControllerCommand": "true"}},
    )
    assert r.status_code == 200
    assert cp.ok("GET", "/v1/core/local/runs/private")["id"] == run_id


def test_log_chunks_never_split_a_character(cp: ControlPlane) -> None:
    script = "print('é' * 50 + '✓' * 50, flush=True)"
    assert create(cp, "utf8", f'{PY} -c "{script}"').status_code == 200
    cp.wait_run("utf8")
    data, offset = "", 0
    while True:
        chunk = cp.ok("GET", "/v1/core/local/experiments/utf8-exp0/logs", params={"offset": offset, "limit": 7})
        assert "\ufffd" not in chunk["data"]
        data += chunk["data"]
        offset = chunk["nextOffset"]
        if chunk["eof"]:
            break
    assert data == "é" * 50 + "✓" * 50 + "\n"


def test_expired_tokens_are_refused_with_a_message(cp: ControlPlane) -> None:
    r = requests.post(
        cp.url + "/v1/auth/login", json={"username": "local", "apiKey": cp.api_key, "duration": "1s"}, timeout=5
    )
    assert r.status_code == 200
    headers = {"Authorization": f"Bearer {r.json()['token']}"}
    assert requests.get(cp.url + "/v1/core/clusters", headers=headers, timeout=5).status_code == 200
    time.sleep(1.2)
    late = requests.get(cp.url + "/v1/core/clusters", headers=headers, timeout=5)
    assert late.status_code == 401 and "expired" in late.json()["message"]
    bad = requests.post(
        cp.url + "/v1/auth/login", json={"username": "local", "apiKey": cp.api_key, "duration": "forever"}, timeout=5
    )
    assert bad.status_code == 400 and "invalid duration" in bad.json()["message"]


def test_a_python_script_runs_with_the_interpreter_and_launch_errors_reach_the_log(cp: ControlPlane) -> None:
    r = create(cp, "pyscript", 'hello.py --n "[1, 2]"', localDir=True)
    assert r.status_code == 200, r.text
    ok = requests.put(r.json()["status"]["uploadUrl"], data=_tar({"hello.py": b"import sys; print('hi', sys.argv[2])"}))
    assert ok.status_code == 200
    assert cp.wait_run("pyscript")["status"]["phase"] == "RUN_STATE_SUCCEEDED"
    assert cp.ok("GET", "/v1/core/local/experiments/pyscript-exp1/logs")["data"] == "hi 2\n"
    assert create(cp, "nocmd-log", "no-such-command-abc").status_code == 200
    cp.wait_run("nocmd-log")
    log = cp.ok("GET", "/v1/core/local/experiments/nocmd-log-exp0/logs")["data"]
    assert "could not start: command not found: 'no-such-command-abc' is not on PATH" in log


def test_an_ended_experiment_keeps_its_log_but_not_its_copy_of_the_source(cp: ControlPlane) -> None:
    r = create(cp, "tidy", "hello.py", localDir=True)
    assert requests.put(r.json()["status"]["uploadUrl"], data=_tar({"hello.py": b"print('x' * 10)"})).status_code == 200
    cp.wait_run("tidy")
    exp_id = cp.experiments("tidy")[0]["id"]
    folder = next(cp.home.glob(f"server/clusters/local/experiments/{exp_id}"))
    assert not (folder / "source").exists()
    assert cp.ok("GET", "/v1/core/local/experiments/tidy-exp0/logs")["data"] == "xxxxxxxxxx\n"


def test_a_dependency_file_of_the_source_is_reported_as_not_installed(cp: ControlPlane) -> None:
    spec = {"image": {"dependencyFileInfo": {"path": "requirements.txt"}}}
    r = create(cp, "deps-note", "hello.py", localDir=True, **spec)
    assert r.status_code == 200, r.text
    tar = _tar({"hello.py": b"print('ran')", "requirements.txt": b"tabulate\n"})
    assert requests.put(r.json()["status"]["uploadUrl"], data=tar, timeout=10).status_code == 200
    assert cp.wait_run("deps-note")["status"]["phase"] == "RUN_STATE_SUCCEEDED"
    log = cp.ok("GET", "/v1/core/local/experiments/deps-note-exp0/logs")["data"]
    assert "the dependency file requirements.txt is not installed by this control plane yet" in log
    assert log.endswith("ran\n")


def test_python_output_reaches_the_log_unbuffered_in_the_order_written(cp: ControlPlane) -> None:
    script = "import sys; print('first'); print('second', file=sys.stderr); print('third')"
    assert create(cp, "unbuffered", f'{PY} -c "{script}"').status_code == 200
    cp.wait_run("unbuffered")
    assert cp.ok("GET", "/v1/core/local/experiments/unbuffered-exp0/logs")["data"] == "first\nsecond\nthird\n"
