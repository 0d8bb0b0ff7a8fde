"""Synaptic Sampling Machines against stochastic-sigmoid and deterministic networks (Neftci, Table I and Fig. 3).

    python examples/s2m_fashion.py [--seeds 3] [--epochs 30] [--passes 10] [--limit N] [--out runs/s2m]

The paper's protocol on permutation-invariant Fashion-MNIST (MNIST is not available here): 784-300-300-300-10,
blank-out probability p = 0.5, inputs with Gaussian noise (sd 0.1, fresh every epoch, training only) binarised to
±1, mini-batches of 100, Adam (lr 1e-3), a softmax readout trained on the negative log-likelihood. Four networks
per seed, all with ±1 units in the hidden layers:

* ``s2m``: S2M sign units, P(z = 1) = (1 + erf(beta w·z / ||w||)) / 2 (weight normalisation: beta and w learned);
* ``s2m_no_wn``: the same units and initial function, v = beta w / ||w|| learned directly (no weight norm);
* ``sigmoid``: the stochastic-sigmoid network, P(z = 1) = sigmoid(w·z), no biases;
* ``deterministic``: a ReLU network of the same sizes.

The stochastic networks train through the straight-through estimator on E[z]. The test error of a stochastic
network is the mean over ``--passes`` stochastic passes of the whole test set (the paper averages over 100
samples); "x0.1" repeats it with every hidden layer's weights multiplied by 0.1 at inference. The test error
after every epoch (one pass) gives the convergence curves. Prints mean ± sd over seeds, writes
``<out>/s2m_fashion.json`` and ``<out>/s2m_fashion.png``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from quantal.plots import _figure, _save
from quantal.train import data
from quantal.train.trainer import MLP, S2MNet

SIZES = [300, 300, 300]
MODELS = ("s2m", "s2m_no_wn", "sigmoid", "deterministic")
NOISE_SD = 0.1


class SigmoidSign(nn.Module):
    """Stochastic ±1 units with P(z_i = 1 | z) = sigmoid(w_i · z), no bias; straight-through on E[z]."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in) / n_in**0.5)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        prob = torch.sigmoid(z @ self.weight.T)
        sample = torch.where(torch.rand_like(prob) < prob.detach(), 1.0, -1.0)
        mean = 2 * prob - 1
        return sample + (mean - mean.detach())


