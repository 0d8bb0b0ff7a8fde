"""Fake-quant training throughput against float training of the same quantal.nn model. Not a test.

    python benchmarks/fakequant.py [--samples N] [--repeats R]

F1  784-128-10 LIF (nn.Linear synapses), 10 input steps (+2 to reach the readout), input density 15%, batch 128.
F2  the same with stochastic release p = 0.5 on the first projection and escape noise: float in ``moment`` mode
    (the Gaussian of the release sum, two matmuls) and in ``sampled`` mode (every synapse drawn), fake-quant
    with the exact stream-1 draws of the IR (Numba kernels for the stochastic dense sum and its gradient).

Each row: training samples per second (forward, backward, Adam step), median of ``--repeats`` epochs over
``--samples`` samples, after one warm-up batch; the goal is fake-quant >= 1/3 of float.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch
from torch import nn

from quantal import nn as qnn
from quantal.compile import from_torch


def epoch_rate(step, n: int, batch: int, repeats: int) -> float:  # noqa: ANN001
    idx = torch.arange(n).split(batch)
    step(0, idx[0])  # warm-up (and Numba's first call)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for b, i in enumerate(idx):
            step(b, i)
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def make_step(logits, opt: torch.optim.Optimizer, y: torch.Tensor):  # noqa: ANN001, ANN201
    """One training step (forward, cross-entropy, backward, Adam) of ``logits(batch index, rows)``."""

    def step(b: int, i: torch.Tensor) -> None:
        loss = nn.functional.cross_entropy(logits(b, i), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.manual_seed(0)
    n, steps, batch = args.samples, 10, 128
    x = (torch.rand(n, steps + 2, 784) < 0.15).float()
    y = torch.randint(0, 10, (n,))
    rows = []
    for stochastic in (False, True):
        syn = qnn.BlankOutLinear(784, 128, p=0.5, mode="moment") if stochastic else qnn.Linear(784, 128)
        model = nn.Sequential(syn, qnn.LIF(128, beta=0.9, escape="sigmoid" if stochastic else None),
                              qnn.Linear(128, 10), qnn.Readout(10))  # fmt: skip
        float_step = make_step(lambda b, i, m=model: qnn.logits(m(x[i])), torch.optim.Adam(model.parameters(), 1e-3),
                               y)  # fmt: skip
        r_float = epoch_rate(float_step, n, batch, args.repeats)
        r_sampled = None
        if stochastic:
            syn.mode = "sampled"
            r_sampled = epoch_rate(float_step, min(n, 256), batch, 1)
        qnet, _ = from_torch(model, x[:8])
        quant_step = make_step(lambda b, i, q=qnet: q(x[i], seed=0, trial=b, samples=i).logits,
                               torch.optim.Adam(qnet.parameters(), 1e-3), y)  # fmt: skip
        r_quant = epoch_rate(quant_step, n, batch, args.repeats)
        rows.append(("F2 stochastic (p = 0.5, escape noise)" if stochastic else "F1 deterministic", r_float,
                     r_sampled, r_quant))  # fmt: skip
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); median of {args.repeats} epochs of {n} samples, batch {batch}")
    print("| model 784-128-10, 12 steps | float samples/s | float sampled samples/s | fake-quant samples/s | "
          "fake-quant / float | goal >= 1/3 |")
    print("|---|---|---|---|---|---|")
    for name, rf, rs, rq in rows:
        print(f"| {name} | {rf:,.0f} | {'-' if rs is None else f'{rs:,.0f}'} | {rq:,.0f} | {rq / rf:.2f} | "
              f"{'yes' if rq >= rf / 3 else 'no'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
