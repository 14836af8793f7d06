"""Metrics and artifacts end to end: real experiments report to a real control plane over HTTP with
their own ``$GRID_RUNNER_TOKEN``, and the API, the SDK and the CLI read back what they stored.

The experiments are small scripts that call the runner endpoints with ``urllib`` themselves. They print
nothing that looks like ``name=value``, so that a runner parsing stdout adds no metric of its own.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result

from grid_ops import Experiment, Run
from grid_ops.cli.main import cli
from grid_ops.client import set_client
from grid_ops.errors import NotFoundError, ValidationError
from tests.core.controlplane import ControlPlane, add_user

REPORTER = r"""
import json, os, sys, urllib.request
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
acc, fail_above = float(args["--target"]), float(args.get("--fail-above", "2"))
base = os.environ["GRID_RUNNER_URL"] + "/v1/runner/experiments/" + os.environ["GRID_EXPERIMENT_ID"]
token = os.environ["GRID_RUNNER_TOKEN"]

def send(method, path, body, content_type="application/json"):
    headers = {"X-Grid-Runner-Token": token, "Content-Type": content_type}
    request = urllib.request.Request(base + path, data=body, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())

points, seq = [], 0
for step, fraction in enumerate((0.5, 0.8, 1.0)):
    for name, value in (("acc", acc * fraction), ("loss", 1 - acc * fraction)):
        seq += 1
        points.append({"name": name, "value": value, "step": step, "seq": seq})
batch = json.dumps({"points": points}).encode()
print("accepted", send("POST", "/metrics", batch)["accepted"])
print("accepted", send("POST", "/metrics", batch)["accepted"])  # the same batch again, as a retry would
files = {
    "model/weights.bin": bytes(range(256)) * 4,
    "logs/train.txt": ("target " + str(acc) + "\n").encode(),
    "summary.json": json.dumps({"acc": acc}).encode(),
}
for path, data in files.items():
    send("PUT", "/artifacts/" + path, data, "application/octet-stream")
sys.exit(3 if acc > fail_above else 0)
"""

PROBE = r"""
import http.client, json, os
from urllib.parse import urlsplit
url = urlsplit(os.environ["GRID_RUNNER_URL"])
token, me = os.environ["GRID_RUNNER_TOKEN"], os.environ["GRID_EXPERIMENT_ID"]

def call(method, path, body=b"", tok=token, exp=me):
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if tok is not None:
        headers["X-Grid-Runner-Token"] = tok
    conn.request(method, "/v1/runner/experiments/" + exp + path, body=body, headers=headers)
    answer = conn.getresponse()
    data = json.loads(answer.read() or b"{}")
    return {"status": answer.status, "message": data.get("message", ""), "body": data}

def points(*items):
    return json.dumps({"points": list(items)}).encode()

