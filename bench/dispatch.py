"""Dispatch: N experiments through the control plane on 2 slots against ``xargs -P 2`` running the
same N commands, in the same run, alternating, several rounds. Prints the medians and the ratio.

    .venvs/core/bin/python bench/dispatch.py [--n 200] [--sleep 0.2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import subprocess
import time

from common import median, plane, wait_done


def ours(cp, name: str, n: int, cmd: str) -> float:  # type: ignore[no-untyped-def]
    body = {"name": name, "spec": {"runControllerCommand": f"sh -c '{cmd}' \"range({n})\""}}
    t0 = time.time()
    cp.ok("POST", "/v1/core/local/runs", json=body)
    return wait_done(cp, name) - t0


def xargs(n: int, cmd: str, slots: int) -> float:
    args = "\n".join(str(i) for i in range(n)) + "\n"
    t0 = time.monotonic()
    subprocess.run(["xargs", "-P", str(slots), "-I{}", "sh", "-c", cmd, "{}"], input=args.encode(), check=True)
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--sleep", type=float, default=0.2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    slots = 2
    cp = plane(slots)
    try:
        results: dict[str, list[float]] = {"ours": [], "xargs": [], "ours_true": [], "xargs_true": []}
        for r in range(args.rounds):
            results["xargs"].append(xargs(args.n, f"sleep {args.sleep}", slots))
            results["ours"].append(ours(cp, f"sleep-{r}", args.n, f"sleep {args.sleep}"))
            results["xargs_true"].append(xargs(args.n, "true", slots))
            results["ours_true"].append(ours(cp, f"true-{r}", args.n, "true"))
        o, x = median(results["ours"]), median(results["xargs"])
        ot, xt = median(results["ours_true"]), median(results["xargs_true"])
        print(f"dispatch: {args.n} x 'sleep {args.sleep}' on {slots} slots, {args.rounds} rounds (medians)")
        print(f"  grid-ops {o:.2f} s   xargs -P {slots} {x:.2f} s   ratio {o / x:.3f}  (target <= 1.10)")
        overhead_ms = (ot - xt) / args.n * slots * 1000
        print(
            f"  no-op command: grid-ops {ot:.2f} s, xargs {xt:.2f} s"
            f" -> overhead {overhead_ms:.1f} ms per experiment per slot"
        )
    finally:
        cp.stop()


if __name__ == "__main__":
    main()
