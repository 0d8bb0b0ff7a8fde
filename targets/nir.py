"""NIR (neuromorphic intermediate representation) export and import (docs/targets.md §NIR).

**Time.** One IR step is one NIR time step of length ``dt`` (default 1e-4 s, the value snnTorch's importer
assumes). NIR peers (snnTorch, Norse, sinabs, spyx) run a feed-forward edge within the step; the IR delays every
projection by one step. quantal maps the two exactly by shifting each layer in time: layer X of the IR at step t
is the peer's layer X at step ``t - D_X``, where ``D_X`` is X's depth. A projection from S to T with ``delay`` d
is a NIR edge with ``k = 1 + d + D_S - D_T`` steps of delay (a ``nir.Delay`` node where k > 0); a recurrent edge
has the peer's implicit one step plus ``d + D_S - D_T``. On export the input has depth 0 and a layer the least
``D_S + 1 + d`` over its forward projections (so k >= 0; a skip makes the longer path a Delay); on import a layer
gets one more than the deepest source feeding it, and ``d = D_T - D_S + k - 1``. The output layer's depth is
stored as ``metadata["nir"]["delay_steps"]``: ``quantal run``'s output at step t + D is the peer's at step t.

**Units.** Weights are ``weight_mant * 2**weight_exp`` (stochastic ones at their expectation), thresholds
``threshold``, biases ``(bias_mant << bias_exp) / 64`` (the IR's v divided by 64). Per layer, with
``alpha = 1 - current_decay / 4096`` and ``beta = 1 - voltage_decay / 4096``:

* any ``current_decay < 4096``: ``nir.CubaLIF`` (``CubaLI`` for a readout) with ``tau_syn = dt / (1 - alpha)``,
  ``w_in = tau_syn / dt``, ``tau_mem = dt / (1 - beta)``, ``r = tau_mem / dt``: with Euler steps
  u <- alpha u + W x, v <- beta v + u, the IR's dynamics;
* ``current_decay = 4096`` (no synaptic memory): ``nir.LIF`` (``LI``) with ``tau = dt / (1 - beta)``, ``r = 1`` and
  the incoming weights times ``1 / (1 - beta)`` (where beta is one value per layer; else ``r = tau / dt``);
* also ``voltage_decay = 0`` (no leak): ``nir.IF`` (``I`` for a readout) with ``r = 1``: v <- v + x per step;
* ``current_decay = 0`` or no leak under a decaying current: a current node (``LI`` / ``I``) then a membrane
  node (``IF`` / ``LIF`` / ``I`` / ``LI``).

``IF`` and ``I`` nodes read ``r`` as the gain per step (v <- v + r x), as the peers do. A layer's bias is the
bias of the ``Affine`` (or ``Conv2d``) into it, scaled to enter v exactly: exact when the current does not
decay-accumulate (``current_decay = 4096``), at its steady state otherwise (with a warning). Node names carry no
``.`` (nirtorch rewrites them); no ``v_reset`` is written when it is 0 (nir <= 1.0.4 cannot read it).

What NIR cannot express exactly (the integers, flooring, rounding toward zero, 32/24-bit wraps, release
probabilities, escape noise, subtractive reset) is warned about; the whole network is also stored in the
graph's metadata (``metadata["quantal"]["qnet"]``, the ``.qnet`` bytes), so importing a file quantal wrote
rebuilds the network exactly, unless its nodes were edited.

**Import** of other graphs: see :func:`from_nir`.
"""

from __future__ import annotations

import math
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from quantal.compile.ir import INPUT, Conv2dSynapse, IRError, Network

DT = 1e-4
NEURONS = ("CubaLIF", "CubaLI", "LIF", "LI", "IF", "I", "Threshold")
WEIGHTS = ("Affine", "Linear", "Conv2d")
SPATIAL = ("SumPool2d", "AvgPool2d", "Flatten", "Delay", "Scale")


class NIRError(ValueError):
    """A NIR graph quantal cannot import, or a network it cannot export; the message names the node."""


def _node_name(name: str) -> str:
    return name.replace(".", "_")


# --------------------------------------------------------------------------------------------- export


def _walk(starts: list[Any], succ: dict[Any, list[tuple[Any, Any]]]) -> tuple[list[Any], set[Any], set[Any]]:
    """An iterative depth-first walk from each of ``starts`` not yet reached, over ``succ[node]`` = [(edge, target)]:
    the nodes in post-order, the edges that close a cycle (their target is on the walk's stack, itself included)
    and the nodes reached."""
    post, back, state = [], set(), {}  # state: 1 on the stack, 2 done
    for start in starts:
        if start in state:
            continue
        stack = [(start, iter(succ.get(start, [])))]
        state[start] = 1
        while stack:
            node, it = stack[-1]
            for e, t in it:
                if state.get(t) == 1:
                    back.add(e)
                elif t not in state:
                    state[t] = 1
                    stack.append((t, iter(succ.get(t, []))))
                    break
            else:
                state[node] = 2
                post.append(node)
                stack.pop()
    return post, back, set(state)


def depths(net: Network) -> tuple[dict[str, int], set[int]]:
    """Each layer's depth ``D`` (see the module docstring) and the indices of the recurrent projections (those
    that close a cycle in a depth-first walk from the input). ``D_T`` is the smallest ``D_S + 1 + delay`` over the
    forward projections into T, so that a longer path gets a NIR Delay rather than a shorter one an impossible
    negative delay."""
    succ: dict[str, list[tuple[int, str]]] = {}
    for i, p in enumerate(net.projections):
        succ.setdefault(p.source, []).append((i, p.target))
    _, back, _ = _walk([INPUT, *(la.name for la in net.layers)], succ)  # layers fed only through cycles too
    # D_T = min over forward projections of D_S + 1 + delay, so that every forward NIR edge has k >= 0 steps of
    # delay; the forward edges form a DAG, taken in topological order (Kahn)
    forward = [i for i in range(len(net.projections)) if i not in back]
    indeg: dict[str, int] = {}
    for i in forward:
        indeg[net.projections[i].target] = indeg.get(net.projections[i].target, 0) + 1
    depth, ready = {INPUT: 0}, [INPUT] + [la.name for la in net.layers if indeg.get(la.name, 0) == 0]
    while ready:
        n = ready.pop()
        depth.setdefault(n, 1)
        for i, _ in succ.get(n, []):
            if i in back:
                continue
            p = net.projections[i]
            depth[p.target] = min(depth.get(p.target, depth[n] + 1 + p.delay), depth[n] + 1 + p.delay)
            indeg[p.target] -= 1
            if indeg[p.target] == 0:
                ready.append(p.target)
    return depth, back


