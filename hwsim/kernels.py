"""Numba kernels of the fixed-point simulator. Arrays, scalars and RNG keys in; nothing else.

The arithmetic is exactly that of :mod:`quantal.compile.reference` (docs/ir.md); the Python code in
:mod:`quantal.hwsim.engine` validates the network and arguments, flattens the layers into the arrays below and
allocates the outputs. Layout of the flattened network (L layers, offsets in elements):

* ``wT[w_off[l] + j * size[l] + i]`` = weight[i, j] of layer l (int8, transposed so that the synapses of one
  active input j are contiguous); ``relT`` (uint8) and ``wfT`` (int8) likewise at ``rel_off`` / ``fix_off``
  when ``has_rel[l]`` / ``has_fix[l]``;
* ``bias[nrn_off[l] + i]`` = bias_mant << bias_exp; ``esc_tab[esc[l]]`` the escape-noise thresholds
  (``esc[l] = -1``: deterministic threshold);
* recording offsets ``rec_*[l]`` into the per-quantity outputs (-1: not recorded).

Random streams v1 are computed inline (:func:`mix`); the bytes of the 64-bit words are read through a uint8
view, which on a little-endian machine is the byte order ``(word >> 8*b) & 0xFF`` of the specification.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

G = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
S27 = np.uint64(27)
S30 = np.uint64(30)
S31 = np.uint64(31)
ONE = np.uint64(1)

U_WRAP = 1 << 23
V_MAX = (1 << 23) - 1


@njit(cache=True, inline="always")
def mix(z):  # pragma: no cover - compiled
    # SplitMix64 finaliser; every product wraps modulo 2**64 (uint64 arithmetic).
    z = z ^ (z >> S30)
    z = z * M1
    z = z ^ (z >> S27)
    z = z * M2
    return z ^ (z >> S31)


@njit(cache=True, inline="always")
def absorb(h, x):  # pragma: no cover - compiled
    # One step of key(): h = mix(h ^ mix(x + G)); x + G wraps modulo 2**64.
    return mix(h ^ mix(np.uint64(x) + G))


@njit(cache=True, inline="always")
def rz12(x):  # pragma: no cover - compiled
    # sign(x) * (|x| >> 12): division by 4096 rounding toward zero, on int64. Branch-free: a negative x is
    # biased by 4095 (= (x >> 63) & 4095) before the arithmetic shift, which turns floor into truncation.
    return (x + ((x >> 63) & 4095)) >> 12


@njit(cache=True, inline="always")
def wrap32(x):  # pragma: no cover - compiled
    # Two's-complement wrap of an int64 to 32 bits.
    return ((x + 2147483648) & 0xFFFFFFFF) - 2147483648


@njit(cache=True, parallel=True)
def run_kernel(  # pragma: no cover - compiled
    x, steps, seed, trial, sample_offset, chunk,
    size, n_in, w_off, wT, wexp, has_rel, rel_off, relT, has_fix, fix_off, wfT,
    cdecay, vdecay, vth, spiking, nrn_off, bias, esc, esc_tab,
    rec_spk, rec_u, rec_v, rec_cnt, readout_cnt,
    out_spk, out_u, out_v, out_cnt,
):
    n_samples = x.shape[0]
    t_in = x.shape[1]
    n_layers = size.shape[0]
    n_total = bias.shape[0]
    max_size = 1
    for li in range(n_layers):
        max_size = max(max_size, size[li])
    n_words = (max_size + 3) // 4 + 1  # enough for the 16-bit lanes of stream 2
    seed_u = np.uint64(seed)
    n_chunks = (n_samples + chunk - 1) // chunk
    for c in prange(n_chunks):
        # Per-chunk work buffers (reused for every sample of the chunk).
        u = np.zeros(n_total, np.int64)
        v = np.zeros(n_total, np.int64)
        act_prev = np.zeros(n_total, np.int32)  # indices of the spikes of step t-1, per layer
        act_cur = np.zeros(n_total, np.int32)
        cnt_prev = np.zeros(n_layers, np.int64)
        cnt_cur = np.zeros(n_layers, np.int64)
        in_idx = np.zeros(x.shape[2] + 1, np.int32)
        acc = np.zeros(max_size, np.int32)
        sbuf = np.zeros(max_size, np.uint8)
        words = np.zeros(n_words, np.uint64)
        wbytes = words.view(np.uint8)  # byte i of the buffer = (words[i // 8] >> 8*(i % 8)) & 0xFF
        wlanes = words.view(np.uint16)  # lane i = (words[i // 4] >> 16*(i % 4)) & 0xFFFF
        for n in range(c * chunk, min(n_samples, (c + 1) * chunk)):
            sample = np.uint64(sample_offset + n)
            u[:] = 0
            v[:] = 0
            cnt_prev[:] = 0
            for t in range(steps):
                for li in range(n_layers):
                    sz = size[li]
                    base = nrn_off[li]
                    # ---- the layer's active inputs: spikes of step t-1
                    if li == 0:
                        cnt = 0
                        if t >= 1 and t <= t_in:
                            row = x[n, t - 1]
                            for j in range(row.shape[0]):
                                in_idx[cnt] = j  # branch-free append of the active inputs
                                cnt += row[j] != 0
                        idx = in_idx
                    else:
                        cnt = cnt_prev[li - 1]
                        idx = act_prev[nrn_off[li - 1]:]
                    # ---- synaptic input: integer accumulation over the active columns
                    for i in range(sz):
                        acc[i] = 0
                    if cnt > 0:
                        if has_rel[li]:
                            # stream 1: k = key(seed, 1, trial, sample, t, layer, j)
                            hp = absorb(absorb(absorb(absorb(absorb(absorb(
                                np.uint64(0), seed_u), 1), trial), sample), t), li)
                            nw = (sz + 7) // 8
                            for a in range(cnt):
                                j = idx[a]
                                k = absorb(hp, j)
                                for m in range(nw):
                                    words[m] = mix(k + G * np.uint64(m + 1))  # word(k, m), wrapping
                                wcol = wT[w_off[li] + j * sz: w_off[li] + (j + 1) * sz]
                                rcol = relT[rel_off[li] + j * sz: rel_off[li] + (j + 1) * sz]
                                for i in range(sz):
                                    # transmit iff byte <= release (branch-free, vectorisable)
                                    acc[i] += np.int32(wcol[i]) * np.int32(wbytes[i] <= rcol[i])
                        else:
                            for a in range(cnt):
                                j = idx[a]
                                wcol = wT[w_off[li] + j * sz: w_off[li] + (j + 1) * sz]
                                for i in range(sz):
                                    acc[i] += wcol[i]
                        if has_fix[li]:
                            for a in range(cnt):
                                j = idx[a]
                                fcol = wfT[fix_off[li] + j * sz: fix_off[li] + (j + 1) * sz]
                                for i in range(sz):
                                    acc[i] += fcol[i]
                    # ---- escape-noise uniforms, stream 2: k = key(seed, 2, trial, sample, t, layer)
                    e = esc[li]
                    if e >= 0:
                        k2 = absorb(absorb(absorb(absorb(absorb(absorb(
                            np.uint64(0), seed_u), 2), trial), sample), t), li)
                        for m in range((sz + 3) // 4):
                            words[m] = mix(k2 + G * np.uint64(m + 1))  # word(k, m), wrapping
                    # ---- neurons
                    we = wexp[li]
                    shl = we if we > 0 else 0  # 2**weight_exp: exact left shift ...
                    shr = -we if we < 0 else 0  # ... or arithmetic right shift = floor
                    dc = 4096 - cdecay[li]
                    dv = 4096 - vdecay[li]
                    # v > threshold << 6 spikes (MSB alignment by 6 bits); a readout never spikes
                    th = (np.int64(vth[li]) << 6) if spiking[li] else np.int64(1) << 40
                    ncur = 0
                    for i in range(sz):
                        a_in = wrap32((np.int64(acc[i]) << shl) >> shr)  # a as a 32-bit value
                        act = wrap32(a_in << 6)  # a << 6 in 32-bit arithmetic
                        d = wrap32(rz12(u[base + i] * dc) + act)  # int32 sum of decayed u and input
                        # one wrap into (-2**23, 2**23]
                        d = d - (d > U_WRAP) * (2 * U_WRAP) + (d <= -U_WRAP) * (2 * U_WRAP)
                        u[base + i] = d
                        vv = rz12(v[base + i] * dv) + d + bias[base + i]
                        vv = min(max(vv, -V_MAX), V_MAX)  # 24-bit saturation
                        if e >= 0:
                            fire = vv > th + esc_tab[e, wlanes[i]]  # x = v - th > theta[U]
                        else:
                            fire = vv > th  # strict threshold
                        v[base + i] = 0 if fire else vv  # reset v; u is not reset
                        sbuf[i] = fire
                        act_cur[base + ncur] = i  # branch-free append of the spikes
                        ncur += fire
                    # ---- recording (per-layer decisions kept out of the neuron loop)
                    rs = rec_spk[li]
                    if rs >= 0:
                        out_spk[n, t, rs:rs + sz] = sbuf[:sz]
                    if rec_u[li] >= 0:
                        out_u[n, t, rec_u[li]:rec_u[li] + sz] = u[base:base + sz]
                    if rec_v[li] >= 0:
                        out_v[n, t, rec_v[li]:rec_v[li] + sz] = v[base:base + sz]
                    rc = rec_cnt[li]
                    if rc >= 0 and spiking[li]:
                        for i in range(sz):
                            out_cnt[n, rc + i] += sbuf[i]
                    cnt_cur[li] = ncur
                # the spikes of step t become the inputs of step t+1
                act_prev, act_cur = act_cur, act_prev
                cnt_prev, cnt_cur = cnt_cur, cnt_prev
            # a readout's count is its final v
            for li in range(n_layers):
                if readout_cnt[li] and rec_cnt[li] >= 0:
                    for i in range(size[li]):
                        out_cnt[n, rec_cnt[li] + i] = v[nrn_off[li] + i]
