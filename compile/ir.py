"""IR v1: the ``.qnet`` network description shared by the trainer, the simulator and the exporters.

A ``.qnet`` file is a ZIP archive holding ``manifest.yaml`` and one ``<name>.npy`` per array. Loading never
unpickles (``allow_pickle=False``) and parses YAML with ``yaml.safe_load``; saving is atomic (a temporary file
in the same folder, then ``os.replace``). Every rule of the format is checked when an object is built, and a
violation raises :class:`IRError` naming the layer and the field. See docs/ir.md for the full semantics.

This module needs only numpy and pyyaml and runs on Python 3.10 with numpy 1.24+.
"""

from __future__ import annotations

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
VERSION = 1
MANIFEST = "manifest.yaml"

WEIGHT_EXP_RANGE = (-8, 7)
DECAY_RANGE = (0, 4096)
THRESHOLD_RANGE = (0, 131071)
BIAS_MANT_RANGE = (-4096, 4095)
BIAS_EXP_RANGE = (0, 7)
NEURON_KINDS = ("lif", "readout")
SYNAPSE_KINDS = ("dense",)
ESCAPE_KINDS = ("logistic",)
MAX_ESCAPE_SCALE = float(2**31)  # v spans +-2**23: larger scales are a fair coin; keeps thresholds < 2**36

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")


class IRError(ValueError):
    """A ``.qnet`` file or IR object breaks a rule of the format.

    ``layer`` and ``field`` say where (either may be None for network-level problems); ``str(err)`` is a
    one-line message such as ``layer 'fc1': synapse.weight: expected dtype int8, got float32``.
    """

    def __init__(self, message: str, *, layer: str | None = None, field: str | None = None) -> None:
        self.layer = layer
        self.field = field
        self.detail = message
        where = []
        if layer is not None:
            where.append(f"layer '{layer}'")
        if field is not None:
            where.append(field)
        super().__init__(": ".join([*where, message]))

    def within(self, *, layer: str | None = None, prefix: str | None = None) -> IRError:
        """The same error, placed inside ``layer`` and/or under the field ``prefix``."""
        f = self.field if prefix is None else (prefix if self.field is None else f"{prefix}.{self.field}")
        return IRError(self.detail, layer=self.layer if layer is None else layer, field=f)


# ----------------------------------------------------------------------------------------------- checks


def _int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
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


# ------------------------------------------------------------------------------------------------ types


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


@dataclass(frozen=True, eq=False)
class DenseSynapse(_ArrayEq):
    """All-to-all synapses from the layer's input to its neurons.

    For the input spikes of step t-1 (the set of active inputs J), the synaptic input of neuron i is

        a_i = floor( sum_{j in J} (weight_fixed[i, j] + xi_ij * weight[i, j]) * 2**weight_exp )

    with the shift applied to the sum. xi_ij = 1 for a reliable synapse (no ``release`` array); otherwise
    xi_ij ~ Bernoulli((release[i, j] + 1) / 256), drawn from random stream 1. ``weight`` and ``weight_fixed``
    are int8 of shape (size, n_in), ``release`` uint8 of the same shape, ``weight_exp`` in [-8, 7].
    """

    weight: np.ndarray
    weight_exp: int = 0
    release: np.ndarray | None = None
    weight_fixed: np.ndarray | None = None
    kind: ClassVar[str] = "dense"

    def __post_init__(self) -> None:
        w = _array(self.weight, "weight", np.dtype(np.int8), None)
        if w.ndim != 2:
            raise IRError(f"expected a 2-D array (size, n_in), got shape {w.shape}", field="weight")
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "weight_exp", _int(self.weight_exp, "weight_exp", *WEIGHT_EXP_RANGE))
        if self.release is not None:
            object.__setattr__(self, "release", _array(self.release, "release", np.dtype(np.uint8), w.shape))
        if self.weight_fixed is not None:
            wf = _array(self.weight_fixed, "weight_fixed", np.dtype(np.int8), w.shape)
            object.__setattr__(self, "weight_fixed", wf)

    @property
    def shape(self) -> tuple[int, int]:
        return self.weight.shape  # type: ignore[return-value]

    @property
    def stochastic(self) -> bool:
        """True when some synapse transmits with probability < 1."""
        return self.release is not None and bool((self.release < 255).any())


