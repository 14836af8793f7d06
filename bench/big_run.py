"""Starting a run of 10,000 experiments, and memory while it is polled.

Times the create-run request for a 100 x 100 grid (validation, expansion and one transaction that
stores the run and its 10,000 experiments) against a baseline in the same run: inserting the same
number of rows with the standard library's ``sqlite3.executemany`` into a fresh table. Then polls
the run 1,000 times and reports the server's resident memory before and after.

    .venvs/core/bin/python bench/big_run.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from common import median, plane


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def baseline_insert(n: int) -> float:
    db = Path(tempfile.mkdtemp()) / "b.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(
        "CREATE TABLE e (id TEXT PRIMARY KEY, run TEXT, name TEXT, idx INT, command TEXT, params TEXT, phase TEXT)"
    )
    rows = [
        (
            f"id{i:08d}",
            "run",
            f"big-exp{i}",
            i,
            json.dumps(["true", "--a", str(i // 100), "--b", str(i % 100)]),
            json.dumps({"a": str(i // 100), "b": str(i % 100)}),
            "EXPERIMENT_STATE_QUEUED",
        )
        for i in range(n)
    ]
    t = time.perf_counter()
    with con:
        con.executemany("INSERT INTO e VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--polls", type=int, default=1000)
    args = ap.parse_args()
    # A cluster with no free slot for these experiments: the run is stored and then only polled.
    cp = plane(1)
    try:
        cp.ok("POST", "/v1/core/local/runs", json={"name": "blocker", "spec": {"runControllerCommand": "sleep 3600"}})
        ours, base = [], []
        for r in range(args.rounds):
            body = {"name": f"big-{r}", "spec": {"runControllerCommand": 'true --a "range(100)" --b "range(100)"'}}
            t = time.perf_counter()
            run = cp.ok("POST", "/v1/core/local/runs", json=body)
            ours.append(time.perf_counter() - t)
            assert len(run["status"]["experimentIds"]) == 10_000
            base.append(baseline_insert(10_000))
        o, b = median(ours), median(base)
        print(f"big run: create a 10,000-experiment run, {args.rounds} rounds (medians)")
        print(f"  grid-ops {o:.3f} s (target < 2 s)   sqlite3.executemany of the rows {b:.3f} s   ratio {o / b:.1f}")
        for _ in range(50):
            cp.ok("GET", "/v1/core/local/runs/big-0")
        before = rss_mb(cp.proc.pid)
        t = time.perf_counter()
        for _ in range(args.polls):
            cp.ok("GET", "/v1/core/local/runs/big-0")
        per_poll = (time.perf_counter() - t) / args.polls * 1000
        after = rss_mb(cp.proc.pid)
        print(
            f"  {args.polls} polls of the run: {per_poll:.1f} ms each; server RSS {before:.0f} MiB -> {after:.0f} MiB"
        )
        for r in range(args.rounds):
            cp.call("DELETE", f"/v1/core/local/runs/big-{r}")
        cp.call("DELETE", "/v1/core/local/runs/blocker")
    finally:
        cp.stop()


if __name__ == "__main__":
    main()
