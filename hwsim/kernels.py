"""Numba kernels of the fixed-point simulator. Arrays, scalars and RNG keys in; nothing else.

The arithmetic is exactly that of :mod:`quantal.compile.reference` (docs/ir.md); the Python code in
:mod:`quantal.hwsim.engine` validates the network and arguments, flattens the layers into the arrays below and
allocates the outputs. Layout of the flattened network (L layers, offsets in elements):

* ``wT[w_off[l] + j * size[l] + i]`` = weight[i, j] of layer l (int8, transposed so that the synapses of one
  active input j are contiguous); ``relT`` (uint8) and ``wfT`` (int8) likewise at ``rel_off`` / ``fix_off``
  when ``has_rel[l]`` / ``has_fix[l]``;
* ``biasf[nrn_off[l] + i]`` = bias_mant << bias_exp (as float64, see the neuron update); ``scale_w[l]`` =
  2**weight_exp; ``wmax[l]`` = max |weight| + max |weight_fixed| (selects the int16 accumulator);
  ``small[l]``: the layer cannot reach the 32-bit wraps; ``esc_tab[esc[l]]`` the escape-noise thresholds
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

F_WRAP = float(1 << 23)  # u wraps once into (-2**23, 2**23]
F_VMAX = float((1 << 23) - 1)  # v saturates at +-(2**23 - 1)
INV4096 = 1.0 / 4096.0  # exact: a power of two
TWO32 = float(1 << 32)
TWO31 = float(1 << 31)
INV_TWO32 = 1.0 / TWO32


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
def layer_key(seed, stream, trial, sample, t, layer):  # pragma: no cover - compiled
    # key(seed, stream, trial, sample, t, layer): the per-layer prefix of streams 1 and 2 (stream 1 absorbs j
    # on top of it).
    return absorb(absorb(absorb(absorb(absorb(absorb(np.uint64(0), seed), stream), trial), sample), t), layer)


@njit(cache=True, inline="always")
def wrap32f(x):  # pragma: no cover - compiled
    # Two's-complement wrap to 32 bits of an integer-valued float64 (|x| < 2**52): x - 2**32 * floor((x +
    # 2**31) / 2**32). Every operation is exact for such x.
    return x - TWO32 * np.floor((x + TWO31) * INV_TWO32)


@njit(cache=True, inline="always")
def _wrap24(d):  # pragma: no cover - compiled
    # One wrap into (-2**23, 2**23], as Lava does: d - 2**24 if d > 2**23, d + 2**24 if d <= -2**23.
    if d > F_WRAP:
        d -= 2.0 * F_WRAP
    if d <= -F_WRAP:
        d += 2.0 * F_WRAP
    return d


@njit(cache=True, inline="always")
def _current(acc_i, u_i, sc, dc):  # pragma: no cover - compiled
    # d = rz(u * (4096 - current_decay)) + (a << 6), in exact integer-valued float64 (see run_kernel)
    a_in = wrap32f(np.floor(acc_i * sc))  # a = floor(sum * 2**weight_exp), a 32-bit value
    act = wrap32f(a_in * 64.0)  # a << 6 in 32-bit arithmetic
    d = wrap32f(np.trunc(u_i * dc * INV4096) + act)  # rz(u * (4096 - decay)): trunc rounds toward zero
    return _wrap24(d)


@njit(cache=True, inline="always")
def _current_small(acc_i, u_i, sc, dc):  # pragma: no cover - compiled
    # _current for a layer whose worst-case |a << 6| is <= 2**24 (the engine checks it): then |u| <= 2**23
    # at every step (by induction: |d| <= 2**23 + 2**24 and one 2**24 wrap brings it back), no 32-bit value
    # can wrap, and the three wrap32f calls are identities that can be left out.
    d = np.trunc(u_i * dc * INV4096) + np.floor(acc_i * sc) * 64.0
    return _wrap24(d)


@njit(cache=True, inline="always")
def _voltage(v_i, d, bias_i, dv):  # pragma: no cover - compiled
    # v = clip(rz(v * (4096 - voltage_decay)) + u + bias, -(2**23 - 1), 2**23 - 1)
    return min(max(np.trunc(v_i * dv * INV4096) + d + bias_i, -F_VMAX), F_VMAX)


@njit(cache=True, inline="always")
def _fire_and_store(i, d, thr, u, v, bias, sbuf, dv):  # pragma: no cover - compiled
    # The voltage update, the strict threshold v > thr, the reset of v (u is not reset), and the stores.
    vv = _voltage(v[i], d, bias[i], dv)
    fire = vv > thr
    v[i] = 0.0 if fire else vv
    u[i] = d
    sbuf[i] = fire


@njit(cache=True)
def lif_update(acc, u, v, bias, sbuf, sc, dc, dv, th):  # pragma: no cover - compiled
    """One step of a deterministic LIF layer (no reductions in the loop, so that it vectorises)."""
    for i in range(u.shape[0]):  # no data-dependent branches left after if-conversion: vectorisable
        _fire_and_store(i, _current(acc[i], u[i], sc, dc), th, u, v, bias, sbuf, dv)


@njit(cache=True)
def lif_update_small(acc, u, v, bias, sbuf, sc, dc, dv, th):  # pragma: no cover - compiled
    """lif_update for a layer that cannot reach the 32-bit wraps (see _current_small).

    A separate loop rather than a flag: a loop-invariant branch inside the loop kept LLVM from vectorising it
    (measured: 7 ns instead of 2.5 ns per neuron for the escape-noise branch), see docs/performance.md.
    """
    for i in range(u.shape[0]):
        _fire_and_store(i, _current_small(acc[i], u[i], sc, dc), th, u, v, bias, sbuf, dv)


@njit(cache=True)
def lif_update_escape(acc, u, v, bias, sbuf, sc, dc, dv, th, theta, lanes):  # pragma: no cover - compiled
    """One step of a LIF layer with escape noise: spike iff v - th > theta[U_i] (stream-2 lanes U), i.e.
    v > th + theta[U_i] (exact: integers below 2**53)."""
    for i in range(u.shape[0]):
        _fire_and_store(i, _current(acc[i], u[i], sc, dc), th + theta[lanes[i]], u, v, bias, sbuf, dv)


@njit(cache=True)
def at_rest(u, v):  # pragma: no cover - compiled
    """True when every u and v of the layer is zero."""
    for i in range(u.shape[0]):
        if u[i] != 0.0 or v[i] != 0.0:
            return False
    return True


@njit(cache=True, inline="always")
def accumulate(  # pragma: no cover - compiled
    acc, cnt, idx, sz, wT, w_off, has_rel, relT, rel_off, has_fix, wfT, fix_off, hp, words, wbytes
):
    # acc[i] = sum over the cnt active inputs j = idx[a] of (weight_fixed[i, j] + xi_ij * weight[i, j]).
    # Generic over the integer types: int16 or int32 accumulators on int8 weights, int64 on device weights
    # (Q.16, accumulate_q); the caller guarantees no overflow.
    for i in range(sz):
        acc[i] = 0
    if cnt == 0:
        return
    if has_rel:
        nw = (sz + 7) // 8
        for a in range(cnt):
            j = idx[a]
            k = absorb(hp, j)  # key(seed, 1, trial, sample, t, layer, j)
            for m in range(nw):
                words[m] = mix(k + G * np.uint64(m + 1))  # word(k, m), wrapping
            wcol = wT[w_off + j * sz: w_off + (j + 1) * sz]
            rcol = relT[rel_off + j * sz: rel_off + (j + 1) * sz]
            for i in range(sz):
                # transmit iff byte i <= release (branch-free, vectorisable)
                acc[i] += wcol[i] * (wbytes[i] <= rcol[i])
    else:
        for a in range(cnt):
            j = idx[a]
            wcol = wT[w_off + j * sz: w_off + (j + 1) * sz]
            for i in range(sz):
                acc[i] += wcol[i]
    if has_fix:
        for a in range(cnt):
            j = idx[a]
            fcol = wfT[fix_off + j * sz: fix_off + (j + 1) * sz]
            for i in range(sz):
                acc[i] += fcol[i]


@njit(cache=True, inline="always")
def accumulate_q(  # pragma: no cover - compiled
    acc, acc64, cnt, idx, sz, wqT, w_off, has_rel, relT, rel_off, has_fix, wfqT, fix_off, hp, words, wbytes, qshift,
    noise, hp7, s2wT, s2fT, ntab, words2, lanes2,
):
    # Device weights (hwsim/devices.py): realised weights are int64 with 16 fractional bits, so the sum is exact
    # in any order; a = floor(sum * 2**weight_exp / 2**16) = sum >> (16 - weight_exp) (arithmetic shift floors;
    # 16 - weight_exp is in [9, 24]), then wrapped to 32 bits as in the integer path.
    if cnt > 0 and noise:
        for i in range(sz):
            acc64[i] = 0
        # per-read noise (stream 7): each read of synapse (i, j) adds rint(sqrt(xi s2w + s2f) 2**16 z), z the
        # normal deviate of lane i of word(key(seed, 7, trial, sample, t, layer, j), i // 4)
        nw = (sz + 7) // 8
        nw7 = (sz + 3) // 4
        for a in range(cnt):
            j = idx[a]
            if has_rel:
                k = absorb(hp, j)  # stream 1
                for m in range(nw):
                    words[m] = mix(k + G * np.uint64(m + 1))
            k7 = absorb(hp7, j)
            for m in range(nw7):
                words2[m] = mix(k7 + G * np.uint64(m + 1))
            wcol = wqT[w_off + j * sz: w_off + (j + 1) * sz]
            vcol = s2wT[w_off + j * sz: w_off + (j + 1) * sz]
            for i in range(sz):
                xi = 1
                if has_rel:
                    xi = 1 if wbytes[i] <= relT[rel_off + j * sz + i] else 0
                var = xi * vcol[i]
                if has_fix:
                    var = var + s2fT[fix_off + j * sz + i]
                    acc64[i] += wfqT[fix_off + j * sz + i]
                acc64[i] += xi * wcol[i] + np.int64(np.rint(np.sqrt(var) * 65536.0 * ntab[lanes2[i]]))
    else:  # the integer path's accumulation, on the int64 Q.16 weights
        accumulate(acc64, cnt, idx, sz, wqT, w_off, has_rel, relT, rel_off, has_fix, wfqT, fix_off, hp, words, wbytes)
    for i in range(sz):
        a_i = acc64[i] >> qshift  # floor(sum / 2**(16 - weight_exp))
        acc[i] = ((a_i + 2**31) & 0xFFFFFFFF) - 2**31  # two's-complement wrap to 32 bits


@njit(cache=True, parallel=True)
def run_kernel(  # pragma: no cover - compiled
    x, steps, seed, trial, sample_offset, chunk,
    size, w_off, wT, wmax, has_rel, rel_off, relT, has_fix, fix_off, wfT,
    cdecay, vdecay, vth, spiking, nrn_off, biasf, bias_zero, esc, esc_tab, scale_w, small,
    rec_spk, rec_u, rec_v, rec_cnt,
    out_spk, out_u, out_v, out_cnt,
    dev, wqT, wfqT, qshift, noise, s2wT, s2fT, ntab,
):
    n_samples = x.shape[0]
    t_in = x.shape[1]
    n_layers = size.shape[0]
    n_total = biasf.shape[0]
    max_size = 1
    for li in range(n_layers):
        max_size = max(max_size, size[li])
    n_words = (max_size + 3) // 4 + 1  # enough for the 16-bit lanes of stream 2
    seed_u = np.uint64(seed)
    n_chunks = (n_samples + chunk - 1) // chunk
    for c in prange(n_chunks):
        # Per-chunk work buffers (reused for every sample of the chunk).
        u = np.zeros(n_total, np.float64)  # exact integers (see the neuron update)
        v = np.zeros(n_total, np.float64)
        act_prev = np.zeros(n_total, np.int32)  # indices of the spikes of step t-1, per layer
        act_cur = np.zeros(n_total, np.int32)
        cnt_prev = np.zeros(n_layers, np.int64)
        cnt_cur = np.zeros(n_layers, np.int64)
        in_idx = np.zeros(x.shape[2] + 1, np.int32)
        acc = np.zeros(max_size, np.int32)
        acc16 = np.zeros(max_size, np.int16)
        acc64 = np.zeros(max_size, np.int64)
        words2 = np.zeros(n_words, np.uint64)
        lanes2 = words2.view(np.uint16)  # lane i = (words2[i // 4] >> 16*(i % 4)) & 0xFFFF
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
                    # ---- synaptic input: integer accumulation over the active columns. |sum| <= cnt * wmax,
                    # so below 2**15 the int16 accumulator is exact and twice as wide per vector instruction.
                    hp = np.uint64(0)
                    if has_rel[li] and cnt > 0:
                        # stream 1: k = key(seed, 1, trial, sample, t, layer, j); hp absorbs all but j
                        hp = layer_key(seed_u, 1, trial, sample, t, li)
                    if dev:
                        hp7 = np.uint64(0)
                        if noise[li] and cnt > 0:  # stream 7: key(seed, 7, trial, sample, t, layer, j)
                            hp7 = layer_key(seed_u, 7, trial, sample, t, li)
                        accumulate_q(acc, acc64, cnt, idx, sz, wqT, w_off[li], has_rel[li], relT, rel_off[li],
                                     has_fix[li], wfqT, fix_off[li], hp, words, wbytes, qshift[li],
                                     noise[li], hp7, s2wT, s2fT, ntab, words2, lanes2)
                    elif cnt * wmax[li] < 32768:
                        accumulate(acc16, cnt, idx, sz, wT, w_off[li], has_rel[li], relT, rel_off[li],
                                   has_fix[li], wfT, fix_off[li], hp, words, wbytes)
                        for i in range(sz):
                            acc[i] = acc16[i]
                    else:
                        accumulate(acc, cnt, idx, sz, wT, w_off[li], has_rel[li], relT, rel_off[li],
                                   has_fix[li], wfT, fix_off[li], hp, words, wbytes)
                    # ---- escape-noise uniforms, stream 2: k = key(seed, 2, trial, sample, t, layer)
                    e = esc[li]
                    if e >= 0:
                        k2 = layer_key(seed_u, 2, trial, sample, t, li)
                        for m in range((sz + 3) // 4):
                            words[m] = mix(k2 + G * np.uint64(m + 1))  # word(k, m), wrapping
                    # ---- neurons. The state is carried in float64 holding exact integers: every intermediate
                    # below is an integer of magnitude < 2**44 < 2**53, products by powers of two are exact, and
                    # floor/trunc/min/max are exact, so the results equal the integer arithmetic bit for bit
                    # (tests/hwsim) while the loop vectorises on AVX2, which lacks 64-bit integer shifts,
                    # multiplies and min/max.
                    sc = 1.0 if dev else scale_w[li]  # 2**weight_exp (device path: already applied)
                    dc = 4096.0 - cdecay[li]
                    dv = 4096.0 - vdecay[li]
                    # v > threshold << 6 spikes (MSB alignment by 6 bits); a readout never spikes
                    th = np.float64(vth[li] << 6) if spiking[li] else 1.0e300
                    ub = u[base:base + sz]
                    vb = v[base:base + sz]
                    # Skip a layer at rest: no input, u = v = 0 and no bias leave every value at zero (and the
                    # outputs were allocated as zeros). Escape noise could still fire at v = 0: never skipped.
                    if cnt == 0 and e < 0 and bias_zero[li] and at_rest(ub, vb):
                        cnt_cur[li] = 0
                        continue
                    bb = biasf[base:base + sz]
                    if e >= 0:
                        lif_update_escape(acc, ub, vb, bb, sbuf, sc, dc, dv, th, esc_tab[e], wlanes)
                    elif small[li]:
                        lif_update_small(acc, ub, vb, bb, sbuf, sc, dc, dv, th)
                    else:
                        lif_update(acc, ub, vb, bb, sbuf, sc, dc, dv, th)
                    ncur = 0
                    for i in range(sz):  # branch-free compaction of the spikes into an index list
                        act_cur[base + ncur] = i
                        ncur += sbuf[i]
                    # ---- recording (per-layer decisions kept out of the neuron loop)
                    rs = rec_spk[li]
                    if rs >= 0:
                        out_spk[n, t, rs:rs + sz] = sbuf[:sz]
                    if rec_u[li] >= 0:
                        for i in range(sz):
                            out_u[n, t, rec_u[li] + i] = np.int32(u[base + i])
                    if rec_v[li] >= 0:
                        for i in range(sz):
                            out_v[n, t, rec_v[li] + i] = np.int32(v[base + i])
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
                if not spiking[li] and rec_cnt[li] >= 0:
                    for i in range(size[li]):
                        out_cnt[n, rec_cnt[li] + i] = np.int32(v[nrn_off[li] + i])