@dataclass(frozen=True, eq=False)
class Neuron(_ArrayEq):
    """Current-based LIF neuron in Loihi fixed point (all integers, ``rz(x) = sign(x) * (|x| >> 12)``).

        d = rz(u * (4096 - current_decay)) + (a << 6);   u = d wrapped once into (-2**23, 2**23]
        v = clip(rz(v * (4096 - voltage_decay)) + u + (bias_mant << bias_exp), -(2**23 - 1), 2**23 - 1)
        s = v > (threshold << 6);  v = 0 where s

    ``kind='readout'`` integrates the same way and never spikes. With ``escape_noise`` the deterministic
    threshold test is replaced by the stochastic rule of :class:`EscapeNoise`. ``bias_mant`` and ``bias_exp``
    are scalars or 1-D integer arrays of the layer's size.
    """

    kind: str = "lif"
    current_decay: int = 4096
    voltage_decay: int = 0
    threshold: int = 100
    bias_mant: int | np.ndarray = 0
    bias_exp: int | np.ndarray = 0
    escape_noise: EscapeNoise | None = None

    def __post_init__(self) -> None:
        if self.kind not in NEURON_KINDS:
            raise IRError(f"unknown kind {self.kind!r} (known: {', '.join(NEURON_KINDS)})", field="kind")
        for name, rng in (
            ("current_decay", DECAY_RANGE),
            ("voltage_decay", DECAY_RANGE),
            ("threshold", THRESHOLD_RANGE),
        ):
            object.__setattr__(self, name, _int(getattr(self, name), name, *rng))
        object.__setattr__(
            self, "bias_mant", _int_or_array(self.bias_mant, "bias_mant", *BIAS_MANT_RANGE, np.int16)
        )
        object.__setattr__(self, "bias_exp", _int_or_array(self.bias_exp, "bias_exp", *BIAS_EXP_RANGE, np.int8))
        if self.escape_noise is not None:
            if not isinstance(self.escape_noise, EscapeNoise):
                raise IRError("expected an EscapeNoise or null", field="escape_noise")
            if self.kind == "readout":
                raise IRError("a readout never spikes, so it cannot have escape noise", field="escape_noise")

    def effective_bias(self, size: int) -> np.ndarray:
        """``bias_mant << bias_exp`` per neuron, int32 of shape (size,)."""
        mant = np.broadcast_to(np.asarray(self.bias_mant, dtype=np.int32), (size,))
        exp = np.broadcast_to(np.asarray(self.bias_exp, dtype=np.int32), (size,))
        return np.left_shift(mant, exp).astype(np.int32)  # |mant| < 2**12, exp <= 7: fits in 20 bits