def _float_weight(p: Any) -> np.ndarray:
    s = p.synapse
    scale = 2.0**s.weight_exp
    w = s.weight.astype(np.float64) * scale
    if s.release is not None:
        w = w * (s.release.astype(np.float64) + 1) / 256
    if s.weight_fixed is not None:
        w = w + s.weight_fixed.astype(np.float64) * scale
    return w


@dataclass
class _Form:
    """The NIR neuron nodes of one layer: a membrane node, an optional current node, the gain folded into the
    incoming weights (per neuron) and the factor that turns the layer's v bias into an input bias."""

    membrane: Any
    current: Any | None
    gain: np.ndarray
    bias_gain: np.ndarray
    exact_bias: bool


def _neuron_form(la: Any, dt: float) -> _Form:
    import nir

    neu, n, name = la.neuron, la.size, la.name
    def per_neuron(a: Any) -> np.ndarray:  # scalars or per-neuron arrays (stored flat or in the layer's shape)
        a = np.asarray(a, np.float64)
        return a.reshape(n) if a.size == n else np.broadcast_to(a, (n,)).copy()

    cd, vd, th = (per_neuron(a) for a in (neu.current_decay, neu.voltage_decay, neu.threshold))
    spiking = neu.kind != "readout"
    shape = la.shape
    alpha = 1 - cd / 4096
    ones = np.ones(n)

    def arr(a: np.ndarray) -> np.ndarray:
        return np.asarray(a, np.float64).reshape(shape)

    if np.all(cd == 4096) and np.all(vd == 0):  # v <- v + x
        mem = nir.IF(r=arr(ones), v_threshold=arr(th)) if spiking else nir.I(r=arr(ones))
        return _Form(mem, None, ones, ones, True)
    if np.all(cd == 4096) and np.all(vd >= 1):  # v <- beta v + x
        tau = dt * 4096 / vd
        uniform = bool(np.all(vd == vd[0]))
        r = ones if uniform else tau / dt
        gain = 4096 / vd if uniform else ones
        kw = {"tau": arr(tau), "r": arr(r), "v_leak": arr(np.zeros(n))}
        mem = nir.LIF(**kw, v_threshold=arr(th)) if spiking else nir.LI(**kw)
        return _Form(mem, None, gain, gain, True)
    if np.all(cd >= 1) and np.all(vd >= 1):  # u <- alpha u + x, v <- beta v + u
        tau_syn, tau_mem = dt * 4096 / cd, dt * 4096 / vd
        kw = {"tau_syn": arr(tau_syn), "tau_mem": arr(tau_mem), "r": arr(tau_mem / dt), "v_leak": arr(np.zeros(n)),
              "w_in": arr(tau_syn / dt)}  # fmt: skip
        mem = nir.CubaLIF(**kw, v_threshold=arr(th)) if spiking else nir.CubaLI(**kw)
        return _Form(mem, None, ones, 1 - alpha, bool(np.all(cd == 4096)))
    # a current node, then a membrane node
    if np.all(cd == 0):
        cur = nir.I(r=arr(ones))
    elif np.all(cd >= 1):
        tau_syn = dt * 4096 / cd
        cur = nir.LI(tau=arr(tau_syn), r=arr(tau_syn / dt), v_leak=arr(np.zeros(n)))
    else:
        raise NIRError(f"layer '{name}': current_decay mixes 0 with other values; NIR has no node for that")
    if np.all(vd == 0):
        mem = nir.IF(r=arr(ones), v_threshold=arr(th)) if spiking else nir.I(r=arr(ones))
    elif np.all(vd >= 1):
        tau = dt * 4096 / vd
        kw = {"tau": arr(tau), "r": arr(tau / dt), "v_leak": arr(np.zeros(n))}
        mem = nir.LIF(**kw, v_threshold=arr(th)) if spiking else nir.LI(**kw)
    else:
        raise NIRError(f"layer '{name}': voltage_decay mixes 0 with other values under a decaying current; NIR "
                       "has no node for that")  # fmt: skip
    return _Form(mem, cur, ones, np.where(cd == 0, 0.0, 1 - alpha), False)


def _lost(net: Network) -> list[str]:
    lost = []
    for la in net.layers:
        if la.neuron.escape_noise is not None:
            lost.append(f"layer '{la.name}': escape noise (NIR thresholds are deterministic)")
        if la.neuron.reset == "subtract":
            lost.append(f"layer '{la.name}': the subtractive reset (NIR neurons reset to v_reset)")
    for p in net.projections:
        if p.synapse.release is not None:
            lost.append(f"projection '{p.name}': release probabilities (the NIR weights are their expectation)")
        if p.synapse.weight_exp < 0:
            lost.append(f"projection '{p.name}': the floor of a negative weight exponent")
    lost.append("fixed-point rounding (rz decays, 32/24-bit wraps, saturation): the NIR dynamics are in float")
    return lost


