"""Gradient estimators for stochastic binary units beyond surrogates (bengio-2013).

**Unbiased estimator.** A binary unit h_i ~ Bernoulli(sigmoid(a_i)). For any loss L,

    g_i = (h_i - sigmoid(a_i)) (L - Lbar_i)

is an unbiased estimator of dE[L]/da_i for any baseline Lbar_i that does not depend on h_i (Theorem 1); the
minimum-variance baseline is Lbar_i = E[(h_i - sigma_i)^2 L] / E[(h_i - sigma_i)^2], kept here as moving
averages of numerator and denominator (updated *after* the estimate, so that the estimate's baseline does not
depend on the current h). No backward pass is needed: the loss is broadcast to every unit.
Use :meth:`UnbiasedEstimator.surrogate_loss`, whose autograd gradient with respect to ``a`` is g.

**Noisy rectifier.** h = max(0, a + noise) is differentiable almost everywhere, so back-propagation through
it is exact for fixed noise; :class:`NoisyRectifier` adds bias homeostasis that drives each unit's firing
rate P(h > 0) toward a target: b <- b + eta (target - rate).
"""

from __future__ import annotations

import torch
from torch import nn


def sample_binary(a: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """h ~ Bernoulli(sigmoid(a)); returns (h, sigmoid(a)) with h detached (no gradient through the draw)."""
    p = torch.sigmoid(a)
    u = torch.rand(p.shape, generator=generator, dtype=p.dtype, device=p.device)
    return (u < p.detach()).to(p.dtype), p


class UnbiasedEstimator(nn.Module):
    """Per-unit minimum-variance baseline for the unbiased estimator (see the module docstring)."""

    def __init__(self, n_units: int, momentum: float = 0.99) -> None:
        super().__init__()
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.register_buffer("num", torch.zeros(n_units, dtype=torch.float64))
        self.register_buffer("den", torch.zeros(n_units, dtype=torch.float64))

    @property
    def baseline(self) -> torch.Tensor:
        """Lbar_i = E[(h - sigma)^2 L] / E[(h - sigma)^2] (0 before any update)."""
        return torch.where(self.den > 0, self.num / self.den.clamp_min(1e-30), torch.zeros_like(self.num))

    def estimate(self, h: torch.Tensor, p: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
        """g (batch, units) = (h - p)(L - Lbar) for per-sample losses ``loss`` (batch,)."""
        return (h - p.detach()) * (loss.detach()[:, None] - self.baseline.to(h.dtype))

    @torch.no_grad()
    def update(self, h: torch.Tensor, p: torch.Tensor, loss: torch.Tensor) -> None:
        d2 = ((h - p) ** 2).to(torch.float64)
        m = self.momentum
        self.num.mul_(m).add_((1 - m) * (d2 * loss.to(torch.float64)[:, None]).mean(0))
        self.den.mul_(m).add_((1 - m) * d2.mean(0))

    def surrogate_loss(self, a: torch.Tensor, h: torch.Tensor, p: torch.Tensor, loss: torch.Tensor,
                       update: bool = True) -> torch.Tensor:  # fmt: skip
        """A scalar whose gradient with respect to ``a`` is the batch mean of g; updates the baseline after."""
        g = self.estimate(h, p, loss)
        if update:
            self.update(h, p, loss)
        return (g.detach() * a).sum() / a.shape[0]


class NoisyRectifier(nn.Module):
    """h = relu(a + b + sigma * eps), eps ~ N(0, 1), with bias homeostasis toward ``target_rate``."""

    def __init__(self, n_units: int, sigma: float = 1.0, target_rate: float = 0.1, eta: float = 0.05) -> None:
        super().__init__()
        if not 0 < target_rate < 1:
            raise ValueError(f"target_rate must be in (0, 1), got {target_rate}")
        self.sigma, self.target_rate, self.eta = sigma, target_rate, eta
        self.bias = nn.Parameter(torch.zeros(n_units), requires_grad=False)

    def forward(self, a: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        eps = torch.randn(a.shape, generator=generator, dtype=a.dtype, device=a.device)
        h = torch.relu(a + self.bias + self.sigma * eps)
        if self.training:
            with torch.no_grad():  # homeostasis: raise the bias of units firing below target, lower it above
                self.bias.add_(self.eta * (self.target_rate - (h > 0).to(a.dtype).mean(0)))
        return h