@dataclass(frozen=True, eq=False)
class Layer(_ArrayEq):
    """One layer of the feed-forward chain: ``size`` neurons fed by ``synapse`` from the previous layer."""

    name: str
    size: int
    synapse: DenseSynapse
    neuron: Neuron

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise IRError(
                f"layer name {self.name!r} must be letters, digits, '_' or '-' (not starting with '-')",
                field="name",
            )
        try:
            object.__setattr__(self, "size", _int(self.size, "size", 1, 2**24))
            if not isinstance(self.synapse, DenseSynapse):
                raise IRError("expected a DenseSynapse", field="synapse")
            if not isinstance(self.neuron, Neuron):
                raise IRError("expected a Neuron", field="neuron")
            if self.synapse.shape[0] != self.size:
                raise IRError(
                    f"weight has {self.synapse.shape[0]} rows but the layer has size {self.size}",
                    field="synapse.weight",
                )
            for name in ("bias_mant", "bias_exp"):
                b = getattr(self.neuron, name)
                if isinstance(b, np.ndarray) and b.shape != (self.size,):
                    raise IRError(f"expected shape ({self.size},), got {b.shape}", field=f"neuron.{name}")
        except IRError as e:
            raise e.within(layer=self.name) from None

    @property
    def n_in(self) -> int:
        return self.synapse.shape[1]

    def worst_case_input(self) -> int:
        """An upper bound of |a << 6| over all inputs and release draws:
        ``max_i sum_j (|weight[i, j]| + |weight_fixed[i, j]|)``, times 2**weight_exp rounded up (a negative sum
        floors away from zero), times 64."""
        syn = self.synapse
        total = np.abs(syn.weight.astype(np.int64)).sum(axis=1)
        if syn.weight_fixed is not None:
            total = total + np.abs(syn.weight_fixed.astype(np.int64)).sum(axis=1)
        worst = int(total.max(initial=0))
        worst = worst << syn.weight_exp if syn.weight_exp >= 0 else -((-worst) >> -syn.weight_exp)  # ceil
        return worst << 6


@dataclass(frozen=True, eq=False)
class Network(_ArrayEq):
    """A feed-forward chain of layers fed by ``input_size`` binary spike channels.

    Layer 0 integrates the run's input spikes of step t-1; layer k integrates layer k-1's spikes of step
    t-1. ``metadata`` is free-form (YAML-serialisable) information: source model, training config, reports.
    """

    name: str
    input_size: int
    layers: tuple[Layer, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise IRError(f"network name must be a non-empty string, got {self.name!r}", field="name")
        object.__setattr__(self, "input_size", _int(self.input_size, "input.size", 1, 2**24))
        layers = tuple(self.layers) if isinstance(self.layers, Iterable) else self.layers
        if not isinstance(layers, tuple) or not layers:
            raise IRError("a network needs at least one layer", field="layers")
        seen: set[str] = set()
        n_in = self.input_size
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise IRError(f"layers[{i}] is not a Layer", field="layers")
            if layer.name in seen:
                raise IRError("duplicate layer name", layer=layer.name, field="name")
            seen.add(layer.name)
            if layer.n_in != n_in:
                src = "the input" if i == 0 else f"layer '{layers[i - 1].name}'"
                raise IRError(
                    f"weight has {layer.n_in} columns but {src} has size {n_in}",
                    layer=layer.name,
                    field="synapse.weight",
                )
            n_in = layer.size
        object.__setattr__(self, "layers", layers)
        if not isinstance(self.metadata, Mapping):
            raise IRError("metadata must be a mapping", field="metadata")
        object.__setattr__(self, "metadata", dict(self.metadata))

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer named {name!r} (layers: {', '.join(self.layer_names)})")

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]


# ------------------------------------------------------------------------------------------ file format


def _arrays_and_manifest(net: Network) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for layer in net.layers:
        syn, neu = layer.synapse, layer.neuron
        s: dict[str, Any] = {"kind": syn.kind, "weight": f"{layer.name}.weight", "weight_exp": syn.weight_exp}
        arrays[f"{layer.name}.weight"] = syn.weight
        for opt in ("release", "weight_fixed"):
            a = getattr(syn, opt)
            if a is not None:
                s[opt] = f"{layer.name}.{opt}"
                arrays[s[opt]] = a
        n: dict[str, Any] = {
            "kind": neu.kind,
            "current_decay": neu.current_decay,
            "voltage_decay": neu.voltage_decay,
            "threshold": neu.threshold,
        }
        for opt in ("bias_mant", "bias_exp"):
            b = getattr(neu, opt)
            if isinstance(b, np.ndarray):
                n[opt] = f"{layer.name}.{opt}"
                arrays[n[opt]] = b
            else:
                n[opt] = b
        esc = neu.escape_noise
        n["escape_noise"] = None if esc is None else {"kind": esc.kind, "scale": esc.scale}
        layers.append({"name": layer.name, "size": layer.size, "synapse": s, "neuron": n})
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "name": net.name,
        "input": {"size": net.input_size},
        "layers": layers,
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


