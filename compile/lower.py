"""Lowering the configuration-built models (``quantal train``) to fake-quant networks
(:class:`~quantal.train.fakequant.QuantNet`) and from there to the IR. Each model becomes a float graph (a chain
of :class:`~quantal.compile.quantize.FloatLayer` and :class:`~quantal.compile.quantize.FloatProjection`) that
:func:`quantal.compile.quantize.quantize` calibrates, the same calibration your own models get through
``from_torch`` (the rules are in docs/compile.md).

Supported models and how each piece lowers:

* ``lif`` (:class:`LIFNet`): each :class:`SpikingLayer` becomes a ``lif`` layer, the readout a ``readout``
  layer. ``nn.Linear`` synapses are reliable; :class:`BlankOutLinear` synapses get ``release`` codes
  ``k = round(256 p - 1)`` (P = (k + 1) / 256) and, with a reliable fraction a_i, ``weight_fixed = a_i w``.
  Decays are already IR integers; ``threshold = round(c theta)``; sigmoid escape noise of steepness beta
  becomes logistic escape noise with ``S = 64 c / beta``. The scales come from the largest |u| and |v| on
  calibration data (with a safety ``margin``).
* ``binary`` (:class:`BinaryNet`, estimators surrogate | straight | unbiased): memoryless units
  (both decays 4096, threshold 0) with logistic escape noise ``S = 64 c`` (P = sigmoid(a + b)), fed a rate
  code; the readout accumulates (voltage_decay 0) over the presentation. Scales from the worst case, which
  can never wrap.
* ``s2m`` (:class:`S2MNet`): every ±1 unit becomes an on/off pair of channels; see :func:`_lower_s2m`.

The scale of a configuration-built model is the largest its limits allow (not rounded to a power of two).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from quantal.compile.quantize import (  # noqa: F401 - re-exported: the names users and tests know
    U_WRAP,
    V_MAX,
    FloatGraph,
    FloatLayer,
    FloatProjection,
    LoweringError,
    choose_weight_exp,
    quantize,
    release_codes,
)
from quantal.train.fakequant import QuantNet
from quantal.train.neurons import LIFState, lif_step
from quantal.train.synapses import BlankOutLinear, S2MLinear
from quantal.train.trainer import MLP, BinaryNet, LIFNet, S2MNet


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()


def _layer(name: str, size: int, *, kind: str = "lif", alpha: float = 0.0, beta: float = 0.0,
           threshold: float = 0.0, bias: np.ndarray | None = None, **kw: Any) -> FloatLayer:  # fmt: skip
    """A float layer of ``size`` neurons with scalar dynamics."""
    full = lambda x: np.full(size, float(x))  # noqa: E731
    return FloatLayer(name=name, shape=(size,), kind=kind, alpha=full(alpha), beta=full(beta),
                      threshold=full(threshold), bias=np.zeros(size) if bias is None else np.asarray(bias, np.float64),
                      **kw)  # fmt: skip


def _proj(name: str, w: np.ndarray, wf: np.ndarray | None = None, p: np.ndarray | None = None) -> FloatProjection:
    return FloatProjection(name, "", "", w, p=p, weight_fixed=wf)


# ------------------------------------------------------------------------------------------- models


def _synapse(mod: nn.Module, where: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(w, weight_fixed, release probability per synapse or None) of a synapse module."""
    if isinstance(mod, BlankOutLinear):
        if mod.mode != "sampled":
            raise LoweringError(f"{where}: BlankOutLinear in {mod.mode!r} mode; lower it in sampled mode")
        w = _np(mod.weight)
        p = np.broadcast_to(_np(mod.p), w.shape).copy()
        wf = None if mod.a is None else _np(mod.a)[:, None] * w
        return w, wf, None if (p >= 1).all() else p
    if isinstance(mod, nn.Linear):
        if mod.bias is not None:
            raise LoweringError(f"{where}: nn.Linear with a bias inside a SpikingLayer (use the layer's bias)")
        return _np(mod.weight), None, None
    raise LoweringError(f"{where}: synapse module {type(mod).__name__} has no IR equivalent "
                        "(supported: nn.Linear, BlankOutLinear)")  # fmt: skip


def _lif_stats(model: LIFNet, x: torch.Tensor) -> list[tuple[float, float]]:
    """The largest |u| and |v| (v before the reset) of every layer over calibration spikes ``x``."""
    stats = []
    with torch.no_grad():
        pad = torch.zeros(x.shape[0], len(model.layers) + 1, x.shape[2], dtype=x.dtype)
        s = torch.cat([x, pad], 1)
        for layer in [*model.layers, model.readout]:
            p = layer.params._replace(threshold=layer.threshold, bias=layer.bias)
            z = torch.zeros(x.shape[0], layer.size, dtype=x.dtype)
            st, umax, vmax, outs = LIFState(z, z), 0.0, 0.0, []
            for t in range(s.shape[1]):
                a = layer.synapse(s[:, t - 1] if t >= 1 else torch.zeros_like(s[:, 0]))
                v_pre = p.beta * st.v + (p.alpha * st.u + a) + p.bias
                spk, st = lif_step(a, st, p)
                umax, vmax = max(umax, float(st.u.abs().max())), max(vmax, float(v_pre.abs().max()))
                outs.append(spk)
            s = torch.stack(outs, 1)
            stats.append((umax, vmax))
    return stats


