"""Where hwsim's time goes: the kernel's pieces timed alone, on one thread. Not a test.

    NUMBA_NUM_THREADS=1 python benchmarks/breakdown.py [--orders]

Prints the cost of each building block of a step (per synapse, per random word, per neuron) at the sizes of
the W1 and W2 workloads of benchmarks/run.py and of the spiking CNN W3 of benchmarks/graphs.py (its three conv2d
projections at the firing rates the W3 run reports, deterministic). With ``--orders``, only the conv2d rows, each
with its active inputs in other orders than the kernel's ascending one (integer sums: the same result, checked):
shuffled; position-major (every channel of a position, then the next); and channel by channel with the positions
taken k apart in both axes first (``stride k``), so that consecutive inputs reach no common output.
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit

from quantal.hwsim.engine import aligned_zeros
from quantal.hwsim.kernels import (
    CONV_CHUNK,
    PAD,
    G,
    accumulate,
    accumulate_conv,
    col_stride,
    compact,
    lif_zero_if_lanes,
    lif_zero_lanes,
    lif_zero_wide,
    mix,
    sums_fit_int16,
)
from quantal.hwsim.simd import EXPAND_SLACK, LANES


@njit  # not cached: a cached wrapper would keep the hwsim code it was compiled with
def _acc(acc, idx, cnt, sz, wT, has_rel, relT, rcol, words, wbytes, keys, reps):  # pragma: no cover - compiled
    s = 0
    for r in range(reps):
        accumulate(acc, cnt, idx, 0, sz, wT, 0, has_rel, relT, 0, rcol, False, wT, 0, np.uint64(r), keys)
        s += acc[r % sz]
    return s


@njit  # not cached: a cached wrapper would keep the hwsim code it was compiled with
def _words(words, cnt, nw, reps):  # pragma: no cover - compiled
    for r in range(reps):
        for a in range(cnt):
            k = np.uint64(r * 1000 + a)
            for m in range(nw):
                words[m] = mix(k + G * np.uint64(m + 1))
    return words[0]


@njit  # not cached: a cached wrapper would keep the hwsim code it was compiled with
def _lif(a, u, v, dc, dv, th, b, s, reps):  # pragma: no cover - compiled
    for _ in range(reps):
        lif_zero_wide(a, u, v, dc, dv, th, b, s, 0, u.shape[0])


@njit  # not cached: a cached wrapper would keep the hwsim code it was compiled with
def _lif_int(a, u, v, dc, dv, th, b, s, reps):  # pragma: no cover - compiled
    for _ in range(reps):
        lif_zero_lanes(a, u, v, dc, dv, th, b, s, 0, u.shape[0])


@njit  # not cached: a cached wrapper would keep the hwsim code it was compiled with
def _lif_if(a, u, v, dc, dv, th, b, s, reps):  # pragma: no cover - compiled
    for _ in range(reps):
        lif_zero_if_lanes(a, u, v, dc, dv, th, b, s, 0, u.shape[0])


@njit  # not cached: a cached wrapper would keep the hwsim code it was compiled with
def _lif_int_samples(a, u, v, dc, dv, th, b, s, n, samples, reps):  # pragma: no cover - compiled
    # one small layer's update for several samples, one call each (their states LANES apart), as the kernel runs it
    for _ in range(reps):
        for q in range(samples):
            lif_zero_lanes(a, u, v, dc, dv, th, b, s, q * LANES, n)


@njit  # not cached: a cached wrapper would keep the hwsim code it was compiled with
def _compact(row, out, n, reps):  # pragma: no cover - compiled
    # as run_kernel compacts an input row that is not at the end of its array (the tail read as a whole block)
    cnt = 0
    for _ in range(reps):
        cnt = compact(row, 0, n, True, out, 0)
    return cnt


@njit  # not cached: a cached wrapper would keep the hwsim code it was compiled with
def _conv(acc, scratch, plan, cnt, idx, sz, g, taps, w, w_off, rel, reps):  # pragma: no cover - compiled
    # one deterministic conv2d projection's accumulation, as run_kernel calls it (taps, channel-first copy)
    for _ in range(reps):
        accumulate_conv(acc, scratch, plan, cnt, idx, 0, sz, g, taps, w, w_off, False, rel, 0, False, w, 0,
                        np.uint64(0))


# Buffers start on 64-byte boundaries, as the engine's tables do; the kernel's own buffers are Numba's (32-byte
# aligned, so a 16-lane vector at a multiple of 64 bytes never straddles two cache lines)
zeros = aligned_zeros


def full(n: int, value: float, dtype: type = np.float64) -> np.ndarray:
    a = zeros(n, dtype)
    a[:] = value
    return a


def conv_rows(rng: np.random.Generator, orders: bool = False) -> list[tuple]:
    """W3's conv2d projections (benchmarks/graphs.py) with the engine's tables, each with a random set of active
    inputs at the source's firing rate in the W3 run (with ``orders``, also in the orders of the module doc)."""
    from graphs import w3_network, w3_weights  # benchmarks/graphs.py, beside this script

    from quantal.hwsim import Simulator
    from quantal.hwsim.simd import LANES

    net = w3_network(w3_weights(np.random.default_rng(3)), False)
    sim = Simulator(net)
    rates = {"input": 0.02, "c1": 0.077, "c2": 0.052}  # spikes per neuron per step (benchmarks/run.py, W3)
    rows = []
    for pi, p in enumerate(net.projections):
        if p.kind == "dense":
            continue
        n_src, sz = int(np.prod(net.source_shape(p))), net.layer(p.target).size
        cnt = int(round(rates[p.source] * n_src))
        idx = np.sort(rng.choice(n_src, cnt, replace=False)).astype(np.int32)
        # the sums' width run_kernel takes, by its own rule on the engine's geometry and weight bound
        dt = np.int16 if sums_fit_int16(cnt, 1, sim.geo[pi], sim.wmax[pi]) else np.int32
        acc, scratch = zeros(sz + PAD, dt), zeros(sz + LANES, dt)
        plan = zeros(4 * CONV_CHUNK, np.int64)
        taps = (sim.t_ptr[sim.tab_off[pi]:], sim.t_out, sim.t_tap, sim.t_pk)
        reps = 20000
        variants = {"": idx}
        if orders:
            hw, w_in = n_src // p.synapse.weight.shape[1], net.source_shape(p)[-1]
            ci, y, x = idx // hw, idx % hw // w_in, idx % w_in
            variants.update({", shuffled": rng.permutation(idx), ", position-major": idx[np.lexsort((ci, idx % hw))]})
            variants.update({f", stride {k}": idx[np.lexsort((x, y, x % k, y % k, ci))] for k in (2, 3, 4)})
        links = cnt * sz / n_src * int(np.prod(p.synapse.weight.shape[1:]))  # about: fan-out x active inputs
        first = None
        for label, ix in variants.items():
            ix = np.ascontiguousarray(ix, np.int32)
            t = timed(_conv, acc, scratch, plan, cnt, ix, sz, sim.geo[pi], taps, sim.w, sim.w_off[pi], sim.rel,
                      reps) / reps
            if first is None:
                first = acc[:sz].copy()
            elif not np.array_equal(acc[:sz], first):
                raise RuntimeError(f"{p.name}{label}: the sums differ from the ascending order's")
            rows.append((f"W3 {p.name} conv2d ({cnt} of {n_src} active, {dt.__name__} sums){label}", t * 1e6,
                         t / links * 1e9, "ns/synapse"))  # fmt: skip
    return rows


