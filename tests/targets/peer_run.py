"""NIR files in peer simulators (snnTorch, Norse, sinabs, spyx); used by the interchange tests.

    python tests/targets/peer_run.py run PEER GRAPH.nir SPIKES.npy OUT.npy [--dt S]
    python tests/targets/peer_run.py export PEER MODEL GRAPH.nir
    python tests/targets/peer_run.py model snntorch MODEL SPIKES.npy OUT.npy

``run``: SPIKES is (n, T, *input shape); OUT gets the graph's output at every step, (n, T, *output shape).
``model``: runs the original snnTorch model itself (where snnTorch cannot import its own export).
``export``: builds one of the peer's models below with fixed random weights and writes it with the peer's own
NIR exporter. The script runs in the peer's own venv (sinabs and spyx pin other versions of nir and torch than
quantal), so it imports nothing from quantal. Each peer reads and writes with its own code; files are read with
``type_check=False`` because the peers' exporters put a batch axis on the Input type that nir's own type check then
refuses.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np


def _read(path: str) -> object:
    import nir

    try:
        return nir.read(path, type_check=False)
    except TypeError:  # nir <= 1.0.4 has no type check to turn off
        return nir.read(path)


def _stepped(graph: object, load: object, x: np.ndarray) -> np.ndarray:
    """Step a nirtorch model over time. snnTorch and Norse hand NIR's Flatten dims to torch.nn.Flatten, which counts
    the batch axis too: graphs with a Flatten from dim 0 (NIR's dims exclude the batch) run one sample at a time."""
    import torch

    flat0 = any(type(n).__name__ == "Flatten" and int(n.start_dim) == 0 for n in graph.nodes.values())
    batches = [x[i] for i in range(x.shape[0])] if flat0 else [x]
    res = []
    for xb in batches:
        model, state, out = load(graph), None, []
        with torch.no_grad():
            for t in range(xb.shape[0 if flat0 else 1]):
                o, state = model(torch.from_numpy(xb[t] if flat0 else xb[:, t]).float(), state)
                out.append(o.numpy())
        res.append(np.stack(out, 0 if flat0 else 1))
    return np.stack(res) if flat0 else res[0]


def snntorch(path: str, x: np.ndarray, dt: float) -> np.ndarray:
    from snntorch.import_nir import import_from_nir

    return _stepped(_read(path), import_from_nir, x)


def norse(path: str, x: np.ndarray, dt: float) -> np.ndarray:
    import norse.torch

    return _stepped(_read(path), lambda g: norse.torch.from_nir(g, dt=dt), x)


def sinabs(path: str, x: np.ndarray, dt: float) -> np.ndarray:
    import sinabs.nir
    import torch

    n, steps = x.shape[:2]
    model = sinabs.nir.from_nir(_read(path), batch_size=n, num_timesteps=steps)
    with torch.no_grad():
        o = model(torch.from_numpy(x.reshape(n * steps, *x.shape[2:])).float())  # sinabs' (batch x time, ...)
    o = o[0] if isinstance(o, tuple) else o
    return o.numpy().reshape(n, steps, *o.shape[1:])


def spyx(path: str, x: np.ndarray, dt: float) -> np.ndarray:
    import jax.numpy as jnp
    import spyx.nir

    xt = np.moveaxis(x, 1, 0)  # time-major
    if xt.ndim == 5:  # spyx convolves channels-last
        xt = np.moveaxis(xt, 2, -1)
    _, out = spyx.nir.from_nir(_read(path), jnp.asarray(xt, jnp.float32), dt=dt)
    out = np.asarray(out)
    if out.ndim == 5:
        out = np.moveaxis(out, -1, 2)
    return np.moveaxis(out, 0, 1)


PEERS = {"snntorch": snntorch, "norse": norse, "sinabs": sinabs, "spyx": spyx}


# ------------------------------------------------------------------------------------ the peers' own models


def _init(model: object, seed: int = 0, gain: float = 1.0) -> None:
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 2.5 * gain / np.sqrt(p[0].numel()))
            elif name.endswith("bias"):
                p.copy_(torch.rand(p.shape, generator=g) * 0.1)


