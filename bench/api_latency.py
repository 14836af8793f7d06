"""API latency: 20 concurrent pollers read an experiment's status; p50/p99 against ``/healthz`` (the
cheapest answer the same server gives) measured the same way in the same run.

Each poller is a thread with its own connection that polls every ``--interval`` seconds (a sensor
polling aggressively); ``--interval 0`` makes it a closed loop (saturation, reported separately).

    .venvs/core/bin/python bench/api_latency.py [--pollers 20] [--seconds 10] [--interval 0.05]
"""

from __future__ import annotations

import argparse
import threading
import time

import requests
from common import median, percentile, plane


def poll(url: str, auth: tuple[str, str] | None, seconds: float, interval: float, pollers: int) -> list[float]:
    samples: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(offset: float) -> None:
        s = requests.Session()
        local: list[float] = []
        time.sleep(offset)
        while time.monotonic() < stop_at:
            t = time.perf_counter()
            r = s.get(url, auth=auth, timeout=10)
            local.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text
            if interval:
                time.sleep(interval)
        with lock:
            samples.extend(local)

    threads = [threading.Thread(target=worker, args=(i * interval / max(1, pollers),)) for i in range(pollers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return samples


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pollers", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--interval", type=float, default=0.05)
    args = ap.parse_args()
    cp = plane(2)
    try:
        cp.ok(
            "POST",
            "/v1/core/local/runs",
            json={"name": "lat", "spec": {"runControllerCommand": 'true --x "range(20)"'}},
        )
        time.sleep(2)
        auth = (cp.user_id, cp.api_key)
        exp_url = cp.url + "/v1/core/local/experiments/lat-exp7"
        rows = []
        for label, url, a in (("healthz", cp.url + "/healthz", None), ("experiment status", exp_url, auth)):
            xs = poll(url, a, args.seconds, args.interval, args.pollers)
            rows.append((label, len(xs), median(xs), percentile(xs, 99)))
        print(f"api latency: {args.pollers} pollers, every {args.interval * 1000:.0f} ms, {args.seconds:.0f} s each")
        for label, n, p50, p99 in rows:
            print(f"  {label:18s} n={n:6d}  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
        print(
            f"  ratio experiment/healthz: p50 {rows[1][2] / rows[0][2]:.2f}  p99 {rows[1][3] / rows[0][3]:.2f}"
            f"   (target: experiment p99 <= 20 ms)"
        )
    finally:
        cp.stop()


if __name__ == "__main__":
    main()
