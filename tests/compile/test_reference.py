"""Golden tests of the reference semantics; every expected value is derived by hand in the comments."""

import numpy as np
import pytest

from quantal.compile import reference
from quantal.compile.ir import Conv2dSynapse, DenseSynapse, Network, Neuron

BIG = 131071  # largest threshold: v must exceed 131071 << 6 = 8388544 to spike


def one_layer(weights, *, weight_exp=0, kind="lif", **neuron) -> Network:
    w = np.asarray(weights, dtype=np.int8).reshape(1, -1)
    return Network.chain("g", w.shape[1], (("n", 1, DenseSynapse(weight=w, weight_exp=weight_exp),
                      Neuron(kind=kind, **neuron)),),  # fmt: skip
    )


def run(net, spikes, steps, record=("spikes", "u", "v")):
    x = np.asarray(spikes, dtype=bool)
    out = reference.simulate(net, x[None], steps=steps, record=record)
    return {k.split(".")[-1]: v[0, :, 0] if v.ndim == 3 else v[0] for k, v in out.items()}


def test_current_decay_rounds_toward_zero():
    # current_decay 1000 keeps 3096/4096 of u per step. One input spike at step 0 reaches the neuron at t = 1:
    #   t=1: u = a << 6 = 3 * 64 = 192
    #   t=2: u = rz(192 * 3096) = rz(594432) = 594432 >> 12 = 145   (145.125 rounded toward zero)
    #   t=3: u = rz(145 * 3096) = rz(448920) = 109                   (109.599...)
    # With weight -3 the values are the exact negatives (-145, not floor's -146).
    for sign in (1, -1):
        out = run(one_layer([3 * sign], current_decay=1000, voltage_decay=4096, threshold=BIG), [[1]], 4)
        assert out["u"].tolist() == [0, 192 * sign, 145 * sign, 109 * sign]
        assert out["v"].tolist() == out["u"].tolist()  # voltage_decay 4096 forgets v: v = u (no bias)


def test_voltage_decay_rounds_toward_zero():
    # current_decay 4096 forgets u; voltage_decay 1000 keeps 3096/4096 of v.
    #   t=1: u = 5 * 64 = 320, v = 320;   t=2: u = 0, v = rz(320 * 3096) = rz(990720) = 241 (241.875)
    #   t=3: v = rz(241 * 3096) = rz(746136) = 182 (182.16...)
    for sign in (1, -1):
        out = run(one_layer([5 * sign], current_decay=4096, voltage_decay=1000, threshold=BIG), [[1]], 4)
        assert out["v"].tolist() == [0, 320 * sign, 241 * sign, 182 * sign]


@pytest.mark.parametrize(
    "w,n_active,expected_u",
    [
        # a = 127 * 9 * 2**7 = 146304; d = a << 6 = 9363456 > 2**23 -> u = 9363456 - 2**24 = -7413760
        (127, 9, -7413760),
        # a = -128 * 9 * 2**7 = -147456; d = -9437184 <= -2**23 -> u = -9437184 + 2**24 = 7340032
        (-128, 9, 7340032),
        # a = 64 * 16 * 2**7 = 131072; d = 2**23 exactly: not > 2**23, so no wrap
        (64, 16, 8388608),
        # a = -131072; d = -2**23 <= -2**23 -> u = -2**23 + 2**24 = 2**23
        (-64, 16, 8388608),
        # a = 127 * 8 * 2**7 = 130048; d = 8323072 < 2**23: no wrap
        (127, 8, 8323072),
    ],
)
def test_current_wraps_once_at_2_pow_23(w, n_active, expected_u):
    net = one_layer([w] * n_active, weight_exp=7, kind="readout", current_decay=4096, voltage_decay=4096)
    out = run(net, [[1] * n_active], 2)
    assert out["u"][1] == expected_u


