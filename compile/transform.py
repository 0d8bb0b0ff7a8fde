"""Network transformations on IR networks (numpy only).

``mean_field(net)``: the deterministic ("clean") counterpart of a stochastic network. Every stochastic synapse
is replaced by its expected weight, ``weight_fixed + P(transmit) * weight`` with P = (release + 1) / 256,
rounded to the nearest int8 mantissa (half to even) and clipped to [-128, 127]; escape noise is replaced by
the deterministic threshold (the escape function's median, x > 0). Layers without noise are unchanged.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .ir import Network


def mean_field(net: Network) -> tuple[Network, int]:
    """The mean-field network and the number of expected weights that had to be clipped to int8."""
    projs, clipped = [], 0
    for p in net.projections:
        syn = p.synapse
        if syn.release is None:
            projs.append(p)
            continue
        mean = (syn.release.astype(np.float64) + 1) / 256 * syn.weight
        if syn.weight_fixed is not None:
            mean = mean + syn.weight_fixed
        r = np.rint(mean)
        clipped += int(((r > 127) | (r < -128)).sum())
        w = np.clip(r, -128, 127).astype(np.int8)
        projs.append(replace(p, synapse=replace(syn, weight=w, release=None, weight_fixed=None)))
    layers = tuple(replace(la, neuron=replace(la.neuron, escape_noise=None)) for la in net.layers)
    meta = dict(net.metadata)
    meta["transform"] = "mean_field"
    return net.replace(layers=layers, projections=tuple(projs), metadata=meta), clipped


def reduce_weight_bits(net: Network, bits: int) -> Network:
    """The network with ``bits``-bit weight mantissas (2 <= bits <= 8) at the same scale: every mantissa m
    (weight and weight_fixed) becomes ``clip(round(m / 2**(8 - bits)), -2**(bits-1), 2**(bits-1) - 1) *
    2**(8 - bits)`` (round half to even): the grid keeps its range and loses resolution."""
    if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= 8:
        raise ValueError(f"weight bits must be an integer in [2, 8], got {bits!r}")
    step = 2 ** (8 - bits)

    def q(m: np.ndarray | None) -> np.ndarray | None:
        if m is None:
            return None
        r = np.clip(np.rint(m.astype(np.float64) / step), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1) * step
        return np.clip(r, -128, 127).astype(np.int8)

    projs = tuple(replace(p, synapse=replace(p.synapse, weight=q(p.synapse.weight),
                                             weight_fixed=q(p.synapse.weight_fixed)))
                  for p in net.projections)  # fmt: skip
    return net.replace(projections=projs, metadata={**net.metadata, "weight_bits": bits})


def set_release(net: Network, p: float) -> Network:
    """The network with every stochastic synapse's release probability set to ``p`` (code round(256 p - 1))."""
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 < p <= 1:
        raise ValueError(f"release probability must be in (0, 1], got {p!r}")
    code = int(np.clip(np.rint(256 * p - 1), 0, 255))
    projs = tuple(pr if pr.synapse.release is None else
                  replace(pr, synapse=replace(pr.synapse, release=np.full_like(pr.synapse.release, code)))
                  for pr in net.projections)  # fmt: skip
    return net.replace(projections=projs, metadata={**net.metadata, "release": p})
