"""The hwsim engine: validates, flattens a network for the Numba kernels, allocates and runs.

:class:`Simulator` prepares a network once (transposed weights so that an active input touches one
contiguous column, escape-noise tables, recording offsets) and runs any number of inputs through it;
:func:`simulate` is the one-call form with the same signature as :func:`quantal.compile.reference.simulate`.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from quantal.compile import streams
from quantal.compile.ir import Network
from quantal.compile.runspec import DTYPES, RunError, RunSpec, allocate, check_input, n_steps

from . import kernels
from .devices import DeviceSpec, layer_weights

# The int32 accumulator of the kernels cannot overflow while n_in * 2 * 127 < 2**31.
MAX_FAN_IN = (2**31 - 1) // 254


class Simulator:
    """A network prepared for the Numba kernels. Immutable after construction; thread-safe to call."""

    def __init__(self, net: Network, device: DeviceSpec | None = None) -> None:
        if device is not None and not isinstance(device, DeviceSpec):
            raise TypeError(f"device must be a DeviceSpec (quantal.hwsim.devices), got {type(device).__name__}")
        self.device = device
        if not isinstance(net, Network):
            raise TypeError(f"Simulator expects a Network, got {type(net).__name__}")
        if sys.byteorder != "little":  # pragma: no cover - all supported platforms are little-endian
            raise RuntimeError("hwsim reads random bytes through a uint8 view and needs a little-endian CPU")
        self.net = net
        L = len(net.layers)
        i64 = np.int64
        self.size = np.array([la.size for la in net.layers], i64)
        self.n_in = np.array([la.n_in for la in net.layers], i64)
        if int(self.n_in.max()) > MAX_FAN_IN:
            raise RunError(f"hwsim supports a fan-in of at most {MAX_FAN_IN} inputs per layer")
        self.wexp = np.array([la.synapse.weight_exp for la in net.layers], i64)
        self.cdecay = np.array([la.neuron.current_decay for la in net.layers], i64)
        self.vdecay = np.array([la.neuron.voltage_decay for la in net.layers], i64)
        self.vth = np.array([la.neuron.threshold for la in net.layers], i64)
        self.spiking = np.array([la.neuron.kind != "readout" for la in net.layers], np.bool_)
        self.nrn_off = np.concatenate([[0], np.cumsum(self.size)[:-1]]).astype(i64)
        bias = np.concatenate([la.neuron.effective_bias(la.size) for la in net.layers]).astype(i64)
        self.biasf = bias.astype(np.float64)
        self.bias_zero = np.array([not bias[o : o + s].any() for o, s in zip(self.nrn_off, self.size)], np.bool_)
        self.scale_w = np.ldexp(1.0, self.wexp.astype(np.int32))  # 2**weight_exp, exact

        def flat(get, dtype: type) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            present = np.zeros(L, np.bool_)
            offs = np.zeros(L, i64)
            parts, pos = [], 0
            for li, la in enumerate(net.layers):
                a = get(la)
                if a is None:
                    continue
                present[li] = True
                offs[li] = pos
                parts.append(np.ascontiguousarray(a.T).ravel())  # (n_in, size): one column per input
                pos += a.size
            data = np.concatenate(parts).astype(dtype) if parts else np.zeros(1, dtype)
            return present, offs, data

        _, self.w_off, self.wT = flat(lambda la: la.synapse.weight, np.int8)
        # A release array of all 255 transmits always: skip its random draws (same result, less work).
        self.has_rel, self.rel_off, self.relT = flat(
            lambda la: la.synapse.release if la.synapse.stochastic else None, np.uint8
        )
        self.has_fix, self.fix_off, self.wfT = flat(lambda la: la.synapse.weight_fixed, np.int8)
        # Largest |weight| + |weight_fixed| per layer: bounds a step's sum by (active inputs) * wmax.
        def absmax(a: np.ndarray | None) -> int:
            return 0 if a is None else int(np.abs(a.astype(i64)).max(initial=0))

        self.wmax = np.array([absmax(la.synapse.weight) + absmax(la.synapse.weight_fixed) for la in net.layers], i64)
        # Layers whose worst case |a << 6| = max_i sum_j (|w| + |wf|) * 2**weight_exp * 64 is <= 2**24 never
        # wrap a 32-bit value (kernels._current_small): they take the shorter update.
        self.small = np.array([la.worst_case_input() <= 2**24 for la in net.layers], np.bool_)
        tables, self.esc = [], np.full(L, -1, i64)
        for li, la in enumerate(net.layers):
            if la.neuron.escape_noise is not None:
                self.esc[li] = len(tables)
                tables.append(streams.escape_thresholds(la.neuron.escape_noise.scale).astype(np.float64))
        self.esc_tab = np.stack(tables) if tables else np.zeros((1, streams.ESCAPE_LEVELS), np.float64)

    def device_weights(self, seed: int, trial: int) -> tuple[np.ndarray, ...]:
        """The device's realised weights and reliable weights for (seed, trial) (int64, 16 fractional bits),
        their per-read noise variances (float64), transposed and concatenated like ``wT`` (one column per
        input), and which layers have read noise."""
        nf = max(self.wfT.size, 1)
        wq, wfq = np.zeros(self.wT.shape, np.int64), np.zeros(nf, np.int64)
        s2w, s2f = np.zeros(self.wT.shape, np.float64), np.zeros(nf, np.float64)
        noise = np.zeros(len(self.net.layers), np.bool_)
        for li, (w, f, vw, vf) in enumerate(layer_weights(self.device, self.net, seed, trial)):  # type: ignore[arg-type]
            cols = slice(self.w_off[li], self.w_off[li] + w.size)
            wq[cols] = np.ascontiguousarray(w.T).ravel()
            if vw is not None:
                noise[li] = True
                s2w[cols] = np.ascontiguousarray(vw.T).ravel()
            if f is not None:
                fcols = slice(self.fix_off[li], self.fix_off[li] + f.size)
                wfq[fcols] = np.ascontiguousarray(f.T).ravel()
                if vf is not None:
                    s2f[fcols] = np.ascontiguousarray(vf.T).ravel()
        return wq, wfq, s2w, s2f, noise

    def run(
        self,
        spikes: np.ndarray,
        spec: RunSpec | None = None,
        *,
        sample_offset: int = 0,
        batch_size: int = 4096,
        progress: bool = False,
        trial_offset: int = 0,
        **kwargs: object,
    ) -> dict[str, np.ndarray]:
        """Run ``spikes`` (n_samples, T_in, input.size) and return the recorded arrays (see runspec).

        Samples go to the kernel in batches of ``batch_size`` (which bounds the working memory; results do
        not depend on it); ``progress`` shows a progress bar over samples x trials on stderr. ``trial_offset``
        shifts the trial indices (trial k of the output uses the random streams of trial ``trial_offset + k``),
        so a trial can be run on its own, as sweeps do.
        """
        spec = spec if spec is not None else RunSpec(**kwargs)  # type: ignore[arg-type]
        net = self.net
        x = check_input(spikes, net)
        if not isinstance(sample_offset, (int, np.integer)) or sample_offset < 0:
            raise RunError(f"sample_offset must be a non-negative integer, got {sample_offset!r}")
        if not isinstance(trial_offset, (int, np.integer)) or trial_offset < 0:
            raise RunError(f"trial_offset must be a non-negative integer, got {trial_offset!r}")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise RunError(f"batch_size must be a positive integer, got {batch_size!r}")
        steps = n_steps(spec, x)
        out = allocate(net, x.shape[0], steps, spec)
        n = x.shape[0]
        L = len(net.layers)
        recorded = spec.layer_indices(net)
        offs = {q: np.full(L, -1, np.int64) for q in ("spikes", "u", "v", "counts")}
        widths = dict.fromkeys(offs, 0)
        for q in spec.record:
            for li in recorded:
                offs[q][li] = widths[q]
                widths[q] += net.layers[li].size
        threads = max(1, _num_threads())
        from tqdm.auto import tqdm

        dev = self.device is not None
        qshift = (16 - self.wexp).astype(np.int64)  # device path: a = sum_q16 >> (16 - weight_exp)
        small = np.zeros_like(self.small) if dev else self.small  # device weights can exceed the int8 worst case
        wq = wfq = np.zeros(1, np.int64)
        s2w = s2f = np.zeros(1, np.float64)
        noise = np.zeros(L, np.bool_)
        ntab = streams.normal_table() if dev else np.zeros(1, np.float64)
        with tqdm(total=spec.n_trials() * n, unit="sample", disable=not progress, leave=False) as bar:
            for r in range(spec.n_trials()):
                rt = trial_offset + r  # the trial index of the random streams
                if dev:  # static device effects: drawn once per (seed, trial)
                    wq, wfq, s2w, s2f, noise = self.device_weights(spec.seed, rt)
                for b0 in range(0, n, batch_size):
                    b1 = min(n, b0 + batch_size)
                    # Concatenated per-quantity buffers of the batch (one column block per recorded layer);
                    # an unrecorded quantity gets an empty array of the right rank.
                    buf = {
                        q: np.zeros(((b1 - b0, widths[q]) if q == "counts" else (b1 - b0, steps, widths[q]))
                                    if q in spec.record else ((0, 0) if q == "counts" else (0, 0, 0)), DTYPES[q])
                        for q in offs
                    }  # fmt: skip
                    chunk = max(1, -(-(b1 - b0) // (threads * 8)))
                    kernels.run_kernel(
                        x[b0:b1], steps, np.uint64(spec.seed), rt, sample_offset + b0, chunk,
                        self.size, self.w_off, self.wT, self.wmax,
                        self.has_rel, self.rel_off, self.relT, self.has_fix, self.fix_off, self.wfT,
                        self.cdecay, self.vdecay, self.vth, self.spiking, self.nrn_off, self.biasf, self.bias_zero,
                        self.esc, self.esc_tab, self.scale_w, small,
                        offs["spikes"], offs["u"], offs["v"], offs["counts"],
                        buf["spikes"], buf["u"], buf["v"], buf["counts"],
                        dev, wq, wfq, qshift, noise, s2w, s2f, ntab,
                    )  # fmt: skip
                    for q in spec.record:
                        for li in recorded:
                            la = net.layers[li]
                            dst = out[f"{la.name}.{q}"]
                            dst = dst[r] if spec.trials is not None else dst
                            dst[b0:b1] = buf[q][..., offs[q][li] : offs[q][li] + la.size]
                    bar.update(b1 - b0)
        return out


def _num_threads() -> int:
    try:
        import numba

        return int(numba.get_num_threads())
    except Exception:  # pragma: no cover
        return os.cpu_count() or 1


def simulate(
    net: Network, spikes: np.ndarray, spec: RunSpec | None = None, *, sample_offset: int = 0,
    device: DeviceSpec | None = None, **kwargs: object
) -> dict[str, np.ndarray]:
    """Run ``spikes`` through ``net`` on the Numba engine (same arguments and outputs as the reference);
    ``device`` simulates the weights on a device model (docs/devices.md)."""
    return Simulator(net, device).run(spikes, spec, sample_offset=sample_offset, **kwargs)
