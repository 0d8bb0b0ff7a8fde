"""Float neurons: closed forms, the one-step delay, and agreement with the IR's reference where the
fixed-point arithmetic is exact (memoryless units and leak-free integrators with integer weights)."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from quantal.compile import reference
from quantal.compile.ir import DenseSynapse, Network, Neuron
from quantal.train.neurons import LIFParams, LIFState, SpikingLayer, binary_step, lif_step


def test_constant_input_follows_the_geometric_sums():
    # no spikes (threshold huge): u_t = a (1 - alpha^t) / (1 - alpha); v_t = beta v_{t-1} + u_t
    p = LIFParams(alpha=0.8, beta=0.6, threshold=1e9)
    a = torch.tensor([1.5], dtype=torch.float64)
    state = LIFState(torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))
    v_expected = 0.0
    for t in range(1, 12):
        _, state = lif_step(a, state, p)
        u_expected = 1.5 * (1 - 0.8**t) / (1 - 0.8)
        v_expected = 0.6 * v_expected + u_expected
        assert math.isclose(state.u.item(), u_expected, rel_tol=1e-12)
        assert math.isclose(state.v.item(), v_expected, rel_tol=1e-12)


def test_reset_gradient_is_optional():
    a = torch.tensor([2.0], requires_grad=True)
    grads = []
    for detach in (True, False):
        p = LIFParams(alpha=0.0, beta=1.0, threshold=1.0, detach_reset=detach)
        _, st = lif_step(a, LIFState(torch.zeros(1), torch.zeros(1)), p)
        _, st = lif_step(torch.zeros(1), st, p)  # after the spike at step 1, v was reset
        (g,) = torch.autograd.grad(st.v.sum(), a)
        grads.append(g.item())
    assert grads[0] == 0.0 and grads[1] != 0.0


def test_binary_unit_with_escape_noise_fires_with_the_escape_probability():
    torch.manual_seed(1)
    a = torch.full((50000,), 0.3)
    p = LIFParams(threshold=0.5, escape="sigmoid", escape_beta=4.0)
    rate = binary_step(a, p).mean().item()
    expected = 1 / (1 + math.exp(-4.0 * (0.3 - 0.5)))
    assert abs(rate - expected) < 5 * math.sqrt(expected * (1 - expected) / 50000)


def test_one_step_delay():
    layer = SpikingLayer(nn.Linear(1, 1, bias=False), 1, LIFParams(alpha=0.0, beta=0.0, threshold=0.5))
    with torch.no_grad():
        layer.synapse.weight.fill_(1.0)
    x = torch.zeros(1, 4, 1)
    x[0, 0, 0] = 1
    s, _ = layer(x)
    assert s[0, :, 0].tolist() == [0.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize("memoryless", [True, False])
def test_float_layer_equals_the_reference_where_fixed_point_is_exact(memoryless):
    # Integer weights with weight_exp 0, integer bias/64 and an integer threshold: with both decays at 4096
    # (memoryless) or current_decay 4096 / voltage_decay 0 (leak-free integrator) the fixed-point update has no
    # rounding, so the float layer must give the same spikes as the reference executor.
    rng = np.random.default_rng(3)
    w = rng.integers(-20, 21, (6, 10), dtype=np.int8)
    vd = 4096 if memoryless else 0
    net = Network.chain("f", 10, (("l", 6, DenseSynapse(weight=w),
        Neuron(current_decay=4096, voltage_decay=vd, threshold=15, bias_mant=-128, bias_exp=0)),))  # fmt: skip
    x = rng.random((5, 12, 10)) < 0.4
    ref = reference.simulate(net, x, record=("spikes",))["l.spikes"]
    layer = SpikingLayer(nn.Linear(10, 6, bias=False), 6,
                         LIFParams(alpha=0.0, beta=0.0 if memoryless else 1.0, threshold=15.0, bias=-2.0))
    with torch.no_grad():
        layer.synapse.weight.copy_(torch.tensor(w, dtype=torch.float64))
    s, _ = layer.double()(torch.tensor(x, dtype=torch.float64))
    assert ref.sum() > 0
    assert np.array_equal(s.detach().numpy().astype(np.uint8), ref)
