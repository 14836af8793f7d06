"""Write one day's training data: a ``digits.npz`` that ``examples/train.py --data-dir`` reads.

Stands in for the daily export a retraining pipeline picks up: scikit-learn's bundled digits,
resampled (with replacement, 1,500 images) with a seed taken from the date, so each day's data differs a
little and the same day always gives the same file.

    python examples/daily_data.py 2026-11-26 data/2026-11-26
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path


def write_day(day: str, out_dir: str | Path, samples: int = 1500) -> Path:
    """Write ``<out_dir>/digits.npz`` for ``day`` (``YYYY-MM-DD``) and return the folder."""
    import numpy as np
    from sklearn.datasets import load_digits

    seed = dt.date.fromisoformat(day[:10]).toordinal()
    digits = load_digits()
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(digits.target), size=samples, replace=True)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / "digits.npz", x=digits.data[pick] / 16.0, y=digits.target[pick])
    (folder / "DAY").write_text(day[:10] + "\n")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("day", help="the date of the data, YYYY-MM-DD")
    parser.add_argument("out_dir", help="folder to write digits.npz into")
    args = parser.parse_args()
    print(write_day(args.day, args.out_dir))


if __name__ == "__main__":
    main()
