"""Warm start: compile every hwsim kernel specialisation once and leave it in Numba's on-disk cache.

Numba compiles a kernel the first time it is called with a new combination of argument types, and stores the
machine code next to the source (``__pycache__``, or ``$NUMBA_CACHE_DIR``). A fresh install would pay that on its
first ``quantal run`` (about 20 s on a 2-core machine). ``quantal warmup`` (which ``make`` runs after installing)
runs small networks that together reach every specialisation a run can take: deterministic and stochastic dense
and conv2d projections, reliable parts, escape noise, readouts, memoryless layers, recurrence, delays, both
resets, per-neuron arrays, trials, every record kind, device noise (programming, drift, read noise) and the
fake-quant training kernels. Later runs load the machine code instead of compiling it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def _cases() -> list[tuple[str, Callable[[], object]]]:
    from quantal.compile.testing import random_graph, random_network, random_spikes
    from quantal.hwsim import simulate
    from quantal.hwsim.devices import from_config

    rng = np.random.default_rng(0)
    rec = ("spikes", "u", "v", "counts")

    def run(net, trials=1, device=None):  # noqa: ANN001, ANN202 - local helper
        x = random_spikes(rng, 2, 4, int(np.prod(net.input_shape)), 0.3).reshape(2, 4, *net.input_shape)
        return lambda: simulate(net, x, steps=6, trials=trials, record=rec, device=device)

    cases = [
        ("dense, deterministic", run(random_network(rng, [12, 8, 4]))),
        ("dense, deterministic, readout", run(random_network(rng, [12, 8, 4], readout=True))),
        ("dense, memoryless", run(random_network(rng, [12, 8, 4], memoryless=True))),
        ("dense, stochastic release, reliable parts, escape noise, 2 trials",
         run(random_network(rng, [12, 8, 4], release="random", weight_fixed=True, escape=True, readout=True), 2)),
        ("dense, wide weights (32-bit sums)", run(random_network(rng, [12, 8, 4], weight_exp_range=(5, 7)))),
    ]  # fmt: skip
    for conv in (True, False):
        for release in (None, "random"):
            net = random_graph(rng, conv=conv, release=release, escape=release is not None, weight_fixed=True)
            cases.append((f"graph, conv={conv}, release={release}", run(net)))
    for preset in ("pcm", "rram"):
        try:
            dev = from_config({"preset": preset}, time=3600.0)
        except Exception:  # noqa: BLE001 - a preset this version does not have
            continue
        cases.append((f"device {preset}", run(random_network(rng, [12, 8, 4], release="random"), device=dev)))
    cases.append(("fake-quant training kernels", _train_case))
    return cases


def _train_case() -> None:
    import torch
    from torch import nn

    from quantal import nn as qnn
    from quantal.compile.torch_graph import from_torch

    for p in (None, 0.5):
        syn = qnn.Linear(12, 8) if p is None else qnn.BlankOutLinear(12, 8, p=p)
        model = nn.Sequential(syn, qnn.LIF(8, alpha=0.5, beta=0.8), qnn.Linear(8, 3), qnn.Readout(3))
        x = (torch.rand(4, 5, 12) < 0.3).float()
        qnet, _ = from_torch(model, x)
        out = qnet(x)
        out.logits.sum().backward()


def warm_up(progress: Callable[[str, float], None] | None = None) -> float:
    """Run every case once (compiling what is not yet cached); returns the total seconds."""
    t0 = time.perf_counter()
    for name, fn in _cases():
        t = time.perf_counter()
        fn()
        if progress is not None:
            progress(name, time.perf_counter() - t)
    return time.perf_counter() - t0
