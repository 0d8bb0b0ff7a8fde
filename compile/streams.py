"""Random streams v1: counter-based random numbers shared by every implementation.

Every random draw in quantal is a pure function of integers (seed, stream, trial, sample, step, layer, ...),
so the numpy reference, the Numba simulator, the Lava processes and the PyTorch trainer draw exactly the same
bits whatever the order, batching or threading of the computation. All arithmetic is on uint64, modulo 2**64::

    mix(z):        z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27; z *= 0x94D049BB133111EB; z ^= z >> 31
    key(x0..xn):   h = 0; for x in (x0..xn): h = mix(h ^ mix(x + G))          G = 0x9E3779B97F4A7C15
    word(k, m):    mix(k + G * (m + 1))

Streams (see docs/ir.md):

* stream 1, stochastic synapse release: ``k = key(seed, 1, trial, sample, step, layer, j)`` for the event
  "input j of the layer was active"; post-neuron i uses byte ``i % 8`` of ``word(k, i // 8)`` and the synapse
  transmits iff that byte <= release[i, j], so P(transmit) = (release + 1) / 256.
* stream 2, escape noise: ``k = key(seed, 2, trial, sample, step, layer)``; neuron i uses the 16-bit lane
  ``i % 4`` of ``word(k, i // 4)`` as a uniform integer U in [0, 65535] (see :func:`escape_thresholds`).

This module needs only numpy.
"""

from __future__ import annotations

import numpy as np

G = 0x9E3779B97F4A7C15
M1 = 0xBF58476D1CE4E5B9
M2 = 0x94D049BB133111EB

STREAM_RELEASE = 1
STREAM_ESCAPE = 2
STREAM_READ = 7  # device read noise (docs/devices.md); 3-6 are the devices' static draws, 8 is reserved

#: Escape-noise uniforms are 16-bit integers: U in [0, ESCAPE_LEVELS).
ESCAPE_BITS = 16
ESCAPE_LEVELS = 1 << ESCAPE_BITS

_U = np.uint64


