"""``from_torch``: lower your own PyTorch model, built from ``quantal.nn`` layers, to the fixed-point IR.

    qnet, report = from_torch(model, example_input, calibration=x_calib)
    net = qnet.to_network("mynet")            # the IR v2 graph; qnet itself trains bit-exactly with hwsim

Three stages, each its own piece:

1. **Tracing** (``torch.fx``): the model's ``forward`` becomes a graph of module calls, with the lowerable
   modules (:data:`LOWERINGS`) kept as leaves. Any other module, function or method is refused with its path,
   its type and the list of known modules.
2. **Lowering to a float graph** (:class:`FloatGraph`, numpy only): each neuron module becomes a layer; the
   synapse modules between a spike source (the input or a neuron layer) and a neuron layer become one
   projection each. Spatial maps of the spikes before a synapse are fused into it exactly: a sum- or average-pool
   before a conv becomes one conv on the unpooled map (:func:`quantal.compile.graph.spread_pooled_kernel`), a
   pool and a flatten before a dense synapse become repeated columns. A sum of synapse outputs (``a + b``) is a
   skip connection: two projections into one layer. :class:`~quantal.nn.RecurrentLIF` adds its recurrent
   projection.
3. **Calibration** (:func:`quantal.compile.quantize.quantize`, shared by every route into the IR): one scale c
   per layer (IR units per float unit), a power of two, as large as the weights (mantissa 127 at ``weight_exp``
   7), thresholds (131071), biases (4095 << 7) and the 24-bit u and v allow, the last from the largest |u| and
   |v| the float model reaches on calibration data (times ``margin``; the example input when no data is given);
   then per projection the ``weight_exp`` that minimises the weights' squared error. The result is a
   :class:`~quantal.train.fakequant.QuantNet`.

The float model and the IR agree wherever the IR's arithmetic has no rounding: with integer weights and
thresholds, ``alpha`` in {0, 1} and ``beta`` in {0, 1} (integrate-and-fire) they give the same spikes, which a
test checks on a CNN with pooling, a skip and a recurrent layer.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from quantal.compile.graph import pooled_geometry, spread_pooled_columns, spread_pooled_kernel
from quantal.compile.ir import INPUT, conv_out
from quantal.compile.quantize import FloatGraph, FloatLayer, FloatProjection, LoweringError, quantize
from quantal.train import layers as L
from quantal.train.fakequant import QuantNet

# ---------------------------------------------------------------------------------------------- tracing

#: Modules ``from_torch`` lowers, by kind.
SYNAPSES = (nn.Linear, nn.Conv2d, L.BlankOutLinear, L.BlankOutConv2d)
SPATIAL = (L.SumPool2d, nn.AvgPool2d, nn.Flatten)
NEURONS = L.NEURONS
LOWERINGS = (*SYNAPSES, *SPATIAL, *NEURONS)


class _Tracer(torch.fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, LOWERINGS) or super().is_leaf_module(m, qualname)


def _known() -> str:
    return ", ".join(sorted({f"{c.__module__.replace('quantal.train.layers', 'quantal.nn')}.{c.__name__}"
                             for c in LOWERINGS}))  # fmt: skip


@dataclass
class _Spikes:
    """A spike source (the input or a layer) seen through spatial maps: pools and a flatten."""

    source: str
    shape: tuple[int, ...]  # the source's shape
    ops: tuple[tuple[str, int, float], ...] = ()  # ("pool", k, scale) | ("flatten", 0, 1)

    def out_shape(self) -> tuple[int, ...]:
        shape = self.shape
        for op, k, _ in self.ops:
            if op == "pool":
                c, h, w = shape
                shape = (c, h // k, w // k)
            else:
                shape = (math.prod(shape),)
        return shape


@dataclass
class _Current:
    """Synaptic input: a sum of synapse modules applied to spike sources."""

    terms: list[tuple[_Spikes, nn.Module, str]]  # (spikes, synapse module, module path)


def _module_kind(m: nn.Module) -> str:
    if isinstance(m, NEURONS):
        return "neuron"
    if isinstance(m, SYNAPSES):
        return "synapse"
    return "spatial"


def lower_to_float(model: nn.Module, example_input: torch.Tensor) -> tuple[FloatGraph, str]:
    """Trace ``model`` and lower it to a :class:`FloatGraph`; returns it and the output layer's name."""
    if example_input.dim() < 3:
        raise LoweringError(f"example_input must be (batch, T, *input shape), got shape {tuple(example_input.shape)}")
    input_shape = tuple(int(s) for s in example_input.shape[2:])
    try:
        graph = _Tracer().trace(model)
    except Exception as e:  # noqa: BLE001 - fx fails in many ways on untraceable code
        raise LoweringError(f"{type(model).__name__}: cannot be traced with torch.fx ({str(e).splitlines()[0]})"
                            ) from None  # fmt: skip
    modules = dict(model.named_modules())
    values: dict[str, Any] = {}
    layers: list[FloatLayer] = []
    projections: list[FloatProjection] = []
    shapes: dict[str, tuple[int, ...]] = {INPUT: input_shape}
    output = None
    for node in graph.nodes:
        if node.op == "placeholder":
            if values:
                raise LoweringError(f"{type(model).__name__}.forward takes more than one input ({node.name})")
            values[node.name] = _Spikes(INPUT, input_shape)
        elif node.op == "call_module":
            mod = modules[node.target]
            where = f"{node.target} ({type(mod).__name__})"
            if not isinstance(mod, LOWERINGS):
                raise LoweringError(f"{where}: no IR lowering for this module (known: {_known()})")
            args = [values.get(a.name) if isinstance(a, torch.fx.Node) else a for a in node.args]
            if len(args) != 1 or node.kwargs:
                raise LoweringError(f"{where}: expected one input, got {len(args)} arguments")
            x = args[0]
            kind = _module_kind(mod)
            if kind == "spatial":
                if not isinstance(x, _Spikes):
                    raise LoweringError(f"{where}: pooling and flattening apply to spikes (after a neuron layer); "
                                        "here it follows a synapse")  # fmt: skip
                values[node.name] = _spatial(x, mod, where)
            elif kind == "synapse":
                if not isinstance(x, _Spikes):
                    raise LoweringError(f"{where}: a synapse needs spikes (the input or a neuron layer) as input")
                values[node.name] = _Current([(x, mod, node.target)])
            else:
                if not isinstance(x, _Current):
                    raise LoweringError(f"{where}: a neuron layer needs synaptic input (a Linear, Conv2d or "
                                        "blank-out synapse) as input")  # fmt: skip
                name = node.target.replace(".", "_") or "layer"
                layers.append(_float_layer(name, mod, where))
                shapes[name] = tuple(mod.shape)
                for k, (sp, syn, path) in enumerate(x.terms):
                    pname = f"{name}.in" if len(x.terms) == 1 else f"{name}.in{k}"
                    projections.append(_float_projection(pname, sp, syn, name, tuple(mod.shape), path))
                if isinstance(mod, L.RecurrentLIF):
                    sp = _Spikes(name, tuple(mod.shape))
                    projections.append(_float_projection(f"{name}.rec", sp, mod.recurrent, name, tuple(mod.shape),
                                                         f"{node.target}.recurrent"))  # fmt: skip
                values[node.name] = _Spikes(name, tuple(mod.shape)) if not isinstance(mod, L.Readout) else (
                    "readout", name)
        elif node.op == "call_function" and node.target in (operator.add, torch.add):
            a, b = (values.get(v.name) if isinstance(v, torch.fx.Node) else v for v in node.args[:2])
            if not (isinstance(a, _Current) and isinstance(b, _Current)):
                raise LoweringError(f"{node.name}: only synaptic inputs (synapse outputs) can be added (a skip "
                                    "connection)")  # fmt: skip
            values[node.name] = _Current(a.terms + b.terms)
        elif node.op == "output":
            out = node.args[0]
            val = values.get(out.name) if isinstance(out, torch.fx.Node) else None
            if isinstance(val, tuple) and val[0] == "readout":
                output = val[1]
            elif isinstance(val, _Spikes) and val.source != INPUT and not val.ops:
                output = val.source
            else:
                raise LoweringError("the model must return a neuron layer's output (a Readout's v or a layer's "
                                    "spikes)")  # fmt: skip
        else:
            what = node.target if node.op != "call_method" else f".{node.target}()"
            raise LoweringError(f"{node.name}: {node.op} {what} has no IR lowering (use quantal.nn modules; known: "
                                f"{_known()})")  # fmt: skip
    if not layers:
        raise LoweringError(f"{type(model).__name__}: no neuron layer (quantal.nn.LIF, Binary, RecurrentLIF, "
                            "Readout)")  # fmt: skip
    # the output layer last, so that the network's last layer is its output
    order = [la for la in layers if la.name != output] + [la for la in layers if la.name == output]
    return FloatGraph(input_shape, order, projections), str(output)