def to_nir(net: Network, dt: float = DT) -> Any:
    """The NIR graph of ``net`` (see the module docstring); warns about what NIR cannot express."""
    import nir
    import yaml

    from quantal.compile.ir import save

    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise NIRError(f"dt must be a positive number of seconds, got {dt!r}")
    depth, back = depths(net)
    shapes = {INPUT: net.input_shape, **{la.name: la.shape for la in net.layers}}
    used = {"input", "output"}

    def fresh(base: str) -> str:
        name = _fresh_name(_node_name(base), used)
        used.add(name)
        return name

    lname = {INPUT: "input", **{la.name: fresh(la.name) for la in net.layers}}
    nodes: dict[str, Any] = {"input": nir.Input({"input": np.array(net.input_shape)})}
    edges: list[tuple[str, str]] = []
    flat: dict[str, str] = {}
    lost = _lost(net)
    forms = {la.name: _neuron_form(la, dt) for la in net.layers}
    biased: set[str] = set()
    heads: dict[str, str] = {}  # the node each layer's synapses feed: its current node, else its membrane
    for la in net.layers:
        f = forms[la.name]
        nodes[lname[la.name]] = f.membrane
        heads[la.name] = lname[la.name]
        if f.current is not None:
            heads[la.name] = fresh(f"{la.name}_cur")
            nodes[heads[la.name]] = f.current
            edges.append((heads[la.name], lname[la.name]))
    for i, p in enumerate(net.projections):
        tgt = next(la for la in net.layers if la.name == p.target)
        f = forms[p.target]
        w = _float_weight(p)
        bias = np.zeros(tgt.shape[0] if isinstance(p.synapse, Conv2dSynapse) else tgt.size)
        if p.target not in biased:  # the first projection into a layer carries its bias
            biased.add(p.target)
            b = tgt.neuron.effective_bias(tgt.size).astype(np.float64) / 64 * f.bias_gain
            if np.any(b != 0) and not f.exact_bias:
                lost.append(f"layer '{tgt.name}': a bias under a decaying current (NIR adds it to the current; "
                            "kept at its steady state)")  # fmt: skip
            if isinstance(p.synapse, Conv2dSynapse):
                b3 = (b / f.gain).reshape(tgt.shape)
                if np.any(b3 != b3[:, :1, :1]):
                    lost.append(f"layer '{tgt.name}': a bias that varies within a channel (a Conv2d bias is one "
                                "per channel; the channel mean is written)")  # fmt: skip
                bias = b3.mean(axis=(1, 2))
            else:
                bias = b / f.gain
        src = lname[p.source]
        src_shape = shapes[p.source]
        if isinstance(p.synapse, Conv2dSynapse):
            g3 = f.gain.reshape(tgt.shape)
            if np.any(g3 != g3[:, :1, :1]):  # pragma: no cover - the gain is uniform for conv layers' forms
                raise NIRError(f"layer '{tgt.name}': per-neuron voltage decays on a conv layer have no NIR form")
            s = p.synapse
            syn = nir.Conv2d(input_shape=np.array(src_shape[1:]), weight=w * g3[:, 0, 0, None, None, None],
                             stride=np.array(s.stride), padding=np.array(s.padding), dilation=np.array(s.dilation),
                             groups=int(s.groups), bias=bias * g3[:, 0, 0])  # fmt: skip
        else:
            if len(src_shape) > 1:
                if p.source not in flat:
                    flat[p.source] = fresh(f"{lname[p.source]}_flat")
                    nodes[flat[p.source]] = nir.Flatten(input_type={"input": np.array(src_shape)}, start_dim=0,
                                                        end_dim=-1)  # fmt: skip
                    edges.append((src, flat[p.source]))
                src = flat[p.source]
            syn = nir.Affine(weight=w * f.gain[:, None], bias=bias * f.gain)
        pname = fresh(p.name if p.name not in shapes else f"{p.name}_w")
        nodes[pname] = syn
        k = 1 + p.delay + depth[p.source] - depth[p.target] - (1 if i in back else 0)
        if k < 0:  # a recurrent edge to a layer deeper than its source, closing the loop in fewer steps than NIR's
            raise NIRError(f"projection '{p.name}': a recurrent edge from '{p.source}' to '{p.target}' with "
                           f"{1 + p.delay} steps of delay, fewer than the {1 + depth[p.target] - depth[p.source]} "
                           "its NIR form needs (the peers run a feed-forward edge within the step)")  # fmt: skip
        if k > 0:
            dname = fresh(f"{p.name}_delay")
            dshape = src_shape if isinstance(p.synapse, Conv2dSynapse) else (int(np.prod(src_shape)),)
            nodes[dname] = nir.Delay(delay=np.full(dshape, k * dt))  # on the source's spikes
            edges.append((src, dname))
            src = dname
        edges += [(src, pname), (pname, heads[p.target])]
    out = net.layers[-1]
    nodes["output"] = nir.Output({"output": np.array(out.shape)})
    edges.append((lname[out.name], "output"))
    for msg in lost:
        warnings.warn(f"NIR cannot express {msg}; the exact network is kept in the graph's metadata",
                      stacklevel=2)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="quantal-nir-") as tmp:
        qnet = np.frombuffer(save(net, Path(tmp) / "net.qnet").read_bytes(), np.uint8).copy()
    meta = {"dt": float(dt), "quantal": {"name": net.name, "format": "quantal.ir", "version": 2, "qnet": qnet,
                                         "delay_steps": int(depth[out.name]),
                                         "metadata_yaml": yaml.safe_dump(dict(net.metadata))}}  # fmt: skip
    square = all(p.synapse.weight.shape[2] == p.synapse.weight.shape[3] for p in net.projections
                 if isinstance(p.synapse, Conv2dSynapse))  # fmt: skip
    if not square:
        warnings.warn("nir computes a Conv2d's output shape as if its kernel were square, so this graph with a "
                      "non-square kernel fails nir's type check: read it with nir.read(path, type_check=False)",
                      stacklevel=2)  # fmt: skip
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=square)


def _strip_zero_resets(path: Path) -> None:
    """Delete ``v_reset`` datasets that are all zero (the default): nir <= 1.0.4 refuses the field."""
    import h5py

    with h5py.File(path, "r+") as f:
        todo = []
        f["node"].visititems(lambda k, obj: todo.append(k) if k.endswith("/v_reset") or k == "v_reset" else None)
        for k in todo:
            ds = f["node"][k]
            if isinstance(ds, h5py.Dataset) and not np.any(ds[()]):
                del f["node"][k]


def export(net: Network, path: str | Path, dt: float = DT) -> Path:
    """Write ``net`` as a NIR file (HDF5) atomically."""
    import nir

    from quantal.compile.ir import atomic_write_path

    graph = to_nir(net, dt)

    def write(tmp: Path) -> None:
        nir.write(str(tmp), graph)  # h5py writes by name
        _strip_zero_resets(tmp)

    return atomic_write_path(path, write)


# --------------------------------------------------------------------------------------------- import


def _kind(node: Any) -> str:
    return type(node).__name__


