"""Fake-quant networks: IR v2's integer arithmetic in PyTorch, bit for bit, with straight-through gradients.

A :class:`QuantNet` is an IR graph (neuron layers :class:`QuantLayer` and projections :class:`QuantProjection`:
dense or conv2d, any source, recurrence, delays) whose parameters are trainable floats. Its forward pass
computes exactly what ``quantal run`` and the reference executor compute (docs/ir.md §2-4): int8 weight
mantissas with a power-of-two exponent, the flooring shift of each projection's sum, 32-bit wraps, the 24-bit
current wrap and voltage saturation, decays that round toward zero, strict thresholds, zero or subtractive
reset, the one-step synaptic delay plus each projection's delay, and the random streams v1 for stochastic
synapses (stream 1, keyed by the projection) and escape noise (stream 2, keyed by the layer). Every value is an
integer held in float64, which is exact for magnitudes below 2**53 (the largest intermediate, ``v * 4096``,
stays below 2**36).

Gradients are straight-through: each integer operation ``y = q(x)`` is written ``ste(q(x), x)``, whose value
is ``q(x)`` exactly (``x - x.detach()`` is exactly zero) and whose gradient is that of ``x``. Rounding and
clipping of the weights pass the gradient inside the representable range and stop it outside (clipped STE);
spikes take a surrogate derivative: SuperSpike ``1 / (1 + beta |z|)**2`` for deterministic neurons and the
logistic escape function's own derivative for noisy ones, with ``z`` the distance to threshold in float units.

Units. Each layer has a ``scale`` c: its float parameters are in *float units* (the trained model's units) and
the IR integers of every projection into it are ``weight_mant * 2**weight_exp = round(c * w)`` (units of ``a``)
and ``v = 64 c x`` (units of v). A float threshold theta becomes ``round(c * theta)``, a float bias b becomes
``64 c b``. A deterministic conv2d projection runs as ``torch.nn.functional.conv2d`` on the exact integer
mantissas in float64 (every partial sum is an integer below 2**53, so any summation order gives the same
value); a stochastic one is event-driven over the links of its active inputs (:func:`conv2d_links`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from quantal.compile import streams
from quantal.compile.graph import conv2d_links
from quantal.compile.ir import INPUT, Conv2dSynapse, DenseSynapse, EscapeNoise, Layer, Network, Neuron, Projection

from . import torch_streams

V_MAX = 2**23 - 1  # v saturates at +-(2**23 - 1)
U_WRAP = 2**23  # u wraps once into (-2**23, 2**23]
DTYPE = torch.float64


def ste(exact: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """The value of ``exact`` with the gradient of ``surrogate`` (``surrogate - surrogate.detach()`` is 0)."""
    return exact.detach() + (surrogate - surrogate.detach())


def _wrap32(x: torch.Tensor) -> torch.Tensor:
    """Two's-complement wrap to 32 bits of float64 integers (|x| < 2**52), no gradient:
    ``x - 2**32 floor((x + 2**31) / 2**32)``; every operation is exact (powers of two), and cheaper than
    ``torch.remainder`` on float64."""
    return x - 2.0**32 * torch.floor((x + 2.0**31) * 2.0**-32)


def _step01(x: torch.Tensor) -> torch.Tensor:
    """``[x > 0]`` as 0.0/1.0 for float64 *integers* x: ``clamp(x, 0, 1)`` (x >= 1 or x <= 0). Float ops only:
    comparisons and ``torch.where`` on float64 cost several times more on the CPU."""
    return torch.clamp(x, 0.0, 1.0)


def wrap32(x: torch.Tensor) -> torch.Tensor:
    """Two's-complement wrap to 32 bits (exact on float64 integers), straight-through gradient."""
    return ste(_wrap32(x.detach()), x)


def rz(x: torch.Tensor) -> torch.Tensor:
    """``sign(x) * (|x| >> 12)``: x / 4096 rounded toward zero (x / 4096 is exact, trunc rounds toward zero)."""
    y = x / 4096
    return ste(torch.trunc(y.detach()), y)


