"""Moment propagation through stochastic binary networks (rule-2019; dichotomized Gaussian, Macke et al.).

Activity is described by its mean m and covariance C instead of samples. Through a linear layer with
blank-out synapses (release probability p, default 1) and bias b:

    mu    = (p W) m + b
    Sigma = (p W) C (p W)^T + diag( sum_j p (1 - p) W_ij^2 E[s_j^2] )      (E[s_j^2] = m_j for binary s)

Through threshold units s_i = [x_i > 0] with Gaussian pre-activation x ~ N(mu, Sigma) (a probit unit with
noise variance sigma_n^2 is the same with sigma_n^2 added to the diagonal):

    m_i  = Phi(mu_i / sigma_i)
    C_ij = Phi2(mu_i / sigma_i, mu_j / sigma_j; rho_ij) - m_i m_j,   rho_ij = Sigma_ij / (sigma_i sigma_j),  i != j
    C_ii = m_i (1 - m_i)

Phi2 is the bivariate normal CDF, computed with Plackett's identity
``Phi2(a, b; rho) = Phi(a) Phi(b) + (1 / 2 pi) int_0^{asin rho} exp(-(a^2 - 2 a b sin t + b^2) / (2 cos^2 t)) dt``
by Gauss-Legendre quadrature (the substitution r = sin t removes the singularity at |rho| -> 1), so
everything is differentiable with autograd. ``diagonal=True`` keeps only the variances (C diagonal).
"""

from __future__ import annotations

import math

import numpy as np
import torch

_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(32)


def normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return torch.special.ndtr(x)


def bivariate_normal_cdf(a: torch.Tensor, b: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
    """P(X <= a, Y <= b) for standard normals with correlation rho (broadcasting), differentiable."""
    a, b, rho = torch.broadcast_tensors(a, b, rho)
    rho = rho.clamp(-1 + 1e-12, 1 - 1e-12)
    top = torch.asin(rho)  # integrate t over [0, asin rho]
    nodes = torch.as_tensor(_GL_NODES, dtype=a.dtype, device=a.device)
    weights = torch.as_tensor(_GL_WEIGHTS, dtype=a.dtype, device=a.device)
    t = (top[..., None] / 2) * (nodes + 1)  # map [-1, 1] -> [0, top]
    cos2 = torch.cos(t) ** 2
    expo = -(a[..., None] ** 2 - 2 * a[..., None] * b[..., None] * torch.sin(t) + b[..., None] ** 2) / (2 * cos2)
    integral = (top / 2) * (weights * torch.exp(expo)).sum(-1) / (2 * math.pi)
    return normal_cdf(a) * normal_cdf(b) + integral


def linear_moments(m: torch.Tensor, C: torch.Tensor, W: torch.Tensor, b: torch.Tensor | None = None,
                   p: torch.Tensor | float = 1.0, *, a: torch.Tensor | None = None, binary_input: bool = True,
                   diagonal: bool = False) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Moments of ``x = ((xi + a) * W) s + b`` for s with mean m (n_in,) and covariance C (n_in, n_in), or
    variances (n_in,) when ``diagonal`` (then m and C may also be batches (batch, n_in)). ``p``: release
    probabilities (scalar or W's shape); ``a`` (n_out,): the reliable fraction of neftci-s2m (default 0)."""
    p = torch.as_tensor(p, dtype=W.dtype, device=W.device)
    pw = (p if a is None else p + a.reshape(-1, 1)) * W  # E[(xi + a) W]
    # right-multiplication by transposes: m and (with diagonal) C may carry a leading batch axis
    mu = m @ pw.T + (0 if b is None else b)
    second = m if binary_input else ((torch.diagonal(C) if not diagonal else C) + m * m)  # E[s_j^2]
    release_var = second @ (p * (1 - p) * W * W).T
    if diagonal:
        return mu, C @ (pw * pw).T + release_var
    return mu, pw @ C @ pw.T + torch.diag(release_var)


def threshold_moments(mu: torch.Tensor, Sigma: torch.Tensor, *, noise_var: float = 0.0,
                      diagonal: bool = False) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Mean and covariance (or variances) of s = [x > 0], x ~ N(mu, Sigma) (+ probit noise of ``noise_var``)."""
    var = (Sigma if diagonal else torch.diagonal(Sigma)) + noise_var
    sd = torch.sqrt(var.clamp_min(1e-30))
    z = mu / sd
    m = normal_cdf(z)
    if diagonal:
        return m, m * (1 - m)
    rho = (Sigma - torch.diag(torch.diagonal(Sigma))) / (sd[:, None] * sd[None, :])  # zero on the diagonal
    # P(x_i > 0, x_j > 0) = Phi2(z_i, z_j; rho_ij) (symmetry of the centred Gaussian)
    joint = bivariate_normal_cdf(z[:, None], z[None, :], rho)
    C = joint - m[:, None] * m[None, :]
    return m, C - torch.diag(torch.diagonal(C)) + torch.diag(m * (1 - m))


def propagate(m: torch.Tensor, C: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor | None]], *,
              p: float = 1.0, noise_var: float = 0.0, diagonal: bool = False,
              ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Moments of the binary activity after each (W, b) of ``layers`` (threshold units after each)."""
    for W, b in layers:
        mu, Sigma = linear_moments(m, C, W, b, p, diagonal=diagonal)
        m, C = threshold_moments(mu, Sigma, noise_var=noise_var, diagonal=diagonal)
    return m, C
