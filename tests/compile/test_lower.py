"""Lowering trained models to IR v1: rules, calibration, exactness of the S2M on/off pairs, refusals."""

import itertools
import math

import numpy as np
import pytest
import torch

from quantal.compile import reference
from quantal.compile.lower import LoweringError, choose_weight_exp, lower, release_codes
from quantal.hwsim import simulate
from quantal.train import config as C
from quantal.train.data import encode, load
from quantal.train.trainer import build_model


def _model(kind, **model):
    data = {"encoder": "rate" if kind == "lif" else "none", "steps": 6}
    cfg = C.validate({"data": data, "model": {"kind": kind, "hidden": [12], **model}})
    torch.manual_seed(0)
    return build_model(cfg, 64, 10), cfg


@pytest.fixture(scope="module")
def digits():
    return load("digits", "train").x[:64]


def test_release_codes_are_8_bit_probabilities():
    assert release_codes(0.5, (1, 1))[0, 0] == 127  # (127 + 1) / 256 = 0.5 exactly
    assert release_codes(1.0, (1, 1))[0, 0] == 255 and release_codes(1e-9, (1, 1))[0, 0] == 0
    p = np.linspace(0.01, 1, 50)
    assert np.abs((release_codes(torch.tensor(p), (50,)).astype(float) + 1) / 256 - p).max() <= 0.5 / 256 + 1e-12


def test_weight_exponent_minimises_the_error_and_counts_saturation():
    w = np.array([1000.0, -3.0, 2.0, 40.0])
    e, sat = choose_weight_exp(w)
    err = {k: ((np.clip(np.rint(w / 2.0**k), -128, 127) * 2.0**k - w) ** 2).sum() for k in range(-8, 8)}
    assert err[e] == min(err.values())
    assert sat == int(((np.rint(w / 2.0**e) > 127) | (np.rint(w / 2.0**e) < -128)).sum())
    e2, sat2 = choose_weight_exp(np.array([300.0] + [1.5] * 10000))  # many small weights: clip the outlier
    assert (e2, sat2) == (1, 1)  # e = 1: 300 -> 254 costs 2116 < the 20,000 the small weights lose at e = 2


@pytest.mark.parametrize("model", [{"p": 0.5, "escape": "sigmoid"}, {"p": 1.0, "escape": None}])
def test_lif_lowering_is_exact_and_follows_the_rules(digits, model):
    m, cfg = _model("lif", **model)
    q, rows, spec = lower(m, cfg, digits, seed=1)
    net = q.to_network("t")
    assert [la.neuron.kind for la in net.layers] == ["lif", "readout"]
    assert spec["run_steps"] == 6 + 1 + 1 and spec["encoder"] == "rate"
    c = rows[0]["scale"]
    assert net.layers[0].neuron.threshold == round(c * 1.0)  # threshold = round(c theta)
    assert net.layers[0].neuron.current_decay == 2048 and net.layers[0].neuron.voltage_decay == 1024
    if model["p"] < 1:
        assert (net.projections[0].synapse.release == 127).all()
        assert net.layers[0].neuron.escape_noise.scale == pytest.approx(64 * c / 5.0)
    else:
        assert net.projections[0].synapse.release is None and net.layers[0].neuron.escape_noise is None
    x = encode(digits, "rate", 6, seed=1)
    ref = reference.simulate(net, x[:8], steps=spec["run_steps"], seed=3, record=("spikes", "u", "v"))
    out = q(torch.from_numpy(x[:8]), steps=spec["run_steps"], seed=3, record=True)
    for li, la in enumerate(net.layers):
        for qty, got in (("spikes", out.spikes), ("u", out.u), ("v", out.v)):
            assert np.array_equal(got[li].detach().numpy(), ref[f"{la.name}.{qty}"])
    # calibration keeps the calibration data away from the 24-bit limits (margin 2)
    hw = simulate(net, x, steps=spec["run_steps"], seed=0, record=("u", "v"))
    for la in net.layers:
        assert np.abs(hw[f"{la.name}.v"]).max() < 2**23 - 1 and np.abs(hw[f"{la.name}.u"]).max() < 2**23


