"""Train a small real model and report its validation accuracy.

A support-vector classifier on scikit-learn's bundled digits dataset (1,797 8x8 images, no download).
Hyperparameters come from the command line, so a grid-ops sweep can vary them:

    grid-ops run --name digits examples/train.py --C "[0.1, 1, 10]" --gamma "[0.001, 0.01]"

It prints ``val_accuracy=<value>`` (the metric line format grid-ops records) and, when
``$GRID_ARTIFACTS_DIR`` is set, saves the fitted model and a small report there.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import time
from pathlib import Path

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--C", type=float, default=1.0, help="inverse regularisation strength")
    parser.add_argument("--gamma", type=float, default=0.001, help="RBF kernel width")
    parser.add_argument("--kernel", default="rbf", choices=["rbf", "linear", "poly", "sigmoid"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data-dir", default=None, help="read digits.npz from here instead of the bundled set"
    )
    args = parser.parse_args()

    start = time.monotonic()
    if args.data_dir:
        import numpy as np

        data = np.load(Path(args.data_dir) / "digits.npz")
        x, y = data["x"], data["y"]
    else:
        digits = load_digits()
        x, y = digits.data / 16.0, digits.target
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=0.25, random_state=args.seed, stratify=y
    )
    print(
        f"training SVC(kernel={args.kernel}, C={args.C}, gamma={args.gamma}) on {len(x_train)} images",
        flush=True,
    )
    model = SVC(C=args.C, gamma=args.gamma, kernel=args.kernel, random_state=args.seed)
    model.fit(x_train, y_train)
    train_acc = float(model.score(x_train, y_train))
    val_acc = float(model.score(x_val, y_val))
    seconds = time.monotonic() - start
    print(f"train_accuracy={train_acc:.4f}", flush=True)
    print(f"val_accuracy={val_acc:.4f}", flush=True)

    artifacts = os.environ.get("GRID_ARTIFACTS_DIR")
    if artifacts:
        out = Path(artifacts)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "model.pkl", "wb") as f:
            pickle.dump(model, f)
        report = {
            "C": args.C,
            "gamma": args.gamma,
            "kernel": args.kernel,
            "val_accuracy": val_acc,
            "train_accuracy": train_acc,
            "seconds": round(seconds, 3),
        }
        (out / "report.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
