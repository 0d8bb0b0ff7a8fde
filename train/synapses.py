"""Stochastic synapses: the blank-out linear layer and the Synaptic Sampling Machine (S2M) sign layer.

Sources (../shared/seeds/): neftci-stochastic-synapses-s2m (Eqs. 1-3: blank-out synapses, the Gaussian
approximation, the erf activation and its weight normalisation) and alshedivat-rbse (release probabilities).

Blank-out linear layer, for inputs z (batch, n_in):

    u_i = sum_j (xi_ij + a_i) w_ij z_j,        xi_ij ~ Bernoulli(p_ij), independent per sample

* sampled mode draws xi exactly, one mask per synapse and sample (the forward pass the hardware runs); the
  gradient reaches p through the straight-through estimator xi = xi + (p - p.detach());
* moment mode returns the Gaussian approximation's mean and variance,
      mu_i = sum_j (p_ij + a_i) w_ij z_j,      sigma_i^2 = sum_j p_ij (1 - p_ij) w_ij^2 z_j^2.

S2M sign units z_i in {-1, +1} with blank-out probability p (scalar) and weight normalisation:

    P(z_i = 1 | z) = (1 + erf(v_i . z)) / 2,   v_i = beta_i w_i / ||w_i||,   beta_i = (a_i + p) / sqrt(2 p (1 - p))

which is the Gaussian approximation of sign(u_i) above (since z_j^2 = 1). Training goes through the erf; the
forward pass samples z, with the straight-through estimator z = z + (m - m.detach()), m = E[z] = erf(v . z).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .moments import linear_moments

MODES = ("sampled", "moment")


def blank_out_linear(z: torch.Tensor, w: torch.Tensor, p: torch.Tensor, a: torch.Tensor | None = None, *,
                     mode: str = "sampled", generator: torch.Generator | None = None,
                     ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """u (batch, out) in sampled mode; (mean, variance) in moment mode. ``p`` broadcasts to w's shape,
    ``a`` (out,) is the optional reliable fraction."""
    p = torch.broadcast_to(p, w.shape)
    a_col = torch.zeros(w.shape[0], 1, dtype=w.dtype, device=w.device) if a is None else a.reshape(-1, 1)
    if mode == "moment":  # a known input z: no input covariance, E[z_j^2] = z_j^2
        return linear_moments(z, torch.zeros_like(z), w, p=p, a=a, binary_input=False, diagonal=True)
    if mode != "sampled":
        raise ValueError(f"unknown mode {mode!r} (known: {', '.join(MODES)})")
    u01 = torch.rand((z.shape[0],) + tuple(w.shape), generator=generator, dtype=w.dtype, device=w.device)
    xi = (u01 < p.detach()).to(w.dtype)
    xi = xi + (p - p.detach())  # value: the exact draw (p - p.detach() is exactly 0); gradient: to p
    return torch.einsum("boi,oi,bi->bo", xi + a_col, w, z)


class BlankOutLinear(nn.Module):
    """Linear layer with blank-out synapses (see the module docstring).

    ``p``: the release probability's initial value; ``learn_p`` makes it a per-synapse parameter kept in
    (0, 1) through a sigmoid. ``reliable``: learn a per-neuron a_i (initialised at 0).
    """

    def __init__(self, in_features: int, out_features: int, p: float = 0.5, *, learn_p: bool = False,
                 reliable: bool = False, mode: str = "sampled") -> None:  # fmt: skip
        super().__init__()
        if not 0 < p <= 1:
            raise ValueError(f"release probability p must be in (0, 1], got {p}")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} (known: {', '.join(MODES)})")
        self.mode = mode
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if learn_p:
            q = min(p, 1 - 1e-4)
            self.p_logit = nn.Parameter(torch.full((out_features, in_features), math.log(q / (1 - q))))
        else:
            self.register_buffer("p_fixed", torch.tensor(float(p)))
        self.a = nn.Parameter(torch.zeros(out_features)) if reliable else None

    @property
    def p(self) -> torch.Tensor:
        return torch.sigmoid(self.p_logit) if hasattr(self, "p_logit") else self.p_fixed

    def forward(self, z: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return blank_out_linear(z, self.weight, self.p, self.a, mode=self.mode)


def s2m_probability(z: torch.Tensor, w: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """P(z_i = 1 | z) = (1 + erf(v_i . z)) / 2 with v_i = beta_i w_i / ||w_i||."""
    v = beta.reshape(-1, 1) * w / w.norm(dim=1, keepdim=True)
    return 0.5 * (1.0 + torch.special.erf(z @ v.T))


def s2m_beta(p: float, a: float | torch.Tensor = 0.0) -> float | torch.Tensor:
    """beta = (a + p) / sqrt(2 p (1 - p)): the gain that blank-out noise of probability p gives (Eq. 3)."""
    if not 0 < p < 1:
        raise ValueError(f"S2M needs 0 < p < 1 (p = 1 has no noise), got {p}")
    return (a + p) / math.sqrt(2 * p * (1 - p))


class S2MLinear(nn.Module):
    """Synaptic Sampling Machine layer: sign units with weight-normalised erf activation (Eq. 3).

    ``beta`` is learned per neuron (initialised from p and a = 0); outputs are sampled in {-1, +1}.
    ``weight_norm=False`` keeps the same units and initial function but learns v_i directly
    (P(z_i = 1) = (1 + erf(v_i . z)) / 2, ``weight`` holds v): the parameterisation without weight normalisation,
    for comparing the two (the gain is then ||v_i||, see :attr:`gain`).
    """

    def __init__(self, in_features: int, out_features: int, p: float = 0.5, *, weight_norm: bool = True) -> None:
        super().__init__()
        self.p = p
        self.weight_norm = bool(weight_norm)
        w = torch.randn(out_features, in_features) / math.sqrt(in_features)
        beta0 = float(s2m_beta(p))
        if self.weight_norm:
            self.weight = nn.Parameter(w)
            self.beta = nn.Parameter(torch.full((out_features,), beta0))
        else:  # v = beta0 w / ||w||: the same initial probabilities as the normalised layer
            self.weight = nn.Parameter(beta0 * w / w.norm(dim=1, keepdim=True))

    @property
    def gain(self) -> torch.Tensor:
        """beta_i: the learned gain, or ||v_i|| without weight normalisation (then v_i = beta_i w_i / ||w_i||
        with w = v), so that both lower to the same blank-out synapses (compile/lower.py)."""
        return self.beta if self.weight_norm else self.weight.norm(dim=1)

    def probability(self, z: torch.Tensor) -> torch.Tensor:
        if not self.weight_norm:
            return 0.5 * (1.0 + torch.special.erf(z @ self.weight.T))
        return s2m_probability(z, self.weight, self.beta)

    def forward(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        prob = self.probability(z)
        u = torch.rand(prob.shape, generator=generator, dtype=prob.dtype, device=prob.device)
        sample = torch.where(u < prob.detach(), 1.0, -1.0).to(prob.dtype)
        mean = 2 * prob - 1  # E[z] = erf(v . z)
        return sample + (mean - mean.detach())  # value: exactly the sample; gradient: that of the mean
