"""Ray dispatch: N short experiments through the control plane onto a real local Ray head (2 CPUs, one
CPU per job), against submitting the same N commands directly with Ray's ``JobSubmissionClient`` keeping
as many jobs in flight (2), in the same run. The machine is shared and noisy, so both sides run in
chunks that alternate (ABBA order): N = 100 in chunks of 25 is 4 chunks a side. Prints the median
chunk of each side and the ratio of the total wall times.

    .venvs/core/bin/python bench/ray_dispatch.py [--n 100] [--chunk 25]
"""

from __future__ import annotations

import argparse
import shlex
import tempfile
import time
from pathlib import Path

from common import median, wait_done
from ray.job_submission import JobSubmissionClient

from tests.core.controlplane import ControlPlane, start_control_plane
from tests.core.rayhead import ray_config, start_ray_head

SLOTS = 2
POLL = 0.2  # both sides read job status this often


def ours(cp: ControlPlane, name: str, n: int, command: str) -> float:
    body = {"name": name, "spec": {"runControllerCommand": f'{command} "range({n})"', "clusterId": "ray"}}
    t0 = time.time()
    cp.ok("POST", "/v1/core/ray/runs", json=body)
    return wait_done(cp, name, cluster="ray") - t0


def direct(address: str, prefix: str, n: int, command: str) -> float:
    """The same commands as Ray jobs, ``SLOTS`` in flight, the next submitted as soon as one ends."""
    client = JobSubmissionClient(address)
    todo = [f"{command} {i}" for i in range(n)]
    running: set[str] = set()
    t0 = time.monotonic()
    while todo or running:
        while todo and len(running) < SLOTS:
            i = n - len(todo)
            sid = f"{prefix}-{i}"
            client.submit_job(entrypoint=todo.pop(0), submission_id=sid, entrypoint_num_cpus=1)
            running.add(sid)
        time.sleep(POLL)
        for sid in list(running):
            status = client.get_job_status(sid)
            if status.is_terminal():
                if str(status) != "SUCCEEDED":
                    raise RuntimeError(f"job {sid} ended {status}")
                running.discard(sid)
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--chunk", type=int, default=25)
    args = ap.parse_args()
    command = shlex.join(["python", "-c", "import sys; print('step', sys.argv[1])"])
    folder = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    head = start_ray_head(folder / "ray")
    cp = start_control_plane(folder / "home", ray_config(head.address, folder / "node", POLL))
    try:
        results: dict[str, list[float]] = {"ours": [], "direct": []}
        for c in range(max(1, args.n // args.chunk)):
            sides = ["direct", "ours"] if c % 4 in (0, 3) else ["ours", "direct"]
            for side in sides:
                if side == "direct":
                    results["direct"].append(direct(head.address, f"direct-{c}", args.chunk, command))
                else:
                    results["ours"].append(ours(cp, f"ours-{c}", args.chunk, command))
        o, d = sum(results["ours"]), sum(results["direct"])
        n = len(results["ours"]) * args.chunk
        print(f"ray dispatch: {n} experiments a side, local Ray head, {SLOTS} at once, chunks of {args.chunk}")
        mo, md = median(results["ours"]), median(results["direct"])
        print(f"  median chunk: grid-ops {mo:.1f} s, JobSubmissionClient {md:.1f} s")
        print(f"  total: grid-ops {o:.1f} s   JobSubmissionClient {d:.1f} s   ratio {o / d:.3f}  (target <= 1.20)")
        print(f"  per job and slot: grid-ops {o / n * SLOTS:.2f} s, direct {d / n * SLOTS:.2f} s")
    finally:
        cp.stop()
        head.stop()


if __name__ == "__main__":
    main()
