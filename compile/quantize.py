"""Calibration and quantisation: a float graph (weights, thresholds, decays in float units) to a calibrated
fake-quant :class:`~quantal.train.fakequant.QuantNet`. Every route into the IR goes through :func:`quantize`:
your own PyTorch model (``from_torch``), the configuration-built models (``compile.lower``) and NIR graphs.

Each layer's scale c (IR units per float unit) is the largest the layer's limits allow:

* weights: ``c max|w| <= 127 << 7`` (mantissa 127 at ``weight_exp`` 7), over every projection into the layer
  and their reliable parts;
* threshold: ``c theta <= 131071``; bias: ``64 c |b| <= 4095 << 7``;
* the 24-bit u and v: from the largest |u| and |v| the float model reaches on calibration data (``stats``, times
  ``margin``), or explicit ``limits`` (a memoryless layer's or a readout's worst case), else the worst case of
  binary inputs accumulated over ``1 / (1 - alpha)`` and ``1 / (1 - beta)`` steps.

c is that bound itself, or with ``power_of_two`` the power of two just below it (then integer-valued float
weights stay exact). Per projection ``weight_exp`` then minimises the weights' squared quantisation error,
saturation included (:func:`choose_weight_exp`). The report has one row per layer (see :func:`quantize`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from quantal.compile.ir import INPUT, mantissa_bits
from quantal.train.fakequant import U_WRAP, V_MAX, LayerSpec, ProjectionSpec, QuantLayer, QuantNet, QuantProjection

MAX_THRESHOLD = 131071
MANT_MAX = 127
EXP_RANGE = range(-8, 8)
BIAS_MAX = 4095


class LoweringError(ValueError):
    """A model or parameter that the IR cannot express; the message names the module."""


def release_codes(p: torch.Tensor | np.ndarray | float, shape: tuple[int, ...]) -> np.ndarray:
    """8-bit release codes ``k = clip(round(256 p - 1), 0, 255)``: P(transmit) = (k + 1) / 256."""
    p = np.asarray(p.detach().double().cpu().numpy() if isinstance(p, torch.Tensor) else p, np.float64)
    return np.clip(np.rint(256 * np.broadcast_to(p, shape) - 1), 0, 255).astype(np.uint8)


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
    return e, int(((r > 127) | (r < -128)).sum())


def bias_exps(b_v: np.ndarray) -> np.ndarray:
    """Per neuron the smallest ``bias_exp`` in [0, 7] with ``|b| / 2**bias_exp <= 4095`` (b in v units)."""
    need = np.ceil(np.log2(np.maximum(np.abs(b_v), 1e-300) / BIAS_MAX))
    return np.clip(need, 0, 7).astype(np.int64)


# ------------------------------------------------------------------------------------------- float graph


@dataclass
class FloatLayer:
    """A neuron layer in float units (see quantal.nn): per-neuron arrays of shape (size,)."""

    name: str
    shape: tuple[int, ...]
    kind: str  # lif | readout
    alpha: np.ndarray
    beta: np.ndarray
    threshold: np.ndarray
    bias: np.ndarray
    reset: str = "zero"
    escape_beta: float | None = None  # sigmoid escape noise of this steepness, or None (deterministic)
    surrogate_beta: float = 5.0
    stats: dict[str, float] | None = None  # largest |u| and |v| on calibration data
    limits: dict[str, float] | None = None  # explicit bounds on the scale c (instead of stats or the worst case)
    bias_v_extra: np.ndarray | None = None  # exact integers added to the bias in v units (after scaling)

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass
class FloatProjection:
    """A projection in float units: a dense (target size, source size) matrix or a conv kernel with its
    geometry, the release probability per stored weight (None: reliable) and an optional reliable part
    ``weight_fixed`` (same shape) that always transmits."""

    name: str
    source: str
    target: str
    weight: np.ndarray
    kind: str = "dense"
    p: np.ndarray | None = None
    geometry: dict[str, Any] = field(default_factory=dict)  # stride, padding, dilation, groups (conv2d)
    weight_fixed: np.ndarray | None = None
    delay: int = 0  # extra steps beyond the IR's one-step synaptic delay


@dataclass
class FloatGraph:
    input_shape: tuple[int, ...]
    layers: list[FloatLayer]
    projections: list[FloatProjection]

    @classmethod
    def chain(cls, n_in: int, layers: list[tuple[FloatLayer, FloatProjection]]) -> FloatGraph:
        """A feed-forward chain: each layer's projection comes from the previous layer (the input first)."""
        src, out_l, out_p = INPUT, [], []
        for la, pr in layers:
            pr.source, pr.target = src, la.name
            out_l.append(la)
            out_p.append(pr)
            src = la.name
        return cls((int(n_in),), out_l, out_p)


