"""Fake-quant networks: IR v1's integer arithmetic in PyTorch, bit for bit, with straight-through gradients.

A :class:`QuantNet` is an IR network whose parameters are trainable floats. Its forward pass computes exactly
what ``quantal run`` and the reference executor compute (docs/ir.md §2-4): int8 weight mantissas with a
power-of-two exponent, the flooring shift of the sum, 32-bit wraps, the 24-bit current wrap and voltage
saturation, decays that round toward zero, strict thresholds, the one-step delay per layer, and the random
streams v1 for stochastic synapses (stream 1) and escape noise (stream 2). Every value is an integer held in
float64, which is exact for magnitudes below 2**53 (the largest intermediate, ``v * 4096``, stays below 2**36).

Gradients are straight-through: each integer operation ``y = q(x)`` is written ``ste(q(x), x)``, whose value
is ``q(x)`` exactly (``x - x.detach()`` is exactly zero) and whose gradient is that of ``x``. Rounding and
clipping of the weights pass the gradient inside the representable range and stop it outside (clipped STE);
spikes take a surrogate derivative: SuperSpike ``1 / (1 + beta |z|)**2`` for deterministic neurons and the
logistic escape function's own derivative for noisy ones, with ``z`` the distance to threshold in float units.

Units. Each layer has a ``scale`` c: its float parameters are in *float units* (the trained model's units) and
the IR integers are ``weight_mant * 2**weight_exp = round(c * w)`` (units of ``a``) and ``v = 64 c x`` (units
of v). A float threshold theta becomes ``round(c * theta)``, a float bias b becomes ``64 c b``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from quantal.compile import streams
from quantal.compile.ir import DenseSynapse, EscapeNoise, Layer, Network, Neuron

from . import torch_streams

V_MAX = 2**23 - 1  # v saturates at +-(2**23 - 1)
U_WRAP = 2**23  # u wraps once into (-2**23, 2**23]
DTYPE = torch.float64


def ste(exact: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """The value of ``exact`` with the gradient of ``surrogate`` (``surrogate - surrogate.detach()`` is 0)."""
    return exact.detach() + (surrogate - surrogate.detach())


def wrap32(x: torch.Tensor) -> torch.Tensor:
    """Two's-complement wrap to 32 bits (exact on float64 integers: 2**32 is a power of two)."""
    return ste(torch.remainder(x.detach() + 2**31, 2**32) - 2**31, x)


def rz(x: torch.Tensor) -> torch.Tensor:
    """``sign(x) * (|x| >> 12)``: x / 4096 rounded toward zero (x / 4096 is exact, trunc rounds toward zero)."""
    y = x / 4096
    return ste(torch.trunc(y.detach()), y)


def wrap_current(d: torch.Tensor) -> torch.Tensor:
    """One wrap into (-2**23, 2**23]: ``d - 2**24`` if ``d > 2**23``, ``d + 2**24`` if ``d <= -2**23``."""
    e = d.detach()
    return ste(torch.where(e > U_WRAP, e - 2 * U_WRAP, torch.where(e <= -U_WRAP, e + 2 * U_WRAP, e)), d)