def test_voltage_saturates():
    # 7 active inputs of weight 112 with weight_exp 7: a = 7 * 112 * 2**7 = 100352 every step;
    #   u = 100352 * 64 = 6422528 (< 2**23); v: 6422528, then 12845056 -> clipped to 2**23 - 1 = 8388607.
    net = one_layer([112] * 7, weight_exp=7, kind="readout", current_decay=4096, voltage_decay=0)
    out = run(net, [[1] * 7] * 3, 4)
    assert out["u"].tolist() == [0, 6422528, 6422528, 6422528]
    assert out["v"].tolist() == [0, 6422528, 8388607, 8388607]
    net = one_layer([-112] * 7, weight_exp=7, kind="readout", current_decay=4096, voltage_decay=0)
    assert run(net, [[1] * 7] * 3, 4)["v"].tolist() == [0, -6422528, -8388607, -8388607]


def test_threshold_is_strict_and_reset_keeps_u():
    # threshold 3 -> 3 << 6 = 192. Weight 3: v = 192, not > 192: no spike.
    out = run(one_layer([3], current_decay=4096, voltage_decay=4096, threshold=3), [[1]], 2)
    assert out["spikes"].tolist() == [0, 0] and out["v"][1] == 192
    # Weight 4 with current_decay 0 (u persists) and voltage_decay 4096:
    #   t=1: u = 256, v = 256 > 192: spike, v reset to 0, u stays 256
    #   t=2: u = rz(256 * 4096) = 256, v = 0 + 256 = 256: spike again
    out = run(one_layer([4], current_decay=0, voltage_decay=4096, threshold=3), [[1]], 3)
    assert out["spikes"].tolist() == [0, 1, 1]
    assert out["u"].tolist() == [0, 256, 256]
    assert out["v"].tolist() == [0, 0, 0]  # recorded after the reset


def test_bias_is_mantissa_shifted_by_exponent():
    # bias 5 << 3 = 40 added each step; voltage_decay 0: v = 40, 80, 120; threshold 1 (64): spike at 80
    out = run(one_layer([0], current_decay=4096, voltage_decay=0, threshold=1, bias_mant=5, bias_exp=3), [[0]], 3)
    assert out["v"].tolist() == [40, 0, 40]
    assert out["spikes"].tolist() == [0, 1, 0]


def test_one_step_delay_per_layer():
    # Input spike at step 0 -> layer 0 integrates it at t=1 (v = 64 > 0: spike) -> layer 1 at t=2.
    w = np.ones((1, 1), np.int8)
    neu = Neuron(current_decay=4096, voltage_decay=4096, threshold=0)
    net = Network.chain("d", 1, (
        ("a", 1, DenseSynapse(weight=w), neu),
        ("b", 1, DenseSynapse(weight=w), neu),
    ))  # fmt: skip
    out = reference.simulate(net, np.ones((1, 1, 1), bool), steps=4)
    assert out["a.spikes"][0, :, 0].tolist() == [0, 1, 0, 0]
    assert out["b.spikes"][0, :, 0].tolist() == [0, 0, 1, 0]


@pytest.mark.parametrize(
    "weights,exp,expected_a",
    [
        ([-3], -1, -2),  # floor(-3 / 2) = -2 (truncation would give -1)
        ([3], -1, 1),  # floor(3 / 2) = 1
        ([-1], -8, -1),  # floor(-1 / 256) = -1
        ([127, 127], -8, 0),  # floor(254 / 256) = 0
        ([-100, 50], -2, -13),  # the shift applies to the sum: floor(-50 / 4) = -13 (not -25 + 12 = -13)
        ([-3, -3], -1, -3),  # floor(-6 / 2) = -3 (per-synapse flooring would give -4)
    ],
)
def test_negative_weight_exp_floors_the_sum(weights, exp, expected_a):
    net = one_layer(weights, weight_exp=exp, kind="readout", current_decay=4096, voltage_decay=4096)
    out = run(net, [[1] * len(weights)], 2)
    assert out["u"][1] == expected_a * 64


def test_readout_counts_are_final_v_and_never_spike():
    net = one_layer([100], kind="readout", current_decay=4096, voltage_decay=0, threshold=0)
    out = run(net, [[1], [1], [1]], 4, record=("spikes", "v", "counts"))
    # v = 6400, 12800, 19200 (never reset, never spikes)
    assert out["spikes"].tolist() == [0, 0, 0, 0]
    assert out["v"].tolist() == [0, 6400, 12800, 19200]
    assert int(out["counts"][0]) == 19200


