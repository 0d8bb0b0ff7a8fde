"""The reference semantics of IR v1 in plain numpy, written for clarity rather than speed.

This executor is the oracle that the Numba simulator (``quantal.hwsim``), the fixed-point trainer and the
Lava processes are tested against bit for bit. It follows docs/ir.md line by line: per sample, per step,
per layer in order. Needs only numpy (it runs in the Lava venv, Python 3.10 + numpy 1.x).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import streams
from .ir import Layer, Network, Neuron
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


def synaptic_input_q16(layer: Layer, active: np.ndarray, xi: np.ndarray | None, dev: tuple,
                      read_z: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """``synaptic_input`` for device weights (docs/devices.md). ``dev = (wq, wfq, s2w, s2f)``: realised weights
    and reliable weights, int64 with 16 fractional bits, and per-read noise variances (mantissa units squared,
    float64, or None). Each read of synapse (i, j) adds ``rint(sqrt(xi s2w + s2f) * 2**16 * z)`` with z the
    stream-7 normal deviate ``read_z`` (size, J). ``a = floor(sum * 2**weight_exp / 2**16)``, wrapped to 32 bits.
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
    return wrap32(total >> (16 - layer.synapse.weight_exp))  # exact int64 sum; the shift floors


def synaptic_sum(weight: np.ndarray, weight_fixed: np.ndarray | None, weight_exp: int, active: np.ndarray,
                 xi: np.ndarray | None) -> np.ndarray:  # fmt: skip
    """``a = floor(sum_{j in active} (weight_fixed[:, j] + xi[:, j] * weight[:, j]) * 2**weight_exp)``.

    ``active`` holds the indices of the input spikes of step t-1; ``xi`` (size, len(active)) holds the
    release draws (None = every synapse transmits). Returns int64 values wrapped to 32 bits.
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
    return wrap32(a)  # a is a 32-bit value


def synaptic_input(layer: Layer, active: np.ndarray, xi: np.ndarray | None) -> np.ndarray:
    """:func:`synaptic_sum` of a layer's synapse."""
    syn = layer.synapse
    return synaptic_sum(syn.weight, syn.weight_fixed, syn.weight_exp, active, xi)


def transmits(release: np.ndarray, seed: int, trial: int, sample: int, step: int, layer: int,
              active: np.ndarray) -> np.ndarray:  # fmt: skip
    """Stream-1 release draws xi (size, len(active)), int64 0/1: synapse (i, j) transmits iff its byte
    ``<= release[i, j]`` (docs/ir.md §3)."""
    draws = streams.release_bytes(seed, trial, sample, step, layer, active, release.shape[0])  # (J, size)
    return (draws.T <= release[:, active]).astype(np.int64)


class LIFState(NamedTuple):
    u: np.ndarray  # int64, current
    v: np.ndarray  # int64, voltage


class LIFParams(NamedTuple):
    current_decay: int
    voltage_decay: int
    threshold: int
    bias: np.ndarray  # bias_mant << bias_exp, per neuron
    spiking: bool  # False for a readout
    escape_theta: np.ndarray | None  # escape-noise threshold table, or None for a deterministic threshold


def lif_params(neuron: Neuron, size: int) -> LIFParams:
    esc = neuron.escape_noise
    return LIFParams(
        current_decay=neuron.current_decay,
        voltage_decay=neuron.voltage_decay,
        threshold=neuron.threshold,
        bias=neuron.effective_bias(size).astype(np.int64),
        spiking=neuron.kind != "readout",
        escape_theta=None if esc is None else streams.escape_thresholds(esc.scale),
    )


