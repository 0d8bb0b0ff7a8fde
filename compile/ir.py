"""IR v2: the ``.qnet`` network graph shared by the trainer, the simulator and the exporters.

A network is a graph of neuron **layers** and the **projections** (synapses) between them. A projection comes
from the run's input or from any layer (the target itself included: recurrence) and ends at a layer, so
convolutional stacks, recurrent layers and skip connections are all expressible::

    Network(name, input_shape, layers=(Layer, ...), projections=(Projection, ...), metadata)
    Layer(name, shape, neuron)                      # shape [size] or [C, H, W]
    Projection(name, source, target, synapse, delay)
    synapse: DenseSynapse | Conv2dSynapse           # SYNAPSES = {kind: class}

A ``.qnet`` file is a ZIP archive holding ``manifest.yaml`` and one ``<name>.npy`` per array. Loading never
unpickles (``allow_pickle=False``) and parses YAML with ``yaml.safe_load``; saving is atomic (a temporary file
in the same folder, then ``os.replace``) and always writes version 2. Version 1 files (a feed-forward chain)
load as the equivalent graph. Every rule of the format is checked when an object is built, and a violation
raises :class:`IRError` naming the layer or projection and the field. See docs/ir.md for the semantics.

This module needs only numpy and pyyaml and runs on Python 3.10 with numpy 1.24+.
"""

from __future__ import annotations

import errno
import io
import math
import os
import re
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import yaml

FORMAT = "quantal.ir"
VERSION = 2
MANIFEST = "manifest.yaml"

WEIGHT_EXP_RANGE = (-8, 7)
DECAY_RANGE = (0, 4096)
THRESHOLD_RANGE = (0, 131071)
BIAS_MANT_RANGE = (-4096, 4095)
BIAS_EXP_RANGE = (0, 7)
DELAY_RANGE = (0, 62)
MAX_SIZE = 2**24  # neurons per layer (and input channels)
NEURON_KINDS = ("lif", "readout")
RESETS = ("zero", "subtract")
ESCAPE_KINDS = ("logistic",)
MAX_ESCAPE_SCALE = float(2**31)  # v spans +-2**23: larger scales are a fair coin; keeps thresholds < 2**36
INPUT = "input"  # the source name of the run's input spikes

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")  # layer names
_PROJ_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-.]*$")  # projection names may contain '.' (e.g. c1.in)


class IRError(ValueError):
    """A ``.qnet`` file or IR object breaks a rule of the format.

    ``layer``/``projection`` and ``field`` say where (any may be None for network-level problems); ``str(err)``
    is one line such as ``projection 'c1.in': synapse.weight: expected dtype int8, got float32``.
    """

    def __init__(self, message: str, *, layer: str | None = None, field: str | None = None,
                 projection: str | None = None) -> None:  # fmt: skip
        self.layer = layer
        self.projection = projection
        self.field = field
        self.detail = message
        where = []
        if layer is not None:
            where.append(f"layer '{layer}'")
        if projection is not None:
            where.append(f"projection '{projection}'")
        if field is not None:
            where.append(field)
        super().__init__(": ".join([*where, message]))

    def within(self, *, layer: str | None = None, projection: str | None = None,
               prefix: str | None = None) -> IRError:  # fmt: skip
        """The same error, placed inside ``layer`` or ``projection`` and/or under the field ``prefix``."""
        f = self.field if prefix is None else (prefix if self.field is None else f"{prefix}.{self.field}")
        placed = self.layer is not None or self.projection is not None
        return IRError(
            self.detail,
            layer=self.layer if (layer is None or placed) else layer,
            projection=self.projection if (projection is None or placed) else projection,
            field=f,
        )


# ----------------------------------------------------------------------------------------------- checks


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _int(value: Any, name: str, lo: int, hi: int) -> int:
    if not _is_int(value):
        raise IRError(f"expected an integer in [{lo}, {hi}], got {value!r}", field=name)
    if not lo <= int(value) <= hi:
        raise IRError(f"{int(value)} is out of range [{lo}, {hi}]", field=name)
    return int(value)


def _array(value: Any, name: str, dtype: np.dtype | None, shape: tuple[int, ...] | None) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise IRError(f"expected a numpy array, got {type(value).__name__}", field=name)
    if dtype is not None and value.dtype != dtype:
        raise IRError(f"expected dtype {np.dtype(dtype).name}, got {value.dtype.name}", field=name)
    if shape is not None and value.shape != shape:
        raise IRError(f"expected shape {shape}, got {value.shape}", field=name)
    out = np.array(value, copy=True)  # an owned, read-only copy: IR objects are immutable
    out.setflags(write=False)
    return out


