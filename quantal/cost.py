"""Hardware cost estimates for ``quantal inspect``: cores, synaptic operations, energy (docs/compile.md §6).

The numbers are orientation, not a chip specification; change them here (one place) if you have better ones.

Energy per operation, from Loihi's measured figures (M. Davies et al., "Loihi: a neuromorphic manycore
processor with on-chip learning", IEEE Micro 38(1), 2018, Table 1; 14 nm, nominal supply):

* synaptic operation (one synapse touched by one spike):         23.6 pJ
* neuron update (active compartment; we charge every neuron-step): 81 pJ
* spike sent within a tile:                                        1.7 pJ

Core limits ("Loihi-2-like"): 8,192 neurons per core (Intel's Loihi 2 brief: up to 1M neurons on 128 cores)
and 128 KiB of synaptic memory per core (Loihi: 16 MB over 128 cores). Synapses are stored densely as in the
.qnet: 1 byte per weight, plus 1 byte per release code and per reliable weight where the layer has them.
Layers do not share cores (a conservative packing).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from quantal.compile.ir import Network

E_SYNOP_PJ = 23.6
E_NEURON_UPDATE_PJ = 81.0
E_SPIKE_PJ = 1.7
NEURONS_PER_CORE = 8192
SYNAPSE_BYTES_PER_CORE = 128 * 1024
SOURCES = {
    "energy": "Davies et al., IEEE Micro 38(1), 2018, Table 1 (Loihi, 14 nm)",
    "cores": "Loihi-2-like assumptions: 8192 neurons and 128 KiB synaptic memory per core, no sharing between layers",
}


def synapse_bytes(net: Network, k: int) -> int:
    """Synaptic memory of layer k: one byte per stored weight (a conv2d kernel is stored once), release code and
    reliable part, over the projections into the layer."""
    total = 0
    for _, p in net.projections_into(k):
        syn = p.synapse
        per = 1 + (syn.release is not None) + (syn.weight_fixed is not None)
        total += int(syn.weight.size * per)
    return total


def cores(net: Network) -> list[int]:
    """Cores per layer: enough for its neurons and for its synaptic memory."""
    return [max(math.ceil(la.size / NEURONS_PER_CORE), math.ceil(synapse_bytes(net, k) / SYNAPSE_BYTES_PER_CORE))
            for k, la in enumerate(net.layers)]  # fmt: skip


def fan_out(net: Network, pi: int) -> np.ndarray:
    """Per source neuron j of projection pi, the number of synapses a spike on j touches (nonzero weight or
    reliable part; a conv2d projection counts its links)."""
    from quantal.compile.graph import conv2d_nonzero_fan_out
    from quantal.compile.ir import Conv2dSynapse

    p = net.projections[pi]
    syn = p.synapse
    nz = syn.weight != 0
    if syn.weight_fixed is not None:
        nz = nz | (syn.weight_fixed != 0)
    if isinstance(syn, Conv2dSynapse):
        return conv2d_nonzero_fan_out(syn, nz, net.source_shape(p), net.layer(p.target).shape)
    return nz.sum(axis=0).astype(np.int64)


def activity(net: Network, spikes: np.ndarray, steps: int, *, seed: int = 0) -> dict[str, Any]:
    """Synaptic operations, spikes and neuron updates per inference, measured by running hwsim on ``spikes``.

    A spike on source j of a projection of delay d at step t is integrated at step t + 1 + d, so only spikes
    of steps 0..steps-2-d cost synaptic operations; each touches ``fan_out(j)`` synapses.
    """
    from quantal.hwsim import simulate

    n = spikes.shape[0]
    out = simulate(net, spikes, steps=steps, seed=seed, record=("spikes",))
    per_layer = []
    t_in = min(spikes.shape[1], steps)
    x = np.zeros((n, steps, net.input_size), np.uint8)
    x[:, :t_in] = spikes.reshape(n, spikes.shape[1], -1)[:, :t_in] != 0
    for k, la in enumerate(net.layers):
        synops = 0.0
        for pi, p in net.projections_into(k):
            src = x if p.source == "input" else out[f"{p.source}.spikes"]
            # spikes of steps 0..steps-2-delay are integrated within the run
            events = src[:, : max(steps - 1 - p.delay, 0)].sum(axis=(0, 1)).astype(np.int64)
            synops += float((events * fan_out(net, pi)).sum()) / n
        s = out[f"{la.name}.spikes"]
        row = {"name": la.name, "synops": synops, "spikes": float(s.sum()) / n,
               "neuron_updates": float(la.size * steps)}  # fmt: skip
        row["rate"] = row["spikes"] / (la.size * steps)  # spikes per neuron per step
        # the layer's share of the estimate: its input synaptic operations, its neurons' updates and spikes
        row["energy_nj"] = sum(_energy_nj(row).values())
        per_layer.append(row)
    tot = {q: sum(r[q] for r in per_layer) for q in ("synops", "spikes", "neuron_updates")}
    breakdown = _energy_nj(tot)
    return {"samples": n, "steps": steps, "layers": per_layer, "per_inference": tot,
            "energy_nj_per_inference": sum(breakdown.values()), "energy_breakdown_nj": breakdown}


def _energy_nj(counts: dict[str, float]) -> dict[str, float]:
    """The estimate's terms in nJ for per-inference counts of synaptic operations, neuron updates and spikes."""
    return {"synops": counts["synops"] * E_SYNOP_PJ / 1000, "neuron_updates":
            counts["neuron_updates"] * E_NEURON_UPDATE_PJ / 1000, "spikes": counts["spikes"] * E_SPIKE_PJ / 1000}