def quantize(x: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """``clip(round(x), lo, hi)`` (round half to even); clipped straight-through gradient."""
    return ste(torch.clamp(torch.round(x.detach()), lo, hi), torch.clamp(x, lo, hi))


@dataclass(frozen=True)
class LayerSpec:
    """The integer structure of a :class:`QuantLayer` (everything but the trainable floats)."""

    name: str
    n_in: int
    size: int
    kind: str = "lif"  # lif | readout
    scale: float = 1.0  # c: IR integer units per float unit
    weight_exp: int = 0
    has_fixed: bool = False
    current_decay: int = 4096
    voltage_decay: int = 0
    threshold: int = 0
    escape_scale: float | None = None  # logistic escape noise S (v units), or None
    surrogate_beta: float = 5.0


class QuantLayer(nn.Module):
    """One IR layer: dense synapses (optionally stochastic, with a reliable part) and LIF/readout neurons.

    Trainable: ``weight`` (and ``weight_fixed``) in float units, ``bias`` (size,) in float units. Fixed
    buffers: ``release`` (uint8 codes as int64, or absent), ``bias_exp`` (size,), ``theta`` (escape table).
    """

    def __init__(self, spec: LayerSpec, weight: torch.Tensor, *, weight_fixed: torch.Tensor | None = None,
                 release: np.ndarray | torch.Tensor | None = None, bias: torch.Tensor | None = None,
                 bias_exp: np.ndarray | torch.Tensor | None = None) -> None:  # fmt: skip
        super().__init__()
        self.spec = spec
        self.weight = nn.Parameter(torch.as_tensor(weight, dtype=DTYPE).clone())
        self.weight_fixed = None if weight_fixed is None else nn.Parameter(
            torch.as_tensor(weight_fixed, dtype=DTYPE).clone())  # fmt: skip
        self.bias = nn.Parameter(torch.zeros(spec.size, dtype=DTYPE) if bias is None
                                 else torch.as_tensor(bias, dtype=DTYPE).clone())  # fmt: skip
        self.register_buffer("bias_exp", torch.zeros(spec.size, dtype=torch.int64) if bias_exp is None
                             else torch.from_numpy(np.array(bias_exp, dtype=np.int64)))  # fmt: skip
        self.register_buffer("release", None if release is None
                             else torch.from_numpy(np.array(release, dtype=np.int64)))  # fmt: skip
        theta = None if spec.escape_scale is None else torch.from_numpy(streams.escape_thresholds(spec.escape_scale))
        self.register_buffer("theta", None if theta is None else theta.to(DTYPE), persistent=False)

    # -- integer parameters (values exact, gradients straight-through) --------------------------------
    def mantissa(self) -> torch.Tensor:
        """int8 weight mantissas ``clip(round(c w / 2**e), -128, 127)``."""
        return quantize(self.weight * (self.spec.scale / 2.0**self.spec.weight_exp), -128, 127)

    def mantissa_fixed(self) -> torch.Tensor | None:
        if self.weight_fixed is None:
            return None
        return quantize(self.weight_fixed * (self.spec.scale / 2.0**self.spec.weight_exp), -128, 127)

    def bias_mant(self) -> torch.Tensor:
        """``clip(round(64 c b / 2**bias_exp), -4096, 4095)``; the bias in v units is ``bias_mant << bias_exp``."""
        return quantize(self.bias * (64 * self.spec.scale) / 2.0 ** self.bias_exp.to(DTYPE), -4096, 4095)

    def bias_v(self) -> torch.Tensor:
        return self.bias_mant() * 2.0 ** self.bias_exp.to(DTYPE)  # << bias_exp: exact power-of-two product

    # -- dynamics --------------------------------------------------------------------------------------
    def synaptic_input(self, src: torch.Tensor, events: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
                       device: LayerDevice | None = None) -> torch.Tensor:  # fmt: skip
        """``a = wrap32(floor(sum_j src_j (weight_fixed + xi * weight) 2**weight_exp))`` for spikes ``src``
        (batch, n_in) of step t-1. ``events`` = (sample rows, inputs, stream-1 bytes (E, size)) of the active
        inputs of a stochastic layer (None: reliable synapses).

        With ``device`` the weights are the device's realised weights in Q.16 (docs/devices.md): the sum is
        exact in units of 2**-16 and ``a = floor(sum * 2**weight_exp / 2**16)``, as in hwsim; the gradient goes
        straight through to the mantissas. Read noise, if the device has it, is added as one Gaussian per
        neuron with the summed variance of the reads (the same distribution, drawn with torch's generator:
        equal in law to hwsim, not bit for bit).
        """
        m = self.mantissa()
        mf = self.mantissa_fixed()
        unit = 1.0
        if device is not None:
            unit = 2.0**16
            m = ste(device.wq, m * unit)  # value: realised Q.16 weights; gradient: to the mantissa
            mf = None if mf is None else ste(device.wfq, mf * unit)
        if self.release is None:
            total = src @ m.T
            xi_w = None
        else:
            rows, cols, draws = events
            xi = (draws <= self.release[:, cols].T).to(DTYPE)  # (E, size): transmit iff byte <= release[i, j]
            contrib = src[rows, cols][:, None] * xi * m[:, cols].T  # each event's transmitted weights
            total = torch.zeros(src.shape[0], m.shape[0], dtype=DTYPE).index_add(0, rows, contrib)
            xi_w = (rows, cols, xi)
        if mf is not None:
            total = total + src @ mf.T
        if device is not None and device.s2w is not None:
            s = src.detach()
            if xi_w is None:
                var = s @ device.s2w.T
            else:
                rows, cols, xi = xi_w
                var = torch.zeros_like(total.detach()).index_add(0, rows, s[rows, cols][:, None] * xi
                                                                 * device.s2w[:, cols].T)  # fmt: skip
            if device.s2f is not None:
                var = var + s @ device.s2f.T
            z = torch.randn(var.shape, dtype=DTYPE, generator=device.generator)
            total = total + torch.round(torch.sqrt(var) * unit * z)
        e = self.spec.weight_exp
        scaled = total * (2.0**e / unit)  # exact: multiplying by a power of two
        if e < 0 or device is not None:
            scaled = ste(torch.floor(scaled.detach()), scaled)  # the arithmetic right shift floors the sum
        return wrap32(scaled)  # a is a 32-bit value

    def step(self, a: torch.Tensor, u: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
             uniforms: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """``(a, (u, v)) -> (spikes, (u, v))``: one step of the fixed-point neuron (docs/ir.md §2)."""
        sp = self.spec
        act = wrap32(a * 64)  # a << 6 in 32-bit arithmetic
        d = wrap32(rz(u * (4096 - sp.current_decay)) + act)  # the int32 sum of step 2
        u = wrap_current(d)
        v = rz(v * (4096 - sp.voltage_decay)) + u + bias
        v = ste(torch.clamp(v.detach(), -V_MAX, V_MAX), v)  # 24-bit saturation
        if sp.kind == "readout":
            return torch.zeros_like(v), u, v
        x = v - sp.threshold * 64  # distance to threshold << 6, in v units
        unit = 64 * sp.scale  # v units per float unit
        if self.theta is None:
            exact = (x.detach() > 0).to(DTYPE)  # strict threshold
            z = x / unit
            s = ste(exact, z / (1 + sp.surrogate_beta * z.abs()))  # SuperSpike: d/dz = 1 / (1 + beta |z|)^2
        else:
            exact = (x.detach() > self.theta[uniforms]).to(DTYPE)  # escape noise: x > theta[U]
            s = ste(exact, torch.sigmoid(x / sp.escape_scale))  # the escape probability's own derivative
        v = v * (1 - s.detach())  # reset v to 0 where s (u is not reset); no gradient through the reset
        return s, u, v


@dataclass
class LayerDevice:
    """A layer's realised device weights for one forward pass (float64 tensors holding Q.16 integers)."""

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
    """A feed-forward chain of :class:`QuantLayer`; ``forward`` runs the IR semantics over time."""

    def __init__(self, name: str, input_size: int, layers: list[QuantLayer]) -> None:
        super().__init__()
        self.name = name
        self.input_size = input_size
        self.layers = nn.ModuleList(layers)

    def forward(self, spikes: torch.Tensor, *, steps: int | None = None, seed: int = 0, trial: int = 0,
                samples: torch.Tensor | None = None, record: bool = False,
                device: DeviceRun | None = None) -> QuantOutput:  # fmt: skip
        """Run input spikes (batch, T_in, input_size) of 0/1 for ``steps`` steps (default T_in).

        ``samples`` (batch,) are the samples' indices in the whole input (they select the random streams,
        like ``sample_offset`` in hwsim; default 0..batch-1). With ``record`` every layer's spikes, u and v
        are kept (values after the reset, as hwsim records them); otherwise only spikes are. ``device``
        replaces the weights by a device's realisation (hardware-aware training, docs/devices.md).
        """
        x = torch.as_tensor(spikes).to(DTYPE)
        batch, t_in, n_in = x.shape
        if n_in != self.input_size:
            raise ValueError(f"input has {n_in} channels but the network expects {self.input_size}")
        steps = t_in if steps is None else steps
        samples = torch.arange(batch) if samples is None else torch.as_tensor(samples, dtype=torch.int64)
        layers: list[QuantLayer] = list(self.layers)  # type: ignore[arg-type]
        zeros = [torch.zeros(batch, la.spec.size, dtype=DTYPE) for la in layers]
        u, v, prev = list(zeros), list(zeros), list(zeros)
        rec: dict[str, list[list[torch.Tensor]]] = {q: [[] for _ in layers] for q in ("spikes", "u", "v")}
        biases = [la.bias_v() for la in layers]
        devs = [None] * len(layers) if device is None else [self._realize(li, device) for li in range(len(layers))]
        no_input = torch.zeros(batch, n_in, dtype=DTYPE)
        for t in range(steps):
            cur = []
            for li, la in enumerate(layers):
                if li == 0:  # the run's input of step t-1 (none at t = 0 or past the input)
                    src = x[:, t - 1] if 1 <= t <= t_in else no_input
                else:
                    src = prev[li - 1]
                events = None
                if la.release is not None:  # stream 1 is drawn for active inputs only (event-driven)
                    rows, cols = torch.nonzero(src.detach(), as_tuple=True)
                    events = (rows, cols, torch_streams.event_bytes(seed, trial, samples[rows], t, li, cols,
                                                                    la.spec.size))  # fmt: skip
                esc = None
                if la.theta is not None:
                    esc = torch_streams.escape_uniforms(seed, trial, samples, t, li, la.spec.size)
                a = la.synaptic_input(src, events, devs[li])
                s, u[li], v[li] = la.step(a, u[li], v[li], biases[li], esc)
                cur.append(s)
                rec["spikes"][li].append(s)
                if record:
                    rec["u"][li].append(u[li])
                    rec["v"][li].append(v[li])
            prev = cur
        out = {q: [torch.stack(r, 1) if r else torch.empty(0) for r in rec[q]] for q in rec}
        last = layers[-1]
        logits = v[-1] / (64 * last.spec.scale)
        return QuantOutput(out["spikes"], out["u"], out["v"], v[-1], logits)

    def _realize(self, li: int, run: DeviceRun) -> LayerDevice:
        """Layer ``li``'s device weights for ``run`` from the current mantissas (hwsim/devices.py: one source of
        truth for the device formulas)."""
        from quantal.hwsim.devices import synapse_arrays

        la = self.layers[li]
        with torch.no_grad():
            m = la.mantissa().numpy().astype(np.int8)
            mf = la.mantissa_fixed()
        arrays = synapse_arrays(run.spec, m, None if mf is None else mf.numpy().astype(np.int8), seed=run.seed,
                                trial=run.trial, layer=li)  # fmt: skip
        wq, wfq, s2w, s2f = (None if a is None else torch.from_numpy(a.astype(np.float64)) for a in arrays)
        return LayerDevice(wq, wfq, s2w, s2f, run.generator)

    # -- conversion -------------------------------------------------------------------------------------
    def to_network(self, name: str | None = None, metadata: dict[str, Any] | None = None) -> Network:
        """The IR network this model computes (exact integers)."""
        layers = []
        with torch.no_grad():
            for la in self.layers:
                sp = la.spec
                mf = la.mantissa_fixed()
                syn = DenseSynapse(
                    weight=la.mantissa().numpy().astype(np.int8),
                    weight_exp=sp.weight_exp,
                    release=None if la.release is None else la.release.numpy().astype(np.uint8),
                    weight_fixed=None if mf is None else mf.numpy().astype(np.int8),
                )
                neuron = Neuron(
                    kind=sp.kind, current_decay=sp.current_decay, voltage_decay=sp.voltage_decay,
                    threshold=sp.threshold, bias_mant=_compact(la.bias_mant().numpy().astype(np.int64)),
                    bias_exp=_compact(la.bias_exp.numpy()),
                    escape_noise=None if sp.escape_scale is None else EscapeNoise(scale=float(sp.escape_scale)),
                )  # fmt: skip
                layers.append(Layer(name=sp.name, size=sp.size, synapse=syn, neuron=neuron))
        return Network(name=name or self.name, input_size=self.input_size, layers=tuple(layers),
                       metadata=metadata or {})  # fmt: skip

    @classmethod
    def from_network(cls, net: Network, *, scales: list[float] | None = None) -> QuantNet:
        """The fake-quant model of an IR network (its forward equals the reference executor's bit for bit).

        ``scales`` (one per layer, default ``max(threshold, 1)``) set the float units of the parameters.
        """
        layers = []
        for k, layer in enumerate(net.layers):
            syn, neu = layer.synapse, layer.neuron
            c = float(scales[k]) if scales is not None else float(max(neu.threshold, 1))
            spec = LayerSpec(
                name=layer.name, n_in=layer.n_in, size=layer.size, kind=neu.kind, scale=c,
                weight_exp=syn.weight_exp, has_fixed=syn.weight_fixed is not None,
                current_decay=neu.current_decay, voltage_decay=neu.voltage_decay, threshold=neu.threshold,
                escape_scale=None if neu.escape_noise is None else float(neu.escape_noise.scale),
            )  # fmt: skip
            unit = 2.0**syn.weight_exp / c  # float units per mantissa step
            bias_exp = np.broadcast_to(np.asarray(neu.bias_exp, dtype=np.int64), (layer.size,))
            bias_mant = np.broadcast_to(np.asarray(neu.bias_mant, dtype=np.int64), (layer.size,))
            layers.append(QuantLayer(
                spec, torch.from_numpy(syn.weight.astype(np.float64) * unit),
                weight_fixed=None if syn.weight_fixed is None
                else torch.from_numpy(syn.weight_fixed.astype(np.float64) * unit),
                release=syn.release, bias=torch.from_numpy(bias_mant * 2.0**bias_exp / (64 * c)), bias_exp=bias_exp,
            ))  # fmt: skip
        return cls(net.name, net.input_size, layers)

    def structure(self) -> dict[str, Any]:
        """Plain data that, with the state dict, rebuilds this model (:meth:`from_structure`)."""
        return {"name": self.name, "input_size": self.input_size,
                "layers": [asdict(la.spec) for la in self.layers],
                "stochastic": [la.release is not None for la in self.layers]}  # fmt: skip

    @classmethod
    def from_structure(cls, st: dict[str, Any], state: dict[str, torch.Tensor]) -> QuantNet:
        layers = []
        for k, d in enumerate(st["layers"]):
            spec = LayerSpec(**d)
            w = state[f"layers.{k}.weight"]
            layers.append(QuantLayer(
                spec, w, weight_fixed=state.get(f"layers.{k}.weight_fixed"),
                release=state[f"layers.{k}.release"].numpy() if st["stochastic"][k] else None,
                bias=state[f"layers.{k}.bias"], bias_exp=state[f"layers.{k}.bias_exp"].numpy()))  # fmt: skip
        net = cls(st["name"], st["input_size"], layers)
        net.load_state_dict(state)
        return net


def _compact(a: np.ndarray) -> int | np.ndarray:
    """A scalar when every neuron has the same value (smaller files), else the array."""
    return int(a[0]) if a.size and (a == a[0]).all() else a