def _int_or_array(value: Any, name: str, lo: int, hi: int, dtype: type) -> int | np.ndarray:
    """A scalar integer, or a 1-D integer array whose values all lie in [lo, hi] (stored as ``dtype``)."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iu":
            raise IRError(f"expected an integer array, got dtype {value.dtype.name}", field=name)
        if value.ndim != 1:
            raise IRError(f"expected a 1-D array, got shape {value.shape}", field=name)
        if value.size and (int(value.min()) < lo or int(value.max()) > hi):
            bad = int(value.min()) if int(value.min()) < lo else int(value.max())
            raise IRError(f"value {bad} is out of range [{lo}, {hi}]", field=name)
        return _array(value.astype(dtype), name, None, None)
    return _int(value, name, lo, hi)


def _pair(value: Any, name: str, lo: int, hi: int = 2**16) -> tuple[int, int]:
    """An int or a pair of ints in [lo, hi], as a pair (height, width)."""
    if _is_int(value):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise IRError(f"expected an integer or a pair [h, w], got {value!r}", field=name)
    return (_int(value[0], name, lo, hi), _int(value[1], name, lo, hi))


def _shape(value: Any, name: str) -> tuple[int, ...]:
    """A layer or input shape: [size] or [C, H, W] of positive integers with size <= MAX_SIZE."""
    if _is_int(value):
        value = (value,)
    if not isinstance(value, (tuple, list)) or len(value) not in (1, 3):
        raise IRError(f"expected [size] or [channels, height, width], got {value!r}", field=name)
    shape = tuple(_int(d, name, 1, MAX_SIZE) for d in value)
    if math.prod(shape) > MAX_SIZE:
        raise IRError(f"size {math.prod(shape)} is larger than {MAX_SIZE}", field=name)
    return shape


def _values_equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and np.array_equal(a, b)
        )
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_values_equal(x, y) for x, y in zip(a, b))
    return bool(a == b)


class _ArrayEq:
    """Field-wise equality that compares numpy arrays by dtype and value."""

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(_values_equal(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))  # type: ignore[arg-type]

    __hash__ = None  # type: ignore[assignment]


# ---------------------------------------------------------------------------------------------- neurons


@dataclass(frozen=True, eq=False)
class EscapeNoise(_ArrayEq):
    """Stochastic firing: a neuron spikes with probability sigmoid((v - (threshold << 6)) / scale).

    Drawn from random stream 2 with 16-bit uniforms; see :func:`quantal.compile.streams.escape_thresholds`
    for the exact integer rule. ``scale`` is in the units of v (threshold units times 64) and must be > 0;
    as scale -> 0 the neuron becomes the deterministic ``v > threshold << 6``.
    """

    scale: float
    kind: str = "logistic"

    def __post_init__(self) -> None:
        if self.kind not in ESCAPE_KINDS:
            raise IRError(f"unknown kind {self.kind!r} (known: {', '.join(ESCAPE_KINDS)})", field="kind")
        s = self.scale
        if isinstance(s, bool) or not isinstance(s, (int, float, np.integer, np.floating)):
            raise IRError(f"expected a positive number, got {s!r}", field="scale")
        if not math.isfinite(float(s)) or not 0 < float(s) <= MAX_ESCAPE_SCALE:
            raise IRError(f"expected a number in (0, 2**31], got {s!r}", field="scale")
        object.__setattr__(self, "scale", float(s))


#: Per-neuron fields of :class:`Neuron`: (range, storage dtype). Each is a scalar or an array of shape (size,).
NEURON_ARRAYS: dict[str, tuple[tuple[int, int], type]] = {
    "current_decay": (DECAY_RANGE, np.int16),
    "voltage_decay": (DECAY_RANGE, np.int16),
    "threshold": (THRESHOLD_RANGE, np.int32),
    "bias_mant": (BIAS_MANT_RANGE, np.int16),
    "bias_exp": (BIAS_EXP_RANGE, np.int8),
}


@dataclass(frozen=True, eq=False)
class Neuron(_ArrayEq):
    """Current-based LIF neuron in Loihi fixed point (all integers, ``rz(x) = sign(x) * (|x| >> 12)``).

        d = rz(u * (4096 - current_decay)) + (a << 6);   u = d wrapped once into (-2**23, 2**23]
        v = clip(rz(v * (4096 - voltage_decay)) + u + (bias_mant << bias_exp), -(2**23 - 1), 2**23 - 1)
        s = v > (threshold << 6);  then v = 0 (reset 'zero') or v -= threshold << 6 (reset 'subtract') where s

    ``kind='readout'`` integrates the same way and never spikes. With ``escape_noise`` the deterministic
    threshold test is replaced by the stochastic rule of :class:`EscapeNoise`. Every field of
    :data:`NEURON_ARRAYS` is a scalar or a 1-D integer array of the layer's size (checked by :class:`Layer`).
    """

    kind: str = "lif"
    current_decay: int | np.ndarray = 4096
    voltage_decay: int | np.ndarray = 0
    threshold: int | np.ndarray = 100
    bias_mant: int | np.ndarray = 0
    bias_exp: int | np.ndarray = 0
    reset: str = "zero"
    escape_noise: EscapeNoise | None = None

    def __post_init__(self) -> None:
        if self.kind not in NEURON_KINDS:
            raise IRError(f"unknown kind {self.kind!r} (known: {', '.join(NEURON_KINDS)})", field="kind")
        if self.reset not in RESETS:
            raise IRError(f"unknown reset {self.reset!r} (known: {', '.join(RESETS)})", field="reset")
        for name, (rng, dtype) in NEURON_ARRAYS.items():
            object.__setattr__(self, name, _int_or_array(getattr(self, name), name, *rng, dtype))
        if self.escape_noise is not None:
            if not isinstance(self.escape_noise, EscapeNoise):
                raise IRError("expected an EscapeNoise or null", field="escape_noise")
            if self.kind == "readout":
                raise IRError("a readout never spikes, so it cannot have escape noise", field="escape_noise")

    def array(self, name: str, size: int) -> np.ndarray:
        """Field ``name`` per neuron: int64 of shape (size,) (a scalar broadcast)."""
        return np.broadcast_to(np.asarray(getattr(self, name), dtype=np.int64), (size,)).copy()

    def scalar(self, name: str) -> int | None:
        """Field ``name`` as one int when every neuron has the same value, else None."""
        a = getattr(self, name)
        if not isinstance(a, np.ndarray):
            return int(a)
        return int(a[0]) if a.size and bool((a == a[0]).all()) else None

    @property
    def per_neuron(self) -> list[str]:
        """The fields stored as arrays."""
        return [n for n in NEURON_ARRAYS if isinstance(getattr(self, n), np.ndarray)]

    def effective_bias(self, size: int) -> np.ndarray:
        """``bias_mant << bias_exp`` per neuron, int32 of shape (size,)."""
        # |mant| < 2**12, exp <= 7: the shift fits in 20 bits
        return np.left_shift(self.array("bias_mant", size), self.array("bias_exp", size)).astype(np.int32)


# --------------------------------------------------------------------------------------------- synapses


def _synapse_arrays(syn: Any, ndim: int, what: str) -> None:
    """Check and freeze ``weight`` (int8, ``ndim`` dims), ``release`` (uint8) and ``weight_fixed`` (int8)."""
    w = _array(syn.weight, "weight", np.dtype(np.int8), None)
    if w.ndim != ndim:
        raise IRError(f"expected a {ndim}-D array {what}, got shape {w.shape}", field="weight")
    object.__setattr__(syn, "weight", w)
    object.__setattr__(syn, "weight_exp", _int(syn.weight_exp, "weight_exp", *WEIGHT_EXP_RANGE))
    if syn.release is not None:
        object.__setattr__(syn, "release", _array(syn.release, "release", np.dtype(np.uint8), w.shape))
    if syn.weight_fixed is not None:
        object.__setattr__(syn, "weight_fixed", _array(syn.weight_fixed, "weight_fixed", np.dtype(np.int8), w.shape))


class _Synapse(_ArrayEq):
    weight: np.ndarray
    weight_exp: int
    release: np.ndarray | None
    weight_fixed: np.ndarray | None
    kind: ClassVar[str]

    @property
    def stochastic(self) -> bool:
        """True when some synapse transmits with probability < 1."""
        return self.release is not None and bool((self.release < 255).any())

    def check(self, src: tuple[int, ...], dst: tuple[int, ...], source: str) -> None:  # pragma: no cover
        raise NotImplementedError

    def abs_row_sums(self, src: tuple[int, ...], dst: tuple[int, ...]) -> np.ndarray:  # pragma: no cover
        """Per target neuron an upper bound of sum_j (|weight[i, j]| + |weight_fixed[i, j]|)."""
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class DenseSynapse(_Synapse):
    """All-to-all synapses from the source's neurons (flat index j) to the target's (flat index i).

    For the active source neurons J of the projection's step, the synaptic input of target neuron i is

        a_i = floor( sum_{j in J} (weight_fixed[i, j] + xi_ij * weight[i, j]) * 2**weight_exp )

    with the shift applied to the sum. xi_ij = 1 for a reliable synapse (no ``release`` array); otherwise
    xi_ij ~ Bernoulli((release[i, j] + 1) / 256), drawn from random stream 1. ``weight`` and ``weight_fixed``
    are int8 of shape (target size, source size), ``release`` uint8 of the same shape.
    """

    weight: np.ndarray
    weight_exp: int = 0
    release: np.ndarray | None = None
    weight_fixed: np.ndarray | None = None
    kind: ClassVar[str] = "dense"

    def __post_init__(self) -> None:
        _synapse_arrays(self, 2, "(target size, source size)")

    @property
    def shape(self) -> tuple[int, int]:
        return self.weight.shape  # type: ignore[return-value]

    def check(self, src: tuple[int, ...], dst: tuple[int, ...], source: str) -> None:
        rows, cols = self.shape
        if rows != math.prod(dst):
            raise IRError(f"weight has {rows} rows but the target has size {math.prod(dst)}", field="synapse.weight")
        if cols != math.prod(src):
            raise IRError(f"weight has {cols} columns but the source {source} has size {math.prod(src)}",
                          field="synapse.weight")  # fmt: skip

    def abs_row_sums(self, src: tuple[int, ...], dst: tuple[int, ...]) -> np.ndarray:
        total = np.abs(self.weight.astype(np.int64)).sum(axis=1)
        if self.weight_fixed is not None:
            total = total + np.abs(self.weight_fixed.astype(np.int64)).sum(axis=1)
        return total


def conv_out(n: int, k: int, stride: int, pad: int, dil: int) -> int:
    """Output length of a convolution: ``floor((n + 2 pad - dil (k - 1) - 1) / stride) + 1``."""
    return (n + 2 * pad - dil * (k - 1) - 1) // stride + 1


@dataclass(frozen=True, eq=False)
class Conv2dSynapse(_Synapse):
    """A 2-D convolution (cross-correlation, as ``torch.nn.functional.conv2d``) with shared kernels.

    Source shape [C_in, H, W], target shape [C_out, H_out, W_out], ``weight`` int8 (C_out, C_in / groups, kh,
    kw). Output (co, y, x) and input (ci, y', x') are linked by kernel element (co, ci - g C_in/groups, ky, kx)
    when ci is in co's group g = co // (C_out / groups) and ``y' = y stride_h - pad_h + ky dil_h`` (likewise x);
    zero padding. The projection is the dense projection whose matrix W[i, j] is that kernel element (zero
    outside the receptive field), so :class:`DenseSynapse`'s equation holds with one release probability and
    one reliable part per kernel element.
    """

    weight: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    weight_exp: int = 0
    release: np.ndarray | None = None
    weight_fixed: np.ndarray | None = None
    kind: ClassVar[str] = "conv2d"

    def __post_init__(self) -> None:
        _synapse_arrays(self, 4, "(C_out, C_in / groups, kh, kw)")
        object.__setattr__(self, "stride", _pair(self.stride, "stride", 1))
        object.__setattr__(self, "padding", _pair(self.padding, "padding", 0))
        object.__setattr__(self, "dilation", _pair(self.dilation, "dilation", 1))
        object.__setattr__(self, "groups", _int(self.groups, "groups", 1, 2**16))
        if self.weight.shape[0] % self.groups:
            raise IRError(f"groups {self.groups} does not divide the {self.weight.shape[0]} output channels",
                          field="groups")  # fmt: skip

    @property
    def kernel(self) -> tuple[int, int]:
        return self.weight.shape[2], self.weight.shape[3]

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel, self.stride, self.padding, self.dilation
        return conv_out(h, kh, sh, ph, dh), conv_out(w, kw, sw, pw, dw)

    def check(self, src: tuple[int, ...], dst: tuple[int, ...], source: str) -> None:
        if len(src) != 3:
            raise IRError(f"conv2d needs a [C, H, W] source, but {source} has shape {list(src)}", field="synapse")
        if len(dst) != 3:
            raise IRError(f"conv2d needs a [C, H, W] target, got shape {list(dst)}", field="synapse")
        c_out, c_in_g = self.weight.shape[:2]
        if c_out != dst[0]:
            raise IRError(f"weight has {c_out} output channels but the target has {dst[0]}", field="synapse.weight")
        if c_in_g * self.groups != src[0]:
            raise IRError(f"weight has {c_in_g} input channels per group x {self.groups} groups but {source} has "
                          f"{src[0]} channels", field="synapse.weight")  # fmt: skip
        ho, wo = self.out_hw(src[1], src[2])
        if ho < 1 or wo < 1 or (ho, wo) != (dst[1], dst[2]):
            raise IRError(
                f"a {self.kernel[0]}x{self.kernel[1]} kernel with stride {list(self.stride)}, padding "
                f"{list(self.padding)} and dilation {list(self.dilation)} maps {source}'s {src[1]}x{src[2]} to "
                f"{ho}x{wo}, but the target is {dst[1]}x{dst[2]}", field="synapse")  # fmt: skip

    def abs_row_sums(self, src: tuple[int, ...], dst: tuple[int, ...]) -> np.ndarray:
        # every output of channel co sees at most the whole kernel of co (fewer at the padded borders)
        k = np.abs(self.weight.astype(np.int64)).sum(axis=(1, 2, 3))
        if self.weight_fixed is not None:
            k = k + np.abs(self.weight_fixed.astype(np.int64)).sum(axis=(1, 2, 3))
        return np.repeat(k, dst[1] * dst[2])


#: Synapse kinds by name (the manifest's ``synapse.kind``).
SYNAPSES: dict[str, type] = {"dense": DenseSynapse, "conv2d": Conv2dSynapse}
SYNAPSE_KINDS = tuple(SYNAPSES)
Synapse = DenseSynapse | Conv2dSynapse


# -------------------------------------------------------------------------------------------- the graph


@dataclass(frozen=True, eq=False)
class Layer(_ArrayEq):
    """A group of neurons of one kind: ``shape`` [size] or [C, H, W] (flat index row-major, as torch.flatten)."""

    name: str
    shape: tuple[int, ...]
    neuron: Neuron

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise IRError(
                f"layer name {self.name!r} must be letters, digits, '_' or '-' (not starting with '-')",
                field="name",
            )
        try:
            object.__setattr__(self, "shape", _shape(self.shape, "shape"))
            if not isinstance(self.neuron, Neuron):
                raise IRError("expected a Neuron", field="neuron")
            for name in self.neuron.per_neuron:
                b = getattr(self.neuron, name)
                if b.shape != (self.size,):
                    raise IRError(f"expected shape ({self.size},), got {b.shape}", field=f"neuron.{name}")
        except IRError as e:
            raise e.within(layer=self.name) from None

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True, eq=False)
class Projection(_ArrayEq):
    """Synapses from ``source`` (``"input"`` or a layer name, the target itself included) to layer ``target``.

    At step t the projection delivers ``a_p`` (see the synapse's equation) computed from the source's spikes of
    step ``t - 1 - delay`` (nothing before step 0); the target integrates ``a = sum_p a_p`` over its projections.
    """

    name: str
    source: str
    target: str
    synapse: Synapse
    delay: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _PROJ_RE.match(self.name):
            raise IRError(
                f"projection name {self.name!r} must be letters, digits, '_', '-' or '.' (not starting with '-' "
                "or '.')", field="name")  # fmt: skip
        try:
            for f in ("source", "target"):
                if not isinstance(getattr(self, f), str):
                    raise IRError(f"expected a layer name, got {getattr(self, f)!r}", field=f)
            if self.target == INPUT:
                raise IRError("the input cannot be a target", field="target")
            if not isinstance(self.synapse, tuple(SYNAPSES.values())):
                raise IRError(f"expected one of {', '.join(c.__name__ for c in SYNAPSES.values())}", field="synapse")
            object.__setattr__(self, "delay", _int(self.delay, "delay", *DELAY_RANGE))
        except IRError as e:
            raise e.within(projection=self.name) from None

    @property
    def kind(self) -> str:
        return self.synapse.kind


@dataclass(frozen=True, eq=False)
class Network(_ArrayEq):
    """A graph of layers and projections fed by binary spike channels of ``input_shape``.

    Every layer updates at step t from spikes of earlier steps only, so the order of update does not matter;
    layer l is the l-th of ``layers`` and projection p the p-th of ``projections`` (they key the random
    streams). ``metadata`` is free-form (YAML-serialisable) information: source model, training config, reports.
    """

    name: str
    input_shape: tuple[int, ...]
    layers: tuple[Layer, ...]
    projections: tuple[Projection, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise IRError(f"network name must be a non-empty string, got {self.name!r}", field="name")
        if len(self.name) > 200 or not self.name.isprintable():
            raise IRError(f"network name must be at most 200 printable characters, got {ascii(self.name[:60])}",
                          field="name")  # fmt: skip
        object.__setattr__(self, "input_shape", _shape(self.input_shape, "input.shape"))
        layers = tuple(self.layers) if isinstance(self.layers, Iterable) else self.layers
        if not isinstance(layers, tuple) or not layers:
            raise IRError("a network needs at least one layer", field="layers")
        projs = tuple(self.projections) if isinstance(self.projections, Iterable) else None
        if projs is None:
            raise IRError("expected a list of projections", field="projections")
        shapes: dict[str, tuple[int, ...]] = {INPUT: self.input_shape}
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise IRError(f"layers[{i}] is not a Layer", field="layers")
            if layer.name == INPUT:
                raise IRError("'input' is the name of the network's input", layer=layer.name, field="name")
            if layer.name in shapes:
                raise IRError("duplicate layer name", layer=layer.name, field="name")
            shapes[layer.name] = layer.shape
        seen: set[str] = set()
        for i, p in enumerate(projs):
            if not isinstance(p, Projection):
                raise IRError(f"projections[{i}] is not a Projection", field="projections")
            if p.name in seen:
                raise IRError("duplicate projection name", projection=p.name, field="name")
            seen.add(p.name)
            if p.source not in shapes:
                raise IRError(f"unknown source {p.source!r} (the input or one of: {', '.join(list(shapes)[1:])})",
                              projection=p.name, field="source")  # fmt: skip
            if p.target not in shapes or p.target == INPUT:
                raise IRError(f"unknown target {p.target!r} (layers: {', '.join(list(shapes)[1:])})",
                              projection=p.name, field="target")  # fmt: skip
            src = "the input" if p.source == INPUT else f"layer '{p.source}'"
            try:
                p.synapse.check(shapes[p.source], shapes[p.target], src)
            except IRError as e:
                raise e.within(projection=p.name) from None
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "projections", projs)
        if not isinstance(self.metadata, Mapping):
            raise IRError("metadata must be a mapping", field="metadata")
        object.__setattr__(self, "metadata", dict(self.metadata))

    # -- construction -----------------------------------------------------------------------------------
    @classmethod
    def chain(cls, name: str, input_shape: int | tuple[int, ...], layers: Iterable[tuple[str, Any, Synapse, Neuron]],
              metadata: Mapping[str, Any] | None = None) -> Network:  # fmt: skip
        """A feed-forward chain (IR v1's networks): ``(name, shape, synapse, neuron)`` per layer, projection l
        (named like its layer) from layer l - 1 (the input for l = 0) to layer l, with no extra delay."""
        lays, projs, src = [], [], INPUT
        for lname, shape, syn, neuron in layers:
            lays.append(Layer(name=lname, shape=shape, neuron=neuron))
            projs.append(Projection(name=lname, source=src, target=lname, synapse=syn))
            src = lname
        return cls(name=name, input_shape=input_shape, layers=tuple(lays), projections=tuple(projs),
                   metadata=metadata or {})  # fmt: skip

    def replace(self, **changes: Any) -> Network:
        """A copy with some fields changed (validated again)."""
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        kw.update(changes)
        return Network(**kw)

    # -- queries -------------------------------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        return math.prod(self.input_shape)

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer named {name!r} (layers: {', '.join(self.layer_names)})")

    def layer_index(self, name: str) -> int:
        """The index of layer ``name``; -1 for ``"input"``."""
        return -1 if name == INPUT else self.layer_names.index(name)

    def source_shape(self, p: Projection) -> tuple[int, ...]:
        return self.input_shape if p.source == INPUT else self.layer(p.source).shape

    def projections_into(self, li: int) -> list[tuple[int, Projection]]:
        """(index, projection) of every projection whose target is layer ``li``, in file order."""
        name = self.layers[li].name
        return [(pi, p) for pi, p in enumerate(self.projections) if p.target == name]

    @property
    def max_delay(self) -> int:
        return max((p.delay for p in self.projections), default=0)

    def is_recurrent(self, p: Projection) -> bool:
        """True when ``p`` closes a cycle: its source is its target or is reached from its target."""
        seen, todo = set(), [p.target]
        while todo:
            cur = todo.pop()
            if cur == p.source:
                return True
            if cur in seen:
                continue
            seen.add(cur)
            todo.extend(q.target for q in self.projections if q.source == cur)
        return False

    def chain_synapses(self) -> list[DenseSynapse]:
        """The synapse of each layer when the network is a v1-style chain of dense projections (projection l
        from layer l - 1, or the input, to layer l, no delay, scalar decays and thresholds, reset zero); raises
        :class:`IRError` saying what is not a chain otherwise (for the exporters that only handle chains)."""
        out = []
        if len(self.projections) != len(self.layers):
            raise IRError(f"{len(self.projections)} projections for {len(self.layers)} layers: not a feed-forward "
                          "chain of dense layers", field="projections")  # fmt: skip
        for li, (layer, p) in enumerate(zip(self.layers, self.projections)):
            src = INPUT if li == 0 else self.layers[li - 1].name
            if p.source != src or p.target != layer.name:
                raise IRError(f"goes from {p.source!r} to {p.target!r}, not {src!r} to {layer.name!r}: not a "
                              "feed-forward chain", projection=p.name)  # fmt: skip
            if p.kind != "dense":
                raise IRError(f"{p.kind} synapses are not supported here (dense only)", projection=p.name)
            if p.delay:
                raise IRError("synaptic delays are not supported here", projection=p.name, field="delay")
            n = layer.neuron
            for f in ("current_decay", "voltage_decay", "threshold"):
                if isinstance(getattr(n, f), np.ndarray):
                    raise IRError("per-neuron values are not supported here", layer=layer.name, field=f"neuron.{f}")
            if n.reset != "zero":
                raise IRError("subtractive reset is not supported here", layer=layer.name, field="neuron.reset")
            out.append(p.synapse)
        return out

    def worst_case_input(self, li: int) -> int:
        """An upper bound of |a << 6| of layer ``li`` over all inputs and release draws: per projection
        ``max_i sum_j (|weight[i, j]| + |weight_fixed[i, j]|)`` times 2**weight_exp rounded up (a negative sum
        floors away from zero), summed over the projections, times 64."""
        layer = self.layers[li]
        total = np.zeros(layer.size, np.int64)
        for _, p in self.projections_into(li):
            rows = p.synapse.abs_row_sums(self.source_shape(p), layer.shape)
            e = p.synapse.weight_exp
            total += (rows << e) if e >= 0 else -((-rows) >> -e)  # ceil for negative exponents
        return int(total.max(initial=0)) << 6


# ------------------------------------------------------------------------------------------ file format


def _arrays_and_manifest(net: Network) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    arrays: dict[str, np.ndarray] = {}

    def put(name: str, a: np.ndarray) -> str:
        if name in arrays:  # pragma: no cover - names are unique by construction (suffixes differ)
            raise IRError(f"two arrays would be named {name!r}", field="arrays")
        arrays[name] = a
        return name

    layers = []
    for layer in net.layers:
        neu = layer.neuron
        n: dict[str, Any] = {"kind": neu.kind}
        for f in NEURON_ARRAYS:
            b = getattr(neu, f)
            n[f] = put(f"{layer.name}.{f}", b) if isinstance(b, np.ndarray) else b
        n["reset"] = neu.reset
        esc = neu.escape_noise
        n["escape_noise"] = None if esc is None else {"kind": esc.kind, "scale": esc.scale}
        layers.append({"name": layer.name, "shape": list(layer.shape), "neuron": n})
    projections = []
    for p in net.projections:
        syn = p.synapse
        s: dict[str, Any] = {"kind": syn.kind, "weight": put(f"{p.name}.weight", syn.weight)}
        if isinstance(syn, Conv2dSynapse):
            s.update(stride=list(syn.stride), padding=list(syn.padding), dilation=list(syn.dilation),
                     groups=syn.groups)  # fmt: skip
        s["weight_exp"] = syn.weight_exp
        if syn.release is not None:
            s["release"] = put(f"{p.name}.release", syn.release)
        if syn.weight_fixed is not None:
            s["weight_fixed"] = put(f"{p.name}.fixed", syn.weight_fixed)
        projections.append({"name": p.name, "source": p.source, "target": p.target, "delay": p.delay, "synapse": s})
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "name": net.name,
        "input": {"shape": list(net.input_shape)},
        "layers": layers,
        "projections": projections,
        "metadata": dict(net.metadata),
    }
    return manifest, arrays


def dumps_manifest(net: Network) -> str:
    """The ``manifest.yaml`` text of ``net``."""
    manifest, _ = _arrays_and_manifest(net)
    try:
        return yaml.safe_dump(manifest, sort_keys=False, default_flow_style=None)
    except yaml.YAMLError as e:
        raise IRError(f"metadata is not YAML-serialisable: {e}", field="metadata") from None


def mantissa_bits(a: np.ndarray | None) -> int:
    """Bits a signed two's-complement mantissa needs for the (integer) values of ``a``, sign included; 0 for
    none."""
    if a is None or a.size == 0:
        return 0
    lo, hi = int(a.min()), int(a.max())
    return max(max(hi, 0).bit_length(), max(-lo - 1, 0).bit_length()) + 1


MAX_YAML_BYTES = 16 * 2**20  # configuration, sweep and device files


def read_yaml(path: str | os.PathLike[str], error: type[Exception]) -> Any:
    """The parsed YAML file ``path`` (``yaml.safe_load``); a missing file or bad YAML raises ``error`` with
    one line naming the file."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{p}: no such file")
    if p.stat().st_size > MAX_YAML_BYTES:
        raise error(f"{p}: {p.stat().st_size:,} bytes is too large for a configuration (at most {MAX_YAML_BYTES:,})")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{p}: not UTF-8 text (byte {e.start})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise error(f"{p}: not valid YAML: {str(e).splitlines()[0]}") from None
    except RecursionError:
        raise error(f"{p}: not valid YAML: nested too deeply") from None
    except ValueError as e:  # e.g. an integer of more than 4,300 digits
        raise error(f"{p}: not valid YAML: {str(e).splitlines()[0][:120]}") from None


def atomic_write_path(path: str | os.PathLike[str], write: Any, *, suffix: str = ".tmp") -> Path:
    """Call ``write(tmp_path)`` for a temporary file beside ``path`` (for writers that need a file name, such as
    h5py), then sync it and move it into place atomically.

    A failure leaves any existing ``path`` untouched and no temporary file behind.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory (give a file name)", str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as e:  # name the user's path, not the temporary file's
        raise type(e)(e.errno, f"cannot write here ({e.strerror})", str(path)) from None
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the mode a plain open() would
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.filename == tmp:  # name the user's path, not the temporary file's
            raise type(e)(e.errno, e.strerror, str(path)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _remove_stale_temporaries(path, suffix)
    return path


STALE_TMP_SECONDS = 3600.0  # a temporary file of a write this old was left by a killed process


def _remove_stale_temporaries(path: Path, suffix: str) -> None:
    """Delete ``.NAME.*SUFFIX`` files beside ``path`` older than :data:`STALE_TMP_SECONDS`: what a write killed
    before its rename left behind (a live write renames its file within seconds)."""
    import glob
    import time

    now = time.time()
    try:
        for old in path.parent.glob(f".{glob.escape(path.name)}.*{suffix}"):
            try:
                if old.is_file() and not old.is_symlink() and now - old.stat().st_mtime > STALE_TMP_SECONDS:
                    old.unlink()
            except OSError:
                continue
    except OSError:
        pass


def atomic_write(path: str | os.PathLike[str], write: Any, *, suffix: str = ".tmp") -> Path:
    """Call ``write(fileobj)`` on a temporary file beside ``path`` and move it into place atomically
    (:func:`atomic_write_path` with a binary file object)."""

    def by_name(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            write(f)

    return atomic_write_path(path, by_name, suffix=suffix)


def save(net: Network, path: str | os.PathLike[str]) -> Path:
    """Write ``net`` to a ``.qnet`` file (version 2) atomically; returns the path."""
    if not isinstance(net, Network):
        raise TypeError(f"save() expects a Network, got {type(net).__name__}")
    text = dumps_manifest(net)
    _, arrays = _arrays_and_manifest(net)

    def write(f: Any) -> None:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(MANIFEST, text)
            for name, arr in arrays.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
                zf.writestr(f"{name}.npy", buf.getvalue())

    return atomic_write(path, write)


def _keys(d: Any, name: str, required: set[str], optional: set[str], **where: str | None) -> None:
    if not isinstance(d, dict):
        raise IRError(f"expected a mapping, got {type(d).__name__}", field=name, **where)
    missing = sorted(required - d.keys())
    if missing:
        raise IRError(f"missing key(s): {', '.join(missing)}", field=name, **where)
    extra = sorted(set(map(str, d.keys())) - required - optional)
    if extra:
        raise IRError(f"unknown key(s): {', '.join(extra)}", field=name, **where)


class _Arrays:
    """The archive's arrays by name, remembering which ones the manifest used."""

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.arrays = arrays
        self.used: set[str] = set()

    def get(self, ref: Any, fname: str) -> np.ndarray:
        if not isinstance(ref, str):
            raise IRError(f"expected an array name, got {ref!r}", field=fname)
        if ref not in self.arrays:
            raise IRError(f"missing array {ref!r} ({ref}.npy is not in the file)", field=fname)
        self.used.add(ref)
        return self.arrays[ref]

    def check_all_used(self) -> None:
        extra = sorted(set(self.arrays) - self.used)
        if extra:
            raise IRError(f"extra array(s) not referenced by the manifest: {', '.join(extra)}", field="arrays")


def _neuron(nd: Any, arrays: _Arrays) -> Neuron:
    _keys(nd, "neuron", {"kind"}, {*NEURON_ARRAYS, "reset", "escape_noise"})
    try:
        esc = nd.get("escape_noise")
        if esc is not None:
            _keys(esc, "escape_noise", {"kind", "scale"}, set())
            esc = EscapeNoise(kind=esc["kind"], scale=esc["scale"])
        kw = {k: arrays.get(nd[k], k) if isinstance(nd[k], str) else nd[k] for k in NEURON_ARRAYS if k in nd}
        return Neuron(kind=nd["kind"], reset=nd.get("reset", "zero"), escape_noise=esc, **kw)
    except IRError as e:
        raise e.within(prefix="neuron") from None


def _synapse(sd: Any, arrays: _Arrays) -> Synapse:
    if not isinstance(sd, dict) or not isinstance(sd.get("kind"), str) or sd["kind"] not in SYNAPSES:
        kind = sd.get("kind") if isinstance(sd, dict) else sd
        raise IRError(f"unknown kind {kind!r} (known: {', '.join(SYNAPSE_KINDS)})", field="synapse.kind")
    geometry = {"stride", "padding", "dilation", "groups"} if sd["kind"] == "conv2d" else set()
    _keys(sd, "synapse", {"kind", "weight"}, {"weight_exp", "release", "weight_fixed", *geometry})
    try:
        kw = {k: sd[k] for k in geometry if k in sd}
        for opt in ("release", "weight_fixed"):
            if sd.get(opt) is not None:
                kw[opt] = arrays.get(sd[opt], opt)
        return SYNAPSES[sd["kind"]](weight=arrays.get(sd["weight"], "weight"), weight_exp=sd.get("weight_exp", 0),
                                    **kw)  # fmt: skip
    except IRError as e:
        raise e.within(prefix="synapse") from None


def _where(d: Any, i: int) -> str:
    name = d.get("name") if isinstance(d, dict) else None
    return name if isinstance(name, str) else f"#{i}"


def _check_version(manifest: Any) -> int:
    if not isinstance(manifest, dict):
        raise IRError("manifest.yaml must be a mapping")
    fmt = manifest.get("format")
    if fmt != FORMAT:
        raise IRError(f"unknown format {fmt!r} (expected {FORMAT!r})", field="format")
    version = manifest.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise IRError(f"unknown version {version!r} (this quantal reads versions 1 and {VERSION})", field="version")
    if version > VERSION:
        raise IRError(
            f"version {version} is newer than this quantal supports (version {VERSION}); upgrade quantal",
            field="version",
        )
    return version


def _from_v1(manifest: dict, arrays: _Arrays) -> Network:
    """A version 1 manifest (a chain: ``layers`` with one dense ``synapse`` each) as the equivalent graph:
    projection l, named like layer l, from layer l - 1 (the input for l = 0) to layer l."""
    _keys(manifest, "manifest", {"format", "version", "name", "input", "layers"}, {"metadata"})
    _keys(manifest["input"], "input", {"size"}, set())
    if not isinstance(manifest["layers"], list):
        raise IRError("expected a list of layers", field="layers")
    if not manifest["layers"]:
        raise IRError("a network needs at least one layer", field="layers")
    chain = []
    for i, ld in enumerate(manifest["layers"]):
        lname = _where(ld, i)
        try:
            _keys(ld, "layer", {"name", "size", "synapse", "neuron"}, set())
            sd = ld["synapse"]
            if isinstance(sd, dict) and sd.get("kind") != "dense":
                raise IRError(f"unknown kind {sd.get('kind')!r} (known: dense)", field="synapse.kind")
            nd = ld["neuron"]
            if isinstance(nd, dict) and "reset" in nd:
                raise IRError("unknown key(s): reset", field="neuron")
            chain.append((ld["name"], ld["size"], _synapse(sd, arrays), _neuron(nd, arrays)))
        except IRError as e:
            raise e.within(layer=lname) from None
    metadata = manifest.get("metadata")
    try:
        return Network.chain(manifest["name"], manifest["input"]["size"], chain, {} if metadata is None else metadata)
    except IRError as e:  # a projection is named like its layer: report the layer, as v1 files name them
        if e.projection is not None:
            raise IRError(e.detail, layer=e.projection, field=e.field) from None
        raise


def from_manifest(manifest: Any, arrays: Mapping[str, np.ndarray]) -> Network:
    """Build a :class:`Network` from a parsed manifest (version 1 or 2) and its arrays (by name), checking
    every rule."""
    version = _check_version(manifest)
    store = _Arrays(arrays)
    if version == 1:
        net = _from_v1(manifest, store)
        store.check_all_used()
        return net
    _keys(manifest, "manifest", {"format", "version", "name", "input", "layers", "projections"}, {"metadata"})
    _keys(manifest["input"], "input", {"shape"}, set())
    for key in ("layers", "projections"):
        if not isinstance(manifest[key], list):
            raise IRError(f"expected a list of {key}", field=key)
    if not manifest["layers"]:
        raise IRError("a network needs at least one layer", field="layers")
    layers = []
    for i, ld in enumerate(manifest["layers"]):
        lname = _where(ld, i)
        try:
            _keys(ld, "layer", {"name", "shape", "neuron"}, set())
            layers.append(Layer(name=ld["name"], shape=ld["shape"], neuron=_neuron(ld["neuron"], store)))
        except IRError as e:
            raise e.within(layer=lname) from None
    projections = []
    for i, pd in enumerate(manifest["projections"]):
        pname = _where(pd, i)
        try:
            _keys(pd, "projection", {"name", "source", "target", "synapse"}, {"delay"})
            projections.append(Projection(name=pd["name"], source=pd["source"], target=pd["target"],
                                          synapse=_synapse(pd["synapse"], store), delay=pd.get("delay", 0)))
        except IRError as e:
            raise e.within(projection=pname) from None
    store.check_all_used()
    metadata = manifest.get("metadata")
    return Network(
        name=manifest["name"],
        input_shape=manifest["input"]["shape"],
        layers=tuple(layers),
        projections=tuple(projections),
        metadata={} if metadata is None else metadata,
    )


#: Limits of :func:`load`, checked on the archive's directory before any member is read.
MAX_MEMBERS = 4096
MAX_MANIFEST_BYTES = 16 * 2**20
MAX_ARRAY_BYTES = 2**31  # one array, uncompressed
MAX_TOTAL_BYTES = 2**32  # all members, uncompressed
_MEMBER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-.]*\.npy$")


