"""hwsim's explicit vector code (hwsim/simd.py) against plain numpy, the kernels built on it against the reference
executor, and an AVX2-only code generation of all of it against the reference too."""

import os
import platform
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba import njit

from quantal.compile import reference, streams
from quantal.compile.testing import random_network, random_spikes
from quantal.hwsim import simulate
from quantal.hwsim.kernels import compact
from quantal.hwsim.simd import (
    AVX2_FEATURES,
    EXPAND_SLACK,
    LANES,
    add_block32,
    add_block32_rel,
    add_block64,
    add_block64_rel,
    add_taps,
    add_taps_rel,
    codegen_isa,
    expand64,
    mask64,
    transpose8,
)

#: AVX-512 F, BW, VL, DQ and CD besides AVX2's features: what Skylake-X and later Intel CPUs and AMD Zen 4 have
AVX512_FEATURES = "+avx512f,+avx512bw,+avx512vl,+avx512dq,+avx512cd," + AVX2_FEATURES

ALL = ("spikes", "u", "v", "counts")


@njit  # not cached: a cached wrapper would keep the simd code it was compiled with
def _mask(row, j0):  # pragma: no cover - compiled
    return mask64(row, j0)


@njit  # not cached: a cached wrapper would keep the simd code it was compiled with
def _expand(m, j0, out, cnt):  # pragma: no cover - compiled
    return expand64(m, j0, out, cnt)


@njit  # not cached: a cached wrapper would keep the simd code it was compiled with
def _blocks(acc, w, rel, keys, idx, cnt, off, roff, rcol, sz, stochastic, narrow):  # pragma: no cover - compiled
    if narrow:  # one 32-lane block
        if stochastic:
            add_block32_rel(acc, w, rel, keys, idx, 0, cnt, off, roff, rcol, sz, 0)
        else:
            add_block32(acc, w, idx, 0, cnt, off, sz, 0)
        return
    for b in range(0, acc.shape[0], 64):
        if stochastic:
            add_block64_rel(acc, w, rel, keys, idx, 0, cnt, off, roff, rcol, sz, b)
        else:
            add_block64(acc, w, idx, 0, cnt, off, sz, b)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 100), st.sampled_from([0.0, 0.05, 0.5, 1.0]), st.booleans())
def test_mask64_and_expand64_list_the_nonzero_bytes_in_order(seed, cnt, density, as_bool):
    rng = np.random.default_rng(seed)
    j0 = int(rng.integers(0, 40))
    row = (rng.random(j0 + 64) < density) * rng.integers(1, 256, j0 + 64)  # any nonzero byte counts
    row = (row != 0) if as_bool else row.astype(np.uint8)  # the block ends at the array's end
    m = _mask(row, j0)
    want = np.flatnonzero(row[j0:j0 + 64])
    assert int(m) == sum(1 << int(b) for b in want)
    base = int(rng.integers(0, 2**20))
    out = np.full(cnt + 64 + EXPAND_SLACK, -7, np.int32)
    end = _expand(np.uint64(m), base, out, cnt)
    assert end == cnt + len(want) and np.array_equal(out[cnt:end], base + want)
    assert (out[:cnt] == -7).all() and (out[end + EXPAND_SLACK:] == -7).all()  # at most the slack is written


@njit  # not cached: a cached wrapper would keep the simd code it was compiled with
def _compact(row, r0, n, tail_ok, out):  # pragma: no cover - compiled
    return compact(row, r0, n, tail_ok, out, 3)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 300), st.sampled_from([0.0, 0.05, 0.5, 1.0]), st.booleans(),
       st.integers(0, 70))
def test_compact_lists_the_nonzero_bytes_of_a_row(seed, n, density, tail_ok, r0):
    """Whole 64-byte blocks, then the tail read as a whole block (bytes past n nonzero, so a missed mask shows)
    or byte by byte; the row starts at offset r0 of its array (bytes before it nonzero too)."""
    rng = np.random.default_rng(seed)
    buf = np.ones(r0 + n + 64, np.uint8)  # what precedes and follows the row in its array
    buf[r0:r0 + n] = rng.random(n) < density
    out = np.full(3 + n + EXPAND_SLACK, -7, np.int32)
    end = _compact(buf, r0, n, tail_ok, out)
    want = np.flatnonzero(buf[r0:r0 + n])
    assert end == 3 + len(want) and np.array_equal(out[3:end], want) and (out[:3] == -7).all()