def _write(graph: object, path: str, conv_inputs: tuple = (), flat_inputs: tuple = ()) -> None:
    """nir.write, after the fixes it needs on graphs as the exporters leave them: tensors and 0-d arrays become
    1-d numpy arrays (h5py cannot compress scalars), and a missing Conv2d input_shape or Flatten input_type (None,
    which h5py cannot store) is filled from the graph's inferred types, or from ``conv_inputs`` (the (H, W) of each
    Conv2d in order) and ``flat_inputs`` where an exporter's batch axis on the Input breaks nir's type inference."""
    import nir

    def fix(g: object) -> None:
        try:
            g.infer_types()
        except Exception as e:  # noqa: BLE001 - report what the types lack, then go on
            print("peer_run: type inference:", str(e).splitlines()[0][:200])
        for node in g.nodes.values():
            if isinstance(node, nir.NIRGraph):
                fix(node)
                continue
            arrays = {}
            for k, v in list(vars(node).items()):
                if hasattr(v, "detach"):
                    v = v.detach().cpu().numpy()
                if isinstance(v, (np.ndarray, np.generic, float)) and k not in ("input_type", "output_type"):
                    arrays[k] = np.asarray(v)
                setattr(node, k, v)
            if type(node).__name__ in ("LIF", "CubaLIF", "IF", "LI", "CubaLI", "I") and arrays:
                shape = max((a.shape for a in arrays.values()), key=len)  # scalars broadcast to the layer's shape
                for k, a in arrays.items():
                    setattr(node, k, np.broadcast_to(a, shape if shape else (1,)).astype(np.float64).copy())
            else:
                for k, a in arrays.items():
                    if a.ndim == 0:
                        setattr(node, k, a.reshape(1))
            if isinstance(node, nir.Conv2d) and (node.input_shape is None or convs):
                t = node.input_type.get("input")
                node.input_shape = np.asarray(convs.pop(0)) if convs else np.asarray(t)[1:]
            if isinstance(node, nir.Flatten) and node.input_type.get("input") is None:
                if not flats:
                    raise SystemExit("peer_run: a Flatten without input_type")
                node.input_type = {"input": np.asarray(flats.pop(0))}
                node.output_type = {"output": np.asarray([int(np.prod(node.input_type["input"]))])}

    convs, flats = list(conv_inputs), list(flat_inputs)
    fix(graph)
    nir.write(path, graph)


def snntorch_model(kind: str) -> tuple[object, object]:
    """One of snnTorch's models, with NIR's semantics (reset to zero in the step that spikes), and a sample input."""
    import snntorch as snn
    import torch

    nn = torch.nn
    kw = {"init_hidden": True, "reset_mechanism": "zero", "reset_delay": False}
    if kind == "synaptic":
        model = nn.Sequential(nn.Linear(20, 16), snn.Synaptic(alpha=0.5, beta=0.75, **kw),
                              nn.Linear(16, 6), snn.Leaky(beta=0.9, output=True, **kw))  # fmt: skip
        sample = torch.zeros(1, 20)
    elif kind == "cnn":
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), snn.Leaky(beta=0.9, **kw), nn.AvgPool2d(2),
                              nn.Conv2d(4, 6, 3), snn.Leaky(beta=0.9, **kw), nn.Flatten(),
                              nn.Linear(24, 5), snn.Leaky(beta=0.9, output=True, **kw))  # fmt: skip
        sample = torch.zeros(1, 1, 8, 8)
    elif kind == "recurrent":
        # snnTorch 1.0's RSynaptic fails with reset_delay=False (it reads an unset spike), so it resets one step late
        model = nn.Sequential(nn.Linear(20, 16), snn.RSynaptic(alpha=0.5, beta=0.8, linear_features=16,
                                                               **{**kw, "reset_delay": True}),
                              nn.Linear(16, 6), snn.Leaky(beta=0.9, output=True, **kw))  # fmt: skip
        sample = torch.zeros(1, 20)
    else:
        raise SystemExit(f"snntorch: no model {kind!r}")
    _init(model)
    return model, sample


def export_snntorch(kind: str, path: str) -> None:
    import nir
    from snntorch.export_nir import export_to_nir

    model, sample = snntorch_model(kind)
    infer = nir.NIRGraph.infer_types
    nir.NIRGraph.infer_types = lambda self: None  # snnTorch 1.0's shape inference trips on its own graphs
    try:
        graph = export_to_nir(model, sample)
    finally:
        nir.NIRGraph.infer_types = infer
    _write(graph, path, *((((8, 8), (4, 4)), ((6, 2, 2),)) if kind == "cnn" else ()))


