"""Stochastic against deterministic training of a LIF network, each evaluated both ways (Gygax & Zenke §6, Fig. 7).

    python examples/stochastic_vs_deterministic.py [--seeds 3] [--epochs 10] [--out runs/fig7]

Two LIF networks (64-128-10, rate-coded 8x8 digits, 8 steps, SuperSpike surrogate gradients, reliable synapses so
that the only noise is the neurons') are trained per seed: one with deterministic neurons, one with sigmoid
escape noise (steepness 5). Each is then evaluated with its neurons deterministic and with escape noise on; the
stochastic evaluation is the mean over 10 runs on the same input spikes. The Fano factor is the variance over
those 10 runs of each hidden neuron's spike count on a test sample, divided by its mean, averaged over the
(neuron, sample) pairs that spiked (1 for Poisson, 0 for deterministic neurons). Prints the mean ± sd over seeds.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

from quantal.train import data
from quantal.train.config import validate
from quantal.train.trainer import build_model, train

REPEATS = 10


def config(seed: int, epochs: int, stochastic: bool) -> dict:
    return validate({
        "seed": seed, "data": {"name": "digits", "encoder": "rate", "steps": 8},
        "model": {"kind": "lif", "hidden": [128], "p": 1.0, "escape": "sigmoid" if stochastic else None,
                  "escape_beta": 5.0, "surrogate": "superspike", "current_decay": 2048, "voltage_decay": 1024,
                  "threshold": 1.0},
        "train": {"epochs": epochs, "batch_size": 64, "lr": 0.003},
    })  # fmt: skip


def with_escape(model: torch.nn.Module, escape: str | None) -> torch.nn.Module:
    """A copy of ``model`` whose hidden neurons have the escape function ``escape`` (None: deterministic)."""
    m = copy.deepcopy(model).eval()
    for layer in m.layers:
        layer.params = layer.params._replace(escape=escape)
    return m


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, escape: str | None) -> tuple[float, float]:
    """(accuracy, Fano factor of hidden spike counts); stochastic: accuracy averaged over REPEATS runs."""
    m = with_escape(model, escape)
    accs, counts = [], []
    with torch.no_grad():
        for r in range(1 if escape is None else REPEATS):
            torch.manual_seed(1000 + r)
            accs.append(float((m(x).argmax(1) == y).float().mean()))
            pad = torch.zeros(x.shape[0], len(m.layers) + 1, x.shape[2])
            s, _ = m.layers[0](torch.cat([x, pad], 1))
            counts.append(s.sum(1).numpy())  # (samples, neurons) spike counts of this run
    c = np.stack(counts)  # (runs, samples, neurons)
    mean, var = c.mean(0), c.var(0, ddof=1) if len(c) > 1 else np.zeros_like(c[0])
    fano = float((var[mean > 0] / mean[mean > 0]).mean()) if (mean > 0).any() else float("nan")
    return float(np.mean(accs)), fano


def run(seeds: int, epochs: int, out: Path, log=print) -> dict:  # noqa: ANN001
    test = data.load("digits", "test")
    res: dict[str, list[float]] = {}
    for seed in range(seeds):
        x = torch.tensor(data.rate_encode(test.x, 8, seed=10**6 + seed), dtype=torch.float32)
        y = torch.tensor(test.y)
        for trained in ("deterministic", "stochastic"):
            cfg = config(seed, epochs, trained == "stochastic")
            run_dir = out / f"{trained}_seed{seed}"
            train(cfg, run_dir, progress=False, log=lambda *a: None)
            model = build_model(cfg, 64, 10)
            model.load_state_dict(torch.load(run_dir / "last.pt", weights_only=False)["model"])
            for evaluated, esc in (("deterministic", None), ("stochastic", "sigmoid")):
                acc, fano = evaluate(model, x, y, esc)
                res.setdefault(f"{trained} -> {evaluated}: accuracy", []).append(acc)
                res.setdefault(f"{trained} -> {evaluated}: Fano", []).append(fano)
            # the paired effect of switching the noise on, per seed
            res.setdefault(f"{trained}: noise on - off (accuracy points)", []).append(
                res[f"{trained} -> stochastic: accuracy"][-1] - res[f"{trained} -> deterministic: accuracy"][-1])
            log(f"seed {seed}, {trained} training done")
    return {k: (statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0) for k, v in res.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--out", default="runs/fig7")
    args = p.parse_args()
    summary = run(args.seeds, args.epochs, Path(args.out), log=lambda m: print(m, file=sys.stderr))
    print(f"trained -> evaluated (mean ± sd over {args.seeds} seeds; stochastic evaluation: mean of {REPEATS} runs)")
    for k, (m, sd) in summary.items():
        if "Fano" in k:
            print(f"  {k:45s} {m:.3f} ± {sd:.3f}")
        else:
            print(f"  {k:45s} {100 * m:+.1f} ± {100 * sd:.1f}" if "points" in k else f"  {k:45s} {m:.1%} ± {sd:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