@njit  # not cached: a cached wrapper would keep the simd code it was compiled with
def _taps(dst, doff, src, soff, rel, roff, k, t_out, t_tap, r0, r1, c, n, i0, stride, stochastic):  # pragma: no cover
    if stochastic:
        add_taps_rel(dst, doff, src, soff, rel, roff, k, t_out, t_tap, r0, r1, c, n, i0, stride)
    else:
        add_taps(dst, doff, src, soff, t_out * c | (t_tap * c) << 32, r0, r1, n)  # the engine's packed table


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([8, 16]) | st.integers(0, 40),
       st.sampled_from([8, 16, 64, 256]) | st.integers(1, 300), st.booleans(),
       st.sampled_from([np.int16, np.int32, np.int64]), st.integers(0, 12))  # fmt: skip
def test_add_taps_adds_a_conv_inputs_taps_with_their_stream_1_draws(seed, n, stride, stochastic, dtype, taps):
    """A conv2d input's taps r0 .. r1 - 1, each adding n output channels (a plane apart: target
    i0 + t_out[r] + l stride) of kernel row t_tap[r] to position t_out[r]'s sums (taps may share a position), against
    numpy and the stream-1 bytes of quantal.compile.streams; the slack past each tap's n elements is left as it was.
    Strides that are multiples of 8 take the path that reuses a tap's words for the next taps of the same words.
    Without stream 1 the table is packed as the engine packs it (t_out[r] c | t_tap[r] c << 32)."""
    rng = np.random.default_rng(seed)
    c = n + int(rng.integers(0, 3))  # the tables' row length: at least the n channels a tap adds
    doff, soff, roff, i0, r0 = (int(v) for v in rng.integers(0, 20, 5))
    n_pos, n_row = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    t_out = rng.integers(0, n_pos, r0 + taps + 3).astype(np.int64)  # entries outside r0 .. r1 - 1 are not read
    t_tap = rng.integers(0, n_row, r0 + taps + 3).astype(np.int64)
    src = rng.integers(-128, 128, soff + n_row * c + LANES).astype(np.int8)
    rel = rng.integers(0, 256, roff + n_row * c + LANES).astype(np.uint8)
    dst = rng.integers(-1000, 1000, doff + n_pos * c + LANES).astype(dtype)
    k = np.uint64(streams.key(seed, 1, 0, 3, 2, 1, 7))
    want = dst.copy()
    _taps(dst, doff, src, soff, rel, roff, k, t_out, t_tap, r0, r0 + taps, c, n, i0, stride, stochastic)
    for r in range(r0, r0 + taps):
        o, e = doff + t_out[r] * c, t_tap[r] * c
        add = src[soff + e:soff + e + n].astype(np.int64)
        if stochastic and n:
            i = (i0 + t_out[r] + stride * np.arange(n)).astype(np.uint64)
            draws = (streams.word(k, i // np.uint64(8)) >> (np.uint64(8) * (i % np.uint64(8)))) & np.uint64(255)
            add = add * (draws <= rel[roff + e:roff + e + n])
        want[o:o + n] += add.astype(want.dtype)
    assert np.array_equal(dst, want)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 200), st.integers(0, 40), st.booleans(), st.booleans(),
       st.booleans())  # fmt: skip
