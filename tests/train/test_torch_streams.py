"""Random streams v1 in torch draw exactly the bits of the numpy implementation (the contract's oracle)."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quantal.compile import streams as ns
from quantal.train import torch_streams as ts

U64 = st.integers(0, 2**64 - 1)


@settings(max_examples=60, deadline=None)
@given(seed=U64, trial=st.integers(0, 2**32), samples=st.lists(U64, min_size=1, max_size=4),
       step=st.integers(0, 10**6), layer=st.integers(0, 50), n_in=st.integers(1, 9),
       size=st.integers(1, 40))  # fmt: skip
def test_release_bytes_equal_numpy(seed, trial, samples, step, layer, n_in, size):
    signed = torch.tensor([s - 2**64 if s >= 2**63 else s for s in samples], dtype=torch.int64)  # same 64 bits
    got = ts.release_bytes(seed, trial, signed, step, layer, n_in, size).numpy()
    for b, n in enumerate(samples):
        want = ns.release_bytes(seed, trial, n, step, layer, np.arange(n_in), size)
        assert np.array_equal(got[b], want)


@settings(max_examples=60, deadline=None)
@given(seed=U64, trial=st.integers(0, 2**32), samples=st.lists(st.integers(0, 2**62), min_size=1, max_size=4),
       step=st.integers(0, 10**6), layer=st.integers(0, 50), size=st.integers(1, 40))  # fmt: skip
def test_escape_uniforms_equal_numpy(seed, trial, samples, step, layer, size):
    got = ts.escape_uniforms(seed, trial, torch.tensor(samples), step, layer, size).numpy()
    for b, n in enumerate(samples):
        assert np.array_equal(got[b], ns.escape_uniforms(seed, trial, n, step, layer, size))


def test_mix_matches_numpy_on_extreme_words():
    z = np.array([0, 1, 2**63 - 1, 2**63, 2**64 - 1, 0x9E3779B97F4A7C15], dtype=np.uint64)
    got = ts.mix(torch.from_numpy(z.view(np.int64).copy())).numpy().view(np.uint64)
    assert np.array_equal(got, ns.mix(z))
