"""An example stochastic network, wired by hand: template matching of 10 random 8x8 binary patterns.

Input: 64 channels, rate-coded noisy versions of 10 class prototypes. Hidden: 40 LIF neurons (4 per class)
whose stochastic synapses (release probability 0.75) carry +w from the pixels of their class prototype and
-w from the others. Readout: 10 integrating neurons summing their class's hidden spikes. No training needed,
so the example exercises the IR and the simulator before the trainer exists.
"""

from __future__ import annotations

import numpy as np

from quantal.compile.ir import DenseSynapse, Layer, Network, Neuron

N_CLASSES, N_PIXELS, PER_CLASS = 10, 64, 4


def prototypes(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((N_CLASSES, N_PIXELS)) < 0.35


def example_network(seed: int = 0) -> Network:
    proto = prototypes(seed)
    w1 = np.where(np.repeat(proto, PER_CLASS, axis=0), 24, -16).astype(np.int8)  # (40, 64)
    release = np.full(w1.shape, 191, np.uint8)  # P(release) = (191 + 1) / 256 = 0.75
    w2 = np.kron(np.eye(N_CLASSES, dtype=np.int8), np.ones((1, PER_CLASS), np.int8)) * np.int8(50)  # (10, 40)
    hidden = Layer(
        name="hidden", size=N_CLASSES * PER_CLASS,
        synapse=DenseSynapse(weight=w1, weight_exp=0, release=release),
        neuron=Neuron(kind="lif", current_decay=1024, voltage_decay=512, threshold=40),
    )  # fmt: skip
    out = Layer(
        name="out", size=N_CLASSES,
        synapse=DenseSynapse(weight=w2, weight_exp=0),
        neuron=Neuron(kind="readout", current_decay=4096, voltage_decay=0),
    )  # fmt: skip
    return Network(name="example", input_size=N_PIXELS, layers=(hidden, out),
                   metadata={"source": "examples/example_network.py", "classes": N_CLASSES})  # fmt: skip


def example_input(n_samples: int = 200, steps: int = 20, seed: int = 1) -> np.ndarray:
    """Sample k shows prototype k % 10 with 10% of its pixels flipped, rate-coded (on 0.5, off 0.03)."""
    rng = np.random.default_rng(seed)
    proto = prototypes()
    img = proto[np.arange(n_samples) % N_CLASSES] ^ (rng.random((n_samples, N_PIXELS)) < 0.1)
    rate = np.where(img, 0.5, 0.03)
    return rng.random((n_samples, steps, N_PIXELS)) < rate[:, None, :]
