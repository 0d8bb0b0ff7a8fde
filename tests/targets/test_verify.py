"""`quantal verify --target lava`: identical runs exit 0; divergences are located; no Lava exits 2."""

import os
import subprocess
import sys

import numpy as np
import pytest

from quantal.compile import ir
from quantal.compile.testing import random_network, random_spikes
from quantal.hwsim import simulate
from quantal.targets.verify import first_divergence


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "quantal", *args], capture_output=True, text=True, env=env)


def test_first_divergence_is_the_earliest_step():
    rng = np.random.default_rng(0)
    net = random_network(rng, [5, 6, 4], release=0.5, readout=True)
    x = random_spikes(rng, 3, 5, 5)
    a = simulate(net, x, steps=8, record=("spikes", "u", "v"))
    assert first_divergence(net, a, a) is None
    b = {k: v.copy() for k, v in a.items()}
    b[f"{net.layers[1].name}.v"][2, 6, 1] += 1
    b[f"{net.layers[0].name}.u"][1, 4, 3] -= 1
    d = first_divergence(net, b, a)
    assert (d["layer"], d["quantity"], d["sample"], d["step"], d["neuron"]) == (net.layers[0].name, "u", 1, 4, 3)
    assert d["target"] == d["hwsim"] - 1


def test_without_lava_verify_exits_2(tmp_path):
    net = random_network(np.random.default_rng(1), [4, 3])
    p = ir.save(net, tmp_path / "n.qnet")
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 4), np.uint8))
    env = {**os.environ, "QUANTAL_LAVA_PYTHON": str(tmp_path / "no-python")}
    r = cli("verify", str(p), "--target", "lava", "--input", str(tmp_path / "x.npy"), env=env)
    assert r.returncode == 2 and "Python 3.10" in r.stderr and len(r.stderr.splitlines()) == 1


@pytest.mark.lava
@pytest.mark.slow
@pytest.mark.usefixtures("lava")
def test_verify_holds_on_a_stochastic_network(tmp_path):
    rng = np.random.default_rng(3)
    net = random_network(rng, [12, 10, 5], release="random", weight_fixed=True, escape=True, readout=True)
    p = ir.save(net, tmp_path / "n.qnet")
    np.save(tmp_path / "x.npy", random_spikes(rng, 4, 6, 12, 0.5))
    r = cli("verify", str(p), "--target", "lava", "--input", str(tmp_path / "x.npy"), "--steps", "9", "--seed",
            str(2**64 - 1), "--trial", "2")  # fmt: skip
    assert r.returncode == 0 and r.stdout.startswith("identical"), r.stdout + r.stderr
    r = cli("verify", str(p), "--target", "lava", "--input", str(tmp_path / "x.npy"), "--steps", "9", "--json")
    import json

    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["identical"] and out["first_divergence"] is None and out["steps"] == 9