def test_input_past_t_in_is_silent_and_steps_extend():
    net = one_layer([1], current_decay=4096, voltage_decay=4096, threshold=0)
    out = run(net, [[1], [1]], 5)
    assert out["spikes"].tolist() == [0, 1, 1, 0, 0]


def test_reliable_release_equals_deterministic_weights():
    # release 255 transmits with probability (255 + 1) / 256 = 1, so a layer with weight w, release 255 and
    # weight_fixed wf computes the same sums as a reliable layer of weight w + wf (kept inside int8 here).
    rng = np.random.default_rng(5)
    w = rng.integers(-100, 101, (4, 6), dtype=np.int8)
    wf = rng.integers(-20, 21, (4, 6), dtype=np.int8)
    neu = Neuron(current_decay=2000, voltage_decay=300, threshold=40)
    full = np.full((4, 6), 255, np.uint8)
    a = Network.chain("a", 6, (
        ("l", 4, DenseSynapse(weight=w, release=full, weight_fixed=wf), neu),))
    b = Network.chain("b", 6, (
        ("l", 4, DenseSynapse(weight=(w + wf).astype(np.int8)), neu),))
    x = rng.random((3, 8, 6)) < 0.5
    ra = reference.simulate(a, x, record=("u", "v", "spikes"))
    rb = reference.simulate(b, x, record=("u", "v", "spikes"))
    assert ra["l.spikes"].any()
    for k in ra:
        assert np.array_equal(ra[k], rb[k])


def test_stochastic_release_uses_stream_1_bytes():
    # One input, two neurons, release 127: neuron i transmits iff byte i of word(key(seed,1,0,0,1,0,0), 0)
    # is <= 127. Recompute that byte independently here.
    from quantal.compile import streams

    w = np.array([[10], [20]], np.int8)
    rel = np.array([[127], [127]], np.uint8)
    net = Network.chain("s", 1, (("l", 2,
        DenseSynapse(weight=w, release=rel), Neuron(kind="readout")),))  # fmt: skip
    for seed in range(20):
        k = streams.key(seed, 1, 0, 0, 1, 0, 0)
        wd = int(streams.word(k, 0))
        xi = [int(((wd >> (8 * i)) & 0xFF) <= 127) for i in range(2)]
        out = reference.simulate(net, np.ones((1, 1, 1), bool), steps=2, seed=seed, record=("u",))
        assert out["l.u"][0, 1].tolist() == [10 * 64 * xi[0], 20 * 64 * xi[1]]


# ------------------------------------------------------------------------------------------------ IR v2


def graph(input_shape, layers, projections) -> Network:
    from quantal.compile.ir import Layer, Projection

    return Network(name="g", input_shape=input_shape,
                   layers=tuple(Layer(name=n, shape=s, neuron=neu) for n, s, neu in layers),
                   projections=tuple(Projection(name=n, source=a, target=b, synapse=syn, delay=d)
                                     for n, a, b, syn, d in projections))  # fmt: skip


# A neuron that passes its input straight to v: u = a << 6 each step (current_decay 4096 forgets u), v = u
# (voltage_decay 4096 forgets v), never spikes. Recorded v at step t is 64 * a(t).
PASS = Neuron(kind="readout", current_decay=4096, voltage_decay=4096, threshold=0)


def test_conv2d_maps_kernel_taps_to_outputs_by_hand():
    # Input 1x3x3 with a single spike at (y, x) = (0, 2), i.e. flat index 2. Kernel 1x1x2x2 [[1, 2], [3, 4]],
    # stride 1, no padding: output (oy, ox) sums k[ky, kx] * in[oy + ky, ox + kx] over its 2x2 window. The spike at
    # (0, 2) is seen by output (0, 1) through tap (0, 1) (weight 2) and by nothing else (outputs are 2x2: (0, 1) is
    # the only one whose window [0..1] x [1..2] holds (0, 2)). So a = [0, 2, 0, 0] and v(1) = 64 * a.
    k = np.array([[[[1, 2], [3, 4]]]], np.int8)
    net = graph((1, 3, 3), [("c", (1, 2, 2), PASS)], [("c.in", "input", "c", Conv2dSynapse(weight=k), 0)])
    x = np.zeros((1, 1, 9), bool)
    x[0, 0, 2] = True
    out = reference.simulate(net, x, steps=2, record=("v",))
    assert out["c.v"][0, 1].tolist() == [0, 128, 0, 0]
    # The same input as (n, T, C, H, W) gives the same result.
    assert np.array_equal(reference.simulate(net, x.reshape(1, 1, 1, 3, 3), steps=2, record=("v",))["c.v"],
                          out["c.v"])  # fmt: skip