one = {"name": "ok", "value": 1.0, "seq": 1}
results = {
    "bad_name": call("POST", "/metrics", points(one, {"name": "bad name", "value": 1})),
    "long_name": call("POST", "/metrics", points({"name": "a" * 129, "value": 1})),
    "nan": call("POST", "/metrics", b'{"points": [{"name": "x", "value": NaN}]}'),
    "infinity": call("POST", "/metrics", b'{"points": [{"name": "x", "value": Infinity}]}'),
    "not_a_number": call("POST", "/metrics", points({"name": "x", "value": "abc"})),
    "too_many": call("POST", "/metrics", points(*[{"name": "x", "value": 1}] * 10001)),
    "wrong_token": call("POST", "/metrics", points(one), tok=token[:-1] + ("1" if token[-1] == "0" else "0")),
    "no_token": call("POST", "/metrics", points(one), tok=None),
    "other_experiment": call("POST", "/metrics", points(one), exp="01AAAAAAAAAAAAAAAAAAAAAAAA"),
    "dotdot": call("PUT", "/artifacts/a/../../escape", b"x"),
    "encoded_dotdot": call("PUT", "/artifacts/%2e%2e/escape", b"x"),
    "absolute": call("PUT", "/artifacts//etc/passwd", b"x"),
    "too_long": call("PUT", "/artifacts/" + "a" * 1025, b"x"),
    "good": call("POST", "/metrics", points(one)),
    "put": call("PUT", "/artifacts/dir/file.txt", b"hello"),
    "clash": call("PUT", "/artifacts/dir", b"x"),
}
print(json.dumps(results).replace("=", "\\u003d"))
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def grid(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def ok(*args: str) -> Result:
    result = grid(*args)
    assert result.exit_code == 0, f"grid-ops {' '.join(args)} -> {result.exit_code}\n{result.output}"
    return result


@dataclass
class Sweep:
    """A finished sweep of the reporter over four targets; the last one (0.95) fails after reporting."""

    run: Run
    name: str
    src: Path


@pytest.fixture(scope="module")
def sweep(cp: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweep]:
    src = tmp_path_factory.mktemp("reporter-src")
    (src / "reporter.py").write_text(REPORTER)
    (src / "probe.py").write_text(PROBE)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in cp.env().items():
            mp.setenv(key, value)
        mp.setenv("GRID_CLUSTER_ID", "local")
        set_client(None)
        name = unique("ma-sweep")
        command = 'python3 reporter.py --target "[0.3, 0.9, 0.6, 0.95]" --fail-above 0.94'
        run = Run(name=name, run_command=command, path=src)
        run.start()
        assert run.wait(timeout=60, poll_interval=0.2) == "failed"
        yield Sweep(run=run, name=name, src=src)
        set_client(None)


@pytest.fixture()
def sdk(sweep: Sweep, cp: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sweep]:
    """The SDK and CLI of this process pointed at the session's control plane."""
    for key, value in cp.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GRID_CLUSTER_ID", "local")
    set_client(None)
    yield sweep
    set_client(None)


def metrics_of(cp: ControlPlane, experiment: str, **params: Any) -> dict[str, Any]:
    out = cp.ok("GET", f"/v1/core/local/experiments/{experiment}/metrics", params=params)
    return {m["name"]: m for m in out["metrics"]}


# --------------------------------------------------------------------------- metrics through the API


def test_metrics_are_stored_and_summarised_and_a_retried_batch_counts_once(sweep: Sweep, cp: ControlPlane) -> None:
    exp = f"{sweep.name}-exp1"
    log = cp.ok("GET", f"/v1/core/local/experiments/{exp}/logs")["data"]
    assert "accepted 6\naccepted 0\n" in log
    metrics = metrics_of(cp, exp)
    assert list(metrics) == ["acc", "loss"]
    acc = metrics["acc"]
    assert (acc["last"], acc["min"], acc["max"], acc["lastStep"], acc["count"]) == (0.9, 0.45, 0.9, 2, 3)
    assert [(p["step"], p["value"]) for p in acc["series"]] == [(0, 0.45), (1, pytest.approx(0.72)), (2, 0.9)]
    assert all(p["timestamp"] for p in acc["series"])
    assert metrics["loss"]["min"] == pytest.approx(0.1) and metrics["loss"]["max"] == pytest.approx(0.55)
    only = metrics_of(cp, exp, names="loss", series="false")
    assert list(only) == ["loss"] and "series" not in only["loss"]


def test_best_experiment_by_max_and_min_among_succeeded_unless_failed_are_included(
    sweep: Sweep, cp: ControlPlane
) -> None:
    def best(**params: Any) -> tuple[str, float]:
        out = cp.ok("GET", f"/v1/core/local/runs/{sweep.name}/best", params=params)
        assert out["experiment"]["spec"]["runId"] == sweep.run.id
        return out["experiment"]["name"], out["value"]

    assert best(metric="acc") == (f"{sweep.name}-exp1", 0.9)
    assert best(metric="acc", mode="max", includeFailed="true") == (f"{sweep.name}-exp3", 0.95)
    assert best(metric="acc", mode="min") == (f"{sweep.name}-exp0", 0.3)
    assert best(metric="loss", mode="min") == (f"{sweep.name}-exp1", pytest.approx(0.1))
    table = cp.ok("GET", f"/v1/core/local/runs/{sweep.name}/metrics")["experiments"]
    assert [(e["name"], e["metrics"]["acc"]) for e in table] == [
        (f"{sweep.name}-exp{i}", v) for i, v in enumerate((0.3, 0.9, 0.6, 0.95))
    ]


def test_best_of_a_metric_nobody_reported_is_404_listing_the_metrics_the_run_has(
    sweep: Sweep, cp: ControlPlane
) -> None:
    r = cp.call("GET", f"/v1/core/local/runs/{sweep.name}/best", params={"metric": "f1"})
    assert r.status_code == 404
    assert r.json()["message"] == (
        f"no experiment of run {sweep.name!r} reported metric 'f1'; the metrics it has are: acc, loss"
    )
    r = cp.call("GET", f"/v1/core/local/runs/{sweep.name}/best", params={"metric": "acc", "mode": "median"})
    assert r.status_code == 400 and "mode must be 'max' or 'min'" in r.json()["message"]


def test_bad_points_wrong_tokens_and_unsafe_artifact_paths_are_refused(sweep: Sweep, cp: ControlPlane) -> None:
    name = unique("ma-probe")
    r = cp.call(
        "POST",
        "/v1/core/local/runs",
        json={"name": name, "spec": {"runControllerCommand": f"python3 {sweep.src / 'probe.py'}"}},
    )
    assert r.status_code == 200, r.text
    assert cp.wait_run(name)["status"]["phase"] == "RUN_STATE_SUCCEEDED"
    log = cp.ok("GET", f"/v1/core/local/experiments/{name}-exp0/logs")["data"]
    results = json.loads(log.strip().splitlines()[-1])
    status = {key: value["status"] for key, value in results.items()}
    assert status == {
        "bad_name": 400,
        "long_name": 400,
        "nan": 400,
        "infinity": 400,
        "not_a_number": 400,
        "too_many": 400,
        "wrong_token": 403,
        "no_token": 403,
        "other_experiment": 403,
        "dotdot": 400,
        "encoded_dotdot": 400,
        "absolute": 400,
        "too_long": 400,
        "good": 200,
        "put": 200,
        "clash": 409,
    }
    assert results["bad_name"]["message"].startswith("points[1]: invalid metric name 'bad name'")
    assert results["nan"]["message"] == "points[0] (x): the value must be a finite number, got nan"
    assert "points.0.value" in results["not_a_number"]["message"]
    assert "at most 10000 per call" in results["too_many"]["message"]
    assert "X-Grid-Runner-Token" in results["wrong_token"]["message"]
    assert "'..' segment" in results["dotdot"]["message"]
    assert "is absolute" in results["absolute"]["message"]
    assert results["good"]["body"] == {"accepted": 1}  # nothing of the refused batches was stored
    assert results["put"]["body"] == {"size": 5, "md5Checksum": hashlib.md5(b"hello").hexdigest()}
    assert list(metrics_of(cp, f"{name}-exp0")) == ["ok"]
    arts = cp.ok("GET", f"/v1/core/local/experiments/{name}-exp0/artifacts")["artifacts"]
    assert [a["filename"] for a in arts] == ["dir/file.txt"]
    assert not any(p.name == "escape" for p in (cp.home / "server").rglob("escape"))


def test_invalid_metrics_pattern_is_refused_at_create_and_a_valid_one_is_stored(cp: ControlPlane) -> None:
    def create(name: str, pattern: str) -> requests.Response:
        spec = {"runControllerCommand": 'python3 -c "pass"', "metricsPattern": pattern}
        return cp.call("POST", "/v1/core/local/runs", json={"name": name, "spec": spec})

    bad = create(unique("ma-badpat"), "(")
    assert bad.status_code == 400 and "spec.metricsPattern" in bad.json()["message"]
    missing = create(unique("ma-badpat"), r"(?P<name>\w+)=(\d+)")
    assert missing.status_code == 400 and "no named group 'value'" in missing.json()["message"]
    name = unique("ma-pattern")
    pattern = r"(?P<name>\w+): (?P<value>\S+)"
    assert create(name, pattern).status_code == 200
    assert cp.ok("GET", f"/v1/core/local/runs/{name}")["spec"]["metricsPattern"] == pattern
    assert cp.wait_run(name)["status"]["phase"] == "RUN_STATE_SUCCEEDED"


# --------------------------------------------------------------------------- artifacts through the API


def test_artifacts_are_listed_paginated_and_downloaded_even_after_a_failure(sweep: Sweep, cp: ControlPlane) -> None:
    exp = f"{sweep.name}-exp3"  # this one failed after uploading
    base = f"/v1/core/local/experiments/{exp}/artifacts"
    arts = cp.ok("GET", base)["artifacts"]
    weights = bytes(range(256)) * 4
    assert [(a["filename"], a["sizeBytes"]) for a in arts] == [
        ("logs/train.txt", str(len(b"target 0.95\n"))),
        ("model/weights.bin", "1024"),
        ("summary.json", str(len(b'{"acc": 0.95}'))),
    ]
    assert arts[1]["md5Checksum"] == hashlib.md5(weights).hexdigest()
    assert arts[1]["url"].startswith(cp.url + "/v1/core/local/experiments/")
    bare = requests.get(arts[1]["url"], timeout=10)  # the url needs no credentials, like a presigned one
    assert bare.status_code == 200 and bare.content == weights
    assert bare.headers["Content-Length"] == "1024"
    assert requests.get(arts[1]["url"].replace("token=", "token=0"), timeout=10).status_code == 403
    summary = cp.call("GET", f"{base}/summary.json")
    assert summary.status_code == 200 and summary.json() == {"acc": 0.95}
    assert summary.headers["Content-Type"] == "application/json"
    assert requests.get(cp.url + f"{base}/summary.json", timeout=10).status_code == 401
    missing = cp.call("GET", f"{base}/nope.txt")
    assert missing.status_code == 404 and "has no artifact 'nope.txt'" in missing.json()["message"]
    first = cp.ok("GET", base, params={"pageSize": 2})
    second = cp.ok("GET", base, params={"pageSize": 2, "pageToken": first["nextPageToken"]})
    assert [a["filename"] for a in first["artifacts"] + second["artifacts"]] == [a["filename"] for a in arts]
    assert second["nextPageToken"] == ""  # the original SDK pages until it reads ""


def test_another_users_metrics_and_artifacts_are_404(sweep: Sweep, cp: ControlPlane) -> None:
    other = add_user(cp.home, unique("eve"))
    exp = f"{sweep.name}-exp1"
    exp_id = cp.ok("GET", f"/v1/core/local/experiments/{exp}")["id"]
    for path in (
        f"/v1/core/local/experiments/{exp}/metrics",
        f"/v1/core/local/experiments/{exp_id}/metrics",
        f"/v1/core/local/experiments/{exp_id}/artifacts",
        f"/v1/core/local/experiments/{exp_id}/artifacts/summary.json",
        f"/v1/core/local/runs/{sweep.run.id}/metrics",
        f"/v1/core/local/runs/{sweep.run.id}/best?metric=acc",
    ):
        r = cp.call("GET", path, auth=other)
        assert r.status_code == 404, (path, r.status_code, r.text)


def test_deleting_a_run_removes_its_artifacts(sweep: Sweep, cp: ControlPlane) -> None:
    name = unique("ma-delete")
    command = f"python3 {sweep.src / 'reporter.py'} --target 0.5"
    assert cp.call("POST", "/v1/core/local/runs", json={"name": name, "spec": {"runControllerCommand": command}}).ok
    cp.wait_run(name)
    exp_id = cp.ok("GET", f"/v1/core/local/experiments/{name}-exp0")["id"]
    stored = cp.home / "server" / "artifacts" / exp_id
    assert (stored / "model" / "weights.bin").is_file()
    assert cp.call("DELETE", f"/v1/core/local/runs/{name}").status_code == 200
    deadline = time.monotonic() + 10  # the files go once the deletion has committed
    while stored.exists():
        assert time.monotonic() < deadline, f"{stored} is still there"
        time.sleep(0.05)
    assert cp.ok("GET", f"/v1/core/local/experiments/{exp_id}/artifacts")["artifacts"] == []
    assert metrics_of(cp, exp_id)["acc"]["last"] == 0.5  # the record of a deleted experiment stays readable


# --------------------------------------------------------------------------- SDK


def test_sdk_experiment_metrics_artifacts_and_downloads(sdk: Sweep, tmp_path: Path) -> None:
    exp = Experiment(f"{sdk.name}-exp1")
    acc = exp.metrics["acc"]
    assert (acc.last, acc.min, acc.max, acc.count, acc.last_step) == (0.9, 0.45, 0.9, 3, 2)
    assert [p.step for p in acc.series] == [0, 1, 2]
    assert [(a.filename, a.size) for a in exp.artifacts] == [
        ("logs/train.txt", len(b"target 0.9\n")),
        ("model/weights.bin", 1024),
        ("summary.json", len(b'{"acc": 0.9}')),
    ]
    assert {a.run_name for a in exp.artifacts} == {sdk.name}
    written = exp.download_artifacts(tmp_path / "one", pattern=r"^model/")
    assert written == [tmp_path / "one" / "model" / "weights.bin"]
    assert written[0].read_bytes() == bytes(range(256)) * 4


def test_sdk_run_artifacts_download_layout_and_best_experiment(sdk: Sweep, tmp_path: Path) -> None:
    run = Run(sdk.name)
    assert len(run.artifacts) == 12  # three files from each of the four experiments, the failed one too
    written = run.download_artifacts(tmp_path, pattern=r"summary")
    assert sorted(written) == [tmp_path / sdk.name / f"{sdk.name}-exp{i}" / "summary.json" for i in range(4)]
    assert json.loads((tmp_path / sdk.name / f"{sdk.name}-exp2" / "summary.json").read_text()) == {"acc": 0.6}
    best = run.best_experiment("acc")
    assert (best.name, best.best_metric, best.best_value, best.status) == (f"{sdk.name}-exp1", "acc", 0.9, "succeeded")
    assert run.best_experiment("acc", mode="min").name == f"{sdk.name}-exp0"
    assert run.best_experiment("acc", include_failed=True).best_value == 0.95
    with pytest.raises(NotFoundError, match="the metrics it has are: acc, loss"):
        run.best_experiment("f1")
    with pytest.raises(ValidationError, match="mode must be 'max' or 'min'"):
        run.best_experiment("acc", mode="best")


def test_sdk_metrics_pattern_is_checked_before_anything_is_sent(sdk: Sweep) -> None:
    with pytest.raises(ValidationError, match="metrics_pattern: the metrics pattern '\\(' is not a valid"):
        Run(run_command="python3 reporter.py", path=sdk.src, metrics_pattern="(")
    run = Run(run_command="python3 reporter.py", path=sdk.src, metrics_pattern=r"(?P<name>\w+) (?P<value>\S+)")
    assert run.metrics_pattern == r"(?P<name>\w+) (?P<value>\S+)"


# --------------------------------------------------------------------------- CLI


def test_cli_artifacts_lists_and_downloads_runs_and_experiments_with_a_filter(sdk: Sweep, tmp_path: Path) -> None:
    listed = ok("artifacts", f"{sdk.name}-exp0").output
    assert [line.split()[1] for line in listed.splitlines()[1:]] == [
        "logs/train.txt",
        "model/weights.bin",
        "summary.json",
    ]
    as_json = json.loads(ok("artifacts", sdk.name, "-m", r"\.bin$", "-o", "json").output)
    assert [(a["experiment"], a["filename"]) for a in as_json] == [
        (f"{sdk.name}-exp{i}", "model/weights.bin") for i in range(4)
    ]
    out = ok("artifacts", sdk.name, f"{sdk.name}-exp1", "--download_dir", str(tmp_path), "-m", r"^logs/").output
    assert "downloaded 5 artifacts" in out
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == [f"{sdk.name}/{sdk.name}-exp{i}/logs/train.txt" for i in range(4)]
    missing = grid("artifacts", "no-such-run-xyz")
    assert missing.exit_code == 1 and "'no-such-run-xyz' is neither one of your runs" in missing.output
    bad = grid("artifacts", sdk.name, "-m", "(")
    assert bad.exit_code == 2 and "not a valid regular expression" in bad.output


def test_cli_status_shows_metric_columns_and_the_best_experiment(sdk: Sweep) -> None:
    out = ok("status", sdk.name, "--metric", "acc").output
    header = next(line.split() for line in out.splitlines() if line.startswith("EXPERIMENT"))
    assert header[:5] == ["EXPERIMENT", "STATUS", "target", "acc", "loss"]  # metrics after the parameters
    row = next(line.split() for line in out.splitlines() if line.startswith(f"{sdk.name}-exp1 "))
    assert row[:5] == [f"{sdk.name}-exp1", "succeeded", "0.9", "0.9", "0.1"]
    assert f"best: {sdk.name}-exp1 acc=0.9" in out
    assert f"best: {sdk.name}-exp0 acc=0.3" in ok("status", sdk.name, "--metric", "acc", "--mode", "min").output
    nope = grid("status", sdk.name, "--metric", "f1")
    assert nope.exit_code == 1 and "the metrics it has are: acc, loss" in nope.output


def test_cli_run_wait_prints_the_best_experiment(sdk: Sweep) -> None:
    name = unique("ma-cli")
    out = ok(
        "run", "--wait", "--metric", "loss", "--mode", "min", "--name", name, "--path", str(sdk.src),
        "python3", "reporter.py", "--target", "[0.5, 0.7]",
    ).output  # fmt: skip
    assert f"best: {name}-exp1 loss=0.3" in out
    usage = grid("run", "--metric", "acc", "--path", str(sdk.src), "python3", "reporter.py")
    assert usage.exit_code == 2 and "use it with --wait" in usage.output


def test_a_real_sweep_of_the_example_reports_val_accuracy_and_keeps_its_artifacts(sdk: Sweep, tmp_path: Path) -> None:
    name = unique("ma-digits")
    examples = Path(__file__).resolve().parents[2] / "examples"
    out = ok(
        "run", "--wait", "--metric", "val_accuracy", "--name", name, "--path", str(examples),
        "python", "train.py", "--C", "[1, 10]", "--gamma", "[0.0001, 0.001]",
    ).output  # fmt: skip
    run = Run(name)
    values = {e.name: e.metrics["val_accuracy"].last for e in run.experiments}
    best = max(values, key=lambda e: (values[e], -int(e.rsplit("exp", 1)[1])))
    assert f"best: {best} val_accuracy={values[best]:.6g}" in out
    assert run.best_experiment("val_accuracy").name == best
    assert {a.filename for a in Experiment(best).artifacts} >= {"model.pkl", "report.json"}
    report = Experiment(best).download_artifacts(tmp_path, pattern=r"report\.json$")
    assert json.loads(report[0].read_text())["val_accuracy"] == pytest.approx(values[best], abs=1e-4)