def _spatial(x: _Spikes, mod: nn.Module, where: str) -> _Spikes:
    shape = x.out_shape()
    if isinstance(mod, nn.Flatten):
        if mod.start_dim != 2 or mod.end_dim != -1:
            raise LoweringError(f"{where}: flatten the features only (start_dim=2 on (batch, T, C, H, W); "
                                "quantal.nn.Flatten does)")  # fmt: skip
        return _Spikes(x.source, x.shape, (*x.ops, ("flatten", 0, 1.0)))
    k = mod.kernel_size
    k = k if isinstance(k, int) else (k[0] if len(set(k)) == 1 else -1)
    if isinstance(mod, nn.AvgPool2d) and (mod.stride not in (None, k, (k, k)) or mod.padding not in (0, (0, 0))):
        raise LoweringError(f"{where}: only square pooling with stride = kernel size and no padding lowers")
    if k < 1 or len(shape) != 3 or shape[1] % k or shape[2] % k:
        raise LoweringError(f"{where}: pooling of {k} needs [C, H, W] spikes with H and W divisible by it, got "
                            f"{list(shape)}")  # fmt: skip
    scale = 1.0 if isinstance(mod, L.SumPool2d) and not isinstance(mod, L.AvgPool2d) else 1.0 / (k * k)
    return _Spikes(x.source, x.shape, (*x.ops, ("pool", k, scale)))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()