def _lower_lif(model: LIFNet, cfg: dict, calib: torch.Tensor) -> list[tuple[FloatLayer, FloatProjection]]:
    m = cfg["model"]
    if m["escape"] not in (None, "sigmoid"):
        raise LoweringError(f"layers.0 (SpikingLayer): escape function {m['escape']!r} has no IR equivalent "
                            "(IR escape noise is logistic; train with model.escape: sigmoid)")  # fmt: skip
    mods = [*model.layers, model.readout]
    syns = [_synapse(la.synapse, f"{'readout' if la is model.readout else f'layers.{k}'}.synapse")
            for k, la in enumerate(mods)]  # fmt: skip
    chain = []
    for k, (layer, (umax, vmax)) in enumerate(zip(mods, _lif_stats(model, calib))):
        readout = layer is model.readout
        name = "readout" if readout else f"lif{k}"
        w, wf, p = syns[k]
        # the IR's decays are integers: the float retention rounds to the nearest 1/4096 (the model trains
        # with values that are already on that grid)
        alpha = 1 - round(4096 * (1 - float(layer.params.alpha))) / 4096
        beta = 1 - round(4096 * (1 - float(layer.params.beta))) / 4096
        la = _layer(name, w.shape[0], kind="readout" if readout else "lif", alpha=alpha, beta=beta,
                    threshold=0.0 if readout else float(layer.threshold), bias=_np(layer.bias),
                    escape_beta=None if readout or m["escape"] is None else float(m["escape_beta"]),
                    surrogate_beta=float(m["escape_beta"]), stats={"u": umax, "v": vmax})  # fmt: skip
        chain.append((la, _proj(name, w, wf, p)))
    return chain


def _memoryless(name: str, w: np.ndarray, b: np.ndarray, worst: float, p: float | None,
                **kw: Any) -> tuple[FloatLayer, FloatProjection]:  # fmt: skip
    """A memoryless layer (both decays 4096) whose worst-case |a << 6| stays below the 24-bit wrap."""
    la = _layer(name, w.shape[0], bias=b, limits={"wrap": (U_WRAP - 1) / (64 * max(worst, 1e-300))}, **kw)
    return la, _proj(name, w, None, None if p is None or p >= 1 else np.full(w.shape, p))


def _lower_binary(model: BinaryNet, steps: int) -> list[tuple[FloatLayer, FloatProjection]]:
    for k, est in enumerate(model.estimators):
        if model.moment:
            raise LoweringError(f"layers.{k}: probit units (estimator 'moment') have no IR equivalent "
                                "(IR escape noise is logistic)")  # fmt: skip
        if est == "noisy_rectifier":
            raise LoweringError(f"layers.{k} (NoisyRectifier): rectified units have no IR equivalent")
    chain = []
    for k, lin in enumerate(model.layers):
        w, b = _np(lin.weight), _np(lin.bias)
        # memoryless: |a| <= sum_j |w_ij| for binary inputs; keep |a << 6| <= 2**23 so u never wraps
        chain.append(_memoryless(f"bin{k}", w, b, float(np.abs(w).sum(1).max()), float(model.p), escape_beta=1.0))
    return [*chain, _readout(_np(model.readout.weight), _np(model.readout.bias), steps)]


def _readout(r: np.ndarray, rb: np.ndarray, run_steps: int) -> tuple[FloatLayer, FloatProjection]:
    """An accumulating readout (u forgotten every step, v kept) whose worst case over ``run_steps`` steps
    stays inside the 24-bit voltage."""
    worst = run_steps * float((np.abs(r).sum(1) + np.abs(rb)).max())
    la = _layer("readout", r.shape[0], kind="readout", beta=1.0, bias=rb,
                limits={"voltage": V_MAX / (64 * max(worst, 1e-300))})  # fmt: skip
    return la, _proj("readout", r)