# ------------------------------------------------------------------------------------------ calibration


def float_run(graph: FloatGraph, x: np.ndarray, steps: int | None = None) -> tuple[dict[str, np.ndarray],
                                                                                  dict[str, dict[str, float]]]:
    """The float model of ``graph`` on spikes ``x`` (n, T, *input shape) for ``steps`` steps (default T), in the
    IR's timing: a projection delivers the source's output of step ``t - 1 - delay``; per layer
    ``u <- alpha u + sum_p W_p s_p``, ``v <- beta v + u + bias``, spike where ``v > threshold`` (lif), then reset.
    Returns each layer's output (n, steps, size): spikes, or v for a readout; and its largest |u| and |v|
    (before the reset), the calibration statistics."""
    import torch.nn.functional as F

    x = np.asarray(x, np.float64)
    n, t_in = x.shape[0], x.shape[1]
    steps = t_in if steps is None else int(steps)
    sizes = {INPUT: math.prod(graph.input_shape), **{la.name: la.size for la in graph.layers}}
    shapes = {INPUT: graph.input_shape, **{la.name: la.shape for la in graph.layers}}
    hist = {k: np.zeros((n, steps, sizes[k])) for k in sizes}
    hist[INPUT][:, : min(t_in, steps)] = x[:, :steps].reshape(n, -1, sizes[INPUT])
    u = {la.name: np.zeros((n, la.size)) for la in graph.layers}
    v = {la.name: np.zeros((n, la.size)) for la in graph.layers}
    stats = {la.name: {"u": 0.0, "v": 0.0} for la in graph.layers}
    weights = {}
    for pr in graph.projections:  # stochastic weights at their expectation, plus the reliable part
        w = np.asarray(pr.weight, np.float64) * (1.0 if pr.p is None else np.asarray(pr.p, np.float64))
        weights[pr.name] = torch.from_numpy(w if pr.weight_fixed is None else w + pr.weight_fixed)
    for t in range(steps):
        for la in graph.layers:
            a = np.zeros((n, la.size))
            for pr in graph.projections:
                if pr.target != la.name or t - 1 - pr.delay < 0:
                    continue
                s = torch.from_numpy(hist[pr.source][:, t - 1 - pr.delay])
                if pr.kind == "conv2d":
                    g = pr.geometry
                    s = s.reshape(n, *shapes[pr.source])
                    out = F.conv2d(s, weights[pr.name], stride=tuple(g.get("stride", (1, 1))),
                                   padding=tuple(g.get("padding", (0, 0))), dilation=tuple(g.get("dilation", (1, 1))),
                                   groups=int(g.get("groups", 1)))  # fmt: skip
                    a += out.reshape(n, -1).numpy()
                else:
                    a += (s @ weights[pr.name].T).numpy()
            u[la.name] = la.alpha * u[la.name] + a
            v[la.name] = la.beta * v[la.name] + u[la.name] + la.bias
            st = stats[la.name]
            st["u"] = max(st["u"], float(np.abs(u[la.name]).max(initial=0)))
            st["v"] = max(st["v"], float(np.abs(v[la.name]).max(initial=0)))
        for la in graph.layers:  # outputs after every layer integrated (the IR updates layers at once)
            if la.kind == "lif":
                spk = v[la.name] > la.threshold
                hist[la.name][:, t] = spk
                v[la.name] = np.where(spk, v[la.name] - la.threshold if la.reset == "subtract" else 0.0, v[la.name])
            else:
                hist[la.name][:, t] = v[la.name]
    return {la.name: hist[la.name] for la in graph.layers}, stats


def float_stats(graph: FloatGraph, x: np.ndarray, steps: int | None = None) -> dict[str, dict[str, float]]:
    """Each layer's largest |u| and |v| of the float model on spikes ``x`` (see :func:`float_run`)."""
    return float_run(graph, x, steps)[1]



