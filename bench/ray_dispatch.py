"""Ray dispatch: N short experiments through the control plane onto a real local Ray head (2 CPUs, one
CPU per job), against submitting the same N commands directly with Ray's ``JobSubmissionClient`` keeping
as many jobs in flight (2), in the same run, alternating, several rounds. Prints medians and the ratio.

    .venvs/core/bin/python bench/ray_dispatch.py [--n 100] [--rounds 1]
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
from tests.core.rayhead import start_ray_head

SLOTS = 2
POLL = 0.2  # both sides read job status this often


def config(address: str) -> str:
    return f"""
cancel_grace_seconds: 2
clusters:
  - id: ray
    executor: ray
    address: {address}
    options: {{poll_seconds: {POLL}}}
    instance_types:
      - {{name: cpu-1, cpu: 1, gpu: 0, memory_mb: 256, hourly_cost: 0.1}}
"""


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
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    command = shlex.join(["python", "-c", "import sys; print('step', sys.argv[1])"])
    folder = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    head = start_ray_head(folder / "ray")
    cp = start_control_plane(folder / "home", config(head.address))
    try:
        results: dict[str, list[float]] = {"ours": [], "direct": []}
        for r in range(args.rounds):
            results["direct"].append(direct(head.address, f"direct-{r}", args.n, command))
            results["ours"].append(ours(cp, f"ours-{r}", args.n, command))
        o, d = median(results["ours"]), median(results["direct"])
        print(f"ray dispatch: {args.n} short experiments on a local Ray head, {SLOTS} at once, {args.rounds} rounds")
        print(f"  grid-ops {o:.1f} s   JobSubmissionClient {d:.1f} s   ratio {o / d:.3f}  (target <= 1.20)")
        print(f"  per job: grid-ops {o / args.n * SLOTS:.2f} s, direct {d / args.n * SLOTS:.2f} s per slot")
    finally:
        cp.stop()
        head.stop()


if __name__ == "__main__":
    main()
