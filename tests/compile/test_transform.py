"""mean_field: the deterministic counterpart of a stochastic network."""

import numpy as np

from quantal.compile.testing import random_network
from quantal.compile.transform import mean_field


def test_mean_field_uses_expected_weights_and_drops_escape_noise():
    rng = np.random.default_rng(2)
    net = random_network(rng, [6, 5, 3], release="random", weight_fixed=True, escape=True, readout=True)
    mf, clipped = mean_field(net)
    for la, a, b in zip(mf.layers, net.projections, mf.projections):
        assert la.neuron.escape_noise is None and b.synapse.release is None and b.synapse.weight_fixed is None
        if a.synapse.release is None:
            assert np.array_equal(a.synapse.weight, b.synapse.weight)
            continue
        expect = (a.synapse.release + 1.0) / 256 * a.synapse.weight + a.synapse.weight_fixed
        assert np.abs(b.synapse.weight - np.clip(expect, -128, 127)).max() <= 0.5
    assert mf.metadata["transform"] == "mean_field"


def test_all_release_255_is_unchanged():
    rng = np.random.default_rng(3)
    net = random_network(rng, [4, 5], release=1.0)
    mf, clipped = mean_field(net)
    assert clipped == 0 and np.array_equal(mf.projections[0].synapse.weight, net.projections[0].synapse.weight)


def test_reduce_weight_bits_keeps_the_range_on_a_coarser_grid():
    from quantal.compile.transform import reduce_weight_bits, set_release

    net = random_network(np.random.default_rng(4), [30, 20], release=0.5, weight_fixed=True)
    r = reduce_weight_bits(net, 4)
    w = r.projections[0].synapse.weight.astype(int)
    assert np.all(w % 16 == 0) and w.min() >= -128 and w.max() <= 112
    assert np.abs(w - net.projections[0].synapse.weight).max() <= 8 + 16  # rounding, or the top of the range
    assert reduce_weight_bits(net, 8) == net.replace(metadata={"weight_bits": 8})
    assert (set_release(net, 0.25).projections[0].synapse.release == 63).all()
