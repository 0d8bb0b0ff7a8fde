"""quantal benchmarks: hwsim against peers measured in the same run, one table (``make bench``). Not a test.

    python benchmarks/run.py [--quick] [--repeats R] [--only W1,W2,W3,W4,L1] [--no-avx2] [--json OUT.json]

W1  784-300-300-300-10 memoryless binary layers, every synapse stochastic (p = 0.5), input density 0.2, one
    input step, 5 steps (the wave reaches the last layer at t = 4). Peer: exact Bernoulli sampling of every
    synapse in plain PyTorch (one mask per synapse and sample), same network in float.
W2  LIF 700-256-20, 100 steps, input density 0.05. Peers: a PyTorch LIF loop (float, batched matmuls),
    snnTorch's ``Synaptic`` with the same weights and decays, and Norse's ``LIFCell`` (its own discretisation of
    the same current-based LIF: the same sizes and work).
W3, W4  the spiking CNN and the recurrent SNN of benchmarks/graphs.py, with their peers.
L1  Lava at batch 1 (one sample in the graph, as a chip runs it): sample-steps per second of the demo-sized
    stochastic network of benchmarks/targets.py, against hwsim's on the same network.

On a CPU with AVX-512, W1 and W2 are also timed with hwsim compiled for an AVX2-only CPU (a fresh process with
Numba's code generation set to Haswell's features), against the same peers: both vector ISAs in one table
(``--no-avx2`` skips them).

hwsim and every peer are timed ``--repeats`` times (after a warm-up call): min / median / max samples per second
of wall time and the median samples per CPU-second (process time over all threads); the PyTorch peers with 1
thread and with every core, since their threads collapse on a loaded machine; hwsim (W1 to W4) with every core
and, in the column "hwsim 1 thread", with one, and the ratio of the two medians: how far hwsim's rate grows with
the second core (a busy host, or a VM whose vCPUs do not give a core's worth each, gives well under 2x). Goals (and the
lower floors) compare hwsim's median with the fastest PyTorch row for W1 and W2, with the fastest peer for W3 and
W4, with Lava for L1.

Numba's compile time is measured separately, in a fresh process with an empty cache. The header also says how
busy the machine was while the benchmark ran (graphs.MachineLoad: other processes' share of the CPUs' time, and
the hypervisor's steal time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from quantal.compile.ir import DenseSynapse, Network, Neuron


def print_table(table: list[tuple]) -> None:
    """Print rows (the first is the header) as a Markdown table with aligned columns."""
    widths = [max(len(str(r[c])) for r in table) for c in range(len(table[0]))]
    for k, r in enumerate(table):
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")
        if k == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def w1_network(rng: np.random.Generator, per_synapse: bool = False) -> Network:
    """W1: release probability 0.5 on every synapse (one release byte, 127, for all), or with ``per_synapse``
    (benchmarks/ab.py's W1r) a release byte drawn uniformly from 0..255 for each synapse (mean probability 0.5), so
    that the kernel reads a release table as large as the weights'."""
    sizes = [784, 300, 300, 300, 10]
    layers = []
    density = 0.2
    for li, (n_in, size) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.integers(-128, 128, (size, n_in), dtype=np.int8)
        # a ~ N(0, J * p * E[w^2]) with J = density * n_in active inputs: threshold at ~0.85 sd -> ~20% fire
        sd = np.sqrt(density * n_in * 0.5 * np.mean(w.astype(float) ** 2))
        neuron = Neuron(current_decay=4096, voltage_decay=4096, threshold=int(0.85 * sd))
        rel = np.full((size, n_in), 127, np.uint8)
        if per_synapse:
            rel = rng.integers(0, 256, (size, n_in), dtype=np.uint8)
        syn = DenseSynapse(weight=w, weight_exp=0, release=rel)
        layers.append((f"fc{li + 1}", size, syn, neuron))
        density = 0.2
    return Network.chain("w1", 784, tuple(layers))


def w2_network(rng: np.random.Generator) -> Network:
    w1 = rng.integers(-128, 128, (256, 700), dtype=np.int8)
    w2 = rng.integers(-128, 128, (20, 256), dtype=np.int8)
    return Network.chain("w2", 700, (
        ("hidden", 256, DenseSynapse(weight=w1, weight_exp=0),
              Neuron(current_decay=410, voltage_decay=205, threshold=300)),
        ("out", 20, DenseSynapse(weight=w2, weight_exp=0),
              Neuron(current_decay=410, voltage_decay=205, threshold=300)),
    ))  # fmt: skip


#: W1 and W2: network builder, generator seed, samples (full, --quick), input steps and channels, input density,
#: and the hwsim call's arguments
DENSE = {"W1": (w1_network, 1, (20000, 2000), (1, 784), 0.2, {"steps": 5, "layers": ("fc4",)}),
         "W2": (w2_network, 2, (5000, 500), (100, 700), 0.05, {"layers": ("out",)})}  # fmt: skip


def dense_setup(name: str, quick: bool):  # noqa: ANN201
    """W1's or W2's network, input, hwsim call and sample count (each its own generator: the same data whatever
    else runs)."""
    from quantal.hwsim import Simulator

    build, seed, (n_full, n_quick), shape, density, kw = DENSE[name]
    rng = np.random.default_rng(seed)
    net = build(rng)
    n = n_quick if quick else n_full
    x = rng.random((n, *shape)) < density
    sim = Simulator(net)
    return net, x, lambda xs: sim.run(xs, record=("counts",), **kw), n


def avx2_rates(only: set[str], quick: bool, repeats: int) -> dict[str, dict[str, float]]:
    """hwsim's W1 and W2 rates with code generated for an AVX2-only CPU, on this (AVX-512) machine: a fresh
    process with ``NUMBA_CPU_NAME=haswell`` and the AVX2 feature list, and its own Numba cache (kept in
    ``runs/bench-cache-avx2`` so that later runs skip the compile, which is not timed)."""
    from quantal.hwsim.simd import AVX2_FEATURES

    cache = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "runs", "bench-cache-avx2")
    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES=AVX2_FEATURES, NUMBA_CACHE_DIR=cache)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rates.json")
        cmd = [sys.executable, os.path.abspath(__file__), "--hwsim-only", "--only", ",".join(sorted(only)),
               "--repeats", str(repeats), "--json", out] + (["--quick"] if quick else [])  # fmt: skip
        subprocess.run(cmd, env=env, check=True)
        with open(out) as f:
            return json.load(f)


