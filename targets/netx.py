"""lava-dl NetX HDF5 export and import (docs/targets.md §NetX). Needs numpy and h5py (it also runs in the Lava venv).

NetX describes a network as a chain of layers, with datasets only::

    /layer/<i>/type            b"input" | b"dense" | b"dense_rec" | b"conv" | b"flatten" | b"pool"
    /layer/<i>/shape           dense: [size]; conv: [C, H, W] (lava-dl reverses it to Lava's W, H, C)
    /layer/<i>/weight          dense: int (size, n_in) = weight_mant * 2**weight_exp
                               conv: int (out, in / groups, kH, kW), stride, padding, dilation [H, W], groups
    /layer/<i>/weight_rec      dense_rec: int (size, size), the layer's projection onto itself
    /layer/<i>/delay           dense: int (size, n_in), the extra steps of each synapse (the IR's delay)
    /layer/<i>/bias            int (size,): NetX runs LIF with bias_exp = 6, so bias = (bias_mant << bias_exp) / 64
    /layer/<i>/neuron/type     b"CUBA"
    /layer/<i>/neuron/{iDecay, vDecay, vThMant, refDelay, gradedSpike}
    /simulation/{Ts, tSample}

lava-dl's reader (``lava.lib.dl.netx.hdf5.Network``) builds a CUBA layer as Lava's ``LIF(du = iDecay - 1,
dv = vDecay, vth = vThMant, bias_exp = 6)`` behind a ``Dense`` (weights rescaled into Loihi's mixed-sign synapse
format), a ``DelayDense`` where there are delays, a recurrent Dense for ``dense_rec``, or a ``Conv`` (which holds
integer weights, no exponent, and clips its sum to 24 bits). The IR maps onto this exactly when the network is a
chain (layer l fed by layer l - 1, or the input, plus optionally a dense projection onto itself), every layer is
deterministic (no release, no weight_fixed, no escape noise), spiking, with scalar decays and threshold, reset
zero, ``current_decay >= 1``, biases that are multiples of 64, ``weight_exp >= 0`` with effective weights inside
[-256, 254], and for conv layers no delay and sums that cannot reach 24 bits. Anything else is refused with a
message naming the layer. Pool layers (lava-dl 0.6's reader does not build them) are written by nobody here, and
imported fused into the next layer (sum pooling times the pool's weight, stride = kernel).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from quantal.compile.ir import (
    INPUT,
    Conv2dSynapse,
    DenseSynapse,
    IRError,
    Layer,
    Network,
    Neuron,
    Projection,
    atomic_write_path,
    conv_out,
)

W_MIN, W_MAX = -256, 254  # the mixed-sign range NetX's weight scaling keeps exactly
CONV_SUM_MAX = 2**23 - 1  # Lava's Conv clips its 24-bit sum
MAX_LAYERS = 4096
MAX_ELEMENTS = 2**28  # per dataset, checked before reading


class NetXError(ValueError):
    """A network NetX HDF5 cannot express, or a NetX file quantal cannot read; the message names the layer."""


def _chain(net: Network) -> list[tuple[Layer, Projection | None, Projection | None]] | str:
    """(layer, forward projection, recurrent projection) per layer, or why the network is not a NetX chain."""
    out = []
    used = set()
    for li, la in enumerate(net.layers):
        src = INPUT if li == 0 else net.layers[li - 1].name
        into = [p for p in net.projections if p.target == la.name]
        fw = [p for p in into if p.source == src]
        rec = [p for p in into if p.source == la.name]
        other = [p for p in into if p not in fw and p not in rec]
        if len(fw) != 1 or len(rec) > 1 or other:
            what = (f"projection '{other[0].name}' from '{other[0].source}'" if other else
                    f"{len(fw)} projections from '{src}'" if len(fw) != 1 else f"{len(rec)} recurrent projections")
            return (f"layer '{la.name}': NetX layers form a chain (each fed by the one before it, and a dense layer "
                    f"optionally by itself); here {what}")  # fmt: skip
        used.update(p.name for p in fw + rec)
        out.append((la, fw[0], rec[0] if rec else None))
    return out


def problems(net: Network) -> list[str]:
    chain = _chain(net)
    if isinstance(chain, str):
        return [chain]
    out = []
    shapes = {INPUT: net.input_shape, **{la.name: la.shape for la in net.layers}}
    for la, fw, rec in chain:
        neu = la.neuron
        where = f"layer '{la.name}'"
        projs = [p for p in (fw, rec) if p is not None]
        if any(p.synapse.release is not None or p.synapse.weight_fixed is not None for p in projs):
            out.append(f"{where}: stochastic synapses and reliable parts have no NetX form (deterministic CUBA "
                       "layers only)")  # fmt: skip
        if neu.escape_noise is not None:
            out.append(f"{where}: escape noise has no NetX form (deterministic CUBA layers only)")
        if neu.kind == "readout":
            out.append(f"{where}: a readout never spikes, NetX CUBA neurons do")
        for p in projs:
            s = p.synapse
            if s.weight_exp < 0:
                out.append(f"{where}: weight_exp {s.weight_exp} < 0 floors the sum, which integer NetX weights cannot")
                continue
            w = s.weight.astype(np.int64) << s.weight_exp
            if w.min(initial=0) < W_MIN or w.max(initial=0) > W_MAX:
                out.append(f"{where}: effective weights reach [{w.min()}, {w.max()}], NetX keeps [{W_MIN}, {W_MAX}] "
                           "(weight_exp 0 or 1 with 8-bit mantissas fits)")  # fmt: skip
            if isinstance(s, Conv2dSynapse):
                if p.delay:
                    out.append(f"{where}: NetX conv layers have no delays (projection '{p.name}' has {p.delay})")
                fan = np.abs(w).reshape(w.shape[0], -1).sum(1).max(initial=0)
                if fan > CONV_SUM_MAX:
                    out.append(f"{where}: a conv sum can reach {fan}, beyond the 24 bits Lava's Conv keeps")
        if isinstance(fw.synapse, Conv2dSynapse) and len(shapes[fw.source]) != 3:
            out.append(f"{where}: a conv layer needs [C, H, W] input")
        if rec is not None and (isinstance(rec.synapse, Conv2dSynapse) or len(la.shape) != 1):
            out.append(f"{where}: NetX recurrence (dense_rec) is a dense projection of a dense layer onto itself")
        if rec is not None and (fw.delay or rec.delay):
            out.append(f"{where}: a NetX dense_rec layer has no delays (lava-dl builds its forward and recurrent "
                       "weights as one Dense)")  # fmt: skip
        for f in ("current_decay", "voltage_decay", "threshold"):
            if np.ndim(getattr(neu, f)):
                out.append(f"{where}: per-neuron {f} (NetX neurons have one value per layer)")
        if neu.reset != "zero":
            out.append(f"{where}: subtractive reset (NetX CUBA neurons reset to zero)")
        if np.min(neu.current_decay) < 1:
            out.append(f"{where}: current_decay 0 has no NetX iDecay (du = iDecay - 1)")
        b = neu.effective_bias(la.size)
        if np.any(b % 64 != 0):
            out.append(f"{where}: biases must be multiples of 64 (NetX fixes bias_exp = 6)")
        if isinstance(fw.synapse, Conv2dSynapse) and len(la.shape) == 3:
            b3 = b.reshape(la.shape)
            if np.any(b3 != b3[:, :1, :1]):
                out.append(f"{where}: a NetX conv layer has one bias per channel, these vary within a channel")
    return out


def _steps(net: Network, steps: int | None) -> int:
    if steps is None:  # NetX's tSample: the network's stored run length
        stored = (net.metadata.get("input") or {}).get("run_steps") if isinstance(net.metadata, dict) else None
        if not isinstance(stored, int) or isinstance(stored, bool) or stored < 1:
            raise NetXError(f"network {net.name!r} stores no run length (metadata input.run_steps): give the "
                            "number of steps for NetX's tSample (--steps)")  # fmt: skip
        steps = stored
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise NetXError(f"steps (NetX's tSample) must be a positive integer, got {steps!r}")
    return steps


def export(net: Network, path: str | os.PathLike[str], *, steps: int | None = None) -> Path:
    """Write ``net`` as a NetX HDF5 file (atomically); refuses what NetX cannot express. ``steps`` (NetX's
    ``tSample``) defaults to the network's stored ``run_steps``."""
    import h5py

    bad = problems(net)
    if bad:
        raise NetXError("; ".join(dict.fromkeys(bad)))  # every reason, on one line
    steps = _steps(net, steps)
    chain = _chain(net)
    assert not isinstance(chain, str)
    shapes = {INPUT: net.input_shape, **{la.name: la.shape for la in net.layers}}

    def neuron(g: Any, neu: Neuron) -> None:
        n = g.create_group("neuron")
        n.create_dataset("type", data=np.bytes_("CUBA"))
        n.create_dataset("iDecay", data=int(neu.current_decay))
        n.create_dataset("vDecay", data=int(neu.voltage_decay))
        n.create_dataset("vThMant", data=int(neu.threshold))
        n.create_dataset("refDelay", data=1)
        n.create_dataset("gradedSpike", data=False)

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            sim = f.create_group("simulation")
            sim.create_dataset("Ts", data=1)
            sim.create_dataset("tSample", data=int(steps))
            layers = f.create_group("layer")
            k = 0

            def group(kind: str) -> Any:
                nonlocal k
                g = layers.create_group(str(k))
                g.create_dataset("type", data=np.bytes_(kind))
                k += 1
                return g

            if isinstance(chain[0][1].synapse, Conv2dSynapse):  # lava-dl takes a conv's input shape from here
                group("input").create_dataset("shape", data=np.array(net.input_shape, np.int64))
            for la, fw, rec in chain:
                s = fw.synapse
                w = s.weight.astype(np.int64) << s.weight_exp  # exact: weight_exp >= 0 (checked)
                bias = la.neuron.effective_bias(la.size).astype(np.int64) // 64  # exact: multiples of 64 (checked)
                if isinstance(s, Conv2dSynapse):
                    g = group("conv")
                    g.create_dataset("shape", data=np.array(la.shape, np.int64))
                    g.create_dataset("weight", data=w)
                    for key in ("stride", "padding", "dilation"):
                        g.create_dataset(key, data=np.array(getattr(s, key), np.int64))
                    g.create_dataset("groups", data=int(s.groups))
                    g.create_dataset("bias", data=bias.reshape(la.shape)[:, 0, 0])  # one per channel (checked)
                else:
                    if len(shapes[fw.source]) > 1:
                        group("flatten")
                    g = group("dense_rec" if rec is not None else "dense")
                    g.create_dataset("shape", data=np.array([la.size], np.int64))
                    g.create_dataset("inFeatures", data=int(w.shape[1]))
                    g.create_dataset("outFeatures", data=la.size)
                    g.create_dataset("weight", data=w)
                    if rec is not None:
                        g.create_dataset("weight_rec", data=rec.synapse.weight.astype(np.int64)
                                         << rec.synapse.weight_exp)  # fmt: skip
                    if fw.delay:
                        g.create_dataset("delay", data=np.full(w.shape, fw.delay, np.int64))
                    g.create_dataset("bias", data=bias)
                neuron(g, la.neuron)

    return atomic_write_path(path, write)  # h5py writes by name


