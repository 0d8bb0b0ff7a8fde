"""Composable stochastic layers for your own PyTorch model (``quantal.nn``).

Every module takes and returns tensors with time as the second axis, ``(batch, T, *features)``, so they stack in
an ``nn.Sequential`` or in your own ``forward`` the way snnTorch and Norse layers do, and
:func:`quantal.compile.from_torch` lowers a model built from them to the fixed-point IR (docs/guide.md).

* :class:`S2MLinear`: the Synaptic Sampling Machine's stochastic sign units (see its docstring).
* Synapses map spikes to synaptic input step by step: :class:`Linear` (``nn.Linear`` works as well),
  :class:`Conv2d`, :class:`BlankOutLinear` and :class:`BlankOutConv2d` (stochastic release: every synapse
  transmits with probability p, in ``sampled`` mode exactly per synapse, in ``moment`` mode by the Gaussian with
  the same mean and variance), :class:`SumPool2d`, :class:`AvgPool2d` and :class:`Flatten`.
* Neurons integrate that input with the IR's dynamics in float (train/neurons.py): :class:`LIF`, :class:`Binary`
  (memoryless, escape noise), :class:`RecurrentLIF` (a LIF layer fed by its own spikes through a recurrent
  weight) and :class:`Readout` (integrates, never spikes; returns v). A neuron integrates the synaptic input of
  step t - 1 at step t: the one-step synaptic delay of the IR, so the float model and the lowered network have
  the same timing.

Neuron parameters are in *threshold units*: ``alpha`` and ``beta`` are the current and voltage retention per step
(IR ``current_decay = 4096 (1 - alpha)``, ``voltage_decay = 4096 (1 - beta)``), ``threshold`` and ``bias`` are in
the units of the synaptic input. Each can be a scalar or per neuron, fixed or learnable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .neurons import LIFParams, LIFState, lif_step
from .synapses import S2MLinear as _S2MLinear

RESETS = ("zero", "subtract")
BLANK_OUT_MODES = ("sampled", "moment", "mean")


def _fold(x: torch.Tensor, fn) -> torch.Tensor:  # noqa: ANN001
    """Apply a per-step map ``fn`` to (batch, T, ...) by folding time into the batch."""
    b, t = x.shape[:2]
    y = fn(x.reshape(b * t, *x.shape[2:]))
    return y.reshape(b, t, *y.shape[1:])


def _shape(size: int | Sequence[int]) -> tuple[int, ...]:
    return (int(size),) if isinstance(size, int) else tuple(int(s) for s in size)


def _retention(name: str, value: float) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1] (retention per step), got {value}")
    return float(value)


# ------------------------------------------------------------------------------------------------ synapses


class Linear(nn.Linear):
    """``nn.Linear`` without bias by default (a neuron's bias belongs to the neuron), on (batch, T, in)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__(in_features, out_features, bias=bias)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (no bias by default) applied at every step of (batch, T, C, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 padding: int = 0, dilation: int = 1, groups: int = 1, bias: bool = False) -> None:  # fmt: skip
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                         groups=groups, bias=bias)  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _fold(x, super().forward) if x.dim() == 5 else super().forward(x)


class SumPool2d(nn.Module):
    """Sum over ``kernel_size`` x ``kernel_size`` windows (stride = kernel size) at every step. In the IR it is
    fused into the next projection exactly (quantal.compile.graph.sum_pool_conv2d)."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = int(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        return _fold(x, lambda z: F.avg_pool2d(z, k) * (k * k))


class AvgPool2d(SumPool2d):
    """Average over windows (stride = kernel size): the sum-pool divided by kernel_size²."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _fold(x, lambda z: F.avg_pool2d(z, self.kernel_size))


class Flatten(nn.Flatten):
    """Flatten the features of (batch, T, C, H, W) to (batch, T, C H W) (row-major, the IR's flat index)."""

    def __init__(self) -> None:
        super().__init__(start_dim=2)


