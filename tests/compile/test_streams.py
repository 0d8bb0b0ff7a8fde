"""Random streams v1 against a pure-Python oracle, and the statistics they promise."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantal.compile import streams

MASK = (1 << 64) - 1
G = 0x9E3779B97F4A7C15


def py_mix(z: int) -> int:  # DESIGN.md's mix(), on Python integers
    z ^= z >> 30
    z = (z * 0xBF58476D1CE4E5B9) & MASK
    z ^= z >> 27
    z = (z * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def py_key(*xs: int) -> int:
    h = 0
    for x in xs:
        h = py_mix(h ^ py_mix((x + G) & MASK))
    return h


def py_word(k: int, m: int) -> int:
    return py_mix((k + G * (m + 1)) & MASK)


u64 = st.integers(0, MASK)


@given(u64)
def test_mix_matches_python_integers(z):
    assert int(streams.mix(z)) == py_mix(z)


@given(st.lists(st.integers(0, 2**40), min_size=1, max_size=7), st.integers(0, 1000))
def test_key_and_word_match_python_integers(xs, m):
    k = streams.key(*xs)
    assert int(k) == py_key(*xs)
    assert int(streams.word(k, m)) == py_word(py_key(*xs), m)


@settings(max_examples=30)
@given(u64, st.integers(0, 5), st.integers(0, 100), st.integers(0, 50), st.integers(0, 5),
       st.lists(st.integers(0, 999), min_size=1, max_size=5), st.integers(1, 40))
def test_release_bytes_follow_the_byte_rule(seed, trial, sample, step, layer, inputs, size):
    got = streams.release_bytes(seed, trial, sample, step, layer, np.array(inputs), size)
    for a, j in enumerate(inputs):
        k = py_key(seed, 1, trial, sample, step, layer, j)
        want = [(py_word(k, i // 8) >> (8 * (i % 8))) & 0xFF for i in range(size)]
        assert got[a].tolist() == want


@settings(max_examples=20)
@given(u64, st.integers(0, 100), st.integers(0, 50), st.integers(1, 30))
def test_escape_uniforms_follow_the_lane_rule(seed, sample, step, size):
    got = streams.escape_uniforms(seed, 3, sample, step, 2, size)
    k = py_key(seed, 2, 3, sample, step, 2)
    assert got.tolist() == [(py_word(k, i // 4) >> (16 * (i % 4))) & 0xFFFF for i in range(size)]


@pytest.mark.parametrize("release", [0, 63, 127, 200, 255])
def test_release_probability_is_k_plus_1_over_256(release):
    # 2,000 events x 64 neurons = 128,000 Bernoulli draws; P = (k + 1) / 256. Tolerance: 5 standard errors.
    draws = np.concatenate([streams.release_bytes(7, 0, n, 1, 0, np.arange(40), 64) for n in range(50)])
    p = (release + 1) / 256
    phat = (draws <= release).mean()
    se = math.sqrt(p * (1 - p) / draws.size)
    assert abs(phat - p) <= 5 * se + 1e-12


def test_bytes_are_uniform():
    # Chi-square goodness of fit over 256 byte values (255 dof): mean 255, sd ~22.6; accept below mean + 6 sd.
    draws = np.concatenate([streams.release_bytes(3, 1, n, 2, 1, np.arange(100), 100).ravel() for n in range(40)])
    counts = np.bincount(draws, minlength=256)
    expected = draws.size / 256
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 255 + 6 * math.sqrt(2 * 255)


def test_escape_thresholds_give_the_logistic_probability():
    scale = 1234.5
    theta = streams.escape_thresholds(scale)
    assert np.all(np.diff(theta) >= 0)
    for x in [-20000, -5000, -1000, -1, 0, 1, 700, 3000, 15000]:
        p_exact = np.count_nonzero(theta < x) / streams.ESCAPE_LEVELS  # P(x > theta[U]) for uniform U
        closed = 1.0 / (1.0 + math.exp(-x / scale))
        # Table quantisation: 1/65536 per level plus the floor of theta (shifts x by < 1, i.e. < 1/(4 scale)).
        assert abs(p_exact - closed) <= 1.0 / streams.ESCAPE_LEVELS + 1.0 / (4 * scale)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")])
def test_escape_scale_must_be_positive_and_finite(scale):
    with pytest.raises(ValueError, match="scale"):
        streams.escape_thresholds(scale)


def _exact(scale, u):
    """floor(S ln((2u + 1) / (131071 - 2u))) with Python's decimal at 100 digits (an independent oracle)."""
    import decimal

    with decimal.localcontext() as ctx:
        ctx.prec = 100
        y = decimal.Decimal(scale) * (decimal.Decimal(2 * u + 1).ln() - decimal.Decimal(131071 - 2 * u).ln())
        return int(y.to_integral_value(decimal.ROUND_FLOOR))


def _boundary_scales():
    """Scales that put some entry within ~1e-13 of an integer, where float64 rounding decides the floor."""
    out = []
    for u, k in ((40000, 1000), (65535, 7), (1, -123456), (32768, 1)):
        lg = math.log((2 * u + 1) / (131071 - 2 * u))
        for eps in (-1e-13, 1e-13):
            out.append(((k + eps) / lg, u))
    return out


@pytest.mark.parametrize("scale,u", _boundary_scales())
def test_escape_thresholds_are_exact_at_floor_boundaries(scale, u):
    theta = streams.escape_thresholds(scale)
    assert theta[u] == _exact(scale, u)
    rng = np.random.default_rng(int(u))
    for k in rng.integers(0, 65536, 200):
        assert theta[k] == _exact(scale, int(k))


def test_escape_thresholds_do_not_depend_on_the_last_bits_of_libm(monkeypatch):
    """A libm that is a few ulps off (another CPU, numpy 1.x) gives the same integers."""
    scales = [s for s, _ in _boundary_scales()] + [38.4, 1234.5, 2.0**31, 1e-3]
    want = [streams.escape_thresholds(s) for s in scales]
    real = np.log1p
    for direction in (np.inf, -np.inf):
        def sloppy(x, d=direction):
            y = real(x)
            for _ in range(4):  # four ulps off
                y = np.nextafter(y, d)
            return y

        monkeypatch.setattr(np, "log1p", sloppy)
        streams._ESCAPE_CACHE.clear()
        for s, w in zip(scales, want):
            assert np.array_equal(streams.escape_thresholds(s), w), s
    monkeypatch.setattr(np, "log1p", real)
    streams._ESCAPE_CACHE.clear()