def timed(fn, *args) -> float:
    """Seconds for ``fn(*args)`` (its last argument the repeat count): the fastest of 5 runs of a fifth of the
    repeats each, scaled back (on a shared machine the fastest run is the one least disturbed)."""
    fn(*args[:-1], 1)  # compile / warm up
    reps = args[-1]
    part = max(1, reps // 5)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        fn(*args[:-1], part)
        best = min(best, time.perf_counter() - t0)
    return best * reps / part


def main() -> None:
    import sys

    if "--orders" in sys.argv[1:]:
        show(conv_rows(np.random.default_rng(0), orders=True))
        return
    rng = np.random.default_rng(0)
    words = zeros(256, np.uint64)
    wb = words.view(np.uint8)
    keys = zeros(1024, np.uint64)
    rows = []
    for label, sz, n_in, cnt, stochastic in [("W1 layer 1 (157 of 784 active, p=0.5)", 300, 784, 157, True),
                                             ("W2 hidden (35 of 700 active)", 256, 700, 35, False)]:  # fmt: skip
        n = n_in * col_stride(sz) + PAD  # the kernel's layout: columns col_stride(sz) apart, PAD at the end
        wT = zeros(n, np.int8)
        wT[:] = rng.integers(-128, 128, n)
        relT = full(n, 127, np.uint8)  # a release byte per synapse (as W1r; W1 stores one column: rcol 0)
        idx = np.sort(rng.choice(n_in, cnt, replace=False)).astype(np.int32)
        reps = 20000 if stochastic else 200000
        for dt, rcol in ((np.int16, col_stride(sz)), (np.int32, col_stride(sz))) + ((np.int16, 0),) * stochastic:
            acc = zeros(sz + PAD, dt)
            t = timed(_acc, acc, idx, cnt, sz, wT, stochastic, relT, rcol, words, wb, keys, reps) / reps
            how = ", one release column" if rcol == 0 else ""
            rows.append((f"{label}: accumulate ({dt.__name__}{how})", t * 1e6, t / (cnt * sz) * 1e9, "ns/synapse"))
    nw = (300 + 7) // 8
    t = timed(_words, words, 157, nw, 20000) / 20000
    rows.append(("W1 layer 1: stream-1 words only (157 x 38)", t * 1e6, t / (157 * nw) * 1e9, "ns/word"))
    a = rng.integers(-400, 400, 256).astype(np.float64)
    u, v, b, s = zeros(256), zeros(256), zeros(256), zeros(256, np.uint8)
    dc, dv, th = full(256, 3686.0), full(256, 3891.0), full(256, 19200.0)
    t = timed(_lif, a, u, v, dc, dv, th, b, s, 200000) / 200000
    rows.append(("LIF update of 256 neurons (float64 path, can wrap 32 bits)", t * 1e6, t / 256 * 1e9, "ns/neuron"))
    a = rng.integers(-400, 400, 256).astype(np.int32)
    ui, vi, bi, s = zeros(256, np.int32), zeros(256, np.int32), zeros(256, np.int32), zeros(256, np.uint8)
    dci, dvi, thi = full(256, 3686, np.int32), full(256, 3891, np.int32), full(256, 19200, np.int32)
    t = timed(_lif_int, a, ui, vi, dci, dvi, thi, bi, s, 200000) / 200000
    rows.append(("LIF update of 256 neurons (int32 path)", t * 1e6, t / 256 * 1e9, "ns/neuron"))
    # W2's 20-neuron output layer for 8 samples: 8 updates of 20 lanes (two vectors each, the second partly
    # masked), against one update of 160 lanes (the same neurons as [neuron, sample] lanes, 8 samples batched)
    n8 = 160 + 2 * LANES  # 8 states LANES apart, or 160 lanes, plus the slack the update reads
    a = rng.integers(-400, 400, n8).astype(np.int32)
    ui, vi, bi, s = zeros(n8, np.int32), zeros(n8, np.int32), zeros(n8, np.int32), zeros(n8, np.uint8)
    dci, dvi, thi = full(n8, 3686, np.int32), full(n8, 3891, np.int32), full(n8, 19200, np.int32)
    t = timed(_lif_int_samples, a, ui, vi, dci, dvi, thi, bi, s, 20, 8, 200000) / 200000
    rows.append(("LIF update of 20 neurons for 8 samples, one call each (int32 path)", t * 1e6, t / 160 * 1e9,
                 "ns/neuron"))  # fmt: skip
    t = timed(_lif_int_samples, a, ui, vi, dci, dvi, thi, bi, s, 160, 1, 200000) / 200000
    rows.append(("LIF update of 20 neurons x 8 samples as 160 lanes (int32 path)", t * 1e6, t / 160 * 1e9,
                 "ns/neuron"))  # fmt: skip
    row = (rng.random(700 + 64) < 0.05).astype(np.uint8)  # a row followed by more of its array
    out = zeros(700 + EXPAND_SLACK, np.int32)
    t = timed(_compact, row, out, 700, 200000) / 200000
    rows.append(("compaction of 700 inputs at 5% (kernels.compact)", t * 1e6, t / 700 * 1e9, "ns/input"))
    a = rng.integers(-400, 400, 4096).astype(np.int32)
    ui, vi, bi, s = zeros(4096, np.int32), zeros(4096, np.int32), zeros(4096, np.int32), zeros(4096 + 64,
                                                                                                             np.uint8)
    dci, dvi, thi = full(4096, 0, np.int32), full(4096, 4096, np.int32), full(4096, 19200, np.int32)
    t = timed(_lif_int, a, ui, vi, dci, dvi, thi, bi, s, 20000) / 20000
    rows.append(("W3 c1 / c2: IF update of 4096 neurons, general int32 path", t * 1e6, t / 4096 * 1e9, "ns/neuron"))
    t = timed(_lif_if, a, ui, vi, dci, dvi, thi, bi, s, 20000) / 20000
    rows.append(("W3 c1 / c2: IF update of 4096 neurons, IF path (no decay products)", t * 1e6, t / 4096 * 1e9,
                 "ns/neuron"))  # fmt: skip
    s[:] = rng.random(4096 + 64) < 0.06
    out = zeros(4096 + EXPAND_SLACK, np.int32)
    t = timed(_compact, s, out, 4096, 20000) / 20000
    rows.append(("W3 c1 / c2: compaction of 4096 spike bytes at 6%", t * 1e6, t / 4096 * 1e9, "ns/neuron"))
    rows += conv_rows(rng)
    show(rows)


def show(rows: list[tuple]) -> None:
    w = max(len(r[0]) for r in rows)
    print(f"{'piece'.ljust(w)}  us/step  per unit")
    for name, us, per, unit in rows:
        print(f"{name.ljust(w)}  {us:7.2f}  {per:.3f} {unit}")


if __name__ == "__main__":
    main()
