"""Stochastic and deterministic neurons in float: pure step functions with thin ``nn.Module`` wrappers.

The dynamics are those of the IR (docs/ir.md) in float, in *threshold units* (the fixed-point u and v divided
by 64), so that a trained layer lowers to the IR directly:

    u[t] = alpha u[t-1] + a[t]                   alpha = 1 - current_decay / 4096
    v[t] = beta  v[t-1] + u[t] + b               beta  = 1 - voltage_decay / 4096,  b = (bias_mant << bias_exp) / 64
    s[t] = spike(v[t] - theta)                   deterministic [x > 0], or escape noise P = f(x)
    v[t] = v[t] (1 - s[t])                       reset to 0 (or v[t] - theta s[t], reset subtract); u is not reset

Escape noise with steepness ``escape_beta`` corresponds to the IR's logistic scale S = 64 / escape_beta.
``detach_reset`` stops the gradient through the reset term (gygax-zenke discuss both choices).
A layer's input at step t is its source's spikes at step t-1 (:class:`SpikingLayer`), as in the IR.
Binary units are the memoryless case alpha = beta = 0: s = spike(a + b - theta).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .functional import spike


class LIFState(NamedTuple):
    u: torch.Tensor
    v: torch.Tensor


class LIFParams(NamedTuple):
    alpha: float | torch.Tensor = 0.0  # current retention, 1 - current_decay / 4096
    beta: float | torch.Tensor = 1.0  # voltage retention, 1 - voltage_decay / 4096
    threshold: float | torch.Tensor = 1.0
    bias: float | torch.Tensor = 0.0
    escape: str | None = None  # None (deterministic) or an escape function of train.functional
    escape_beta: float = 1.0  # steepness of the escape function and of the surrogate
    surrogate: str = "superspike"
    scale_by_beta: bool = False
    detach_reset: bool = True
    readout: bool = False  # integrate, never spike
    reset: str = "zero"  # zero: v = 0 after a spike; subtract: v -= threshold


def lif_step(a: torch.Tensor, state: LIFState, p: LIFParams,
             uniforms: torch.Tensor | None = None) -> tuple[torch.Tensor, LIFState]:  # fmt: skip
    """One step: ``(input a, (u, v), params) -> (spikes, (u, v))``."""
    u = p.alpha * state.u + a
    v = p.beta * state.v + u + p.bias
    if p.readout:
        return torch.zeros_like(v), LIFState(u, v)
    s = spike(v - p.threshold, surrogate_kind=p.surrogate, beta=p.escape_beta, escape=p.escape,
              uniforms=uniforms, scale_by_beta=p.scale_by_beta)  # fmt: skip
    r = s.detach() if p.detach_reset else s
    if p.reset == "subtract":
        return s, LIFState(u, v - r * p.threshold)
    return s, LIFState(u, v * (1.0 - r))


def binary_step(a: torch.Tensor, p: LIFParams, uniforms: torch.Tensor | None = None) -> torch.Tensor:
    """A memoryless binary unit: ``spike(a + b - theta)`` (alpha = beta = 0)."""
    s, _ = lif_step(a, LIFState(torch.zeros_like(a), torch.zeros_like(a)), p._replace(alpha=0.0, beta=0.0),
                    uniforms)  # fmt: skip
    return s


class SpikingLayer(nn.Module):
    """A synapse module (``nn.Linear`` without bias, ``BlankOutLinear`` in sampled mode, ...) followed by
    LIF neurons, run over time with the IR's one-step delay.

    ``forward(x)`` takes source spikes (batch, T, n_in) and returns (spikes, v), each (batch, T, size); for a
    readout the spikes are zeros and v carries the output.
    """

    def __init__(self, synapse: nn.Module, size: int, params: LIFParams, *, learn_threshold: bool = False) -> None:
        super().__init__()
        self.synapse = synapse
        self.size = size
        self.params = params
        self.threshold = nn.Parameter(torch.tensor(float(params.threshold)), requires_grad=learn_threshold)
        self.bias = nn.Parameter(torch.zeros(size) + float(params.bias))

    def forward(self, x: torch.Tensor, uniforms: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        batch, steps, _ = x.shape
        p = self.params._replace(threshold=self.threshold, bias=self.bias)
        z = torch.zeros(batch, self.size, dtype=x.dtype, device=x.device)
        state = LIFState(z, z)
        spikes, volts = [], []
        zero_in = torch.zeros_like(x[:, 0])
        for t in range(steps):
            src = x[:, t - 1] if t >= 1 else zero_in  # the spikes of step t-1 (none at t = 0)
            a = self.synapse(src)
            s, state = lif_step(a, state, p, None if uniforms is None else uniforms[:, t])
            spikes.append(s)
            volts.append(state.v)
        return torch.stack(spikes, 1), torch.stack(volts, 1)
