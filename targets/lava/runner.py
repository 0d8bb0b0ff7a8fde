"""Run a ``.qnet`` network in Intel Lava 0.10 (bit-accurate ``fixed_pt`` models). Runs inside the Lava venv.

    python -m quantal.targets.lava.runner NET.qnet SPIKES.npy OUT.npz [--steps T] [--seed S] [--trial R]

The graph maps projection by projection and layer by layer (docs/targets.md):

* a deterministic projection (no release probabilities, no reliable part) becomes stock ``Dense`` with
  weights ``2 * weight`` and ``weight_exp - 1`` (Lava floors odd mixed-sign weights otherwise), or stock
  ``DelayDense`` with the same weights and ``delays = delay`` when it has a delay; a conv2d projection becomes
  its expanded (target size, source size) matrix in the same processes (Lava's ``Conv`` clamps its sum to 24 bits
  and ignores ``weight_exp``, so it does not compute the IR's conv2d);
* any other projection becomes quantal's ``IRProjection`` (targets/lava/processes.py): the matrix with release
  probabilities (random streams v1, stream 1 keyed by the projection) and the reliable part, after ``delay``
  steps of spike history;
* a layer with scalar decays and threshold, ``current_decay >= 1``, reset to zero and no escape noise becomes
  stock ``LIF`` (``du = current_decay - 1``, ``dv = voltage_decay``, ``vth = threshold``); any other becomes
  quantal's ``IRNeuron`` (per-neuron arrays, subtractive reset, escape noise on stream 2, readouts);
* several projections into a layer connect to its one input port, which adds them (32-bit arithmetic, as the
  IR's ``a = sum_p a_p``); a recurrent projection closes a cycle, which the one-step delay of every synapse
  process keeps free of deadlock.

All samples run at once in one process graph: sample n occupies its own block of every layer
(block-diagonal weights, or per-block loops in quantal's processes, which key their random streams by the
sample's index), which is the same computation as separate runs. The output ``.npz`` holds
``<layer>.spikes`` (uint8), ``<layer>.u`` and ``<layer>.v`` (int32) of shape (n_samples, T, size), read after
every step (v after the reset).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from quantal.compile.graph import expand
from quantal.compile.ir import IRError, Layer, Network, Projection, atomic_write, load


def stock_projection(p: Projection) -> bool:
    """Deterministic projections map to Lava's Dense (delay 0) or DelayDense (delay > 0)."""
    return p.synapse.release is None and p.synapse.weight_fixed is None


def stock_neuron(layer: Layer) -> bool:
    """Neurons that Lava's LIF computes: scalar decays and threshold, reset to zero, no escape noise."""
    n = layer.neuron
    return (n.kind == "lif" and n.escape_noise is None and n.reset == "zero"
            and all(n.scalar(f) is not None for f in ("current_decay", "voltage_decay", "threshold"))
            and n.scalar("current_decay") >= 1)  # fmt: skip


def unsupported(net: Network) -> list[str]:
    """Why each layer or projection cannot be mapped to stock Lava processes (empty when all can)."""
    problems = []
    for layer in net.layers:
        n, where = layer.neuron, f"layer '{layer.name}'"
        if n.kind != "lif":
            problems.append(f"{where}: {n.kind} neurons need quantal's Lava processes")
        if n.escape_noise is not None:
            problems.append(f"{where}: escape noise needs quantal's Lava processes")
        if n.reset != "zero":
            problems.append(f"{where}: subtractive reset needs quantal's Lava processes")
        per = [f for f in ("current_decay", "voltage_decay", "threshold") if n.scalar(f) is None]
        if per:
            problems.append(f"{where}: per-neuron {', '.join(per)} need quantal's Lava processes")
        elif n.scalar("current_decay") < 1:
            problems.append(f"{where}: current_decay 0 has no Lava du (du = current_decay - 1)")
    for p in net.projections:
        if not stock_projection(p):
            problems.append(f"projection '{p.name}': stochastic synapses and reliable parts need quantal's Lava "
                            "processes")  # fmt: skip
    return problems