class _BlankOut(nn.Module):
    """Shared parts of the blank-out synapses: release probability p per synapse (fixed or learnable through a
    logit), the mode, and the three forward rules over a linear map ``lin(x, w)``."""

    weight: nn.Parameter

    def _init_release(self, p: float, learn_p: bool, mode: str) -> None:
        if mode not in BLANK_OUT_MODES:
            raise ValueError(f"unknown mode {mode!r} (known: {', '.join(BLANK_OUT_MODES)})")
        if not 0 < p <= 1:
            raise ValueError(f"release probability p must be in (0, 1], got {p}")
        self.mode = mode
        if learn_p:  # per synapse, through a logit (p = 1 starts just below 1)
            q = min(float(p), 1 - 1e-4)
            self.p_logit = nn.Parameter(torch.full(tuple(self.weight.shape), math.log(q / (1 - q))))
        else:
            self.register_buffer("p_fixed", torch.tensor(float(p)))

    @property
    def p(self) -> torch.Tensor:
        """Release probability per synapse (a scalar when fixed)."""
        return torch.sigmoid(self.p_logit) if hasattr(self, "p_logit") else self.p_fixed

    def _forward(self, x: torch.Tensor, lin) -> torch.Tensor:  # noqa: ANN001
        p = torch.broadcast_to(self.p, self.weight.shape).to(self.weight.dtype)
        if self.mode == "mean":  # the expected input: what the mean-field network computes
            return lin(x, p * self.weight)
        if self.mode == "moment":  # the Gaussian with the sum's mean and variance (reparameterised)
            mean = lin(x, p * self.weight)
            var = lin(x * x, p * (1 - p) * self.weight**2)
            return mean + torch.sqrt(var.clamp_min(0) + 1e-12) * torch.randn_like(mean)
        return self._sampled(x, p)