def _flatten_graph(graph: Any) -> tuple[dict[str, Any], list[tuple[str, str]], str, str]:
    """Nodes and edges with nested subgraphs inlined (their nodes named ``sub.node``; their Input and Output
    become pass-through nodes), and the names of the top Input and Output."""
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []

    def ports(sub: Any, kind: str) -> list[str]:
        return [k for k, v in sub.nodes.items() if _kind(v) == kind]

    def inline(g: Any, prefix: str, depth: int) -> None:
        if depth > 16:
            raise NIRError(f"node '{prefix[:-1]}': subgraphs nested more than 16 deep")
        for k, v in g.nodes.items():
            name = f"{prefix}{k}"
            if _kind(v) == "NIRGraph":
                inline(v, f"{name}.", depth + 1)
            else:
                nodes[name] = v
        for a, b in g.edges:
            edges.append((end(g, prefix, a, "Output"), end(g, prefix, b, "Input")))

    def end(g: Any, prefix: str, ref: str, port: str) -> str:
        head, _, tail = ref.partition(".")
        node = g.nodes.get(ref)
        if node is None and tail and _kind(g.nodes.get(head)) == "NIRGraph":  # "sub.input" names a port
            return f"{prefix}{ref}"
        if node is None:
            raise NIRError(f"edge names node '{prefix}{ref}', which the graph does not have")
        if _kind(node) == "NIRGraph":
            p = ports(node, port)
            if len(p) != 1:
                raise NIRError(f"node '{prefix}{ref}': a subgraph with {len(p)} {port} nodes (one is supported)")
            return end(node, f"{prefix}{ref}.", p[0], port)
        return f"{prefix}{ref}"

    inline(graph, "", 0)
    ins = [k for k, v in graph.nodes.items() if _kind(v) == "Input"]
    outs = [k for k, v in graph.nodes.items() if _kind(v) == "Output"]
    if len(ins) != 1:
        raise NIRError(f"graph: expected one Input node, found {len(ins)}")
    if len(outs) != 1:
        raise NIRError(f"graph: expected one Output node, found {len(outs)}")
    return nodes, edges, ins[0], outs[0]


def _a(node: Any, key: str, default: Any = None) -> np.ndarray:
    v = getattr(node, key, default)
    if v is None:
        v = default
    try:
        a = np.asarray(v, np.float64)
    except (TypeError, ValueError):
        raise NIRError(f"{key}: not a numeric array") from None
    return a


def _input_shape(node: Any, name: str) -> tuple[int, ...]:
    t = getattr(node, "input_type", None) or {}
    s = t.get("input") if isinstance(t, dict) else None
    if s is None and isinstance(t, dict) and len(t) == 1:
        s = next(iter(t.values()))
    try:
        shape = tuple(int(v) for v in np.asarray(s).reshape(-1))
    except (TypeError, ValueError):
        shape = ()
    if not shape or any(v < 1 for v in shape):
        raise NIRError(f"node '{name}': the Input node has no shape (input_type {t!r})")
    if len(shape) in (2, 4) and shape[0] == 1:  # a batch axis of 1 that exporters copy from their sample input
        shape = shape[1:]
    return shape


@dataclass
class _Term:
    """One synaptic path into a layer: source layer (or the input), spatial maps before the weights, the weight
    node, gains after it and the NIR delay in steps."""

    source: str
    pre: list[tuple[str, Any]]
    weight: str
    post: list[str]
    delay: int


@dataclass
class _Cell:
    """A neuron layer of the imported graph: its membrane node, its current node (or None) and its inputs."""

    name: str
    membrane: str
    current: str | None
    terms: list[_Term] = field(default_factory=list)


def _delay_steps(node: Any, name: str, dt: float) -> int:
    d = _a(node, "delay").reshape(-1) / dt
    k = np.rint(d)
    if d.size == 0 or np.any(k != k[0]) or np.any(np.abs(d - k) > 1e-6 * np.maximum(1, np.abs(d))) or k[0] < 0:
        raise NIRError(f"node '{name}': the delay must be one non-negative whole number of steps of dt = {dt:g} s "
                       f"(got {np.unique(d)[:4]} steps)")  # fmt: skip
    return int(k[0])


def _cells(nodes: dict[str, Any], edges: list[tuple[str, str]], inp: str, out: str,
           dt: float) -> tuple[list[_Cell], str]:  # fmt: skip
    pred: dict[str, list[str]] = {k: [] for k in nodes}
    succ: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in edges:
        if a not in nodes or b not in nodes:
            raise NIRError(f"edge ({a!r}, {b!r}) names a node the graph does not have")
        succ[a].append(b)
        pred[b].append(a)

    def through(n: str) -> str:  # skip pass-through nodes (inlined subgraphs' Input/Output) backwards
        seen = set()
        while _kind(nodes[n]) in ("Input", "Output") and n != inp:
            if len(pred[n]) != 1 or n in seen:
                raise NIRError(f"node '{n}': a subgraph port with {len(pred[n])} inputs")
            seen.add(n)
            n = pred[n][0]
        return n

    for k, v in nodes.items():
        kk = _kind(v)
        if kk not in (*NEURONS, *WEIGHTS, *SPATIAL, "Input", "Output"):
            known = ", ".join((*NEURONS, *WEIGHTS, *SPATIAL))
            raise NIRError(f"node '{k}': {kk} nodes do not import (supported: {known})")
    # a current node (LI or I) whose one successor is a membrane node with no other input is fused into it
    fused: dict[str, str] = {}
    for k, v in nodes.items():
        if _kind(v) in ("LI", "I", "IF", "LIF", "Threshold"):
            ps = [through(p) for p in pred[k]]
            if len(ps) == 1 and _kind(nodes[ps[0]]) in ("LI", "I") and ps[0] != k:
                c = ps[0]
                if len(succ[c]) == 1 and c not in fused and _kind(nodes[k]) != "Threshold":
                    fused[c] = k
    cells: dict[str, _Cell] = {}
    for k, v in nodes.items():
        if _kind(v) in NEURONS and k not in fused:
            cur = next((c for c, m in fused.items() if m == k), None)
            cells[k] = _Cell(_node_name(k), k, cur)
    if not cells:
        raise NIRError("graph: no neuron nodes between Input and Output")

    def source_of(n: str, pre: list[tuple[str, Any]], delay: int, where: str) -> tuple[str, list, int]:
        seen = set()
        while True:
            n = through(n)
            if n == inp or n in cells:
                return n, pre, delay
            kk = _kind(nodes[n])
            if kk not in SPATIAL or n in seen:
                raise NIRError(f"node '{where}': its input path reaches {kk} node '{n}' before a neuron or the input "
                               "(a weight node needs spikes)")  # fmt: skip
            if len(pred[n]) != 1:
                raise NIRError(f"node '{n}': {kk} with {len(pred[n])} inputs (one is supported)")
            seen.add(n)
            if kk == "Delay":
                delay += _delay_steps(nodes[n], n, dt)
            else:
                pre.insert(0, (n, nodes[n]))
            n = pred[n][0]

    for cell in cells.values():
        head = cell.current or cell.membrane
        for p in pred[head]:
            post: list[str] = []
            delay = 0
            n = through(p)
            while _kind(nodes[n]) in ("Scale", "Delay"):
                if len(pred[n]) != 1:
                    raise NIRError(f"node '{n}': {_kind(nodes[n])} with {len(pred[n])} inputs (one is supported)")
                if _kind(nodes[n]) == "Delay":
                    delay += _delay_steps(nodes[n], n, dt)
                else:
                    post.append(n)
                n = through(pred[n][0])
            if n == inp or n in cells:  # spikes straight into a neuron: identity weights
                cell.terms.append(_Term(n, [], "", post, delay))
                continue
            if _kind(nodes[n]) not in WEIGHTS:
                raise NIRError(f"node '{head}': its input '{n}' is a {_kind(nodes[n])} node; a neuron takes input from "
                               "Affine, Linear or Conv2d nodes (optionally through Scale or Delay)")  # fmt: skip
            if len(pred[n]) != 1:
                raise NIRError(f"node '{n}': {_kind(nodes[n])} with {len(pred[n])} inputs (one is supported)")
            src, pre, delay = source_of(pred[n][0], [], delay, n)
            cell.terms.append(_Term(src, pre, n, post, delay))
        if not cell.terms:
            raise NIRError(f"node '{cell.membrane}': a neuron with no input")
    op = [through(p) for p in pred[out]]
    if len(op) != 1 or op[0] not in cells:
        what = "nothing" if not op else f"'{op[0]}' ({_kind(nodes[op[0]])})" if len(op) == 1 else f"{len(op)} nodes"
        raise NIRError(f"node '{out}': the Output must follow one neuron node, got {what}")
    return list(cells.values()), op[0]


