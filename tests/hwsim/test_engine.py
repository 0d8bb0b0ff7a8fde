"""hwsim equals the numpy reference bit for bit; threads and batching do not change a byte."""

import dataclasses
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantal.compile import reference, streams
from quantal.compile.ir import DenseSynapse, EscapeNoise, Network, Neuron
from quantal.compile.runspec import RunError
from quantal.compile.testing import edge_network, random_network, random_spikes
from quantal.hwsim import Simulator, simulate

ALL = ("spikes", "u", "v", "counts")


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert a[k].shape == b[k].shape, k
        assert np.array_equal(a[k], b[k]), k


@st.composite
def cases(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    sizes = draw(st.lists(st.integers(1, 12), min_size=2, max_size=5))
    sizes[0] = draw(st.sampled_from([sizes[0], 40]))  # 40 inputs at weight_exp 7 exceed the no-wrap bound
    net = random_network(
        rng, sizes,
        release=draw(st.sampled_from([None, "random", 0.5, 0.9])),
        weight_fixed=draw(st.booleans()),
        escape=draw(st.booleans()),
        readout=draw(st.booleans()),
        memoryless=draw(st.booleans()),
        weight_exp_range=draw(st.sampled_from([(-3, 2), (-8, 7), (5, 7)])),  # (5, 7) reaches the wraps
    )  # fmt: skip
    n = draw(st.integers(1, 4))
    t_in = draw(st.integers(1, 6))
    x = random_spikes(rng, n, t_in, sizes[0], draw(st.sampled_from([0.1, 0.3, 0.7])))
    if draw(st.booleans()):
        x = x.astype(np.uint8) * np.uint8(draw(st.integers(1, 255)))  # any nonzero byte is a spike
    steps = draw(st.none() | st.integers(1, 10))
    kw = dict(steps=steps, seed=draw(st.integers(0, 2**64 - 1)), trials=draw(st.none() | st.integers(1, 3)))
    return net, x, kw


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_hwsim_equals_reference(case):
    net, x, kw = case
    assert_same(simulate(net, x, record=ALL, **kw), reference.simulate(net, x, record=ALL, **kw))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2))
def test_recording_subsets(seed, which):
    rng = np.random.default_rng(seed)
    net = random_network(rng, [5, 7, 6, 3], release="random", escape=True)
    x = random_spikes(rng, 3, 5, 5)
    layers = [("l1",), ("l0", "l2"), None][which]
    record = [("counts",), ("v", "spikes"), ("u",)][which]
    got = simulate(net, x, record=record, layers=layers, seed=seed)
    assert set(got) == {f"{la}.{q}" for la in (layers or net.layer_names) for q in record}
    assert_same(got, reference.simulate(net, x, record=record, layers=layers, seed=seed))


def test_larger_stochastic_network_equals_reference():
    rng = np.random.default_rng(11)
    net = random_network(rng, [64, 70, 40, 10], release="random", weight_fixed=True, escape=True, readout=True)
    x = random_spikes(rng, 6, 12, 64, 0.25)
    out = simulate(net, x, record=ALL, seed=99, trials=2)
    assert out["l0.spikes"].mean() > 0.01  # the test exercises spiking
    assert_same(out, reference.simulate(net, x, record=ALL, seed=99, trials=2))


def test_both_update_paths_are_exercised():
    from quantal.hwsim.engine import Simulator as S

    rng = np.random.default_rng(0)
    assert S(random_network(rng, [40, 5], weight_exp_range=(7, 7))).small.tolist() == [False]
    assert S(random_network(rng, [12, 5], weight_exp_range=(-3, 2))).small.tolist() == [True]


def test_wraps_and_saturation_equal_reference():
    rng = np.random.default_rng(7)
    net = edge_network(rng)
    x = rng.random((3, 6, 2100)) < 0.9
    out = simulate(net, x, record=ALL, steps=10)
    assert np.abs(out["big.u"]).max() > 2**23  # a 32-bit wrap left u outside 24 bits
    assert np.abs(out["sat.v"]).max() == 2**23 - 1
    assert_same(out, reference.simulate(net, x, record=ALL, steps=10))


