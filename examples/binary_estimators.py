"""The five gradient estimators of stochastic binary units on the digits (docs/train.md), over seeds.

    python examples/binary_estimators.py [--seeds 3] [--out runs/binary_estimators]

Trains examples/train_binary.yaml (64-128-10 on the 8x8 digits, blank-out p = 0.5, 10 epochs,
lr 0.01) once per estimator and seed, and prints the final test accuracy as the trainer reports it (one
stochastic pass per test sample) and of an ensemble of 10 stochastic passes (their softmax outputs averaged), as
mean +- sd over the seeds. Then the unbiased estimator's variance with and without the minimum-variance
baseline, computed exactly by enumerating the binary states of a two-unit chain (no sampling).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
from pathlib import Path
from typing import Any

import torch
import yaml

from quantal.train import data
from quantal.train.config import validate
from quantal.train.trainer import build_model, train

ESTIMATORS = ("surrogate", "straight", "unbiased", "noisy_rectifier", "moment")
ENSEMBLE = 10

# The two-unit chain of tests/train/test_estimators.py: h1 ~ B(sigmoid(t1)), h2 ~ B(sigmoid(t2 + w h1)),
# L = (h2 - 1)^2 + c h1 + 3 (the offset is what a baseline removes).
T1, T2, W, C = 0.3, -0.4, 1.5, 0.7


def trained(cfg: dict, run_dir: Path) -> tuple[torch.nn.Module, Any]:
    """The network of a finished run (its last checkpoint) and the test split it was evaluated on."""
    test = data.load(cfg["data"]["name"], "test", seed=cfg["seed"])
    model = build_model(cfg, test.x.shape[1], test.n_classes)
    model.load_state_dict(torch.load(run_dir / "last.pt", weights_only=False)["model"])
    return model, test


def ensemble_accuracy(model: torch.nn.Module, test: Any, seed: int, k: int = ENSEMBLE) -> float:
    """Test accuracy of the mean softmax output of k stochastic passes of the trained network (seeded)."""
    model.eval()
    x = torch.tensor(test.x, dtype=torch.float32)
    torch.manual_seed(10**6 + seed)
    with torch.no_grad():
        prob = sum(torch.softmax(model(x), 1) for _ in range(k)) / k
    return float((prob.argmax(1) == torch.tensor(test.y)).float().mean())


def mean_field_accuracy(model: torch.nn.Module, test: Any) -> float:
    """Test accuracy of a moment-trained network evaluated by moment propagation itself (the mean-field forward
    it was trained with, deterministic) instead of sampling its units."""
    model.train()  # BinaryNet propagates moments in training mode; no parameter changes under no_grad
    with torch.no_grad():
        logits = model(torch.tensor(test.x, dtype=torch.float32))
    return float((logits.argmax(1) == torch.tensor(test.y)).float().mean())


def baseline_variance() -> dict[str, float]:
    """The unbiased estimator g = (h1 - s1)(L - b) of dE[L]/dt1, by exact enumeration of the four states: the
    exact gradient, E[g] and Var[g] for b = 0 and for the minimum-variance b* = E[(h1-s1)^2 L] / E[(h1-s1)^2]."""
    t = torch.tensor([T1, T2, W], dtype=torch.float64, requires_grad=True)
    states = []
    for h1, h2 in itertools.product([0.0, 1.0], repeat=2):
        p1, p2 = torch.sigmoid(t[0]), torch.sigmoid(t[1] + t[2] * h1)
        states.append(((p1 if h1 else 1 - p1) * (p2 if h2 else 1 - p2), h1, (h2 - 1.0) ** 2 + C * h1 + 3.0))
    expectation = sum(pr * loss for pr, _, loss in states)
    (grad,) = torch.autograd.grad(expectation, t)
    s1 = float(torch.sigmoid(torch.tensor(T1, dtype=torch.float64)))
    probs = [(float(pr.detach()), h1, loss) for pr, h1, loss in states]
    b_opt = sum(pr * (h1 - s1) ** 2 * loss for pr, h1, loss in probs) / sum(pr * (h1 - s1) ** 2 for pr, h1, _ in probs)

    def moments(b: float) -> tuple[float, float]:
        m = sum(pr * (h1 - s1) * (loss - b) for pr, h1, loss in probs)
        return m, sum(pr * ((h1 - s1) * (loss - b)) ** 2 for pr, h1, loss in probs) - m * m

    (m0, v0), (mb, vb) = moments(0.0), moments(b_opt)
    return {"exact_gradient": float(grad[0]), "mean_b0": m0, "var_b0": v0, "b_opt": b_opt, "mean_bopt": mb,
            "var_bopt": vb}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", default="runs/binary_estimators")
    args = p.parse_args()
    base = yaml.safe_load((Path(__file__).parent / "train_binary.yaml").read_text())
    print(f"estimator        test accuracy, mean +- sd over seeds 0..{args.seeds - 1}: one stochastic pass; "
          f"ensemble of {ENSEMBLE} passes")  # fmt: skip
    for est in ESTIMATORS:
        accs, ens, mf = [], [], []
        for seed in range(args.seeds):
            cfg = copy.deepcopy(base)
            cfg["seed"] = seed
            cfg["model"]["estimator"] = est
            cfg = validate(cfg)
            run_dir = Path(args.out) / f"{est}-{seed}"
            rows = train(cfg, run_dir, progress=False, log=lambda *a: None)
            accs.append(rows[-1]["test_acc"])
            model, test = trained(cfg, run_dir)
            ens.append(ensemble_accuracy(model, test, seed))
            if est == "moment":
                mf.append(mean_field_accuracy(model, test))

        def ms(v: list[float]) -> str:
            return f"{100 * statistics.mean(v):5.1f}% +- {100 * (statistics.stdev(v) if len(v) > 1 else 0.0):.1f}%"

        each = ", ".join(f"{100 * a:.1f}" for a in accs)
        print(f"{est:16s} {ms(accs)}  ({each});  ensemble {ms(ens)}" + (f";  mean-field {ms(mf)}" if mf else ""))
    r = baseline_variance()
    print(f"unbiased estimator of dE[L]/dt1 on a two-unit chain, exact by enumeration: gradient "
          f"{r['exact_gradient']:.6f}; E[g] = {r['mean_b0']:.6f} without a baseline, {r['mean_bopt']:.6f} with "
          f"b* = {r['b_opt']:.4f}; Var[g] {r['var_b0']:.5f} -> {r['var_bopt']:.5f} "
          f"({r['var_b0'] / r['var_bopt']:.1f}x lower)")  # fmt: skip


if __name__ == "__main__":
    main()