def _dynamics(cell: _Cell, nodes: dict[str, Any], size: int, dt: float) -> dict[str, Any]:
    """alpha, beta, gain (into u, per neuron), current bias gain, v bias, threshold, kind of one cell."""

    def vec(node: Any, key: str, where: str, default: Any = None) -> np.ndarray:
        a = _a(node, key, default)
        try:
            return np.broadcast_to(a, (size,)) if a.size == 1 else a.reshape(size)
        except ValueError:
            raise NIRError(f"node '{where}': {key} has {a.size} values for {size} neurons") from None

    def decay(tau: np.ndarray, where: str, key: str) -> np.ndarray:
        k = dt / tau
        if not np.all(np.isfinite(k)) or np.any(k < 0) or np.any(k > 1):
            raise NIRError(f"node '{where}': {key} must be at least dt = {dt:g} s (the Euler step 1 - dt/tau is a "
                           f"decay in [0, 1]); got {float(np.min(tau)):.3g}")  # fmt: skip
        return k

    m, mk = nodes[cell.membrane], _kind(nodes[cell.membrane])
    alpha, g1, cur_leak = np.zeros(size), np.ones(size), np.zeros(size)
    if cell.current is not None:
        c, ck = nodes[cell.current], _kind(nodes[cell.current])
        if ck == "LI":
            k = decay(vec(c, "tau", cell.current), cell.current, "tau")
            alpha, g1 = 1 - k, k * vec(c, "r", cell.current)
            cur_leak = k * vec(c, "v_leak", cell.current, 0.0)
        else:
            alpha, g1 = np.ones(size), vec(c, "r", cell.current)
    if mk in ("CubaLIF", "CubaLI"):
        ks = decay(vec(m, "tau_syn", cell.membrane), cell.membrane, "tau_syn")
        km = decay(vec(m, "tau_mem", cell.membrane), cell.membrane, "tau_mem")
        alpha, g1 = 1 - ks, ks * vec(m, "w_in", cell.membrane, 1.0)
        beta, g2, leak = 1 - km, km * vec(m, "r", cell.membrane), km * vec(m, "v_leak", cell.membrane, 0.0)
    elif mk in ("LIF", "LI"):
        km = decay(vec(m, "tau", cell.membrane), cell.membrane, "tau")
        beta, g2, leak = 1 - km, km * vec(m, "r", cell.membrane), km * vec(m, "v_leak", cell.membrane, 0.0)
    elif mk in ("IF", "I"):
        beta, g2, leak = np.ones(size), vec(m, "r", cell.membrane), np.zeros(size)
    else:  # Threshold: v = the input of this step
        beta, g2, leak = np.zeros(size), np.ones(size), np.zeros(size)
    spiking = mk in ("CubaLIF", "LIF", "IF", "Threshold")
    th = vec(m, "threshold" if mk == "Threshold" else "v_threshold", cell.membrane) if spiking else np.zeros(size)
    if spiking and np.any(th < 0):
        raise NIRError(f"node '{cell.membrane}': negative thresholds (min {float(th.min()):g}) do not import")
    reset = getattr(m, "v_reset", None)
    if reset is not None and np.any(np.asarray(reset, np.float64) != 0):
        raise NIRError(f"node '{cell.membrane}': v_reset != 0 (the IR resets v to 0 or subtracts the threshold)")
    gain = g1 * g2
    if not np.all(np.isfinite(gain)) or not np.all(np.isfinite(leak)):
        raise NIRError(f"node '{cell.membrane}': infinite or undefined gains (r, w_in, tau)")
    return {"alpha": alpha, "beta": beta, "gain": gain, "cur_const": g2 * cur_leak, "leak": leak, "threshold": th,
            "spiking": spiking}  # fmt: skip