def test_conv2d_padding_stride_and_dilation_by_hand():
    # Input 1x3x3, all nine channels spiking; kernel 1x1x3x3 of ones, padding 1, stride 2: output 2x2 at
    # (oy, ox) in {0, 1}^2 covers input rows 2 oy - 1 .. 2 oy + 1 (clipped to 0..2), likewise columns.
    #   (0, 0): rows 0..1 x cols 0..1 -> 4 inputs;  (0, 1): rows 0..1 x cols 1..2 -> 4;  (1, 1): 4;  (1, 0): 4
    k = np.ones((1, 1, 3, 3), np.int8)
    net = graph((1, 3, 3), [("c", (1, 2, 2), PASS)],
                [("c.in", "input", "c", Conv2dSynapse(weight=k, stride=2, padding=1), 0)])  # fmt: skip
    out = reference.simulate(net, np.ones((1, 1, 9), bool), steps=2, record=("v",))
    assert out["c.v"][0, 1].tolist() == [4 * 64] * 4
    # Dilation 2 with no padding on a 1x5x5 input: one output, taps at rows/cols {0, 2, 4}; with only input
    # (2, 2) (flat 12) active, a = kernel[1, 1] = 5.
    k = np.arange(9, dtype=np.int8).reshape(1, 1, 3, 3) + 1  # kernel[1, 1] = 5
    net = graph((1, 5, 5), [("c", (1, 1, 1), PASS)], [("c.in", "input", "c", Conv2dSynapse(weight=k, dilation=2), 0)])
    x = np.zeros((1, 1, 25), bool)
    x[0, 0, 12] = True
    assert reference.simulate(net, x, steps=2, record=("v",))["c.v"][0, 1].tolist() == [5 * 64]


def test_conv2d_groups_connect_only_their_channels():
    # Input 2x1x1 (two channels), groups 2, kernel (2, 1, 1, 1) = [[7]], [[-3]]: output channel 0 sees only input
    # channel 0 and output channel 1 only input channel 1. Spike on input channel 1 only: a = [0, -3].
    k = np.array([7, -3], np.int8).reshape(2, 1, 1, 1)
    net = graph((2, 1, 1), [("c", (2, 1, 1), PASS)], [("c.in", "input", "c", Conv2dSynapse(weight=k, groups=2), 0)])
    out = reference.simulate(net, np.array([[[0, 1]]], bool), steps=2, record=("v",))
    assert out["c.v"][0, 1].tolist() == [0, -3 * 64]


