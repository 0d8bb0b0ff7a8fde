"""Lowering: trained ``train/`` models to fake-quant networks (:class:`~quantal.train.fakequant.QuantNet`) and
from there to IR v1. The PyTorch side of ``compile/`` (the rules are in docs/compile.md).

Supported models and how each piece lowers:

* ``lif`` (:class:`LIFNet`): each :class:`SpikingLayer` becomes a ``lif`` layer, the readout a ``readout``
  layer. ``nn.Linear`` synapses are reliable; :class:`BlankOutLinear` synapses get ``release`` codes
  ``k = round(256 p - 1)`` (P = (k + 1) / 256) and, with a reliable fraction a_i, ``weight_fixed = a_i w``.
  Decays are already IR integers; ``threshold = round(c theta)``; sigmoid escape noise of steepness beta
  becomes logistic escape noise with ``S = 64 c / beta``.
* ``binary`` (:class:`BinaryNet`, estimators surrogate | straight | unbiased): memoryless units
  (both decays 4096, threshold 0) with logistic escape noise ``S = 64 c`` (P = sigmoid(a + b)), fed a rate
  code; the readout accumulates (voltage_decay 0) over the presentation.
* ``s2m`` (:class:`S2MNet`): every ±1 unit becomes an on/off pair of channels; see :func:`_lower_s2m`.

Each layer's scale c (IR units per float unit) is calibrated: for LIF layers from the largest |u| and |v| the
float model reaches on calibration data (with a safety ``margin``), for memoryless layers from the worst
case, which can never wrap. Within those limits c is as large as the threshold (<= 131071), the weights
(mantissa 127 at ``weight_exp`` 7) and the biases (4095 << 7) allow. ``weight_exp`` is then chosen to
minimise the weights' squared quantisation error, saturation included; the report counts saturated weights.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from quantal.compile.ir import mantissa_bits
from quantal.train.fakequant import U_WRAP, V_MAX, LayerSpec, ProjectionSpec, QuantLayer, QuantNet, QuantProjection
from quantal.train.neurons import LIFState, lif_step
from quantal.train.synapses import BlankOutLinear, S2MLinear
from quantal.train.trainer import MLP, BinaryNet, LIFNet, S2MNet

ChainLayer = tuple[QuantLayer, QuantProjection]  # a layer of a chain and the projection into it

MAX_THRESHOLD = 131071
MANT_MAX = 127
EXP_RANGE = range(-8, 8)
BIAS_MAX = 4095


class LoweringError(ValueError):
    """A model or parameter that IR v1 cannot express; the message names the module."""


# ----------------------------------------------------------------------------------------- helpers


def release_codes(p: torch.Tensor | float, shape: tuple[int, int]) -> np.ndarray:
    """8-bit release codes ``k = clip(round(256 p - 1), 0, 255)``: P(transmit) = (k + 1) / 256."""
    p = np.broadcast_to(np.asarray(torch.as_tensor(p).detach().double().numpy()), shape)
    return np.clip(np.rint(256 * p - 1), 0, 255).astype(np.uint8)


def choose_weight_exp(w: np.ndarray) -> tuple[int, int]:
    """The exponent in [-8, 7] that minimises ``sum (clip(round(w / 2**e), -128, 127) 2**e - w)**2`` for
    weights ``w`` in IR units (the saturation error included), and how many weights saturate with it."""
    best = None
    for e in EXP_RANGE:
        m = np.clip(np.rint(w / 2.0**e), -128, 127)
        err = float(((m * 2.0**e - w) ** 2).sum())
        if best is None or err < best[0] - 1e-12 * max(err, 1):
            best = (err, e)
    e = best[1]  # type: ignore[index]
    r = np.rint(w / 2.0**e)
    sat = int(((r > 127) | (r < -128)).sum())
    return e, sat


def bias_exps(b_v: np.ndarray) -> np.ndarray:
    """Per neuron the smallest ``bias_exp`` in [0, 7] with ``|b| / 2**bias_exp <= 4095`` (b in v units)."""
    need = np.ceil(np.log2(np.maximum(np.abs(b_v), 1e-300) / BIAS_MAX))
    return np.clip(need, 0, 7).astype(np.int64)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()


def make_layer(name: str, *, w: np.ndarray, limits: dict[str, float], kind: str = "lif",
               wf: np.ndarray | None = None, release: np.ndarray | None = None, bias: np.ndarray | None = None,
               bias_v_extra: np.ndarray | None = None, threshold: float = 0.0, current_decay: int = 4096,
               voltage_decay: int = 0, escape_beta: float | None = None, surrogate_beta: float = 5.0,
               p_float: np.ndarray | None = None) -> tuple[ChainLayer, dict[str, Any]]:  # fmt: skip
    """One calibrated fake-quant layer of a chain (its neurons and the projection into it) and its quantisation
    report.

    ``w``/``wf`` (size, n_in) and ``bias`` (size,) are in float units; ``limits`` maps a reason to an upper
    bound on the scale c; ``bias_v_extra`` is added to the bias in v units (exact integers, e.g. the +64 of
    an S2M off channel); ``escape_beta`` makes the layer's escape noise logistic with S = 64 c / beta.
    """
    size, n_in = w.shape
    bias = np.zeros(size) if bias is None else np.asarray(bias, np.float64)
    lim = dict(limits)
    lim["weights"] = MANT_MAX * 2.0**7 / max(np.abs(w).max(initial=0), 0 if wf is None else np.abs(wf).max(initial=0),
                                             1e-300)  # fmt: skip
    if threshold > 0:
        lim["threshold"] = MAX_THRESHOLD / threshold
    if np.abs(bias).max(initial=0) > 0:
        lim["bias"] = BIAS_MAX * 2.0**7 / (64 * np.abs(bias).max())
    why = min(lim, key=lambda k: lim[k])
    c = float(lim[why])
    if not math.isfinite(c) or c <= 0:
        raise LoweringError(f"layer {name!r}: cannot choose a scale (limits {lim})")
    w_all = c * (w if wf is None else np.concatenate([w, wf]))
    e, sat = choose_weight_exp(w_all)
    b_v = 64 * c * bias
    if bias_v_extra is not None:
        b_v = b_v + bias_v_extra
    bexp = bias_exps(b_v)
    thr = int(round(c * threshold))
    if thr > MAX_THRESHOLD:
        raise LoweringError(f"layer {name!r}: threshold {thr} is out of range [0, {MAX_THRESHOLD}]")
    spec = LayerSpec(name=name, shape=(size,), kind=kind, scale=c,
                     escape_scale=None if escape_beta is None else 64 * c / escape_beta, surrogate_beta=surrogate_beta)
    layer = QuantLayer(spec, threshold=thr, current_decay=int(current_decay), voltage_decay=int(voltage_decay),
                       bias=torch.from_numpy(b_v / (64 * c)), bias_exp=bexp)  # fmt: skip
    pspec = ProjectionSpec(name=name, source="input", target=name, src_shape=(n_in,), dst_shape=(size,), scale=c,
                           weight_exp=e, has_fixed=wf is not None)  # fmt: skip
    proj = QuantProjection(pspec, torch.from_numpy(w.astype(np.float64)),
                           weight_fixed=None if wf is None else torch.from_numpy(wf.astype(np.float64)),
                           release=release)  # fmt: skip
    with torch.no_grad():
        mant = _np(proj.mantissa())
        mf = proj.mantissa_fixed()
        b_int = _np(layer.bias_v())
    q_err = np.abs(mant * 2.0**e - c * w)
    row: dict[str, Any] = {
        "name": name, "kind": kind, "scale": c, "scale_limited_by": why, "weight_exp": e,
        "weights": int(w.size), "saturated_weights": sat, "weight_bits_used": mantissa_bits(mant),
        "weight_fixed_bits_used": None if mf is None else mantissa_bits(_np(mf)),
        "mean_abs_weight_error_lsb": float(q_err.mean() / 2.0**e) if w.size else 0.0,
        "threshold": thr, "saturated_biases": int((np.abs(b_v - b_int) > 2.0**bexp).sum()),
        "escape_scale": spec.escape_scale,
    }  # fmt: skip
    if release is not None:
        p_ir = (release.astype(np.float64) + 1) / 256
        row["release_mean_p"] = float(p_ir.mean())
        if p_float is not None:
            row["release_max_abs_error"] = float(np.abs(p_ir - p_float).max())
    return (layer, proj), row


# ------------------------------------------------------------------------------------------- models


def _synapse(mod: nn.Module, where: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """(w, weight_fixed, release codes, float p) of a synapse module."""
    if isinstance(mod, BlankOutLinear):
        if mod.mode != "sampled":
            raise LoweringError(f"{where}: BlankOutLinear in {mod.mode!r} mode; lower it in sampled mode")
        w = _np(mod.weight)
        p = np.broadcast_to(_np(mod.p), w.shape)
        wf = None if mod.a is None else _np(mod.a)[:, None] * w
        if (p >= 1).all():
            return w, wf, None, None
        return w, wf, release_codes(torch.from_numpy(np.array(p)), w.shape), p
    if isinstance(mod, nn.Linear):
        if mod.bias is not None:
            raise LoweringError(f"{where}: nn.Linear with a bias inside a SpikingLayer (use the layer's bias)")
        return _np(mod.weight), None, None, None
    raise LoweringError(f"{where}: synapse module {type(mod).__name__} has no IR v1 equivalent "
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


def _lower_lif(model: LIFNet, cfg: dict, calib: torch.Tensor, margin: float) -> tuple[list, list]:
    m = cfg["model"]
    if m["escape"] not in (None, "sigmoid"):
        raise LoweringError(f"layers.0 (SpikingLayer): escape function {m['escape']!r} has no IR v1 equivalent "
                            "(IR v1 escape noise is logistic; train with model.escape: sigmoid)")  # fmt: skip
    mods = [*model.layers, model.readout]
    syns = [_synapse(la.synapse, f"{'readout' if la is model.readout else f'layers.{k}'}.synapse")
            for k, la in enumerate(mods)]  # fmt: skip
    stats = _lif_stats(model, calib)
    layers, rows = [], []
    for k, (layer, (umax, vmax)) in enumerate(zip(mods, stats)):
        readout = layer is model.readout
        name = "readout" if readout else f"lif{k}"
        w, wf, rel, pf = syns[k]
        limits = {}
        if vmax > 0:
            limits["voltage"] = V_MAX / (64 * margin * vmax)
        if umax > 0:
            limits["current"] = (U_WRAP - 1) / (64 * margin * umax)
        p = layer.params
        ql, row = make_layer(
            name, w=w, wf=wf, release=rel, p_float=pf, limits=limits, kind="readout" if readout else "lif",
            bias=_np(layer.bias), threshold=0.0 if readout else float(layer.threshold),
            current_decay=round(4096 * (1 - float(p.alpha))), voltage_decay=round(4096 * (1 - float(p.beta))),
            escape_beta=None if readout or m["escape"] is None else float(m["escape_beta"]),
            surrogate_beta=float(m["escape_beta"]),
        )  # fmt: skip
        layers.append(ql)
        rows.append(row)
    return layers, rows


def _lower_binary(model: BinaryNet, cfg: dict, steps: int) -> tuple[list, list]:
    for k, est in enumerate(model.estimators):
        if model.moment:
            raise LoweringError(f"layers.{k}: probit units (estimator 'moment') have no IR v1 equivalent "
                                "(IR v1 escape noise is logistic)")  # fmt: skip
        if est == "noisy_rectifier":
            raise LoweringError(f"layers.{k} (NoisyRectifier): rectified units have no IR v1 equivalent")
    layers, rows = [], []
    p = float(model.p)
    for k, lin in enumerate(model.layers):
        w, b = _np(lin.weight), _np(lin.bias)
        # memoryless: |a| <= sum_j |w_ij| for binary inputs; keep |a << 6| <= 2**23 so u never wraps
        worst = float((np.abs(w).sum(1)).max())
        rel = None if p >= 1 else release_codes(p, w.shape)
        ql, row = make_layer(f"bin{k}", w=w, bias=b, release=rel, p_float=None if rel is None else np.full(w.shape, p),
                             limits={"wrap": (U_WRAP - 1) / (64 * max(worst, 1e-300))}, current_decay=4096,
                             voltage_decay=4096, escape_beta=1.0)  # fmt: skip
        layers.append(ql)
        rows.append(row)
    r, rb = _np(model.readout.weight), _np(model.readout.bias)
    ql, row = _readout(r, rb, steps)
    return [*layers, ql], [*rows, row]


def _readout(r: np.ndarray, rb: np.ndarray, run_steps: int) -> tuple[ChainLayer, dict]:
    """An accumulating readout (u forgotten every step, v kept) whose worst case over ``run_steps`` steps
    stays inside the 24-bit voltage."""
    worst = run_steps * float((np.abs(r).sum(1) + np.abs(rb)).max())
    return make_layer("readout", w=r, bias=rb, kind="readout", current_decay=4096, voltage_decay=0,
                      limits={"voltage": V_MAX / (64 * max(worst, 1e-300))})  # fmt: skip


def _lower_s2m(model: S2MNet, steps: int) -> tuple[list, list]:
    """S2M sign units as on/off channel pairs.

    A ±1 unit z is carried by two channels, on = [z = +1] and off = [z = -1]; a post-neuron receives weight w
    from the on channel and -w from the off channel, so its input is ``sum_j xi_ij w_ij z_j``: exactly one
    channel of each pair is active and its synapse draws its own Bernoulli(p), as the blank-out synapse of
    the trained unit does. The learned gain beta_i = (a_i + p) / sqrt(2 p (1 - p)) becomes the reliable
    fraction ``a_i = beta_i sqrt(2 p (1 - p)) - p`` (``weight_fixed = a_i w``). The on neuron fires iff
    u > 0 (threshold 0); the off neuron has the negated weights and a bias of +64 (one unit of a << 6), so it
    fires iff its own u <= 0 (sign(0) = -1). The two neurons draw independent synapses, so each has exactly
    the trained unit's firing probability but they are not complementary within a step.
    """
    layers, rows = [], []
    for k, lay in enumerate(model.layers):
        if not isinstance(lay, S2MLinear):
            raise LoweringError(f"layers.{k}: {type(lay).__name__} is not an S2MLinear")
        p = float(lay.p)
        w = _np(lay.weight)
        a = _np(lay.beta) * math.sqrt(2 * p * (1 - p)) - p  # reliable fraction from the learned gain
        wpair = np.concatenate([np.concatenate([w, -w], 1), np.concatenate([-w, w], 1)])  # rows: on, off
        wf = a[:, None] * w
        wfpair = np.concatenate([np.concatenate([wf, -wf], 1), np.concatenate([-wf, wf], 1)])
        n = w.shape[0]
        # exactly one channel per input pair is active: |a| <= sum_j max(|w|, |w + wf|) over the pair's row
        worst = float((np.abs(w) + np.abs(wf)).sum(1).max()) + 1
        rel = release_codes(p, wpair.shape)
        extra = np.concatenate([np.zeros(n), np.full(n, 64.0)])  # off neurons: +64, so they fire iff u <= 0
        ql, row = make_layer(f"s2m{k}", w=wpair, wf=wfpair, release=rel, p_float=np.full(wpair.shape, p),
                             bias_v_extra=extra, limits={"wrap": (U_WRAP - 1) / (64 * worst)},
                             current_decay=4096, voltage_decay=4096)  # fmt: skip
        row["reliable_fraction_range"] = [float(a.min()), float(a.max())]
        layers.append(ql)
        rows.append(row)
    r, rb = _np(model.readout.weight), _np(model.readout.bias)
    ql, row = _readout(np.concatenate([r, -r], 1), rb, steps)
    return [*layers, ql], [*rows, row]


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
    if isinstance(model, LIFNet):
        calib = torch.from_numpy(encode(calib_x, spec["encoder"], spec["steps"], max_rate=spec["max_rate"],
                                        seed=seed)).to(torch.float32)  # fmt: skip
        layers, rows = _lower_lif(model, cfg, calib, margin)
        n_in = calib.shape[2]
    elif isinstance(model, BinaryNet):
        layers, rows = _lower_binary(model, cfg, spec["run_steps"])
        n_in = model.layers[0].in_features
    elif isinstance(model, S2MNet):
        layers, rows = _lower_s2m(model, spec["run_steps"])
        n_in = 2 * model.layers[0].weight.shape[1]
    else:
        raise LoweringError(f"{type(model).__name__}: no IR v1 lowering for this model")
    return QuantNet.chain(cfg.get("name", "net"), n_in, layers), rows, spec