class SigmoidNet(nn.Module):
    def __init__(self, n_in: int, hidden: list[int], n_out: int) -> None:
        super().__init__()
        sizes = [n_in, *hidden]
        self.layers = nn.ModuleList(SigmoidSign(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.readout = nn.Linear(sizes[-1], n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.where(x > 0.5, 1.0, -1.0)
        for layer in self.layers:
            z = layer(z)
        return self.readout(z)


class SignMLP(MLP):
    """The deterministic baseline: a ReLU MLP on the same ±1 inputs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.where(x > 0.5, 1.0, -1.0))


def build(name: str) -> nn.Module:
    if name == "s2m":
        return S2MNet(784, SIZES, 10, 0.5, weight_norm=True)
    if name == "s2m_no_wn":
        return S2MNet(784, SIZES, 10, 0.5, weight_norm=False)
    if name == "sigmoid":
        return SigmoidNet(784, SIZES, 10)
    return SignMLP(784, SIZES, 10)


def test_error(model: nn.Module, x: torch.Tensor, y: torch.Tensor, passes: int, seed: int) -> list[float]:
    """The test error of each of ``passes`` stochastic passes over the whole test set."""
    errs = []
    with torch.no_grad():
        for r in range(passes):
            torch.manual_seed(10_000 + 97 * seed + r)
            pred = torch.cat([model(xb).argmax(1) for xb in x.split(1000)])
            errs.append(float((pred != y).float().mean()))
    return errs


def scaled(model: nn.Module, factor: float) -> nn.Module:
    """A copy with every hidden layer's weights multiplied by ``factor`` (the readout unchanged)."""
    import copy

    m = copy.deepcopy(model)
    with torch.no_grad():
        for layer in m.layers:
            layer.weight.mul_(factor)
    return m


def run(name: str, seed: int, epochs: int, passes: int, tr: tuple, te: tuple, log) -> dict:  # noqa: ANN001
    torch.manual_seed(seed)
    model = build(name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    x, y = tr
    stochastic = name != "deterministic"
    curve = []
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        noisy = x + NOISE_SD * torch.randn(x.shape, generator=gen)
        for idx in torch.randperm(len(y), generator=gen).split(100):
            loss = nn.functional.cross_entropy(model(noisy[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        curve.append(test_error(model, *te, 1, seed)[0])
        log(f"{name} seed {seed} epoch {epoch + 1}/{epochs}: test error {100 * curve[-1]:.2f}% "
            f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    errs = test_error(model, *te, passes if stochastic else 1, seed)
    out = {"curve": curve, "error": statistics.fmean(errs), "error_passes": errs}
    if stochastic:
        out["error_x0.1"] = statistics.fmean(test_error(scaled(model, 0.1), *te, passes, seed))
    return out


def _ms(v: list[float]) -> str:
    return f"{100 * statistics.fmean(v):.2f} ± {100 * statistics.stdev(v):.2f}%" if len(v) > 1 else f"{100 * v[0]:.2f}%"


def plot(results: dict, path: Path) -> None:
    fig, ax = _figure(figsize=(6.4, 4.0))
    for name, runs in results.items():
        c = 100 * np.array([r["curve"] for r in runs])
        ep = np.arange(1, c.shape[1] + 1)
        ax.plot(ep, c.mean(0), label=name)
        if len(c) > 1:
            ax.fill_between(ep, c.min(0), c.max(0), alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error, one pass (%)")
    ax.set_title("PI Fashion-MNIST 784-300-300-300-10 (mean; band: min-max over seeds)", fontsize=10)
    ax.legend()
    fig.tight_layout()
    _save(fig, path)  # written atomically


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--passes", type=int, default=10)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N training samples")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--out", type=Path, default=Path("runs/s2m"))
    a = ap.parse_args(argv)
    names = a.models.split(",")
    if any(n not in MODELS for n in names) or a.seeds < 1 or a.epochs < 1 or a.passes < 1:
        print(f"s2m_fashion: models are {', '.join(MODELS)}; seeds, epochs and passes >= 1", file=sys.stderr)
        return 2
    tr_d, te_d = data.load_fashion_mnist("train"), data.load_fashion_mnist("test")
    n = len(tr_d.y) if a.limit is None else min(a.limit, len(tr_d.y))
    tr = (torch.tensor(tr_d.x[:n], dtype=torch.float32), torch.tensor(tr_d.y[:n]))
    te = (torch.tensor(te_d.x, dtype=torch.float32), torch.tensor(te_d.y))
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    results = {name: [run(name, s, a.epochs, a.passes, tr, te, log) for s in range(a.seeds)] for name in names}
    a.out.mkdir(parents=True, exist_ok=True)
    meta = {"seeds": a.seeds, "epochs": a.epochs, "passes": a.passes, "train_samples": n}
    tmp = a.out / "s2m_fashion.json.tmp"
    tmp.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    tmp.replace(a.out / "s2m_fashion.json")
    plot(results, a.out / "s2m_fashion.png")
    print(f"PI Fashion-MNIST 784-300-300-300-10, {n} training samples, {a.epochs} epochs, {a.seeds} seeds "
          f"(mean ± sd over seeds; a stochastic network's error is the mean of {a.passes} passes)")  # fmt: skip
    marks = {1: "epoch 1", 5: "epoch 5"}
    for name, runs in results.items():
        row = f"{name:>14}: test error {_ms([r['error'] for r in runs])}"
        if "error_x0.1" in runs[0]:
            row += f", weights x0.1 {_ms([r['error_x0.1'] for r in runs])}"
        for e, label in marks.items():
            if e <= a.epochs:
                row += f", {label} {_ms([r['curve'][e - 1] for r in runs])}"
        print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