def test_conv2d_equals_torch_conv2d():
    # The expanded matrix of a conv2d projection is torch's conv2d (cross-correlation), an independent oracle.
    torch = pytest.importorskip("torch")
    from quantal.compile.graph import expand

    rng = np.random.default_rng(0)
    for _ in range(20):
        c_in, groups = int(rng.choice([2, 4])), int(rng.choice([1, 2]))
        c_out = groups * int(rng.integers(1, 4))
        k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        syn = Conv2dSynapse(weight=rng.integers(-128, 128, (c_out, c_in // groups, *k), dtype=np.int8),
                            stride=(int(rng.integers(1, 3)), int(rng.integers(1, 3))),
                            padding=(int(rng.integers(0, 3)), int(rng.integers(0, 3))),
                            dilation=(int(rng.integers(1, 3)), int(rng.integers(1, 3))), groups=groups)  # fmt: skip
        h, w = int(rng.integers(5, 9)), int(rng.integers(5, 9))
        ho, wo = syn.out_hw(h, w)
        net = graph((c_in, h, w), [("c", (c_out, ho, wo), PASS)], [("c.in", "input", "c", syn, 0)])
        x = rng.integers(0, 2, (c_in, h, w)).astype(np.float64)
        want = torch.nn.functional.conv2d(torch.from_numpy(x)[None], torch.from_numpy(syn.weight.astype(np.float64)),
                                          stride=syn.stride, padding=syn.padding, dilation=syn.dilation,
                                          groups=groups)[0].numpy().ravel()  # fmt: skip
        got = expand(net, net.projections[0], syn.weight).astype(np.float64) @ x.ravel()
        assert np.array_equal(got, want)


def test_delay_adds_steps_after_the_synaptic_delay():
    # An input spike at step 0 reaches a projection of delay d at step 1 + d.
    w = np.ones((1, 1), np.int8)
    for d in (0, 1, 5):
        net = graph((1,), [("n", (1,), PASS)], [("p", "input", "n", DenseSynapse(weight=w), d)])
        out = reference.simulate(net, np.ones((1, 1, 1), bool), steps=8, record=("v",))
        assert out["n.v"][0, :, 0].tolist() == [64 if t == 1 + d else 0 for t in range(8)]


def test_projections_into_a_layer_add_and_recurrence_feeds_back():
    # 'r' (threshold 0, reset zero, both decays 4096) gets the input through weight 1 and its own spikes through
    # weight 2 (recurrent); 'o' gets the input through a skip (weight 3) and r through weight 1 (delay 1).
    # Input spike at step 0 only:
    #   t=1: r: a = 1 -> v = 64 > 0: spike;                o: a = 3 (skip)            -> v = 192
    #   t=2: r: a = 2 (own spike of t=1) -> spike;          o: a = 0                   -> v = 0
    #   t=3: r: a = 2 -> spike (and so on, self-sustained); o: a = 1 (r's t=1 spike, delay 1) -> v = 64
    # and from t=3 on o receives r's spike of t-2 every step: v = 64.
    one = lambda v: np.array([[v]], np.int8)  # noqa: E731
    r = Neuron(current_decay=4096, voltage_decay=4096, threshold=0)
    net = graph((1,), [("r", (1,), r), ("o", (1,), PASS)],
                [("r.in", "input", "r", DenseSynapse(weight=one(1)), 0),
                 ("r.rec", "r", "r", DenseSynapse(weight=one(2)), 0),
                 ("o.skip", "input", "o", DenseSynapse(weight=one(3)), 0),
                 ("o.in", "r", "o", DenseSynapse(weight=one(1)), 1)])  # fmt: skip
    out = reference.simulate(net, np.ones((1, 1, 1), bool), steps=6, record=("spikes", "v"))
    assert out["r.spikes"][0, :, 0].tolist() == [0, 1, 1, 1, 1, 1]
    assert out["o.v"][0, :, 0].tolist() == [0, 192, 0, 64, 64, 64]


def test_subtractive_reset_keeps_the_excess():
    # threshold 1 (v > 64 spikes), no leak (voltage_decay 0), u forgotten; input a = 3 each step: u = 192.
    #   t=1: v = 192 > 64 -> spike, v = 192 - 64 = 128;  t=2: v = 128 + 192 = 320 -> spike, v = 256
    #   t=3: v = 448 -> spike, 384. With reset zero v would be 0 after every spike.
    neu = Neuron(current_decay=4096, voltage_decay=0, threshold=1, reset="subtract")
    net = graph((1,), [("n", (1,), neu)], [("p", "input", "n", DenseSynapse(weight=np.array([[3]], np.int8)), 0)])
    out = reference.simulate(net, np.ones((1, 4, 1), bool), steps=4, record=("spikes", "v"))
    assert out["n.spikes"][0, :, 0].tolist() == [0, 1, 1, 1]
    assert out["n.v"][0, :, 0].tolist() == [0, 128, 256, 384]


def test_per_neuron_decays_and_thresholds():
    # Two neurons, same input a = 5 at step 0 only (u = 320 at t=1). Neuron 0: voltage_decay 4096 (v = u),
    # threshold 4 (v > 256: spikes at t=1). Neuron 1: current_decay 2048 keeps half of u:
    # t=2: u = rz(320 * 2048) = 160; voltage_decay 0 accumulates v = 320 + 160 = 480; threshold 10 (640): silent.
    neu = Neuron(current_decay=np.array([4096, 2048], np.int16), voltage_decay=np.array([4096, 0], np.int16),
                 threshold=np.array([4, 10], np.int32))  # fmt: skip
    net = graph((1,), [("n", (2,), neu)], [("p", "input", "n", DenseSynapse(weight=np.array([[5], [5]], np.int8)), 0)])
    out = reference.simulate(net, np.ones((1, 1, 1), bool), steps=3, record=("spikes", "u", "v"))
    assert out["n.spikes"][0, :, 0].tolist() == [0, 1, 0] and out["n.spikes"][0, :, 1].tolist() == [0, 0, 0]
    assert out["n.u"][0, :, 1].tolist() == [0, 320, 160] and out["n.v"][0, :, 1].tolist() == [0, 320, 480]


def test_stream_1_is_keyed_by_the_projection_index():
    # Two identical stochastic projections into one readout: projection p uses key(seed, 1, 0, 0, t, p, j), so
    # their draws differ; recompute both bytes independently.
    from quantal.compile import streams

    w, rel = np.array([[1]], np.int8), np.array([[127]], np.uint8)
    net = graph((1,), [("n", (1,), PASS)], [("a", "input", "n", DenseSynapse(weight=w, release=rel), 0),
                                             ("b", "input", "n", DenseSynapse(weight=w * 2, release=rel), 0)])
    for seed in range(20):
        xi = [int((int(streams.word(streams.key(seed, 1, 0, 0, 1, p, 0), 0)) & 0xFF) <= 127) for p in (0, 1)]
        out = reference.simulate(net, np.ones((1, 1, 1), bool), steps=2, seed=seed, record=("v",))
        assert out["n.v"][0, 1, 0] == 64 * (xi[0] + 2 * xi[1])


def test_a_v1_file_and_its_v2_form_give_identical_outputs(tmp_path):
    from quantal.compile import ir
    from quantal.compile.testing import random_network, random_spikes

    from ..compile.test_ir import write_v1

    rng = np.random.default_rng(12)
    net = random_network(rng, [9, 7, 5, 3], release="random", weight_fixed=True, escape=True, readout=True)
    write_v1(tmp_path / "v1.qnet", net)
    v1 = ir.load(tmp_path / "v1.qnet")
    v2 = ir.load(ir.save(v1, tmp_path / "v2.qnet"))
    x = random_spikes(rng, 4, 8, 9)
    a = reference.simulate(v1, x, steps=10, seed=3, trials=2, record=("spikes", "u", "v", "counts"))
    b = reference.simulate(v2, x, steps=10, seed=3, trials=2, record=("spikes", "u", "v", "counts"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert sum(a[f"{n}.spikes"].sum() for n in ("l0", "l1")) > 0


def test_runs_are_bounded_before_anything_is_allocated(monkeypatch):
    from quantal.compile.runspec import MAX_STEPS, MAX_TRIALS, RunError, RunSpec
    from quantal.compile.testing import random_network

    net = random_network(np.random.default_rng(0), [8, 4])
    x = np.zeros((2, 3, 8), np.uint8)
    for bad in ({"steps": MAX_STEPS + 1}, {"trials": MAX_TRIALS + 1}, {"steps": 10**9}, {"trials": 10**9}):
        with pytest.raises(RunError):
            RunSpec(**bad)
    monkeypatch.setenv("QUANTAL_MAX_OUTPUT_BYTES", "1000")
    with pytest.raises(RunError, match="would take"):
        reference.simulate(net, x, steps=100, record=("spikes", "u", "v"))
    from quantal.hwsim import simulate

    with pytest.raises(RunError, match="would take"):
        simulate(net, x, steps=100, trials=3, record=("v",))
    assert simulate(net, x, steps=100, record=("counts",))["l0.counts"].shape == (2, 4)  # counts are small