def test_add_block64_sums_the_columns_and_draws_stream_1(seed, sz, cnt, stochastic, wide, one_column):
    """Blocks of 64 targets (the last partial, its lanes past sz scratch) against a numpy sum, with stream 1's
    bytes from quantal.compile.streams; the release bytes per synapse or (``one_column``) one column of them that
    every input reads (column stride 0)."""
    rng = np.random.default_rng(seed)
    n_src = 50
    off, roff = int(rng.integers(0, 9)), int(rng.integers(0, 9))
    w = rng.integers(-128, 128, off + n_src * sz + 64).astype(np.int8)
    rcol = 0 if one_column else sz
    rel = rng.integers(0, 256, roff + (1 if one_column else n_src) * sz + 64).astype(np.uint8)
    idx = np.sort(rng.choice(n_src, cnt, replace=False)).astype(np.int32)
    hp = streams.key(seed, 1, 0, 3, 2, 1)  # key(seed, 1, trial, sample, t, p): kernels absorb j on top of it
    keys = np.array([streams.key(seed, 1, 0, 3, 2, 1, j) for j in idx] or [0], np.uint64)
    assert hp.dtype == np.uint64
    acc = np.full((sz + 63) // 64 * 64, 5, np.int32 if wide else np.int16)  # blocks add into what is there
    _blocks(acc, w, rel, keys, idx, cnt, off, roff, rcol, sz, stochastic, sz <= 32 and seed % 2 == 0)
    cols = np.stack([w[off + j * sz: off + (j + 1) * sz] for j in idx]).astype(np.int64) if cnt else np.zeros((0, sz))
    if stochastic and cnt:
        i = np.arange(sz, dtype=np.uint64)
        draws = (streams.word(keys[:, None], i // np.uint64(8)) >> (np.uint64(8) * (i % np.uint64(8)))) & np.uint64(255)
        rcols = np.stack([rel[roff + j * rcol: roff + j * rcol + sz] for j in idx])
        cols = cols * (draws <= rcols)
    assert np.array_equal(acc[:sz].astype(np.int64), 5 + cols.sum(0))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(1, 400), min_size=2, max_size=4),
       st.sampled_from([0.02, 0.3, 0.9]))  # fmt: skip
def test_wide_layers_equal_the_reference(seed, sizes, density):
    """Layers and inputs wider than one 64-lane block, with partial last blocks, at sparse and dense activity."""
    rng = np.random.default_rng(seed)
    net = random_network(rng, sizes, release=(None, "random", 0.3, "random")[seed % 4], escape=bool(seed % 2),
                         readout=bool(seed % 3))  # fmt: skip
    x = random_spikes(rng, 2, 4, sizes[0], density)
    kw = dict(steps=6, seed=seed, trials=2)
    want = reference.simulate(net, x, record=ALL, **kw)
    got = simulate(net, x, record=ALL, **kw)
    for k in want:
        assert np.array_equal(got[k], want[k]), k


@njit  # not cached: a cached wrapper would keep the simd code it was compiled with
def _transpose(dst, src, c, p):  # pragma: no cover - compiled
    transpose8(dst, src, c, p)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 12), st.booleans(), st.integers(0, 2**32 - 1))
def test_transpose8_turns_channel_last_sums_channel_first(c8, p8, wide, seed):
    c, p = 8 * c8, 8 * p8
    rng = np.random.default_rng(seed)
    src = rng.integers(-(2**31), 2**31, c * p).astype(np.int64 if wide else np.int32)
    dst = np.full(c * p + 3, 7, src.dtype)  # elements past c p stay untouched
    want = src.reshape(p, c).T.ravel()
    _transpose(dst, src, c, p)
    assert np.array_equal(dst[:c * p], want) and (dst[c * p:] == 7).all()
    assert not src.any()  # what it read is left zero: the conv2d scratch needs no clearing pass


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["avx2", "other-multiply"])
def test_avx2_code_generation_equals_the_reference(tmp_path, variant):
    """The kernels compiled for an AVX2-only CPU (what AMD EPYC Zen 2/3 and older Intel machines run), in a fresh
    process with its own Numba cache: 256-bit vectors and 64-bit multiplies built from 32-bit ones, the same bits
    as the reference. ``other-multiply``: the host's code with the stream-1 words' multiply the host does not
    take (plain 64-bit on AVX2, built from 32-bit ones with AVX-512 DQ), so every machine checks both forms."""
    script = textwrap.dedent("""
        import numpy as np
        from quantal.compile import reference
        from quantal.compile.testing import random_graph, random_network, random_spikes
        from quantal.hwsim import simd
        if VARIANT == "other-multiply":
            host = simd._has_vpmullq()
            simd._has_vpmullq = lambda: not host  # read when the intrinsics compile, which is below
        from quantal.hwsim import engine, simulate
        assert VARIANT != "avx2" or engine.ISA == "avx2", engine.ISA
        for seed in range(4):
            rng = np.random.default_rng(seed)
            nets = [random_network(rng, [150, 90, 70, 10], release="random" if seed % 2 else 0.6, escape=True,
                                   readout=True),
                    random_graph(rng, release="random", weight_fixed=True, escape=bool(seed % 2))]
            for net in nets:
                shape = net.input_shape
                x = random_spikes(rng, 3, 5, int(np.prod(shape))).reshape(3, 5, *shape)
                kw = dict(steps=7, seed=seed, trials=2)
                want = reference.simulate(net, x, record=("spikes", "u", "v", "counts"), **kw)
                got = simulate(net, x, record=("spikes", "u", "v", "counts"), **kw)
                assert all(np.array_equal(got[k], want[k]) for k in want)
        from numba import njit
        from quantal.hwsim.simd import transpose8
        tr = njit(lambda d, s, c, p: transpose8(d, s, c, p))
        for c, p in ((8, 8), (16, 64), (24, 16)):
            for dt in (np.int32, np.int64):
                src = np.arange(c * p).astype(dt) * 7 - 100
                dst, want = np.zeros(c * p, dt), src.reshape(p, c).T.ravel()
                tr(dst, src, c, p)
                assert np.array_equal(dst, want) and not src.any()
        print("avx2 ok")
    """).replace("VARIANT", repr(variant))  # fmt: skip
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    if variant == "avx2":
        env.update(NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES=AVX2_FEATURES)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=1200)
    assert r.returncode == 0 and "avx2 ok" in r.stdout, r.stderr[-2000:]


