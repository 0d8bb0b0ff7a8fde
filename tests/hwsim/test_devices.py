"""Device models against closed forms: programming noise per conductance bin, drift factors, stuck-at
fractions, levels, device-to-device spread, drift compensation; the ideal device is exact."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from quantal.hwsim import devices as D

N = 40_000  # devices per check; tolerances below are ~4.5 standard errors (false alarm ~1e-5 per check)


def const(m: int, n: int = N) -> np.ndarray:
    return np.full((1, n), m, dtype=np.int8)


def test_ideal_is_exact_and_its_fixed_point_form_too():
    rng = np.random.default_rng(0)
    m = rng.integers(-128, 128, (30, 40)).astype(np.int8)
    ideal = D.from_config("ideal").model
    w = D.realize(ideal, m, 86400.0, seed=3, trial=2, layer=1)
    assert np.array_equal(w, m.astype(np.float64))
    assert np.array_equal(D.to_fixed(w), m.astype(np.int64) << 16)  # Q.16: m * 2**16 exactly


def test_draws_are_reproducible_per_seed_and_trial():
    pcm = D.from_config("pcm").model
    m = np.random.default_rng(1).integers(-128, 128, (8, 9)).astype(np.int8)
    a = D.realize(pcm, m, 3600.0, seed=5, trial=0, layer=0)
    assert np.array_equal(a, D.realize(pcm, m, 3600.0, seed=5, trial=0, layer=0))
    assert not np.array_equal(a, D.realize(pcm, m, 3600.0, seed=5, trial=1, layer=0))
    assert not np.array_equal(a, D.realize(pcm, m, 3600.0, seed=5, trial=0, layer=1))


@pytest.mark.parametrize("m", [32, 64, 96, 127])
def test_pcm_programming_noise_sigma_per_conductance_bin(m):
    pcm = D.PCM(drift_compensation=False)
    gp, _ = D.conductances(pcm, const(m), 0.0, seed=1, trial=0, layer=0)  # t = 0: no drift
    g_hat = m / 128
    sigma = 0.26348 + 1.9650 * g_hat - 1.1731 * g_hat**2
    assert abs(gp.mean() - 25 * g_hat) < 4.5 * sigma / math.sqrt(N)
    # the sample sd of N normals has relative standard error ~ 1 / sqrt(2 N)
    assert abs(gp.std(ddof=1) / sigma - 1) < 4.5 / math.sqrt(2 * N)


@pytest.mark.parametrize("t", [3600.0, 86400.0])
@pytest.mark.parametrize("m", [16, 64, 127])
def test_pcm_mean_drift_factor_matches_the_folded_normal_integral(t, m):
    pcm = D.PCM(drift_compensation=False)

    class NoProg(D.PCM):
        def prog_sigma_of(self, g_hat):
            return np.zeros_like(g_hat)

    model = NoProg(drift_compensation=False)
    gp, _ = D.conductances(model, const(m), t, seed=2, trial=0, layer=0)
    factor = gp / (25 * m / 128)
    g_hat = np.array([m / 128])
    mu, sd = (float(v[0]) for v in pcm.nu_params(g_hat))
    r = (t + 20.0) / 20.0
    # E[r**-|X|], X ~ N(mu, sd): integrate over the folded normal's density
    want = integrate.quad(lambda nu: r**-nu * (stats.norm.pdf(nu, mu, sd) + stats.norm.pdf(-nu, mu, sd)), 0, 1)[0]
    assert abs(factor.mean() - want) < 4.5 * factor.std(ddof=1) / math.sqrt(N)


def test_stuck_at_fractions():
    model = D.DeviceModel(p_stuck_on=0.03, p_stuck_off=0.05)
    gp, gm = D.conductances(model, const(64), 0.0, seed=4, trial=0, layer=0)
    on, off = (gp == 25.0).mean(), (gp == 0.0).mean()
    for frac, p in ((on, 0.03), (off, 0.05)):
        assert abs(frac - p) < 4.5 * math.sqrt(p * (1 - p) / N)
    assert abs((gm == 25.0).mean() - 0.03) < 4.5 * math.sqrt(0.03 * 0.97 / N)  # G- stuck on too


def test_levels_put_conductances_on_the_grid():
    model = D.DeviceModel(levels=5)
    m = np.arange(-128, 128, dtype=np.int8).reshape(1, -1)
    gp, gm = D.conductances(model, m, 0.0, seed=0, trial=0, layer=0)
    step = 25.0 / 4
    assert np.allclose(gp / step, np.rint(gp / step)) and np.allclose(gm / step, np.rint(gm / step))
    assert np.abs(gp - np.maximum(m, 0) / 128 * 25).max() <= step / 2 + 1e-12  # nearest level


def test_device_to_device_spread():
    model = D.DeviceModel(d2d_sigma=0.1)
    gp, _ = D.conductances(model, const(100), 0.0, seed=7, trial=0, layer=0)
    rel = gp / (25 * 100 / 128)
    assert abs(rel.std(ddof=1) / 0.1 - 1) < 4.5 / math.sqrt(2 * N) and abs(rel.mean() - 1) < 4.5 * 0.1 / math.sqrt(N)


def test_drift_compensation_restores_the_mean_weight():
    pcm = D.from_config("pcm").model
    m = np.random.default_rng(3).integers(-128, 128, (50, 60)).astype(np.int8)
    at0 = D.realize(pcm, m, 0.0, seed=1, trial=0, layer=0)
    later = D.realize(pcm, m, 86400.0 * 365, seed=1, trial=0, layer=0)
    assert np.abs(later).sum() == pytest.approx(np.abs(at0).sum(), rel=1e-12)  # same programming noise draws
    raw = D.realize(D.PCM(drift_compensation=False), m, 86400.0 * 365, seed=1, trial=0, layer=0)
    assert np.abs(raw).sum() < 0.8 * np.abs(at0).sum()  # uncompensated drift loses > 20% in a year


def test_pcm_read_noise_formula():
    pcm = D.PCM()
    g = np.array([25.0, 5.0])
    got = pcm.read_sigma(g, g, 3600.0)
    q = np.minimum(0.0088 / (g / 25) ** 0.65, 0.2)
    assert np.allclose(got, g * q * math.sqrt(math.log((3600 + 20 + 250e-9) / (2 * 250e-9))))


@pytest.mark.parametrize("cfg,match", [
    ({"preset": "flash"}, "preset"), ({"model": "memristor"}, "model"), ({"prog_sigma": -1}, "prog_sigma"),
    ({"levels": 1}, "levels"), ({"preset": "pcm", "gmax": 3}, "gmax"), ({"time": -5}, "time"),
    ({"p_stuck_on": 0.7, "p_stuck_off": 0.7}, "p_stuck"),
])  # fmt: skip
def test_bad_configurations_name_the_key(cfg, match):
    with pytest.raises(D.DeviceError, match=match):
        D.from_config(cfg)


def test_presets_and_yaml(tmp_path):
    p = tmp_path / "dev.yaml"
    p.write_text("preset: pcm\ntime: 3600\n")
    spec = D.load(p)
    assert isinstance(spec.model, D.PCM) and spec.time == 3600.0 and spec.preset == "pcm"
    assert D.from_config("rram").model.levels == 32 and D.from_config("ideal").model.noiseless
    with pytest.raises(D.DeviceError, match="no such file"):
        D.load(tmp_path / "none.yaml")


# ------------------------------------------------------------------- simulation on a device (hwsim == reference)


@pytest.mark.parametrize("preset", ["ideal", "pcm", "rram"])
def test_hwsim_on_a_device_equals_the_reference(preset):
    from quantal.compile import reference
    from quantal.compile.testing import random_network, random_spikes
    from quantal.hwsim import simulate

    rng = np.random.default_rng(12)
    spec = D.from_config(preset, time=3600.0)
    for k in range(3):
        release = ("random", 0.4, "random")[k]  # per-synapse release bytes, or one for all (one stored column)
        net = random_network(rng, [10, 12, 6], release=release, weight_fixed=bool(k % 2), escape=True, readout=True)
        x = random_spikes(rng, 4, 6, 10)
        kw = {"steps": 9, "seed": 3, "trials": 2, "record": ("spikes", "u", "v")}
        hw = simulate(net, x, device=spec, batch_size=3, **kw)
        ref = reference.simulate(net, x, device_weights=lambda s, r, net=net: D.layer_weights(spec, net, s, r), **kw)
        for name in ref:
            assert np.array_equal(ref[name], hw[name]), name
        if preset == "ideal":  # the ideal device is the noiseless semantics, bit for bit
            plain = simulate(net, x, **kw)
            assert all(np.array_equal(plain[name], hw[name]) for name in plain)


def test_cli_run_and_eval_take_a_device(tmp_path):
    import subprocess
    import sys

    from quantal.compile import ir
    from quantal.compile.testing import random_network, random_spikes

    rng = np.random.default_rng(1)
    netp = ir.save(random_network(rng, [6, 5, 3], readout=True), tmp_path / "n.qnet")
    np.save(tmp_path / "x.npy", random_spikes(rng, 3, 4, 6))
    dev = tmp_path / "dev.yaml"
    dev.write_text("preset: pcm\ntime: 60\n")

    def cli(*a):
        return subprocess.run([sys.executable, "-m", "quantal", *a], capture_output=True, text=True)

    base = ["run", str(netp), "--input", str(tmp_path / "x.npy"), "-q", "--record", "v"]
    assert cli(*base, "--out", str(tmp_path / "a.npz"), "--device", str(dev)).returncode == 0
    assert cli(*base, "--out", str(tmp_path / "b.npz"), "--device", "pcm", "--time", "60").returncode == 0
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a)  # the file and the preset + --time agree
    for args, msg in ((["--time", "5"], "--time needs --device"), (["--device", "flash"], "no such file"),
                      (["--device", "pcm", "--time", "-1"], "--time")):  # fmt: skip
        r = cli(*base, "--out", str(tmp_path / "c.npz"), *args)
        assert r.returncode == 2 and msg in r.stderr and len(r.stderr.splitlines()) == 1
    dev.write_text("preset: pcm\nnu: 3\n")
    r = cli(*base, "--out", str(tmp_path / "c.npz"), "--device", str(dev))
    assert r.returncode == 2 and "nu: unknown parameter" in r.stderr


def test_read_noise_per_read_has_the_model_variance():
    # one pcm synapse read 40,000 times (one read per sample); weight_exp 7 makes a = sum >> 9, a fine grid
    from quantal.compile.ir import DenseSynapse, Network, Neuron
    from quantal.hwsim import simulate

    net = Network.chain("one", 1, (("l", 1, DenseSynapse(weight=np.array([[40]], np.int8), weight_exp=7),
        Neuron(kind="readout", current_decay=4096, voltage_decay=4096, threshold=0)),))  # fmt: skip
    spec = D.from_config("pcm", time=3600.0)
    x = np.zeros((N, 1, 1), np.uint8)
    x[:, 0, 0] = 1
    u = simulate(net, x, steps=2, seed=1, record=("u",), device=spec)["l.u"][:, 1, 0].astype(np.float64)
    a = u / 64 / 2**7  # back to mantissa units
    (w, _, s2w, _), = D.layer_weights(spec, net, 1, 0)
    sigma2 = float(s2w[0, 0]) + 2.0**-14 / 12  # + the floor's quantisation variance
    assert abs(a.var(ddof=1) / sigma2 - 1) < 4.5 * math.sqrt(2 / N)
    assert abs(a.mean() - (w[0, 0] / 2**16 - 2.0**-8)) < 4.5 * math.sqrt(sigma2 / N)  # floor: -half a step


def test_normal_table_is_standard_normal():
    from quantal.compile.streams import normal_table

    z = normal_table()
    assert abs(z.mean()) < 1e-12 and abs(z.var() - 1) < 1e-3 and np.all(np.diff(z) > 0)


def test_realisations_do_not_depend_on_the_thread_count():
    import subprocess
    import sys

    code = ("import numpy as np, hashlib; from quantal.hwsim import devices as D;"
            "m = np.random.default_rng(0).integers(-128, 128, (300, 200)).astype(np.int8);"
            "w, v = D.realize_with_noise(D.from_config('pcm').model, m, 86400.0, seed=1, trial=0, layer=0);"
            "print(hashlib.sha1(w.tobytes() + v.tobytes()).hexdigest())")  # fmt: skip
    import os

    out = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "NUMBA_NUM_THREADS": str(n)}).stdout for n in (1, 2)}  # fmt: skip
    assert len(out) == 1


@pytest.mark.parametrize("m", [32, 96])
def test_pcm_programming_noise_quantiles_are_gaussian(m):
    # Kolmogorov-Smirnov against N(g_target, sigma(g_hat)): the whole distribution, not just two moments
    gp, _ = D.conductances(D.PCM(drift_compensation=False), const(m), 0.0, seed=11, trial=0, layer=0)
    g_hat = m / 128
    sigma = 0.26348 + 1.9650 * g_hat - 1.1731 * g_hat**2
    assert stats.kstest(gp.ravel(), "norm", args=(25 * g_hat, sigma)).pvalue > 1e-4


@pytest.mark.parametrize("t", [3600.0, 86400.0])
def test_pcm_drift_factor_quantiles_match_the_closed_form(t):
    # factor f = r**-nu, nu = |X|, X ~ N(mu, sd): P(f <= x) = P(nu >= -ln x / ln r) = 1 - F(q) with
    # F(q) = Phi((q - mu) / sd) - Phi((-q - mu) / sd), the folded normal's CDF
    class NoProg(D.PCM):
        def prog_sigma_of(self, g_hat):
            return np.zeros_like(g_hat)

    m = 64
    gp, _ = D.conductances(NoProg(drift_compensation=False), const(m), t, seed=12, trial=0, layer=0)
    f = gp / (25 * m / 128)
    mu, sd = (float(v[0]) for v in D.PCM().nu_params(np.array([m / 128])))
    lr = math.log((t + 20.0) / 20.0)

    def cdf(x):
        q = -np.log(x) / lr
        return 1 - (stats.norm.cdf((q - mu) / sd) - stats.norm.cdf((-q - mu) / sd))

    for p in (0.05, 0.25, 0.5, 0.75, 0.95):  # empirical quantiles against the closed-form CDF
        x = np.quantile(f, p)
        assert abs(cdf(x) - p) < 4.5 * math.sqrt(p * (1 - p) / N), p
