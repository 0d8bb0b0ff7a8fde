"""Escape functions and surrogate derivatives against autograd of their smooth counterparts."""

import math

import pytest
import torch

from quantal.train import functional as F

X = torch.linspace(-6, 6, 241, dtype=torch.float64)


@pytest.mark.parametrize("kind", F.ESCAPE_FUNCTIONS)
@pytest.mark.parametrize("beta", [0.3, 1.0, 4.0])
def test_escape_derivative_equals_autograd(kind, beta):
    x = X.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.escape_probability(x, kind, beta).sum(), x)
    assert torch.allclose(F.escape_derivative(X, kind, beta), g, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("beta", [0.5, 2.0, 10.0])
def test_surrogates_are_derivatives_of_smooth_functions(beta):
    x = X.clone().requires_grad_(True)
    # SuperSpike is the derivative of the fast sigmoid x / (1 + beta |x|)
    (g,) = torch.autograd.grad((x / (1 + beta * x.abs())).sum(), x)
    assert torch.allclose(F.surrogate(X, "superspike", beta), g, rtol=1e-10)
    (g,) = torch.autograd.grad(torch.sigmoid(beta * x).sum(), x)
    assert torch.allclose(F.surrogate(X, "sigmoid", beta), g, rtol=1e-10)
    assert torch.allclose(F.surrogate(X, "sigmoid", beta, scale_by_beta=True), g / beta, rtol=1e-10)
    assert torch.equal(F.surrogate(X, "straight", beta), torch.ones_like(X))


def test_escape_limits_and_values():
    # sigmoid(0) = 1/2, erf escape at 0 = 1/2, exponential at 0 = 1 - 1/e; all -> step function as beta grows
    zero = torch.zeros(1, dtype=torch.float64)
    assert F.escape_probability(zero, "sigmoid").item() == 0.5
    assert F.escape_probability(zero, "erf").item() == 0.5
    assert math.isclose(F.escape_probability(zero, "exponential").item(), 1 - math.exp(-1), rel_tol=1e-12)
    x = torch.tensor([-0.5, 0.5], dtype=torch.float64)
    for kind in F.ESCAPE_FUNCTIONS:
        p = F.escape_probability(x, kind, beta=200.0)
        assert p[0] < 1e-6 and p[1] > 1 - 1e-6


def test_deterministic_spike_and_its_gradient():
    x = torch.tensor([-1.0, 0.0, 0.5, 2.0], requires_grad=True)
    s = F.spike(x, surrogate_kind="superspike", beta=2.0)
    assert s.tolist() == [0.0, 0.0, 1.0, 1.0]  # strict threshold
    s.sum().backward()
    assert torch.allclose(x.grad, 1 / (2 * x.detach().abs() + 1) ** 2)


@pytest.mark.parametrize("kind", F.ESCAPE_FUNCTIONS)
def test_stochastic_spike_frequency_matches_escape_probability(kind):
    # 40,000 draws per x; tolerance 5 standard errors
    torch.manual_seed(0)
    x = torch.tensor([-2.0, -0.5, 0.0, 0.7, 1.5]).repeat(40000, 1)
    s = F.spike(x, escape=kind, beta=1.3)
    p = F.escape_probability(x[0], kind, 1.3)
    se = torch.sqrt(p * (1 - p) / 40000)
    assert torch.all((s.mean(0) - p).abs() <= 5 * se + 1e-6)


def test_given_uniforms_make_the_draw_reproducible():
    x = torch.randn(100)
    u = torch.rand(100)
    assert torch.equal(F.spike(x, escape="sigmoid", uniforms=u), (u < torch.sigmoid(x)).float())


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf")])
def test_bad_beta_and_names(bad):
    with pytest.raises(ValueError, match="beta"):
        F.escape_probability(X, "sigmoid", bad)
    with pytest.raises(ValueError, match="unknown surrogate"):
        F.spike(X, surrogate_kind="magic")
    with pytest.raises(ValueError, match="unknown escape"):
        F.spike(X, escape="gauss")
