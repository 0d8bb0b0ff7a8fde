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
    name: str = "random",
) -> Network:
    """A chain ``sizes[0] -> sizes[1] -> ...`` of dense layers.

    ``release``: None (reliable synapses), a probability p (release byte round(256 p) - 1 everywhere) or
    ``"random"`` (independent bytes per synapse). ``escape`` gives every spiking layer logistic escape noise;
    ``readout`` makes the last layer a readout; ``memoryless`` sets both decays to 4096 (binary units).
    """
    layers = []
    density = input_density
    for li, (n_in, size) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.integers(-128, 128, (size, n_in), dtype=np.int8)
        wexp = int(rng.integers(-3, 3))
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