def hwsim_only(only: set[str], quick: bool, repeats: int, out: str) -> int:
    """The ``--hwsim-only`` mode: hwsim's W1/W2 rates alone, as JSON (for :func:`avx2_rates`)."""
    from graphs import timed_hwsim  # benchmarks/graphs.py

    from quantal.hwsim import engine

    rates: dict = {"hwsim_isa": engine.ISA}
    for name in ("W1", "W2"):
        if name in only:
            _, x, fn, n = dense_setup(name, quick)
            fn(x[:2])  # compiles (or loads from the cache) before the timed calls
            rates[name] = timed_hwsim(lambda fn=fn, x=x: fn(x), n, repeats)
    with open(out, "w") as f:
        json.dump(rates, f)
    return 0


def torch_w1(net: Network, x: np.ndarray, batch: int):
    import torch

    ws = [torch.tensor(p.synapse.weight, dtype=torch.float32) for p in net.projections]
    th = [float(la.neuron.threshold) for la in net.layers]
    xs = torch.tensor(x[:batch, 0], dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)

    def run():
        with torch.no_grad():
            h = xs
            for w, t in zip(ws, th):
                mask = torch.rand((h.shape[0],) + w.shape, generator=gen) < 0.5  # one draw per synapse
                a = torch.einsum("boi,oi,bi->bo", mask.float(), w, h)
                h = (a > t).float()
        return h

    return run