# --------------------------------------------------------------------------------------------- import


def _value(g: Any, key: str, where: str) -> np.ndarray:
    import h5py

    if key not in g:
        raise NetXError(f"{where}: no {key!r}")
    ds = g[key]
    if not isinstance(ds, h5py.Dataset):
        raise NetXError(f"{where}: {key!r} is not a dataset")
    if ds.size > MAX_ELEMENTS:
        raise NetXError(f"{where}: {key!r} has {ds.size} elements (at most {MAX_ELEMENTS})")
    v = ds[()]
    if isinstance(v, bytes):
        return np.asarray(v.decode("utf-8", "replace"))
    return np.asarray(v)


def _int(a: np.ndarray, where: str, key: str) -> np.ndarray:
    if a.dtype.kind not in "iub" and not (a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.rint(a))):
        raise NetXError(f"{where}: {key} must be integers (got {a.dtype})")
    return a.astype(np.int64)


def _text(a: np.ndarray) -> str:
    v = a.reshape(-1)[0] if a.ndim else a[()]
    return v.decode() if isinstance(v, bytes) else str(v)


def _mantissa(w: np.ndarray, where: str) -> tuple[np.ndarray, int]:
    """Integer weights as the IR's int8 mantissa and exponent, exactly."""
    for e in range(0, 8):
        m = w >> e
        if np.all(m << e == w) and m.min(initial=0) >= -128 and m.max(initial=0) <= 127:
            return m.astype(np.int8), e
    raise NetXError(f"{where}: weights in [{w.min()}, {w.max()}] are not an 8-bit mantissa times a power of two")


