"""Fake-quant training throughput against float training of the same quantal.nn model. Not a test.

    python benchmarks/fakequant.py [--quick] [--repeats R] [--json OUT.json]

F1  784-128-10 LIF (Linear synapses), 10 input steps (+2 to reach the readout), input density 15%, batch 128.
F2  the same with stochastic release p = 0.5 on the first projection and escape noise.
C1  a spiking CNN on 1x28x28 inputs: conv 8 3x3 pad 1, LIF, sum-pool 2, conv 8 3x3 pad 1, LIF, sum-pool 2,
    dense 392-10, readout; 8 input steps (+3), density 15%, batch 64.
C2  the same with stochastic release p = 0.75 on the first conv and escape noise in the first layer.
R1  28 inputs per step (an image read row by row), 28 steps, recurrent LIF 128 (its own 128x128 projection),
    dense 128-10, readout; batch 128.

Float training of a stochastic model runs the release in ``moment`` mode (the Gaussian of the release sum, two
matmuls or convs); the float column "sampled" draws every synapse instead, the same computation as the IR's
stochastic release. Fake-quant (``from_torch`` then ``QuantNet``) computes the exact integers of hwsim with the
IR's stream-1 and stream-2 draws. Each row: one epoch (forward, cross-entropy, backward, Adam step) timed
``--repeats`` times after a warm-up batch (and Numba's first call); min / median / max samples per second of
wall time and the median samples per CPU-second. The goal is fake-quant >= 1/3 of float (median over median).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch import nn

from quantal import nn as qnn
from quantal.compile import from_torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from graphs import vector_isa  # noqa: E402
from run import print_table  # noqa: E402


def epoch_rates(step: Callable[[int, torch.Tensor], None], n: int, batch: int, repeats: int) -> dict[str, float]:
    """Training samples per second of whole epochs of ``n`` samples: min / median / max of wall time and the
    median per CPU-second (process time over all threads)."""
    idx = torch.arange(n).split(batch)
    step(0, idx[0])  # warm-up (and Numba's first call)
    walls, cpus = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        for b, i in enumerate(idx):
            step(b, i)
        walls.append(n / (time.perf_counter() - t0))
        cpus.append(n / max(time.process_time() - c0, 1e-9))
    return {"min": min(walls), "median": statistics.median(walls), "max": max(walls),
            "per_cpu_s": statistics.median(cpus)}  # fmt: skip


def make_step(logits: Callable, opt: torch.optim.Optimizer, y: torch.Tensor) -> Callable[[int, torch.Tensor], None]:
    """One training step (forward, cross-entropy, backward, Adam) of ``logits(batch index, rows)``."""

    def step(b: int, i: torch.Tensor) -> None:
        loss = nn.functional.cross_entropy(logits(b, i), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


class Rows(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = qnn.Linear(28, 128)
        self.hidden = qnn.RecurrentLIF(128, beta=0.9, threshold=0.5)
        self.out = qnn.Linear(128, 10)
        self.readout = qnn.Readout(10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.out(self.hidden(self.fc(x))))


def workloads(quick: bool) -> list[tuple[str, nn.Module, nn.Module | None, torch.Tensor, int]]:
    """(name, model, its stochastic synapse or None, input spikes, batch) per row."""
    g = torch.Generator().manual_seed(0)
    k = 4 if quick else 1
    x_dense = (torch.rand(1024 // k, 12, 784, generator=g) < 0.15).float()
    x_img = (torch.rand(256 // k, 11, 1, 28, 28, generator=g) < 0.15).float()
    x_rows = (torch.rand(1024 // k, 28, 28, generator=g) < 0.3).float()
    out = []
    for stochastic in (False, True):
        syn = qnn.BlankOutLinear(784, 128, p=0.5, mode="moment") if stochastic else qnn.Linear(784, 128)
        model = nn.Sequential(syn, qnn.LIF(128, beta=0.9, escape="sigmoid" if stochastic else None),
                              qnn.Linear(128, 10), qnn.Readout(10))  # fmt: skip
        out.append(("F2 784-128-10 stochastic (p = 0.5, escape)" if stochastic else "F1 784-128-10 LIF", model,
                    syn if stochastic else None, x_dense, 128))  # fmt: skip
    for stochastic in (False, True):
        c = (qnn.BlankOutConv2d(1, 8, 3, padding=1, p=0.75, mode="moment") if stochastic
             else qnn.Conv2d(1, 8, 3, padding=1))  # fmt: skip
        lif = dict(beta=0.5, threshold=0.5)
        model = nn.Sequential(c, qnn.LIF((8, 28, 28), **lif, escape="sigmoid" if stochastic else None),
                              qnn.SumPool2d(2), qnn.Conv2d(8, 8, 3, padding=1), qnn.LIF((8, 14, 14), **lif),
                              qnn.SumPool2d(2), qnn.Flatten(), qnn.Linear(8 * 7 * 7, 10), qnn.Readout(10))  # fmt: skip
        out.append(("C2 CNN stochastic (p = 0.75, escape)" if stochastic else "C1 CNN 1x28x28, 2 conv", model,
                    c if stochastic else None, x_img, 64))  # fmt: skip
    out.append(("R1 recurrent LIF 28-128(rec)-10, 28 steps", Rows(), None, x_rows, 128))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a quarter of the samples (a smoke run)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=None, help="also write the results as JSON")
    args = p.parse_args()
    torch.manual_seed(0)
    rows = []
    for name, model, syn, x, batch in workloads(args.quick):
        n = len(x)
        y = torch.randint(0, 10, (n,))
        float_step = make_step(lambda b, i, m=model, x=x: qnn.logits(m(x[i])),
                               torch.optim.Adam(model.parameters(), 1e-3), y)  # fmt: skip
        r_float = epoch_rates(float_step, n, batch, args.repeats)
        r_sampled = None
        if syn is not None:
            syn.mode = "sampled"
            r_sampled = epoch_rates(float_step, batch * 2, batch, 1)
        qnet, _ = from_torch(model, x[:8])
        quant_step = make_step(lambda b, i, q=qnet, x=x: q(x[i], seed=0, trial=b, samples=i).logits,
                               torch.optim.Adam(qnet.parameters(), 1e-3), y)  # fmt: skip
        r_quant = epoch_rates(quant_step, n, batch, args.repeats)
        rows.append({"workload": name, "batch": batch, "samples": n, "float": r_float, "float_sampled": r_sampled,
                     "fake_quant": r_quant, "ratio": r_quant["median"] / r_float["median"]})  # fmt: skip
    print(f"machine: {platform.machine()} ({vector_isa()}), {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); {args.repeats} epochs per row after a warm-up batch")  # fmt: skip

    def mmm(r: dict[str, float]) -> str:
        return f"{r['min']:,.0f} / {r['median']:,.0f} / {r['max']:,.0f}"

    table = [("workload", "float samples/s (min / median / max)", "float per CPU-s", "float sampled",
              "fake-quant samples/s (min / median / max)", "fake-quant per CPU-s", "fake-quant / float",
              "goal >= 1/3")]  # fmt: skip
    for r in rows:
        table.append((r["workload"], mmm(r["float"]), f"{r['float']['per_cpu_s']:,.0f}",
                      "-" if r["float_sampled"] is None else f"{r['float_sampled']['median']:,.0f}",
                      mmm(r["fake_quant"]), f"{r['fake_quant']['per_cpu_s']:,.0f}", f"{r['ratio']:.2f}",
                      "yes" if r["ratio"] >= 1 / 3 else "no"))  # fmt: skip
    print_table(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"isa": vector_isa(), "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
