"""Network transformations on IR v1 (numpy only).

``mean_field(net)``: the deterministic ("clean") counterpart of a stochastic network. Every stochastic synapse
is replaced by its expected weight, ``weight_fixed + P(transmit) * weight`` with P = (release + 1) / 256,
rounded to the nearest int8 mantissa (half to even) and clipped to [-128, 127]; escape noise is replaced by
the deterministic threshold (the escape function's median, x > 0). Layers without noise are unchanged.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .ir import DenseSynapse, Layer, Network


def mean_field(net: Network) -> tuple[Network, int]:
    """The mean-field network and the number of expected weights that had to be clipped to int8."""
    layers, clipped = [], 0
    for layer in net.layers:
        syn = layer.synapse
        neuron = replace(layer.neuron, escape_noise=None)
        if syn.release is None:
            layers.append(replace(layer, neuron=neuron))
            continue
        mean = (syn.release.astype(np.float64) + 1) / 256 * syn.weight
        if syn.weight_fixed is not None:
            mean = mean + syn.weight_fixed
        r = np.rint(mean)
        clipped += int(((r > 127) | (r < -128)).sum())
        w = np.clip(r, -128, 127).astype(np.int8)
        layers.append(Layer(name=layer.name, size=layer.size, synapse=DenseSynapse(weight=w, weight_exp=syn.weight_exp),
                            neuron=neuron))  # fmt: skip
    meta = dict(net.metadata)
    meta["transform"] = "mean_field"
    return Network(name=net.name, input_size=net.input_size, layers=tuple(layers), metadata=meta), clipped