def test_the_isa_follows_numbas_code_generation(monkeypatch):
    from numba.core import config

    monkeypatch.setattr(config, "CPU_FEATURES", AVX2_FEATURES)
    assert codegen_isa() == "avx2"
    monkeypatch.setattr(config, "CPU_FEATURES", AVX512_FEATURES)
    assert codegen_isa() == "avx512"


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86-64 code generation")
def test_avx512_code_generation_compiles_anywhere(tmp_path, monkeypatch):
    """The kernels' AVX-512 code, compiled (not run) on any x86-64 host, in a fresh process with its own Numba
    cache: on a CPU without AVX-512 the suite runs only the AVX2 code, and this keeps the AVX-512 path's
    intrinsics compiling there too, with 512-bit vectors, ``vpcompressd`` (expand64) and ``vpmullq`` (the
    stream-1 multiply) in the machine code. The argument types come from runs of a dense network and a conv2d
    graph here, with stochastic synapses and escape noise; the run kernel's every branch is compiled for them."""
    import pickle

    import numba

    from quantal.compile.testing import random_graph
    from quantal.hwsim import engine, kernels

    sigs = []
    real = kernels.run_kernel

    def capture(*args):  # noqa: ANN002, ANN202
        sigs.append(tuple(numba.typeof(a) for a in args))
        return real(*args)

    monkeypatch.setattr(kernels, "run_kernel", capture)
    rng = np.random.default_rng(3)
    for net in (random_network(rng, [30, 20, 5], release="random", escape=True, readout=True),
                random_graph(rng, conv=True, release="random", escape=True)):  # fmt: skip
        x = random_spikes(rng, 2, 3, int(np.prod(net.input_shape))).reshape(2, 3, *net.input_shape)
        engine.Simulator(net).run(x, steps=4, record=("counts",))
    (tmp_path / "sigs.pkl").write_bytes(pickle.dumps(list(dict.fromkeys(sigs))))
    script = textwrap.dedent(f"""
        import pickle
        from quantal.hwsim import kernels, simd
        assert simd.codegen_isa() == "avx512" and simd._has_vpmullq()
        for sig in pickle.loads(open({str(tmp_path / "sigs.pkl")!r}, "rb").read()):
            kernels.run_kernel.compile(sig)  # compiled only: this CPU may not run it
            asm = kernels.run_kernel.overloads[sig].library.get_asm_str()
            print("zmm" in asm, "vpcompressd" in asm, "vpmullq" in asm)
    """)  # fmt: skip
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "NUMBA_CPU_NAME": "skylake-avx512",
           "NUMBA_CPU_FEATURES": AVX512_FEATURES}  # fmt: skip
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=1200)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() and set(r.stdout.split()) == {"True"}, r.stdout
