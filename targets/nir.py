"""NIR (neuromorphic intermediate representation) export and import (docs/targets.md §NIR).

Conventions. One IR step is one time step of length ``dt`` (default 1e-4 s, snnTorch's default), integrated by
forward Euler. Values are in units of the synaptic input a: weights are ``weight_mant * 2**weight_exp``,
thresholds ``threshold``, biases ``(bias_mant << bias_exp) / 64`` (the IR's v divided by 64). A layer becomes
``<name>.syn`` (``nir.Linear``) followed by neuron nodes:

* current_decay >= 1 and voltage_decay >= 1: ``nir.CubaLIF`` (``nir.CubaLI`` for a readout) with
  ``tau_syn = dt 4096 / current_decay``, ``w_in = 4096 / current_decay``, ``tau_mem = dt 4096 / voltage_decay``,
  ``r = 4096 / voltage_decay``, ``v_leak = bias r``, ``v_threshold = threshold``, ``v_reset = 0``. With
  Euler steps this is u <- alpha u + W x, v <- beta v + u + bias, the IR's float dynamics.
* voltage_decay = 0 (no leak): ``<name>.cur`` (``nir.LI`` with tau_syn, r = w_in; ``nir.I`` with r = 1 / dt when
  current_decay = 0) then ``<name>`` (``nir.IF`` with r = 1 / dt, or ``nir.I`` for a readout). A bias of such a
  layer has no NIR parameter: it is kept in the metadata, with a warning.

What NIR cannot express (the exact integers, the flooring shift of negative exponents, 32/24-bit wraps,
rounding toward zero, release probabilities, escape noise) goes into each node's ``metadata["quantal"]``
with a warning; importing a file that carries it rebuilds the network exactly. Other NIR graphs (as snnTorch
or Norse write them: Linear/Affine followed by CubaLIF, LIF, IF, CubaLI, LI or I) are converted to float
layers and quantised with the compile calibration (docs/compile.md §4).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from quantal.compile.ir import DenseSynapse, EscapeNoise, IRError, Layer, Network, Neuron

DT = 1e-4


class NIRError(ValueError):
    """A NIR graph quantal cannot import, or a network it cannot export; the message names the node."""


def _plain(x: Any) -> Any:
    """A scalar as a Python int (NIR writes arrays compressed, which HDF5 refuses for 0-d arrays)."""
    return int(x) if np.ndim(x) == 0 else np.asarray(x)


def _layer_meta(layer: Layer, syn: DenseSynapse) -> dict[str, Any]:
    neu = layer.neuron
    meta: dict[str, Any] = {"weight": syn.weight, "weight_exp": syn.weight_exp, "kind": neu.kind,
                            "current_decay": neu.current_decay, "voltage_decay": neu.voltage_decay,
                            "threshold": neu.threshold, "bias_mant": _plain(neu.bias_mant),
                            "bias_exp": _plain(neu.bias_exp)}  # fmt: skip
    if syn.release is not None:
        meta["release"] = syn.release
    if syn.weight_fixed is not None:
        meta["weight_fixed"] = syn.weight_fixed
    if neu.escape_noise is not None:
        meta["escape_scale"] = float(neu.escape_noise.scale)
    return meta


def to_nir(net: Network, dt: float = DT) -> Any:
    """The NIR graph of ``net`` (see the module docstring); warns about what NIR cannot express."""
    import nir

    nodes: dict[str, Any] = {"input": nir.Input({"input": np.array([net.input_size])})}
    edges: list[tuple[str, str]] = []
    prev = "input"
    lost = []
    try:
        chain = net.chain_synapses()
    except IRError as e:
        raise NIRError(f"NIR export handles feed-forward chains of dense layers: {e}") from None
    for layer, syn in zip(net.layers, chain):
        neu = layer.neuron
        w = syn.weight.astype(np.float64) * 2.0**syn.weight_exp
        if syn.weight_fixed is not None:
            w = w + syn.weight_fixed.astype(np.float64) * 2.0**syn.weight_exp
        if syn.release is not None:
            w_mean = (syn.release.astype(np.float64) + 1) / 256 * syn.weight * 2.0**syn.weight_exp
            w = w_mean + (0 if syn.weight_fixed is None else syn.weight_fixed * 2.0**syn.weight_exp)
            lost.append(f"layer '{layer.name}': release probabilities (the NIR weights are their expectation)")
        if neu.escape_noise is not None:
            lost.append(f"layer '{layer.name}': escape noise (NIR thresholds are deterministic)")
        n = layer.size
        bias = neu.effective_bias(n).astype(np.float64) / 64
        meta = {"quantal": _layer_meta(layer, syn)}
        cd, vd = neu.current_decay, neu.voltage_decay
        spiking = neu.kind != "readout"
        nodes[f"{layer.name}.syn"] = nir.Linear(weight=w)
        edges.append((prev, f"{layer.name}.syn"))
        if cd >= 1 and vd >= 1:
            common = {"tau_syn": np.full(n, dt * 4096 / cd), "tau_mem": np.full(n, dt * 4096 / vd),
                      "r": np.full(n, 4096 / vd), "v_leak": bias * 4096 / vd,
                      "w_in": np.full(n, 4096 / cd)}  # fmt: skip
            if spiking:
                nodes[layer.name] = nir.CubaLIF(**common, v_threshold=np.full(n, float(neu.threshold)),
                                                v_reset=np.zeros(n), metadata=meta)  # fmt: skip
            else:
                nodes[layer.name] = nir.CubaLI(**common, metadata=meta)
            edges.append((f"{layer.name}.syn", layer.name))
        else:
            if cd >= 1:
                cur = nir.LI(tau=np.full(n, dt * 4096 / cd), r=np.full(n, 4096 / cd), v_leak=np.zeros(n))
            else:
                cur = nir.I(r=np.full(n, 1 / dt))
            nodes[f"{layer.name}.cur"] = cur
            if vd == 0:
                mem = (nir.IF(r=np.full(n, 1 / dt), v_threshold=np.full(n, float(neu.threshold)), v_reset=np.zeros(n),
                              metadata=meta) if spiking else nir.I(r=np.full(n, 1 / dt), metadata=meta))  # fmt: skip
                if np.any(bias != 0):
                    lost.append(f"layer '{layer.name}': the bias of a non-leaky neuron (no NIR parameter)")
            else:
                lif = {"tau": np.full(n, dt * 4096 / vd), "r": np.full(n, 4096 / vd), "v_leak": bias * 4096 / vd}
                mem = (nir.LIF(**lif, v_threshold=np.full(n, float(neu.threshold)), v_reset=np.zeros(n),
                               metadata=meta) if spiking else nir.LI(**lif, metadata=meta))  # fmt: skip
            nodes[layer.name] = mem
            edges += [(f"{layer.name}.syn", f"{layer.name}.cur"), (f"{layer.name}.cur", layer.name)]
        if syn.weight_exp < 0:
            lost.append(f"layer '{layer.name}': the floor of a negative weight exponent")
        prev = layer.name
    nodes["output"] = nir.Output({"output": np.array([net.layers[-1].size])})
    edges.append((prev, "output"))
    lost.append("fixed-point rounding (rz decays, 32/24-bit wraps, saturation): the NIR dynamics are in float")
    for msg in lost:
        warnings.warn(f"NIR cannot express {msg}; kept in metadata['quantal']", stacklevel=2)
    import yaml

    meta = {"dt": dt, "quantal": {"name": net.name, "input_size": net.input_size, "format": "quantal.ir",
                                  "version": 1, "metadata_yaml": yaml.safe_dump(dict(net.metadata))}}  # fmt: skip
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def export(net: Network, path: str | Path, dt: float = DT) -> Path:
    """Write ``net`` as a NIR file (HDF5) atomically."""
    import nir

    from quantal.compile.ir import atomic_write_path

    graph = to_nir(net, dt)
    return atomic_write_path(path, lambda tmp: nir.write(str(tmp), graph))  # h5py writes by name


# --------------------------------------------------------------------------------------------- import


def _reaches(succ: dict[str, list[str]], start: str, goal: str) -> bool:
    """Whether ``goal`` is reachable from ``start`` along the edges ``succ``."""
    seen, todo = set(), [start]
    while todo:
        n = todo.pop()
        if n == goal:
            return True
        if n not in seen:
            seen.add(n)
            todo.extend(succ.get(n, []))
    return False


def _chain(graph: Any) -> list[str]:
    """The node names from input to output of a feed-forward chain."""
    succ: dict[str, list[str]] = {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
    inputs = [k for k, v in graph.nodes.items() if type(v).__name__ == "Input"]
    if len(inputs) != 1:
        raise NIRError(f"graph: expected one Input node, found {len(inputs)}")
    order, cur = [inputs[0]], inputs[0]
    while cur in succ:
        nxt = succ[cur]
        if len(nxt) != 1:
            # a successor that leads back here is a recurrent edge; several others are a branch (a skip)
            back = [b for b in nxt if b in order or _reaches(succ, b, cur)]
            what = (f"a recurrent edge (to '{back[0]}')" if back else
                    f"{len(nxt)} successors ({', '.join(map(repr, nxt[:4]))}): a branch")  # fmt: skip
            raise NIRError(f"node '{cur}': {what}; NIR import takes feed-forward chains only (recurrent and "
                           "branching graphs do not import yet)")  # fmt: skip
        cur = nxt[0]
        if cur in order:
            raise NIRError(f"node '{cur}': recurrent graphs do not import")
        order.append(cur)
    return order


def _exact_layer(name: str, m: dict[str, Any]) -> tuple[str, int, DenseSynapse, Neuron]:
    def arr(k: str, dtype: Any) -> np.ndarray | None:
        return None if k not in m else np.asarray(m[k]).astype(dtype)

    def scalar_or(a: Any) -> int | np.ndarray:
        a = np.asarray(a)
        return int(a) if a.ndim == 0 else a.astype(np.int64)

    esc = m.get("escape_scale")
    return (name, int(np.asarray(m["weight"]).shape[0]), DenseSynapse(
        weight=arr("weight", np.int8), weight_exp=int(m["weight_exp"]), release=arr("release", np.uint8),
        weight_fixed=arr("weight_fixed", np.int8)), Neuron(
        kind=str(m["kind"]), current_decay=int(m["current_decay"]), voltage_decay=int(m["voltage_decay"]),
        threshold=int(m["threshold"]), bias_mant=scalar_or(m["bias_mant"]), bias_exp=scalar_or(m["bias_exp"]),
        escape_noise=None if esc is None else EscapeNoise(scale=float(esc))))  # fmt: skip


def _float_layers(graph: Any, order: list[str], dt: float) -> list[dict[str, Any]]:
    """Float layers (W, alpha, beta, bias, threshold, spiking) of a foreign NIR chain."""
    layers: list[dict[str, Any]] = []
    i = 1
    while i < len(order) and type(graph.nodes[order[i]]).__name__ != "Output":
        name = order[i]
        node = graph.nodes[name]
        kind = type(node).__name__
        if kind not in ("Linear", "Affine"):
            raise NIRError(f"node '{name}': expected Linear or Affine before a neuron, found {kind}")
        w = np.asarray(node.weight, np.float64)
        in_bias = np.asarray(node.bias, np.float64) if kind == "Affine" else np.zeros(w.shape[0])
        i += 1
        if i >= len(order):
            raise NIRError(f"node '{name}': the graph ends after a synapse")
        nname, n = order[i], graph.nodes[order[i]]
        nk = type(n).__name__
        size = w.shape[0]
        alpha, g1 = 0.0, 1.0
        if nk in ("LI", "I") and i + 1 < len(order) and type(graph.nodes[order[i + 1]]).__name__ in ("IF", "I", "LIF",
                                                                                                  "LI"):  # fmt: skip
            # a current node, then the membrane node
            if nk == "LI":
                k = dt / np.asarray(n.tau, np.float64)
                alpha, g1 = 1 - k, k * np.asarray(n.r, np.float64)
            else:
                alpha, g1 = np.ones(size), dt * np.asarray(n.r, np.float64)
            i += 1
            nname, n = order[i], graph.nodes[order[i]]
            nk = type(n).__name__
        if nk in ("CubaLIF", "CubaLI"):
            ks = dt / np.asarray(n.tau_syn, np.float64)
            alpha, g1 = 1 - ks, ks * np.asarray(n.w_in, np.float64)
            km = dt / np.asarray(n.tau_mem, np.float64)
            beta, g2, leak = 1 - km, km * np.asarray(n.r, np.float64), km * np.asarray(n.v_leak, np.float64)
        elif nk in ("LIF", "LI"):
            km = dt / np.asarray(n.tau, np.float64)
            beta, g2, leak = 1 - km, km * np.asarray(n.r, np.float64), km * np.asarray(n.v_leak, np.float64)
        elif nk in ("IF", "I"):
            beta, g2, leak = np.ones(size), dt * np.asarray(n.r, np.float64), np.zeros(size)
        else:
            raise NIRError(f"node '{nname}': neuron type {nk} has no IR v1 equivalent "
                           "(supported: CubaLIF, LIF, IF, CubaLI, LI, I)")  # fmt: skip
        spiking = nk in ("CubaLIF", "LIF", "IF")
        th = np.broadcast_to(np.asarray(n.v_threshold, np.float64), (size,)) if spiking else np.zeros(size)
        if spiking and not np.allclose(th, th[0]):
            raise NIRError(f"node '{nname}': per-neuron thresholds do not fit IR v1's one threshold per layer")
        reset = getattr(n, "v_reset", None)
        if reset is not None and np.any(np.asarray(reset) != 0):
            raise NIRError(f"node '{nname}': v_reset != 0 (the IR resets v to 0)")
        gain = np.broadcast_to(np.asarray(g1 * g2, np.float64), (size,))
        # An Affine bias enters the current every step; the IR adds biases to v. Its steady-state contribution
        # gain * b / (1 - alpha) is kept (exact when alpha = 0, the first steps differ otherwise).
        a_mean = float(np.mean(alpha))
        bias_v = in_bias * gain / max(1 - a_mean, 1e-6)
        layers.append({"name": nname.replace(".", "_"), "w": w * gain[:, None],
                       "bias": np.broadcast_to(leak, (size,)) + bias_v,
                       "alpha": float(np.mean(alpha)), "beta": float(np.mean(beta)),
                       "threshold": float(th[0]) if spiking else 0.0, "spiking": spiking})  # fmt: skip
        i += 1
    return layers


def _float_stats(layers: list[dict[str, Any]], x: np.ndarray) -> list[tuple[float, float]]:
    """Largest |u| and |v| (before the reset) per layer of the float model over spikes x (n, T, d)."""
    stats = []
    s = x.astype(np.float64)
    for la in layers:
        n, steps = s.shape[0], s.shape[1] + 1
        u = np.zeros((n, la["w"].shape[0]))
        v = np.zeros_like(u)
        out = np.zeros((n, steps, u.shape[1]))
        umax = vmax = 0.0
        for t in range(steps):
            a = (s[:, t - 1] if 1 <= t <= s.shape[1] else np.zeros((n, s.shape[2]))) @ la["w"].T
            u = la["alpha"] * u + a
            v = la["beta"] * v + u + la["bias"]
            umax, vmax = max(umax, float(np.abs(u).max())), max(vmax, float(np.abs(v).max()))
            spk = (v > la["threshold"]) & la["spiking"]
            v = np.where(spk, 0.0, v)
            out[:, t] = spk
        stats.append((umax, vmax))
        s = out
    return stats


def from_nir(graph: Any, *, calib: np.ndarray | None = None, dt: float | None = None, name: str = "imported",
             margin: float = 2.0) -> tuple[Network, list[dict[str, Any]]]:  # fmt: skip
    """An IR network from a NIR graph, and the quantisation report (empty for an exact quantal round trip).

    A graph written by quantal rebuilds exactly from its metadata. Other graphs are quantised per layer:
    decays ``round(4096 (1 - alpha))``, and the scale calibrated on ``calib`` spikes (n, T, input) when given,
    else from the worst case of binary inputs.
    """
    from quantal.compile.quantize import FloatGraph, FloatLayer, FloatProjection, quantize

    order = _chain(graph)
    gmeta = dict(getattr(graph, "metadata", {}) or {})
    qmeta = gmeta.get("quantal")
    layer_nodes = [k for k in order if "." not in k and k not in ("input", "output")]  # quantal's layer names
    if qmeta is not None and layer_nodes and all(
            "quantal" in (getattr(graph.nodes[k], "metadata", {}) or {}) for k in layer_nodes):
        import yaml

        layers = [_exact_layer(k, graph.nodes[k].metadata["quantal"]) for k in layer_nodes]
        meta = yaml.safe_load(str(qmeta.get("metadata_yaml", "{}"))) or {}
        return Network.chain(str(qmeta.get("name", name)), int(qmeta["input_size"]), layers, meta), []
    dt = float(gmeta.get("dt", DT)) if dt is None else dt
    fl = _float_layers(graph, order, dt)
    if not fl:
        raise NIRError("graph: no layers between Input and Output")
    stats = _float_stats(fl, calib) if calib is not None else None
    chain = []
    for k, la in enumerate(fl):
        size = la["w"].shape[0]
        full = lambda x, size=size: np.full(size, float(x))  # noqa: E731
        # decays round to the IR's 1/4096 grid; quantize turns alpha, beta into round(4096 (1 - r))
        alpha = 1 - round(4096 * (1 - la["alpha"])) / 4096
        beta = 1 - round(4096 * (1 - la["beta"])) / 4096
        fla = FloatLayer(name=la["name"], shape=(size,), kind="lif" if la["spiking"] else "readout",
                         alpha=full(alpha), beta=full(beta), threshold=full(la["threshold"]),
                         bias=np.asarray(la["bias"], np.float64),
                         stats=None if stats is None else {"u": stats[k][0], "v": stats[k][1]})  # fmt: skip
        chain.append((fla, FloatProjection(la["name"], "", "", la["w"])))
    n_in = fl[0]["w"].shape[1]
    qnet, rows = quantize(FloatGraph.chain(n_in, chain), margin=margin, name=name, power_of_two=False)
    return qnet.to_network(name, {"source": "nir", "dt": dt, "quantization": rows}), rows


def import_file(path: str | Path, **kwargs: Any) -> tuple[Network, list[dict[str, Any]]]:
    import nir

    p = Path(path)
    if not p.is_file():
        raise NIRError(f"{p}: no such file")
    try:
        graph = nir.read(str(p))
    except Exception as e:  # noqa: BLE001 - any unreadable file is a user error
        raise NIRError(f"{p}: not a readable NIR file ({str(e).splitlines()[0][:200]})") from None
    return from_nir(graph, **kwargs)