def _row_abs_sum(w: np.ndarray) -> np.ndarray:
    return np.abs(w).reshape(w.shape[0], -1).sum(1)


def _worst_input(graph: FloatGraph, la: FloatLayer) -> float:
    """The largest |a| of one step over binary inputs: sum over the projections of max_i sum_j |w_ij|."""
    total = 0.0
    for pr in graph.projections:
        if pr.target == la.name:
            w = np.abs(pr.weight) + (0 if pr.weight_fixed is None else np.abs(pr.weight_fixed))
            total += float(_row_abs_sum(w).max(initial=0))
    return total


def _scale_limits(graph: FloatGraph, la: FloatLayer, margin: float) -> dict[str, float]:
    lim: dict[str, float] = {}
    into = [pr for pr in graph.projections if pr.target == la.name]
    w_max = max((float(np.abs(a).max(initial=0)) for pr in into for a in (pr.weight, pr.weight_fixed)
                 if a is not None), default=0.0)  # fmt: skip
    if w_max > 0:
        lim["weights"] = MANT_MAX * 2.0**7 / w_max
    if la.kind == "lif" and la.threshold.max(initial=0) > 0:
        lim["threshold"] = MAX_THRESHOLD / float(la.threshold.max())
    if np.abs(la.bias).max(initial=0) > 0:
        lim["bias"] = BIAS_MAX * 2.0**7 / (64 * float(np.abs(la.bias).max()))
    if la.limits is not None:
        lim.update(la.limits)
    elif la.stats is not None and la.stats["v"] > 0:
        lim["voltage"] = V_MAX / (64 * margin * la.stats["v"])
        if la.stats["u"] > 0:
            lim["current"] = (U_WRAP - 1) / (64 * margin * la.stats["u"])
    else:  # the worst case of binary inputs, accumulated over 1 / (1 - alpha) and 1 / (1 - beta) steps
        acc = 1 / max(1 - float(la.alpha.max()), 1e-3) / max(1 - float(la.beta.max()), 1e-3)
        worst = (_worst_input(graph, la) + float(np.abs(la.bias).max(initial=0))) * acc
        if worst > 0:
            lim["voltage"] = V_MAX / (64 * worst)
    return lim or {"unit": 1.0}


