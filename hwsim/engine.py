"""The hwsim engine: validates, flattens a network for the Numba kernels, allocates and runs.

:class:`Simulator` prepares a network once (transposed weights so that an active input touches one
contiguous column, escape-noise tables, recording offsets) and runs any number of inputs through it;
:func:`simulate` is the one-call form with the same signature as :func:`quantal.compile.reference.simulate`.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from quantal.compile import streams
from quantal.compile.graph import conv2d_taps
from quantal.compile.ir import Conv2dSynapse, Network
from quantal.compile.runspec import DTYPES, RunError, RunSpec, allocate, check_input, n_steps

from . import kernels
from .devices import DeviceSpec, layer_weights
from .simd import codegen_isa

# The vector instruction set the kernels are compiled for (reported by the benchmarks; the results do not
# depend on it)
ISA = codegen_isa()

# The int32 accumulator of the kernels cannot overflow while (source size) * 2 * 127 < 2**31.
MAX_FAN_IN = (2**31 - 1) // 254


def aligned_zeros(n: int, dtype: type = np.float64) -> np.ndarray:
    """n zeros of ``dtype`` starting on a 64-byte boundary (numpy's own arrays may start 16 or 48 bytes past one,
    where every 64-byte vector load of them straddles two cache lines)."""
    item = np.dtype(dtype).itemsize
    raw = np.zeros(n * item + 64, np.uint8)
    skip = (-raw.ctypes.data) % 64
    return raw[skip : skip + n * item].view(dtype)


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
        L, P = len(net.layers), len(net.projections)
        i64 = np.int64
        # ---- layers
        self.size = np.array([la.size for la in net.layers], i64)
        self.nrn_off = np.concatenate([[0], np.cumsum(self.size)[:-1]]).astype(i64)
        per = {f: np.concatenate([la.neuron.array(f, la.size) for la in net.layers])
               for f in ("current_decay", "voltage_decay", "threshold")}  # fmt: skip
        self.dcf = (4096 - per["current_decay"]).astype(np.float64)
        self.dvf = (4096 - per["voltage_decay"]).astype(np.float64)
        self.thf = (per["threshold"] << 6).astype(np.float64)  # v > threshold << 6 spikes (MSB alignment)
        bias = np.concatenate([la.neuron.effective_bias(la.size) for la in net.layers]).astype(i64)
        self.biasf = bias.astype(np.float64)
        # the same as int32 for the integer update of layers that cannot wrap (simd.lif_sub_lanes)
        # (+ kernels.LANES elements of slack: the vector updates read whole vectors past a layer, simd.lif_sub_lanes)
        slack = np.zeros(kernels.LANES, i64)
        self.dci = np.concatenate([4096 - per["current_decay"], slack]).astype(np.int32)
        self.dvi = np.concatenate([4096 - per["voltage_decay"], slack]).astype(np.int32)
        self.thi = np.concatenate([per["threshold"] << 6, slack]).astype(np.int32)  # threshold <= 131071: < 2**23
        self.biasi = np.concatenate([bias, slack]).astype(np.int32)  # |bias_mant << bias_exp| < 2**19
        self.bias_zero = np.array([not bias[o : o + s].any() for o, s in zip(self.nrn_off, self.size)], np.bool_)
        # memoryless layers: every neuron forgets u and v in one step (current and voltage decay 4096)
        self.forget = np.array([not (self.dcf[o : o + s].any() or self.dvf[o : o + s].any())
                                for o, s in zip(self.nrn_off, self.size)], np.bool_)  # fmt: skip
        self.spiking = np.array([la.neuron.kind != "readout" for la in net.layers], np.bool_)
        self.subtract = np.array([la.neuron.reset == "subtract" for la in net.layers], np.bool_)
        # Layers whose worst case |a << 6| (summed over their projections) is <= 2**24 never wrap a 32-bit
        # value: they take the int32 update (simd.lif_sub_lanes); the others the float64 one with the wraps.
        self.small = np.array([net.worst_case_input(li) <= 2**24 for li in range(L)], np.bool_)
        # integrate-and-fire layers (every neuron: current decay 4096, voltage decay 0) skip the decay products
        self.integ = np.array([not self.dci[o : o + s].any() and bool((self.dvi[o : o + s] == 4096).all())
                               for o, s in zip(self.nrn_off, self.size)], np.bool_)  # fmt: skip
        tables, self.esc = [], np.full(L, -1, i64)
        for li, la in enumerate(net.layers):
            if la.neuron.escape_noise is not None:
                self.esc[li] = len(tables)
                tables.append(streams.escape_thresholds(la.neuron.escape_noise.scale).astype(np.float64))
        self.esc_tab = np.stack(tables) if tables else np.zeros((1, streams.ESCAPE_LEVELS), np.float64)
        self.esc_int = self.esc_tab.astype(np.int64)  # integers below 2**36 (exact in float64)
        # ---- projections, grouped by target
        order = sorted(range(P), key=lambda pi: net.layer_index(net.projections[pi].target))
        self.tp_list = np.array(order, i64) if order else np.zeros(0, i64)
        counts = np.bincount([net.layer_index(p.target) for p in net.projections], minlength=L)
        self.tp_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(i64)
        self.psrc = np.array([net.layer_index(p.source) for p in net.projections], i64)
        self.pdelay = np.array([p.delay for p in net.projections], i64)
        self.pkind = np.array([0 if p.kind == "dense" else 1 for p in net.projections], i64)
        self.geo = np.zeros((max(P, 1), len(kernels.GEO)), i64)
        for pi, p in enumerate(net.projections):
            n_src = int(np.prod(net.source_shape(p)))
            if n_src > MAX_FAN_IN:
                raise RunError(f"projection '{p.name}': hwsim supports at most {MAX_FAN_IN} source neurons")
            if isinstance(p.synapse, Conv2dSynapse):
                syn = p.synapse
                if syn.weight.size >= 2**31:  # the packed tap table holds kernel offsets in 31 bits
                    raise RunError(f"projection '{p.name}': hwsim supports conv2d kernels of fewer than 2**31 "
                                   "elements")  # fmt: skip
                c_in, h_in, w_in = net.source_shape(p)
                c_out, h_out, w_out = net.layer(p.target).shape
                self.geo[pi] = (c_in, h_in, w_in, c_out, h_out, w_out, *syn.kernel, *syn.stride, *syn.padding,
                                *syn.dilation, c_in // syn.groups, c_out // syn.groups)  # fmt: skip
        self.tab_off, self.t_ptr, self.t_out, self.t_tap, self.t_pk = _tap_tables(net)
        self.wexp = np.array([p.synapse.weight_exp for p in net.projections], i64)
        self.scale_w = np.ldexp(1.0, self.wexp.astype(np.int32))  # 2**weight_exp, exact
        self.qshift = (16 - self.wexp).astype(i64)  # device path: a_p = sum_q16 >> (16 - weight_exp)
        self.has_rel, self.rel_off, self.rel, self.rel_col = self._release()
        _, self.w_off, self.w = self._flat(lambda p: p.synapse.weight, np.int8)
        self.has_fix, self.fix_off, self.wfx = self._flat(lambda p: p.synapse.weight_fixed, np.int8)

        # Largest |weight| + |weight_fixed| per projection: bounds a step's sum by (active inputs) * wmax.
        def absmax(a: np.ndarray | None) -> int:
            return 0 if a is None else int(np.abs(a.astype(i64)).max(initial=0))

        self.wmax = np.array([absmax(p.synapse.weight) + absmax(p.synapse.weight_fixed) for p in net.projections], i64)

    def _release(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The release bytes in the layout of :meth:`_flat` (a projection whose releases are all 255 always
        transmits: no table, no draws), and each projection's release column stride: a dense projection whose
        synapses all have one release byte (one probability per layer, as blank-out networks usually have) stores
        a single column that every input reads (stride 0), which halves the memory its stochastic accumulation
        reads; otherwise the stride is its size."""
        P = len(self.net.projections)
        col = np.zeros(max(P, 1), np.int64)
        arrays: list[np.ndarray | None] = []
        for pi, p in enumerate(self.net.projections):
            r = p.synapse.release if p.synapse.stochastic else None
            if r is not None and p.kind == "dense":
                r = np.asarray(r)
                col[pi] = kernels.col_stride(r.shape[0])
                if (r == r.flat[0]).all():
                    r, col[pi] = r[:, :1], 0
            arrays.append(r)
        present, offs, data = self._flat(None, np.uint8, arrays)
        return present, offs, data, col

    def _flat(self, get: Any, dtype: type, arrays: list | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Concatenate one per-synapse array of every projection in the kernels' layout (dense transposed to
        (source, target), each column ``kernels.col_stride(size)`` elements long, zeros past the last target;
        conv2d kernels as (C_in/g, kh, kw, C_out)): (present, offsets, data). Each projection starts at a multiple
        of 64 elements of a 64-byte aligned array, so that dense columns start on vector-block boundaries."""
        P = len(self.net.projections)
        present, offs = np.zeros(max(P, 1), np.bool_), np.zeros(max(P, 1), np.int64)
        parts, pos = [], 0
        for pi, p in enumerate(self.net.projections):
            a = get(p) if arrays is None else arrays[pi]
            if a is None:
                continue
            present[pi] = True
            pos = -(-pos // 64) * 64
            offs[pi] = pos
            a = np.asarray(a)
            if a.ndim == 2:  # one contiguous column per input
                flat = np.zeros((a.shape[1], kernels.col_stride(a.shape[0])), a.dtype)
                flat[:, : a.shape[0]] = a.T
            else:  # one contiguous run of output channels per kernel tap
                flat = np.ascontiguousarray(a.transpose(1, 2, 3, 0))
            parts.append((pos, flat.ravel()))
            pos += flat.size
        # kernels.PAD trailing zeros: the dense kernels read whole vectors past a column's last target
        data = aligned_zeros(pos + kernels.PAD, dtype)
        for at, part in parts:
            data[at : at + part.size] = part
        return present, offs, data

    def device_weights(self, seed: int, trial: int) -> tuple[np.ndarray, ...]:
        """The device's realised weights and reliable weights for (seed, trial) (int64, 16 fractional bits),
        their per-read noise variances (float64), in the layout of ``w`` (and ``wfx``), and which projections
        have read noise."""
        arrays = layer_weights(self.device, self.net, seed, trial)  # type: ignore[arg-type]
        wq = self._flat(None, np.int64, [w for w, _, _, _ in arrays])[2]
        wfq = self._flat(None, np.int64, [f for _, f, _, _ in arrays])[2]
        # variances in the same layouts; a projection without read noise gets zeros (and is skipped)
        noise = np.array([vw is not None for _, _, vw, _ in arrays] or [False], np.bool_)
        s2w = self._flat(None, np.float64, [np.zeros(w.shape) if vw is None else vw for w, _, vw, _ in arrays])[2]
        s2f = self._flat(None, np.float64, [None if f is None else (np.zeros(f.shape) if vf is None else vf)
                                            for _, f, _, vf in arrays])[2]  # fmt: skip
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
        """Run ``spikes`` (n_samples, T_in, input size or *input shape) and return the recorded arrays (see runspec).

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
        w, wfx = self.w, self.wfx
        s2w = s2f = np.zeros(1, np.float64)
        noise = np.zeros(max(len(net.projections), 1), np.bool_)
        ntab = streams.normal_table() if dev else np.zeros(1, np.float64)
        with tqdm(total=spec.n_trials() * n, unit="sample", disable=not progress, leave=False) as bar:
            for r in range(spec.n_trials()):
                rt = trial_offset + r  # the trial index of the random streams
                if dev:  # static device effects: drawn once per (seed, trial)
                    w, wfx, s2w, s2f, noise = self.device_weights(spec.seed, rt)
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
                        self.size, self.nrn_off, self.dcf, self.dvf, self.thf, self.biasf, self.spiking,
                        self.subtract, self.esc, self.esc_tab, self.bias_zero, self.forget,
                        self.small & (not dev), self.integ,
                        self.tp_ptr, self.tp_list, self.psrc, self.pdelay, self.pkind, self.geo,
                        self.tab_off, self.t_ptr, self.t_out, self.t_tap, self.t_pk,
                        self.w_off, w, self.wmax, self.has_rel, self.rel_off, self.rel, self.rel_col, self.has_fix,
                        self.fix_off,
                        wfx, self.scale_w, self.qshift, dev, noise, s2w, s2f, ntab,
                        offs["spikes"], offs["u"], offs["v"], offs["counts"],
                        buf["spikes"], buf["u"], buf["v"], buf["counts"],
                        self.dci, self.dvi, self.thi, self.biasi, self.esc_int, self.wexp,
                    )  # fmt: skip
                    for q in spec.record:
                        for li in recorded:
                            la = net.layers[li]
                            dst = out[f"{la.name}.{q}"]
                            dst = dst[r] if spec.trials is not None else dst
                            dst[b0:b1] = buf[q][..., offs[q][li] : offs[q][li] + la.size]
                    bar.update(b1 - b0)
        return out


