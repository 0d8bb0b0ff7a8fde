"""Training throughput: the S2M 784-300-300-300-10 network against a plain float MLP of the same shape,
measured in the same run (forward + backward + Adam step, batch 128, 2 threads). Not a test.

    python benchmarks/train_throughput.py
"""

from __future__ import annotations

import os
import time

import torch

from quantal.train.trainer import MLP, S2MNet


def rate(model: torch.nn.Module, batch: int = 128, seconds: float = 3.0) -> float:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 784, generator=gen)
    y = torch.randint(0, 10, (batch,), generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    for _ in range(3):
        step()  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += batch
    return n / (time.perf_counter() - t0)


def main() -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    mlp = rate(MLP(784, [300, 300, 300], 10))
    s2m = rate(S2MNet(784, [300, 300, 300], 10, p=0.5))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 128")
    print("| model (784-300-300-300-10) | training samples/s | ratio to MLP |")
    print("|---|---|---|")
    print(f"| float MLP (ReLU) | {mlp:,.0f} | 1.00 |")
    print(f"| S2M (sampled sign units, erf, weight norm) | {s2m:,.0f} | {s2m / mlp:.2f} |")


if __name__ == "__main__":
    main()
