"""lava-dl NetX HDF5 export (docs/targets.md §NetX). Needs numpy and h5py (it also runs in the Lava venv).

NetX describes a network layer by layer with datasets only::

    /layer/<i>/type            b"dense"
    /layer/<i>/shape           [size]
    /layer/<i>/inFeatures, outFeatures
    /layer/<i>/weight          int (size, n_in): the effective integer weights weight_mant * 2**weight_exp
    /layer/<i>/bias            int (size,): NetX runs LIF with bias_exp = 6, so bias = (bias_mant << bias_exp) / 64
    /layer/<i>/neuron/type     b"CUBA"
    /layer/<i>/neuron/{iDecay, vDecay, vThMant, refDelay, gradedSpike}
    /simulation/{Ts, tSample}

NetX loads a CUBA layer as Lava's ``LIF(du = iDecay - 1, dv = vDecay, vth = vThMant, bias_exp = 6)`` behind a
``Dense`` whose weights it rescales into Loihi's synapse format (a left shift s and ``weight_exp = -s``, mixed-
sign weights in [-256, 254]). The IR maps onto this exactly when every layer is deterministic (no release,
no weight_fixed, no escape noise), spiking (a readout never spikes; CUBA neurons always can), has
``weight_exp`` in {0, 1} or effective weights inside [-256, 254] (NetX has no negative weight exponent: the
IR floors the sum, integer weights cannot), ``current_decay >= 1`` and biases that are multiples of 64.
Anything else is refused with a message naming the layer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from quantal.compile.ir import IRError, Network, atomic_write_path

W_MIN, W_MAX = -256, 254  # the mixed-sign range NetX's weight scaling keeps exactly


class NetXError(ValueError):
    """A network NetX HDF5 cannot express; the message names the layer."""


def problems(net: Network) -> list[str]:
    try:
        chain = net.chain_synapses()
    except IRError as e:
        return [f"NetX export handles feed-forward chains of dense layers: {e}"]
    out = []
    for la, syn in zip(net.layers, chain):
        neu = la.neuron
        where = f"layer '{la.name}'"
        if syn.release is not None or syn.weight_fixed is not None or neu.escape_noise is not None:
            out.append(f"{where}: stochastic synapses, reliable parts and escape noise have no NetX form "
                       "(deterministic CUBA layers only)")  # fmt: skip
        if neu.kind == "readout":
            out.append(f"{where}: a readout never spikes, NetX CUBA neurons do")
        if syn.weight_exp < 0:
            out.append(f"{where}: weight_exp {syn.weight_exp} < 0 floors the sum, which integer NetX weights cannot")
        else:
            w = syn.weight.astype(np.int64) << syn.weight_exp
            if w.min(initial=0) < W_MIN or w.max(initial=0) > W_MAX:
                out.append(f"{where}: effective weights reach [{w.min()}, {w.max()}], NetX keeps [{W_MIN}, {W_MAX}] "
                           "(compile with smaller weight exponents)")  # fmt: skip
        if neu.current_decay < 1:
            out.append(f"{where}: current_decay 0 has no NetX iDecay (du = iDecay - 1)")
        b = neu.effective_bias(la.size)
        if np.any(b % 64 != 0):
            out.append(f"{where}: biases must be multiples of 64 (NetX fixes bias_exp = 6)")
    return out


def export(net: Network, path: str | os.PathLike[str], *, steps: int | None = None) -> Path:
    """Write ``net`` as a NetX HDF5 file (atomically); refuses what NetX cannot express. ``steps`` (NetX's
    ``tSample``) defaults to the network's stored ``run_steps``."""
    import h5py

    bad = problems(net)
    if bad:
        raise NetXError(bad[0] + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))
    if steps is None:  # NetX's tSample: the network's stored run length
        stored = (net.metadata.get("input") or {}).get("run_steps") if isinstance(net.metadata, dict) else None
        if not isinstance(stored, int) or isinstance(stored, bool) or stored < 1:
            raise NetXError(f"network {net.name!r} stores no run length (metadata input.run_steps): give the "
                            "number of steps for NetX's tSample (--steps)")  # fmt: skip
        steps = stored
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise NetXError(f"steps (NetX's tSample) must be a positive integer, got {steps!r}")

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            sim = f.create_group("simulation")
            sim.create_dataset("Ts", data=1)
            sim.create_dataset("tSample", data=int(steps))
            layers = f.create_group("layer")
            for k, (la, syn) in enumerate(zip(net.layers, net.chain_synapses())):
                g = layers.create_group(str(k))
                neu = la.neuron
                g.create_dataset("type", data=np.bytes_("dense"))
                g.create_dataset("shape", data=np.array([la.size], np.int64))
                g.create_dataset("inFeatures", data=syn.shape[1])
                g.create_dataset("outFeatures", data=la.size)
                g.create_dataset("weight", data=syn.weight.astype(np.int64) << syn.weight_exp)
                g.create_dataset("bias", data=neu.effective_bias(la.size).astype(np.int64) // 64)  # exact: checked
                n = g.create_group("neuron")
                n.create_dataset("type", data=np.bytes_("CUBA"))
                n.create_dataset("iDecay", data=neu.current_decay)
                n.create_dataset("vDecay", data=neu.voltage_decay)
                n.create_dataset("vThMant", data=neu.threshold)
                n.create_dataset("refDelay", data=1)
                n.create_dataset("gradedSpike", data=False)

    return atomic_write_path(path, write)  # h5py writes by name


def read(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The dense CUBA layers of a NetX file as plain values (type, weight, bias, iDecay, vDecay, vThMant)."""
    import h5py

    out = []
    with h5py.File(path, "r") as f:
        for k in sorted(f["layer"], key=int):
            g = f["layer"][k]
            typ = g["type"][()]
            typ = (typ[0] if np.ndim(typ) else typ).decode()
            if typ != "dense":
                raise NetXError(f"layer {k}: type {typ!r} (only dense layers are read)")
            n = g["neuron"]
            ntype = n["type"][()]
            ntype = (ntype[0] if np.ndim(ntype) else ntype).decode()
            if ntype not in ("CUBA", "LOIHI"):
                raise NetXError(f"layer {k}: neuron type {ntype!r} (only CUBA is read)")
            out.append({"weight": g["weight"][()].astype(np.int64),
                        "bias": g["bias"][()].astype(np.int64) if "bias" in g else None,
                        "iDecay": int(n["iDecay"][()]), "vDecay": int(n["vDecay"][()]),
                        "vThMant": int(n["vThMant"][()])})  # fmt: skip
    return out


def lava_weights(w: np.ndarray) -> tuple[np.ndarray, int]:
    """NetX's rescaling of integer weights into Loihi's mixed-sign synapse: shift left by s (s = 1 while the
    doubled weights stay in [-256, 254], as Lava stores mixed-sign weights with their last bit 0), and
    ``weight_exp = -s``, so the synapse holds exactly ``w``."""
    s = 1 if w.size == 0 or (w.min() * 2 >= W_MIN and w.max() * 2 <= W_MAX) else 0
    return w << s, -s
