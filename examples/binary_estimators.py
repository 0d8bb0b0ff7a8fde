"""The five gradient estimators of stochastic binary units on the digits (docs/train.md), over seeds.

    python examples/binary_estimators.py [--seeds 3] [--out runs/binary_estimators]

Trains examples/train_binary.yaml (64-128-10 on the 8x8 digits, blank-out p = 0.5, 10 epochs,
lr 0.01) once per estimator and seed, and prints the final test accuracy as the trainer reports it (one
stochastic pass per test sample), as mean +- sd over the seeds.
"""

from __future__ import annotations

import argparse
import copy
import statistics
from pathlib import Path

import yaml

from quantal.train.config import validate
from quantal.train.trainer import train

ESTIMATORS = ("surrogate", "straight", "unbiased", "noisy_rectifier", "moment")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", default="runs/binary_estimators")
    args = p.parse_args()
    base = yaml.safe_load((Path(__file__).parent / "train_binary.yaml").read_text())
    print(f"estimator        test accuracy, mean +- sd over seeds 0..{args.seeds - 1} (one stochastic pass)")
    for est in ESTIMATORS:
        accs = []
        for seed in range(args.seeds):
            cfg = copy.deepcopy(base)
            cfg["seed"] = seed
            cfg["model"]["estimator"] = est
            rows = train(validate(cfg), Path(args.out) / f"{est}-{seed}", progress=False)
            accs.append(rows[-1]["test_acc"])
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        each = ", ".join(f"{100 * a:.1f}" for a in accs)
        print(f"{est:16s} {100 * statistics.mean(accs):5.1f}% +- {100 * sd:.1f}%  ({each})")


if __name__ == "__main__":
    main()