def read_network(path: str | os.PathLike[str], name: str | None = None) -> Network:
    """The IR network of a NetX HDF5 file (as lava-dl writes it: input, dense, dense_rec, conv, pool and flatten
    layers with CUBA neurons, ``delay`` where present); NetX's integer semantics are the IR's, so this is exact."""
    import h5py

    from quantal.compile.graph import sum_pool_conv2d, sum_pool_dense

    p = Path(path)
    if not p.is_file():
        raise NetXError(f"{p}: no such file")
    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise NetXError(f"{p}: not an HDF5 file ({str(e).splitlines()[0][:160]})") from None
    with f:
        if "layer" not in f or not isinstance(f["layer"], h5py.Group):
            raise NetXError(f"{p}: no /layer group (not a NetX file)")
        keys = list(f["layer"])
        if len(keys) > MAX_LAYERS or not all(k.isdigit() for k in keys):
            raise NetXError(f"{p}: /layer must hold groups named 0, 1, ... (at most {MAX_LAYERS})")
        keys = sorted(keys, key=int)
        steps = None
        if "simulation" in f and "tSample" in f["simulation"]:
            steps = int(_int(_value(f["simulation"], "tSample", "simulation"), "simulation", "tSample"))
        shape: tuple[int, ...] | None = None
        layers, projs = [], []
        src = INPUT
        pending_pool: list[tuple[int, int]] = []  # (kernel, weight) of pools before the next layer
        in_shape: tuple[int, ...] | None = None
        for k in keys:
            g = f["layer"][k]
            where = f"layer {k}"
            typ = _text(_value(g, "type", where))
            if typ == "input":
                if "neuron" in g:
                    raise NetXError(f"{where}: an input layer with neurons (graded, transformed input) does not import")
                if "shape" in g:
                    shape = tuple(int(v) for v in _int(_value(g, "shape", where), where, "shape").reshape(-1))
                    in_shape = in_shape or shape  # the network's input: the first input layer's shape
                continue
            if typ == "flatten":
                continue
            if typ == "pool":
                kern = _int(_value(g, "kernel", where), where, "kernel").reshape(-1)
                stride = _int(_value(g, "stride", where), where, "stride").reshape(-1) if "stride" in g else kern
                pad = _int(_value(g, "padding", where), where, "padding").reshape(-1) if "padding" in g else [0]
                wt = _int(_value(g, "weight", where), where, "weight").reshape(-1) if "weight" in g else np.ones(1)
                if len(set(kern.tolist())) != 1 or list(stride) != list(kern)[: len(stride)] or np.any(pad) or \
                        len(set(wt.tolist())) != 1:  # fmt: skip
                    raise NetXError(f"{where}: pool layers import with square kernels, stride = kernel, no padding "
                                    "and one weight")  # fmt: skip
                pending_pool.append((int(kern[0]), int(wt[0])))
                continue
            if typ not in ("dense", "dense_rec", "conv"):
                raise NetXError(f"{where}: layer type {typ!r} does not import (input, dense, dense_rec, conv, pool, "
                                "flatten)")  # fmt: skip
            if "neuron" not in g:
                raise NetXError(f"{where}: a {typ} layer without neurons does not import")
            n = g["neuron"]
            ntype = _text(_value(n, "type", where))
            if ntype not in ("CUBA", "LOIHI"):
                raise NetXError(f"{where}: neuron type {ntype!r} does not import (CUBA only)")
            if "gradedSpike" in n and bool(_value(n, "gradedSpike", where)):
                raise NetXError(f"{where}: graded spikes do not import (binary spikes only)")
            decay = {key: int(_int(_value(n, key, where), where, key)) for key in ("iDecay", "vDecay", "vThMant")}
            if shape is None:
                if typ == "conv":
                    raise NetXError(f"{where}: the conv layer's input shape is unknown (no input layer with a shape)")
            w = _int(_value(g, "weight", where), where, "weight")
            name_l = f"layer{len(layers)}"
            # the shapes through the pools before this layer (each pool fuses into this layer's weights below)
            chain_shapes = [shape]
            for kern, _ in pending_pool:
                cur = chain_shapes[-1]
                if cur is None or len(cur) != 3 or cur[1] % kern or cur[2] % kern:
                    raise NetXError(f"{where}: a pool of {kern} needs [C, H, W] input divisible by it, got {cur}")
                chain_shapes.append((cur[0], cur[1] // kern, cur[2] // kern))
            pooled = chain_shapes[-1]
            if typ == "conv":
                out_shape = tuple(int(v) for v in _int(_value(g, "shape", where), where, "shape").reshape(-1))
                if w.ndim == 5:
                    w = w[..., 0]  # slayer's trailing time axis
                if w.ndim != 4 or pooled is None or len(pooled) != 3 or len(out_shape) != 3:
                    raise NetXError(f"{where}: conv weight {w.shape} on input {pooled} does not import")
                geo = {key: tuple(int(v) for v in np.broadcast_to(_int(_value(g, key, where), where, key), (2,)))
                       for key in ("stride", "padding", "dilation")}  # fmt: skip
                groups = int(_int(_value(g, "groups", where), where, "groups")) if "groups" in g else 1
                mant, e = _mantissa(w, where)
                syn: Any = Conv2dSynapse(weight=mant, weight_exp=e, groups=groups, **geo)
                want = (w.shape[0], *(conv_out(nn, kk, s, pd, d) for nn, kk, s, pd, d in
                                      zip(pooled[1:], w.shape[2:], geo["stride"], geo["padding"], geo["dilation"])))
                if want != out_shape:
                    raise NetXError(f"{where}: conv output {list(want)} does not match its shape {list(out_shape)}")
            else:
                size = int(np.prod(_int(_value(g, "shape", where), where, "shape")))
                if w.ndim == 1:
                    w = w.reshape(size, -1)
                if w.ndim != 2 or w.shape[0] != size or (pooled is not None and w.shape[1] != math.prod(pooled)):
                    raise NetXError(f"{where}: dense weight {w.shape} does not fit {size} neurons on input "
                                    f"{pooled}")  # fmt: skip
                mant, e = _mantissa(w, where)
                syn = DenseSynapse(weight=mant, weight_exp=e)
                out_shape = (size,)
            for (kern, wt), before in zip(reversed(pending_pool), reversed(chain_shapes[:-1])):
                syn = (sum_pool_conv2d(syn, kern, before) if isinstance(syn, Conv2dSynapse) else
                       sum_pool_dense(syn, kern, before))  # fmt: skip
                if wt != 1:  # the pool's weight multiplies every tap
                    mant, e = _mantissa((syn.weight.astype(np.int64) << syn.weight_exp) * wt, where)
                    syn = (Conv2dSynapse(weight=mant, weight_exp=e, stride=syn.stride, padding=syn.padding,
                                         dilation=syn.dilation, groups=syn.groups)
                           if isinstance(syn, Conv2dSynapse) else DenseSynapse(weight=mant, weight_exp=e))  # fmt: skip
            pending_pool = []
            delay = 0
            if "delay" in g:
                d = _int(_value(g, "delay", where), where, "delay")
                if d.size == 0 or np.any(d != d.reshape(-1)[0]) or d.reshape(-1)[0] < 0:
                    raise NetXError(f"{where}: delays must be one non-negative value for the layer (the IR delays a "
                                    "projection, not each synapse)")  # fmt: skip
                delay = int(d.reshape(-1)[0])
            b = _int(_value(g, "bias", where), where, "bias").reshape(-1) if "bias" in g else np.zeros(1, np.int64)
            size = math.prod(out_shape)
            if b.size not in (1, size, out_shape[0]):
                raise NetXError(f"{where}: {b.size} biases for {size} neurons")
            if b.size == out_shape[0] and b.size != size:  # one per channel
                b = np.repeat(b, size // b.size)
            if np.abs(b).max(initial=0) > 4095:
                raise NetXError(f"{where}: biases reach {np.abs(b).max()}, beyond the IR's 13-bit bias mantissa")
            try:
                neu = Neuron(kind="lif", current_decay=decay["iDecay"], voltage_decay=decay["vDecay"],
                             threshold=decay["vThMant"], bias_mant=b.astype(np.int64) if b.size > 1 else int(b[0]),
                             bias_exp=6)  # fmt: skip
                layers.append(Layer(name=name_l, shape=out_shape, neuron=neu))
                projs.append(Projection(name=f"{name_l}.in", source=src, target=name_l, synapse=syn, delay=delay))
                if typ == "dense_rec":
                    wr = _int(_value(g, "weight_rec", where), where, "weight_rec").reshape(size, size)
                    mr, er = _mantissa(wr, where)
                    projs.append(Projection(name=f"{name_l}.rec", source=name_l, target=name_l,
                                            synapse=DenseSynapse(weight=mr, weight_exp=er)))  # fmt: skip
            except IRError as err:
                raise NetXError(f"{where}: {err}") from None
            src, shape = name_l, out_shape
        if not layers:
            raise NetXError(f"{p}: no dense or conv layers")
        if pending_pool:
            raise NetXError(f"{p}: a pool layer at the end, before no layer")
        in_shape = in_shape or (int(projs[0].synapse.weight.shape[1]),)  # else the first layer's in-features
    meta: dict[str, Any] = {"source": "netx"}
    if steps is not None and steps >= 1:
        meta["input"] = {"run_steps": steps}
    try:
        return Network(name=name or p.stem or "netx", input_shape=in_shape, layers=tuple(layers),
                       projections=tuple(projs), metadata=meta)  # fmt: skip
    except IRError as err:
        raise NetXError(f"{p}: {err}") from None


def read(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The layers of a NetX file as plain values (type, weight, bias, iDecay, vDecay, vThMant), for tests."""
    import h5py

    out = []
    with h5py.File(path, "r") as f:
        for k in sorted(f["layer"], key=int):
            g = f["layer"][k]
            typ = _text(np.asarray(g["type"][()]))
            if "neuron" not in g:
                continue
            n = g["neuron"]
            out.append({"type": typ, "weight": g["weight"][()].astype(np.int64),
                        "bias": g["bias"][()].astype(np.int64) if "bias" in g else None,
                        "iDecay": int(n["iDecay"][()]), "vDecay": int(n["vDecay"][()]),
                        "vThMant": int(n["vThMant"][()])})  # fmt: skip
    return out
