"""NIR export and import: exact round trips, the node conventions, foreign graphs of every supported node type
against a plain-numpy simulator of NIR's semantics, and one-line refusals naming the node."""

import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest

from quantal.compile import ir
from quantal.compile.testing import random_graph, random_network
from quantal.hwsim import simulate
from quantal.targets import nir as qnir

nir = pytest.importorskip("nir")


def quiet(f, *a, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = f(*a, **kw)
    return out, [str(w.message) for w in caught]


@pytest.mark.parametrize("case", range(8))
def test_quantal_networks_round_trip_exactly(tmp_path, case):
    rng = np.random.default_rng(case)
    if case < 4:
        net = random_network(rng, [int(s) for s in rng.integers(2, 12, 4)], release="random" if case % 2 else None,
                             weight_fixed=case % 3 == 0, escape=case < 2, readout=case % 2 == 0)  # fmt: skip
    else:
        net = random_graph(rng, conv=case % 2 == 0, release="random" if case == 5 else None, escape=case == 6)
    net = net.replace(metadata={"input": {"steps": 3}})
    _, msgs = quiet(qnir.export, net, tmp_path / "n.nir")
    assert any("fixed-point rounding" in m for m in msgs)
    back, rows = qnir.import_file(tmp_path / "n.nir")
    assert back == net and rows == []


def test_node_names_types_and_fields_follow_the_peer_conventions(tmp_path):
    net = random_graph(np.random.default_rng(3), conv=False, recurrent=True, skips=False, max_delay=0,
                       per_neuron=False, subtract=False, readout=False)  # fmt: skip
    quiet(qnir.export, net, tmp_path / "n.nir")
    g = nir.read(str(tmp_path / "n.nir"))
    assert all("." not in k for k in g.nodes)  # nirtorch rewrites dots
    kinds = {type(v).__name__ for v in g.nodes.values()}
    assert "Linear" not in kinds and "Affine" in kinds
    with h5py.File(tmp_path / "n.nir") as f:  # nir <= 1.0.4 cannot read v_reset
        names = []
        f.visit(names.append)
        assert not any(n.endswith("v_reset") for n in names)
    for la in net.layers:
        node = g.nodes[la.name]
        cd = la.neuron.current_decay
        if type(node).__name__ == "CubaLIF":  # Euler: alpha = 1 - dt/tau_syn, gains (dt/tau) w_in = (dt/tau) r = 1
            assert np.allclose(1 - 1e-4 / node.tau_syn, 1 - cd / 4096)
            assert np.allclose(1e-4 / node.tau_syn * node.w_in, 1)
            assert np.allclose(1e-4 / node.tau_mem * node.r, 1) and np.allclose(node.v_threshold, la.neuron.threshold)
        elif type(node).__name__ in ("LIF", "IF"):
            assert np.allclose(node.r, 1) and cd == 4096
    rec = [p for p in net.projections if p.source == p.target]
    assert rec and all((p.target, p.name.replace(".", "_")) in g.edges or (p.source, p.name.replace(".", "_")) in
                       g.edges for p in rec)  # fmt: skip


# ------------------------------------------------------------------------ an independent NIR simulator


def nir_sim(graph, x, dt):
    """NIR's semantics as the peers run them: nodes evaluated in topological order within a step, a recurrent edge
    reading its source's output of the previous step, Euler steps of length dt, IF/I gain r per step, reset to 0."""
    nodes, edges = graph.nodes, graph.edges
    pred = {k: [a for a, b in edges if b == k] for k in nodes}
    order, seen, back = [], set(), set()

    def visit(k, stack):
        seen.add(k)
        stack.add(k)
        for a, b in edges:
            if a == k:
                if b in stack:
                    back.add((a, b))
                elif b not in seen:
                    visit(b, stack)
        stack.discard(k)
        order.insert(0, k)

    visit("input", set())
    out_prev, state = {}, {}
    ys = []
    for t in range(x.shape[1]):
        out = {}
        for k in order:
            node = nodes[k]
            kind = type(node).__name__
            if kind == "Input":
                out[k] = x[:, t].astype(np.float64)
                continue
            ins = [out_prev.get(a, 0.0) if (a, k) in back else out[a] for a in pred[k]]
            z = sum(ins)
            s = state.get(k)
            if kind in ("Affine", "Linear"):
                y = z.reshape(z.shape[0], -1) @ node.weight.T + (node.bias if kind == "Affine" else 0)
            elif kind == "Conv2d":
                import torch

                y = torch.nn.functional.conv2d(torch.from_numpy(z), torch.from_numpy(node.weight),
                                               torch.from_numpy(node.bias), stride=tuple(node.stride),
                                               padding=tuple(node.padding), dilation=tuple(node.dilation),
                                               groups=int(node.groups)).numpy()  # fmt: skip
            elif kind == "Scale":
                y = z * node.scale
            elif kind == "Flatten":
                y = z.reshape(z.shape[0], -1)
            elif kind in ("SumPool2d", "AvgPool2d"):
                kk = int(np.asarray(node.kernel_size).reshape(-1)[0])
                n, c, h, w = z.shape
                y = z.reshape(n, c, h // kk, kk, w // kk, kk).sum((3, 5)) / (kk * kk if kind == "AvgPool2d" else 1)
            elif kind == "Delay":
                d = int(round(float(np.asarray(node.delay).reshape(-1)[0]) / dt))
                buf = s if s is not None else [np.zeros_like(z)] * d
                buf = buf + [z]
                y, state[k] = buf[0], buf[1:]
                out[k] = y
                continue
            elif kind == "LI":  # tau dv/dt = v_leak - v + r z
                v = (0 if s is None else s) + dt / node.tau * (node.v_leak - (0 if s is None else s) + node.r * z)
                y, state[k] = v, v
            elif kind == "I":
                v = (0 if s is None else s) + node.r * z
                y, state[k] = v, v
            elif kind in ("LIF", "IF"):
                v0 = 0 if s is None else s
                v = v0 + (dt / node.tau * (node.v_leak - v0 + node.r * z) if kind == "LIF" else node.r * z)
                y = (v > node.v_threshold).astype(float)
                state[k] = np.where(y > 0, 0.0, v)
            elif kind in ("CubaLIF", "CubaLI"):
                i0, v0 = (0, 0) if s is None else s
                i = i0 + dt / node.tau_syn * (-i0 + node.w_in * z)
                v = v0 + dt / node.tau_mem * (node.v_leak - v0 + node.r * i)
                y = (v > node.v_threshold).astype(float) if kind == "CubaLIF" else v
                state[k] = (i, np.where(y > 0, 0.0, v) if kind == "CubaLIF" else v)
            elif kind == "Threshold":
                y = (z > node.threshold).astype(float)
            elif kind == "Output":
                y = z
            else:  # pragma: no cover
                raise AssertionError(kind)
            out[k] = y
        out_prev = out
        ys.append(out["output"].reshape(x.shape[0], -1))
    return np.stack(ys, 1)


def run_imported(graph, x, dt, **kw):
    """The imported network, its report, its hwsim output and its float model's output, aligned with the peer's
    steps (time constants on the 1/4096 grid make the float model equal NIR's semantics)."""
    from quantal.compile.quantize import float_run

    net, rows = quiet(qnir.from_nir, graph, calib=x, dt=dt, **kw)[0]
    d = net.metadata["nir"]["delay_steps"]
    xp = np.concatenate([x, np.zeros((x.shape[0], d, *x.shape[2:]), x.dtype)], 1)
    out = net.layers[-1]
    rec = simulate(net, xp, steps=x.shape[1] + d, record=("spikes", "v"))
    hw = (rec[f"{out.name}.spikes"] if out.neuron.kind != "readout" else rec[f"{out.name}.v"])[:, d:]
    fg, _, _ = quiet(qnir._float_graph, graph, dt)[0]
    fl = float_run(fg, xp, x.shape[1] + d)[0][fg.layers[-1].name][:, d:]
    return net, rows, hw, fl


def _g(nodes, edges):
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _spk(rng, shape, n=24, t=30, p=0.3):
    return (rng.random((n, t, *shape)) < p).astype(np.uint8)


def cnn_graph(rng, dt):
    th = 0.6 + 0.8 * rng.random((6, 2, 2))
    nodes = {"input": nir.Input({"input": np.array([1, 8, 8])}),
             "conv0": nir.Conv2d(input_shape=np.array([8, 8]), weight=rng.normal(0, 0.8, (4, 1, 3, 3)),
                                 stride=np.array([1, 1]), padding=np.array([1, 1]), dilation=np.array([1, 1]),
                                 groups=1, bias=rng.uniform(0, 0.1, 4)),
             "lif0": nir.LIF(tau=np.full((4, 8, 8), 8e-3), r=np.full((4, 8, 8), 8.0), v_leak=np.zeros((4, 8, 8)),
                             v_threshold=np.ones((4, 8, 8))),
             "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
             "conv1": nir.Conv2d(input_shape=np.array([4, 4]), weight=rng.normal(0, 0.5, (6, 4, 3, 3)),
                                 stride=np.array([1, 1]), padding=np.array([0, 0]), dilation=np.array([1, 1]),
                                 groups=1, bias=np.zeros(6)),
             "if1": nir.IF(r=np.ones((6, 2, 2)), v_threshold=th),
             "flat": nir.Flatten(input_type={"input": np.array([6, 2, 2])}, start_dim=0, end_dim=-1),
             "fc": nir.Affine(weight=rng.normal(0, 0.8, (5, 24)), bias=np.zeros(5)),
             "out": nir.Threshold(threshold=np.full(5, 0.5)), "output": nir.Output({"output": np.array([5])})}
    edges = [("input", "conv0"), ("conv0", "lif0"), ("lif0", "pool"), ("pool", "conv1"), ("conv1", "if1"),
             ("if1", "flat"), ("flat", "fc"), ("fc", "out"), ("out", "output")]  # fmt: skip
    return _g(nodes, edges)


def test_a_cnn_with_conv_biases_sum_pooling_and_per_neuron_thresholds_imports_faithfully():
    rng = np.random.default_rng(0)
    dt = 1e-3
    g = cnn_graph(rng, dt)
    x = _spk(rng, (1, 8, 8))
    want = nir_sim(g, x, dt)
    net, rows, got, fl = run_imported(g, x, dt)
    layers, projs = {la.name: la for la in net.layers}, {p.name: p for p in net.projections}
    assert projs["conv1"].synapse.stride == (2, 2)  # the sum pool is fused into the conv
    assert np.unique(layers["if1"].neuron.threshold).size > 1  # per-neuron thresholds kept
    assert want.sum() > 20 and (fl == want).mean() > 0.999  # the float model: NIR's semantics
    assert (got == want).mean() > 0.95  # 8-bit weights flip a few spikes


def test_a_recurrent_cubalif_network_in_a_subgraph_with_delays_imports_faithfully():
    rng = np.random.default_rng(1)
    dt = 1e-4
    n = 12
    cell = nir.CubaLIF(tau_syn=np.full(n, 2e-4), tau_mem=np.full(n, 4e-4), r=np.full(n, 5.0), v_leak=np.zeros(n),
                       v_threshold=np.full(n, 1.0), w_in=np.full(n, 2.0))  # fmt: skip
    sub = _g({"input": nir.Input({"input": np.array([n])}), "lif": cell,
              "w_rec": nir.Linear(weight=rng.normal(0, 0.3, (n, n))), "output": nir.Output({"output": np.array([n])})},
             [("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])  # fmt: skip
    nodes = {"input": nir.Input({"input": np.array([10])}), "fc0": nir.Affine(weight=rng.normal(0, 0.7, (n, 10)),
                                                                              bias=rng.uniform(0, 0.2, n)),
             "rnn": sub, "delay": nir.Delay(delay=np.full(n, 2 * dt)),
             "fc1": nir.Linear(weight=rng.normal(0, 1, (4, n))),
             "scale": nir.Scale(scale=np.full(4, 1.5)),
             "ro": nir.CubaLI(tau_syn=np.full(4, 4e-4), tau_mem=np.full(4, 8e-4), r=np.full(4, 10.0),
                              v_leak=np.zeros(4), w_in=np.full(4, 4.0)),
             "output": nir.Output({"output": np.array([4])})}  # fmt: skip
    edges = [("input", "fc0"), ("fc0", "rnn"), ("rnn", "delay"), ("delay", "fc1"), ("fc1", "scale"), ("scale", "ro"),
             ("ro", "output")]  # fmt: skip
    g = _g(nodes, edges)
    flat = _g({**{k: v for k, v in nodes.items() if k != "rnn"}, "lif": cell, "w_rec": sub.nodes["w_rec"]},
              [("input", "fc0"), ("fc0", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "delay"),
               *edges[3:]])  # fmt: skip
    x = _spk(rng, (10,))
    want = nir_sim(flat, x, dt)
    net, rows, got, fl = run_imported(g, x, dt)
    names = {p.name: p for p in net.projections}
    assert names["rnn_w_rec"].source == names["rnn_w_rec"].target and names["fc1"].delay == 2
    assert np.abs(fl - want).max() < 1e-9 * np.abs(want).max()
    v = got / 64 / rows[-1]["scale"]  # the readout's v in float units
    assert np.abs(v - want).mean() < 0.02 * np.abs(want).max()  # spike flips upstream move v by a weight


def test_current_nodes_integrators_and_identity_inputs_import():
    rng = np.random.default_rng(2)
    dt = 1e-3
    nodes = {"input": nir.Input({"input": np.array([8])}), "fc": nir.Linear(weight=rng.normal(0, 1, (8, 8))),
             "cur": nir.LI(tau=np.full(8, 4e-3), r=np.full(8, 4.0), v_leak=np.zeros(8)),
             "mem": nir.IF(r=np.full(8, 0.5), v_threshold=np.full(8, 1.0)),
             "fc2": nir.Linear(weight=rng.normal(0, 1, (3, 8))), "acc": nir.I(r=np.ones(3)),
             "output": nir.Output({"output": np.array([3])})}  # fmt: skip
    g = _g(nodes, [("input", "fc"), ("fc", "cur"), ("cur", "mem"), ("mem", "fc2"), ("fc2", "acc"), ("acc", "output")])
    x = _spk(rng, (8,))
    want = nir_sim(g, x, dt)
    net, rows, got, fl = run_imported(g, x, dt)
    assert [la.name for la in net.layers] == ["mem", "acc"] and net.layers[0].neuron.current_decay == 1024
    assert np.abs(fl - want).max() < 1e-9 * np.abs(want).max()
    v = got / 64 / rows[-1]["scale"]
    assert np.abs(v - want).mean() < 0.02 * np.abs(want).max()


def test_a_quantal_export_read_as_a_foreign_graph_runs_like_the_original():
    """Without quantal's metadata the graph goes through the foreign-graph path: depths, recurrence, skips,
    delays and conv layers come back with the timing of the original."""
    rng = np.random.default_rng(4)
    for conv in (False, True):
        # per-neuron conv biases have no NIR form (a Conv2d bias is one per channel): scalar parameters here
        net = random_graph(rng, conv=conv, release=None, escape=False, subtract=False, readout=False,
                           per_neuron=not conv)  # fmt: skip
        g, _ = quiet(qnir.to_nir, net)
        g.metadata = {"dt": 1e-4}
        x = _spk(rng, net.input_shape, n=16, t=20)
        (back, _), _ = quiet(qnir.from_nir, g, calib=x)
        steps = 30
        a = simulate(net, x, steps=steps)
        b = simulate(back, x, steps=steps)
        d_a, d_b = qnir.depths(net)[0], qnir.depths(back)[0]  # each side's lag of a layer behind the NIR timeline
        for la in net.layers:
            s = d_a[la.name] - d_b[la.name]
            assert s >= 0
            want, got = a[f"{la.name}.spikes"][:, s:], b[f"{la.name}.spikes"][:, : steps - s]
            assert (want == got).mean() > 0.9, (conv, la.name)  # re-quantised; biases act from step 0 in the original


# ------------------------------------------------------------------------------------------ refusals


def _lif(n=3):
    o = np.ones(n)
    return nir.LIF(tau=o * 0.01, r=o, v_leak=0 * o, v_threshold=o)


@pytest.mark.parametrize("case, match", [
    ("conv1d", "node 'c': Conv1d nodes do not import"),
    ("reset", "node 'lif': v_reset != 0"),
    ("tau", "node 'lif': tau must be at least dt"),
    ("delay", "node 'd': the delay must be one non-negative whole number of steps"),
    ("two_outputs", "expected one Output node, found 2"),
    ("dangling", "node 'fc': its input path reaches"),
    ("span", "node 'back': a recurrent edge from 'l2' back to 'l1' spans 1 more steps"),
])  # fmt: skip
def test_refusals_are_one_line_naming_the_node(case, match):
    nodes = {"input": nir.Input({"input": np.array([3])}), "fc": nir.Linear(weight=np.eye(3)), "lif": _lif(),
             "output": nir.Output({"output": np.array([3])})}  # fmt: skip
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "output")]
    if case == "conv1d":
        nodes["c"] = nir.Conv1d(input_shape=3, weight=np.ones((1, 1, 1)), stride=1, padding=0, dilation=1, groups=1,
                                bias=np.zeros(1))  # fmt: skip
        edges = [("input", "c"), ("c", "fc"), *edges[1:]]
    elif case == "reset":
        nodes["lif"] = nir.LIF(tau=np.ones(3) * 0.01, r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3),
                               v_reset=np.full(3, 0.5))  # fmt: skip
    elif case == "tau":
        nodes["lif"] = nir.LIF(tau=np.full(3, 1e-6), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3))
    elif case == "delay":
        nodes["d"] = nir.Delay(delay=np.array([1e-4, 2e-4, 1e-4]))
        edges = [("input", "d"), ("d", "fc"), *edges[1:]]
    elif case == "two_outputs":
        nodes["output2"] = nir.Output({"output": np.array([3])})
        edges.append(("lif", "output2"))
    elif case == "dangling":
        nodes["x"] = nir.Linear(weight=np.eye(3))
        edges = [("input", "x"), ("x", "fc"), *edges[1:]]
    elif case == "span":
        nodes.update({"fc2": nir.Linear(weight=np.eye(3)), "l1": _lif(), "l2": _lif(),
                      "back": nir.Linear(weight=np.eye(3))})  # fmt: skip
        nodes.pop("lif")
        edges = [("input", "fc"), ("fc", "l1"), ("l1", "fc2"), ("fc2", "l2"), ("l2", "back"), ("back", "l1"),
                 ("l2", "output")]  # fmt: skip
    with pytest.raises(qnir.NIRError, match=match) as e:
        qnir.from_nir(_g(nodes, edges), dt=1e-4)
    assert "\n" not in str(e.value)


def test_cli_export_import_and_errors(tmp_path):
    net = random_network(np.random.default_rng(2), [6, 5, 3], readout=True)
    p = ir.save(net, tmp_path / "n.qnet")
    r = subprocess.run([sys.executable, "-m", "quantal", "export", str(p), "--target", "nir", "-o",
                        str(tmp_path / "n.nir")], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0 and "warning: NIR cannot express" in r.stderr
    r = subprocess.run([sys.executable, "-m", "quantal", "import", str(tmp_path / "n.nir"), "-o",
                        str(tmp_path / "b.qnet")], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0 and ir.load(tmp_path / "b.qnet") == net
    conv1d = nir.Conv1d(input_shape=2, weight=np.ones((1, 1, 1)), stride=1, padding=0, dilation=1, groups=1,
                        bias=np.zeros(1))  # fmt: skip
    g = _g({"input": nir.Input({"input": np.array([2])}), "a": conv1d, "output": nir.Output({"output": np.array([2])})},
           [("input", "a"), ("a", "output")])
    nir.write(str(tmp_path / "bad.nir"), g)
    r = subprocess.run([sys.executable, "-m", "quantal", "import", str(tmp_path / "bad.nir"), "-o",
                        str(tmp_path / "c.qnet")], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and "node 'a': Conv1d" in r.stderr and not (tmp_path / "c.qnet").exists()
    assert len(r.stderr.strip().splitlines()) == 1


def test_unreadable_and_oversized_files_are_refused_before_reading(tmp_path, monkeypatch):
    (tmp_path / "x.nir").write_bytes(b"not hdf5")
    with pytest.raises(qnir.NIRError, match="not an HDF5 file"):
        qnir.import_file(tmp_path / "x.nir")
    with h5py.File(tmp_path / "big.nir", "w") as f:
        f.create_dataset("node/w", shape=(1024, 1024), dtype="f8")  # 8 MiB, unallocated
    monkeypatch.setattr(qnir, "MAX_FILE_BYTES", 2**20)
    with pytest.raises(qnir.NIRError, match="at most 1,048,576"):
        qnir.import_file(tmp_path / "big.nir")
