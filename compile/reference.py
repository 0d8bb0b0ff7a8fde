"""The reference semantics of IR v2 in plain numpy, written for clarity rather than speed.

This executor is the oracle that the Numba simulator (``quantal.hwsim``), the fixed-point trainer and the
Lava processes are tested against bit for bit. It follows docs/ir.md line by line: per sample, per step, per
layer, per projection into the layer, with every projection as its (target size, source size) matrix (a conv2d
projection expanded by :func:`quantal.compile.graph.expand`) and the whole spike history kept, so a projection
of delay d simply reads the source's spikes of step ``t - 1 - d``. Needs only numpy (it runs in the Lava venv,
Python 3.10 + numpy 1.x).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import streams
from .graph import expand
from .ir import Network, Neuron
from .runspec import RunSpec, allocate, check_input, n_steps

V_MAX = 2**23 - 1  # v saturates at +-(2**23 - 1)
U_WRAP = 2**23  # u wraps once into (-2**23, 2**23]


def rz(x: np.ndarray) -> np.ndarray:
    """``sign(x) * (|x| >> 12)``: divide by 4096 rounding toward zero (int64 in, int64 out)."""
    x = np.asarray(x, dtype=np.int64)
    return np.sign(x) * (np.abs(x) >> 12)


def wrap32(x: np.ndarray) -> np.ndarray:
    """Two's-complement wrap of int64 values to 32 bits (what int32 arithmetic does in Lava)."""
    x = np.asarray(x, dtype=np.int64)
    return ((x + 2**31) & 0xFFFFFFFF) - 2**31


def wrap_current(d: np.ndarray) -> np.ndarray:
    """One wrap into (-2**23, 2**23]: ``d - 2**24`` if ``d > 2**23``, ``d + 2**24`` if ``d <= -2**23``."""
    d = np.asarray(d, dtype=np.int64)
    return np.where(d > U_WRAP, d - 2 * U_WRAP, np.where(d <= -U_WRAP, d + 2 * U_WRAP, d))


def synaptic_sum(weight: np.ndarray, weight_fixed: np.ndarray | None, weight_exp: int, active: np.ndarray,
                 xi: np.ndarray | None) -> np.ndarray:  # fmt: skip
    """``a_p = floor(sum_{j in active} (weight_fixed[:, j] + xi[:, j] * weight[:, j]) * 2**weight_exp)``.

    ``weight`` is the projection's (target size, source size) matrix, ``active`` the indices of the source
    spikes of the projection's step; ``xi`` (size, len(active)) holds the release draws (None = every synapse
    transmits). Returns int64 values wrapped to 32 bits.
    """
    w = weight[:, active].astype(np.int64)
    if xi is not None:
        w = w * xi
    total = w.sum(axis=1)
    if weight_fixed is not None:
        total = total + weight_fixed[:, active].astype(np.int64).sum(axis=1)
    if weight_exp >= 0:
        a = total << weight_exp  # exact scaling up
    else:
        a = total >> -weight_exp  # arithmetic shift: floor, also for negative sums
    return wrap32(a)  # a_p is a 32-bit value


