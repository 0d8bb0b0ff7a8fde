"""Graph helpers: conv2d links against torch's conv2d, and sum-pool fusion as the exact composition."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from quantal.compile.graph import conv2d_links, sum_pool_conv2d, sum_pool_dense
from quantal.compile.ir import Conv2dSynapse, DenseSynapse

torch = pytest.importorskip("torch")
F = torch.nn.functional


def apply(syn: Conv2dSynapse, x: np.ndarray) -> np.ndarray:
    """The conv2d projection on one [C, H, W] input through its links (the IR's definition)."""
    c, h, w = x.shape
    ho, wo = syn.out_hw(h, w)
    i, j, k = conv2d_links(syn, x.shape, (syn.weight.shape[0], ho, wo))
    out = np.zeros(syn.weight.shape[0] * ho * wo)
    np.add.at(out, i, syn.weight.ravel()[k].astype(np.float64) * x.ravel()[j])
    return out


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), groups=st.sampled_from([1, 2]),
       k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 3)), pad=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       dil=st.tuples(st.integers(1, 2), st.integers(1, 2)))  # fmt: skip
def test_links_equal_torch_conv2d(seed, groups, k, stride, pad, dil):
    rng = np.random.default_rng(seed)
    c_in, c_out = 2 * groups, groups * int(rng.integers(1, 3))
    h, w = int(rng.integers(6, 10)), int(rng.integers(6, 10))
    syn = Conv2dSynapse(weight=rng.integers(-128, 128, (c_out, c_in // groups, *k), dtype=np.int8), stride=stride,
                        padding=pad, dilation=dil, groups=groups)  # fmt: skip
    assume(min(syn.out_hw(h, w)) >= 1)
    x = rng.integers(0, 2, (c_in, h, w)).astype(np.float64)
    want = F.conv2d(torch.from_numpy(x)[None], torch.from_numpy(syn.weight.astype(np.float64)), stride=stride,
                    padding=pad, dilation=dil, groups=groups)[0].numpy().ravel()  # fmt: skip
    assert np.array_equal(apply(syn, x), want)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), pool=st.sampled_from([2, 3]), k=st.integers(1, 3), stride=st.integers(1, 2),
       pad=st.integers(0, 2), dil=st.integers(1, 2))  # fmt: skip
def test_sum_pool_then_conv_is_one_conv(seed, pool, k, stride, pad, dil):
    rng = np.random.default_rng(seed)
    h = pool * int(rng.integers(3, 6))
    syn = Conv2dSynapse(weight=rng.integers(-128, 128, (3, 2, k, k), dtype=np.int8), stride=stride, padding=pad,
                        dilation=dil)  # fmt: skip
    x = rng.integers(0, 2, (2, h, h)).astype(np.float64)
    pooled = F.avg_pool2d(torch.from_numpy(x)[None], pool)[0] * pool * pool  # sum pooling
    if min(syn.out_hw(h // pool, h // pool)) < 1:
        return
    want = F.conv2d(pooled[None], torch.from_numpy(syn.weight.astype(np.float64)), stride=stride, padding=pad,
                    dilation=dil)[0].numpy().ravel()  # fmt: skip
    fused = sum_pool_conv2d(syn, pool, (2, h, h))
    assert fused.out_hw(h, h) == syn.out_hw(h // pool, h // pool)
    assert np.array_equal(apply(fused, x), want)


def test_sum_pool_then_dense_is_one_dense():
    rng = np.random.default_rng(0)
    syn = DenseSynapse(weight=rng.integers(-128, 128, (5, 3 * 2 * 2), dtype=np.int8),
                       release=rng.integers(0, 256, (5, 12), dtype=np.uint8))  # fmt: skip
    x = rng.integers(0, 2, (3, 4, 4)).astype(np.float64)
    pooled = (F.avg_pool2d(torch.from_numpy(x)[None], 2)[0] * 4).numpy().ravel()
    fused = sum_pool_dense(syn, 2, (3, 4, 4))
    assert np.array_equal(fused.weight.astype(np.float64) @ x.ravel(), syn.weight.astype(np.float64) @ pooled)
    assert fused.release.shape == fused.weight.shape
    with pytest.raises(ValueError, match="divisible"):
        sum_pool_dense(syn, 2, (3, 5, 4))


def test_fans_and_nonzero_fan_out_count_the_links():
    from quantal.compile.graph import conv2d_fans, conv2d_nonzero_fan_out

    rng = np.random.default_rng(3)
    for _ in range(10):
        groups = int(rng.choice([1, 2]))
        w = rng.integers(-2, 3, (2 * groups, 2, 3, 2), dtype=np.int8)  # zeros included
        syn = Conv2dSynapse(weight=w, stride=(int(rng.integers(1, 3)), 1), padding=(1, int(rng.integers(0, 2))),
                            dilation=(1, int(rng.integers(1, 3))), groups=groups)  # fmt: skip
        src = (2 * groups, 6, 7)
        dst = (w.shape[0], *syn.out_hw(6, 7))
        i, j, k = conv2d_links(syn, src, dst)
        fan_in, fan_out = conv2d_fans(syn, src, dst)
        assert np.array_equal(fan_in, np.bincount(i, minlength=int(np.prod(dst))))
        assert np.array_equal(fan_out, np.bincount(j, minlength=int(np.prod(src))))
        nz = w.ravel()[k] != 0
        want = np.bincount(j[nz], minlength=int(np.prod(src)))
        assert np.array_equal(conv2d_nonzero_fan_out(syn, w != 0, src, dst), want)
