"""Numba kernel of the device realisation (hwsim/devices.py validates, builds the tables and calls it).

Arrays, scalars and RNG keys only. Per device d (polarity-major: d = polarity * S + synapse) with stream index
``m = base + d``: target conductance from the per-level tables, programming noise, device-to-device gain,
clipping at 0, drift with a per-device exponent, stuck-at faults. Random numbers: ``word(k, m)`` of the
stream's key k (random streams v1, docs/ir.md); a normal deviate is the standard normal quantile function at
the word's high 32 bits, interpolated linearly in the 65536-entry table of ``streams.normal_table()`` (exact
quantiles at the table's midpoints, tails cut at |z| = 4.33, beyond which a Gaussian has 1.5e-5 of its mass);
a uniform comes from the word's high 53 bits.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .kernels import G, mix

INV16 = 1.0 / 65536.0  # 2**-16, exact
INV53 = 1.0 / 9007199254740992.0  # 2**-53, exact


@njit(cache=True, inline="always")
def _normal(k, m, ntab):  # pragma: no cover - compiled
    w = mix(k + G * np.uint64(m + 1))  # word(k, m), wrapping
    # u in [0, 1) from the high 32 bits; the table holds the quantiles at (U + 1/2) / 65536, U = 0..65535
    x = np.float64(w >> np.uint64(32)) * INV16 - 0.5  # table coordinate: exact (a 32-bit integer times 2**-16)
    i = int(np.floor(x))
    if i < 0:
        return ntab[0]
    if i >= 65535:
        return ntab[65535]
    f = x - i
    return ntab[i] + f * (ntab[i + 1] - ntab[i])


@njit(cache=True, inline="always")
def _uniform(k, m):  # pragma: no cover - compiled
    w = mix(k + G * np.uint64(m + 1))
    return (np.float64(w >> np.uint64(11)) + 0.5) * INV53


@njit(cache=True, inline="always")
def _device(q, m, ghat_tab, sig_tab, mu_tab, sd_tab, g_max, d2d, p_on, p_off, log_ratio, drift,
            k_prog, k_d2d, k_drift, k_stuck, ntab):  # pragma: no cover - compiled
    g = ghat_tab[q] * g_max
    s = sig_tab[q]
    if s > 0.0:
        g += s * _normal(k_prog, m, ntab)  # programming noise
    if d2d > 0.0:
        g *= 1.0 + d2d * _normal(k_d2d, m, ntab)  # device-to-device gain
    g = max(g, 0.0)
    gp = g
    if drift:
        nu = abs(mu_tab[q] + sd_tab[q] * _normal(k_drift, m, ntab))  # nu ~ |N(mu, sd)|
        g *= np.exp(-nu * log_ratio)  # g(t) = g_prog ((t + t0) / t0) ** -nu
    if p_on > 0.0 or p_off > 0.0:
        u = _uniform(k_stuck, m)
        if u < p_on:
            g = g_max
            gp = g_max
        elif u < p_on + p_off:
            g = 0.0
            gp = 0.0
    return g, gp


@njit(cache=True, parallel=True)
def program_and_drift(  # pragma: no cover - compiled
    mant, ghat_tab, sig_tab, mu_tab, sd_tab, g_max, d2d, p_on, p_off, log_ratio, drift, base,
    k_prog, k_d2d, k_drift, k_stuck, ntab, out_g, out_gp, keep_prog,
):
    """Devices of the mantissas ``mant`` (S,): G+ of synapse s is device s, G- device S + s (stream index
    base + device). Fills out_g / out_gp (2, S) and returns (sum |G+_prog - G-_prog|, sum |G+ - G-|) in
    units of 2**-32 uS: integer sums, so the result does not depend on how the threads split the work."""
    n = mant.shape[0]
    num = np.int64(0)
    den = np.int64(0)
    for s in prange(n):
        mv = np.int64(mant[s])
        qp = mv if mv > 0 else 0  # target |m| of the positive device
        qm = -mv if mv < 0 else 0
        g1, p1 = _device(qp, base + s, ghat_tab, sig_tab, mu_tab, sd_tab, g_max, d2d, p_on, p_off, log_ratio,
                         drift, k_prog, k_d2d, k_drift, k_stuck, ntab)
        g2, p2 = _device(qm, base + n + s, ghat_tab, sig_tab, mu_tab, sd_tab, g_max, d2d, p_on, p_off, log_ratio,
                         drift, k_prog, k_d2d, k_drift, k_stuck, ntab)
        out_g[0, s] = g1
        out_g[1, s] = g2
        if keep_prog:  # the programmed conductances, only when read noise needs them
            out_gp[0, s] = p1
            out_gp[1, s] = p2
        num += np.int64(np.rint(abs(p1 - p2) * 4294967296.0))  # |.| < 2**7 uS: < 2**39 per term, exact sum
        den += np.int64(np.rint(abs(g1 - g2) * 4294967296.0))
    return num, den