def run_snntorch_model(kind: str, x: np.ndarray) -> np.ndarray:
    """The original snnTorch model (not its NIR import) stepped over x."""
    import snntorch.utils
    import torch

    model, _ = snntorch_model(kind)
    snntorch.utils.reset(model)
    out = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            o = model(torch.from_numpy(x[:, t]).float())
            out.append((o[0] if isinstance(o, tuple) else o).numpy())
    return np.stack(out, 1)


def export_norse(kind: str, path: str) -> None:
    import norse.torch as norse
    import torch

    nn = torch.nn
    if kind != "lif":
        raise SystemExit(f"norse: no model {kind!r}")
    model = norse.SequentialState(nn.Linear(20, 16), norse.LIFBoxCell(), nn.Linear(16, 6), norse.LIFBoxCell())
    _init(model, gain=4.0)  # Norse's membrane takes dt/tau of its input per step
    _write(norse.to_nir(model, torch.zeros(1, 20)), path)


def export_sinabs(kind: str, path: str) -> None:
    import sinabs.layers as sl
    import sinabs.nir
    import torch

    nn = torch.nn
    if kind != "cnn":
        raise SystemExit(f"sinabs: no model {kind!r}")
    g = torch.Generator().manual_seed(1)
    th = (0.5 + torch.rand(6, 2, 2, generator=g)).float()  # per-neuron thresholds
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), sl.IAFSqueeze(batch_size=1), sl.SumPool2d(2),
                          nn.Conv2d(4, 6, 3), sl.IAFSqueeze(batch_size=1, spike_threshold=th), nn.Flatten(),
                          nn.Linear(24, 5), sl.IAFSqueeze(batch_size=1))  # fmt: skip
    _init(model)
    _write(sinabs.nir.to_nir(model, torch.zeros(1, 1, 8, 8)), path)


def export_spyx(kind: str, path: str) -> None:
    import jax.numpy as jnp
    import spyx.nir
    import spyx.nn as snn
    from flax import nnx

    if kind != "lif":
        raise SystemExit(f"spyx: no model {kind!r}")
    rngs = nnx.Rngs(0)
    model = snn.Sequential(nnx.Linear(20, 16, rngs=rngs), snn.LIF((16,), beta=0.8, rngs=rngs),
                           nnx.Linear(16, 6, rngs=rngs), snn.LIF((6,), beta=0.9, rngs=rngs))  # fmt: skip
    g = np.random.default_rng(0)
    for lin in (model.layers[0], model.layers[2]):
        fan_in = lin.kernel.shape[0]
        lin.kernel[...] = jnp.asarray(g.normal(0, 2.5 / np.sqrt(fan_in), lin.kernel.shape), jnp.float32)
        lin.bias[...] = jnp.asarray(g.uniform(0, 0.1, lin.bias.shape), jnp.float32)
    _write(spyx.nir.to_nir(model, {"input": np.array([20])}, {"output": np.array([6])}, dt=1), path)


EXPORTERS = {"snntorch": export_snntorch, "norse": export_norse, "sinabs": export_sinabs, "spyx": export_spyx}


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("peer", choices=sorted(PEERS))
    r.add_argument("graph")
    r.add_argument("spikes")
    r.add_argument("out")
    r.add_argument("--dt", type=float, default=1e-4)
    m = sub.add_parser("model")
    m.add_argument("peer", choices=["snntorch"])
    m.add_argument("model")
    m.add_argument("spikes")
    m.add_argument("out")
    e = sub.add_parser("export")
    e.add_argument("peer", choices=sorted(EXPORTERS))
    e.add_argument("model")
    e.add_argument("graph")
    a = ap.parse_args()
    logging.disable(logging.WARNING)
    if a.cmd == "export":
        EXPORTERS[a.peer](a.model, a.graph)
        return
    x = np.load(a.spikes).astype(np.float32)
    if a.cmd == "model":
        np.save(a.out, run_snntorch_model(a.model, x).astype(np.float64))
        return
    np.save(a.out, PEERS[a.peer](a.graph, x, a.dt).astype(np.float64))


if __name__ == "__main__":
    main()