def test_binary_lowering_uses_logistic_escape_with_the_model_scale(digits):
    m, cfg = _model("binary", estimator="surrogate", p=0.5)
    q, rows, spec = lower(m, cfg, digits)
    net = q.to_network("b")
    la = net.layers[0]
    assert la.neuron.current_decay == 4096 and la.neuron.voltage_decay == 4096 and la.neuron.threshold == 0
    assert la.neuron.escape_noise.scale == pytest.approx(64 * rows[0]["scale"])  # P = sigmoid(a + b)
    b_float = m.layers[0].bias.detach().double().numpy()
    err = np.abs(la.neuron.effective_bias(12) - 64 * rows[0]["scale"] * b_float)
    assert (err <= 2.0 ** np.asarray(la.neuron.bias_exp)).all()  # within one step of the bias grid
    # the worst case can never wrap u
    assert net.worst_case_input(0) <= 2**23
    assert net.layers[1].neuron.kind == "readout" and net.layers[1].neuron.voltage_decay == 0
    assert spec["encoder"] == "rate"


@pytest.mark.parametrize("weight_norm", [True, False])
def test_s2m_on_off_pairs_fire_with_the_exact_blank_out_probability(weight_norm):
    # one S2M unit with three ±1 inputs: enumerate the 2**3 release patterns for the exact probability
    m, cfg = _model("s2m", p=0.5, weight_norm=weight_norm)
    lay = m.layers[0]
    with torch.no_grad():
        lay.weight.data = torch.zeros_like(lay.weight)
        lay.weight.data[0, :3] = torch.tensor([0.9, -0.5, 0.3])
        if weight_norm:
            lay.beta.data[0] = 1.2  # a learned gain: a reliable fraction a = beta sqrt(2 p (1 - p)) - p
        else:  # v learned directly: its norm is the gain
            lay.weight.data[0, :3] *= 1.2 / lay.weight.data[0].norm()
    q, rows, spec = lower(m, cfg, np.zeros((1, 64)))
    net = q.to_network("s")
    syn = net.projections[0].synapse
    n = 12
    z = np.array([1, 1, -1])  # the ±1 input
    frame = np.zeros((1, 1, 128), np.uint8)
    frame[0, 0, np.where(z > 0, [0, 1, 2], [64, 65, 66])] = 1  # on channels 0..63, off channels 64..127
    active = np.flatnonzero(frame[0, 0])
    p_on_exact = p_off_exact = 0.0
    for xi in itertools.product([0, 1], repeat=3):
        pr = np.prod([(syn.release[0, j] + 1) / 256 if x else 1 - (syn.release[0, j] + 1) / 256
                      for j, x in zip(active, xi)])  # fmt: skip
        a_on = sum(int(syn.weight_fixed[0, j]) + x * int(syn.weight[0, j]) for j, x in zip(active, xi))
        a_off = sum(int(syn.weight_fixed[n, j]) + x * int(syn.weight[n, j]) for j, x in zip(active, xi))
        a_on, a_off = math.floor(a_on * 2.0**syn.weight_exp), math.floor(a_off * 2.0**syn.weight_exp)
        p_on_exact += pr * (64 * a_on > 0)
        p_off_exact += pr * (64 * a_off + 64 > 0)
    assert p_on_exact + p_off_exact == pytest.approx(1.0)  # off fires iff u <= 0: complementary in law
    trials = 20000
    x = np.repeat(frame, trials, axis=0)
    s = simulate(net, x, steps=2, seed=4, record=("spikes",), layers=(net.layers[0].name,))
    fired = s[f"{net.layers[0].name}.spikes"][:, 1]
    for col, p in ((0, p_on_exact), (n, p_off_exact)):
        rate = fired[:, col].mean()
        se = math.sqrt(p * (1 - p) / trials) + 1e-12
        assert abs(rate - p) / se < 4.5, (col, rate, p)  # z-test, false alarm rate ~ 7e-6


@pytest.mark.parametrize("kind,model,match", [
    ("mlp", {}, "MLP"), ("lif", {"escape": "erf"}, "erf"),
    ("binary", {"estimator": "noisy_rectifier"}, "NoisyRectifier"), ("binary", {"estimator": "moment"}, "probit"),
])  # fmt: skip
def test_unsupported_models_are_named(digits, kind, model, match):
    m, cfg = _model(kind, **model)
    with pytest.raises(LoweringError, match=match):
        lower(m, cfg, digits)


def test_an_unknown_synapse_module_is_named(digits):
    m, cfg = _model("lif")
    m.layers[0].synapse = torch.nn.Bilinear(64, 64, 12)
    with pytest.raises(LoweringError, match="Bilinear"):
        lower(m, cfg, digits)
