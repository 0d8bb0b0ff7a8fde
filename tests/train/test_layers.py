"""quantal.nn layers: the IR's dynamics in float, stochastic release statistics, gradients, any device."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from quantal import nn as qnn

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def test_lif_integrates_the_previous_steps_input():
    # alpha 0.5, beta 0.5, threshold 10, no bias; input a = 4 at step 0 only. The neuron integrates a[t-1] at t:
    #   t=0: u = 0, v = 0;  t=1: u = 4, v = 4;  t=2: u = 2, v = 2 + 2 = 4;  t=3: u = 1, v = 2 + 1 = 3
    lif = qnn.LIF(1, alpha=0.5, beta=0.5, threshold=10.0)
    a = torch.zeros(1, 4, 1)
    a[0, 0, 0] = 4.0
    s, v = lif.run(a)
    assert v[0, :, 0].tolist() == [0.0, 4.0, 4.0, 3.0] and s.sum() == 0


def test_reset_zero_and_subtract():
    # IF (alpha 0, beta 1), threshold 1, input 1.5 every step. Zero: v = 1.5 -> spike -> 0, every step.
    # Subtract: 1.5 -> spike -> 0.5; 2.0 -> spike -> 1.0; 2.5 -> spike -> 1.5
    a = torch.full((1, 4, 1), 1.5)
    s0, v0 = qnn.LIF(1, alpha=0.0, beta=1.0, threshold=1.0).run(a)
    s1, v1 = qnn.LIF(1, alpha=0.0, beta=1.0, threshold=1.0, reset="subtract").run(a)
    assert s0[0, :, 0].tolist() == [0, 1, 1, 1] and v0[0, :, 0].tolist() == [0, 0, 0, 0]
    assert s1[0, :, 0].tolist() == [0, 1, 1, 1] and v1[0, :, 0].tolist() == [0, 0.5, 1.0, 1.5]
    with pytest.raises(ValueError, match="reset"):
        qnn.LIF(1, reset="hold")
    with pytest.raises(ValueError, match="alpha"):
        qnn.LIF(1, alpha=1.5)


def test_recurrent_lif_feeds_back_its_own_spikes():
    r = qnn.RecurrentLIF(2, alpha=0.0, beta=0.0, threshold=0.5)
    with torch.no_grad():
        r.recurrent.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))  # each neuron excites the other
    a = torch.zeros(1, 5, 2)
    a[0, 0, 0] = 1.0  # neuron 0 fires at t=1, then they alternate
    s = r(a)
    assert s[0].tolist() == [[0, 0], [1, 0], [0, 1], [1, 0], [0, 1]]


def test_blank_out_linear_has_the_bernoulli_mean_and_variance():
    torch.manual_seed(0)
    syn = qnn.BlankOutLinear(30, 4, p=0.3)
    x = (torch.rand(1, 1, 30) < 0.5).float().expand(4000, 1, 30)
    a = syn(x)[:, 0]  # (4000, 4): independent draws per sample
    w = syn.weight.detach()
    mean = 0.3 * (w * x[0, 0]).sum(1)
    var = 0.3 * 0.7 * (w**2 * x[0, 0]).sum(1)
    z = (a.mean(0) - mean) / torch.sqrt(var / 4000)
    assert z.abs().max() < 4.5  # a z-test per output (fails with probability < 1e-4)
    assert torch.allclose(a.var(0), var, rtol=0.15)
    syn.mode = "mean"
    assert torch.allclose(syn(x[:1])[0, 0], mean.float(), atol=1e-5)


def test_blank_out_conv_sampled_and_moment_agree_in_distribution():
    torch.manual_seed(1)
    syn = qnn.BlankOutConv2d(2, 3, 3, padding=1, p=0.4, mode="sampled")
    x = (torch.rand(1, 1, 2, 5, 5) < 0.5).float().expand(3000, 1, 2, 5, 5).contiguous()
    sampled = syn(x)[:, 0]
    syn.mode = "moment"
    moment = syn(x)[:, 0]
    w = syn.weight.detach()
    mean = torch.nn.functional.conv2d(x[:1, 0], 0.4 * w, padding=1)[0]
    var = torch.nn.functional.conv2d(x[:1, 0] ** 2, 0.24 * w**2, padding=1)[0]
    for a in (sampled, moment):
        z = (a.mean(0) - mean) / torch.sqrt(var / 3000 + 1e-12)
        assert z.abs().max() < 5.0
    # the exact draws are per link: the variance of the sampled sum is the Bernoulli variance
    assert torch.allclose(sampled.var(0), var, rtol=0.2, atol=1e-3)


def test_learnable_release_thresholds_and_decays_get_gradients():
    model = nn.Sequential(qnn.BlankOutLinear(8, 6, p=0.5, learn_p=True, mode="moment"),
                          qnn.LIF(6, alpha=0.5, beta=0.8, learn_threshold=True, learn_decay=True,
                                  escape="sigmoid"), qnn.Linear(6, 2), qnn.Readout(2))  # fmt: skip
    x = (torch.rand(16, 6, 8) < 0.5).float()
    qnn.logits(model(x)).sum().backward()
    lif = model[1]
    for p in (model[0].p_logit, lif.threshold, lif.alpha_logit, lif.beta_logit, lif.bias):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    assert ((lif.alpha > 0) & (lif.alpha < 1)).all() and math.isclose(lif.beta[0].item(), 0.8, rel_tol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_layers_run_on_the_device(device):
    model = nn.Sequential(qnn.Conv2d(1, 2, 3), qnn.LIF((2, 4, 4)), qnn.AvgPool2d(2), qnn.Flatten(),
                          qnn.BlankOutLinear(8, 3, p=0.5), qnn.Binary(3), qnn.Linear(3, 2), qnn.Readout(2)).to(device)
    out = qnn.logits(model((torch.rand(4, 5, 1, 6, 6, device=device) < 0.5).float()))
    assert out.shape == (4, 2) and out.device.type == device and np.isfinite(out.detach().cpu().numpy()).all()
