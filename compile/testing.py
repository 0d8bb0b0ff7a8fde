"""Random IR networks and inputs for tests, benchmarks and examples (numpy only, seeded).

The parameters are drawn so that the layers are neither silent nor saturated: thresholds follow the typical
magnitude of the synaptic input, so random networks exercise spiking, resets, decays and wraps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .ir import DenseSynapse, EscapeNoise, Layer, Network, Neuron


def random_network(
    rng: np.random.Generator,
    sizes: Sequence[int],
    *,
    release: float | str | None = None,
    weight_fixed: bool = False,
    escape: bool = False,
    readout: bool = False,
    memoryless: bool = False,
    input_density: float = 0.3,
    weight_exp_range: tuple[int, int] = (-3, 2),
    name: str = "random",
) -> Network:
    """A chain ``sizes[0] -> sizes[1] -> ...`` of dense layers.

    ``release``: None (reliable synapses), a probability p (release byte round(256 p) - 1 everywhere) or
    ``"random"`` (independent bytes per synapse). ``escape`` gives every spiking layer logistic escape noise;
    ``readout`` makes the last layer a readout; ``memoryless`` sets both decays to 4096 (binary units).
    ``weight_exp_range`` bounds the exponents (inclusive); wide ranges reach the 24- and 32-bit wraps.
    """
    layers = []
    density = input_density
    for li, (n_in, size) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.integers(-128, 128, (size, n_in), dtype=np.int8)
        wexp = int(rng.integers(weight_exp_range[0], weight_exp_range[1] + 1))
        rel = None
        if release == "random":
            rel = rng.integers(0, 256, (size, n_in), dtype=np.uint8)
        elif release is not None:
            rel = np.full((size, n_in), int(np.clip(round(256 * float(release)) - 1, 0, 255)), np.uint8)
        wf = rng.integers(-16, 16, (size, n_in), dtype=np.int8) if weight_fixed else None
        # Typical |a| with ~density * n_in active inputs: 74 * sqrt(J) * 2**wexp (uniform int8 weights).
        typical = 74.0 * np.sqrt(max(density * n_in, 1.0)) * 2.0**wexp
        last = li == len(sizes) - 2
        kind = "readout" if (readout and last) else "lif"
        if memoryless:
            cd, vd = 4096, 4096
        else:
            cd, vd = int(rng.integers(1, 4097)), int(rng.integers(0, 4097))
        threshold = int(np.clip(typical * rng.uniform(0.3, 1.5), 0, 131071))
        bias_mant = rng.integers(-64, 64, size, dtype=np.int16) if rng.random() < 0.5 else int(rng.integers(-64, 64))
        bias_exp = int(rng.integers(0, 4))
        esc = EscapeNoise(scale=float(64 * typical * rng.uniform(0.1, 1.0))) if escape and kind == "lif" else None
        layers.append(
            Layer(
                name=f"l{li}",
                size=size,
                synapse=DenseSynapse(weight=w, weight_exp=wexp, release=rel, weight_fixed=wf),
                neuron=Neuron(kind=kind, current_decay=cd, voltage_decay=vd, threshold=threshold,
                              bias_mant=bias_mant, bias_exp=bias_exp, escape_noise=esc),  # fmt: skip
            )
        )
        density = 0.2
    return Network(name=name, input_size=sizes[0], layers=tuple(layers))


def random_spikes(rng: np.random.Generator, n: int, steps: int, size: int, density: float = 0.3) -> np.ndarray:
    """Bernoulli(density) input spikes of shape (n, steps, size), dtype bool."""
    return rng.random((n, steps, size)) < density


def edge_network(rng: np.random.Generator) -> Network:
    """A network that reaches the arithmetic's edges: 2100 inputs of weight 127 at weight_exp 7 push a << 6
    past 2**31 (32-bit wrap) and u past 2**23 (24-bit wrap) in layer 'big'; 'sat' integrates without leak into
    voltage saturation; 'neg' floors odd sums with weight_exp -3. Use dense input (density ~0.9)."""
    w_big = np.full((3, 2100), 127, np.int8)
    w_big[1] = -128
    w_big[2, 1000:] = -3
    w_sat = rng.integers(60, 128, (4, 3), dtype=np.int8)
    w_neg = rng.integers(-128, 128, (5, 4), dtype=np.int8)
    return Network(name="edge", input_size=2100, layers=(
        Layer(name="big", size=3, synapse=DenseSynapse(weight=w_big, weight_exp=7),
              neuron=Neuron(current_decay=1500, voltage_decay=100, threshold=131071)),
        Layer(name="sat", size=4, synapse=DenseSynapse(weight=w_sat, weight_exp=7),
              neuron=Neuron(current_decay=1, voltage_decay=0, threshold=131071, bias_mant=4095, bias_exp=7)),
        Layer(name="neg", size=5, synapse=DenseSynapse(weight=w_neg, weight_exp=-3),
              neuron=Neuron(current_decay=4096, voltage_decay=2048, threshold=2, bias_mant=-7, bias_exp=1)),
    ))  # fmt: skip