def _conv_out(wnode: Any, name: str, shape: tuple[int, ...]) -> tuple[tuple[int, ...], dict[str, Any]]:
    """A NIR Conv2d's output shape on [C, H, W] spikes of ``shape``, and its geometry (stride, padding,
    dilation as pairs; groups)."""
    from quantal.compile.ir import conv_out

    w = np.asarray(wnode.weight)
    if w.ndim != 4:
        raise NIRError(f"node '{name}': Conv2d weight must be (out, in/groups, kh, kw), got {w.shape}")
    if len(shape) != 3:
        raise NIRError(f"node '{name}': a Conv2d needs [C, H, W] spikes, got {list(shape)}")
    geo: dict[str, Any] = {a: tuple(int(v) for v in np.broadcast_to(_a(wnode, a, 1 if a != "padding" else 0), (2,)))
                           for a in ("stride", "padding", "dilation")}  # fmt: skip
    geo["groups"] = int(getattr(wnode, "groups", 1) or 1)
    out = (w.shape[0], *(conv_out(n, k, s, p, d) for n, k, s, p, d in
                         zip(shape[1:], w.shape[2:], geo["stride"], geo["padding"], geo["dilation"])))  # fmt: skip
    if min(out) < 1:
        raise NIRError(f"node '{name}': a Conv2d of {w.shape} on {list(shape)} has no output")
    return out, geo


