"""Blank-out synapses and S2M units against Monte Carlo and closed forms."""

import math

import pytest
import torch

from quantal.train import synapses as S


def test_moment_mode_matches_monte_carlo():
    # 20,000 sampled forward passes of one input: the sample mean and variance of u match mu and sigma^2
    # within 5 standard errors (mean) and 6% (variance, whose relative se is ~sqrt(2/n) = 1%).
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 30, generator=g, dtype=torch.float64)
    p = torch.rand(6, 30, generator=g, dtype=torch.float64) * 0.8 + 0.1
    a = torch.tensor([0.0, 0.1, 0.2, 0.0, 0.5, 0.3], dtype=torch.float64)
    z = (torch.rand(1, 30, generator=g, dtype=torch.float64) < 0.5).to(torch.float64)
    mean, var = S.blank_out_linear(z, w, p, a, mode="moment")
    u = torch.cat([S.blank_out_linear(z.expand(2000, 30), w, p, a, generator=g) for _ in range(10)])
    n = u.shape[0]
    assert torch.all((u.mean(0) - mean[0]).abs() <= 5 * torch.sqrt(var[0] / n))
    assert torch.allclose(u.var(0), var[0], rtol=0.06)


def test_sampled_mode_draws_per_sample_masks_and_p_gets_gradients():
    layer = S.BlankOutLinear(20, 4, p=0.6, learn_p=True)
    z = torch.ones(2, 20)
    u = layer(z)
    assert u.shape == (2, 4) and not torch.equal(u[0], u[1])  # independent masks per sample
    u.sum().backward()
    assert layer.p_logit.grad is not None and layer.p_logit.grad.abs().sum() > 0
    assert torch.all((layer.p > 0) & (layer.p < 1))


def test_p_one_is_deterministic():
    w = torch.randn(3, 5)
    z = torch.randn(4, 5)
    assert torch.allclose(S.blank_out_linear(z, w, torch.tensor(1.0)), z @ w.T, atol=1e-6)


def test_s2m_formula_matches_sampled_blank_out_sign_units():
    # Sign units fed by N = 400 blank-out synapses (p = 0.5, a = 0): P(u >= 0) by Monte Carlo against the
    # erf formula. The formula is the Gaussian (CLT) approximation, accurate to ~1% at this fan-in, and the
    # Monte Carlo standard error is <= 0.5 / sqrt(8000) = 0.006: tolerance 0.03.
    g = torch.Generator().manual_seed(1)
    n, p = 400, 0.5
    w = torch.randn(8, n, generator=g, dtype=torch.float64) * 0.1
    w[:, :40] += 0.02  # give the units a bias toward firing, so probabilities span (0, 1)
    z = torch.where(torch.rand(1, n, generator=g) < 0.5, 1.0, -1.0).to(torch.float64)
    prob = S.s2m_probability(z, w, torch.full((8,), S.s2m_beta(p), dtype=torch.float64))[0]
    u = torch.cat([S.blank_out_linear(z.expand(1000, n), w, torch.tensor(p), generator=g) for _ in range(8)])
    mc = (u >= 0).to(torch.float64).mean(0)
    assert prob.min() < 0.4 and prob.max() > 0.6
    assert torch.all((mc - prob).abs() < 0.03)


def test_s2m_is_invariant_to_positive_row_scaling():
    layer = S.S2MLinear(50, 7, p=0.3)
    z = torch.where(torch.rand(5, 50) < 0.5, 1.0, -1.0)
    before = layer.probability(z)
    with torch.no_grad():
        layer.weight[2] *= 3.7
        layer.weight[5] *= 0.01
    assert torch.allclose(layer.probability(z), before, atol=1e-6)


def test_s2m_samples_follow_the_probability_and_train():
    torch.manual_seed(0)
    layer = S.S2MLinear(10, 3, p=0.5)
    z = torch.where(torch.rand(1, 10) < 0.5, 1.0, -1.0).expand(20000, 10)
    out = layer(z)
    assert set(out.unique().tolist()) <= {-1.0, 1.0}
    prob = layer.probability(z[:1])[0]
    assert torch.all(((out > 0).float().mean(0) - prob).abs() < 5 * torch.sqrt(prob * (1 - prob) / 20000) + 1e-3)
    out.sum().backward()
    assert layer.weight.grad.abs().sum() > 0 and layer.beta.grad.abs().sum() > 0


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1])
def test_s2m_beta_needs_noise(p):
    with pytest.raises(ValueError):
        S.s2m_beta(p)


def test_beta_closed_form():
    assert math.isclose(S.s2m_beta(0.5), 0.5 / math.sqrt(0.5))


def test_s2m_without_weight_norm_starts_from_the_same_function_and_is_not_scale_invariant():
    torch.manual_seed(3)
    normed = S.S2MLinear(40, 6, p=0.5)
    torch.manual_seed(3)
    plain = S.S2MLinear(40, 6, p=0.5, weight_norm=False)
    z = torch.where(torch.rand(9, 40) < 0.5, 1.0, -1.0)
    assert torch.allclose(plain.probability(z), normed.probability(z), atol=1e-6)  # v = beta w / ||w||
    assert torch.allclose(plain.gain, normed.gain, atol=1e-6)  # the gain is ||v||: the same blank-out synapses
    assert not hasattr(plain, "beta") or not isinstance(plain.beta, torch.nn.Parameter)
    with torch.no_grad():
        plain.weight.mul_(0.1)
    assert (plain.probability(z) - 0.5).abs().max() < (normed.probability(z) - 0.5).abs().max()


def test_weight_norm_is_a_checked_switch_of_s2m_configs():
    from quantal.train.config import ConfigError, validate
    from quantal.train.trainer import build_model

    cfg = validate({"model": {"kind": "s2m", "weight_norm": False}})
    model = build_model(cfg, 64, 10)
    assert all(not layer.weight_norm for layer in model.layers)
    with pytest.raises(ConfigError, match="model.weight_norm"):
        validate({"model": {"kind": "s2m", "weight_norm": "no"}})
