"""Device models: what memristor-like synapses make of programmed integer weights (docs/devices.md).

Numpy and pyyaml only: the realisations computed here are the single source of truth that every executor
(and the hardware-aware trainer) consumes.

Mapping. A weight mantissa m in [-128, 127] is a differential pair of devices with target conductances
``G+ = max(m, 0) / 128 * g_max`` and ``G- = max(-m, 0) / 128 * g_max``; the effective weight, in mantissa units,
is ``128 (G+ - G-) / g_max`` (times the drift-compensation factor). ``weight_fixed`` is mapped the same way on
its own devices; release codes are untouched.

Static effects (drawn once per (seed, trial, layer), in this order): finite conductance levels (the target is
rounded to one of ``levels`` equally spaced values in [0, g_max]), stuck-at faults (a device is stuck at g_max
with probability ``p_stuck_on`` or at 0 with ``p_stuck_off``), programming noise (Gaussian, sigma a function
of the normalised target), device-to-device variation (a multiplicative gain 1 + sigma_d2d z), conductance
drift ``g(t) = g_prog ((t + t0) / t0) ** -nu`` with a per-device nu, and global drift compensation (the layer's
mean |w| after drift scaled back to its mean |w| as programmed). Conductances are clipped at 0 (and stuck
devices keep their value). Dynamic effects (read noise, cycle-to-cycle variation) are drawn per read; their
sigma is :meth:`DeviceModel.read_sigma`.

Random streams (docs/devices.md): static draw d of layer l uses ``word(key(seed, S, trial, l), m)`` where m
is the device index ``((array * 2 + polarity) * size + i) * n_in + j`` (array 0 = weight, 1 = weight_fixed;
polarity 0 = G+, 1 = G-), with S = 3 programming noise, 4 drift exponent, 5 stuck-at, 6 device-to-device;
stream 7 carries the per-read draws (read noise and cycle-to-cycle variation together). A Gaussian deviate
is the interpolated quantile table of device_kernel.py; a uniform is the high 53 bits. The per-device work runs in one
Numba kernel (device_kernel.py), the single implementation that hwsim, the reference executor and the
hardware-aware trainer all call.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from quantal.compile import streams

STREAM_PROGRAM, STREAM_DRIFT, STREAM_STUCK, STREAM_D2D, STREAM_READ, STREAM_C2C = 3, 4, 5, 6, 7, 8
MANT_SCALE = 128  # |m| / 128 of g_max
Q_FRAC = 16  # realised weights are int64 with 16 fractional bits (sub-LSB precision)


class DeviceError(ValueError):
    """A bad device configuration; the message names the key."""


# ------------------------------------------------------------------------------------------- models


@dataclass(frozen=True)
class DeviceModel:
    """A generic device: every effect has a parameter, 0 / None switches it off (the ``ideal`` device)."""

    g_max: float = 25.0  # microsiemens
    levels: int | None = None  # finite conductance levels in [0, g_max]; None = continuous
    p_stuck_on: float = 0.0
    p_stuck_off: float = 0.0
    prog_sigma: float = 0.0  # programming noise, microsiemens (constant; models override prog_sigma_of)
    d2d_sigma: float = 0.0  # device-to-device gain variation (relative)
    drift_nu_mean: float = 0.0  # drift exponent nu ~ |N(mean, std)|
    drift_nu_std: float = 0.0
    t0: float = 20.0  # seconds
    read_sigma_rel: float = 0.0  # read noise sigma relative to g (per read)
    c2c_sigma: float = 0.0  # cycle-to-cycle gain variation per read (relative)
    drift_compensation: bool = True

    name: ClassVar[str] = "generic"

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "levels":
                if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 2):
                    raise DeviceError(f"levels: expected an integer >= 2 or null, got {v!r}")
            elif f.name == "drift_compensation":
                if not isinstance(v, bool):
                    raise DeviceError(f"drift_compensation: expected true or false, got {v!r}")
            elif not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
                raise DeviceError(f"{f.name}: expected a finite number >= 0, got {v!r}")
        if self.g_max <= 0 or self.t0 <= 0:
            raise DeviceError("g_max and t0 must be > 0")
        if self.p_stuck_on + self.p_stuck_off > 1:
            raise DeviceError("p_stuck_on + p_stuck_off must be <= 1")

    # -- per-effect formulas (models override these) -----------------------------------------------------
    def prog_sigma_of(self, g_hat: np.ndarray) -> np.ndarray:
        """Programming-noise sigma (microsiemens) at normalised target conductance g_hat = g / g_max."""
        return np.full_like(g_hat, self.prog_sigma)

    def nu_params(self, g_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) of the drift exponent's underlying normal at g_hat."""
        return np.full_like(g_hat, self.drift_nu_mean), np.full_like(g_hat, self.drift_nu_std)

    def read_sigma(self, g: np.ndarray, g_prog: np.ndarray, t: float) -> np.ndarray:
        """Read-noise sigma (microsiemens) of a device of conductance g (programmed to g_prog) read at time t."""
        return self.read_sigma_rel * np.abs(g)

    @property
    def has_read_noise(self) -> bool:
        return self.read_sigma_rel > 0 or self.c2c_sigma > 0

    @property
    def noiseless(self) -> bool:
        return (self.levels is None and self.p_stuck_on == 0 and self.p_stuck_off == 0 and self.prog_sigma == 0
                and self.d2d_sigma == 0 and self.drift_nu_mean == 0 and self.drift_nu_std == 0
                and self.read_sigma_rel == 0 and self.c2c_sigma == 0 and type(self).prog_sigma_of is
                DeviceModel.prog_sigma_of)  # fmt: skip