def _modules(term: _Term, nodes: dict[str, Any], src_shape: tuple[int, ...], dst_size: int, gain: np.ndarray,
             where: str) -> tuple[Any, list[Any], np.ndarray | None, tuple[int, ...]]:  # fmt: skip
    """The torch modules of one path (spatial maps, synapse with the gains folded in) and its bias per target."""
    import torch
    from torch import nn

    from quantal.train import layers as L

    spatial, shape, scalar = [], src_shape, 1.0
    for name, node in term.pre:
        kk = _kind(node)
        if kk == "Flatten":
            spatial.append(L.Flatten())
            shape = (int(np.prod(shape)),)
        elif kk == "Scale":
            s = _a(node, "scale").reshape(-1)
            if s.size and np.any(s != s[0]):
                raise NIRError(f"node '{name}': a Scale on spikes must be one value (got {s.size} different ones)")
            scalar *= float(s[0]) if s.size else 1.0
        else:
            k, st, pd = (tuple(int(v) for v in np.broadcast_to(_a(node, a), (2,))) for a in
                         ("kernel_size", "stride", "padding"))  # fmt: skip
            if k[0] != k[1] or st != k or pd != (0, 0):
                raise NIRError(f"node '{name}': {kk} imports with square kernels, stride = kernel and no padding "
                               f"(got kernel {k}, stride {st}, padding {pd})")  # fmt: skip
            if len(shape) != 3 or shape[1] % k[0] or shape[2] % k[0]:
                raise NIRError(f"node '{name}': pooling of {k[0]} needs [C, H, W] spikes with H and W divisible by "
                               f"it, got {list(shape)}")  # fmt: skip
            spatial.append(L.SumPool2d(k[0]) if kk == "SumPool2d" else L.AvgPool2d(k[0]))
            shape = (shape[0], shape[1] // k[0], shape[2] // k[0])
    post = np.ones(dst_size)
    for name in term.post:
        s = _a(nodes[name], "scale").reshape(-1)
        if s.size not in (1, dst_size):
            raise NIRError(f"node '{name}': Scale has {s.size} values for {dst_size} neurons")
        post = post * np.broadcast_to(s, (dst_size,))
    g = gain * post
    if not term.weight:  # identity weights
        n = int(np.prod(shape))
        if n != dst_size:
            raise NIRError(f"node '{where}': receives {n} spikes straight from '{term.source}' but has {dst_size} "
                           "neurons")  # fmt: skip
        mod = nn.Linear(n, n, bias=False, dtype=torch.float64)
        with torch.no_grad():
            mod.weight.copy_(torch.from_numpy(np.diag(g * scalar)))
        return mod, spatial, None, (dst_size,)
    wnode = nodes[term.weight]
    kk = _kind(wnode)
    w = _a(wnode, "weight") * scalar
    bias = _a(wnode, "bias") if kk in ("Affine", "Conv2d") and getattr(wnode, "bias", None) is not None else None
    if kk == "Conv2d":
        out, geo = _conv_out(wnode, term.weight, shape)
        if math.prod(out) != dst_size or shape[0] != w.shape[1] * geo["groups"]:
            raise NIRError(f"node '{term.weight}': a Conv2d of {w.shape} on {list(shape)} gives {list(out)}, the "
                           f"neuron node '{where}' has {dst_size} neurons")  # fmt: skip
        g3 = g.reshape(out)
        if not np.allclose(g3, g3[:, :1, :1], rtol=1e-9, atol=0):  # (dt / tau) (tau / dt) is 1 only up to rounding
            raise NIRError(f"node '{where}': per-neuron time constants or gains must be uniform per channel under a "
                           "Conv2d")  # fmt: skip
        mod = nn.Conv2d(shape[0], w.shape[0], w.shape[2:], bias=False, dtype=torch.float64, **geo)
        with torch.no_grad():
            mod.weight.copy_(torch.from_numpy(w * g3[:, 0, 0, None, None, None]))
        b = None if bias is None else np.broadcast_to(bias.reshape(-1, 1, 1), out).reshape(-1)
        return mod, spatial, b, out
    if w.ndim != 2 or w.shape[0] != dst_size:
        raise NIRError(f"node '{term.weight}': weight of shape {w.shape} feeds {dst_size} neurons")
    if int(np.prod(shape)) != w.shape[1]:
        raise NIRError(f"node '{term.weight}': takes {w.shape[1]} inputs but gets spikes of shape {list(shape)}")
    if len(shape) > 1:
        spatial.append(L.Flatten())
    mod = nn.Linear(w.shape[1], w.shape[0], bias=False, dtype=torch.float64)
    with torch.no_grad():
        mod.weight.copy_(torch.from_numpy(w * g[:, None]))
    return mod, spatial, None if bias is None else np.broadcast_to(bias.reshape(-1), (dst_size,)), (dst_size,)


def _float_graph(graph: Any, dt: float, reset: str = "zero") -> tuple[Any, int, list[str]]:
    """The float graph of a foreign NIR graph (delays aligned as in the module docstring), its output layer's depth,
    and what was approximated."""
    from quantal.compile.quantize import FloatGraph, FloatLayer, FloatProjection
    from quantal.compile.torch_graph import _float_projection, _spatial, _Spikes

    nodes, edges, inp, out = _flatten_graph(graph)
    cells, out_cell = _cells(nodes, edges, inp, out, dt)
    by = {c.membrane: c for c in cells}
    input_shape = _input_shape(nodes[inp], inp)
    # depth-first order from the input: a term is recurrent when its source is on the walk's stack (or itself)
    succ: dict[str, list[tuple[int, str]]] = {}
    for c in cells:
        for t in c.terms:
            succ.setdefault(t.source, []).append((id(t), c.membrane))
    order, back, state = _walk([inp], succ)
    missing = [c.membrane for c in cells if c.membrane not in state]
    if missing:
        raise NIRError(f"node '{missing[0]}': not reachable from the input")
    order = [n for n in reversed(order) if n != inp]  # a topological order of the forward edges
    depth = {inp: 0}
    for n in order:
        c = by[n]
        depth[n] = max(depth[t.source] + 1 for t in c.terms if id(t) not in back)
    layers, projections, lost, shapes = [], [], [], {inp: input_shape}
    const: dict[str, np.ndarray] = {}
    depth_of: dict[str, int] = {}
    sizes: dict[str, int] = {}
    pending = []
    for n in order:
        c = by[n]
        fw = [t for t in c.terms if id(t) not in back]
        # the layer's shape: from its first forward synapse
        t0 = fw[0]
        size_guess = _size_of(t0, nodes, shapes[t0.source])
        dyn = _dynamics(c, nodes, size_guess[1], dt)
        shape = None
        bias_in = np.zeros(size_guess[1])
        for t in c.terms:
            if id(t) in back:
                pending.append((c, t, dyn))
                continue
            mod, spatial, b, tshape = _modules(t, nodes, shapes[t.source], size_guess[1], dyn["gain"], c.membrane)
            shape = tshape if shape is None else shape
            if b is not None:
                bias_in = bias_in + b
            sp = _Spikes(INPUT if t.source == inp else by[t.source].name, shapes[t.source])
            for s in spatial:
                sp = _spatial(sp, s, t.weight or c.membrane)
            pr = _float_projection(_proj_name(c, t), sp, mod, c.name, tuple(shape), t.weight or n)
            pr.delay = depth[n] - depth[t.source] + t.delay - 1
            projections.append(pr)
        shapes[n] = tuple(shape)
        sizes[n] = size_guess[1]
        # A constant input (synapse biases, a current node's v_leak, and v_leak itself where u = a) goes through
        # the always-on layer below, so that it starts with the peer's step 0, not D steps earlier. Only v_leak
        # under a decaying current stays the IR's v bias (it then acts from the IR's step 0).
        const[c.name] = dyn["gain"] * bias_in + dyn["cur_const"] + np.where(dyn["alpha"] == 0, dyn["leak"], 0.0)
        bias = np.where(dyn["alpha"] == 0, 0.0, dyn["leak"])
        if np.any(bias != 0) and depth[n] > 1:
            lost.append(f"node '{n}': v_leak under a decaying current (an IR bias, acting {depth[n] - 1} steps "
                        "before the layer's first input)")  # fmt: skip
        depth_of[c.name] = depth[n]
        # decays round to the IR's 1/4096 grid
        alpha = 1 - np.rint(4096 * (1 - dyn["alpha"])) / 4096
        beta = 1 - np.rint(4096 * (1 - dyn["beta"])) / 4096
        layers.append(FloatLayer(name=c.name, shape=tuple(shape), kind="lif" if dyn["spiking"] else "readout",
                                 alpha=alpha, beta=beta, threshold=np.asarray(dyn["threshold"], np.float64).copy(),
                                 bias=np.asarray(bias, np.float64).copy(), reset=reset))  # fmt: skip
    for c, t, dyn in pending:
        n = c.membrane
        mod, spatial, b, _ = _modules(t, nodes, shapes[t.source], sizes[n], dyn["gain"], n)
        if b is not None and np.any(b != 0):
            extra = dyn["gain"] * b
            const[c.name] = const[c.name] + extra
        sp = _Spikes(by[t.source].name, shapes[t.source])
        for s in spatial:
            sp = _spatial(sp, s, t.weight or n)
        pr = _float_projection(_proj_name(c, t), sp, mod, c.name, shapes[n], t.weight or n)
        d = depth[n] - depth[t.source] + t.delay  # the peer's implicit step closes the loop
        if d < 0:
            raise NIRError(f"node '{t.weight or n}': a recurrent edge from '{t.source}' back to '{n}' spans "
                           f"{-d} more steps than the IR's one-step delay per layer allows; add a Delay of {-d} steps")
        pr.delay = d
        projections.append(pr)
    # A constant input is exact as a projection from a one-neuron layer that spikes at every step (threshold 0, a
    # positive bias), delayed so that it reaches each layer from the peer's step 0 on.
    biased = [k for k, v in const.items() if np.any(v != 0)]
    if biased:
        on = _fresh_name("nir_const", {la.name for la in layers})
        layers.insert(0, FloatLayer(name=on, shape=(1,), kind="lif", alpha=np.zeros(1), beta=np.zeros(1),
                                    threshold=np.zeros(1), bias=np.ones(1), limits={"unit": 1.0}))  # fmt: skip
        for k in biased:
            projections.append(FloatProjection(f"{k}_const", on, k, const[k].reshape(-1, 1), delay=depth_of[k] - 1))
    out_name = by[out_cell].name
    layers = [la for la in layers if la.name != out_name] + [la for la in layers if la.name == out_name]
    fg = FloatGraph(input_shape, layers, projections)
    return fg, depth[out_cell], lost


def _fresh_name(base: str, taken: set[str]) -> str:
    name, k = base, 1
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    return name


def _proj_name(c: _Cell, t: _Term) -> str:
    return _node_name(t.weight) if t.weight else f"{c.name}_in_{_node_name(t.source)}"


def _size_of(t: _Term, nodes: dict[str, Any], src_shape: tuple[int, ...]) -> tuple[Any, int]:
    """The number of neurons a path feeds (from its weight node)."""
    if not t.weight:
        shape = src_shape
        for _, node in t.pre:
            if _kind(node) == "Flatten":
                shape = (int(np.prod(shape)),)
            elif _kind(node) in ("SumPool2d", "AvgPool2d"):
                k = int(np.asarray(node.kernel_size).reshape(-1)[0])
                shape = (shape[0], shape[1] // k, shape[2] // k)
        return shape, int(np.prod(shape))
    w = nodes[t.weight]
    wt = np.asarray(w.weight)
    if _kind(w) != "Conv2d":
        return (wt.shape[0],), int(wt.shape[0])
    shape = src_shape
    for _, node in t.pre:
        if _kind(node) in ("SumPool2d", "AvgPool2d"):
            k = int(np.asarray(node.kernel_size).reshape(-1)[0])
            shape = (shape[0], shape[1] // k, shape[2] // k)
    out, _ = _conv_out(w, t.weight, shape)
    return out, int(np.prod(out))


def _exact(graph: Any) -> Network | None:
    """The network stored by quantal's export, if the graph carries one and its nodes are unedited."""
    from quantal.compile.ir import load

    q = (getattr(graph, "metadata", None) or {}).get("quantal")
    if not isinstance(q, dict) or "qnet" not in q:
        return None
    data = np.asarray(q["qnet"])
    if data.dtype != np.uint8 or data.ndim != 1:
        raise NIRError("graph: metadata quantal.qnet is not the bytes of a .qnet file")
    with tempfile.TemporaryDirectory(prefix="quantal-nir-") as tmp:
        p = Path(tmp) / "net.qnet"
        p.write_bytes(data.tobytes())
        try:
            net = load(p)
        except IRError as e:
            raise NIRError(f"graph: the network stored in its metadata is invalid ({e})") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = to_nir(net, float((graph.metadata or {}).get("dt", DT)))
    for k, node in ref.nodes.items():
        other = graph.nodes.get(k)
        if other is None or _kind(other) != _kind(node):
            return None
        for key in ("weight", "bias", "v_threshold", "tau", "tau_syn", "tau_mem", "r", "w_in"):
            a, b = getattr(node, key, None), getattr(other, key, None)
            if a is not None and (b is None or np.shape(a) != np.shape(b) or not np.allclose(a, b, rtol=1e-6)):
                return None
    return net


def from_nir(graph: Any, *, calib: np.ndarray | None = None, dt: float | None = None, name: str = "imported",
             margin: float = 2.0, reset: str = "zero") -> tuple[Network, list[dict[str, Any]]]:  # fmt: skip
    """An IR network from a NIR graph, and the quantisation report (empty for an exact quantal round trip).

    A graph quantal wrote rebuilds exactly from its metadata. Other graphs become float layers (one per neuron
    node; a LI or I node feeding one membrane node is its synaptic current): Affine/Linear/Conv2d weights with
    the pools, flattens and scalar scales before them fused in, per-neuron gains ``(dt/tau) r`` (and ``w_in``)
    folded into the weights, decays ``round(4096 dt / tau)``, ``v_leak`` and synapse biases into the neuron's
    bias, reset to zero (NIR's v_reset = 0; ``reset="subtract"`` for graphs from peers that subtract the threshold,
    as sinabs and spyx do), delays aligned as in the module docstring. The scales are calibrated on ``calib``
    spikes ``(n, T, *input shape)`` when given (the float model's largest |u| and |v|, times ``margin``), else from
    the worst case of binary inputs (docs/compile.md).
    """
    from quantal.compile.quantize import float_stats, quantize

    exact = _exact(graph)
    if exact is not None:
        return exact, []
    gmeta = dict(getattr(graph, "metadata", None) or {})
    if dt is None:
        try:
            dt = float(gmeta.get("dt", DT))
        except (TypeError, ValueError):
            raise NIRError(f"graph: metadata dt is not a number ({gmeta.get('dt')!r})") from None
    if not (math.isfinite(dt) and dt > 0):
        raise NIRError(f"dt must be a positive number of seconds, got {dt!r}")
    if reset not in ("zero", "subtract"):
        raise NIRError(f"reset must be 'zero' or 'subtract', got {reset!r}")
    fg, delay_steps, lost = _float_graph(graph, dt, reset)
    for msg in lost:
        warnings.warn(f"NIR import approximates {msg}", stacklevel=2)
    if calib is not None:
        calib = np.asarray(calib)
        if calib.ndim < 3 or tuple(calib.shape[2:]) != tuple(fg.input_shape):
            raise NIRError(f"calibration spikes must be (n, T, {', '.join(map(str, fg.input_shape))}), got "
                           f"{tuple(calib.shape)}")  # fmt: skip
        stats = float_stats(fg, calib, steps=calib.shape[1] + delay_steps)
        for la in fg.layers:
            la.stats = stats[la.name]
    qnet, rows = quantize(fg, margin=margin, name=name, power_of_two=False)
    meta = {"source": "nir", "dt": dt, "nir": {"delay_steps": int(delay_steps)}, "quantization": rows}
    return qnet.to_network(name, meta), rows


MAX_FILE_BYTES = 2**32  # the datasets of one NIR file, checked before nir reads them


def _check_sizes(p: Path) -> None:
    """Refuse, before nir loads anything, an HDF5 file whose datasets hold more than MAX_FILE_BYTES."""
    import h5py

    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise NIRError(f"{p}: not an HDF5 file ({str(e).splitlines()[0][:160] if str(e) else 'unreadable'})") from None
    total = 0
    with f:
        def visit(_: str, obj: Any) -> None:
            nonlocal total
            if isinstance(obj, h5py.Dataset):
                total += int(obj.size) * max(int(obj.dtype.itemsize), 1)

        f.visititems(visit)
    if total > MAX_FILE_BYTES:
        raise NIRError(f"{p}: its datasets hold {total:,} bytes (at most {MAX_FILE_BYTES:,})")


def import_file(path: str | Path, **kwargs: Any) -> tuple[Network, list[dict[str, Any]]]:
    import nir

    p = Path(path)
    if not p.is_file():
        raise NIRError(f"{p}: no such file")
    _check_sizes(p)
    try:
        try:  # quantal checks shapes itself; nir's type check refuses the batch axis some exporters write
            graph = nir.read(str(p), type_check=False)
        except TypeError:  # nir <= 1.0.4 has no type check to turn off
            graph = nir.read(str(p))
    except Exception as e:  # noqa: BLE001 - any unreadable file is a user error
        msg = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise NIRError(f"{p}: not a readable NIR file ({msg})") from None
    return from_nir(graph, **kwargs)
