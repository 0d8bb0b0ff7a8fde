"""Numba kernels of the fixed-point simulator. Arrays, scalars and RNG keys in; nothing else.

The arithmetic is exactly that of :mod:`quantal.compile.reference` (docs/ir.md); the Python code in
:mod:`quantal.hwsim.engine` validates the network and arguments, flattens layers and projections into the
arrays below and allocates the outputs. Layout (L layers, P projections, offsets in elements):

* neurons: layer l owns ``[nrn_off[l], nrn_off[l] + size[l])`` of the per-neuron arrays ``dcf = 4096 -
  current_decay``, ``dvf = 4096 - voltage_decay``, ``thf = threshold << 6`` and ``biasf = bias_mant << bias_exp``
  (float64 holding exact integers, see the neuron update); per layer ``spiking``, ``subtract`` (reset),
  ``esc`` (row of the escape-noise table ``esc_tab``, -1 for none), ``bias_zero`` and ``small`` (the layer
  cannot reach the 32-bit wraps);
* projections into layer l: ``tp_list[tp_ptr[l]:tp_ptr[l + 1]]``; projection p reads layer ``psrc[p]`` (-1:
  the input) ``pdelay[p]`` steps further back than the one-step synaptic delay;
* dense weights transposed, ``w[w_off[p] + j * col_stride(size) + i]`` = weight[i, j] (the synapses of one active
  input are contiguous, each column padded to whole vector blocks); conv2d kernels as ``w[w_off[p] + ((ci_g kh + ky)
  kw + kx) C_out + co]`` (the output channels of one kernel tap are contiguous) with the geometry in ``geo[p]`` (see
  :data:`GEO`) and a tap table per projection: input position q = y' W + x' reaches output position ``t_out[r]``
  through kernel tap ``t_tap[r]`` (ky kw + kx) for r in ``t_ptr[tab_off[p] + q] .. t_ptr[tab_off[p] + q + 1]``
  (geometry only, built once), and packed with the projection's output channels C_out as offsets into the
  channel-last sums and the kernel, ``t_pk[r] = t_out[r] C_out | t_tap[r] C_out << 32`` (one load per tap);
  ``rel`` (uint8) and ``wfx`` (reliable part) likewise at ``rel_off`` / ``fix_off`` when ``has_rel[p]`` /
  ``has_fix[p]``, except that a dense projection whose synapses all have one release byte
  stores one column of them (``rel_col[p]`` = 0, else ``col_stride(size)``: the release byte of (i, j) is
  ``rel[rel_off[p] + j * rel_col[p] + i]``);
* spikes: a ring of ``R = max delay + 2`` steps of per-layer index lists (in ``lists``, counts in
  ``hist_cnt``), so a projection of delay d reads step ``t - 1 - d`` while step t is written; the input as
  per-step index lists (the same array).

A conv2d projection scatters each active input's kernel taps into the outputs they reach; the dense matrix is
never built. Random streams v1 are computed inline (:func:`mix`); dense projections make 8 words of stream 1 at
once in vector registers and read them as 64 bytes (hwsim/simd.py: on a little-endian machine the byte order
``(word >> 8*b) & 0xFF`` of the specification); conv2d projections draw the word of each reached output.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .simd import (
    EXPAND_SLACK,
    LANES,
    add_block32,
    add_block32_rel,
    add_block64,
    add_block64_rel,
    add_taps,
    add_taps_rel,
    expand64,
    lif_sub_escape_lanes,
    lif_sub_if_lanes,
    lif_sub_lanes,
    lif_zero_escape_lanes,
    lif_zero_if_lanes,
    lif_zero_lanes,
    mask64,
    prefetch,
    readout_if_lanes,
    readout_lanes,
    transpose8,
)

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

#: Columns of the per-projection geometry array ``geo`` (conv2d only; zeros for dense).
GEO = ("c_in", "h_in", "w_in", "c_out", "h_out", "w_out", "kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw", "cin_g",
       "cout_g")  # fmt: skip


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
def layer_key(seed, stream, trial, sample, t, index):  # pragma: no cover - compiled
    # key(seed, stream, trial, sample, t, index): the prefix of streams 1 and 7 (index = projection; they absorb
    # j on top of it) and stream 2 (index = layer).
    return absorb(absorb(absorb(absorb(absorb(absorb(np.uint64(0), seed), stream), trial), sample), t), index)


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


# ------------------------------------------------------------------------------------ synaptic accumulation


#: Trailing elements after the last column of every flat weight / release array (the engine appends them): a
#: dense column of ``sz`` targets is processed in full vectors of ``padded(sz)`` lanes, reading up to 63 elements
#: into the next column (or this padding). The extra lanes land in ``acc[sz:]``, which nobody reads: without a
#: scalar tail the loops stay in 512/256-bit vectors (2.2x faster for 300 targets than with the tail).
PAD = 64


@njit(cache=True, inline="always")
def padded(sz):  # pragma: no cover - compiled
    # sz rounded up to a multiple of 64 lanes (8 words of stream-1 bytes)
    return (sz + 63) // 64 * 64


@njit(cache=True)
def col_stride(sz):  # pragma: no cover - compiled
    # Elements from one dense column to the next in the weight and release tables: the blocks the kernel reads, 32
    # lanes for layers of at most 32 targets, else padded(sz). With the tables 64-byte aligned, every column starts
    # on a 32- or 64-byte boundary, so that no int8 vector load of a block straddles two cache lines (docs/
    # performance.md, "What the kernel does", item 1: W2 and W1's AVX2 code measured faster).
    return 32 if sz <= 32 else padded(sz)


# inline: a call of a compiled function reference-counts each of its array arguments on entry and exit (an atomic
# add and subtract each: 24 per step of W2's two projections, 6% of its time); its loops are vector intrinsics
@njit(cache=True, inline="always")
def accumulate(  # pragma: no cover - compiled
    acc, cnt, idx, i0, sz, wT, w_off, has_rel, relT, rel_off, rel_col, has_fix, wfT, fix_off, hp, keys
):
    # Dense: acc[i] = sum over the cnt active inputs j = idx[i0 + a] of (weight_fixed[i, j] + xi_ij * weight[i, j]).
    # int16 or int32 accumulators on int8 weights, int64 on device weights (Q.16); the caller guarantees that the
    # whole sum cannot overflow, so no partial sum can either, and integer addition in any order gives the same
    # value. acc holds padded(sz) lanes, and the flat arrays PAD trailing elements; acc[sz:padded(sz)] is scratch.
    # One block of 64 targets at a time, summed over all the active inputs in vector registers (hwsim/simd.py:
    # the accumulator is loaded and stored once per block; measured 1.8-6.7x faster than four columns per pass
    # over the whole accumulator); stream 1's words are made there too, from the inputs' keys k_j made here.
    szp = padded(sz)
    for i in range(szp):
        acc[i] = 0
    if cnt == 0:
        return
    st = col_stride(sz)
    if has_rel:
        for a in range(cnt):
            keys[a] = absorb(hp, idx[i0 + a])  # key(seed, 1, trial, sample, t, p, j)
    if sz <= 32:  # one 32-lane block: half the work of 64 lanes for small layers (readouts)
        if has_rel:
            add_block32_rel(acc, wT, relT, keys, idx, i0, cnt, w_off, rel_off, rel_col, st, 0)
        else:
            add_block32(acc, wT, idx, i0, cnt, w_off, st, 0)
        if has_fix:
            add_block32(acc, wfT, idx, i0, cnt, fix_off, st, 0)
        return
    if has_rel:
        for b in range(0, szp, 64):
            add_block64_rel(acc, wT, relT, keys, idx, i0, cnt, w_off, rel_off, rel_col, st, b)
    else:
        for b in range(0, szp, 64):
            add_block64(acc, wT, idx, i0, cnt, w_off, st, b)
    if has_fix:
        for b in range(0, szp, 64):
            add_block64(acc, wfT, idx, i0, cnt, fix_off, st, b)


@njit(cache=True, inline="always")
def _target_byte(k, i):  # pragma: no cover - compiled
    # Stream 1 for one target: byte i % 8 of word(k, i // 8).
    return (mix(k + G * np.uint64(i // 8 + 1)) >> np.uint64(8 * (i % 8))) & np.uint64(0xFF)


@njit(cache=True, inline="always")
def _noisy_read(k, k7, i, e, er, has_rel, rel, rel_off, has_fix, s2w, w_off, s2f, fix_off, ntab):  # pragma: no cover
    # One read of synapse (target i, stored element e, its release byte at er): rint(sqrt(xi s2w + s2f) 2**16 z),
    # with xi the stream-1 draw of key k and z the normal deviate of lane i % 4 of word(k7, i // 4) (stream 7).
    xi = 1.0
    if has_rel:
        xi = 1.0 if _target_byte(k, i) <= rel[rel_off + er] else 0.0
    var = xi * s2w[w_off + e] + (s2f[fix_off + e] if has_fix else 0.0)
    lane = (mix(k7 + G * np.uint64(i // 4 + 1)) >> np.uint64(16 * (i % 4))) & np.uint64(0xFFFF)
    return np.int64(np.rint(np.sqrt(var) * 65536.0 * ntab[lane]))


@njit(cache=True, inline="always")
def sums_fit_int16(cnt, kind, g, wmax):  # pragma: no cover - compiled
    # |sum| <= n * wmax, n the most inputs that reach one target: cnt, and for a conv2d (kind 1, geometry g) at
    # most its fan-in cin_g * kh * kw (one kernel tap per input channel and output position). Below 2**15 the
    # int16 accumulator is exact and twice as wide per vector instruction (the int16 adds wrap modulo 2**16, so a
    # final sum in range is exact whatever the order)
    reach = cnt if kind == 0 else min(cnt, g[14] * g[6] * g[7])
    return reach * wmax < 32768


#: active inputs per pass of accumulate_conv: its plan holds 4 entries for each (see there)
CONV_CHUNK = 64


@njit(cache=True, inline="always")
def _conv_channel(j, ch, hw_in, c_out, kk, cin_g, cout_g):  # pragma: no cover - compiled
    # (c_lo, c_hi, co0, eb) of input j's channel ci = j // hw_in: its inputs c_lo .. c_hi - 1, its group's first
    # output channel co0 and kernel element (co0, ci_g, 0, 0) eb; ch itself while j stays in ch's channel
    if j < ch[1] and j >= ch[0]:
        return ch
    ci = j // hw_in
    grp = ci // cin_g
    co0 = grp * cout_g
    return ci * hw_in, (ci + 1) * hw_in, co0, (ci - grp * cin_g) * kk * c_out + co0


@njit(cache=True)
def accumulate_conv(  # pragma: no cover - compiled
    acc, scratch, plan, cnt, idx, at, sz, g, taps, w, w_off, has_rel, rel, rel_off, has_fix, wf, fix_off, hp
):
    # Conv2d: every active input j = idx[at + a] = (ci, y', x') scatters the taps of its group's kernels into
    # the outputs it reaches; target i = (co H_out + oy) W_out + ox uses byte i % 8 of word(k_j, i // 8) of
    # stream 1. Which output position each input position reaches through which kernel tap comes from the
    # projection's tap table (taps = (ptr, out, tap), built once by the engine; it depends on the geometry
    # only, not on the channels). The sums are gathered channel-last in ``scratch`` (index
    # (oy W_out + ox) C_out + co, so the output channels of one tap are contiguous in both the kernel and the
    # accumulator), then written channel-first (the flat neuron index) into ``acc``. Integer sums: the order
    # does not change them. ``scratch`` is all zeros on entry and is left so (the channel-first copy clears what
    # it reads), so it needs no clearing pass of its own.
    t_ptr, t_out, t_tap, t_pk = taps
    hw_in, c_out, kk, cin_g, cout_g = g[1] * g[2], g[3], g[6] * g[7], g[14], g[15]
    plane = g[4] * g[5]
    # the input channel ci = j // hw_in and what depends on it, divided out only when j leaves the channel: the
    # index lists are ascending, so that is at most once per channel, not twice per input (any order stays exact)
    ch = (0, 0, 0, 0)  # (c_lo, c_hi, co0, eb): channel ci's inputs are c_lo .. c_hi - 1; none yet
    # each tap r of input j: output position i0 = oy W_out + ox = t_out[r], kernel element e = (co0, ci_g, ky, kx)
    # (channel co at e + co - co0); the group's cout_g output channels in vectors (hwsim/simd.py). One loop per
    # kind, the branch outside: inside the tap loop it cost registers and a test per tap.
    if has_rel:
        for a in range(cnt):
            j = idx[at + a]
            ch = _conv_channel(j, ch, hw_in, c_out, kk, cin_g, cout_g)
            c_lo, co0, eb = ch[0], ch[2], ch[3]
            pos = j - c_lo
            k = absorb(hp, j)  # key(seed, 1, trial, sample, t, p, j)
            r0, r1 = t_ptr[pos], t_ptr[pos + 1]
            # the targets co plane + i0 lie a plane apart: one stream-1 word per channel
            add_taps_rel(scratch, co0, w, w_off + eb, rel, rel_off + eb, k, t_out, t_tap, r0, r1, c_out, cout_g,
                         co0 * plane, plane)  # fmt: skip
            if has_fix:
                add_taps(scratch, co0, wf, fix_off + eb, t_pk, r0, r1, cout_g)
    else:
        # Two passes over each chunk of CONV_CHUNK inputs: the first writes each input's kernel offset, its
        # group's first output channel co0 and its tap range into ``plan`` (one row of CONV_CHUNK each), the
        # second adds the taps. The second's loop then takes its bounds from memory already written instead of
        # from the chain idx -> channel -> t_ptr: W3's projections measured 10-25% faster than in one pass. Not
        # for stream 1, whose words cost more than that chain (one pass measured 6-15% faster there).
        for a0 in range(0, cnt, CONV_CHUNK):
            n = min(cnt - a0, CONV_CHUNK)
            for q in range(n):
                j = idx[at + a0 + q]
                ch = _conv_channel(j, ch, hw_in, c_out, kk, cin_g, cout_g)
                pos = j - ch[0]
                plan[q] = ch[3]
                plan[CONV_CHUNK + q] = ch[2]
                plan[2 * CONV_CHUNK + q] = t_ptr[pos]
                plan[3 * CONV_CHUNK + q] = t_ptr[pos + 1]
            for q in range(n):
                eb, co0 = plan[q], plan[CONV_CHUNK + q]
                r0, r1 = plan[2 * CONV_CHUNK + q], plan[3 * CONV_CHUNK + q]
                add_taps(scratch, co0, w, w_off + eb, t_pk, r0, r1, cout_g)
                if has_fix:
                    add_taps(scratch, co0, wf, fix_off + eb, t_pk, r0, r1, cout_g)
    if c_out % 8 == 0 and plane % 8 == 0:  # channel-last -> channel-first, in 8 x 8 blocks (hwsim/simd.py)
        transpose8(acc, scratch, c_out, plane)
    else:
        for co in range(c_out):
            dst = acc[co * plane:(co + 1) * plane]
            src = scratch[co:]
            for i0 in range(plane):
                dst[i0] = src[i0 * c_out]
                src[i0 * c_out] = 0


@njit(cache=True)
def read_noise(  # pragma: no cover - compiled
    acc, cnt, idx, at, sz, kind, g, taps, w_off, has_rel, rel, rel_off, rel_col, has_fix, fix_off, hp, hp7, s2w, s2f,
    ntab,
):
    # Device read noise (stream 7): each read of synapse (i, j) adds rint(sqrt(xi s2w + s2f) 2**16 z), z the
    # normal deviate of lane i % 4 of word(key(seed, 7, trial, sample, t, p, j), i // 4); xi is the same stream-1
    # draw as in the accumulation. Dense reads every (i, j) of an active j; conv2d the links of j.
    st = col_stride(sz)  # dense: the tables' column stride
    for a in range(cnt):
        j = idx[at + a]
        k = absorb(hp, j) if has_rel else np.uint64(0)
        k7 = absorb(hp7, j)
        if kind == 0:
            for i in range(sz):
                acc[i] += _noisy_read(k, k7, i, j * st + i, j * rel_col + i, has_rel, rel, rel_off, has_fix, s2w,
                                      w_off, s2f, fix_off, ntab)  # fmt: skip
        else:
            t_ptr, t_out, t_tap = taps
            hw_in, c_out, kk, cin_g, cout_g, plane = g[1] * g[2], g[3], g[6] * g[7], g[14], g[15], g[4] * g[5]
            ci = j // hw_in
            pos = j - ci * hw_in
            grp = ci // cin_g
            ci_g = ci - grp * cin_g
            for r in range(t_ptr[pos], t_ptr[pos + 1]):
                tap = (ci_g * kk + t_tap[r]) * c_out
                for co in range(grp * cout_g, (grp + 1) * cout_g):
                    i = co * plane + t_out[r]
                    acc[i] += _noisy_read(k, k7, i, tap + co, tap + co, has_rel, rel, rel_off, has_fix, s2w, w_off,
                                          s2f, fix_off, ntab)  # fmt: skip


# ------------------------------------------------------------------------------------------- neuron update


@njit(cache=True)  # not inline="always": Numba-level inlining keeps LLVM from vectorising the loops below
def _neuron(i, k, a_i, u, v, dcf, dvf, thf, bias, sbuf, th_add, subtract, spiking):  # pragma: no cover
    # The float64 update of a layer that can wrap 32 bits (the others take simd.lif_sub_lanes). Neuron k of the
    # flat state arrays (k = the layer's base + i, unsigned: no wrap-around check), i of the layer's buffers a and sbuf.
    # u and v are float64 holding exact integers: every intermediate is an integer of magnitude < 2**44 < 2**53,
    # products by powers of two are exact, and floor/trunc/min/max are exact, so the results equal the integer
    # arithmetic bit for bit (tests/hwsim) while the loop vectorises without 64-bit integer multiplies.
    # d = rz(u * (4096 - current_decay)) + (a << 6), with the 32-bit wraps of a << 6 and of the sum: rz is trunc
    # of an exact quotient by 4096.
    d = wrap32f(np.trunc(u[k] * dcf[k] * INV4096) + wrap32f(a_i * 64.0))
    d = _wrap24(d)
    # v = clip(rz(v * (4096 - voltage_decay)) + u + bias, -(2**23 - 1), 2**23 - 1)
    vv = min(max(np.trunc(v[k] * dvf[k] * INV4096) + d + bias[k], -F_VMAX), F_VMAX)
    th = thf[k]
    fire = spiking and vv > th + th_add  # strict; th_add is the escape-noise offset theta[U_i] (0 without)
    reset = vv - th if subtract else 0.0  # reset subtract: v -= threshold << 6; reset zero: v = 0
    v[k] = reset if fire else vv
    u[k] = d  # u is not reset
    sbuf[i] = fire


# One loop per combination of the layer's flags (reset subtract; readout), each calling _neuron with constants:
# a loop-invariant flag tested inside the loop keeps LLVM from vectorising it (measured: 2.7 instead of 0.7 ns
# per neuron), so the choice is made once per layer, outside the loop. They take the whole state arrays and the
# layer's base offset, not slices: slicing seven arrays for every call cost about 80 ns per layer and step in
# reference counting (measured), more than updating 256 neurons.


@njit(cache=True)
def lif_zero_wide(a, u, v, dcf, dvf, thf, bias, sbuf, base, sz):  # pragma: no cover - compiled
    b = np.uint64(base)
    for i in range(np.uint64(sz)):
        _neuron(i, b + i, a[i], u, v, dcf, dvf, thf, bias, sbuf, 0.0, False, True)


@njit(cache=True)
def lif_sub_wide(a, u, v, dcf, dvf, thf, bias, sbuf, base, sz):  # pragma: no cover - compiled
    b = np.uint64(base)
    for i in range(np.uint64(sz)):
        _neuron(i, b + i, a[i], u, v, dcf, dvf, thf, bias, sbuf, 0.0, True, True)


@njit(cache=True)
def readout_wide(a, u, v, dcf, dvf, thf, bias, sbuf, base, sz):  # pragma: no cover - compiled
    b = np.uint64(base)
    for i in range(np.uint64(sz)):
        _neuron(i, b + i, a[i], u, v, dcf, dvf, thf, bias, sbuf, 0.0, False, False)


@njit(cache=True, inline="always")
def lif_update(a, u, v, dcf, dvf, thf, bias, sbuf, base, sz, subtract, spiking):  # pragma: no cover - compiled
    """One step of a deterministic layer that can wrap 32 bits (neurons base .. base + sz - 1), by the loop
    specialised for its flags; layers that cannot wrap take the int32 update (lif_zero_int and friends)."""
    if not spiking:
        readout_wide(a, u, v, dcf, dvf, thf, bias, sbuf, base, sz)
    elif subtract:
        lif_sub_wide(a, u, v, dcf, dvf, thf, bias, sbuf, base, sz)
    else:
        lif_zero_wide(a, u, v, dcf, dvf, thf, bias, sbuf, base, sz)


@njit(cache=True)
def lif_update_escape(a, u, v, dcf, dvf, thf, bias, sbuf, base, sz, subtract, theta, lanes):  # pragma: no cover
    """One step of a layer with escape noise that can wrap 32 bits: spike iff v - (threshold << 6) > theta[U_i]
    (stream-2 lanes U), i.e. v > (threshold << 6) + theta[U_i] (exact: integers below 2**53)."""
    b = np.uint64(base)
    for i in range(np.uint64(sz)):
        _neuron(i, b + i, a[i], u, v, dcf, dvf, thf, bias, sbuf, theta[lanes[i]], subtract, True)


# ---- the integer neuron update of layers that cannot wrap 32 bits (engine: ``small``) is explicit vector code in
# int32 lanes (hwsim/simd.py: lif_sub_lanes and its variants): twice as many per vector as the float64 update
# above. Exactness: in such a layer |a << 6| <= 2**24, and the single wrap keeps |u| <= 2**23 (by induction from
# u = 0: |d| <= 2**23 + 2**24 before the wrap, within (-2**23, 2**23] after it), |v| <= 2**23 - 1 by the clip, so
# every intermediate fits 32 bits; the decays' rz(x f / 4096) is split so that no product exceeds 2**24
# (simd._rz_scale), and escape noise compares v with (threshold << 6) + theta[U_i] in 64 bits.


@njit(cache=True, inline="always")
def _clear_input(a_int, a_tot, sz, small):  # pragma: no cover - compiled
    """Zero a layer's synaptic input: the int32 buffer of a layer that cannot wrap, else the float64 one."""
    if small:
        for i in range(sz):
            a_int[i] = 0
    else:
        for i in range(sz):
            a_tot[i] = 0.0