@dataclass(frozen=True)
class PCM(DeviceModel):
    """Phase-change memory, after the statistics measured by Joshi et al. (Nat. Commun. 11, 2473, 2020) and
    used by IBM's aihwkit ``PCMLikeNoiseModel``: g_max = 25 uS, t0 = 20 s,

    * programming noise sigma = 0.26348 + 1.9650 g_hat - 1.1731 g_hat**2 (uS);
    * drift nu ~ |N(mu, s)|, mu = clip(-0.0155 ln g_hat + 0.0244, 0.049, 0.1),
      s = clip(-0.0125 ln g_hat - 0.0059, 0.008, 0.045);
    * 1/f read noise sigma = g Q_s sqrt(ln((t + t0 + t_r) / (2 t_r))), Q_s = min(0.0088 / g_hat**0.65, 0.2),
      t_r = 250 ns.
    """

    g_max: float = 25.0
    t_read: float = 250e-9
    name: ClassVar[str] = "pcm"

    def prog_sigma_of(self, g_hat: np.ndarray) -> np.ndarray:
        return np.maximum(0.26348 + 1.9650 * g_hat - 1.1731 * g_hat**2, 0.0)

    def nu_params(self, g_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lg = np.log(np.maximum(g_hat, 1e-12))
        return np.clip(-0.0155 * lg + 0.0244, 0.049, 0.1), np.clip(-0.0125 * lg - 0.0059, 0.008, 0.045)

    def read_sigma(self, g: np.ndarray, g_prog: np.ndarray, t: float) -> np.ndarray:
        # Q_s from the programmed conductance, with g_hat**0.65 floored at 1e-3 (as aihwkit does)
        q_s = np.minimum(0.0088 / np.maximum((np.abs(g_prog) / self.g_max) ** 0.65, 1e-3), 0.2)
        return np.abs(g) * q_s * math.sqrt(math.log((t + self.t0 + self.t_read) / (2 * self.t_read)))

    @property
    def noiseless(self) -> bool:
        return False

    @property
    def has_read_noise(self) -> bool:
        return True


REGISTRY: dict[str, Callable[..., DeviceModel]] = {}
PRESETS: dict[str, dict[str, Any]] = {
    "ideal": {"model": "generic"},
    "pcm": {"model": "pcm"},
    # An illustrative filamentary RRAM (not one published device): 32 levels, 100 uS, 2% programming noise,
    # weak drift, 0.5% stuck devices each way, 1% read noise, 1% device-to-device spread.
    "rram": {"model": "generic", "g_max": 100.0, "levels": 32, "prog_sigma": 2.0, "drift_nu_mean": 0.005,
             "drift_nu_std": 0.002, "p_stuck_on": 0.005, "p_stuck_off": 0.005, "read_sigma_rel": 0.01,
             "d2d_sigma": 0.01},  # fmt: skip
}


def register(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        REGISTRY[name] = cls
        return cls

    return deco


register("generic")(DeviceModel)
register("pcm")(PCM)


@dataclass(frozen=True)
class DeviceSpec:
    """A configured device: the model, the inference time t (seconds after programming) and the source."""

    model: DeviceModel
    time: float = 0.0
    preset: str | None = None
    config: dict[str, Any] = field(default_factory=dict)


MAX_TIME = 1e10  # seconds after programming (about 317 years): the drift laws are not meant beyond


def from_config(cfg: Any, *, time: float | None = None) -> DeviceSpec:
    """A device from a mapping ``{preset: pcm}`` or ``{model: generic, prog_sigma: 0.5, ...}`` (+ ``time``)."""
    if isinstance(cfg, str):
        cfg = {"preset": cfg}
    if not isinstance(cfg, dict):
        raise DeviceError("a device configuration must be a mapping (or a preset name)")
    cfg = dict(cfg)
    preset = cfg.pop("preset", None)
    base: dict[str, Any] = {}
    if preset is not None:
        if not isinstance(preset, str) or preset not in PRESETS:
            raise DeviceError(f"preset: unknown preset {preset!r} (known: {', '.join(PRESETS)})")
        base = dict(PRESETS[preset])
    t = cfg.pop("time", 0.0)
    base.update(cfg)
    model = base.pop("model", "generic")
    if not isinstance(model, str) or model not in REGISTRY:
        raise DeviceError(f"model: unknown device model {model!r} (known: {', '.join(REGISTRY)})")
    cls = REGISTRY[model]
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    for k in base:
        if k not in known:
            raise DeviceError(f"{k}: unknown parameter of device model {model!r} (known: {', '.join(sorted(known))})")
    t = t if time is None else time
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t) or not 0 <= t <= MAX_TIME:
        raise DeviceError(f"time: expected seconds in [0, {MAX_TIME:.0e}] (about 300 years), got {t!r}")
    return DeviceSpec(model=cls(**base), time=float(t), preset=preset, config={"model": model, **base})


def load(path: str | Path, *, time: float | None = None) -> DeviceSpec:
    from quantal.compile.ir import read_yaml

    return from_config(read_yaml(path, DeviceError), time=time)


# ---------------------------------------------------------------------------------------- realisation


def raw_conductances(model: DeviceModel, mant: np.ndarray, t: float, *, seed: int, trial: int, layer: int,
                     array: int = 0, programmed: bool = True) -> tuple:  # fmt: skip
    """(G+, G-, alpha, G+_prog, G-_prog): conductances at time t before drift compensation, the compensation
    factor, and the conductances as programmed (t = 0; None unless ``programmed``). Computed by the Numba
    kernel of device_kernel.py."""
    from .device_kernel import program_and_drift

    m = np.ascontiguousarray(mant, dtype=np.int8)
    size, n_in = m.shape
    ghat = np.arange(MANT_SCALE + 1, dtype=np.float64) / MANT_SCALE  # table over the 129 targets |m| / 128
    if model.levels is not None:
        ghat = np.rint(ghat * (model.levels - 1)) / (model.levels - 1)  # nearest of `levels` values
    sig = np.asarray(model.prog_sigma_of(ghat), dtype=np.float64)
    mu, sd = (np.asarray(a, dtype=np.float64) for a in model.nu_params(ghat))
    drift = bool(t > 0 and (np.any(mu > 0) or np.any(sd > 0)))
    keys = [np.uint64(streams.key(seed, s, trial, layer)) for s in (STREAM_PROGRAM, STREAM_D2D, STREAM_DRIFT,
                                                                    STREAM_STUCK)]  # fmt: skip
    n = size * n_in
    g = np.empty((2, n))
    gp = np.empty((2, n)) if programmed else np.empty((2, 1))
    num, den = program_and_drift(m.ravel(), ghat, sig, mu, sd, float(model.g_max), float(model.d2d_sigma),
                                 float(model.p_stuck_on), float(model.p_stuck_off),
                                 math.log((t + model.t0) / model.t0), drift, array * 2 * n, *keys,
                                 streams.normal_table(), g, gp, programmed)  # fmt: skip
    g = g.reshape(2, size, n_in)
    alpha = 1.0
    if model.drift_compensation and t > 0 and den > 0:
        alpha = int(num) / int(den)  # global drift compensation: restore the layer's programmed mean |w|
    if not programmed:
        return g[0], g[1], alpha, None, None
    gp = gp.reshape(2, size, n_in)
    return g[0], g[1], alpha, gp[0], gp[1]


def conductances(model: DeviceModel, mant: np.ndarray, t: float, *, seed: int, trial: int, layer: int,
                 array: int = 0) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Static conductances (G+, G-) in microsiemens at time t of the devices holding mantissas ``mant``
    (size, n_in) of array ``array`` (0 weight, 1 weight_fixed) in ``layer``, for (seed, trial); drift
    compensation included (it scales what is read, so it is folded into the conductances here)."""
    gp, gm, alpha, _, _ = raw_conductances(model, mant, t, seed=seed, trial=trial, layer=layer, array=array,
                                           programmed=False)  # fmt: skip
    return gp * alpha, gm * alpha


def realize(model: DeviceModel, mant: np.ndarray, t: float, *, seed: int, trial: int, layer: int,
            array: int = 0) -> np.ndarray:  # fmt: skip
    """Effective static weights in mantissa units, float64: ``128 alpha (G+ - G-) / g_max``."""
    return realize_with_noise(model, mant, t, seed=seed, trial=trial, layer=layer, array=array, variance=False)[0]


def realize_with_noise(model: DeviceModel, mant: np.ndarray, t: float, *, seed: int, trial: int, layer: int,
                       array: int = 0, variance: bool = True) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """(effective static weights, per-read noise variance), both in mantissa units (float64; the variance is
    None for a model without dynamic effects). A read adds a Gaussian of variance
    ``(128 alpha / g_max)**2 (sigma_read(G+)**2 + sigma_read(G-)**2 + c2c**2 (G+**2 + G-**2))``: read noise
    and cycle-to-cycle variation of both devices, scaled by the drift compensation like the signal."""
    if model.noiseless:
        return np.asarray(mant, dtype=np.float64).copy(), None
    need_var = variance and model.has_read_noise
    gp, gm, alpha, pp, pm = raw_conductances(model, mant, t, seed=seed, trial=trial, layer=layer, array=array,
                                             programmed=need_var)  # fmt: skip
    k = MANT_SCALE * alpha / model.g_max
    w = k * (gp - gm)
    if not need_var:
        return w, None
    var = (model.read_sigma(gp, pp, t) ** 2 + model.read_sigma(gm, pm, t) ** 2
           + model.c2c_sigma**2 * (gp**2 + gm**2))  # fmt: skip
    return w, k * k * var


def to_fixed(w: np.ndarray) -> np.ndarray:
    """Realised weights as int64 with 16 fractional bits (round half to even): sub-LSB precision, exact sums."""
    return np.rint(np.asarray(w, dtype=np.float64) * 2.0**Q_FRAC).astype(np.int64)


def synapse_arrays(spec: DeviceSpec, weight: np.ndarray, weight_fixed: np.ndarray | None, *, seed: int, trial: int,
                   layer: int) -> tuple:  # fmt: skip
    """``(wq, wfq, s2w, s2f)`` of one projection's stored mantissas for (seed, trial): the realised weights and
    reliable weights as int64 with 16 fractional bits and their per-read noise variances (float64, or None),
    of the shape of ``weight``. ``layer`` is the projection index of the streams. A conv2d kernel (C_out, C_in /
    groups, kh, kw) has one device per stored element, indexed as the (C_out, C_in / groups * kh * kw) matrix."""
    shape = weight.shape

    def one(mant: np.ndarray, array: int) -> tuple:
        w, s2 = realize_with_noise(spec.model, mant.reshape(shape[0], -1), spec.time, seed=seed, trial=trial,
                                   layer=layer, array=array)  # fmt: skip
        return to_fixed(w).reshape(shape), None if s2 is None else s2.reshape(shape)

    wq, s2w = one(weight, 0)
    if weight_fixed is None:
        return wq, None, s2w, None
    wfq, s2f = one(weight_fixed, 1)
    return wq, wfq, s2w, s2f


def layer_weights(spec: DeviceSpec, net: Any, seed: int, trial: int) -> list[tuple]:
    """:func:`synapse_arrays` for every projection of ``net`` (stream index = projection index): the form both
    the reference executor and hwsim consume."""
    return [synapse_arrays(spec, p.synapse.weight, p.synapse.weight_fixed, seed=seed, trial=trial, layer=pi)
            for pi, p in enumerate(net.projections)]  # fmt: skip