def torch_w2(net: Network, x: np.ndarray, batch: int):
    import torch

    ws = [torch.tensor(p.synapse.weight, dtype=torch.float32) for p in net.projections]
    xs = torch.tensor(x[:batch], dtype=torch.float32)
    alpha = [1 - la.neuron.current_decay / 4096 for la in net.layers]
    beta = [1 - la.neuron.voltage_decay / 4096 for la in net.layers]
    th = [la.neuron.threshold for la in net.layers]

    def run():
        with torch.no_grad():
            b = xs.shape[0]
            u = [torch.zeros(b, w.shape[0]) for w in ws]
            v = [torch.zeros(b, w.shape[0]) for w in ws]
            s = [torch.zeros(b, w.shape[0]) for w in ws]
            count = torch.zeros(b, ws[-1].shape[0])
            for t in range(xs.shape[1]):
                inp = xs[:, t]
                for li, w in enumerate(ws):
                    u[li] = alpha[li] * u[li] + inp @ w.T
                    v[li] = beta[li] * v[li] + u[li]
                    s[li] = (v[li] > th[li]).float()
                    v[li] = v[li] * (1 - s[li])
                    inp = s[li]
                count += s[-1]
        return count

    return run


def snntorch_w2(net: Network, x: np.ndarray, batch: int):
    """W2 in snnTorch: Linear + ``snn.Synaptic`` (alpha, beta of the IR's decays, reset to zero), float32."""
    import snntorch as snn
    import torch

    fcs = []
    for p in net.projections:
        fc = torch.nn.Linear(p.synapse.weight.shape[1], p.synapse.weight.shape[0], bias=False)
        fc.weight.data = torch.tensor(p.synapse.weight, dtype=torch.float32)
        fcs.append(fc)
    cells = [snn.Synaptic(alpha=1 - la.neuron.current_decay / 4096, beta=1 - la.neuron.voltage_decay / 4096,
                          threshold=float(la.neuron.threshold), reset_mechanism="zero") for la in net.layers]
    xs = torch.tensor(x[:batch], dtype=torch.float32)

    def run():
        with torch.no_grad():
            state = [c.init_synaptic() for c in cells]
            count = 0
            for t in range(xs.shape[1]):
                h = xs[:, t]
                for k, (fc, c) in enumerate(zip(fcs, cells)):
                    h, syn, mem = c(fc(h), *state[k])
                    state[k] = (syn, mem)
                count = count + h
        return count

    return run


def norse_w2(net: Network, x: np.ndarray, batch: int):
    """W2 in Norse: a linear layer and ``LIFCell`` (current-based LIF, Norse's own Euler discretisation with
    dt * tau_syn_inv and dt * tau_mem_inv set to the IR's decays), float32."""
    import norse.torch as nt
    import torch

    fcs, cells = [], []
    for p, la in zip(net.projections, net.layers):
        fc = torch.nn.Linear(p.synapse.weight.shape[1], p.synapse.weight.shape[0], bias=False)
        fc.weight.data = torch.tensor(p.synapse.weight, dtype=torch.float32)
        fcs.append(fc)
        par = nt.LIFParameters(tau_syn_inv=torch.tensor(la.neuron.current_decay / 4096 / 1e-3),
                               tau_mem_inv=torch.tensor(la.neuron.voltage_decay / 4096 / 1e-3),
                               v_th=torch.tensor(float(la.neuron.threshold)), v_leak=torch.tensor(0.0),
                               v_reset=torch.tensor(0.0))  # fmt: skip
        cells.append(nt.LIFCell(par, dt=1e-3))
    xs = torch.tensor(x[:batch], dtype=torch.float32)

    def run():
        with torch.no_grad():
            state = [None] * len(cells)
            count = 0
            for t in range(xs.shape[1]):
                h = xs[:, t]
                for k, (fc, c) in enumerate(zip(fcs, cells)):
                    h, state[k] = c(fc(h), state[k])
                count = count + h
        return count

    return run


COMPILE_SCRIPT = """
import time, numpy as np
t0 = time.perf_counter()
from quantal.compile.testing import random_network, random_spikes
from quantal.hwsim import simulate
rng = np.random.default_rng(0)
net = random_network(rng, [8, 8, 4], release="random", escape=True)
simulate(net, random_spikes(rng, 2, 3, 8))
print(time.perf_counter() - t0)
"""