def read_yaml(path: str | os.PathLike[str], error: type[Exception]) -> Any:
    """The parsed YAML file ``path`` (``yaml.safe_load``); a missing file or bad YAML raises ``error`` with
    one line naming the file."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{p}: no such file")
    try:
        return yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise error(f"{p}: not valid YAML: {str(e).splitlines()[0]}") from None


def atomic_write_path(path: str | os.PathLike[str], write: Any, *, suffix: str = ".tmp") -> Path:
    """Call ``write(tmp_path)`` for a temporary file beside ``path`` (for writers that need a file name, such as
    h5py), then sync it and move it into place atomically.

    A failure leaves any existing ``path`` untouched and no temporary file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the mode a plain open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write(path: str | os.PathLike[str], write: Any, *, suffix: str = ".tmp") -> Path:
    """Call ``write(fileobj)`` on a temporary file beside ``path`` and move it into place atomically
    (:func:`atomic_write_path` with a binary file object)."""

    def by_name(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            write(f)

    return atomic_write_path(path, by_name, suffix=suffix)


def save(net: Network, path: str | os.PathLike[str]) -> Path:
    """Write ``net`` to a ``.qnet`` file atomically; returns the path."""
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


def _keys(d: Any, name: str, required: set[str], optional: set[str], *, layer: str | None = None) -> None:
    if not isinstance(d, dict):
        raise IRError(f"expected a mapping, got {type(d).__name__}", layer=layer, field=name)
    missing = sorted(required - d.keys())
    if missing:
        raise IRError(f"missing key(s): {', '.join(missing)}", layer=layer, field=name)
    extra = sorted(set(map(str, d.keys())) - required - optional)
    if extra:
        raise IRError(f"unknown key(s): {', '.join(extra)}", layer=layer, field=name)


def from_manifest(manifest: Any, arrays: Mapping[str, np.ndarray]) -> Network:
    """Build a :class:`Network` from a parsed manifest and its arrays (by name), checking every rule."""
    if not isinstance(manifest, dict):
        raise IRError("manifest.yaml must be a mapping")
    fmt = manifest.get("format")
    if fmt != FORMAT:
        raise IRError(f"unknown format {fmt!r} (expected {FORMAT!r})", field="format")
    version = manifest.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise IRError(f"unknown version {version!r} (this quantal reads version {VERSION})", field="version")
    if version > VERSION:
        raise IRError(
            f"version {version} is newer than this quantal supports (version {VERSION}); upgrade quantal",
            field="version",
        )
    if version != VERSION:
        raise IRError(f"unknown version {version!r} (this quantal reads version {VERSION})", field="version")
    _keys(manifest, "manifest", {"format", "version", "name", "input", "layers"}, {"metadata"})
    _keys(manifest["input"], "input", {"size"}, set())
    if not isinstance(manifest["layers"], list):
        raise IRError("expected a list of layers", field="layers")
    if not manifest["layers"]:
        raise IRError("a network needs at least one layer", field="layers")
    used: set[str] = set()

    def get_array(ref: Any, lname: str, fname: str) -> np.ndarray:
        if not isinstance(ref, str):
            raise IRError(f"expected an array name, got {ref!r}", layer=lname, field=fname)
        if ref not in arrays:
            raise IRError(f"missing array {ref!r} ({ref}.npy is not in the file)", layer=lname, field=fname)
        used.add(ref)
        return arrays[ref]

    layers = []
    for i, ld in enumerate(manifest["layers"]):
        lname = ld.get("name") if isinstance(ld, dict) else None
        lname = lname if isinstance(lname, str) else f"#{i}"
        _keys(ld, "layer", {"name", "size", "synapse", "neuron"}, set(), layer=lname)
        sd, nd = ld["synapse"], ld["neuron"]
        _keys(sd, "synapse", {"kind", "weight"}, {"weight_exp", "release", "weight_fixed"}, layer=lname)
        _keys(
            nd,
            "neuron",
            {"kind"},
            {"current_decay", "voltage_decay", "threshold", "bias_mant", "bias_exp", "escape_noise"},
            layer=lname,
        )
        if sd["kind"] not in SYNAPSE_KINDS:
            raise IRError(
                f"unknown kind {sd['kind']!r} (known: {', '.join(SYNAPSE_KINDS)})", layer=lname, field="synapse.kind"
            )
        try:
            try:
                syn = DenseSynapse(
                    weight=get_array(sd["weight"], lname, "synapse.weight"),
                    weight_exp=sd.get("weight_exp", 0),
                    release=None if sd.get("release") is None else get_array(sd["release"], lname, "synapse.release"),
                    weight_fixed=None
                    if sd.get("weight_fixed") is None
                    else get_array(sd["weight_fixed"], lname, "synapse.weight_fixed"),
                )
            except IRError as e:
                raise e.within(prefix="synapse") if e.layer is None else e from None
            try:
                esc = nd.get("escape_noise")
                if esc is not None:
                    _keys(esc, "escape_noise", {"kind", "scale"}, set())
                    esc = EscapeNoise(kind=esc["kind"], scale=esc["scale"])
                kw = {k: nd[k] for k in ("current_decay", "voltage_decay", "threshold") if k in nd}
                for b in ("bias_mant", "bias_exp"):
                    if b in nd:
                        kw[b] = get_array(nd[b], lname, f"neuron.{b}") if isinstance(nd[b], str) else nd[b]
                neu = Neuron(kind=nd["kind"], escape_noise=esc, **kw)
            except IRError as e:
                raise e.within(prefix="neuron") if e.layer is None else e from None
            layers.append(Layer(name=ld["name"], size=ld["size"], synapse=syn, neuron=neu))
        except IRError as e:
            raise e.within(layer=lname) if e.layer is None else e from None
    extra = sorted(set(arrays) - used)
    if extra:
        raise IRError(f"extra array(s) not referenced by any layer: {', '.join(extra)}", field="arrays")
    metadata = manifest.get("metadata")
    return Network(
        name=manifest["name"],
        input_size=manifest["input"]["size"],
        layers=tuple(layers),
        metadata={} if metadata is None else metadata,
    )


def load(path: str | os.PathLike[str]) -> Network:
    """Read and validate a ``.qnet`` file. Raises :class:`IRError` for anything malformed."""
    path = Path(path)
    if not path.is_file():
        raise IRError(f"{path}: no such file")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if MANIFEST not in names:
                raise IRError(f"{path}: not a .qnet file (no {MANIFEST} in the archive)")
            try:
                manifest = yaml.safe_load(zf.read(MANIFEST).decode("utf-8"))
            except (yaml.YAMLError, UnicodeDecodeError) as e:
                msg = str(e).replace("\n", " ")
                raise IRError(f"{path}: {MANIFEST} is not valid YAML: {msg}") from None
            arrays: dict[str, np.ndarray] = {}
            for member in names:
                if member == MANIFEST or member.endswith("/"):
                    continue
                if not member.endswith(".npy"):
                    raise IRError(f"unexpected file {member!r} in the archive", field="arrays")
                try:
                    arrays[member[: -len(".npy")]] = np.load(io.BytesIO(zf.read(member)), allow_pickle=False)
                except (ValueError, OSError) as e:
                    raise IRError(f"array {member!r} cannot be read: {e}", field="arrays") from None
    except zipfile.BadZipFile:
        raise IRError(f"{path}: not a .qnet file (not a ZIP archive)") from None
    return from_manifest(manifest, arrays)
