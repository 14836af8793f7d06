"""Environment start: time from ``Run.start()`` to the first experiment's command running, for a run
whose requirements.txt must be built (cold node cache), one whose environment is already built (warm),
and, as the baseline, the same run without a dependency file; for 1 and for 20 experiments on 2 slots.

The requirements install a small wheel from the source (``--no-index --find-links``), so the figures
are the platform's own cost (creating the environment, the lock, the cache look-up, the phase and
build-log reports) rather than a package index's. Each cold round changes a comment in the file, so
its key is new. Prints medians and the warm/cold and warm/baseline ratios.

    .venvs/core/bin/python bench/env_start.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from common import median, plane, wait_done

from grid_ops import Run
from tests.core.sources import wheel

COMMAND = "python -c \"import os, time; open(os.environ['MARKS'], 'a').write(f'{time.time()}\\n')\""


def source(folder: Path, comment: str | None) -> Path:
    """A source that records when its command starts; with a requirements.txt unless ``comment`` is None."""
    folder.mkdir(parents=True)
    if comment is not None:
        path, data = wheel("benchpkg", "1.0", "VALUE = 1\n")
        (folder / path).parent.mkdir(parents=True)
        (folder / path).write_bytes(data)
        (folder / "requirements.txt").write_text(f"# {comment}\n--no-index\n--find-links wheels\nbenchpkg==1.0\n")
    return folder


def first_start(cp, name: str, src: Path, n: int, marks: Path) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Seconds from ``start()`` to the first and to the last experiment's command starting."""
    command = COMMAND + (f' --i "range({n})"' if n > 1 else "")
    run = Run(name=name, run_command=command, path=src, env_vars={"MARKS": str(marks)})
    t0 = time.time()
    run.start()
    wait_done(cp, name, poll=0.1)
    starts = sorted(float(line) for line in marks.read_text().split())
    assert len(starts) == n, (name, len(starts))
    return starts[0] - t0, starts[-1] - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    cp = plane(2)
    for key, value in cp.env().items():
        os.environ[key] = value
    os.environ["GRID_CLUSTER_ID"] = "local"
    work = Path(tempfile.mkdtemp(prefix="grid-bench-env-"))
    try:
        first_start(cp, "warm-up", source(work / "warm-up", None), 2, work / "warm-up.marks")  # not counted
        for n in (1, 20):
            firsts: dict[str, list[float]] = {"baseline": [], "cold": [], "warm": []}
            lasts: dict[str, list[float]] = {"baseline": [], "cold": [], "warm": []}
            for r in range(args.rounds):
                for case in ("baseline", "cold", "warm"):
                    comment = None if case == "baseline" else f"{n}-{r}"  # warm: the key cold just built
                    name = f"env-{case}-{n}-{r}"
                    src = source(work / name, comment)
                    first, last = first_start(cp, name, src, n, work / f"{name}.marks")
                    firsts[case].append(first)
                    lasts[case].append(last)
            b, c, w = (median(firsts[k]) for k in ("baseline", "cold", "warm"))
            print(f"env start: {n} experiment(s) on 2 slots, {args.rounds} rounds (medians, start() -> command runs)")
            print(f"  first: cold {c:.3f} s   warm {w:.3f} s   no dependency file {b:.3f} s")
            print(f"  ratios: warm/cold {w / c:.3f}   warm/no-file {w / b:.3f}   cold/no-file {c / b:.3f}")
            if n > 1:
                lb, lc, lw = (median(lasts[k]) for k in ("baseline", "cold", "warm"))
                print(f"  last of {n}: cold {lc:.3f} s   warm {lw:.3f} s   no dependency file {lb:.3f} s")
    finally:
        cp.stop()


if __name__ == "__main__":
    main()