class BlankOutLinear(_BlankOut):
    """Stochastic-release dense synapses on (batch, T, in): ``a_i = sum_j xi_ij w_ij x_j`` with
    ``xi_ij ~ Bernoulli(p_ij)`` drawn per synapse, sample and step (``sampled``); ``moment`` draws the Gaussian
    with the same mean and variance; ``mean`` uses the expectation. Gradients reach p through the
    straight-through estimator in sampled mode and through the moments otherwise (learnable release
    probabilities as in the RBSE model)."""

    def __init__(self, in_features: int, out_features: int, p: float = 0.5, *, learn_p: bool = False,
                 mode: str = "sampled") -> None:  # fmt: skip
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self._init_release(p, learn_p, mode)

    def _sampled(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        def step(z: torch.Tensor) -> torch.Tensor:
            xi = (torch.rand((z.shape[0], *self.weight.shape), dtype=z.dtype, device=z.device) < p.detach()).to(z.dtype)
            xi = xi + (p - p.detach())  # value: the draw; gradient: straight-through to p
            return torch.einsum("boi,oi,bi->bo", xi, self.weight, z)

        return _fold(x, step) if x.dim() == 3 else step(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x, lambda z, w: z @ w.T)


class BlankOutConv2d(_BlankOut):
    """Stochastic-release conv2d synapses on (batch, T, C, H, W): every link (output, input) of the
    convolution draws its own Bernoulli with its kernel element's p, as the IR does (``sampled``: exact, via
    unfold, memory batch·T·C_out·C_in/g·kh·kw·positions); ``moment`` and ``mean`` as for
    :class:`BlankOutLinear` (cheap: two convolutions)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 padding: int = 0, dilation: int = 1, groups: int = 1, p: float = 0.5, *, learn_p: bool = False,
                 mode: str = "moment") -> None:  # fmt: skip
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                              dilation=dilation, groups=groups, bias=False)  # fmt: skip
        self.weight = self.conv.weight
        self._init_release(p, learn_p, mode)

    def _lin(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        c = self.conv
        return _fold(x, lambda z: F.conv2d(z, w, stride=c.stride, padding=c.padding, dilation=c.dilation,
                                           groups=c.groups))  # fmt: skip

    def _sampled(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        c = self.conv
        c_out, cin_g, kh, kw = self.weight.shape
        g = c.groups

        def step(z: torch.Tensor) -> torch.Tensor:
            n, _, h, w_ = z.shape
            ho = (h + 2 * c.padding[0] - c.dilation[0] * (kh - 1) - 1) // c.stride[0] + 1
            wo = (w_ + 2 * c.padding[1] - c.dilation[1] * (kw - 1) - 1) // c.stride[1] + 1
            cols = F.unfold(z, (kh, kw), dilation=c.dilation, padding=c.padding, stride=c.stride)
            cols = cols.reshape(n, g, cin_g * kh * kw, ho * wo)  # (n, groups, K, L)
            wg = self.weight.reshape(g, c_out // g, cin_g * kh * kw)
            pg = p.reshape(g, c_out // g, cin_g * kh * kw)
            xi = (torch.rand((n, g, c_out // g, cin_g * kh * kw, ho * wo), dtype=z.dtype, device=z.device)
                  < pg.detach()[None, :, :, :, None]).to(z.dtype)  # fmt: skip
            xi = xi + (pg - pg.detach())[None, :, :, :, None]
            out = torch.einsum("ngokl,gok,ngkl->ngol", xi, wg, cols)
            return out.reshape(n, c_out, ho, wo)

        return _fold(x, step)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x, self._lin)


class S2MLinear(_S2MLinear):
    """The Synaptic Sampling Machine layer (train/synapses.py: sign units z in {-1, +1} with the weight-normalised
    erf activation of blank-out synapses of probability p) at every step of (batch, T, in). It is a layer of
    sign units, not a synapse: its networks lower through ``quantal train`` (on/off channel pairs,
    docs/compile.md §3), not through ``from_torch``."""

    def forward(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        step = super().forward
        return _fold(z, lambda x: step(x, generator)) if z.dim() == 3 else step(z, generator)


# ------------------------------------------------------------------------------------------------- neurons


class _Neurons(nn.Module):
    """Shared parameters of the neuron layers (see the module docstring)."""

    def __init__(self, shape: int | Sequence[int], *, alpha: float = 0.0, beta: float = 1.0, threshold: float = 1.0,
                 reset: str = "zero", escape: str | None = None, escape_beta: float = 5.0,
                 surrogate: str = "superspike", learn_threshold: bool = False, learn_decay: bool = False,
                 bias: bool = True, detach_reset: bool = True, readout: bool = False) -> None:  # fmt: skip
        super().__init__()
        if reset not in RESETS:
            raise ValueError(f"unknown reset {reset!r} (known: {', '.join(RESETS)})")
        self.shape = _shape(shape)
        n = math.prod(self.shape)
        alpha, beta = _retention("alpha", alpha), _retention("beta", beta)
        self.reset, self.escape, self.escape_beta, self.surrogate = reset, escape, float(escape_beta), surrogate
        self.detach_reset, self.readout = detach_reset, readout

        def param(value: float, learn: bool) -> nn.Parameter:
            return nn.Parameter(torch.full((n,), float(value)), requires_grad=learn)

        # retentions in logit space when learnable, so they stay in [0, 1]
        self.learn_decay = learn_decay
        if learn_decay:
            clip = lambda r: min(max(r, 1e-4), 1 - 1e-4)  # noqa: E731
            self.alpha_logit = param(math.log(clip(alpha) / (1 - clip(alpha))), True)
            self.beta_logit = param(math.log(clip(beta) / (1 - clip(beta))), True)
        else:
            self.register_buffer("alpha_fixed", torch.full((n,), alpha))
            self.register_buffer("beta_fixed", torch.full((n,), beta))
        self.threshold = param(threshold, learn_threshold)
        self.bias = param(0.0, True) if bias else None
        self.stats: dict[str, float] | None = None  # set to {"u": 0, "v": 0} to collect calibration statistics

    @property
    def alpha(self) -> torch.Tensor:
        return torch.sigmoid(self.alpha_logit) if self.learn_decay else self.alpha_fixed

    @property
    def beta(self) -> torch.Tensor:
        return torch.sigmoid(self.beta_logit) if self.learn_decay else self.beta_fixed

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def params(self) -> LIFParams:
        return LIFParams(alpha=self.alpha, beta=self.beta, threshold=self.threshold,
                         bias=0.0 if self.bias is None else self.bias, escape=self.escape, escape_beta=self.escape_beta,
                         surrogate=self.surrogate, detach_reset=self.detach_reset, readout=self.readout,
                         reset=self.reset)  # fmt: skip

    def run(self, a: torch.Tensor, recurrent: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Integrate synaptic input ``a`` (batch, T, *shape): step t integrates a[:, t - 1] (plus the
        recurrent input of the spikes of step t - 1). Returns (spikes, v), each (batch, T, *shape)."""
        b, steps = a.shape[:2]
        if tuple(a.shape[2:]) != self.shape:
            raise ValueError(f"{type(self).__name__}{list(self.shape)} got input of shape {tuple(a.shape)}")
        flat = a.reshape(b, steps, -1)
        p = self.params()
        z = torch.zeros(b, self.size, dtype=a.dtype, device=a.device)
        state, s_prev = LIFState(z, z), z
        spikes, volts = [], []
        collect = self.stats is not None
        for t in range(steps):
            x = flat[:, t - 1] if t >= 1 else z  # the one-step synaptic delay
            if recurrent is not None and t >= 1:
                x = x + recurrent(s_prev)
            v_before = state.v
            s_prev, state = lif_step(x, state, p)
            if collect:  # calibration statistics: the largest |u| and |v| before the reset
                with torch.no_grad():
                    v_pre = p.beta * v_before + state.u + p.bias
                    self.stats["u"] = max(self.stats["u"], float(state.u.abs().max()))
                    self.stats["v"] = max(self.stats["v"], float(v_pre.abs().max()))
            spikes.append(s_prev)
            volts.append(state.v)
        return torch.stack(spikes, 1).reshape(a.shape), torch.stack(volts, 1).reshape(a.shape)


class LIF(_Neurons):
    """Current-based LIF neurons: ``u = alpha u + a``, ``v = beta v + u + bias``, spike if v > threshold
    (deterministic with a surrogate gradient, or escape noise ``escape='sigmoid'`` with steepness
    ``escape_beta``), then reset (``zero`` or ``subtract``). Returns spikes (batch, T, *shape)."""

    def __init__(self, shape: int | Sequence[int], *, alpha: float = 0.0, beta: float = 0.9, **kw: object) -> None:
        super().__init__(shape, alpha=alpha, beta=beta, **kw)  # type: ignore[arg-type]

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.run(a)[0]


class Binary(_Neurons):
    """Memoryless binary units (alpha = beta = 0): spike with probability sigmoid(escape_beta (a + bias -
    threshold)) by default (escape noise), or deterministically with ``escape=None``."""

    def __init__(self, shape: int | Sequence[int], *, escape: str | None = "sigmoid", **kw: object) -> None:
        super().__init__(shape, alpha=0.0, beta=0.0, escape=escape, **kw)  # type: ignore[arg-type]

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.run(a)[0]


class RecurrentLIF(LIF):
    """A LIF layer fed by its own spikes of the previous step through ``recurrent`` (a :class:`Linear` or
    :class:`BlankOutLinear` of size x size, created here): step t integrates ``a[t - 1] + W_rec s[t - 1]``."""

    def __init__(self, size: int, *, p: float | None = None, **kw: object) -> None:
        super().__init__(size, **kw)  # type: ignore[arg-type]
        self.recurrent = Linear(size, size) if p is None else BlankOutLinear(size, size, p=p)
        with torch.no_grad():
            self.recurrent.weight.mul_(0.5)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.run(a, self.recurrent)[0]


class Readout(_Neurons):
    """Leaky integrators that never spike (``alpha = 0``, ``beta = 1`` by default): returns v (batch, T, size);
    the last step's v is the output (``logits(v)``)."""

    def __init__(self, size: int, *, alpha: float = 0.0, beta: float = 1.0, **kw: object) -> None:
        super().__init__(size, alpha=alpha, beta=beta, readout=True, **kw)  # type: ignore[arg-type]

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.run(a)[1]


def logits(v: torch.Tensor) -> torch.Tensor:
    """A readout's output: its v at the last step, (batch, size)."""
    return v[:, -1]


NEURONS = (LIF, Binary, RecurrentLIF, Readout)