def lif_step(
    a: np.ndarray, state: LIFState, p: LIFParams, escape_u: np.ndarray | None = None
) -> tuple[np.ndarray, LIFState]:
    """One step of the fixed-point LIF neuron: ``(a, (u, v), params) -> (spikes, (u, v))``.

    ``escape_u`` holds the stream-2 uniforms of this step (needed only with escape noise).
    """
    act = wrap32(wrap32(a) << 6)  # a << 6 in 32-bit arithmetic (MSB alignment of the input)
    d = wrap32(rz(state.u * (4096 - p.current_decay)) + act)  # the int32 sum of step 2
    u = wrap_current(d)
    v = rz(state.v * (4096 - p.voltage_decay)) + u + p.bias
    v = np.clip(v, -V_MAX, V_MAX)  # 24-bit saturation
    if not p.spiking:
        s = np.zeros(v.shape, dtype=bool)
    elif p.escape_theta is None:
        s = v > (p.threshold << 6)  # strict threshold
    else:
        s = (v - (p.threshold << 6)) > p.escape_theta[escape_u]  # P(s) ~= sigmoid(x / scale)
    v = np.where(s, 0, v)  # reset v (u is not reset)
    return s, LIFState(u=u, v=v)


def run_sample(
    net: Network, x: np.ndarray, steps: int, seed: int, trial: int, sample: int,
    device_weights: list[tuple] | None = None,
) -> list[dict[str, np.ndarray]]:
    """Simulate one sample: ``x`` is (T_in, input.size) of 0/1. Returns, per layer, spikes/u/v of shape
    (steps, size). ``device_weights``: per layer the device's (wq, wfq, s2w, s2f), see synaptic_input_q16."""
    params = [lif_params(layer.neuron, layer.size) for layer in net.layers]
    state = [LIFState(np.zeros(layer.size, np.int64), np.zeros(layer.size, np.int64)) for layer in net.layers]
    prev = [np.zeros(layer.size, dtype=bool) for layer in net.layers]  # spikes of step t-1
    rec = [
        {q: np.zeros((steps, layer.size), dtype=np.int64) for q in ("spikes", "u", "v")} for layer in net.layers
    ]
    for t in range(steps):
        cur = []
        for li, layer in enumerate(net.layers):
            # The layer's input spikes of step t-1 (the run's input for layer 0, none at t = 0).
            if li == 0:
                src = x[t - 1].astype(bool) if 1 <= t <= x.shape[0] else np.zeros(net.input_size, bool)
            else:
                src = prev[li - 1]
            active = np.flatnonzero(src)
            xi = None
            if layer.synapse.release is not None and active.size:
                xi = transmits(layer.synapse.release, seed, trial, sample, t, li, active)
            if device_weights is None:
                a = synaptic_input(layer, active, xi)
            else:
                z = None
                if device_weights[li][2] is not None and active.size:  # per-read noise, stream 7
                    z = streams.normal_table()[streams.read_lanes(seed, trial, sample, t, li, active, layer.size)].T
                a = synaptic_input_q16(layer, active, xi, device_weights[li], z)
            esc_u = None
            if params[li].escape_theta is not None:
                esc_u = streams.escape_uniforms(seed, trial, sample, t, li, layer.size)
            s, state[li] = lif_step(a, state[li], params[li], esc_u)
            cur.append(s)
            rec[li]["spikes"][t] = s
            rec[li]["u"][t] = state[li].u
            rec[li]["v"][t] = state[li].v
        prev = cur
    return rec


def simulate(net: Network, spikes: np.ndarray, spec: RunSpec | None = None, *, sample_offset: int = 0,
             device_weights: object = None, **kwargs: object) -> dict[str, np.ndarray]:
    """Run ``spikes`` (n_samples, T_in, input.size) through ``net``; outputs as in :mod:`.runspec`.

    ``spec`` or keyword arguments (steps, seed, trials, record, layers) select what to run and record.
    ``sample_offset`` is the index of ``spikes[0]`` in the whole input (it selects the random streams).
    ``device_weights(seed, trial)``, if given, returns per layer the device's realised weights and read-noise
    variances (``quantal.hwsim.devices.layer_weights``); they replace the mantissas.
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