def compile_time() -> tuple[float, float]:
    """Seconds to the end of a small network's first simulation in a fresh process with an empty Numba cache
    (import, compile, run), then in a second fresh process with the cache the first one wrote."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = []
        for _ in range(2):
            r = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT], env=env, capture_output=True, text=True,
                               check=True)  # fmt: skip
            out.append(float(r.stdout.strip().splitlines()[-1]))
        return out[0], out[1]


def startup_times(repeats: int = 5) -> dict:
    """Wall seconds of a fresh process's first ``quantal run`` (a stochastic network with escape noise and a
    readout) with an empty Numba cache, of ``quantal warmup`` (what ``make`` runs after installing), and of the
    first ``quantal run`` after it: what a new user waits for. The warm run is timed ``repeats`` times, each a
    fresh process (``warm_run_s`` the median, ``warm_runs_s`` all of them): on a shared machine one timing can
    be far from another."""
    import shutil

    from quantal.compile.ir import save
    from quantal.compile.testing import random_network, random_spikes

    out: dict = {}
    rng = np.random.default_rng(0)
    net = random_network(rng, [64, 32, 10], release="random", escape=True, readout=True)
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(tmp, "cache"))
        qnet = str(save(net, os.path.join(tmp, "net.qnet")))
        np.save(os.path.join(tmp, "x.npy"), random_spikes(rng, 20, 10, 64))
        run = [sys.executable, "-m", "quantal", "run", qnet, "--input", os.path.join(tmp, "x.npy"), "--out",
               os.path.join(tmp, "o.npz"), "-q"]  # fmt: skip

        def wall(cmd: list[str]) -> float:
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, capture_output=True, check=True)
            return time.perf_counter() - t0

        out["cold_run_s"] = wall(run)
        shutil.rmtree(env["NUMBA_CACHE_DIR"], ignore_errors=True)  # warmup starts from an empty cache
        out["warmup_s"] = wall([sys.executable, "-m", "quantal", "warmup", "-q"])
        out["warm_runs_s"] = [wall(run) for _ in range(max(1, repeats))]
        out["warm_run_s"] = statistics.median(out["warm_runs_s"])
    return out


def render(rows: list[tuple]) -> tuple[list[tuple], list[dict]]:
    """The table (header first) and the JSON records of ``rows``: (workload, hwsim rate, peers, goal, floor,
    basis, note), goal and floor as (samples/s or None, ratio) and ``basis`` the prefix of the peers the ratios
    count against ("" for every peer)."""
    head = ("workload", "hwsim samples/s min/med/max", "hwsim /CPU-s", "hwsim 1 thread med (scaling)", "peer",
            "peer samples/s min/med/max",
            "peer /CPU-s", "ratio (medians)", "goal / floor (vs the fastest basis peer)", "met: goal / floor")
    table, results = [head], []

    def met(g: tuple | None, rate: float, ratio: float) -> bool | None:
        return None if g is None else (g[0] is None or rate >= g[0]) and ratio >= g[1]

    def txt(g: tuple | None) -> str:
        return "-" if g is None else (f">= {g[0]:,} and " if g[0] else "") + f">= {g[1]:,}x"

    yn = {True: "yes", False: "no", None: "-"}

    def one(r: dict) -> str:  # hwsim's median on one thread, and the all-thread median over it
        o = r.get("one_thread")
        return "-" if o is None else f"{o['median']:,.0f} ({r['median'] / o['median']:.2f}x)"

    for name, r_hw, peers, goal, floor, basis, note in rows:
        best = max(v["median"] for k, v in peers.items() if k.startswith(basis))
        ratio = r_hw["median"] / best
        ok_goal, ok_floor = met(goal, r_hw["median"], ratio), met(floor, r_hw["median"], ratio)
        for k, (peer, pr) in enumerate(peers.items()):
            first = k == 0
            table.append((name if first else "", f"{r_hw['min']:,.0f} / {r_hw['median']:,.0f} / {r_hw['max']:,.0f}"
                          if first else "", f"{r_hw['per_cpu_s']:,.0f}" if first else "", one(r_hw) if first else "",
                          peer,
                          f"{pr['min']:,.0f} / {pr['median']:,.0f} / {pr['max']:,.0f}", f"{pr['per_cpu_s']:,.0f}",
                          f"{r_hw['median'] / pr['median']:,.1f}x", f"{txt(goal)} / {txt(floor)}" if first else "",
                          f"{yn[ok_goal]} / {yn[ok_floor]}" if first else ""))  # fmt: skip
        results.append({"workload": name, "hwsim": r_hw, "peers": peers, "ratio_vs_fastest_basis_peer": ratio,
                        "goal": goal, "floor": floor, "goal_met": ok_goal, "floor_met": ok_floor, "notes": note})
    return table, results


def lava_batch1_row(repeats: int) -> tuple | None:
    """L1: Lava at batch 1 (one sample per graph; graph start-up excluded), against hwsim on the same network,
    in sample-steps per second; None without the Lava venv."""
    import statistics

    from quantal.hwsim import Simulator
    from quantal.targets.lava import driver
    from quantal.train.data import encode, load
    from targets import network  # benchmarks/targets.py, beside this script

    if driver.lava_python() is None:
        return None
    net, steps = network(True), 10
    x = encode(load("digits", "test").x[:1], "rate", 8, seed=0)
    lava = []
    for _ in range(repeats):
        timing: dict = {}
        driver.run_in_lava(net, x, steps, timing=timing, spikes_only=True)
        lava.append((steps - 1) / timing["steady_seconds"])
    sim = Simulator(net)
    big = np.repeat(x, 20000, axis=0)
    from graphs import timed  # benchmarks/graphs.py

    hw = timed(lambda: sim.run(big, steps=steps), len(big) * steps, repeats)
    peer = {"min": min(lava), "median": statistics.median(lava), "max": max(lava), "per_cpu_s": float("nan")}
    return ("L1 Lava batch 1, demo net (sample-steps/s)", hw, {"Lava 0.10 fixed_pt, 1 sample": peer}, (None, 1000),
            None, "", "hwsim runs 20,000 copies of the sample; Lava one, as a chip does")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller batches (a smoke run)")
    p.add_argument("--json", default=None, help="also write the results as JSON")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per row (min / median / max)")
    p.add_argument("--only", default="W1,W2,W3,W4,L1", help="comma list of workloads (default: all)")
    p.add_argument("--no-avx2", action="store_true",
                   help="on an AVX-512 CPU, skip the W1/W2 rows of hwsim compiled for AVX2 only")
    p.add_argument("--hwsim-only", action="store_true", help=argparse.SUPPRESS)  # the AVX2 subprocess's mode
    args = p.parse_args(argv)
    only = {w.strip().upper() for w in args.only.split(",")}
    if args.hwsim_only:
        return hwsim_only(only, args.quick, args.repeats, args.json)

    import numba
    import torch
    from graphs import MachineLoad, graph_rows, timed, timed_hwsim, vector_isa  # benchmarks/graphs.py

    load = MachineLoad()  # what else the machine did while this ran

    from quantal.hwsim import Simulator, engine

    threads = os.cpu_count() or 1
    rows = []
    cold, warm1 = compile_time()
    start = startup_times(args.repeats)
    reps = args.repeats

    def peer_rates(make) -> dict[str, dict[str, float]]:  # noqa: ANN001
        """The peer at 1 thread and at every core: PyTorch's threads collapse on a loaded machine."""
        out = {}
        for th in sorted({1, threads}):
            torch.set_num_threads(th)
            fn, batch = make()
            out[f"{th} thread{'s' if th > 1 else ''}"] = timed(fn, batch, reps)
        torch.set_num_threads(threads)
        return out

    if "W1" in only:
        net1, x1, run1, n1 = dense_setup("W1", args.quick)
        run1(x1[:2])  # compiled (or loaded from the cache) before the timed runs
        q = Simulator(net1).run(x1[:2000], steps=5, record=("counts",))
        rates = [float((q[f"{la.name}.counts"] > 0).mean()) for la in net1.layers[:-1]]
        r_hw1 = timed_hwsim(lambda: run1(x1), n1, reps)
        tb = 16 if args.quick else 64
        peers1 = {f"PyTorch exact Bernoulli, {k}": v
                  for k, v in peer_rates(lambda: (torch_w1(net1, x1, tb), tb)).items()}  # fmt: skip
        rows.append(("W1 stochastic 784-300-300-300-10", r_hw1, peers1, (300_000, 1000), (200_000, 700), "PyTorch",
                     f"hidden firing {', '.join(f'{r:.2f}' for r in rates)}"))  # fmt: skip

    if "W2" in only:
        net2, x2, run2, n2 = dense_setup("W2", args.quick)
        run2(x2[:2])
        q = Simulator(net2).run(x2[:500], record=("counts",))
        rate2 = float(q["hidden.counts"].mean() / 100)
        r_hw2 = timed_hwsim(lambda: run2(x2), n2, reps)
        tb2 = 64 if args.quick else 256
        peers2 = {f"PyTorch LIF loop, {k}": v for k, v in peer_rates(lambda: (torch_w2(net2, x2, tb2), tb2)).items()}
        for label, fn in (("snnTorch Synaptic", snntorch_w2), ("Norse LIFCell", norse_w2)):
            peers2.update({f"{label}, {k}": v for k, v in peer_rates(lambda fn=fn: (fn(net2, x2, tb2), tb2)).items()})
        rows.append(("W2 LIF 700-256-20, 100 steps", r_hw2, peers2, (40_000, 12), (30_000, 8), "PyTorch",
                     f"hidden rate {rate2:.3f} spikes/step"))  # fmt: skip

    if engine.ISA == "avx512" and not args.no_avx2 and only & {"W1", "W2"}:
        # both vector ISAs where the CPU has them: the same workloads with hwsim's code for AVX2-only CPUs,
        # against the same peers (measured above, in this run)
        avx2 = avx2_rates(only & {"W1", "W2"}, args.quick, reps)
        for row in list(rows):
            key = row[0].split()[0]
            if key in avx2:
                rows.append((f"{row[0]} (hwsim AVX2 code)", avx2[key], *row[2:6],
                             f"hwsim compiled for {avx2['hwsim_isa']} on this CPU, its peers those above"))
    rows += graph_rows({w for w in only if w in ("W3", "W4")}, args.quick, reps, peer_rates)
    if "L1" in only:
        lava_row = lava_batch1_row(reps)
        if lava_row is not None:
            rows.append(lava_row)

    print(f"machine: {platform.processor() or platform.machine()}, {threads} cores, vector ISA {vector_isa()} "
          f"(hwsim compiled for {engine.ISA}), numba {numba.__version__} ({numba.get_num_threads()} threads), "
          f"torch {torch.__version__}; {reps} repeats per row")  # fmt: skip
    print(f"numba compile time (fresh process, cold cache, to the end of a first call): {cold:.1f} s; the same with "
          f"the cache it wrote: {warm1:.2f} s")  # fmt: skip
    w = start["warm_runs_s"]
    print(f"first `quantal run` of a fresh install (process wall time): {start['cold_run_s']:.1f} s with an empty "
          f"Numba cache; after `quantal warmup` (run by make; it took {start['warmup_s']:.1f} s) "
          f"{min(w):.2f} / {start['warm_run_s']:.2f} / {max(w):.2f} s (min / median / max of {len(w)} fresh "
          "processes)")  # fmt: skip
    shares = load.shares()
    if shares is not None:
        print(f"while this ran, other processes used {100 * shares['others']:.1f}% of the {threads} CPUs' time and "
              f"the hypervisor gave {100 * shares['steal']:.1f}% to other guests (steal; /proc/stat)")  # fmt: skip
    table, results = render(rows)
    print_table(table)
    for name, *_, note in rows:
        print(f"{name.split()[0]}{' (AVX2 code)' if 'AVX2 code' in name else ''}: {note}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"isa": vector_isa(), "hwsim_isa": engine.ISA, "compile_s": cold, "compile_warm_s": warm1,
                       "startup": start, "machine_load": shares, "rows": results}, f, indent=2)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