def quantize(graph: FloatGraph, *, margin: float = 2.0, name: str = "net",
             power_of_two: bool = True) -> tuple[QuantNet, list[dict[str, Any]]]:  # fmt: skip
    """The calibrated fake-quant network of a float graph (see the module docstring) and its report.

    One row per layer: ``scale``, ``scale_limited_by`` (the binding limit), ``threshold`` (min, max),
    ``escape_scale``, ``saturated_biases``; over the projections into it ``weights``, ``saturated_weights``,
    ``weight_bits_used``, ``mean_abs_weight_error_lsb``, ``weight_exp`` (the first projection's), release
    statistics where stochastic; and ``projections``, the same per projection.
    """
    layers, projections, rows, scales = [], [], [], {}
    for la in graph.layers:
        lim = _scale_limits(graph, la, margin)
        why = min(lim, key=lambda k: lim[k])
        c = float(lim[why])
        if not math.isfinite(c) or c <= 0:
            raise LoweringError(f"layer {la.name!r}: cannot choose a scale (limits {lim})")
        if power_of_two:
            c = 2.0 ** math.floor(math.log2(c))  # a power of two: integer-valued float weights stay exact
        scales[la.name] = c
        b_v = 64 * c * la.bias + (0 if la.bias_v_extra is None else la.bias_v_extra)
        bexp = bias_exps(b_v)
        thr = np.rint(c * la.threshold).astype(np.int64) if la.kind == "lif" else np.zeros(la.size, np.int64)
        if thr.max(initial=0) > MAX_THRESHOLD:  # pragma: no cover - the threshold limit bounds c
            raise LoweringError(f"layer {la.name!r}: threshold {int(thr.max())} is out of range [0, {MAX_THRESHOLD}]")
        spec = LayerSpec(name=la.name, shape=la.shape, kind=la.kind, scale=c, reset=la.reset,
                         escape_scale=None if la.escape_beta is None else 64 * c / la.escape_beta,
                         surrogate_beta=la.surrogate_beta)  # fmt: skip
        ql = QuantLayer(spec, threshold=thr, current_decay=np.rint(4096 * (1 - la.alpha)).astype(np.int64),
                        voltage_decay=np.rint(4096 * (1 - la.beta)).astype(np.int64),
                        bias=torch.from_numpy(b_v / (64 * c)), bias_exp=bexp)  # fmt: skip
        layers.append(ql)
        with torch.no_grad():
            b_int = ql.bias_v().numpy()
        rows.append({"name": la.name, "kind": la.kind, "scale": c, "scale_limited_by": why,
                     "threshold": [int(thr.min(initial=0)), int(thr.max(initial=0))],
                     "escape_scale": spec.escape_scale,
                     "saturated_biases": int((np.abs(b_v - b_int) > 2.0**bexp).sum()), "projections": []})  # fmt: skip
    shapes = {INPUT: graph.input_shape, **{la.name: la.shape for la in graph.layers}}
    by_name = {r["name"]: r for r in rows}
    for pr in graph.projections:
        c = scales[pr.target]
        w_all = c * (pr.weight if pr.weight_fixed is None else np.concatenate([pr.weight, pr.weight_fixed]))
        e, sat = choose_weight_exp(w_all)
        geo = pr.geometry if pr.kind == "conv2d" else {}
        spec = ProjectionSpec(name=pr.name, source=pr.source, target=pr.target, src_shape=shapes[pr.source],
                              dst_shape=shapes[pr.target], scale=c, kind=pr.kind, weight_exp=e,
                              has_fixed=pr.weight_fixed is not None, delay=int(pr.delay), **geo)  # fmt: skip
        rel = None if pr.p is None else release_codes(pr.p, pr.weight.shape)
        qp = QuantProjection(spec, torch.from_numpy(pr.weight.astype(np.float64)),
                             weight_fixed=None if pr.weight_fixed is None
                             else torch.from_numpy(pr.weight_fixed.astype(np.float64)), release=rel)  # fmt: skip
        projections.append(qp)
        with torch.no_grad():
            mant = qp.mantissa().numpy()
            mf = qp.mantissa_fixed()
        prow: dict[str, Any] = {
            "name": pr.name, "weight_exp": e, "weights": int(pr.weight.size), "saturated_weights": sat,
            "weight_bits_used": mantissa_bits(mant),
            "weight_fixed_bits_used": None if mf is None else mantissa_bits(mf.numpy()),
            "mean_abs_weight_error_lsb": float(np.abs(mant * 2.0**e - c * pr.weight).mean() / 2.0**e)
            if pr.weight.size else 0.0,
        }  # fmt: skip
        if rel is not None:
            p_ir = (rel.astype(np.float64) + 1) / 256
            prow["release_mean_p"] = float(p_ir.mean())
            prow["release_max_abs_error"] = float(np.abs(p_ir - np.broadcast_to(pr.p, p_ir.shape)).max())
        by_name[pr.target]["projections"].append(prow)
    for r in rows:  # the layer's totals over its projections (a chain's layer has exactly one)
        ps = r["projections"]
        if ps:
            r["weight_exp"] = ps[0]["weight_exp"]
            r["weights"] = sum(p["weights"] for p in ps)
            r["saturated_weights"] = sum(p["saturated_weights"] for p in ps)
            r["weight_bits_used"] = max(p["weight_bits_used"] for p in ps)
            fixed = [p["weight_fixed_bits_used"] for p in ps if p["weight_fixed_bits_used"] is not None]
            r["weight_fixed_bits_used"] = max(fixed) if fixed else None
            r["mean_abs_weight_error_lsb"] = (sum(p["mean_abs_weight_error_lsb"] * p["weights"] for p in ps)
                                              / max(r["weights"], 1))  # fmt: skip
            rel_ps = [p for p in ps if "release_mean_p" in p]
            if rel_ps:
                r["release_mean_p"] = sum(p["release_mean_p"] * p["weights"] for p in rel_ps) / sum(
                    p["weights"] for p in rel_ps)
                r["release_max_abs_error"] = max(p["release_max_abs_error"] for p in rel_ps)
    return QuantNet(name, graph.input_shape, layers, projections), rows
