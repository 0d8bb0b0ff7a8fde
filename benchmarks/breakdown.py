"""Where hwsim's time goes: the kernel's pieces timed alone, on one thread. Not a test.

    NUMBA_NUM_THREADS=1 python benchmarks/breakdown.py

Prints the cost of each building block of a step (per synapse, per random word, per neuron) at the sizes of
the W1 and W2 workloads of benchmarks/run.py, and what they add up to per sample.
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit

from quantal.hwsim.kernels import PAD, G, accumulate, compact, lif_zero_int, lif_zero_wide, mix


@njit(cache=True)
def _acc(acc, idx, cnt, sz, wT, has_rel, relT, words, wbytes, keys, reps):  # pragma: no cover - compiled
    s = 0
    for r in range(reps):
        accumulate(acc, cnt, idx, sz, wT, 0, has_rel, relT, 0, False, wT, 0, np.uint64(r), keys)
        s += acc[r % sz]
    return s


@njit(cache=True)
def _words(words, cnt, nw, reps):  # pragma: no cover - compiled
    for r in range(reps):
        for a in range(cnt):
            k = np.uint64(r * 1000 + a)
            for m in range(nw):
                words[m] = mix(k + G * np.uint64(m + 1))
    return words[0]


@njit(cache=True)
def _lif(a, u, v, dc, dv, th, b, s, reps):  # pragma: no cover - compiled
    for _ in range(reps):
        lif_zero_wide(a, u, v, dc, dv, th, b, s, 0, u.shape[0])


@njit(cache=True)
def _lif_int(a, u, v, dc, dv, th, b, s, reps):  # pragma: no cover - compiled
    for _ in range(reps):
        lif_zero_int(a, u, v, dc, dv, th, b, s, 0, u.shape[0])


@njit(cache=True)
def _compact(row, out, n, reps):  # pragma: no cover - compiled
    # as run_kernel compacts an input row that is not at the end of its array (the tail read as a whole block)
    cnt = 0
    for _ in range(reps):
        cnt = compact(row, n, True, out, 0)
    return cnt


def timed(fn, *args) -> float:
    fn(*args[:-1], 1)  # compile / warm up
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def main() -> None:
    rng = np.random.default_rng(0)
    words = np.zeros(256, np.uint64)
    wb = words.view(np.uint8)
    keys = np.zeros(1024, np.uint64)
    rows = []
    for label, sz, n_in, cnt, stochastic in [("W1 layer 1 (157 of 784 active, p=0.5)", 300, 784, 157, True),
                                             ("W2 hidden (35 of 700 active)", 256, 700, 35, False)]:  # fmt: skip
        wT = rng.integers(-128, 128, n_in * sz + PAD).astype(np.int8)  # PAD: the kernels read whole vectors
        relT = np.full(n_in * sz + PAD, 127, np.uint8)
        idx = np.sort(rng.choice(n_in, cnt, replace=False)).astype(np.int32)
        reps = 20000 if stochastic else 200000
        for dt in (np.int16, np.int32):
            acc = np.zeros(sz + PAD, dt)
            t = timed(_acc, acc, idx, cnt, sz, wT, stochastic, relT, words, wb, keys, reps) / reps
            rows.append((f"{label}: accumulate ({dt.__name__})", t * 1e6, t / (cnt * sz) * 1e9, "ns/synapse"))
    nw = (300 + 7) // 8
    t = timed(_words, words, 157, nw, 20000) / 20000
    rows.append(("W1 layer 1: stream-1 words only (157 x 38)", t * 1e6, t / (157 * nw) * 1e9, "ns/word"))
    a = rng.integers(-400, 400, 256).astype(np.float64)
    u, v, b, s = np.zeros(256), np.zeros(256), np.zeros(256), np.zeros(256, np.uint8)
    dc, dv, th = np.full(256, 3686.0), np.full(256, 3891.0), np.full(256, 19200.0)
    t = timed(_lif, a, u, v, dc, dv, th, b, s, 200000) / 200000
    rows.append(("LIF update of 256 neurons (float64 path, can wrap 32 bits)", t * 1e6, t / 256 * 1e9, "ns/neuron"))
    a = rng.integers(-400, 400, 256).astype(np.int32)
    ui, vi, bi, s = np.zeros(256, np.int32), np.zeros(256, np.int32), np.zeros(256, np.int32), np.zeros(256, np.uint8)
    dci, dvi, thi = np.full(256, 3686, np.int32), np.full(256, 3891, np.int32), np.full(256, 19200, np.int32)
    t = timed(_lif_int, a, ui, vi, dci, dvi, thi, bi, s, 200000) / 200000
    rows.append(("LIF update of 256 neurons (int32 path)", t * 1e6, t / 256 * 1e9, "ns/neuron"))
    row = (rng.random(700 + 64) < 0.05).astype(np.uint8)  # a row followed by more of its array
    out = np.zeros(720, np.int32)
    t = timed(_compact, row, out, 700, 200000) / 200000
    rows.append(("compaction of 700 inputs at 5% (kernels.compact)", t * 1e6, t / 700 * 1e9, "ns/input"))
    w = max(len(r[0]) for r in rows)
    print(f"{'piece'.ljust(w)}  us/step  per unit")
    for name, us, per, unit in rows:
        print(f"{name.ljust(w)}  {us:7.2f}  {per:.3f} {unit}")


if __name__ == "__main__":
    main()