def synaptic_sum_q16(dev: tuple, weight_exp: int, active: np.ndarray, xi: np.ndarray | None,
                     read_z: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """:func:`synaptic_sum` for device weights (docs/devices.md). ``dev = (wq, wfq, s2w, s2f)``: realised
    weights and reliable weights as (target size, source size) matrices, int64 with 16 fractional bits, and
    per-read noise variances (mantissa units squared, float64, or None). Each read of synapse (i, j) adds
    ``rint(sqrt(xi s2w + s2f) * 2**16 * z)`` with z the stream-7 normal deviate ``read_z`` (size, J).
    ``a_p = floor(sum * 2**weight_exp / 2**16)``, wrapped to 32 bits.
    """
    wq, wfq, s2w, s2f = dev
    w = wq[:, active]
    if xi is not None:
        w = w * xi
    total = w.sum(axis=1)
    if wfq is not None:
        total = total + wfq[:, active].sum(axis=1)
    if s2w is not None and active.size:
        x = np.ones_like(w, dtype=np.float64) if xi is None else xi.astype(np.float64)
        var = x * s2w[:, active] + (0.0 if s2f is None else s2f[:, active])
        total = total + np.rint(np.sqrt(var) * 65536.0 * read_z).astype(np.int64).sum(axis=1)
    return wrap32(total >> (16 - weight_exp))  # exact int64 sum; the shift floors


def transmits(release: np.ndarray, seed: int, trial: int, sample: int, step: int, projection: int,
              active: np.ndarray) -> np.ndarray:  # fmt: skip
    """Stream-1 release draws xi (size, len(active)), int64 0/1: synapse (i, j) of the (target size, source
    size) matrix ``release`` transmits iff its byte ``<= release[i, j]`` (docs/ir.md §3)."""
    draws = streams.release_bytes(seed, trial, sample, step, projection, active, release.shape[0])  # (J, size)
    return (draws.T <= release[:, active]).astype(np.int64)


class LIFState(NamedTuple):
    u: np.ndarray  # int64, current
    v: np.ndarray  # int64, voltage


class LIFParams(NamedTuple):
    """Integer neuron parameters, per neuron (int64 arrays of the layer's size)."""

    current_decay: np.ndarray
    voltage_decay: np.ndarray
    threshold: np.ndarray
    bias: np.ndarray  # bias_mant << bias_exp
    spiking: bool  # False for a readout
    subtract: bool  # reset: v -= threshold << 6 (True) or v = 0 (False)
    escape_theta: np.ndarray | None  # escape-noise threshold table, or None for a deterministic threshold


def lif_params(neuron: Neuron, size: int) -> LIFParams:
    esc = neuron.escape_noise
    return LIFParams(
        current_decay=neuron.array("current_decay", size),
        voltage_decay=neuron.array("voltage_decay", size),
        threshold=neuron.array("threshold", size),
        bias=neuron.effective_bias(size).astype(np.int64),
        spiking=neuron.kind != "readout",
        subtract=neuron.reset == "subtract",
        escape_theta=None if esc is None else streams.escape_thresholds(esc.scale),
    )


def lif_step(
    a: np.ndarray, state: LIFState, p: LIFParams, escape_u: np.ndarray | None = None
) -> tuple[np.ndarray, LIFState]:
    """One step of the fixed-point LIF neuron: ``(a, (u, v), params) -> (spikes, (u, v))``.

    ``a`` is the layer's synaptic input (the sum of its projections' a_p); ``escape_u`` holds the stream-2
    uniforms of this step (needed only with escape noise).
    """
    act = wrap32(wrap32(a) << 6)  # a << 6 in 32-bit arithmetic (MSB alignment of the input)
    d = wrap32(rz(state.u * (4096 - p.current_decay)) + act)  # the int32 sum of step 2
    u = wrap_current(d)
    v = rz(state.v * (4096 - p.voltage_decay)) + u + p.bias
    v = np.clip(v, -V_MAX, V_MAX)  # 24-bit saturation
    th = p.threshold << 6  # MSB alignment of the threshold
    if not p.spiking:
        s = np.zeros(v.shape, dtype=bool)
    elif p.escape_theta is None:
        s = v > th  # strict threshold
    else:
        s = (v - th) > p.escape_theta[escape_u]  # P(s) ~= sigmoid(x / scale)
    v = np.where(s, v - th, v) if p.subtract else np.where(s, 0, v)  # reset v (u is not reset)
    return s, LIFState(u=u, v=v)


def run_sample(
    net: Network, x: np.ndarray, steps: int, seed: int, trial: int, sample: int,
    device_weights: list[tuple] | None = None,
) -> list[dict[str, np.ndarray]]:
    """Simulate one sample: ``x`` is (T_in, input size) of 0/1. Returns, per layer, spikes/u/v of shape
    (steps, size). ``device_weights``: per projection the device's (wq, wfq, s2w, s2f) of the stored shape
    (see :func:`synaptic_sum_q16`)."""
    params = [lif_params(layer.neuron, layer.size) for layer in net.layers]
    state = [LIFState(np.zeros(layer.size, np.int64), np.zeros(layer.size, np.int64)) for layer in net.layers]
    rec = [
        {q: np.zeros((steps, layer.size), dtype=np.int64) for q in ("spikes", "u", "v")} for layer in net.layers
    ]
    # every projection as its (target size, source size) matrix
    mats = []
    for pi, p in enumerate(net.projections):
        syn = p.synapse
        dev = None
        if device_weights is not None:
            dev = tuple(expand(net, p, a) for a in device_weights[pi])
        mats.append((expand(net, p, syn.weight), expand(net, p, syn.weight_fixed),
                     expand(net, p, syn.release, fill=255), dev))  # fmt: skip
    src_index = [net.layer_index(p.source) for p in net.projections]

    def spikes_of(src: int, step: int) -> np.ndarray:
        """The spikes of ``src`` (-1: the input) at ``step``; none before step 0 or past the input."""
        if src < 0:
            return x[step].astype(bool) if 0 <= step < x.shape[0] else np.zeros(net.input_size, bool)
        return rec[src]["spikes"][step].astype(bool) if step >= 0 else np.zeros(net.layers[src].size, bool)

    for t in range(steps):
        for li, layer in enumerate(net.layers):
            a = np.zeros(layer.size, np.int64)
            for pi, p in net.projections_into(li):
                w, wf, rel, dev = mats[pi]
                active = np.flatnonzero(spikes_of(src_index[pi], t - 1 - p.delay))
                xi = None
                if p.synapse.release is not None and active.size:
                    xi = transmits(rel, seed, trial, sample, t, pi, active)
                if dev is None:
                    a_p = synaptic_sum(w, wf, p.synapse.weight_exp, active, xi)
                else:
                    z = None
                    if dev[2] is not None and active.size:  # per-read noise, stream 7
                        z = streams.normal_table()[streams.read_lanes(seed, trial, sample, t, pi, active, layer.size)].T
                    a_p = synaptic_sum_q16(dev, p.synapse.weight_exp, active, xi, z)
                a = wrap32(a + a_p)  # a = sum_p a_p in 32-bit arithmetic
            esc_u = None
            if params[li].escape_theta is not None:
                esc_u = streams.escape_uniforms(seed, trial, sample, t, li, layer.size)
            s, state[li] = lif_step(a, state[li], params[li], esc_u)
            rec[li]["spikes"][t] = s
            rec[li]["u"][t] = state[li].u
            rec[li]["v"][t] = state[li].v
    return rec


def simulate(net: Network, spikes: np.ndarray, spec: RunSpec | None = None, *, sample_offset: int = 0,
             device_weights: object = None, **kwargs: object) -> dict[str, np.ndarray]:
    """Run ``spikes`` (n_samples, T_in, input size or *input shape) through ``net``; outputs as in
    :mod:`.runspec`.

    ``spec`` or keyword arguments (steps, seed, trials, record, layers) select what to run and record.
    ``sample_offset`` is the index of ``spikes[0]`` in the whole input (it selects the random streams).
    ``device_weights(seed, trial)``, if given, returns per projection the device's realised weights and
    read-noise variances (``quantal.hwsim.devices.layer_weights``); they replace the mantissas.
    """
    spec = spec if spec is not None else RunSpec(**kwargs)  # type: ignore[arg-type]
    x = check_input(spikes, net)
    steps = n_steps(spec, x)
    out = allocate(net, x.shape[0], steps, spec)
    recorded = spec.layer_indices(net)
    for r in range(spec.n_trials()):
        dw = None if device_weights is None else device_weights(spec.seed, r)  # type: ignore[operator]
        for n in range(x.shape[0]):
            rec = run_sample(net, x[n], steps, spec.seed, r, sample_offset + n, dw)
            for li in recorded:
                layer = net.layers[li]
                for q in spec.record:
                    if q == "counts":
                        val = rec[li]["v"][-1] if layer.neuron.kind == "readout" else rec[li]["spikes"].sum(0)
                        dst = out[f"{layer.name}.counts"]
                        (dst[r] if spec.trials is not None else dst)[n] = val
                    else:
                        dst = out[f"{layer.name}.{q}"]
                        (dst[r] if spec.trials is not None else dst)[n] = rec[li][q]
    return out