@njit(cache=True, inline="always")
def _add_shifted(a_int, acc, sz, e, first):  # pragma: no cover - compiled
    """a += a_p with a_p = floor(sum * 2**e) as an integer: a left shift, or an arithmetic right shift (a floor)
    for e < 0, in a layer that cannot wrap (the sums stay below 2**24). The first projection of a step writes
    a = a_p instead (0 + a_p: the same value, without clearing a first). One loop per case: a flag tested inside
    the loop would keep it from vectorising. The shift counts are uint32 below 32 (|weight_exp| <= 8): with an
    int64 count Numba shifts in 64-bit lanes, half as many per vector (measured 23 against 10 ns for 256 lanes)."""
    sl, sr = np.uint32(e & 31), np.uint32(-e & 31)
    if first:
        if e >= 0:
            for i in range(sz):
                a_int[i] = np.int32(acc[i]) << sl
        else:
            for i in range(sz):
                a_int[i] = np.int32(acc[i]) >> sr
    elif e >= 0:
        for i in range(sz):
            a_int[i] += np.int32(acc[i]) << sl
    else:
        for i in range(sz):
            a_int[i] += np.int32(acc[i]) >> sr


@njit(cache=True, inline="always")
def _add_scaled(a_tot, acc, sz, sc, first):  # pragma: no cover - compiled
    """a += a_p with a_p = floor(sum * 2**weight_exp) (sc = 2**weight_exp, exact in float64), both wrapped to
    32 bits, in a layer that can wrap (the others add in int32: _add_shifted). The first projection of a step
    writes a = a_p: wrap32f(0 + a_p) = a_p, as a_p is already wrapped."""
    if first:
        for i in range(sz):
            a_tot[i] = wrap32f(np.floor(acc[i] * sc))
    else:
        for i in range(sz):
            a_tot[i] = wrap32f(a_tot[i] + wrap32f(np.floor(acc[i] * sc)))


