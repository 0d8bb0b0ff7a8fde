"""NetX HDF5: the file holds what NetX reads; built in Lava by NetX's mapping it equals hwsim bit for bit."""

import dataclasses
import subprocess
import sys

import h5py
import numpy as np
import pytest

from quantal.compile import ir
from quantal.compile.testing import random_network, random_spikes
from quantal.targets import netx
from quantal.targets.verify import verify_netx


def netx_network(rng, sizes):
    """A random deterministic network NetX can hold: weight_exp 0 or 1, biases multiples of 64."""
    net = random_network(rng, sizes, weight_exp_range=(0, 1))
    layers = []
    for la in net.layers:
        neu = dataclasses.replace(la.neuron, bias_mant=rng.integers(-8, 8, la.size).astype(np.int64), bias_exp=6,
                                  current_decay=max(la.neuron.current_decay, 1))  # fmt: skip
        layers.append(dataclasses.replace(la, neuron=neu))
    return net.replace(layers=tuple(layers))


def test_the_file_holds_the_netx_layout(tmp_path):
    net = netx_network(np.random.default_rng(0), [6, 5, 3])
    p = netx.export(net, tmp_path / "n.h5", steps=12)
    with h5py.File(p) as f:
        assert sorted(f["layer"]) == ["0", "1"] and int(f["simulation/tSample"][()]) == 12
        for k, (la, pr) in enumerate(zip(net.layers, net.projections)):
            g = f[f"layer/{k}"]
            assert g["type"][()] == b"dense" and list(g["shape"][()]) == [la.size]
            assert np.array_equal(g["weight"][()], pr.synapse.weight.astype(int) << pr.synapse.weight_exp)
            assert np.array_equal(g["bias"][()] * 64, la.neuron.effective_bias(la.size))
            n = g["neuron"]
            assert n["type"][()] == b"CUBA" and int(n["iDecay"][()]) == la.neuron.current_decay
            assert int(n["vDecay"][()]) == la.neuron.voltage_decay and int(n["vThMant"][()]) == la.neuron.threshold
            assert all(isinstance(n[key], h5py.Dataset) for key in n)  # datasets only
    back = netx.read(p)
    assert [b["iDecay"] for b in back] == [la.neuron.current_decay for la in net.layers]


@pytest.mark.parametrize("change,match", [
    ({"release": 0.5}, "stochastic"), ({"readout": True}, "readout"), ({"weight_exp_range": (-2, -1)}, "floors"),
    ({"weight_exp_range": (3, 3)}, "NetX keeps"),
])  # fmt: skip
def test_what_netx_cannot_hold_is_refused(tmp_path, change, match):
    net = random_network(np.random.default_rng(1), [5, 4], **change)
    with pytest.raises(netx.NetXError, match=match):
        netx.export(net, tmp_path / "n.h5")
    assert not (tmp_path / "n.h5").exists()


def test_biases_must_be_multiples_of_64(tmp_path):
    net = netx_network(np.random.default_rng(2), [4, 3])
    la = net.layers[0]
    odd = dataclasses.replace(la, neuron=dataclasses.replace(la.neuron, bias_mant=3, bias_exp=0))
    with pytest.raises(netx.NetXError, match="multiples of 64"):
        netx.export(net.replace(layers=(odd, *net.layers[1:])), tmp_path / "n.h5")


@pytest.mark.lava
@pytest.mark.slow
@pytest.mark.usefixtures("lava")
@pytest.mark.parametrize("seed", range(3))
def test_netx_built_in_lava_equals_hwsim(seed):
    rng = np.random.default_rng(300 + seed)
    net = netx_network(rng, [int(s) for s in rng.integers(4, 20, 3)])
    x = random_spikes(rng, 3, 8, net.input_size, 0.4)
    div, hw = verify_netx(net, x, steps=11)
    assert div is None, div
    assert sum(hw[f"{la}.spikes"].sum() for la in net.layer_names) > 0


def test_cli_export_netx(tmp_path):
    net = netx_network(np.random.default_rng(3), [5, 4])
    p = ir.save(net, tmp_path / "n.qnet")
    r = subprocess.run([sys.executable, "-m", "quantal", "export", str(p), "--target", "netx", "-o",
                        str(tmp_path / "n.h5"), "--steps", "8"], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0 and (tmp_path / "n.h5").exists()
    stoch = ir.save(random_network(np.random.default_rng(4), [5, 4], release=0.5), tmp_path / "s.qnet")
    r = subprocess.run([sys.executable, "-m", "quantal", "export", str(stoch), "--target", "netx", "-o",
                        str(tmp_path / "s.h5")], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and "stochastic" in r.stderr and len(r.stderr.splitlines()) == 1


def test_tsample_comes_from_the_network_or_steps_never_zero(tmp_path):
    net = netx_network(np.random.default_rng(3), [6, 5, 3])
    with pytest.raises(netx.NetXError, match="tSample"):
        netx.export(net, tmp_path / "n.h5")  # no stored run length, no steps
    stored = net.replace(metadata={"input": {"encoder": "rate", "steps": 7, "run_steps": 9}})
    with h5py.File(netx.export(stored, tmp_path / "s.h5")) as f:
        assert int(f["simulation/tSample"][()]) == 9
    qp = ir.save(stored, tmp_path / "s.qnet")
    for extra, want in (([], 9), (["--steps", "20"], 20)):
        r = subprocess.run([sys.executable, "-m", "quantal", "export", str(qp), "--target", "netx", "-o",
                            str(tmp_path / "c.h5"), *extra], capture_output=True, text=True)  # fmt: skip
        assert r.returncode == 0, r.stderr
        with h5py.File(tmp_path / "c.h5") as f:
            assert int(f["simulation/tSample"][()]) == want
    r = subprocess.run([sys.executable, "-m", "quantal", "export", str(ir.save(net, tmp_path / "n.qnet")), "--target",
                        "netx", "-o", str(tmp_path / "d.h5")], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and "tSample" in r.stderr and r.stderr.count("\n") == 1