def _lower_s2m(model: S2MNet, steps: int) -> tuple[list[tuple[FloatLayer, FloatProjection]], list[list[float]]]:
    """S2M sign units as on/off channel pairs; returns the chain and each layer's reliable-fraction range.

    A ±1 unit z is carried by two channels, on = [z = +1] and off = [z = -1]; a post-neuron receives weight w
    from the on channel and -w from the off channel, so its input is ``sum_j xi_ij w_ij z_j``: exactly one
    channel of each pair is active and its synapse draws its own Bernoulli(p), as the blank-out synapse of
    the trained unit does. The learned gain beta_i = (a_i + p) / sqrt(2 p (1 - p)) becomes the reliable
    fraction ``a_i = beta_i sqrt(2 p (1 - p)) - p`` (``weight_fixed = a_i w``). The on neuron fires iff
    u > 0 (threshold 0); the off neuron has the negated weights and a bias of +64 (one unit of a << 6), so it
    fires iff its own u <= 0 (sign(0) = -1). The two neurons draw independent synapses, so each has exactly
    the trained unit's firing probability but they are not complementary within a step.
    """
    chain, ranges = [], []
    for k, lay in enumerate(model.layers):
        if not isinstance(lay, S2MLinear):
            raise LoweringError(f"layers.{k}: {type(lay).__name__} is not an S2MLinear")
        p = float(lay.p)
        w = _np(lay.weight)
        a = _np(lay.gain) * math.sqrt(2 * p * (1 - p)) - p  # reliable fraction from the learned gain
        wpair = np.concatenate([np.concatenate([w, -w], 1), np.concatenate([-w, w], 1)])  # rows: on, off
        wf = a[:, None] * w
        wfpair = np.concatenate([np.concatenate([wf, -wf], 1), np.concatenate([-wf, wf], 1)])
        n = w.shape[0]
        # exactly one channel per input pair is active: |a| <= sum_j max(|w|, |w + wf|) over the pair's row
        worst = float((np.abs(w) + np.abs(wf)).sum(1).max()) + 1
        extra = np.concatenate([np.zeros(n), np.full(n, 64.0)])  # off neurons: +64, so they fire iff u <= 0
        la, pr = _memoryless(f"s2m{k}", wpair, np.zeros(2 * n), worst, p, bias_v_extra=extra)
        pr.weight_fixed = wfpair
        chain.append((la, pr))
        ranges.append([float(a.min()), float(a.max())])
    r, rb = _np(model.readout.weight), _np(model.readout.bias)
    return [*chain, _readout(np.concatenate([r, -r], 1), rb, steps)], ranges


def input_spec(cfg: dict) -> dict[str, Any]:
    """How the lowered network's input is encoded and how long it runs (stored in the network's metadata)."""
    m, d = cfg["model"], cfg["data"]
    n_layers = len(m["hidden"])
    if m["kind"] == "lif":
        enc = d["encoder"]
    elif m["kind"] == "binary":
        enc = "rate"
    elif m["kind"] == "s2m":
        enc = "pairs"
    else:
        raise LoweringError(_unsupported(m["kind"]))
    steps = int(d["steps"])
    return {"dataset": d["name"], "encoder": enc, "steps": steps, "max_rate": float(d["max_rate"]),
            "run_steps": steps + n_layers + 1, "output": "readout", "decode": "argmax of the readout's final v"}


def _unsupported(kind: str) -> str:
    if kind == "mlp":
        return "MLP (nn.ReLU): a float ReLU network has no spiking IR v1 equivalent; train a lif, binary or s2m model"
    if kind == "rbse":
        return "RBSE: the unsupervised RBSE model has no IR v1 lowering yet; train a lif, binary or s2m model"
    return f"model kind {kind!r} has no IR v1 lowering"


def lower(model: nn.Module, cfg: dict, calib_x: np.ndarray, *, seed: int = 0,
          margin: float = 2.0) -> tuple[QuantNet, list[dict[str, Any]], dict[str, Any]]:  # fmt: skip
    """Lower a trained model (built from ``cfg``) to a calibrated fake-quant network.

    ``calib_x``: images (n, d) in [0, 1] used for calibration (LIF models). Returns the network, the
    per-layer quantisation report and the input specification (:func:`input_spec`).
    """
    from quantal.train.data import encode

    if isinstance(model, MLP):
        raise LoweringError(_unsupported("mlp"))
    spec = input_spec(cfg)
    ranges = None
    if isinstance(model, LIFNet):
        calib = torch.from_numpy(encode(calib_x, spec["encoder"], spec["steps"], max_rate=spec["max_rate"],
                                        seed=seed)).to(torch.float32)  # fmt: skip
        chain = _lower_lif(model, cfg, calib)
        n_in = calib.shape[2]
    elif isinstance(model, BinaryNet):
        chain = _lower_binary(model, spec["run_steps"])
        n_in = model.layers[0].in_features
    elif isinstance(model, S2MNet):
        chain, ranges = _lower_s2m(model, spec["run_steps"])
        n_in = 2 * model.layers[0].weight.shape[1]
    else:
        raise LoweringError(f"{type(model).__name__}: no IR lowering for this model")
    qnet, rows = quantize(FloatGraph.chain(n_in, chain), margin=margin, name=cfg.get("name", "net"),
                          power_of_two=False)  # fmt: skip
    for row, rng in zip(rows, ranges or []):
        row["reliable_fraction_range"] = rng
    return qnet, rows, spec
