"""The reference semantics equal Intel Lava 0.10's bit-accurate Dense + LIF processes.

Lava runs in its own Python 3.10 venv (``make lava-env``). Where it is missing these tests skip, except under
CI=true, where they fail.
"""

import numpy as np
import pytest

from quantal.compile import reference
from quantal.compile.testing import edge_network, random_network, random_spikes
from quantal.targets.lava import driver

pytestmark = [pytest.mark.lava, pytest.mark.slow, pytest.mark.usefixtures("lava")]


def compare(net, x, steps=None):
    lava = driver.run_in_lava(net, x, steps)
    ref = reference.simulate(net, x, steps=steps, record=("spikes", "u", "v"))
    assert sorted(lava) == sorted(ref)
    for k in ref:
        assert lava[k].shape == ref[k].shape, k
        diff = np.argwhere(lava[k] != ref[k])
        assert diff.size == 0, f"{k}: first divergence at (sample, step, neuron) {tuple(diff[0])}"
    return ref


@pytest.mark.parametrize("seed", range(6))
def test_random_networks_match_lava(seed):
    rng = np.random.default_rng(1000 + seed)
    depth = int(rng.integers(1, 4))
    sizes = [int(s) for s in rng.integers(3, 25, depth + 1)]
    net = random_network(rng, sizes, memoryless=bool(seed % 3 == 0))
    x = random_spikes(rng, 4, int(rng.integers(5, 15)), sizes[0], float(rng.uniform(0.1, 0.6)))
    ref = compare(net, x, steps=x.shape[1] + 4)
    assert sum(ref[f"{la}.spikes"].sum() for la in net.layer_names) > 0  # the comparison covers spikes


def test_wraps_saturation_and_negative_exponents_match_lava():
    # See compile.testing.edge_network: 32- and 24-bit wraps, voltage saturation, floors of odd sums.
    rng = np.random.default_rng(7)
    net = edge_network(rng)
    x = rng.random((2, 6, 2100)) < 0.9
    ref = compare(net, x, steps=10)
    assert np.abs(ref["big.u"]).max() > 2**23  # the 32-bit wrap left u outside 24 bits, as in Lava
    assert np.abs(ref["sat.v"]).max() == 2**23 - 1


def test_unsupported_layers_are_refused_with_a_message():
    rng = np.random.default_rng(0)
    net = random_network(rng, [4, 3], release=0.5)
    with pytest.raises(driver.LavaRunError, match="stochastic synapses"):
        driver.run_in_lava(net, np.zeros((1, 2, 4), bool), stock_only=True)


def compare_hwsim(net, x, steps, seed, trial=0):
    from quantal.hwsim import simulate

    lava = driver.run_in_lava(net, x, steps, seed=seed, trial=trial)
    hw = simulate(net, x, steps=steps, seed=seed, trials=trial + 1, record=("spikes", "u", "v"))
    for k in hw:
        diff = np.argwhere(lava[k] != hw[k][trial])
        assert diff.size == 0, f"{k}: first divergence at (sample, step, neuron) {tuple(diff[0])}"
    return hw


@pytest.mark.parametrize("case", range(4))
def test_stochastic_networks_match_hwsim_in_lava(case):
    # quantal's Lava processes: stochastic synapses with reliable parts, escape noise, readouts
    rng = np.random.default_rng(2000 + case)
    sizes = [int(s) for s in rng.integers(4, 16, 3)]
    net = random_network(rng, sizes, release="random", weight_fixed=bool(case % 2), escape=case < 2,
                         readout=bool(case % 2 == 0), memoryless=case == 3)  # fmt: skip
    x = random_spikes(rng, 3, 6, sizes[0], 0.4)
    hw = compare_hwsim(net, x, steps=9, seed=int(rng.integers(0, 2**63)), trial=case % 2)
    assert sum(hw[f"{la}.spikes"].sum() for la in net.layer_names) > 0


# ------------------------------------------------------------------------------------------------ IR v2


@pytest.mark.parametrize("case", range(8))
def test_random_graphs_match_hwsim_in_lava(case):
    # conv2d (as its expanded matrix), recurrence, skips, delays (DelayDense or quantal's IRProjection),
    # per-neuron arrays and subtractive reset (IRNeuron), escape noise and stochastic release
    from quantal.compile.testing import random_graph

    rng = np.random.default_rng(3000 + case)
    stochastic = case % 2 == 1
    net = random_graph(rng, conv=case % 4 != 3, max_delay=int(rng.integers(0, 4)),
                       release="random" if stochastic else None, weight_fixed=case in (3, 5), escape=case in (1, 6),
                       per_neuron=case % 3 != 0, subtract=None if case != 2 else True)  # fmt: skip
    x = random_spikes(rng, 2, 6, net.input_size, 0.4)
    hw = compare_hwsim(net, x, steps=6 + net.max_delay + 3, seed=int(rng.integers(0, 2**63)), trial=case % 2)
    assert sum(hw[f"{la}.spikes"].sum() for la in net.layer_names) > 0


def test_deterministic_graph_uses_stock_processes_only():
    # scalar neurons with reset zero and reliable projections map to Lava's own Dense, DelayDense and LIF
    from quantal.compile.testing import random_graph
    from quantal.targets.lava.runner import unsupported

    rng = np.random.default_rng(77)
    net = random_graph(rng, per_neuron=False, subtract=False, readout=False, max_delay=3)
    assert unsupported(net) == []
    x = random_spikes(rng, 2, 6, net.input_size, 0.4)
    lava = driver.run_in_lava(net, x, 10, stock_only=True)
    ref = reference.simulate(net, x, steps=10, record=("spikes", "u", "v"))
    for k in ref:
        assert np.array_equal(lava[k], ref[k]), k
    assert any(p.delay for p in net.projections) and any(net.is_recurrent(p) for p in net.projections)


def test_a_lava_graph_too_large_is_refused_before_it_is_built():
    from quantal.compile.ir import Conv2dSynapse, Layer, Network, Neuron, Projection

    syn = Conv2dSynapse(weight=np.ones((16, 2, 5, 5), np.int8), stride=2, padding=1)
    net = Network(name="big", input_shape=(2, 34, 34), layers=(Layer(name="c", shape=(16, 16, 16), neuron=Neuron()),),
                  projections=(Projection(name="c.in", source="input", target="c", synapse=syn),))  # fmt: skip
    with pytest.raises(driver.LavaRunError, match="verify fewer samples"):
        driver.run_in_lava(net, np.zeros((20, 3, 2, 34, 34), bool))