def describe_exception(e: BaseException, default: str = "no message") -> str:
    """``Type: first line of the message`` (shortened) for a one-line error; ``default`` when it has none."""
    text = str(e).strip().splitlines()[0][:120] if str(e).strip() else default
    return f"{type(e).__name__}: {text}"


def read_npy_header(f: Any) -> tuple[tuple[int, ...], np.dtype, int]:
    """The shape, dtype and data size in bytes that a ``.npy`` stream's header declares, without reading the
    data. numpy's parser raises (ValueError, SyntaxError, ...) on a malformed header."""
    fmt = np.lib.format
    major, _ = fmt.read_magic(f)
    read = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
    shape, _, dtype = read(f, max_header_size=10000)
    return shape, dtype, int(np.prod(shape, dtype=object)) * dtype.itemsize


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A member's bytes; any failure of the archive (corrupt data, an unknown compression method, encryption)
    is an :class:`IRError` naming the member."""
    if info.flag_bits & 0x1:
        raise IRError(f"member {info.filename!r} is encrypted", field="arrays")
    try:
        return zf.read(info)
    except Exception as e:  # noqa: BLE001 - zlib.error, NotImplementedError, RuntimeError, BadZipFile, EOFError ...
        raise IRError(f"member {info.filename!r} cannot be read ({describe_exception(e, 'corrupt')})",
                      field="arrays") from None


def _npy(data: bytes, member: str) -> np.ndarray:
    """An array from ``.npy`` bytes, its header checked (no objects, the size the bytes hold) first."""
    try:
        shape, dtype, nbytes = read_npy_header(io.BytesIO(data))
        if dtype.hasobject:
            raise ValueError("object arrays are not allowed")
        if nbytes > len(data):
            raise ValueError(f"the header declares {list(shape)} of {dtype}, more than the member holds")
        return np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - numpy's parser fails in many ways on hostile bytes
        raise IRError(f"array {member!r} cannot be read ({describe_exception(e, 'malformed')})",
                      field="arrays") from None


def load(path: str | os.PathLike[str]) -> Network:
    """Read and validate a ``.qnet`` file (version 1 or 2). Raises :class:`IRError` for anything malformed.

    The archive's directory is checked before any member is read: at most :data:`MAX_MEMBERS` members, no
    duplicates, directories or paths (only ``manifest.yaml`` and ``NAME.npy``), uncompressed sizes within
    :data:`MAX_MANIFEST_BYTES`, :data:`MAX_ARRAY_BYTES` and :data:`MAX_TOTAL_BYTES`."""
    path = Path(path)
    if not path.is_file():
        raise IRError(f"{path}: no such file")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise IRError(f"{path}: {len(infos)} members in the archive (at most {MAX_MEMBERS})")
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):
                dup = next(n for n in names if names.count(n) > 1)
                raise IRError(f"{path}: member {dup!r} appears twice in the archive")
            for info in infos:
                if info.filename != MANIFEST and not _MEMBER_RE.match(info.filename):
                    raise IRError(f"unexpected member {ascii(info.filename)[1:-1]!r} in the archive (only {MANIFEST} "
                                  "and NAME.npy)", field="arrays")  # fmt: skip
                limit = MAX_MANIFEST_BYTES if info.filename == MANIFEST else MAX_ARRAY_BYTES
                if info.file_size > limit:
                    raise IRError(f"{path}: member {info.filename!r} would take {info.file_size:,} bytes (at most "
                                  f"{limit:,})")  # fmt: skip
            if sum(i.file_size for i in infos) > MAX_TOTAL_BYTES:
                raise IRError(f"{path}: the archive would take more than {MAX_TOTAL_BYTES:,} bytes uncompressed")
            if MANIFEST not in names:
                raise IRError(f"{path}: not a .qnet file (no {MANIFEST} in the archive)")
            text = _read_member(zf, zf.getinfo(MANIFEST))
            try:
                manifest = yaml.safe_load(text.decode("utf-8"))
            except (yaml.YAMLError, UnicodeDecodeError, RecursionError, ValueError) as e:
                msg = str(e).replace("\n", " ")[:200] or type(e).__name__
                raise IRError(f"{path}: {MANIFEST} is not valid YAML: {msg}") from None
            arrays: dict[str, np.ndarray] = {}
            for info in infos:
                if info.filename != MANIFEST:
                    arrays[info.filename[: -len(".npy")]] = _npy(_read_member(zf, info), info.filename)
    except IRError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError):
        raise IRError(f"{path}: not a .qnet file (not a ZIP archive, or a damaged one)") from None
    except OSError as e:
        raise IRError(f"{path}: cannot be read ({e.strerror or e})") from None
    except Exception as e:  # noqa: BLE001 - zipfile's directory parser: NotImplementedError, ValueError, ...
        raise IRError(f"{path}: not a readable .qnet archive ({describe_exception(e, 'damaged')})") from None
    try:
        return from_manifest(manifest, arrays)
    except RecursionError:
        raise IRError(f"{path}: the manifest is nested too deeply") from None
