"""The minimal network of gygax-zenke section 4 and its two demonstrations.

The text of the seed keeps the network's parameter table (0, 0.05, 0.1, 1, -1, 1, 100, 25) but not Eq. 7
itself; this is our reconstruction, consistent with that table and with the discussion of Eq. 9 ("a
summation of two nonlinear functions with different hyperparameters and different weights"):

    h_k = sigma(beta_k (w x - theta_k)),  k = 1, 2           theta_1 = 0.05, theta_2 = 0.1, x = 1
    y   = sigma(beta_1 (v_1 h_1 + v_2 h_2 - theta_out))      v_1 = 1, v_2 = -1, theta_out = 0
                                                             beta_1 = 100, beta_2 = 25

A surrogate derivative (SD) keeps the forward pass and replaces every sigma' on the backward pass by the
derivative of one less steep sigmoid of steepness beta_sg (swept). dy/dw has the factor
v_1 beta_1 sigma'(.) + v_2 beta_2 sigma'(.) (two terms), whose sign the SD need not preserve (section 4.1);
and the SD field is not conservative, so its integral around a closed path in parameter space is not zero,
unlike that of the true gradient (4.2).
"""

from __future__ import annotations

import math

import torch

PARAMS = {"theta_out": 0.0, "theta1": 0.05, "theta2": 0.1, "v1": 1.0, "v2": -1.0, "x": 1.0, "beta1": 100.0,
          "beta2": 25.0, "beta_sg": 10.0}  # fmt: skip


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


def output(w: torch.Tensor, v1: torch.Tensor, *, surrogate: bool, p: dict | None = None) -> torch.Tensor:
    """y(w, v1) with true sigmoids, or with surrogate derivatives on the backward pass."""
    p = {**PARAMS, **(p or {})}

    def act(z: torch.Tensor, beta: float) -> torch.Tensor:
        if surrogate:
            return _SigmoidSD.apply(z, beta, p["beta_sg"])
        return torch.sigmoid(beta * z)

    h1 = act(w * p["x"] - p["theta1"], p["beta1"])
    h2 = act(w * p["x"] - p["theta2"], p["beta2"])
    return act(v1 * h1 + p["v2"] * h2 - p["theta_out"], p["beta1"])


def derivative_dw(w: torch.Tensor, *, surrogate: bool, p: dict | None = None) -> torch.Tensor:
    """dy/dw (true, or the SD) at each w, with v1 from the parameters."""
    w = w.detach().clone().requires_grad_(True)
    v1 = torch.tensor((p or {}).get("v1", PARAMS["v1"]), dtype=w.dtype)
    (g,) = torch.autograd.grad(output(w, v1, surrogate=surrogate, p=p).sum(), w)
    return g


def sign_concordance(w: torch.Tensor, beta_sg: float) -> dict:
    """Where the SD with steepness ``beta_sg`` has the opposite sign of the true dy/dw along ``w``."""
    true = derivative_dw(w, surrogate=False)
    sd = derivative_dw(w, surrogate=True, p={"beta_sg": beta_sg})
    significant = true.abs() > 1e-9  # ignore points where the true derivative vanishes numerically
    opposite = (torch.sign(true) != torch.sign(sd)) & significant
    return {"beta_sg": beta_sg, "fraction_opposite": float(opposite.sum() / significant.sum()),
            "true": true, "surrogate": sd, "opposite": opposite}  # fmt: skip


def closed_loop_integral(*, surrogate: bool, center: tuple[float, float] = (0.075, 1.0), radius: float = 0.05,
                         n: int = 4000, beta_sg: float = PARAMS["beta_sg"]) -> float:  # fmt: skip
    """The integral of the (surrogate) gradient of y with respect to (w, v1) around a circle of ``radius`` about
    ``center`` (midpoint rule over ``n`` angles). Zero for a true gradient (a conservative field)."""
    phi = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    w = (center[0] + radius * torch.cos(phi)).requires_grad_(True)
    v1 = (center[1] + radius * torch.sin(phi)).requires_grad_(True)
    y = output(w, v1, surrogate=surrogate, p={"beta_sg": beta_sg})
    gw, gv = torch.autograd.grad(y.sum(), (w, v1))
    # dtheta/dphi = radius * (-sin phi, cos phi)
    return float(((gw * -torch.sin(phi) + gv * torch.cos(phi)) * radius).sum() * (2 * math.pi / n))