def _float_layer(name: str, mod: nn.Module, where: str) -> FloatLayer:
    if mod.escape not in (None, "sigmoid"):
        raise LoweringError(f"{where}: escape function {mod.escape!r} has no IR equivalent (IR escape noise is "
                            "logistic: use escape='sigmoid')")  # fmt: skip
    n = mod.size
    bias = np.zeros(n) if mod.bias is None else _np(mod.bias)
    return FloatLayer(name=name, shape=tuple(mod.shape), kind="readout" if mod.readout else "lif",
                      alpha=_np(mod.alpha).reshape(n), beta=_np(mod.beta).reshape(n),
                      threshold=_np(mod.threshold).reshape(n), bias=bias.reshape(n), reset=mod.reset,
                      escape_beta=None if mod.escape is None else mod.escape_beta, surrogate_beta=mod.escape_beta,
                      stats=mod.stats)  # fmt: skip


def _float_projection(name: str, sp: _Spikes, syn: nn.Module, target: str, tshape: tuple[int, ...],
                      path: str) -> FloatProjection:  # fmt: skip
    where = f"{path} ({type(syn).__name__})"
    if getattr(syn, "bias", None) is not None and isinstance(syn.bias, torch.Tensor):
        raise LoweringError(f"{where}: a synapse with a bias; put the bias in the neuron layer (bias=False here)")
    w = _np(syn.weight)
    p = None
    if isinstance(syn, (L.BlankOutLinear, L.BlankOutConv2d)):
        p = np.broadcast_to(_np(syn.p), w.shape).copy()
        if (p >= 1).all():
            p = None
    shape = sp.shape
    pools = []
    for op, k, scale in sp.ops:  # the spikes' spatial maps, fused into the weights below
        if op == "pool":
            pools.append((k, scale, shape))
            c, h, ww = shape
            shape = (c, h // k, ww // k)
        else:
            shape = (math.prod(shape),)
    if isinstance(syn, (nn.Conv2d, L.BlankOutConv2d)):
        conv = syn if isinstance(syn, nn.Conv2d) else syn.conv
        if len(shape) != 3:
            raise LoweringError(f"{where}: a conv2d needs [C, H, W] spikes, got {list(shape)}")
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise LoweringError(f"{where}: only numeric zero padding lowers")
        geo = {"stride": tuple(conv.stride), "padding": tuple(conv.padding), "dilation": tuple(conv.dilation),
               "groups": conv.groups}  # fmt: skip
        out = (w.shape[0], *(conv_out(n, k, s, pd, d) for n, k, s, pd, d in
                             zip(shape[1:], w.shape[2:], geo["stride"], geo["padding"], geo["dilation"])))  # fmt: skip
        if out != tshape:
            raise LoweringError(f"{where}: produces {list(out)} but the neuron layer has shape {list(tshape)}")
        for k, scale, _ in reversed(pools):  # innermost pool last: fuse from the conv outwards
            w = spread_pooled_kernel(w, k, geo["dilation"]) * scale
            p = None if p is None else spread_pooled_kernel(p, k, geo["dilation"])
            stride, padding = pooled_geometry(geo["stride"], geo["padding"], k)
            geo = {**geo, "stride": stride, "padding": padding, "dilation": (1, 1)}
        return FloatProjection(name, sp.source, target, w, "conv2d", p, geo)
    if len(shape) != 1 or w.shape[1] != shape[0]:
        raise LoweringError(f"{where}: takes {w.shape[1]} inputs but gets spikes of shape {list(shape)} (flatten "
                            "images with quantal.nn.Flatten)")  # fmt: skip
    if (w.shape[0],) != (math.prod(tshape),):
        raise LoweringError(f"{where}: has {w.shape[0]} outputs but the neuron layer has shape {list(tshape)}")
    for k, scale, pshape in reversed(pools):
        w = spread_pooled_columns(w, pshape, k) * scale
        p = None if p is None else spread_pooled_columns(p, pshape, k)
    return FloatProjection(name, sp.source, target, w, "dense", p)


def from_torch(model: nn.Module, example_input: torch.Tensor, *, calibration: torch.Tensor | None = None,
               margin: float = 2.0, name: str | None = None) -> tuple[QuantNet, list[dict]]:  # fmt: skip
    """Lower ``model`` (quantal.nn layers, ``nn.Linear``, ``nn.Conv2d``, ``nn.AvgPool2d``, ``nn.Flatten``; see the
    module docstring) to a calibrated fake-quant :class:`~quantal.train.fakequant.QuantNet` and its quantisation
    report. ``example_input`` (batch, T, *input shape) gives the input's shape; ``calibration`` spikes of the same
    layout (default: the example input) set the scales from the largest |u| and |v| the float model reaches on
    them, times ``margin``. ``qnet.to_network()`` is the IR graph; ``qnet`` trains bit-exactly with hwsim."""
    graph, _ = lower_to_float(model, example_input)  # refuses what cannot lower before anything runs
    named = [(path, m) for path, m in model.named_modules() if isinstance(m, NEURONS)]
    calibration = example_input if calibration is None else calibration
    for _, m in named:
        m.stats = {"u": 0.0, "v": 0.0}
    param = next(model.parameters(), None)
    try:
        with torch.no_grad():
            model(calibration.to(dtype=torch.float32, device=None if param is None else param.device))
    except Exception as e:  # noqa: BLE001 - the user's forward can fail in any way on the calibration data
        raise LoweringError(f"{type(model).__name__}: the float model fails on the calibration input "
                            f"({str(e).splitlines()[0]})") from None  # fmt: skip
    finally:
        stats = {path.replace(".", "_") or "layer": m.stats for path, m in named}
        for _, m in named:
            m.stats = None
    for la in graph.layers:  # the traced layers take their module's statistics
        la.stats = stats.get(la.name)
    return quantize(graph, margin=margin, name=name or type(model).__name__.lower())