@njit(cache=True, inline="always")
def compact(row, r0, n, tail_ok, out, cnt):  # pragma: no cover - compiled
    """Append the indices b < n of the nonzero bytes row[r0 + b] to ``out[cnt:]``, lowest first; returns the new
    count (offsets into whole arrays, not slices: a slice costs the reference counting of a new view). 64 bytes
    per mask, expanded to indices (hwsim/simd.py; ``out`` needs expand64's EXPAND_SLACK elements of slack). The
    last partial block is read whole when ``tail_ok`` (the caller guarantees that 64 bytes from its start lie in
    memory it owns), its bits from n on cleared; otherwise it is read byte by byte."""
    j0 = 0
    while j0 + 64 <= n:
        cnt = expand64(mask64(row, r0 + j0), j0, out, cnt)
        j0 += 64
    if j0 < n:
        if tail_ok:
            m = mask64(row, r0 + j0) & ((np.uint64(1) << np.uint64(n - j0)) - np.uint64(1))  # n - j0 < 64
        else:
            m = np.uint64(0)
            for b in range(n - j0):
                m |= np.uint64(row[r0 + j0 + b] != 0) << np.uint64(b)
        cnt = expand64(m, j0, out, cnt)
    return cnt


@njit(cache=True, inline="always")
def _zero_state(ui, vi, u, v, base, sz, small):  # pragma: no cover - compiled
    """u = v = 0 for a layer's neurons base .. base + sz - 1: in the int32 state of a layer that cannot wrap,
    else in the float64 one."""
    if small:
        ui[base:base + sz] = 0
        vi[base:base + sz] = 0
    else:
        u[base:base + sz] = 0
        v[base:base + sz] = 0