def _tap_tables(net: Network) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per conv2d projection, which output position each source position reaches through which kernel tap
    (:func:`quantal.compile.graph.conv2d_taps`): position q reaches ``out[r]`` through tap ``tap[r]`` for r in
    ``ptr[off[p] + q] .. ptr[off[p] + q + 1]``. The kernels read it instead of dividing by the stride for every
    tap of every spike; it holds the geometry only, not the (target, source) matrix. The fifth table packs each
    entry's offsets into the channel-last sums and the kernel, ``out[r] C_out | tap[r] C_out << 32`` (C_out the
    projection's output channels; both below 2**31: layers have at most 2**24 neurons and kernels fewer than 2**31
    elements, which Simulator checks), which the deterministic accumulation reads with one load per tap."""
    P = len(net.projections)
    off = np.zeros(max(P, 1), np.int64)
    ptrs, outs, taps, pks, n_ptr, n_links = [], [], [], [], 0, 0
    for pi, p in enumerate(net.projections):
        off[pi] = n_ptr
        if not isinstance(p.synapse, Conv2dSynapse):
            continue
        _, h, w = net.source_shape(p)
        q, o, t = conv2d_taps(p.synapse, net.source_shape(p), net.layer(p.target).shape)
        c_out = np.int64(net.layer(p.target).shape[0])
        ptrs.append(n_links + np.searchsorted(q, np.arange(h * w + 1)))
        outs.append(o)
        taps.append(t)
        pks.append(o.astype(np.int64) * c_out | (t.astype(np.int64) * c_out) << 32)
        n_ptr += h * w + 1
        n_links += len(o)
    cat = lambda parts: np.concatenate(parts).astype(np.int64) if parts else np.zeros(1, np.int64)  # noqa: E731
    return off, cat(ptrs), cat(outs), cat(taps), cat(pks)


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
