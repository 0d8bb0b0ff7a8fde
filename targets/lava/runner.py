"""Run a ``.qnet`` network in Intel Lava 0.10 (bit-accurate ``fixed_pt`` models). Runs inside the Lava venv.

    python -m quantal.targets.lava.runner NET.qnet SPIKES.npy OUT.npz [--steps T] [--seed S] [--trial R]

Deterministic parts map to stock Lava processes with DESIGN.md's mapping: reliable synapses to ``Dense``
(weights ``2 * weight`` with ``weight_exp - 1``), LIF neurons without escape noise to ``LIF``
(``du = current_decay - 1``, ``dv = voltage_decay``, ``vth = threshold``). What stock Lava lacks uses
quantal's own ``fixed_pt`` processes (targets/lava/processes.py): ``StochasticDense`` for release
probabilities and reliable parts (random streams v1, stream 1), ``IRNeuron`` for escape noise (stream 2),
readouts and ``current_decay = 0``. All samples run at once in one process graph: sample n occupies its own
block of every layer (block-diagonal weights, or per-block loops in quantal's processes, which key their
random streams by the sample's index), which is the same computation as separate runs. The output ``.npz`` holds
``<layer>.spikes`` (uint8), ``<layer>.u`` and ``<layer>.v`` (int32) of shape (n_samples, T, size), read after
every step (v after the reset).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from quantal.compile.ir import IRError, Network, atomic_write, load


def stock_synapse(layer) -> bool:  # noqa: ANN001
    return layer.synapse.release is None and layer.synapse.weight_fixed is None


def stock_neuron(layer) -> bool:  # noqa: ANN001
    n = layer.neuron
    return n.kind == "lif" and n.escape_noise is None and n.current_decay >= 1


def unsupported(net: Network) -> list[str]:
    """Why each layer cannot be mapped to stock Lava processes (empty when all can)."""
    problems = []
    for layer in net.layers:
        if layer.neuron.kind != "lif":
            problems.append(f"layer '{layer.name}': {layer.neuron.kind} neurons need quantal's Lava processes")
        if layer.synapse.release is not None or layer.synapse.weight_fixed is not None:
            problems.append(f"layer '{layer.name}': stochastic synapses need quantal's Lava processes")
        if layer.neuron.escape_noise is not None:
            problems.append(f"layer '{layer.name}': escape noise needs quantal's Lava processes")
        if layer.neuron.current_decay < 1:
            problems.append(f"layer '{layer.name}': current_decay 0 has no Lava du (du = current_decay - 1)")
    return problems


def build_ir(net: Network, n: int, *, seed: int = 0, trial: int = 0) -> list[tuple[str, int, object, object]]:
    """(name, size, synapse process, neuron process) per layer of ``net`` for ``n`` samples in one graph."""
    from lava.proc.dense.process import Dense
    from lava.proc.lif.process import LIF

    from .processes import IRNeuron, StochasticDense

    samples = np.arange(n, dtype=np.int64)
    eye = np.eye(n, dtype=np.int32)
    out = []
    for li, layer in enumerate(net.layers):
        syn, neu = layer.synapse, layer.neuron
        if stock_synapse(layer):
            w = np.kron(eye, 2 * syn.weight.astype(np.int32))  # block-diagonal: samples do not interact
            dense = Dense(weights=w, weight_exp=syn.weight_exp - 1, num_weight_bits=8)
        else:
            dense = StochasticDense(weight=syn.weight, weight_exp=syn.weight_exp, release=syn.release,
                                    weight_fixed=syn.weight_fixed, layer=li, seed=seed, trial=trial,
                                    samples=samples)  # fmt: skip
        size = n * layer.size
        if stock_neuron(layer):
            bias_mant = np.tile(np.broadcast_to(np.asarray(neu.bias_mant, np.int32), (layer.size,)), n)
            bias_exp = np.tile(np.broadcast_to(np.asarray(neu.bias_exp, np.int32), (layer.size,)), n)
            lif = LIF(shape=(size,), du=neu.current_decay - 1, dv=neu.voltage_decay, vth=neu.threshold,
                      bias_mant=bias_mant, bias_exp=bias_exp)  # fmt: skip
        else:
            esc = neu.escape_noise
            lif = IRNeuron(size=layer.size, samples=samples, current_decay=neu.current_decay,
                           voltage_decay=neu.voltage_decay, threshold=neu.threshold,
                           bias=neu.effective_bias(layer.size), spiking=neu.kind != "readout",
                           escape_scale=None if esc is None else esc.scale, layer=li, seed=seed,
                           trial=trial)  # fmt: skip
        out.append((layer.name, layer.size, dense, lif))
    return out


def build_netx(path: str, n: int) -> list[tuple[str, int, object, object]]:
    """The layers of a NetX HDF5 file built by NetX's mapping: ``LIF(du = iDecay - 1, dv = vDecay,
    vth = vThMant, bias_exp = 6)`` behind a ``Dense`` holding the weights as NetX rescales them."""
    from lava.proc.dense.process import Dense
    from lava.proc.lif.process import LIF

    from quantal.targets.netx import lava_weights, read

    eye = np.eye(n, dtype=np.int32)
    out = []
    for k, la in enumerate(read(path)):
        w, exp = lava_weights(la["weight"])
        size = la["weight"].shape[0]
        dense = Dense(weights=np.kron(eye, w.astype(np.int32)), weight_exp=exp, num_weight_bits=8)
        bias = np.zeros(size, np.int32) if la["bias"] is None else la["bias"].astype(np.int32)
        lif = LIF(shape=(n * size,), du=la["iDecay"] - 1, dv=la["vDecay"], vth=la["vThMant"],
                  bias_mant=np.tile(bias, n), bias_exp=6)  # fmt: skip
        out.append((f"layer{k}", size, dense, lif))
    return out


def run(net: Network, spikes: np.ndarray, steps: int, *, seed: int = 0, trial: int = 0,
        stock_only: bool = False, record_state: bool = True) -> dict[str, np.ndarray]:
    if stock_only and unsupported(net):
        raise ValueError("; ".join(unsupported(net)))
    return run_graph(build_ir(net, spikes.shape[0], seed=seed, trial=trial), spikes, steps, record_state)


def run_graph(layers: list, spikes: np.ndarray, steps: int, record_state: bool = True) -> dict[str, np.ndarray]:
    """Run input spikes through a chain of (name, size, synapse, neuron) processes; spikes/u/v per layer."""
    import time

    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    from .processes import SpikeInput, SpikeRecorder

    n, t_in, n_in = spikes.shape
    # Input of sample k, step t in row k * n_in + i, column t.
    data = spikes.astype(np.int32).transpose(0, 2, 1).reshape(n * n_in, t_in)
    src = SpikeInput(data=data)
    port = src.s_out
    lifs, recs = [], []
    for _, size, dense, lif in layers:
        rec = SpikeRecorder(shape=(n * size, steps))
        port.connect(dense.s_in)
        dense.a_out.connect(lif.a_in)
        lif.s_out.connect(rec.a_in)
        port = lif.s_out
        lifs.append(lif)
        recs.append(rec)
    u = [np.zeros((steps, n * la[1]), np.int64) for la in layers]
    v = [np.zeros((steps, n * la[1]), np.int64) for la in layers]
    cfg = Loihi2SimCfg(select_tag="fixed_pt")
    t0 = time.perf_counter()
    try:
        t1 = t0
        if not record_state:  # spikes only: one step to start the graph, then the rest in one call
            src.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
            t1 = time.perf_counter()
            if steps > 1:
                src.run(condition=RunSteps(num_steps=steps - 1), run_cfg=cfg)
        for t in range(steps if record_state else 0):
            src.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
            if t == 0:
                t1 = time.perf_counter()  # the first call compiles and starts the process graph
            for li, lif in enumerate(lifs):
                u[li][t] = lif.u.get()
                v[li][t] = lif.v.get()
        s = [rec.data.get() for rec in recs]
        t2 = time.perf_counter()
        print(f"lava_seconds={t2 - t0:.6f}")  # the run, graph compilation included
        print(f"lava_steady_seconds={t2 - t1:.6f}")  # steps 2..T (with the per-step reads of u and v)
    finally:
        src.stop()
    out = {}
    for li, (name, size, _, _) in enumerate(layers):
        out[f"{name}.spikes"] = s[li].T.reshape(steps, n, size).transpose(1, 0, 2).astype(np.uint8)
        out[f"{name}.u"] = u[li].reshape(steps, n, size).transpose(1, 0, 2).astype(np.int32)
        out[f"{name}.v"] = v[li].reshape(steps, n, size).transpose(1, 0, 2).astype(np.int32)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="quantal-lava-runner")
    p.add_argument("net", help="a .qnet file, or a NetX .h5 file with --netx")
    p.add_argument("spikes")
    p.add_argument("out")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trial", type=int, default=0)
    p.add_argument("--stock-only", action="store_true", help="refuse layers that need quantal's processes")
    p.add_argument("--spikes-only", action="store_true", help="record spikes only (u and v stay 0): full speed")
    p.add_argument("--netx", action="store_true", help="NET is a NetX HDF5 file, built by NetX's mapping")
    args = p.parse_args(argv)
    if args.netx:
        spikes = np.load(args.spikes, allow_pickle=False)
        steps = spikes.shape[1] if args.steps is None else args.steps
        out = run_graph(build_netx(args.net, spikes.shape[0]), spikes, steps, not args.spikes_only)
        atomic_write(args.out, lambda f: np.savez(f, **out))
        return 0
    try:
        net = load(args.net)
    except IRError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    problems = unsupported(net)
    if problems and args.stock_only:
        print("error: " + "; ".join(problems), file=sys.stderr)
        return 2
    spikes = np.load(args.spikes, allow_pickle=False)
    steps = spikes.shape[1] if args.steps is None else args.steps
    out = run(net, spikes, steps, seed=args.seed, trial=args.trial, record_state=not args.spikes_only)
    atomic_write(args.out, lambda f: np.savez(f, **out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