def mix(z: np.ndarray | int) -> np.ndarray:
    """The SplitMix64 finaliser on uint64 arrays (wrapping multiplication modulo 2**64)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z ^ (z >> _U(30))
        z = z * _U(M1)  # wraps modulo 2**64
        z = z ^ (z >> _U(27))
        z = z * _U(M2)  # wraps modulo 2**64
        z = z ^ (z >> _U(31))
    return z


def key(*xs: np.ndarray | int) -> np.ndarray:
    """``h = 0; for x in xs: h = mix(h ^ mix(x + G))``; arguments broadcast like numpy arrays."""
    h = np.zeros((), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for x in xs:
            h = mix(h ^ mix(np.asarray(x, dtype=np.uint64) + _U(G)))  # x + G wraps modulo 2**64
    return h


def word(k: np.ndarray | int, m: np.ndarray | int) -> np.ndarray:
    """``mix(k + G * (m + 1))``, the m-th 64-bit word drawn from key k."""
    k = np.asarray(k, dtype=np.uint64)
    m = np.asarray(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return mix(k + _U(G) * (m + _U(1)))  # product and sum wrap modulo 2**64


def release_bytes(
    seed: int, trial: int, sample: int, step: int, layer: int, inputs: np.ndarray, size: int
) -> np.ndarray:
    """Stream-1 bytes for the active inputs ``inputs`` (shape (J,)) of a layer of ``size`` neurons.

    Returns uint8 of shape (J, size): entry [a, i] is compared with ``release[i, inputs[a]]``.
    """
    inputs = np.asarray(inputs, dtype=np.uint64).reshape(-1, 1)
    k = key(seed, STREAM_RELEASE, trial, sample, step, layer, inputs)  # (J, 1)
    i = np.arange(size, dtype=np.uint64)
    w = word(k, i // _U(8))  # (J, size): the word holding byte i
    return ((w >> (_U(8) * (i % _U(8)))) & _U(0xFF)).astype(np.uint8)


def escape_uniforms(seed: int, trial: int, sample: int, step: int, layer: int, size: int) -> np.ndarray:
    """Stream-2 uniform integers U_i in [0, 65535] for the ``size`` neurons of a layer at one step."""
    k = key(seed, STREAM_ESCAPE, trial, sample, step, layer)
    i = np.arange(size, dtype=np.uint64)
    w = word(k, i // _U(4))  # the word holding lane i % 4
    return ((w >> (_U(16) * (i % _U(4)))) & _U(0xFFFF)).astype(np.uint16)


def read_lanes(seed: int, trial: int, sample: int, step: int, layer: int, inputs: np.ndarray, size: int) -> np.ndarray:
    """Stream-7 uniforms for device read noise: the read of synapse (i, j) when input j of ``layer`` is active at
    ``step`` uses lane ``i % 4`` of ``word(key(seed, 7, trial, sample, step, layer, j), i // 4)``.

    Returns uint16 of shape (J, size) for the active inputs ``inputs`` (shape (J,)).
    """
    inputs = np.asarray(inputs, dtype=np.uint64).reshape(-1, 1)
    k = key(seed, STREAM_READ, trial, sample, step, layer, inputs)  # (J, 1)
    i = np.arange(size, dtype=np.uint64)
    w = word(k, i // _U(4))
    return ((w >> (_U(16) * (i % _U(4)))) & _U(0xFFFF)).astype(np.uint16)


_NORMAL_TABLE: np.ndarray | None = None


def normal_table() -> np.ndarray:
    """Standard normal quantiles at the 65536 midpoints: ``z[U] = Phi^-1((U + 1/2) / 65536)`` (float64).

    A 16-bit uniform U indexes it to give a normal deviate (tails cut at |z| < 4.33); every executor uses
    this one table, so every executor draws the same numbers. Computed with the standard library.
    """
    global _NORMAL_TABLE
    if _NORMAL_TABLE is None:
        from statistics import NormalDist

        inv = NormalDist().inv_cdf
        _NORMAL_TABLE = np.array([inv((u + 0.5) / ESCAPE_LEVELS) for u in range(ESCAPE_LEVELS)], dtype=np.float64)
        _NORMAL_TABLE.setflags(write=False)
    return _NORMAL_TABLE


def _exact_floor_scaled_logit(scale: float, u: int) -> int:
    """``floor(scale * ln((2u + 1) / (131071 - 2u)))`` decided exactly, in decimal arithmetic of rising
    precision (the standard library's ``decimal``: correctly rounded ``ln``, no libm). The value is never an
    integer (the logarithm of a rational other than 1 is irrational and S is a binary fraction), so some
    precision decides its floor; the loop raises the precision until the error bound does."""
    import decimal

    num, den = 2 * u + 1, 2 * ESCAPE_LEVELS - 1 - 2 * u  # (U + 1/2) / (65536 - U - 1/2) in lowest terms x 2
    for prec in (40, 80, 160, 320):
        with decimal.localcontext() as ctx:
            ctx.prec = prec
            y = decimal.Decimal(scale) * (decimal.Decimal(num).ln() - decimal.Decimal(den).ln())
            err = (abs(y) + 1) * decimal.Decimal(10) ** (8 - prec)  # a few ulps of each correctly rounded step
            lo, hi = int((y - err).to_integral_value(decimal.ROUND_FLOOR)), int(
                (y + err).to_integral_value(decimal.ROUND_FLOOR))
            if lo == hi:
                return lo
    raise ArithmeticError(f"escape table: cannot decide floor(S logit) for S={scale!r}, U={u}")  # pragma: no cover


_ESCAPE_CACHE: dict[float, np.ndarray] = {}


def escape_thresholds(scale: float) -> np.ndarray:
    """Integer thresholds for logistic escape noise of steepness 1/scale.

    A neuron with escape noise spikes iff ``x > theta[U]`` where ``x = v - (threshold << 6)`` and U is its
    stream-2 uniform. With ``theta[U] = floor(scale * logit((U + 1/2) / 65536))`` (non-decreasing in U),

        P(spike | x) = #{U : theta[U] < x} / 65536  ~=  sigmoid(x / scale)

    with an error below 1/65536 plus the rounding of theta.

    The integers are exact by construction, the same on every platform and numpy: float64 (``log1p`` of
    ``(a - b) / b`` for ``logit = ln(a / b)``, a = 2U + 1, b = 131072 - a: no cancellation, within a few ulps
    on any libm) gives every entry whose value lies farther than ``1e-12 (|value| + 1)`` from an integer, a
    margin over a thousand times wider than that error, so its floor cannot depend on the platform; the
    entries closer to an integer are decided exactly (:func:`_exact_floor_scaled_logit`).
    """
    if not isinstance(scale, (int, float, np.integer, np.floating)) or isinstance(scale, bool):
        raise ValueError(f"escape-noise scale must be a number in (0, 2**31], got {scale!r}")
    scale = float(scale)
    if not np.isfinite(scale) or not 0 < scale <= 2.0**31:
        raise ValueError(f"escape-noise scale must be a number in (0, 2**31], got {scale!r}")
    cached = _ESCAPE_CACHE.get(scale)
    if cached is None:
        a = 2 * np.arange(ESCAPE_LEVELS, dtype=np.float64) + 1  # logit((U + 1/2) / 65536) = ln(a / b)
        b = 2 * ESCAPE_LEVELS - a
        t = scale * np.log1p((a - b) / b)  # ln(1 + (a - b) / b): no cancellation, a few ulps relative
        table = np.floor(t).astype(np.int64)
        near = np.nonzero(np.abs(t - np.rint(t)) <= 1e-12 * np.abs(t) + 1e-12)[0]
        for k in near:  # at a floor boundary: decide exactly
            table[k] = _exact_floor_scaled_logit(scale, int(k))
        table.setflags(write=False)
        if len(_ESCAPE_CACHE) < 1024:
            _ESCAPE_CACHE[scale] = table
        cached = table
    return cached.copy()