@njit(cache=True)
def at_rest(u, v, base, sz):  # pragma: no cover - compiled
    """True when every u and v of the layer (neurons base .. base + sz - 1) is zero."""
    for i in range(base, base + sz):
        if u[i] != 0.0 or v[i] != 0.0:
            return False
    return True


# ------------------------------------------------------------------------------------------------ the run


@njit(cache=True, parallel=True)
def run_kernel(  # pragma: no cover - compiled
    x, steps, seed, trial, sample_offset, chunk,
    size, nrn_off, dcf, dvf, thf, biasf, spiking, subtract, esc, esc_tab, bias_zero, forget, small, integ, tp_ptr,
    tp_list,
    psrc, pdelay, pkind, geo, tab_off, t_ptr, t_out, t_tap, t_pk, w_off, w, wmax, has_rel, rel_off, rel, rel_col,
    has_fix, fix_off, wfx, scale_w, qshift,
    dev, noise, s2w, s2f, ntab,
    rec_spk, rec_u, rec_v, rec_cnt, out_spk, out_u, out_v, out_cnt,
    dci, dvi, thi, biasi, esc_int, wexp,
):
    n_samples = x.shape[0]
    t_in = x.shape[1]
    n_in = x.shape[2]
    n_layers = size.shape[0]
    n_total = biasf.shape[0]
    max_delay = 0
    for p in range(pdelay.shape[0]):
        max_delay = max(max_delay, pdelay[p])
    ring = max_delay + 2  # slot t % ring is written at step t while steps t-1-d (d <= max_delay) are read
    max_size = 1
    for li in range(n_layers):
        max_size = max(max_size, size[li])
    n_words = (max_size + 3) // 4 + 1 + LANES // 4  # stream 2: 16-bit lanes for every neuron (+ a vector's slack)
    max_size = padded(max_size)  # the accumulators' scratch lanes (see accumulate)
    seed_u = np.uint64(seed)
    x_size = n_samples * t_in * n_in
    xf = x.reshape(x_size)  # the input flat (C-contiguous: a view), addressed by offsets in the step loop
    esc_flat = esc_int.reshape(esc_int.size)  # the escape tables, one after another (a view)
    levels = esc_int.shape[1]
    n_chunks = (n_samples + chunk - 1) // chunk
    for c in prange(n_chunks):
        # Per-chunk work buffers (reused for every sample of the chunk).
        # the state: float64 holding exact integers for layers that can wrap 32 bits (see _neuron), int32 for
        # the others (``small``, see simd.lif_sub_lanes); each layer uses one of the two pairs
        u = np.zeros(n_total, np.float64)
        v = np.zeros(n_total, np.float64)
        ui = np.zeros(n_total + LANES, np.int32)  # + the slack the int32 updates read (simd.lif_sub_lanes)
        vi = np.zeros(n_total + LANES, np.int32)
        # All index lists in one array, addressed by offsets (a slice would be a new view, reference-counted
        # with an atomic add and subtract each time): first the input's active channels per step (its step s at
        # lists[in_ptr[s]:in_ptr[s + 1]]; + expand64's slack), then the spikes of the last steps per layer, the
        # list of layer li at step slot at hist0 + slot * row + nrn_off[li]; EXPAND_SLACK elements for expand64's
        # last store (it may write past a layer's list into the next layer's list of the same step, which is
        # written after it)
        hist0 = t_in * n_in + EXPAND_SLACK
        row = n_total + EXPAND_SLACK
        lists = np.zeros(hist0 + ring * row, np.int32)
        hist_cnt = np.zeros((ring, n_layers), np.int64)
        in_ptr = np.zeros(t_in + 1, np.int64)
        a_tot = np.zeros(max_size, np.float64)  # a layer's synaptic input: float64 (wide) or int32 (small)
        a_int = np.zeros(max_size, np.int32)
        acc = np.zeros(max_size, np.int32)
        acc16 = np.zeros(max_size, np.int16)
        acc64 = np.zeros(max_size, np.int64)
        scr32 = np.zeros(max_size + LANES, np.int32)  # channel-last conv2d sums (+ add_taps' slack), zero between uses
        scr16 = np.zeros(max_size + LANES, np.int16)  # the same for sums that fit int16
        scr64 = np.zeros(max_size + LANES, np.int64)
        plan = np.zeros(4 * CONV_CHUNK, np.int64)  # accumulate_conv's per-input offsets and tap ranges
        sbuf = np.zeros(max_size, np.uint8)
        words = np.zeros(n_words, np.uint64)
        keys = np.zeros(max(n_in, n_total) + 1, np.uint64)  # stream 1's k_j of a projection's active inputs
        wlanes = words.view(np.uint16)  # lane i = (words[i // 4] >> 16*(i % 4)) & 0xFFFF
        # rest[li]: the layer's u and v are all zero (known without scanning them). Only layers that left rest
        # are cleared for the next sample, and a layer at rest with no input skips its step (see below).
        rest = np.ones(n_layers, np.bool_)
        for n in range(c * chunk, min(n_samples, (c + 1) * chunk)):
            sample = np.uint64(sample_offset + n)
            for li in range(n_layers):
                if not rest[li]:
                    _zero_state(ui, vi, u, v, nrn_off[li], size[li], small[li])
                    rest[li] = True
            cnt = 0
            for s in range(t_in):  # compaction of the input's spikes into per-step index lists
                # a row's last partial block may be read whole when 64 bytes past the row's end still lie in
                # x (C-contiguous: the next rows); only the last rows of x take the bit-by-bit tail
                r0 = (n * t_in + s) * n_in  # x[n, s] in the flat input
                tail_ok = r0 + n_in + 64 <= x_size
                cnt = compact(xf, r0, n_in, tail_ok, lists, cnt)
                in_ptr[s + 1] = cnt
            for t in range(steps):
                slot = t % ring
                # the next sample's input rows, a share per step, into the caches for its compaction (a hint)
                if n + 1 < min(n_samples, (c + 1) * chunk):
                    for s in range(t * t_in // steps, (t + 1) * t_in // steps):
                        r0 = ((n + 1) * t_in + s) * n_in  # x[n + 1, s]
                        for j0 in range(0, n_in, 64):
                            prefetch(xf, r0 + j0)
                for li in range(n_layers):
                    sz = size[li]
                    base = nrn_off[li]
                    # ---- synaptic input a = sum_p a_p over the projections into the layer (a_tot is cleared
                    # when the first projection with events arrives, or before the update of a layer without any)
                    total_cnt = 0
                    for q in range(tp_ptr[li], tp_ptr[li + 1]):
                        p = tp_list[q]
                        s = t - 1 - pdelay[p]  # the source step this projection delivers at step t
                        if s < 0:
                            continue
                        src = psrc[p]
                        if src < 0:
                            if s >= t_in:
                                continue
                            cnt = in_ptr[s + 1] - in_ptr[s]
                            i0 = in_ptr[s]
                        else:
                            ss = s % ring
                            cnt = hist_cnt[ss, src]
                            i0 = hist0 + ss * row + nrn_off[src]
                        if cnt == 0:
                            continue
                        first = total_cnt == 0  # the step's first projection with events writes a, not adds
                        if first and dev:
                            _clear_input(a_int, a_tot, sz, small[li])
                        total_cnt += cnt
                        hp = np.uint64(0)
                        if has_rel[p]:  # stream 1: k = key(seed, 1, trial, sample, t, p, j); hp absorbs all but j
                            hp = layer_key(seed_u, 1, trial, sample, t, p)
                        if dev:
                            if pkind[p] == 0:
                                accumulate(acc64, cnt, lists, i0, sz, w, w_off[p], has_rel[p], rel, rel_off[p],
                                           rel_col[p], has_fix[p], wfx, fix_off[p], hp, keys)
                            else:
                                accumulate_conv(acc64, scr64, plan, cnt, lists, i0, sz, geo[p],
                                                (t_ptr[tab_off[p]:], t_out, t_tap, t_pk), w, w_off[p],
                                                has_rel[p], rel, rel_off[p], has_fix[p], wfx, fix_off[p],
                                                hp)  # fmt: skip
                            if noise[p]:  # stream 7: key(seed, 7, trial, sample, t, p, j)
                                hp7 = layer_key(seed_u, 7, trial, sample, t, p)
                                read_noise(acc64, cnt, lists, i0, sz, pkind[p], geo[p],
                                           (t_ptr[tab_off[p]:], t_out, t_tap), w_off[p], has_rel[p], rel, rel_off[p],
                                           rel_col[p], has_fix[p], fix_off[p], hp, hp7, s2w, s2f, ntab)  # fmt: skip
                            qs = qshift[p]
                            for i in range(sz):
                                # a_p = floor(sum_q16 / 2**(16 - weight_exp)), a 32-bit value; a += a_p wraps
                                a_p = acc64[i] >> qs
                                a_p = ((a_p + 2**31) & 0xFFFFFFFF) - 2**31
                                a_tot[i] = wrap32f(a_tot[i] + np.float64(a_p))
                            continue
                        sc = scale_w[p]
                        if sums_fit_int16(cnt, pkind[p], geo[p], wmax[p]):
                            if pkind[p] == 0:
                                accumulate(acc16, cnt, lists, i0, sz, w, w_off[p], has_rel[p], rel, rel_off[p],
                                           rel_col[p], has_fix[p], wfx, fix_off[p], hp, keys)
                            else:  # the conv2d sums channel-last in scr16, then channel-first in acc16
                                accumulate_conv(acc16, scr16, plan, cnt, lists, i0, sz, geo[p],
                                                (t_ptr[tab_off[p]:], t_out, t_tap, t_pk), w, w_off[p],
                                                has_rel[p], rel, rel_off[p], has_fix[p], wfx, fix_off[p],
                                                hp)  # fmt: skip
                            if small[li]:  # straight from the int16 sums
                                _add_shifted(a_int, acc16, sz, wexp[p], first)
                            else:
                                _add_scaled(a_tot, acc16, sz, sc, first)
                            continue
                        if pkind[p] == 0:
                            accumulate(acc, cnt, lists, i0, sz, w, w_off[p], has_rel[p], rel, rel_off[p],
                                       rel_col[p], has_fix[p], wfx, fix_off[p], hp, keys)
                        else:
                            # the conv2d geometry and tap table (slices, so made only here)
                            accumulate_conv(acc, scr32, plan, cnt, lists, i0, sz, geo[p],
                                            (t_ptr[tab_off[p]:], t_out, t_tap, t_pk), w, w_off[p], has_rel[p],
                                            rel, rel_off[p], has_fix[p], wfx, fix_off[p], hp)  # fmt: skip
                        if small[li]:
                            _add_shifted(a_int, acc, sz, wexp[p], first)
                        else:
                            _add_scaled(a_tot, acc, sz, sc, first)
                    # ---- escape-noise uniforms, stream 2: k = key(seed, 2, trial, sample, t, layer)
                    e = esc[li]
                    if e >= 0:
                        k2 = layer_key(seed_u, 2, trial, sample, t, li)
                        for m in range((sz + 3) // 4):
                            words[m] = mix(k2 + G * np.uint64(m + 1))  # word(k, m), wrapping
                    # ---- neurons: int32 state for layers that cannot wrap 32 bits (simd.lif_sub_lanes), float64
                    # holding exact integers for the others (_neuron); both equal the reference bit for bit
                    # (tests/hwsim).
                    # Skip a layer at rest: no input, u = v = 0 and no bias leave every value at zero (and the
                    # outputs were allocated as zeros). Escape noise could still fire at v = 0: never skipped.
                    if total_cnt == 0:
                        if e < 0 and bias_zero[li] and (rest[li] or forget[li] or (
                                at_rest(ui, vi, base, sz) if small[li] else at_rest(u, v, base, sz))):  # fmt: skip
                            if forget[li] and not rest[li]:
                                # a memoryless layer (full current and voltage decay) with no input and no bias:
                                # this step's update gives u = rz(u * 0) + 0 = 0 and v = 0, and no spike
                                # (0 > threshold << 6 never holds, thresholds are >= 0); set, not computed
                                _zero_state(ui, vi, u, v, base, sz, small[li])
                            rest[li] = True
                            hist_cnt[slot, li] = 0
                            continue
                        _clear_input(a_int, a_tot, sz, small[li])
                    rest[li] = False
                    if small[li]:  # the int32 update (dev runs are never small: engine)
                        if e >= 0 and subtract[li]:  # escape noise: the layer's table at e * levels of esc_flat
                            lif_sub_escape_lanes(a_int, ui, vi, dci, dvi, thi, biasi, sbuf, base, sz, esc_flat,
                                                 e * levels, wlanes)  # fmt: skip
                        elif e >= 0:
                            lif_zero_escape_lanes(a_int, ui, vi, dci, dvi, thi, biasi, sbuf, base, sz, esc_flat,
                                                  e * levels, wlanes)  # fmt: skip
                        elif integ[li]:  # integrate-and-fire: no decay products (simd.lif_sub_if_lanes)
                            if not spiking[li]:
                                readout_if_lanes(a_int, ui, vi, dci, dvi, thi, biasi, sbuf, base, sz)
                            elif subtract[li]:
                                lif_sub_if_lanes(a_int, ui, vi, dci, dvi, thi, biasi, sbuf, base, sz)
                            else:
                                lif_zero_if_lanes(a_int, ui, vi, dci, dvi, thi, biasi, sbuf, base, sz)
                        elif not spiking[li]:  # vectors of int32 lanes (hwsim/simd.py)
                            readout_lanes(a_int, ui, vi, dci, dvi, thi, biasi, sbuf, base, sz)
                        elif subtract[li]:
                            lif_sub_lanes(a_int, ui, vi, dci, dvi, thi, biasi, sbuf, base, sz)
                        else:
                            lif_zero_lanes(a_int, ui, vi, dci, dvi, thi, biasi, sbuf, base, sz)
                    elif e >= 0:
                        lif_update_escape(a_tot, u, v, dcf, dvf, thf, biasf, sbuf, base, sz, subtract[li],
                                          esc_tab[e], wlanes)
                    else:
                        lif_update(a_tot, u, v, dcf, dvf, thf, biasf, sbuf, base, sz, subtract[li], spiking[li])
                    # the spikes into an index list (the list of layer li starts at lists[l0]); sbuf holds
                    # padded(sz) bytes, so its last partial block is read whole (bytes past sz masked off)
                    l0 = hist0 + slot * row + base
                    ncur = compact(sbuf, 0, sz, True, lists, l0) - l0
                    hist_cnt[slot, li] = ncur
                    # ---- recording (per-layer decisions kept out of the neuron loop)
                    rs = rec_spk[li]
                    if rs >= 0:
                        out_spk[n, t, rs:rs + sz] = sbuf[:sz]
                    if rec_u[li] >= 0:
                        for i in range(sz):
                            out_u[n, t, rec_u[li] + i] = ui[base + i] if small[li] else np.int32(u[base + i])
                    if rec_v[li] >= 0:
                        for i in range(sz):
                            out_v[n, t, rec_v[li] + i] = vi[base + i] if small[li] else np.int32(v[base + i])
                    rc = rec_cnt[li]
                    if rc >= 0 and spiking[li]:
                        for i in range(sz):
                            out_cnt[n, rc + i] += sbuf[i]
            # a readout's count is its final v
            for li in range(n_layers):
                if not spiking[li] and rec_cnt[li] >= 0:
                    for i in range(size[li]):
                        k = nrn_off[li] + i
                        out_cnt[n, rec_cnt[li] + i] = vi[k] if small[li] else np.int32(v[k])


# --------------------------------------------------------------- stochastic dense and conv2d for training
# The fake-quant model's stochastic projections (train/fakequant.py), forward and backward, with the same
# stream-1 draws as run_kernel: row r of ``src`` is sample ``samples[r]`` at step ``steps[r]``; input j active in
# row r draws k = key(seed, 1, trial, samples[r], steps[r], p, j), and target i transmits iff byte i of its words
# is <= release[i, j]. Values are integers held in float64 (exact sums).


@njit(cache=True, inline="always")
def _release_words(k, words, nw):  # pragma: no cover - compiled
    for m in range(nw):
        words[m] = mix(k + G * np.uint64(m + 1))  # word(k, m), wrapping


@njit(cache=True)
def release_row_keys(samples, steps, seed, trial, proj):  # pragma: no cover - compiled
    """Per row r the stream-1 prefix key(seed, 1, trial, samples[r], steps[r], p) (j is absorbed per input)."""
    out = np.empty(samples.shape[0], np.uint64)
    for r in range(samples.shape[0]):
        out[r] = layer_key(np.uint64(seed), 1, trial, np.uint64(samples[r]), steps[r], proj)
    return out


@njit(cache=True, parallel=True)
def release_dense_forward(src, keys, wT, relT, out):  # pragma: no cover - compiled
    """out[r, i] = sum over active j of src[r, j] xi_rji w[i, j]; ``wT``/``relT`` are (n_in, size), ``keys`` the
    rows' prefixes (:func:`release_row_keys`)."""
    n_rows, n_in = src.shape
    size = wT.shape[1]
    nw = (size + 7) // 8
    for r in prange(n_rows):
        words = np.zeros(nw + 1, np.uint64)
        wbytes = words.view(np.uint8)
        hp = keys[r]
        for i in range(size):
            out[r, i] = 0.0
        for j in range(n_in):
            x = src[r, j]
            if x == 0.0:
                continue
            _release_words(absorb(hp, j), words, nw)
            for i in range(size):
                out[r, i] += x * wT[j, i] * (wbytes[i] <= relT[j, i])


@njit(cache=True, parallel=True)
def release_dense_backward(src, keys, wT, relT, grad, gwT, gsrc, need_src):  # pragma: no cover - compiled
    """The gradients of :func:`release_dense_forward`: ``gwT[j, i] = sum_r grad[r, i] xi_rji src[r, j]`` (one
    thread per input column j: no two threads write the same entry) and, when ``need_src``, for the active
    entries ``gsrc[r, j] = sum_i grad[r, i] xi_rji w[i, j]``."""
    n_rows, n_in = src.shape
    size = wT.shape[1]
    nw = (size + 7) // 8
    for j in prange(n_in):
        words = np.zeros(nw + 1, np.uint64)
        wbytes = words.view(np.uint8)
        for i in range(size):
            gwT[j, i] = 0.0
        for r in range(n_rows):
            x = src[r, j]
            if x == 0.0:
                continue
            _release_words(absorb(keys[r], j), words, nw)
            if need_src:
                acc = 0.0
                for i in range(size):
                    xi = 1.0 if wbytes[i] <= relT[j, i] else 0.0
                    gwT[j, i] += grad[r, i] * xi * x
                    acc += grad[r, i] * xi * wT[j, i]
                gsrc[r, j] = acc
            else:
                for i in range(size):
                    if wbytes[i] <= relT[j, i]:
                        gwT[j, i] += grad[r, i] * x


@njit(cache=True, parallel=True)
def release_links_forward(src, keys, ptr, li, lk, m, rel, out):  # pragma: no cover - compiled
    """A stochastic conv2d projection's sum over its links (target li[l], kernel element lk[l] for the links
    ptr[j]:ptr[j + 1] of input j): ``out[r, i] = sum over active j and their links of src[r, j] m[k] [byte <=
    rel[k]]``, byte i % 8 of word(key(..., j), i // 8) as in :func:`accumulate_conv`."""
    n_rows, n_src = src.shape
    size = out.shape[1]
    for r in prange(n_rows):
        for i in range(size):
            out[r, i] = 0.0
        for j in range(n_src):
            x = src[r, j]
            if x == 0.0:
                continue
            kj = absorb(keys[r], j)
            for lnk in range(ptr[j], ptr[j + 1]):
                i = li[lnk]
                e = lk[lnk]
                if _target_byte(kj, i) <= rel[e]:
                    out[r, i] += x * m[e]


@njit(cache=True, parallel=True)
def release_links_backward(src, keys, ptr, li, lk, m, rel, grad, gm_parts, gsrc, need_src):  # pragma: no cover
    """The gradients of :func:`release_links_forward`: ``gm_parts[c]`` holds chunk c's part of ``gm[k] = sum
    grad[r, i] xi src[r, j]`` (rows split into ``len(gm_parts)`` chunks, one per thread: no two threads write
    the same entry; the caller sums the parts) and, when ``need_src``, for the active entries ``gsrc[r, j] =
    sum over j's links of grad[r, i] xi m[k]``."""
    n_rows, n_src = src.shape
    n_chunks = gm_parts.shape[0]
    for c in prange(n_chunks):
        gm = gm_parts[c]
        for e in range(gm.shape[0]):
            gm[e] = 0.0
        for r in range(c * n_rows // n_chunks, (c + 1) * n_rows // n_chunks):
            for j in range(n_src):
                x = src[r, j]
                if x == 0.0:
                    continue
                kj = absorb(keys[r], j)
                acc = 0.0
                for lnk in range(ptr[j], ptr[j + 1]):
                    i = li[lnk]
                    e = lk[lnk]
                    if _target_byte(kj, i) <= rel[e]:
                        gm[e] += grad[r, i] * x
                        acc += grad[r, i] * m[e]
                if need_src:
                    gsrc[r, j] = acc


@njit(cache=True, parallel=True)
def neuron_train_forward(a, u, v, dcf, dvf, thf, bias, th_add, has_escape, wide, subtract, spiking, escape_scale,
                         unit, beta, s_out, u_out, v_out, sd_out):  # fmt: skip  # pragma: no cover - compiled
    """One step of a fake-quant neuron layer for rows of a batch: the integers of :func:`_neuron` (the same
    formulas, written out because the training step also needs v before the reset), and per neuron
    ``sd_out = ds/dx``, the surrogate derivative at the distance to threshold x = v - (threshold << 6):
    SuperSpike ``1 / (unit (1 + beta |x / unit|)**2)`` for deterministic neurons, the logistic escape
    function's own ``sigmoid'(x / S) / S`` for noisy ones (``unit`` = v units per float unit, S the escape
    scale). ``th_add[r, i]`` is the escape offset theta[U] when ``has_escape``."""
    n_rows, size = a.shape
    for r in prange(n_rows):
        for i in range(size):
            if wide:  # 32-bit wraps of a << 6 and of the sum; rz(u (4096 - decay)) = trunc of an exact quotient
                d = wrap32f(np.trunc(u[r, i] * dcf[i] * INV4096) + wrap32f(a[r, i] * 64.0))
            else:
                d = np.trunc(u[r, i] * dcf[i] * INV4096) + a[r, i] * 64.0
            d = _wrap24(d)  # one wrap into (-2**23, 2**23]
            # v = clip(rz(v (4096 - voltage_decay)) + u + bias, -(2**23 - 1), 2**23 - 1)
            vv = min(max(np.trunc(v[r, i] * dvf[i] * INV4096) + d + bias[i], -F_VMAX), F_VMAX)
            u_out[r, i] = d  # u is not reset
            if not spiking:
                s_out[r, i] = 0.0
                v_out[r, i] = vv
                sd_out[r, i] = 0.0
                continue
            x = vv - thf[i]
            off = th_add[r, i] if has_escape else 0.0
            fire = x > off  # strict threshold (integers)
            s_out[r, i] = 1.0 if fire else 0.0
            if fire:
                v_out[r, i] = vv - thf[i] if subtract else 0.0  # v -= threshold << 6, or v = 0
            else:
                v_out[r, i] = vv
            if has_escape:
                sig = 1.0 / (1.0 + np.exp(-x / escape_scale))
                sd_out[r, i] = sig * (1.0 - sig) / escape_scale
            else:
                z = 1.0 + beta * abs(x / unit)
                sd_out[r, i] = 1.0 / (unit * z * z)


@njit(cache=True, parallel=True)
def neuron_train_backward(gs, gu, gv, s, sd, cdf, vdf, subtract, ga, gu_prev, gv_prev, gbias_parts):  # pragma: no cover
    """The straight-through gradient of :func:`neuron_train_forward` (the same equations without rounding):
    v1 = v vdf + u' + bias, u' = u cdf + 64 a, s = surrogate(v1 - th), v' = v1 - s th | v1 (1 - s) (no
    gradient through the reset's s). ``cdf``/``vdf`` are (4096 - decay) / 4096; ``gbias_parts[c]`` holds
    chunk c's part of the bias gradient (rows split into chunks; the caller sums them)."""
    n_rows, size = gs.shape
    n_chunks = gbias_parts.shape[0]
    for c in prange(n_chunks):
        gb = gbias_parts[c]
        for i in range(size):
            gb[i] = 0.0
        for r in range(c * n_rows // n_chunks, (c + 1) * n_rows // n_chunks):
            for i in range(size):
                g1 = gv[r, i] if subtract else gv[r, i] * (1.0 - s[r, i])
                g1 += gs[r, i] * sd[r, i]
                gb[i] += g1
                gv_prev[r, i] = g1 * vdf[i]
                g_u = gu[r, i] + g1
                gu_prev[r, i] = g_u * cdf[i]
                ga[r, i] = 64.0 * g_u


# ----------------------------------------------------------------------------------- Numba's on-disk cache


def _drop_stale_cache() -> None:
    """Numba keys each cached kernel on the timestamp of its own source file, but these kernels also carry code
    generated by hwsim/simd.py, and device_kernel.py's carry ``mix`` from this file: after a change to simd.py
    alone (an edit, a checkout), the cache would go on serving the old machine code. A fingerprint of both
    files, kept beside the cache, drops the cached kernels of this file and of device_kernel.py when it changes
    (they compile again on first use). A cache folder that cannot be written is left alone."""
    import glob
    import hashlib
    import os

    try:
        folder = run_kernel._cache._cache_path
    except AttributeError:  # pragma: no cover - caching disabled
        return
    here = os.path.dirname(os.path.abspath(__file__))
    h = hashlib.sha256()
    for name in ("simd.py", "kernels.py"):
        with open(os.path.join(here, name), "rb") as f:
            h.update(f.read())
    stamp = os.path.join(folder, "kernels.sources-sha256")
    try:
        with open(stamp) as f:
            if f.read() == h.hexdigest():
                return
    except OSError:
        pass
    try:
        os.makedirs(folder, exist_ok=True)
        for pattern in ("kernels.*.nbi", "kernels.*.nbc", "device_kernel.*.nbi", "device_kernel.*.nbc"):
            for path in glob.glob(os.path.join(folder, pattern)):
                os.remove(path)
        tmp = f"{stamp}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(h.hexdigest())
        os.replace(tmp, stamp)  # atomic: a concurrent reader sees the old stamp or the new one
    except OSError:  # pragma: no cover - a read-only cache folder
        pass


_drop_stale_cache()
