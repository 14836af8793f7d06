"""Each task end to end in a real flow, sync and async, against a real control plane and experiments."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from prefect import flow

from grid_ops.errors import NotFoundError
from prefect_tasks import (
    GridCredentials,
    RunNotSucceeded,
    cancel_run,
    get_best_experiment,
    start_run,
    start_run_async,
    upload_datastore,
    upload_datastore_async,
    wait_for_experiment,
    wait_for_experiment_async,
    wait_for_run,
    wait_for_run_async,
)
from tests.core.controlplane import ControlPlane
from tests.prefect.helpers import runs_named, wait_for_phase

SWEEP = 'python sleep.py --seconds 0.2 --score "[0.5, 0.9, 0.7]"'


def test_sync_tasks_start_wait_and_pick_the_best(creds: GridCredentials, src: Path, cp: ControlPlane) -> None:
    @flow
    def pipeline() -> dict[str, Any]:
        name = start_run(SWEEP, creds, path=str(src), max_parallel=2)
        first = wait_for_experiment(f"{name}-exp0", creds, poll_interval=0.2)
        summary = wait_for_run(name, creds, poll_interval=0.2)
        best = get_best_experiment(name, "score", "max", creds)
        worst = get_best_experiment(name, "score", "min", creds)
        return {"name": name, "first": first, "summary": summary, "best": best, "worst": worst}

    out = pipeline()
    name = out["name"]
    assert name.startswith("pipeline-") and len(name) <= 63
    assert out["first"]["status"] == "succeeded"
    assert out["first"]["metrics"] == {"score": 0.5}
    assert out["summary"]["status"] == "succeeded"
    assert out["summary"]["experiments"] == {"succeeded": 3}
    assert out["summary"]["cost"] > 0
    assert out["best"]["name"] == f"{name}-exp1" and out["best"]["value"] == 0.9
    assert out["best"]["parameters"] == {"score": "0.9"}
    assert out["worst"]["name"] == f"{name}-exp0"
    assert cp.ok("GET", f"/v1/core/local/runs/{name}")["status"]["phase"] == "RUN_STATE_SUCCEEDED"


def test_async_tasks_upload_start_and_wait(creds: GridCredentials, src: Path, tmp_path: Path) -> None:
    data = tmp_path / "scores"
    data.mkdir()
    (data / "scores.txt").write_text("0.1\n")

    @flow
    async def pipeline() -> dict[str, Any]:
        uploaded = await upload_datastore_async(str(data), "async-scores", creds)
        name = await start_run_async(
            'python sleep.py --seconds 0.1 --score "[1, 2]"', creds, path=str(src), datastore=uploaded
        )
        first = await wait_for_experiment_async(f"{name}-exp1", creds, poll_interval=0.2)
        summary = await wait_for_run_async(name, creds, poll_interval=0.2)
        return {"uploaded": uploaded, "name": name, "first": first, "summary": summary}

    out = asyncio.run(pipeline())
    assert out["uploaded"]["ref"] == "async-scores:1" and out["uploaded"]["file_count"] == 1
    assert out["first"]["metrics"] == {"score": 2.0}
    assert out["summary"]["status"] == "succeeded"
    assert out["summary"]["experiments"] == {"succeeded": 2}


def test_upload_datastore_makes_a_new_version_each_time(creds: GridCredentials, tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")

    @flow
    def twice() -> list[dict[str, Any]]:
        return [upload_datastore(str(tmp_path), "twice", creds), upload_datastore(str(tmp_path), "twice", creds)]

    first, second = twice()
    assert (first["version"], second["version"]) == (1, 2)
    assert first["status"] == second["status"] == "succeeded"
    assert second["ref"] == "twice:2" and second["size"] == len("x,y\n1,2\n")


def test_a_failed_run_fails_the_wait_with_its_message(creds: GridCredentials, src: Path) -> None:
    @flow
    def failing() -> str:
        name = start_run("python fail.py", creds, path=str(src), strategy="none")
        wait_for_run(name, creds, poll_interval=0.2)
        return name

    state = failing(return_state=True)
    assert state.is_failed()
    with pytest.raises(RunNotSucceeded) as caught:
        state.result()
    error = caught.value
    assert error.status == "failed"
    assert "exited with code 3" in str(error)
    assert "grid-ops logs" in str(error) and "-exp0" in str(error)
    assert "the training data is empty" in str(error)  # the failed experiment's last log line


def test_a_failed_experiment_fails_its_wait_with_the_last_log_lines(creds: GridCredentials, src: Path) -> None:
    @flow
    async def failing() -> None:
        name = await start_run_async("python fail.py", creds, path=str(src), strategy="none")
        await wait_for_experiment_async(f"{name}-exp0", creds, poll_interval=0.2)

    state = asyncio.run(failing(return_state=True))  # type: ignore[call-overload]
    assert state.is_failed()
    with pytest.raises(RunNotSucceeded, match="exited with code 3") as caught:
        state.result()
    assert "the training data is empty" in str(caught.value)


def test_cancel_run_cancels_a_running_sweep(creds: GridCredentials, src: Path, cp: ControlPlane) -> None:
    @flow
    def start_and_cancel() -> tuple[str, list[str]]:
        name = start_run('python sleep.py --seconds "[60, 61]"', creds, path=str(src))
        wait_for_phase(cp, name, {"RUN_STATE_RUNNING"})
        return name, cancel_run(name, creds)

    name, cancelled = start_and_cancel()
    assert sorted(cancelled) == [f"{name}-exp0", f"{name}-exp1"]
    assert wait_for_phase(cp, name, {"RUN_STATE_CANCELED"})["status"]["phase"] == "RUN_STATE_CANCELED"


def test_best_experiment_of_a_missing_metric_names_the_ones_there(creds: GridCredentials, src: Path) -> None:
    @flow
    def pick() -> None:
        name = start_run("python sleep.py --seconds 0", creds, path=str(src), strategy="none")
        wait_for_run(name, creds, poll_interval=0.2)
        get_best_experiment(name, "accuracy", "max", creds)

    with pytest.raises(NotFoundError, match="score"):
        pick()


def test_a_wrong_command_or_option_fails_before_anything_starts(
    creds: GridCredentials, src: Path, cp: ControlPlane
) -> None:
    @flow(name="bad-options")
    def bad() -> str:
        return start_run('python sleep.py --score "[1, 2"', creds, path=str(src))

    state = bad(return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match=r"\[1, 2"):
        state.result()
    assert runs_named(cp, "bad-options-") == []
