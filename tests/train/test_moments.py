"""Moment propagation against scipy's bivariate normal CDF and Monte Carlo."""

import numpy as np
import pytest
import torch
from scipy import stats

from quantal.train import moments as M


@pytest.mark.parametrize("rho", [-0.95, -0.5, 0.0, 0.3, 0.8, 0.99])
def test_bivariate_cdf_matches_scipy(rho):
    for a, b in [(0.0, 0.0), (1.2, -0.4), (-2.0, -1.5), (0.5, 2.5)]:
        want = stats.multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]]).cdf([a, b])
        got = M.bivariate_normal_cdf(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64),
                                     torch.tensor(rho, dtype=torch.float64)).item()  # fmt: skip
        assert abs(got - want) < 2e-6


def test_threshold_moments_are_exact_for_gaussian_input():
    # x ~ N(mu, Sigma) exactly Gaussian: Monte Carlo of s = [x > 0] with 400,000 samples; tolerance 5 se
    # (se of a mean or covariance of binary variables <= 0.5 / sqrt(n) = 0.0008).
    g = np.random.default_rng(0)
    A = g.normal(size=(5, 5))
    Sigma = A @ A.T + 0.5 * np.eye(5)
    mu = g.normal(size=5)
    m, C = M.threshold_moments(torch.tensor(mu), torch.tensor(Sigma))
    s = (g.multivariate_normal(mu, Sigma, size=400_000) > 0).astype(float)
    assert np.allclose(m.numpy(), s.mean(0), atol=0.004)
    assert np.allclose(C.numpy(), np.cov(s.T), atol=0.004)
    md, vd = M.threshold_moments(torch.tensor(mu), torch.tensor(np.diag(Sigma)), diagonal=True)
    assert np.allclose(md.numpy(), m.numpy()) and np.allclose(vd.numpy(), np.diag(C.numpy()))


def test_two_layer_network_against_monte_carlo():
    # Binary inputs (independent, mean m0) -> 200 units -> 4 units, blank-out p = 0.7, probit noise 0.5.
    # The second layer's input is Gaussian only by the central limit theorem (fan-in 200). Tolerances from the
    # Monte Carlo standard errors: a mean's is sqrt(m (1 - m) / N) <= 0.0025, a covariance's about
    # sqrt(var_i var_j / N) ~ 0.001; the off-diagonal covariances (~0.003) are small, so they are tested as a
    # chi-square against those errors, and against the independence model (all zero) that they must beat.
    g = np.random.default_rng(1)
    n0, n1, n2, N = 60, 200, 4, 40_000
    W1 = g.normal(size=(n1, n0)) / np.sqrt(n0)
    W2 = g.normal(size=(n2, n1)) / np.sqrt(n1) * 2
    b1, b2 = g.normal(size=n1) * 0.2, g.normal(size=n2) * 0.2
    m0 = g.uniform(0.2, 0.8, n0)
    p, noise = 0.7, 0.5
    s0 = (g.random((N, n0)) < m0).astype(float)

    def layer(s, W, b):
        xi = g.random((N,) + W.shape) < p
        x = np.einsum("noi,oi,ni->no", xi, W, s) + b + g.normal(scale=np.sqrt(noise), size=(N, W.shape[0]))
        return (x > 0).astype(float)

    s2 = layer(layer(s0, W1, b1), W2, b2)
    t = torch.tensor
    m, C = M.propagate(t(m0), t(np.diag(m0 * (1 - m0))), [(t(W1), t(b1)), (t(W2), t(b2))], p=p, noise_var=noise)
    mc_m, mc_c = s2.mean(0), np.cov(s2.T)
    se_m = np.sqrt(mc_m * (1 - mc_m) / N)
    assert np.all(np.abs(m.numpy() - mc_m) < 4 * se_m)
    v = np.diag(mc_c)
    se_c = np.sqrt(np.outer(v, v) / N)
    assert np.all(np.abs(np.diag(C.numpy()) - v) < 4 * np.diag(se_c) + 1e-3)
    iu = np.triu_indices(n2, 1)  # the 6 distinct off-diagonal covariances
    chi2_model = float((((C.numpy() - mc_c) / se_c)[iu] ** 2).sum())
    chi2_independent = float(((mc_c / se_c)[iu] ** 2).sum())
    assert chi2_model < 20  # 6 degrees of freedom: p ~ 0.003
    assert chi2_model < chi2_independent / 2  # the propagated covariances carry real information


def test_moments_are_differentiable():
    W = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    m0 = torch.full((4,), 0.5, dtype=torch.float64)
    m, C = M.propagate(m0, torch.diag(m0 * (1 - m0)), [(W, None)], noise_var=0.1)
    (m.sum() + C.sum()).backward()
    assert W.grad is not None and torch.isfinite(W.grad).all() and W.grad.abs().sum() > 0
