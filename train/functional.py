"""Spike non-linearities for training: escape functions, surrogate derivatives and the spike function.

Sources (../shared/seeds/): gygax-zenke (escape noise, surrogate gradients as smoothed stochastic
derivatives, the 1/beta scaling), bengio-2013 (straight-through and stochastic binary units). Equations,
with x = v - threshold and steepness beta > 0:

escape functions, P(spike | x):
    sigmoid      f(x) = 1 / (1 + exp(-beta x))
    erf          f(x) = (1 + erf(beta x)) / 2
    exponential  f(x) = 1 - exp(-exp(beta x))      (escape rate exp(beta x) over one time step)

surrogate derivatives, used in place of dH/dx for the Heaviside spike H(x) = [x > 0]:
    superspike   1 / (beta |x| + 1)^2                (derivative of the fast sigmoid x / (1 + beta |x|))
    sigmoid      beta sigma(beta x) (1 - sigma(beta x))
    escape       f'(x) of the layer's own escape function
    straight     1                                   (straight-through estimator)
each optionally scaled by 1/beta (``scale_by_beta``), which keeps the surrogate's peak near 1 across
steepnesses (gygax-zenke).

The forward pass is deterministic (H(x)) or stochastic (spike iff U < f(x) for uniforms U that the caller
passes, so that the random numbers can come from quantal's counter-based streams).
"""

from __future__ import annotations

import math

import torch

ESCAPE_FUNCTIONS = ("sigmoid", "erf", "exponential")
SURROGATES = ("superspike", "sigmoid", "escape", "straight")


def escape_probability(x: torch.Tensor, kind: str = "sigmoid", beta: float = 1.0) -> torch.Tensor:
    """P(spike | x) for the escape function ``kind`` with steepness ``beta``."""
    _check_beta(beta)
    bx = beta * x
    if kind == "sigmoid":
        return torch.sigmoid(bx)
    if kind == "erf":
        return 0.5 * (1.0 + torch.special.erf(bx))
    if kind == "exponential":
        return -torch.expm1(-torch.exp(bx))  # 1 - exp(-exp(beta x)), accurate for small rates
    raise ValueError(f"unknown escape function {kind!r} (known: {', '.join(ESCAPE_FUNCTIONS)})")


def escape_derivative(x: torch.Tensor, kind: str = "sigmoid", beta: float = 1.0) -> torch.Tensor:
    """d/dx of :func:`escape_probability`, in closed form."""
    _check_beta(beta)
    bx = beta * x
    if kind == "sigmoid":
        s = torch.sigmoid(bx)
        return beta * s * (1.0 - s)
    if kind == "erf":
        return beta * (2.0 / math.sqrt(math.pi)) * torch.exp(-bx * bx) * 0.5
    if kind == "exponential":
        return beta * torch.exp(bx - torch.exp(bx))  # beta e^{bx} exp(-e^{bx})
    raise ValueError(f"unknown escape function {kind!r} (known: {', '.join(ESCAPE_FUNCTIONS)})")


def surrogate(x: torch.Tensor, kind: str = "superspike", beta: float = 1.0, *, escape: str = "sigmoid",
              scale_by_beta: bool = False) -> torch.Tensor:  # fmt: skip
    """The surrogate derivative ``kind`` at x (see the module docstring)."""
    _check_beta(beta)
    if kind == "superspike":
        g = 1.0 / (beta * x.abs() + 1.0) ** 2
    elif kind == "sigmoid":
        s = torch.sigmoid(beta * x)
        g = beta * s * (1.0 - s)
    elif kind == "escape":
        g = escape_derivative(x, escape, beta)
    elif kind == "straight":
        g = torch.ones_like(x)
    else:
        raise ValueError(f"unknown surrogate {kind!r} (known: {', '.join(SURROGATES)})")
    return g / beta if scale_by_beta else g


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, uniforms, prob, grad_fn):  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.grad_fn = grad_fn
        if uniforms is None:
            return (x > 0).to(x.dtype)  # Heaviside, strict as in the fixed-point semantics
        return (uniforms < prob(x)).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_out * ctx.grad_fn(x), None, None, None


def spike(x: torch.Tensor, *, surrogate_kind: str = "superspike", beta: float = 1.0, escape: str | None = None,
          uniforms: torch.Tensor | None = None, scale_by_beta: bool = False) -> torch.Tensor:  # fmt: skip
    """Spikes of membrane distance ``x = v - threshold`` with a surrogate gradient.

    Deterministic (``escape=None``): s = [x > 0]. Stochastic: s = [U < f(x)] with the escape function
    ``escape`` and the uniforms U (same shape as x; drawn with ``torch.rand_like`` when None).
    The backward pass multiplies by ``surrogate(x, surrogate_kind, beta, escape=escape or 'sigmoid')``.
    """
    esc = escape or "sigmoid"
    if escape is not None and escape not in ESCAPE_FUNCTIONS:
        raise ValueError(f"unknown escape function {escape!r} (known: {', '.join(ESCAPE_FUNCTIONS)})")
    if surrogate_kind not in SURROGATES:
        raise ValueError(f"unknown surrogate {surrogate_kind!r} (known: {', '.join(SURROGATES)})")
    _check_beta(beta)
    if escape is not None and uniforms is None:
        uniforms = torch.rand_like(x)

    def grad_fn(z: torch.Tensor) -> torch.Tensor:
        return surrogate(z, surrogate_kind, beta, escape=esc, scale_by_beta=scale_by_beta)

    def prob(z: torch.Tensor) -> torch.Tensor:
        return escape_probability(z, esc, beta)

    return _Spike.apply(x, uniforms if escape is not None else None, prob, grad_fn)


def _check_beta(beta: float) -> None:
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
        raise ValueError(f"steepness beta must be a positive finite number, got {beta!r}")
