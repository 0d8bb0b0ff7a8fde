"""Lava against hwsim on the same network (docs/performance.md). Not a test.

    python benchmarks/targets.py [--samples N]

The network is sized like the demo's; the samples are one block-diagonal graph in Lava, so a larger --samples
gives Lava more work per step.

L1  The demo-sized network 64-128-10 (LIF hidden layer with stochastic synapses p = 0.5 and escape noise, a
    readout), 10 steps per sample, rate-coded digits. Lava 0.10 runs it in its own venv with quantal's
    fixed_pt processes (all samples in one block-diagonal graph); its rate counts steps 2..T, run in one call
    after the first step has compiled and started the graph, recording spikes only (both record the same
    spikes, which the benchmark checks). hwsim
    runs the same samples, repeated to 20,000 (kernel compilation excluded). Reported as sample-steps per
    second. Goal: hwsim >= 1,000x Lava.
L2  The same network with reliable synapses and no escape noise: stock Lava Dense + LIF for the hidden layer.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from quantal.compile.ir import DenseSynapse, Network, Neuron
from quantal.hwsim import Simulator
from quantal.targets.lava import driver
from quantal.train.data import encode, load


def network(stochastic: bool) -> Network:
    rng = np.random.default_rng(0)
    w1 = rng.integers(-128, 128, (128, 64), dtype=np.int8)
    w2 = rng.integers(-128, 128, (10, 128), dtype=np.int8)
    from quantal.compile.ir import EscapeNoise

    syn1 = DenseSynapse(weight=w1, release=np.full((128, 64), 127, np.uint8) if stochastic else None)
    n1 = Neuron(current_decay=2048, voltage_decay=1024, threshold=300,
                escape_noise=EscapeNoise(scale=2000.0) if stochastic else None)  # fmt: skip
    return Network.chain("l", 64, (
        ("h", 128, syn1, n1),
        ("out", 10, DenseSynapse(weight=w2), Neuron(kind="readout"))))  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=20)
    args = p.parse_args()
    if driver.lava_python() is None:
        print("Lava venv missing (make lava-env): nothing to compare")
        return 2
    x = encode(load("digits", "test").x[: args.samples], "rate", 8, seed=0)
    steps = 10
    rows = []
    cases = (("L1 stochastic (quantal's Lava processes)", True), ("L2 deterministic (stock Lava)", False))
    for name, stochastic in cases:
        net = network(stochastic)
        timing: dict = {}
        lava = driver.run_in_lava(net, x, steps, timing=timing, spikes_only=True)
        sim = Simulator(net)
        hw = sim.run(x, steps=steps)  # compile / load the cached kernel
        assert all(np.array_equal(lava[f"{la.name}.spikes"], hw[f"{la.name}.spikes"]) for la in net.layers)
        big = np.repeat(x, max(1, 20000 // len(x)), axis=0)
        t0 = time.perf_counter()
        sim.run(big, steps=steps)
        t_hw = time.perf_counter() - t0
        lava_rate = len(x) * (steps - 1) / timing["steady_seconds"]  # steady state: graph start-up excluded
        hw_rate = len(big) * steps / t_hw
        rows.append((name, lava_rate, hw_rate))
    print(f"{'benchmark':44s} {'Lava sample-steps/s':>20s} {'hwsim sample-steps/s':>21s} {'ratio':>10s}  "
          "goal >= 1000x")  # fmt: skip
    for name, lr, hr in rows:
        print(f"{name:44s} {lr:20,.0f} {hr:21,.0f} {hr / lr:9,.0f}x  {'met' if hr / lr >= 1000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