def quantize(x: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """``clip(round(x), lo, hi)`` (round half to even); clipped straight-through gradient."""
    return ste(torch.clamp(torch.round(x.detach()), lo, hi), torch.clamp(x, lo, hi))


@dataclass(frozen=True)
class LayerSpec:
    """The integer structure of a :class:`QuantLayer` (neurons) besides its per-neuron buffers."""

    name: str
    shape: tuple[int, ...]
    kind: str = "lif"  # lif | readout
    scale: float = 1.0  # c: IR integer units per float unit (of this layer and of every projection into it)
    reset: str = "zero"  # zero | subtract
    escape_scale: float | None = None  # logistic escape noise S (v units), or None
    surrogate_beta: float = 5.0

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class ProjectionSpec:
    """The integer structure of a :class:`QuantProjection` (everything but the trainable floats)."""

    name: str
    source: str
    target: str
    src_shape: tuple[int, ...]
    dst_shape: tuple[int, ...]
    scale: float = 1.0  # the target layer's c
    kind: str = "dense"  # dense | conv2d
    weight_exp: int = 0
    delay: int = 0
    has_fixed: bool = False
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    def synapse(self, weight: np.ndarray, release: np.ndarray | None,
                fixed: np.ndarray | None) -> DenseSynapse | Conv2dSynapse:  # fmt: skip
        if self.kind == "dense":
            return DenseSynapse(weight=weight, weight_exp=self.weight_exp, release=release, weight_fixed=fixed)
        return Conv2dSynapse(weight=weight, stride=self.stride, padding=self.padding, dilation=self.dilation,
                             groups=self.groups, weight_exp=self.weight_exp, release=release, weight_fixed=fixed)


class QuantLayer(nn.Module):
    """A layer of fixed-point LIF or readout neurons.

    Trainable: ``bias`` (size,) in float units. Fixed buffers: ``current_decay``, ``voltage_decay``,
    ``threshold`` (IR integers per neuron), ``bias_exp`` (size,), ``theta`` (escape table).
    """

    def __init__(self, spec: LayerSpec, *, threshold: int | np.ndarray = 0, current_decay: int | np.ndarray = 4096,
                 voltage_decay: int | np.ndarray = 0, bias: torch.Tensor | None = None,
                 bias_exp: np.ndarray | torch.Tensor | None = None) -> None:  # fmt: skip
        super().__init__()
        self.spec = spec
        n = spec.size

        def per_neuron(x: int | np.ndarray | torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(np.broadcast_to(np.asarray(x, dtype=np.int64), (n,)).copy())

        self.register_buffer("current_decay", per_neuron(current_decay))
        self.register_buffer("voltage_decay", per_neuron(voltage_decay))
        self.register_buffer("threshold", per_neuron(threshold))
        self.bias = nn.Parameter(torch.zeros(n, dtype=DTYPE) if bias is None
                                 else torch.as_tensor(bias, dtype=DTYPE).clone())  # fmt: skip
        self.register_buffer("bias_exp", per_neuron(0 if bias_exp is None else np.asarray(bias_exp)))
        theta = None if spec.escape_scale is None else torch.from_numpy(streams.escape_thresholds(spec.escape_scale))
        self.register_buffer("theta", None if theta is None else theta.to(DTYPE), persistent=False)

    def _constants(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(4096 - current_decay) / 4096``, ``(4096 - voltage_decay) / 4096`` (exact in float64) and ``threshold
        << 6`` as float64 (cached: the integer buffers do not change during training)."""
        key = (self.current_decay.data_ptr(), self.voltage_decay.data_ptr(), self.threshold.data_ptr())
        if getattr(self, "_const_key", None) != key:
            self._const = ((4096 - self.current_decay).to(DTYPE) / 4096, (4096 - self.voltage_decay).to(DTYPE) / 4096,
                           self.threshold.to(DTYPE) * 64)  # fmt: skip
            # for the Numba step: 4096 - decay (as hwsim's kernels take them), the same over 4096, threshold << 6
            cdf, vdf, th = (np.ascontiguousarray(c.numpy()) for c in self._const)
            self._const_np = (4096 * cdf, 4096 * vdf, th, cdf, vdf)
            self._const_key = key
        return self._const

    def bias_mant(self) -> torch.Tensor:
        """``clip(round(64 c b / 2**bias_exp), -4096, 4095)``; the bias in v units is ``bias_mant << bias_exp``."""
        return quantize(self.bias * (64 * self.spec.scale) / 2.0 ** self.bias_exp.to(DTYPE), -4096, 4095)

    def bias_v(self) -> torch.Tensor:
        return self.bias_mant() * 2.0 ** self.bias_exp.to(DTYPE)  # << bias_exp: exact power-of-two product

    def step(self, a: torch.Tensor, u: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, uniforms: torch.Tensor | None,
             wide: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """``(a, (u, v)) -> (spikes, (u, v))``: one step of the fixed-point neuron (docs/ir.md §3).

        ``wide=False`` leaves out the 32-bit wraps, for a layer whose worst-case ``|a << 6|`` is at most 2**24:
        then ``|u| <= 2**23`` at every step and no 32-bit value can wrap (the same argument as hwsim's)."""
        if a.device.type == "cpu":  # one Numba kernel each way instead of ~25 tensor operations
            return _NeuronStep.apply(a, u, v, bias, None if self.theta is None else self.theta[uniforms], self, wide)
        return self.step_tensors(a, u, v, bias, uniforms, wide)

    def step_tensors(self, a: torch.Tensor, u: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
                     uniforms: torch.Tensor | None, wide: bool = True) -> tuple[torch.Tensor, ...]:
        """:meth:`step` in tensor operations (any torch device; the CPU runs the same on Numba kernels)."""
        sp = self.spec
        cdf, vdf, th = self._constants()  # (4096 - decay) / 4096 (exact: an integer over a power of two)
        # The exact integers, on detached values (every rounding, wrap and clip of docs/ir.md §3) ...
        with torch.no_grad():
            ae, ue, ve = a.detach(), u.detach(), v.detach()
            if wide:  # a << 6 and the current's sum in 32-bit arithmetic
                d = _wrap32(torch.trunc(ue * cdf) + _wrap32(ae * 64))  # trunc of an exact quotient by 4096: rz
            else:
                d = torch.trunc(ue * cdf) + ae * 64
            # one wrap into (-2**23, 2**23]: -2**24 where d > 2**23, +2**24 where d <= -2**23 (d integer)
            d = d - 2 * U_WRAP * _step01(d - U_WRAP) + 2 * U_WRAP * _step01(1 - U_WRAP - d)
            vn = torch.clamp(torch.trunc(ve * vdf) + d + bias.detach(), -V_MAX, V_MAX)  # 24-bit saturation
        # ... with the gradient of the same equations without rounding (straight through every integer op): one
        # ste per state variable gives exactly the gradient of an ste at every operation, in fewer tensor ops.
        u_lin = u * cdf + a * 64
        u = d + (u_lin - u_lin.detach())
        v_lin = v * vdf + u + bias
        v = vn + (v_lin - v_lin.detach())
        if sp.kind == "readout":
            return torch.zeros_like(v), u, v
        x = v - th  # distance to threshold << 6, in v units
        unit = 64 * sp.scale  # v units per float unit
        if self.theta is None:
            exact = _step01(x.detach())  # strict threshold: x > 0 (integers)
            z = x / unit
            s = ste(exact, z / (1 + sp.surrogate_beta * z.abs()))  # SuperSpike: d/dz = 1 / (1 + beta |z|)^2
        else:
            exact = _step01(x.detach() - self.theta[uniforms])  # escape noise: x > theta[U] (integers)
            s = ste(exact, torch.sigmoid(x / sp.escape_scale))  # the escape probability's own derivative
        if sp.reset == "subtract":
            v = v - s.detach() * th  # v -= threshold << 6 where s (no gradient through the reset)
        else:
            v = v * (1 - s.detach())  # v = 0 where s (u is not reset); no gradient through the reset
        return s, u, v


class _NeuronStep(torch.autograd.Function):
    """:meth:`QuantLayer.step` on Numba kernels (hwsim/kernels.py ``neuron_train_forward`` / ``_backward``): the
    same integers and the same straight-through gradients as the tensor version, in one pass each way."""

    @staticmethod
    def forward(ctx, a, u, v, bias, th_add, layer, wide):  # type: ignore[override]
        from quantal.hwsim import kernels

        sp = layer.spec
        layer._constants()
        dcf, dvf, th, cdf, vdf = layer._const_np
        an, un, vn = (np.ascontiguousarray(t.detach().numpy()) for t in (a, u, v))
        out = [np.empty_like(an) for _ in range(4)]  # s, u, v, ds/dx
        esc = th_add is not None
        b = np.ascontiguousarray(bias.detach().numpy())
        kernels.neuron_train_forward(an, un, vn, dcf, dvf, th, b,
                                     th_add.numpy() if esc else np.zeros((1, 1)), esc, bool(wide),
                                     sp.reset == "subtract", sp.kind != "readout",
                                     float(sp.escape_scale) if esc else 1.0, 64 * sp.scale, float(sp.surrogate_beta),
                                     *out)  # fmt: skip
        s_, u_, v_, sd = out
        ctx.args = (s_, sd, cdf, vdf, sp.reset == "subtract")
        return torch.from_numpy(s_), torch.from_numpy(u_), torch.from_numpy(v_)

    @staticmethod
    def backward(ctx, gs, gu, gv):  # type: ignore[override]
        import numba

        from quantal.hwsim import kernels

        s_, sd, cdf, vdf, subtract = ctx.args
        gs, gu, gv = (np.ascontiguousarray(g.numpy()) for g in (gs, gu, gv))
        ga, gu_prev, gv_prev = (np.empty_like(gs) for _ in range(3))
        parts = np.empty((max(1, min(numba.get_num_threads(), gs.shape[0])), gs.shape[1]))
        kernels.neuron_train_backward(gs, gu, gv, s_, sd, cdf, vdf, subtract, ga, gu_prev, gv_prev, parts)
        return (torch.from_numpy(ga), torch.from_numpy(gu_prev), torch.from_numpy(gv_prev),
                torch.from_numpy(parts.sum(0)), None, None, None)  # fmt: skip


class _ReleaseDense(torch.autograd.Function):
    """A stochastic dense projection's sum on Numba kernels (hwsim/kernels.py), the same draws as hwsim; the
    backward recomputes the draws (nothing per synapse is stored)."""

    @staticmethod
    def forward(ctx, src, m, release_t, seed, trial, samples, steps, index):  # type: ignore[override]
        from quantal.hwsim import kernels

        s = src.detach().contiguous().numpy()
        wT = np.ascontiguousarray(m.detach().numpy().T)
        out = np.empty((s.shape[0], wT.shape[1]), np.float64)
        keys = kernels.release_row_keys(samples, steps, np.uint64(seed), trial, index)
        kernels.release_dense_forward(s, keys, wT, release_t, out)
        ctx.save_for_backward(src)
        ctx.args = (wT, release_t, keys)
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        from quantal.hwsim import kernels

        (src,) = ctx.saved_tensors
        wT, release_t, keys = ctx.args
        s = src.detach().contiguous().numpy()
        gwT = np.empty_like(wT)
        need_src = bool(ctx.needs_input_grad[0])  # the network's input needs none
        gsrc = np.zeros_like(s) if need_src else np.zeros((1, 1), s.dtype)
        kernels.release_dense_backward(s, keys, wT, release_t, np.ascontiguousarray(grad.numpy()), gwT, gsrc, need_src)
        return (torch.from_numpy(gsrc) if need_src else None, torch.from_numpy(np.ascontiguousarray(gwT.T)), None, None,
                None, None, None, None)  # fmt: skip


class _ReleaseLinks(torch.autograd.Function):
    """A stochastic conv2d projection's sum over its links on Numba kernels (the same draws as hwsim); the
    backward recomputes the draws."""

    @staticmethod
    def forward(ctx, src, m, links, release, keys, size):  # type: ignore[override]
        from quantal.hwsim import kernels

        s = src.detach().contiguous().numpy()
        mf = np.ascontiguousarray(m.detach().numpy().reshape(-1))
        out = np.empty((s.shape[0], size), np.float64)
        kernels.release_links_forward(s, keys, *links, mf, release, out)
        ctx.save_for_backward(src)
        ctx.args = (mf, links, release, keys, m.shape)
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        import numba

        from quantal.hwsim import kernels

        (src,) = ctx.saved_tensors
        mf, links, release, keys, shape = ctx.args
        s = src.detach().contiguous().numpy()
        need_src = bool(ctx.needs_input_grad[0])
        gsrc = np.zeros_like(s) if need_src else np.zeros((1, 1), s.dtype)
        parts = np.empty((max(1, min(numba.get_num_threads(), s.shape[0])), mf.size), np.float64)
        kernels.release_links_backward(s, keys, *links, mf, release, np.ascontiguousarray(grad.numpy()), parts, gsrc,
                                       need_src)  # fmt: skip
        gm = torch.from_numpy(parts.sum(0).reshape(shape))
        return torch.from_numpy(gsrc) if need_src else None, gm, None, None, None, None


class QuantProjection(nn.Module):
    """One IR projection: dense or conv2d synapses, optionally stochastic, with an optional reliable part.

    Trainable: ``weight`` (and ``weight_fixed``) in float units of the target layer, shaped like the IR weight.
    Fixed buffer: ``release`` (uint8 codes as int64, or absent); for a stochastic conv2d projection the links
    (target, source, kernel element) sorted by source, with ``link_ptr`` indexing them per source neuron.
    """

    def __init__(self, spec: ProjectionSpec, weight: torch.Tensor, *, weight_fixed: torch.Tensor | None = None,
                 release: np.ndarray | torch.Tensor | None = None) -> None:  # fmt: skip
        super().__init__()
        self.spec = spec
        self.weight = nn.Parameter(torch.as_tensor(weight, dtype=DTYPE).clone())
        self.weight_fixed = None if weight_fixed is None else nn.Parameter(
            torch.as_tensor(weight_fixed, dtype=DTYPE).clone())  # fmt: skip
        self.register_buffer("release", None if release is None
                             else torch.as_tensor(np.array(release, dtype=np.int64)))  # fmt: skip
        links = None
        if release is not None and spec.kind == "conv2d":
            syn = spec.synapse(np.zeros(self.weight.shape, np.int8), None, None)
            i, j, k = conv2d_links(syn, spec.src_shape, spec.dst_shape)  # type: ignore[arg-type]
            ptr = np.searchsorted(j, np.arange(int(np.prod(spec.src_shape)) + 1))
            links = (torch.from_numpy(i), torch.from_numpy(k), torch.from_numpy(ptr.astype(np.int64)))
        self.links = links
        self._release_t: np.ndarray | None = None  # release codes transposed for the Numba kernels
        self._links_np: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (ptr, li, lk) for the kernels
        self._release_flat: np.ndarray | None = None

    # -- integer parameters (values exact, gradients straight-through) --------------------------------
    def mantissa(self) -> torch.Tensor:
        """int8 weight mantissas ``clip(round(c w / 2**e), -128, 127)``."""
        return quantize(self.weight * (self.spec.scale / 2.0**self.spec.weight_exp), -128, 127)

    def mantissa_fixed(self) -> torch.Tensor | None:
        if self.weight_fixed is None:
            return None
        return quantize(self.weight_fixed * (self.spec.scale / 2.0**self.spec.weight_exp), -128, 127)

    def _linear(self, src: torch.Tensor, w: torch.Tensor, exact32: bool = False) -> torch.Tensor:
        """``src @ W.T`` for the projection's matrix W (a conv2d as torch's conv2d on exact integers), in float64.

        ``exact32``: compute in float32, which is exact when every |partial sum| is an integer below 2**24 (the
        caller checks ``max_target sum_j |w_ij| * max |src| < 2**24``: products of integers, then integer sums
        of any order, all representable); float32 kernels run about twice as fast and read half the bytes."""
        sp = self.spec
        if exact32:
            src, w = src.float(), w.float()
        else:
            src = src.to(DTYPE)
        if sp.kind == "dense":
            out = src @ w.T
        else:
            out = F.conv2d(src.reshape(src.shape[0], *sp.src_shape), w, stride=sp.stride, padding=sp.padding,
                           dilation=sp.dilation, groups=sp.groups).reshape(src.shape[0], -1)  # fmt: skip
        return out.to(DTYPE)

    def weights(self, device: LayerDevice | None = None) -> ProjectionWeights:
        """The projection's integer weights for one forward pass (computed once, used at every step)."""
        m = self.mantissa()
        mf = self.mantissa_fixed()
        unit = 1.0
        if device is not None:
            unit = 2.0**16
            m = ste(device.wq, m * unit)  # value: realised Q.16 weights; gradient: to the mantissa
            mf = None if mf is None else ste(device.wfq, mf * unit)

        def row_sum(w: torch.Tensor | None) -> float:  # max over targets of sum_j |w_ij|
            if w is None:
                return 0.0
            w = w.detach().abs()
            return float(w.sum(1).max() if w.dim() == 2 else w.sum((1, 2, 3)).max())

        return ProjectionWeights(m, mf, unit, row_sum(m), row_sum(mf))

    def _release_sum(self, src: torch.Tensor, w: torch.Tensor, seed: int, trial: int, samples: torch.Tensor,
                     step: int | torch.Tensor, index: int) -> torch.Tensor:  # fmt: skip
        """``sum_j src_j xi_ij w_ij`` over the synapses that transmit (stream 1), on the Numba kernels: dense
        (:class:`_ReleaseDense`) or conv2d over the projection's links (:class:`_ReleaseLinks`); differentiable
        in ``src`` and ``w``. ``w`` holds the weights as stored (mantissas, or realised device weights)."""
        from quantal.hwsim import kernels

        rows = torch.as_tensor(step).expand(src.shape[0]) if not isinstance(step, torch.Tensor) else step
        rows_np, samples_np = rows.numpy().astype(np.int64), samples.numpy().astype(np.uint64)
        seed64 = int(seed) & (2**64 - 1)
        if self.links is None:
            if self._release_t is None:
                self._release_t = np.ascontiguousarray(self.release.numpy().T.astype(np.uint8))  # type: ignore[union-attr]
            return _ReleaseDense.apply(src, w, self._release_t, seed64, int(trial), samples_np, rows_np, int(index))
        if self._links_np is None:
            li, lk, ptr = (t.numpy() for t in self.links)
            self._links_np = (ptr, li, lk)
            self._release_flat = np.ascontiguousarray(self.release.numpy().reshape(-1).astype(np.uint8))  # type: ignore[union-attr]
        keys = kernels.release_row_keys(samples_np, rows_np, np.uint64(seed64), int(trial), int(index))
        return _ReleaseLinks.apply(src, w, self._links_np, self._release_flat, keys, int(np.prod(self.spec.dst_shape)))

    def _events(self, src: torch.Tensor, seed: int, trial: int, samples: torch.Tensor, step: int | torch.Tensor,
                index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """The synapses that active inputs reach: (batch row, target, weight element, xi) per synapse. ``step``
        is the step of every row, or one tensor of steps per row (several steps in one call)."""
        size = int(np.prod(self.spec.dst_shape))
        rows, cols = torch.nonzero(src.detach(), as_tuple=True)
        step = step[rows] if isinstance(step, torch.Tensor) else step
        if self.links is None:  # dense: every target; bytes of whole words
            draws = torch_streams.event_bytes(seed, trial, samples[rows], step, index, cols, size)  # (E, size)
            tgt = torch.arange(size).repeat(len(rows))
            elem = (tgt.view(len(rows), size) * src.shape[1] + cols[:, None]).reshape(-1)  # weight[i, j] flat
            ev = torch.arange(len(rows)).repeat_interleave(size)
            byte = draws.reshape(-1)
        else:  # conv2d: the links of each active input, byte i % 8 of word(k, i // 8) per reached target i
            li, lk, ptr = self.links
            n_links = ptr[cols + 1] - ptr[cols]
            ev = torch.arange(len(rows)).repeat_interleave(n_links)
            first = torch.repeat_interleave(ptr[cols], n_links)
            offset = torch.arange(len(ev)) - torch.repeat_interleave(torch.cumsum(n_links, 0) - n_links, n_links)
            link = first + offset
            tgt, elem = li[link], lk[link]
            byte = torch_streams.target_bytes(seed, trial, samples[rows], step, index, cols, ev, tgt)
        xi = (byte <= self.release.reshape(-1)[elem]).to(DTYPE)  # transmit iff byte <= release
        return rows[ev], tgt, elem, xi * src[rows[ev], cols[ev]].to(DTYPE)

    def synaptic_input(self, src: torch.Tensor, seed: int, trial: int, samples: torch.Tensor,
                       step: int | torch.Tensor, index: int, device: LayerDevice | None = None,
                       weights: ProjectionWeights | None = None, src_max: float = 1.0) -> torch.Tensor:  # fmt: skip
        """``a_p = wrap32(floor(sum_j src_j (weight_fixed + xi * weight) 2**weight_exp))`` for source spikes
        ``src`` (batch, source size) of the projection's step; ``index`` (the projection's) keys stream 1.

        With ``device`` the weights are the device's realised weights in Q.16 (docs/devices.md): the sum is
        exact in units of 2**-16 and ``a_p = floor(sum * 2**weight_exp / 2**16)``, as in hwsim; the gradient
        goes straight through to the mantissas. Read noise, if the device has it, is added as one Gaussian per
        neuron with the summed variance of the reads (the same distribution, drawn with torch's generator:
        equal in law to hwsim, not bit for bit). ``weights`` (from :meth:`weights`, with the same ``device``)
        saves recomputing them every step; ``src_max`` bounds |src| (1 for spikes).
        """
        w = self.weights(device) if weights is None else weights
        m, mf, unit = w.m, w.mf, w.unit
        f32 = torch.get_float32_matmul_precision() == "highest"  # no reduced-precision float32 kernels
        f32_m = f32 and w.row_sum * src_max < 2**24
        f32_mf = f32 and w.row_sum_fixed * src_max < 2**24
        size = int(np.prod(self.spec.dst_shape))
        events = None
        if self.release is None:
            total = self._linear(src, m, f32_m)
        elif src.device.type == "cpu":  # Numba kernels: the same draws, nothing stored per synapse
            total = self._release_sum(src, m, seed, trial, samples, step, index)
        else:
            events = self._events(src, seed, trial, samples, step, index)
            rows, tgt, elem, xs = events
            contrib = xs * m.reshape(-1)[elem]  # each transmitted synapse's weight
            total = torch.zeros(src.shape[0] * size, dtype=DTYPE).index_add(0, rows * size + tgt, contrib)
            total = total.view(src.shape[0], size)
        if mf is not None:
            total = total + self._linear(src, mf, f32_mf)
        if device is not None and device.s2w is not None:
            s = src.detach().to(DTYPE)
            if self.release is None:
                var = self._linear(s, device.s2w)
            elif events is None:  # the variance of the transmitted reads: the same draws as the sum
                with torch.no_grad():
                    var = self._release_sum(s, device.s2w, seed, trial, samples, step, index)
            else:
                rows, tgt, elem, xs = events
                var = torch.zeros(src.shape[0] * size, dtype=DTYPE).index_add(
                    0, rows * size + tgt, xs.detach() * device.s2w.reshape(-1)[elem]).view(src.shape[0], size)
            if device.s2f is not None:
                var = var + self._linear(s, device.s2f)
            z = torch.randn(var.shape, dtype=DTYPE, generator=device.generator)
            total = total + torch.round(torch.sqrt(var) * unit * z)
        e = self.spec.weight_exp
        scaled = total * (2.0**e / unit)  # exact: multiplying by a power of two
        with torch.no_grad():
            exact = scaled.detach()
            if e < 0 or device is not None:
                exact = torch.floor(exact)  # the arithmetic right shift floors the sum
            exact = _wrap32(exact)  # a_p is a 32-bit value
        return exact + (scaled - scaled.detach())  # straight through the floor and the wrap


@dataclass
class ProjectionWeights:
    """A projection's weights for one forward pass: mantissas (or realised device weights in units of
    ``1 / unit``), with gradients, and the largest row sums of their magnitudes (for :meth:`QuantProjection._linear`'s
    exactness check)."""

    m: torch.Tensor
    mf: torch.Tensor | None
    unit: float
    row_sum: float
    row_sum_fixed: float


@dataclass
class LayerDevice:
    """A projection's realised device weights for one forward pass (float64 tensors holding Q.16 integers)."""

    wq: torch.Tensor
    wfq: torch.Tensor | None
    s2w: torch.Tensor | None
    s2f: torch.Tensor | None
    generator: torch.Generator | None = None


@dataclass
class DeviceRun:
    """Run a :class:`QuantNet` on a device: ``spec`` (a ``quantal.hwsim.devices.DeviceSpec``), its static draws
    for (``seed``, ``trial``), and torch's generator for the read noise."""

    spec: Any
    seed: int = 0
    trial: int = 0
    generator: torch.Generator | None = None


@dataclass
class QuantOutput:
    """Per layer (batch, steps, size) records (u and v only with ``record``); ``final_v`` is the last layer's
    v after the last step (the IR's ``counts`` of a readout), ``logits`` the same in float units."""

    spikes: list[torch.Tensor]
    u: list[torch.Tensor]
    v: list[torch.Tensor]
    final_v: torch.Tensor
    logits: torch.Tensor


class QuantNet(nn.Module):
    """An IR graph of :class:`QuantLayer` and :class:`QuantProjection`; ``forward`` runs its semantics over time."""

    def __init__(self, name: str, input_shape: int | tuple[int, ...], layers: list[QuantLayer],
                 projections: list[QuantProjection]) -> None:  # fmt: skip
        super().__init__()
        self.name = name
        self.input_shape = (input_shape,) if isinstance(input_shape, (int, np.integer)) else tuple(input_shape)
        self.layers = nn.ModuleList(layers)
        self.projections = nn.ModuleList(projections)
        names = [la.spec.name for la in layers]
        self._src = [-1 if p.spec.source == INPUT else names.index(p.spec.source) for p in projections]
        self._into = [[pi for pi, p in enumerate(projections) if p.spec.target == n] for n in names]

    @property
    def input_size(self) -> int:
        return int(np.prod(self.input_shape))

    @classmethod
    def chain(cls, name: str, input_size: int, pairs: list[tuple[QuantLayer, QuantProjection]]) -> QuantNet:
        """A feed-forward chain: projection l (named like its layer) from layer l - 1 (the input) to layer l."""
        layers, projs, src, shape = [], [], INPUT, (input_size,)
        for la, pr in pairs:
            projs.append(QuantProjection(dataclasses.replace(pr.spec, source=src, target=la.spec.name, src_shape=shape,
                                                             dst_shape=la.spec.shape), pr.weight.detach(),
                                         weight_fixed=None if pr.weight_fixed is None else pr.weight_fixed.detach(),
                                         release=None if pr.release is None else pr.release.numpy()))  # fmt: skip
            layers.append(la)
            src, shape = la.spec.name, la.spec.shape
        return cls(name, input_size, layers, projs)

    def forward(self, spikes: torch.Tensor, *, steps: int | None = None, seed: int = 0, trial: int = 0,
                samples: torch.Tensor | None = None, record: bool = False,
                device: DeviceRun | None = None) -> QuantOutput:  # fmt: skip
        """Run input spikes (batch, T_in, input size or *input shape) of 0/1 for ``steps`` steps (default T_in).

        ``samples`` (batch,) are the samples' indices in the whole input (they select the random streams,
        like ``sample_offset`` in hwsim; default 0..batch-1). With ``record`` every layer's spikes, u and v
        are kept (values after the reset, as hwsim records them); otherwise only spikes are. ``device``
        replaces the weights by a device's realisation (hardware-aware training, docs/devices.md).
        """
        x = torch.as_tensor(spikes)
        if not x.is_floating_point():
            x = x.to(torch.float32)  # 0/1 spikes (or small counts): exact in float32
        if tuple(x.shape[2:]) not in ((self.input_size,), self.input_shape):
            raise ValueError(f"input has shape {tuple(x.shape)} but the network expects (batch, T, "
                             f"{', '.join(map(str, self.input_shape))})")  # fmt: skip
        x = x.reshape(x.shape[0], x.shape[1], self.input_size)
        batch, t_in, n_in = x.shape
        steps = t_in if steps is None else steps
        samples = torch.arange(batch) if samples is None else torch.as_tensor(samples, dtype=torch.int64)
        layers: list[QuantLayer] = list(self.layers)  # type: ignore[arg-type]
        projs: list[QuantProjection] = list(self.projections)  # type: ignore[arg-type]
        zeros = [torch.zeros(batch, la.spec.size, dtype=DTYPE) for la in layers]
        u, v = list(zeros), list(zeros)
        rec: dict[str, list[list[torch.Tensor]]] = {q: [[] for _ in layers] for q in ("spikes", "u", "v")}
        biases = [la.bias_v() for la in layers]
        devs = [None] * len(projs) if device is None else [self._realize(pi, device) for pi in range(len(projs))]
        weights = [pr.weights(devs[pi]) for pi, pr in enumerate(projs)]  # once per pass, used at every step

        # Projections from the input: every step at once. Input step k (rows (b, k), each with its own step in
        # the streams) is delivered at step k + 1 + delay; pre[pi][t] is None where nothing arrives.
        pre: dict[int, list[torch.Tensor | None]] = {}
        lo_hi = torch.aminmax(x) if x.numel() else (torch.zeros(()), torch.zeros(()))  # no temporary copy of x
        x_max = max(-float(lo_hi[0]), float(lo_hi[1]))
        for pi, pr in enumerate(projs):
            if self._src[pi] < 0:
                d = pr.spec.delay
                used = min(t_in, max(0, steps - 1 - d))  # input steps that arrive within the run
                pre[pi] = [None] * steps
                if used == 0:
                    continue
                src = x[:, :used].reshape(batch * used, n_in)
                rows_t = (torch.arange(used) + 1 + d).repeat(batch)
                a_p = pr.synaptic_input(src, seed, trial, samples.repeat_interleave(used), rows_t, pi, devs[pi],
                                        weights[pi], x_max)  # fmt: skip
                pre[pi][1 + d: 1 + d + used] = a_p.reshape(batch, used, -1).unbind(1)  # one backward node
        # a device's realised weights can exceed the mantissas' bound: its layers always take the wraps
        wide = [device is not None or self._wide(li, weights) for li in range(len(layers))]
        for t in range(steps):
            for li, la in enumerate(layers):
                a = None
                for pi in self._into[li]:
                    if pi in pre:
                        a_p = pre[pi][t]
                        if a_p is None:
                            continue
                    else:
                        pr = projs[pi]
                        step = t - 1 - pr.spec.delay  # the source layer's spikes of this step (none before 0)
                        if step < 0:
                            continue
                        a_p = pr.synaptic_input(rec["spikes"][self._src[pi]][step], seed, trial, samples, t, pi,
                                                devs[pi], weights[pi])  # fmt: skip
                    a = a_p if a is None else wrap32(a + a_p)  # a = sum_p a_p (32-bit)
                if a is None:  # no projection delivered anything this step
                    a = torch.zeros(batch, la.spec.size, dtype=DTYPE)
                esc = None
                if la.theta is not None:
                    esc = torch_streams.escape_uniforms(seed, trial, samples, t, li, la.spec.size)
                s, u[li], v[li] = la.step(a, u[li], v[li], biases[li], esc, wide[li])
                rec["spikes"][li].append(s)
                if record:
                    rec["u"][li].append(u[li])
                    rec["v"][li].append(v[li])
        out = {q: [torch.stack(r, 1) if r else torch.empty(0) for r in rec[q]] for q in rec}
        last = layers[-1]
        logits = v[-1] / (64 * last.spec.scale)
        return QuantOutput(out["spikes"], out["u"], out["v"], v[-1], logits)

    def _wide(self, li: int, weights: list[ProjectionWeights]) -> bool:
        """Whether layer ``li`` can reach the 32-bit wraps: its worst-case |a << 6| over all inputs and release
        draws, from the pass's mantissas ``weights`` (``Network.worst_case_input``), exceeds 2**24."""
        total = None
        with torch.no_grad():
            for pi in self._into[li]:
                pr = self.projections[pi]
                m = weights[pi].m.detach().abs()
                mf = weights[pi].mf
                m = m if mf is None else m + mf.detach().abs()
                if pr.spec.kind == "dense":
                    rows = m.sum(1)
                else:  # every output of channel co sees at most the whole kernel of co
                    rows = m.sum((1, 2, 3)).repeat_interleave(int(np.prod(pr.spec.dst_shape[1:])))
                rows = torch.ceil(rows * 2.0**pr.spec.weight_exp)  # a negative exponent floors away from zero
                total = rows if total is None else total + rows
        return total is not None and float(total.max()) * 64 > 2**24

    def _realize(self, pi: int, run: DeviceRun) -> LayerDevice:
        """Projection ``pi``'s device weights for ``run`` from the current mantissas (hwsim/devices.py: one source
        of truth for the device formulas)."""
        from quantal.hwsim.devices import synapse_arrays

        pr = self.projections[pi]
        with torch.no_grad():
            m = pr.mantissa().numpy().astype(np.int8)
            mf = pr.mantissa_fixed()
        arrays = synapse_arrays(run.spec, m, None if mf is None else mf.numpy().astype(np.int8), seed=run.seed,
                                trial=run.trial, layer=pi)  # fmt: skip
        wq, wfq, s2w, s2f = (None if a is None else torch.from_numpy(a.astype(np.float64)) for a in arrays)
        return LayerDevice(wq, wfq, s2w, s2f, run.generator)

    # -- conversion -------------------------------------------------------------------------------------
    def to_network(self, name: str | None = None, metadata: dict[str, Any] | None = None) -> Network:
        """The IR network this model computes (exact integers)."""
        layers, projs = [], []
        with torch.no_grad():
            for la in self.layers:
                sp = la.spec
                neuron = Neuron(
                    kind=sp.kind, current_decay=_compact(la.current_decay.numpy()),
                    voltage_decay=_compact(la.voltage_decay.numpy()), threshold=_compact(la.threshold.numpy()),
                    bias_mant=_compact(la.bias_mant().numpy().astype(np.int64)), bias_exp=_compact(la.bias_exp.numpy()),
                    reset=sp.reset,
                    escape_noise=None if sp.escape_scale is None else EscapeNoise(scale=float(sp.escape_scale)),
                )  # fmt: skip
                layers.append(Layer(name=sp.name, shape=sp.shape, neuron=neuron))
            for pr in self.projections:
                sp = pr.spec
                mf = pr.mantissa_fixed()
                syn = sp.synapse(pr.mantissa().numpy().astype(np.int8),
                                 None if pr.release is None else pr.release.numpy().astype(np.uint8),
                                 None if mf is None else mf.numpy().astype(np.int8))  # fmt: skip
                projs.append(Projection(name=sp.name, source=sp.source, target=sp.target, synapse=syn, delay=sp.delay))
        return Network(name=name or self.name, input_shape=self.input_shape, layers=tuple(layers),
                       projections=tuple(projs), metadata=metadata or {})  # fmt: skip

    @classmethod
    def from_network(cls, net: Network, *, scales: list[float] | None = None) -> QuantNet:
        """The fake-quant model of an IR network (its forward equals the reference executor's bit for bit).

        ``scales`` (one per layer, default ``max(max threshold, 1)``) set the float units of the parameters.
        """
        layers = []
        cs = {}
        for k, layer in enumerate(net.layers):
            neu = layer.neuron
            thr = neu.array("threshold", layer.size)
            c = float(scales[k]) if scales is not None else float(max(int(thr.max()), 1))
            cs[layer.name] = c
            spec = LayerSpec(name=layer.name, shape=layer.shape, kind=neu.kind, scale=c, reset=neu.reset,
                             escape_scale=None if neu.escape_noise is None else float(neu.escape_noise.scale))
            bias_exp = neu.array("bias_exp", layer.size)
            bias_mant = neu.array("bias_mant", layer.size)
            layers.append(QuantLayer(
                spec, threshold=thr, current_decay=neu.array("current_decay", layer.size),
                voltage_decay=neu.array("voltage_decay", layer.size),
                bias=torch.from_numpy(bias_mant * 2.0**bias_exp / (64 * c)), bias_exp=bias_exp))  # fmt: skip
        projs = []
        for p in net.projections:
            syn = p.synapse
            c = cs[p.target]
            geo = {}
            if isinstance(syn, Conv2dSynapse):
                geo = {"stride": syn.stride, "padding": syn.padding, "dilation": syn.dilation, "groups": syn.groups}
            spec = ProjectionSpec(name=p.name, source=p.source, target=p.target, src_shape=net.source_shape(p),
                                  dst_shape=net.layer(p.target).shape, scale=c, kind=syn.kind,
                                  weight_exp=syn.weight_exp, delay=p.delay, has_fixed=syn.weight_fixed is not None,
                                  **geo)  # fmt: skip
            unit = 2.0**syn.weight_exp / c  # float units per mantissa step
            projs.append(QuantProjection(
                spec, torch.from_numpy(syn.weight.astype(np.float64) * unit),
                weight_fixed=None if syn.weight_fixed is None
                else torch.from_numpy(syn.weight_fixed.astype(np.float64) * unit),
                release=syn.release))  # fmt: skip
        return cls(net.name, net.input_shape, layers, projs)

    def structure(self) -> dict[str, Any]:
        """Plain data that, with the state dict, rebuilds this model (:meth:`from_structure`)."""
        return {"name": self.name, "input_shape": list(self.input_shape),
                "layers": [asdict(la.spec) for la in self.layers],
                "projections": [asdict(pr.spec) for pr in self.projections],
                "stochastic": [pr.release is not None for pr in self.projections]}  # fmt: skip

    @classmethod
    def from_structure(cls, st: dict[str, Any], state: dict[str, torch.Tensor]) -> QuantNet:
        def tup(d: dict) -> dict:
            return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}

        layers = []
        for k, d in enumerate(st["layers"]):
            g = lambda n, k=k: state[f"layers.{k}.{n}"].numpy()  # noqa: E731
            layers.append(QuantLayer(LayerSpec(**tup(d)), threshold=g("threshold"), current_decay=g("current_decay"),
                                     voltage_decay=g("voltage_decay"), bias=state[f"layers.{k}.bias"],
                                     bias_exp=g("bias_exp")))  # fmt: skip
        projs = []
        for k, d in enumerate(st["projections"]):
            projs.append(QuantProjection(
                ProjectionSpec(**tup(d)), state[f"projections.{k}.weight"],
                weight_fixed=state.get(f"projections.{k}.weight_fixed"),
                release=state[f"projections.{k}.release"].numpy() if st["stochastic"][k] else None))  # fmt: skip
        net = cls(st["name"], tuple(st["input_shape"]), layers, projs)
        net.load_state_dict(state)
        return net


def _compact(a: np.ndarray) -> int | np.ndarray:
    """A scalar when every neuron has the same value (smaller files), else the array."""
    return int(a[0]) if a.size and (a == a[0]).all() else a