def build_ir(net: Network, n: int, *, seed: int = 0, trial: int = 0) -> tuple[list, list]:
    """The processes of ``net`` for ``n`` samples in one graph: per layer (name, size, neuron process), per
    projection (source layer index or -1 for the input, target layer index, synapse process)."""
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.lif.process import LIF

    from .processes import IRNeuron, IRProjection

    samples = np.arange(n, dtype=np.int64)
    eye = np.eye(n, dtype=np.int32)
    layers = []
    for li, layer in enumerate(net.layers):
        neu = layer.neuron
        if stock_neuron(layer):
            bias_mant = np.tile(neu.array("bias_mant", layer.size), n).astype(np.int32)
            bias_exp = np.tile(neu.array("bias_exp", layer.size), n).astype(np.int32)
            proc = LIF(shape=(n * layer.size,), du=neu.scalar("current_decay") - 1, dv=neu.scalar("voltage_decay"),
                       vth=neu.scalar("threshold"), bias_mant=bias_mant, bias_exp=bias_exp)  # fmt: skip
        else:
            esc = neu.escape_noise
            proc = IRNeuron(size=layer.size, samples=samples, current_decay=neu.array("current_decay", layer.size),
                            voltage_decay=neu.array("voltage_decay", layer.size),
                            threshold=neu.array("threshold", layer.size), bias=neu.effective_bias(layer.size),
                            spiking=neu.kind != "readout", subtract=neu.reset == "subtract",
                            escape_scale=None if esc is None else esc.scale, layer=li, seed=seed,
                            trial=trial)  # fmt: skip
        layers.append((layer.name, layer.size, proc))
    projections = []
    for pi, p in enumerate(net.projections):
        syn = p.synapse
        w = expand(net, p, syn.weight)  # a conv2d projection as its (target size, source size) matrix
        if stock_projection(p):
            # Lava's Dense floors odd mixed-sign weights: 2 * weight with weight_exp - 1 is exact
            wb = np.kron(eye, 2 * w.astype(np.int32))  # block-diagonal: samples do not interact
            if p.delay == 0:
                proc = Dense(weights=wb, weight_exp=syn.weight_exp - 1, num_weight_bits=8)
            else:  # DelayDense: delay d sends d steps after Dense would
                proc = DelayDense(weights=wb, delays=p.delay, weight_exp=syn.weight_exp - 1, num_weight_bits=8)
        else:
            proc = IRProjection(weight=w, weight_exp=syn.weight_exp, release=expand(net, p, syn.release, fill=255),
                                weight_fixed=expand(net, p, syn.weight_fixed), index=pi, delay=p.delay, seed=seed,
                                trial=trial, samples=samples)  # fmt: skip
        projections.append((net.layer_index(p.source), net.layer_index(p.target), proc))
    return layers, projections


def run(net: Network, spikes: np.ndarray, steps: int, *, seed: int = 0, trial: int = 0,
        stock_only: bool = False, record_state: bool = True) -> dict[str, np.ndarray]:
    if stock_only and unsupported(net):
        raise ValueError("; ".join(unsupported(net)))
    x = spikes.reshape(spikes.shape[0], spikes.shape[1], -1)
    return run_graph(*build_ir(net, x.shape[0], seed=seed, trial=trial), x, steps, record_state)


def run_graph(layers: list, projections: list, spikes: np.ndarray, steps: int,
              record_state: bool = True) -> dict[str, np.ndarray]:  # fmt: skip
    """Run input spikes through layers (name, size, neuron process) joined by projections (source index or -1,
    target index, synapse process); spikes/u/v per layer. A layer fed by several projections receives their
    sum (Lava adds the inputs of a port in 32-bit arithmetic), and a recurrent projection closes a cycle that
    Lava's one-step synaptic delay keeps free of deadlock."""
    import time

    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    from .processes import SpikeInput, SpikeRecorder

    n, t_in, n_in = spikes.shape
    # Input of sample k, step t in row k * n_in + i, column t.
    data = spikes.astype(np.int32).transpose(0, 2, 1).reshape(n * n_in, t_in)
    src = SpikeInput(data=data)
    recs = []
    for _, size, proc in layers:
        rec = SpikeRecorder(shape=(n * size, steps))
        proc.s_out.connect(rec.a_in)
        recs.append(rec)
    for s_idx, t_idx, proc in projections:
        (src.s_out if s_idx < 0 else layers[s_idx][2].s_out).connect(proc.s_in)
        proc.a_out.connect(layers[t_idx][2].a_in)
    procs = [la[2] for la in layers]
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
            for li, proc in enumerate(procs):
                u[li][t] = proc.u.get()
                v[li][t] = proc.v.get()
        s = [rec.data.get() for rec in recs]
        t2 = time.perf_counter()
        print(f"lava_seconds={t2 - t0:.6f}")  # the run, graph compilation included
        print(f"lava_steady_seconds={t2 - t1:.6f}")  # steps 2..T (with the per-step reads of u and v)
    finally:
        src.stop()
    out = {}
    for li, (name, size, _) in enumerate(layers):
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
    p.add_argument("--netx", action="store_true", help="NET is a NetX HDF5 file, built by lava-dl's NetX reader")
    args = p.parse_args(argv)
    if args.netx:
        from .netx_reader import run as run_netx

        spikes = np.load(args.spikes, allow_pickle=False)
        steps = spikes.shape[1] if args.steps is None else args.steps
        out = run_netx(args.net, spikes, steps)
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
