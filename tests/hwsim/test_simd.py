"""The two compaction paths of hwsim (AVX-512 masked compress-stores, portable loops) and an AVX2-only code
generation all give the reference executor's bits."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba import njit

from quantal.compile import reference
from quantal.compile.testing import random_network, random_spikes
from quantal.hwsim import engine, simulate
from quantal.hwsim.simd import codegen_isa, compress64

ALL = ("spikes", "u", "v", "counts")


@njit(cache=True)
def _compress(row, j0, nb, out, cnt):  # pragma: no cover - compiled
    return compress64(row, j0, nb, out, cnt)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 64), st.integers(0, 100), st.sampled_from([0.0, 0.05, 0.5, 1.0]),
       st.booleans())  # fmt: skip
def test_compress64_writes_the_nonzero_indices_in_order(seed, nb, cnt, density, as_bool):
    rng = np.random.default_rng(seed)
    j0 = int(rng.integers(0, 40))
    row = (rng.random(j0 + nb) < density) * rng.integers(1, 256, j0 + nb)  # any nonzero byte counts
    row = (row != 0) if as_bool else row.astype(np.uint8)  # the block may end at the array's end
    out = np.full(cnt + 70, -7, np.int32)
    end = _compress(row, j0, nb, out, cnt)
    want = j0 + np.flatnonzero(row[j0:j0 + nb])
    assert end == cnt + len(want) and np.array_equal(out[cnt:end], want)
    assert (out[:cnt] == -7).all() and (out[end:] == -7).all()  # nothing else is written


@pytest.fixture(params=[True, False], ids=["compress-store", "portable"])
def compaction(request, monkeypatch):
    monkeypatch.setattr(engine, "SIMD_COMPRESS", request.param)
    return request.param


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])  # fmt: skip
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(1, 200), min_size=2, max_size=4),
       st.sampled_from([0.02, 0.3, 0.9]))  # fmt: skip
def test_both_compaction_paths_equal_the_reference(compaction, seed, sizes, density):
    """Layers and inputs wider than one 64-lane block, with partial last blocks, at sparse and dense activity."""
    rng = np.random.default_rng(seed)
    net = random_network(rng, sizes, release="random", escape=bool(seed % 2), readout=bool(seed % 3))
    x = random_spikes(rng, 2, 4, sizes[0], density)
    kw = dict(steps=6, seed=seed, trials=2)
    want = reference.simulate(net, x, record=ALL, **kw)
    got = simulate(net, x, record=ALL, **kw)
    for k in want:
        assert np.array_equal(got[k], want[k]), k


AVX2 = "+avx2,+avx,+fma,+bmi,+bmi2,+popcnt,+sse4.2,+sse4.1,+ssse3,+sse3,+f16c,+lzcnt,+movbe"


@pytest.mark.slow
def test_avx2_code_generation_equals_the_reference(tmp_path):
    """The kernels compiled for an AVX2-only CPU (what AMD EPYC Zen 2/3 and older Intel machines run), in a fresh
    process with its own Numba cache: the portable path, and the same bits as the reference."""
    script = textwrap.dedent("""
        import numpy as np
        from quantal.compile import reference
        from quantal.compile.testing import random_graph, random_network, random_spikes
        from quantal.hwsim import engine, simulate
        assert engine.ISA == "avx2" and not engine.SIMD_COMPRESS, engine.ISA
        for seed in range(4):
            rng = np.random.default_rng(seed)
            nets = [random_network(rng, [150, 90, 70, 10], release="random", escape=True, readout=True),
                    random_graph(rng, release="random", weight_fixed=True, escape=bool(seed % 2))]
            for net in nets:
                shape = net.input_shape
                x = random_spikes(rng, 3, 5, int(np.prod(shape))).reshape(3, 5, *shape)
                kw = dict(steps=7, seed=seed, trials=2)
                want = reference.simulate(net, x, record=("spikes", "u", "v", "counts"), **kw)
                got = simulate(net, x, record=("spikes", "u", "v", "counts"), **kw)
                assert all(np.array_equal(got[k], want[k]) for k in want)
        print("avx2 ok")
    """)  # fmt: skip
    env = {**os.environ, "NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": AVX2,
           "NUMBA_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=1200)
    assert r.returncode == 0 and "avx2 ok" in r.stdout, r.stderr[-2000:]


def test_the_isa_follows_numbas_code_generation(monkeypatch):
    from numba.core import config

    monkeypatch.setattr(config, "CPU_FEATURES", AVX2)
    assert codegen_isa() == "avx2"
    monkeypatch.setattr(config, "CPU_FEATURES", AVX2 + ",+avx512f,+avx512bw,+avx512vl")
    assert codegen_isa() == "avx512"
    monkeypatch.setenv("QUANTAL_HWSIM_ISA", "avx2")
    assert codegen_isa() == "avx2"  # forced to the portable path
