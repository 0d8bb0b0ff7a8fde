"""NIR export and import: exact round trips of quantal networks, graphs as snnTorch writes them."""

import subprocess
import sys
import warnings

import numpy as np
import pytest

from quantal.compile import ir
from quantal.compile.testing import random_network, random_spikes
from quantal.hwsim import simulate
from quantal.targets import nir as qnir


def export_quiet(net, path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        qnir.export(net, path)
    return [str(w.message) for w in caught]


@pytest.mark.parametrize("case", range(8))
def test_quantal_networks_round_trip_exactly(tmp_path, case):
    rng = np.random.default_rng(case)
    net = random_network(rng, [int(s) for s in rng.integers(2, 12, 4)], release="random" if case % 2 else None,
                         weight_fixed=case % 3 == 0, escape=case < 4, readout=case % 2 == 0,
                         memoryless=case == 5)  # fmt: skip
    net = net.replace(metadata={"input": {"steps": 3}})
    msgs = export_quiet(net, tmp_path / "n.nir")
    assert any("fixed-point rounding" in m for m in msgs)
    assert any("release" in m for m in msgs) == (case % 2 == 1)
    back, rows = qnir.import_file(tmp_path / "n.nir")
    assert back == net and rows == []


def test_node_types_follow_the_conventions(tmp_path):
    import nir

    rng = np.random.default_rng(0)
    net = random_network(rng, [5, 4, 3], readout=True)
    export_quiet(net, tmp_path / "n.nir")
    g = nir.read(str(tmp_path / "n.nir"))
    kinds = {k: type(v).__name__ for k, v in g.nodes.items()}
    first, last = net.layers[0], net.layers[1]
    assert kinds[f"{first.name}.syn"] == "Linear"
    n0 = g.nodes[first.name]
    cd, vd = first.neuron.current_decay, first.neuron.voltage_decay
    if cd >= 1 and vd >= 1:
        assert kinds[first.name] == "CubaLIF"
        # forward Euler with dt: alpha = 1 - dt / tau_syn, and the input gain (dt / tau_syn) w_in = 1
        assert np.allclose(1 - 1e-4 / n0.tau_syn, 1 - cd / 4096) and np.allclose(1e-4 / n0.tau_syn * n0.w_in, 1)
        assert np.allclose(n0.v_threshold, first.neuron.threshold)
    assert kinds[last.name] in ("CubaLI", "I", "LI")


def float_run(layers, x, steps):
    """The float layers of an imported graph with the IR's timing (one step of delay per layer)."""
    s = x.astype(float)
    outs = []
    for la in layers:
        n = s.shape[0]
        u = np.zeros((n, la["w"].shape[0]))
        v = np.zeros_like(u)
        out = np.zeros((n, steps, u.shape[1]))
        for t in range(steps):
            a = (s[:, t - 1] if 1 <= t <= s.shape[1] else 0 * s[:, 0]) @ la["w"].T
            u = la["alpha"] * u + a
            v = la["beta"] * v + u + la["bias"]
            spk = (v > la["threshold"]) & la["spiking"]
            v = np.where(spk, 0.0, v)
            out[:, t] = spk
        outs.append(out)
        s = out
    return outs


def snntorch_graph():
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    import nir
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 16), snn.Synaptic(alpha=0.5, beta=0.75, init_hidden=True),
                                torch.nn.Linear(16, 4), snn.Leaky(beta=0.9, init_hidden=True, output=True))  # fmt: skip
    with torch.no_grad():
        model[0].weight.mul_(2.0)
    infer = nir.NIRGraph.infer_types
    nir.NIRGraph.infer_types = lambda self: None  # snnTorch 1.0's shape inference trips on its own graph
    try:
        return export_to_nir(model, torch.zeros(1, 20))
    finally:
        nir.NIRGraph.infer_types = infer


def test_a_graph_written_by_snntorch_imports_and_runs(tmp_path):
    graph = snntorch_graph()
    rng = np.random.default_rng(1)
    x = random_spikes(rng, 200, 12, 20, 0.3)
    net, rows = qnir.from_nir(graph, calib=x, name="snn")
    la0, la1 = net.layers
    # snnTorch Synaptic(alpha=.5, beta=.75) -> current_decay 2048, voltage_decay 1024; Leaky(beta=.9) -> u = a
    assert (la0.neuron.current_decay, la0.neuron.voltage_decay) == (2048, 1024)
    assert (la1.neuron.current_decay, la1.neuron.voltage_decay) == (4096, 410)
    assert la0.neuron.threshold == round(rows[0]["scale"] * 1.0) and rows[0]["saturated_weights"] == 0
    # behaviour: hwsim on the quantised network against the float layers with the IR's timing
    fl = qnir._float_layers(graph, qnir._chain(graph), 1e-4)
    want = float_run(fl, x, 13)
    got = simulate(net, x, steps=13, record=("spikes",))
    for la, w in zip(net.layers, want):
        s = got[f"{la.name}.spikes"]
        assert s.sum() > 0 and (s == w).mean() > 0.97, la.name  # quantisation flips only rare spikes


def test_cli_export_import_and_errors(tmp_path):
    import nir

    net = random_network(np.random.default_rng(2), [6, 5, 3], readout=True)
    p = ir.save(net, tmp_path / "n.qnet")
    r = subprocess.run([sys.executable, "-m", "quantal", "export", str(p), "--target", "nir", "-o",
                        str(tmp_path / "n.nir")], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0 and "warning: NIR cannot express" in r.stderr
    r = subprocess.run([sys.executable, "-m", "quantal", "import", str(tmp_path / "n.nir"), "-o",
                        str(tmp_path / "b.qnet")], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0 and ir.load(tmp_path / "b.qnet") == net
    g = nir.NIRGraph(nodes={"input": nir.Input({"input": np.array([2])}), "a": nir.Linear(weight=np.ones((2, 2))),
                            "b": nir.Linear(weight=np.ones((2, 2))), "output": nir.Output({"output": np.array([2])})},
                     edges=[("input", "a"), ("input", "b"), ("a", "output"), ("b", "output")])  # fmt: skip
    nir.write(str(tmp_path / "bad.nir"), g)
    r = subprocess.run([sys.executable, "-m", "quantal", "import", str(tmp_path / "bad.nir"), "-o",
                        str(tmp_path / "c.qnet")], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and "feed-forward" in r.stderr and not (tmp_path / "c.qnet").exists()


def test_recurrent_and_branching_graphs_are_refused_by_name():
    import nir

    from quantal.targets.nir import NIRError, from_nir

    o = np.ones(3)
    nodes = {"input": nir.Input({"input": np.array([3])}), "fc": nir.Linear(weight=np.eye(3)),
             "lif": nir.LIF(tau=o * 0.01, r=o, v_leak=0 * o, v_threshold=o), "rec": nir.Linear(weight=np.eye(3)),
             "output": nir.Output({"output": np.array([3])})}  # fmt: skip
    rec = nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"),
                                           ("lif", "output")], type_check=False)  # fmt: skip
    with pytest.raises(NIRError, match="node 'lif': a recurrent edge"):
        from_nir(rec)
    branch = nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("input", "rec"), ("fc", "lif"), ("rec", "lif"),
                                              ("lif", "output")], type_check=False)  # fmt: skip
    with pytest.raises(NIRError, match="node 'input': 2 successors"):
        from_nir(branch)
