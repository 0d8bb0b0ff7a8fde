"""The minimal network of gygax-zenke section 4 and its two demonstrations.

The network (the paper's Fig. 4A and parameter table: input x = 1, hidden weight w, v = (0.05, 0.1),
u = (1, -1), one forward steepness beta = 100 and the surrogate steepness beta_sg, 25 in the table):

    g   = sigma_beta(w x)
    h_k = sigma_beta(v_k g),  k = 1, 2
    y   = sigma_beta(u_1 h_1 + u_2 h_2)              sigma_beta(z) = 1 / (1 + exp(-beta z))

A surrogate derivative (SD) keeps the forward pass and replaces every sigma_beta' on the backward pass by the
derivative of sigma_{beta_sg}. dy/dw has the factor u_1 sigma'(beta v_1 g) v_1 + u_2 sigma'(beta v_2 g) v_2
(two terms of opposite sign), whose sign the SD need not preserve (section 4.1); and the SD field is not
conservative, so its integral around a closed path in parameter space is not zero, unlike that of the true
gradient (4.2; the paper integrates around a circle of radius 1.8 in a random plane of the five parameters,
with a nearly binary forward pass, beta = 10**4).
"""

from __future__ import annotations

import math

import torch

PARAMS = {"x": 1.0, "w": 0.0, "v1": 0.05, "v2": 0.1, "u1": 1.0, "u2": -1.0, "beta": 100.0, "beta_sg": 25.0}
NAMES = ("w", "v1", "v2", "u1", "u2")  # the five parameters of the closed-loop integral, in this order


class _SigmoidSD(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, beta, beta_sg):  # type: ignore[override]
        ctx.save_for_backward(z)
        ctx.beta_sg = beta_sg
        return torch.sigmoid(beta * z)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (z,) = ctx.saved_tensors
        s = torch.sigmoid(ctx.beta_sg * z)
        return g * ctx.beta_sg * s * (1 - s), None, None


def output(theta: tuple[torch.Tensor, ...], *, surrogate: bool, p: dict | None = None) -> torch.Tensor:
    """y at the parameters ``theta`` = (w, v1, v2, u1, u2) (tensors of one shape), with true sigmoids or with
    surrogate derivatives of steepness ``p["beta_sg"]`` on the backward pass."""
    p = {**PARAMS, **(p or {})}
    beta = p["beta"]

    def act(z: torch.Tensor) -> torch.Tensor:
        return _SigmoidSD.apply(z, beta, p["beta_sg"]) if surrogate else torch.sigmoid(beta * z)

    w, v1, v2, u1, u2 = theta
    g = act(w * p["x"])
    return act(u1 * act(v1 * g) + u2 * act(v2 * g))


def derivative_dw(w: torch.Tensor, *, surrogate: bool, p: dict | None = None) -> torch.Tensor:
    """dy/dw (true, or the SD) at each w, with v and u from the parameters."""
    q = {**PARAMS, **(p or {})}
    w = w.detach().clone().requires_grad_(True)
    rest = tuple(torch.full_like(w, q[k]) for k in NAMES[1:])
    (g,) = torch.autograd.grad(output((w, *rest), surrogate=surrogate, p=p).sum(), w)
    return g


def sign_concordance(w: torch.Tensor, beta_sg: float, p: dict | None = None) -> dict:
    """Where the SD with steepness ``beta_sg`` has the opposite sign of the true dy/dw along ``w``."""
    true = derivative_dw(w, surrogate=False, p=p)
    sd = derivative_dw(w, surrogate=True, p={**(p or {}), "beta_sg": beta_sg})
    significant = true.abs() > 1e-12 * true.abs().max()  # ignore points where the true derivative vanishes
    opposite = (torch.sign(true) != torch.sign(sd)) & significant
    return {"beta_sg": beta_sg, "fraction_opposite": float(opposite.sum() / significant.sum()),
            "true": true, "surrogate": sd, "opposite": opposite}  # fmt: skip


def loop_plane(seed: int = 124) -> tuple[torch.Tensor, torch.Tensor]:
    """Two orthonormal directions in the five-parameter space: the first two rows of a random orthogonal matrix
    (``scipy.stats.ortho_group.rvs(5, random_state=seed)``)."""
    from scipy.stats import ortho_group

    q = torch.tensor(ortho_group.rvs(5, random_state=seed), dtype=torch.float64)
    return q[0], q[1]


def closed_loop_integral(*, surrogate: bool, beta_sg: float = PARAMS["beta_sg"], radius: float = 1.8,
                         n: int = 2_000_000, beta: float = 1e4, seed: int = 124,
                         center: tuple[float, ...] = (0.0,) * 5) -> float:  # fmt: skip
    """The integral of the (surrogate) gradient of y around the circle ``theta(phi) = center + radius (sin phi e1
    + cos phi e2)`` in the plane of :func:`loop_plane` (midpoint rule over ``n`` angles; the forward steepness
    ``beta`` makes y nearly binary, so the quadrature needs many points). Zero for a true gradient."""
    e1, e2 = loop_plane(seed)
    phi = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    c = torch.tensor(center, dtype=torch.float64)
    theta = (c + radius * (torch.sin(phi)[:, None] * e1 + torch.cos(phi)[:, None] * e2)).requires_grad_(True)
    y = output(tuple(theta[:, k] for k in range(5)), surrogate=surrogate, p={"beta": beta, "beta_sg": beta_sg})
    (g,) = torch.autograd.grad(y.sum(), theta)
    dtheta = radius * (torch.cos(phi)[:, None] * e1 - torch.sin(phi)[:, None] * e2)  # d theta / d phi
    return float((g * dtheta).sum() * (2 * math.pi / n))
