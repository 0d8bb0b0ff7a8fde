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


# ----------------------------------------------------------------------- conv, recurrent and delayed layers


def netx_graph(rng, *, conv=True, recurrent=True, delay=1):
    """A random NetX-compatible IR graph: conv layers on a [C, H, W] input, a flatten, a dense layer with a
    projection onto itself and a delay, a dense output layer."""
    from quantal.compile.ir import Conv2dSynapse, DenseSynapse, Layer, Network, Neuron, Projection, conv_out

    def w(shape, lo=-30, hi=60):
        return rng.integers(lo, hi, shape).astype(np.int8)

    def neuron(shape, th):  # biases: one per channel of a conv layer, per neuron of a dense one
        b = rng.integers(-2, 3, shape[0]).astype(np.int64)
        b = np.repeat(b, int(np.prod(shape[1:]))) if len(shape) == 3 else b
        return Neuron(kind="lif", current_decay=int(rng.integers(1, 4097)), voltage_decay=int(rng.integers(0, 4097)),
                      threshold=int(th), bias_mant=b, bias_exp=6)

    layers, projs = [], []
    shape, src = (2, 6, 6), "input"
    if conv:
        for name, cout, k, stride, pad, groups in (("c0", 4, 3, 1, 1, 2), ("c1", 4, 3, 2, 0, 1)):
            out = (cout, *(conv_out(n, k, stride, pad, 1) for n in shape[1:]))
            syn = Conv2dSynapse(weight=w((cout, shape[0] // groups, k, k)), stride=(stride, stride), padding=(pad, pad),
                                groups=groups, weight_exp=int(rng.integers(0, 2)))  # fmt: skip
            layers.append(Layer(name=name, shape=out, neuron=neuron(out, 60)))
            projs.append(Projection(name=f"{name}.in", source=src, target=name, synapse=syn))
            shape, src = out, name
    n_in = int(np.prod(shape))
    layers.append(Layer(name="d0", shape=(10,), neuron=neuron((10,), 90)))
    projs.append(Projection(name="d0.in", source=src, target="d0", delay=delay,
                            synapse=DenseSynapse(weight=w((10, n_in)), weight_exp=int(rng.integers(0, 2)))))
    if recurrent:
        projs.append(Projection(name="d0.rec", source="d0", target="d0",
                                synapse=DenseSynapse(weight=w((10, 10), -40, 40), weight_exp=0)))  # fmt: skip
    layers.append(Layer(name="d1", shape=(5,), neuron=neuron((5,), 60)))
    projs.append(Projection(name="d1.in", source="d0", target="d1", synapse=DenseSynapse(weight=w((5, 10)))))
    return Network(name="g", input_shape=(2, 6, 6) if conv else (n_in,), layers=tuple(layers),
                   projections=tuple(projs), metadata={"input": {"run_steps": 14}})  # fmt: skip


@pytest.mark.lava
@pytest.mark.slow
@pytest.mark.usefixtures("lava")
@pytest.mark.parametrize("seed, conv, recurrent, delay", [(0, True, True, 0), (1, True, False, 1), (2, False, True, 0),
                                                         (3, False, False, 2)])
def test_conv_recurrent_and_delayed_graphs_run_bit_exact_in_lava_dls_reader(seed, conv, recurrent, delay):
    rng = np.random.default_rng(400 + seed)
    net = netx_graph(rng, conv=conv, recurrent=recurrent, delay=delay)
    x = random_spikes(rng, 3, 10, net.input_size, 0.5).reshape(3, 10, *net.input_shape)
    div, hw = verify_netx(net, x, steps=14)
    assert div is None, div
    assert all(hw[f"{la}.spikes"].sum() > 0 for la in net.layer_names)


def test_netx_files_import_back_into_the_same_network(tmp_path):
    from quantal.hwsim import simulate

    for seed, conv, recurrent, delay in ((0, True, True, 0), (1, True, False, 1), (2, False, False, 2)):
        rng = np.random.default_rng(500 + seed)
        net = netx_graph(rng, conv=conv, recurrent=recurrent, delay=delay)
        back = netx.read_network(netx.export(net, tmp_path / "n.h5"))
        assert [la.shape for la in back.layers] == [la.shape for la in net.layers]
        assert back.metadata["input"]["run_steps"] == 14 and [p.delay for p in back.projections] == [
            p.delay for p in net.projections]
        x = random_spikes(rng, 4, 10, net.input_size, 0.5).reshape(4, 10, *net.input_shape)
        a, b = simulate(net, x, steps=14, record=("spikes", "u", "v")), simulate(back, x, steps=14,
                                                                                  record=("spikes", "u", "v"))
        for la, lb in zip(net.layers, back.layers):
            for q in ("spikes", "u", "v"):
                assert np.array_equal(a[f"{la.name}.{q}"], b[f"{lb.name}.{q}"]), (la.name, q)


def test_pool_layers_import_fused_into_the_next_layer(tmp_path):
    """A file as lava-dl's slayer writes a conv -> pool -> flatten -> dense net: the dense layer (no current
    memory: iDecay 4096) must see exactly W @ sumpool(conv spikes) of the step before, times the pool weight."""
    from quantal.hwsim import simulate

    rng = np.random.default_rng(7)
    conv_w = rng.integers(-30, 30, (3, 1, 3, 3))
    dense_w = rng.integers(-20, 20, (4, 3 * 2 * 2))
    with h5py.File(tmp_path / "p.h5", "w") as f:
        f["simulation/Ts"], f["simulation/tSample"] = 1, 12
        f["layer/0/type"], f["layer/0/shape"] = np.bytes_("input"), np.array([1, 4, 4])
        g = f.create_group("layer/1")
        g["type"], g["shape"], g["weight"] = np.bytes_("conv"), np.array([3, 4, 4]), conv_w
        g["stride"], g["padding"], g["dilation"], g["groups"] = np.array([1, 1]), np.array([1, 1]), np.array([1, 1]), 1
        for key, val in (("type", np.bytes_("CUBA")), ("iDecay", 1024), ("vDecay", 128), ("vThMant", 40),
                         ("refDelay", 1), ("gradedSpike", False)):  # fmt: skip
            g[f"neuron/{key}"] = val
        f["layer/2/type"], f["layer/2/kernel"], f["layer/2/stride"] = np.bytes_("pool"), np.array([2, 2]), np.array(
            [2, 2])
        f["layer/2/weight"] = 2
        f["layer/3/type"] = np.bytes_("flatten")
        g = f.create_group("layer/4")
        g["type"], g["shape"], g["weight"] = np.bytes_("dense"), np.array([4]), dense_w
        for key, val in (("type", np.bytes_("CUBA")), ("iDecay", 4096), ("vDecay", 4096), ("vThMant", 10**5),
                         ("refDelay", 1), ("gradedSpike", False)):  # fmt: skip
            g[f"neuron/{key}"] = val
    net = netx.read_network(tmp_path / "p.h5")
    x = random_spikes(rng, 3, 10, 16, 0.5).reshape(3, 10, 1, 4, 4)
    rec = simulate(net, x, steps=12, record=("spikes", "u"))
    s = rec["layer0.spikes"].reshape(3, 12, 3, 4, 4)
    pooled = s.reshape(3, 12, 3, 2, 2, 2, 2).sum((4, 6)).reshape(3, 12, -1).astype(np.int64)
    want = np.zeros((3, 12, 4), np.int64)
    want[:, 1:] = 64 * 2 * pooled[:, :-1] @ dense_w.T  # one step of synaptic delay; u counts a << 6
    assert s.sum() > 0 and np.array_equal(rec["layer1.u"], want)


@pytest.mark.parametrize("edit, match", [
    (lambda f: f["layer/0"].__setitem__("kind", 1) or f["layer/0/type"].__setattr__("x", 1) or
     f.__delitem__("layer/0/type") or f["layer/0"].__setitem__("type", np.bytes_("average")), "layer 0: layer type"),
    (lambda f: f.__delitem__("layer/0/neuron/vThMant"), "layer 0: no 'vThMant'"),
    (lambda f: f.__delitem__("layer/0/weight") or f["layer/0"].__setitem__("weight", np.full((5, 6), 3.5)),
     "layer 0: weight must be integers"),
    (lambda f: f["layer/0"].__setitem__("delay", np.arange(30).reshape(5, 6)), "layer 0: delays must be one"),
    (lambda f: f.__delitem__("layer"), "no /layer group"),
])  # fmt: skip
def test_bad_netx_files_are_refused_in_one_line(tmp_path, edit, match):
    net = netx_network(np.random.default_rng(5), [6, 5, 3])
    p = netx.export(net, tmp_path / "n.h5", steps=8)
    with h5py.File(p, "r+") as f:
        edit(f)
    with pytest.raises(netx.NetXError, match=match) as e:
        netx.read_network(p)
    assert "\n" not in str(e.value)


def test_cli_imports_netx_files_exactly(tmp_path):
    net = netx_graph(np.random.default_rng(9), conv=True, recurrent=True, delay=0)
    p = netx.export(net, tmp_path / "g.h5")
    r = subprocess.run([sys.executable, "-m", "quantal", "import", str(p), "-o", str(tmp_path / "g.qnet")],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0 and "exactly (NetX integers)" in r.stdout and "tSample 14" in r.stdout, r.stderr
    back = ir.load(tmp_path / "g.qnet")
    assert [p.source for p in back.projections] == [p.source.replace("c0", "layer0").replace("c1", "layer1").replace(
        "d0", "layer2") for p in net.projections]
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["layer/0/type"] = np.bytes_("concat")
    r = subprocess.run([sys.executable, "-m", "quantal", "import", str(tmp_path / "bad.h5"), "-o",
                        str(tmp_path / "b.qnet")], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and "layer 0: layer type 'concat'" in r.stderr and not (tmp_path / "b.qnet").exists()