def test_batches_give_the_same_result():
    rng = np.random.default_rng(3)
    net = random_network(rng, [20, 30, 10], release="random", escape=True)
    x = random_spikes(rng, 10, 8, 20)
    sim = Simulator(net)
    whole = sim.run(x, record=ALL, seed=5)
    parts = [sim.run(x[a:b], record=ALL, seed=5, sample_offset=a) for a, b in [(0, 3), (3, 4), (4, 10)]]
    for k in whole:
        assert np.array_equal(whole[k], np.concatenate([p[k] for p in parts]))
    # internal batching does not change a byte either
    small = sim.run(x, record=ALL, seed=5, batch_size=3)
    for k in whole:
        assert np.array_equal(whole[k], small[k])
    # the sample index selects the stream: without the offset the draws differ
    assert not np.array_equal(sim.run(x[3:], record=("u",), seed=5)["l0.u"], whole["l0.u"][3:])


THREAD_SCRIPT = """
import hashlib, json, numpy as np, numba
from quantal.compile.testing import edge_network, random_network, random_spikes
from quantal.hwsim import simulate
rng = np.random.default_rng(8)
net = random_network(rng, [40, 50, 30, 10], release="random", escape=True, readout=True)
x = random_spikes(rng, 37, 10, 40)
out = simulate(net, x, record=("spikes", "u", "v", "counts"), seed=123, trials=2)
from quantal.compile.testing import random_graph
g = random_graph(np.random.default_rng(9), release="random", weight_fixed=True, escape=True, max_delay=4)
out2 = simulate(g, random_spikes(rng, 29, 9, g.input_size), steps=14, record=("spikes", "u", "v", "counts"), seed=7)
h = hashlib.sha256()
for k in sorted(out):
    h.update(k.encode()); h.update(out[k].tobytes())
for k in sorted(out2):
    h.update(k.encode()); h.update(out2[k].tobytes())
print(json.dumps({"threads": numba.get_num_threads(), "sha": h.hexdigest()}))
"""


def test_identical_output_with_1_and_2_threads():
    results = []
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        r = subprocess.run([sys.executable, "-c", THREAD_SCRIPT], env=env, capture_output=True, text=True,
                           check=True)  # fmt: skip
        results.append(json.loads(r.stdout.strip().splitlines()[-1]))
    assert [r["threads"] for r in results] == [1, 2]
    assert results[0]["sha"] == results[1]["sha"]


