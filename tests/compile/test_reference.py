"""Golden tests of the reference semantics; every expected value is derived by hand in the comments."""

import numpy as np
import pytest

from quantal.compile import reference
from quantal.compile.ir import DenseSynapse, Network, Neuron

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