def test_escape_noise_firing_probability_matches_the_logistic():
    # A memoryless layer with no input: every step v = bias, so x = bias - (threshold << 6) is fixed per
    # neuron and each step is an independent Bernoulli(P(x)) draw. P(x) is the table's exact probability,
    # which is within 1/65536 + 1/(4 scale) of sigmoid(x / scale) (see test_streams). 4 samples x 250 steps
    # = 1000 draws per neuron, 25 neurons per bias level: a z-test per level with |z| < 5.
    scale = 1500.0
    levels = np.array([-4000, -2000, -1000, -304, 0, 304, 1000, 2000, 4000])  # multiples of 8
    size = levels.size * 25
    bias = np.repeat(levels, 25)
    threshold = 100  # 100 << 6 = 6400; bias_mant << 3 = bias + 6400
    mant = ((bias + 6400) // 8).astype(np.int16)
    assert np.array_equal(mant.astype(int) * 8 - 6400, bias)
    neuron = Neuron(current_decay=4096, voltage_decay=4096, threshold=threshold, bias_mant=mant, bias_exp=3,
                    escape_noise=EscapeNoise(scale=scale))
    synapse = DenseSynapse(weight=np.zeros((size, 1), np.int8))
    net = Network.chain("esc", 1, (("e", size, synapse, neuron),))
    out = simulate(net, np.zeros((4, 1, 1), bool), steps=250, record=("counts",), seed=2024)
    counts = out["e.counts"].sum(axis=0).reshape(levels.size, 25).sum(axis=1)
    n = 4 * 250 * 25
    theta = streams.escape_thresholds(scale)
    for lvl, c in zip(levels, counts):
        p = 1 / (1 + math.exp(-lvl / scale))
        p_table = np.count_nonzero(theta < lvl) / streams.ESCAPE_LEVELS
        assert abs(p_table - p) <= 1 / 65536 + 1 / (4 * scale)
        se = math.sqrt(max(p * (1 - p), 1e-12) / n)
        assert abs(c / n - p) < 5 * se + 1 / 65536 + 1 / (4 * scale), (lvl, c / n, p)


@pytest.mark.parametrize(
    "kwargs,spikes,needle",
    [
        ({"record": ("spikes", "w")}, None, "cannot record"),
        ({"layers": ("nope",)}, None, "no layer named"),
        ({"steps": 0}, None, "steps"),
        ({"seed": -1}, None, "seed"),
        ({"trials": 0}, None, "trials"),
        ({}, np.zeros((2, 3, 4), np.float32), "bool or uint8"),
        ({}, np.zeros((2, 3, 4), bool), "channels"),
        ({}, np.zeros((2, 5), bool), "shape"),
    ],
)
def test_bad_arguments_raise_run_error(kwargs, spikes, needle):
    net = random_network(np.random.default_rng(0), [5, 3])
    x = np.zeros((2, 3, 5), bool) if spikes is None else spikes
    with pytest.raises(RunError, match=needle):
        simulate(net, x, **kwargs)


# ------------------------------------------------------------------------------------------------ IR v2


@st.composite
def graph_cases(draw):
    from quantal.compile.testing import random_graph

    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    net = random_graph(
        rng, conv=draw(st.booleans()), recurrent=draw(st.booleans()), skips=draw(st.booleans()),
        max_delay=draw(st.sampled_from([0, 2, 7])), release=draw(st.sampled_from([None, "random", 0.5])),
        weight_fixed=draw(st.booleans()), escape=draw(st.booleans()), per_neuron=draw(st.booleans()),
        readout=draw(st.booleans()), input_density=draw(st.sampled_from([0.1, 0.5])),
    )  # fmt: skip
    x = random_spikes(rng, draw(st.integers(1, 3)), draw(st.integers(1, 8)), net.input_size,
                      draw(st.sampled_from([0.1, 0.5])))  # fmt: skip
    return net, x, draw(st.integers(0, 2**64 - 1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=graph_cases())
def test_random_graphs_equal_the_reference(case):
    # conv2d (stride, padding, dilation, groups), recurrence, skips, delays, per-neuron arrays, both resets,
    # escape noise and stochastic release on every projection kind
    net, x, seed = case
    steps = x.shape[1] + net.max_delay + 3
    assert_same(simulate(net, x, steps=steps, seed=seed, record=ALL, trials=2, sample_offset=5),
                reference.simulate(net, x, steps=steps, seed=seed, record=ALL, trials=2, sample_offset=5))


def test_random_graphs_spike_in_every_kind_of_layer():
    # the graph comparison covers spikes: over a few seeds every conv and dense layer fires
    from quantal.compile.testing import random_graph

    fired: dict[str, int] = {}
    for s in range(8):
        rng = np.random.default_rng(s)
        net = random_graph(rng, release="random", escape=s % 2 == 0)
        out = simulate(net, random_spikes(rng, 3, 8, net.input_size, 0.4), steps=12)
        for la in net.layers:
            kind = la.name[0]
            fired[kind] = fired.get(kind, 0) + int(out[f"{la.name}.spikes"].sum())
    assert fired["c"] > 0 and fired["d"] > 0


def test_graph_batches_and_offsets_give_the_same_result():
    from quantal.compile.testing import random_graph

    rng = np.random.default_rng(31)
    net = random_graph(rng, release="random", weight_fixed=True, escape=True, max_delay=3)
    x = random_spikes(rng, 9, 7, net.input_size, 0.3)
    sim = Simulator(net)
    whole = sim.run(x, record=ALL, seed=2, steps=12)
    parts = [sim.run(x[a:b], record=ALL, seed=2, steps=12, sample_offset=a) for a, b in [(0, 4), (4, 5), (5, 9)]]
    for k in whole:
        assert np.array_equal(whole[k], np.concatenate([p[k] for p in parts]))
        assert np.array_equal(whole[k], sim.run(x, record=ALL, seed=2, steps=12, batch_size=2)[k])


def test_graph_devices_equal_the_reference():
    # one device per stored kernel element: the reference expands the realised kernel, hwsim scatters it
    from quantal.compile.testing import random_graph
    from quantal.hwsim import devices as D

    for s, preset in enumerate(("pcm", "rram", "pcm")):
        rng = np.random.default_rng(40 + s)
        net = random_graph(rng, release="random" if s != 1 else None, weight_fixed=s == 2, max_delay=2)
        x = random_spikes(rng, 2, 6, net.input_size, 0.4)
        spec = D.from_config(preset, time=3600.0)
        dev = lambda seed, r, net=net, spec=spec: D.layer_weights(spec, net, seed, r)  # noqa: E731
        assert_same(simulate(net, x, steps=9, seed=4, trials=2, record=ALL, device=spec),
                    reference.simulate(net, x, steps=9, seed=4, trials=2, record=ALL, device_weights=dev))


def test_memoryless_layers_are_set_to_rest_without_an_update():
    # full decays and no bias: a step without input leaves u = v = 0 and no spike, which hwsim sets instead of
    # computing (Simulator.forget); recorded u, v and spikes still equal the reference on every step
    rng = np.random.default_rng(5)
    net = random_network(rng, [30, 20, 12, 6], memoryless=True, release="random", readout=True)
    net = net.replace(layers=tuple(dataclasses.replace(la, neuron=dataclasses.replace(la.neuron, bias_mant=0))
                                   for la in net.layers))  # fmt: skip
    sim = Simulator(net)
    assert sim.forget.tolist() == [True, True, True]
    x = random_spikes(rng, 4, 3, 30, 0.3)
    out = sim.run(x, record=ALL, steps=9, seed=3)
    assert out["l0.u"][:, 1].any() and not out["l0.u"][:, 5:].any()  # moved, then back at rest
    assert_same(out, reference.simulate(net, x, record=ALL, steps=9, seed=3))


@pytest.mark.parametrize("c_in, release", [(258, None), (259, None), (258, 0.5), (259, 0.5), (3000, None)])
def test_conv_sums_at_the_int16_bound_equal_the_reference(c_in, release):
    # a conv2d's sums go to int16 when (inputs that reach one output, at most cin_g * kh * kw) * max |w| < 2**15:
    # 258 channels of weight 127 all active sum to 32,766 (the last int16 case), 259 to 32,893 (int32 needed:
    # int16 would wrap it negative), 3,000 far beyond
    from quantal.compile.ir import Conv2dSynapse, Layer, Projection

    rel = None if release is None else np.full((4, c_in, 1, 1), 127, np.uint8)
    syn = Conv2dSynapse(weight=np.full((4, c_in, 1, 1), 127, np.int8), release=rel)
    net = Network(name="c16", input_shape=(c_in, 2, 2), layers=(Layer(name="c", shape=(4, 2, 2), neuron=Neuron(
        current_decay=4096, voltage_decay=4096, threshold=2**17 - 1)),),
        projections=(Projection(name="c.in", source="input", target="c", synapse=syn),))  # fmt: skip
    x = np.ones((2, 2, c_in * 4), bool)
    x[1, 1, ::3] = False
    out = simulate(net, x, record=ALL, steps=3, seed=4)
    assert_same(out, reference.simulate(net, x, record=ALL, steps=3, seed=4))
    if release is None:  # u = a << 6 at step 1 (full current decay): the sum itself
        assert (out["c.u"][:, 1] == c_in * 127 * 64 % 2**24 - (c_in * 127 * 64 % 2**24 >= 2**23) * 2**24).all()


@pytest.mark.parametrize("release", [None, "random"])
def test_conv_layers_of_whole_8x8_blocks_equal_the_reference(release):
    # conv2d layers whose channels and planes are multiples of 8 take the blocked channel-first copy, which also
    # clears the channel-last scratch for the next projection and step (there is no clearing pass), and more
    # than 64 active inputs per step take several chunks of the deterministic two-pass tap loop; the second
    # projection's fan-in (16 x 5 x 5 = 400 inputs, |w| up to 128) takes int32 sums when 256 or more of them are
    # active (256 x 128 = 2**15), int16 below
    from quantal.compile.ir import Conv2dSynapse, Layer, Projection

    rng = np.random.default_rng(21)

    def syn(shape: tuple[int, ...], **geo: object) -> Conv2dSynapse:
        rel = None if release is None else rng.integers(0, 256, shape).astype(np.uint8)
        return Conv2dSynapse(weight=rng.integers(-128, 128, shape).astype(np.int8), release=rel, **geo)

    def layer(name: str, shape: tuple[int, ...]) -> Layer:
        return Layer(name=name, shape=shape, neuron=Neuron(current_decay=4096, voltage_decay=0, threshold=30))

    net = Network(name="blocks", input_shape=(2, 8, 8),
                  layers=(layer("c1", (16, 8, 8)), layer("c2", (8, 4, 4)),
                          Layer(name="out", shape=(3,), neuron=Neuron(kind="readout"))),
                  projections=(Projection(name="c1.in", source="input", target="c1", synapse=syn((16, 2, 3, 3),
                                                                                                  padding=1)),
                               Projection(name="c2.in", source="c1", target="c2", synapse=syn((8, 16, 5, 5),
                                                                                               stride=2, padding=2)),
                               Projection(name="out.in", source="c2", target="out", synapse=DenseSynapse(
                                   weight=rng.integers(-128, 128, (3, 128)).astype(np.int8)))))  # fmt: skip
    x = random_spikes(rng, 3, 12, net.input_size, 0.5)
    out = simulate(net, x, record=ALL, steps=14, seed=6)
    assert_same(out, reference.simulate(net, x, record=ALL, steps=14, seed=6))
    active = out["c1.spikes"].reshape(3, 14, -1).sum(axis=2)
    assert active.max() >= 256 and (active[:, 1:] < 256).any()  # both sum widths in c2.in, > 64 inputs per step
    assert np.abs(net.projections[1].synapse.weight.astype(int)).max() == 128
    assert out["c2.spikes"].any()


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_integrate_and_fire_layers_equal_the_reference(reset):
    # layers whose every neuron has current decay 4096 and voltage decay 0 take an update without the decay
    # products; a per-neuron decay that differs in one neuron keeps the layer on the general update
    rng = np.random.default_rng(11)
    base = random_network(rng, [30, 24, 16, 6], release="random", readout=True)
    layers = []
    for li, la in enumerate(base.layers):
        cd: int | np.ndarray = 4096
        if li == 1:  # one neuron of the second layer leaks a little
            cd = np.full(la.size, 4096, np.int16)
            cd[3] = 4000
        neuron = dataclasses.replace(la.neuron, current_decay=cd, voltage_decay=0,
                                     reset=reset if la.neuron.kind == "lif" else la.neuron.reset)  # fmt: skip
        layers.append(dataclasses.replace(la, neuron=neuron))
    net = base.replace(layers=tuple(layers))
    sim = Simulator(net)
    assert sim.integ.tolist() == [True, False, True] and sim.small.all()
    x = random_spikes(rng, 4, 12, 30, 0.3)
    out = sim.run(x, record=ALL, steps=15, seed=3)
    assert out["l0.spikes"].any() and out["l1.spikes"].any() and np.abs(out["l2.v"]).max() > 0
    assert_same(out, reference.simulate(net, x, record=ALL, steps=15, seed=3))
