"""quantal graph benchmarks: a spiking CNN (W3) and a recurrent SNN (W4) in hwsim against peers measured in the
same run. Not a test.

    python benchmarks/graphs.py [--quick] [--repeats R] [--json OUT.json]

W3  the NIR paper's N-MNIST CNN shape: input 2x34x34; conv 16 5x5 stride 2 pad 1 (16x16x16); conv 16 3x3 pad 1;
    sum-pool 2; conv 8 3x3 pad 1 (8x8x8); sum-pool 2; dense 256; dense 10; IF neurons; 300 steps; input
    density 2%. In the IR a sum-pool followed by a projection is one projection, the exact composition of the
    two linear maps (quantal.compile.graph.sum_pool_conv2d / sum_pool_dense): the pooled 3x3 conv is a 6x6 conv
    with stride 2 and padding 2, and the pooled dense layer repeats each column over its 2x2 window.
W4  recurrent LIF 700-256(recurrent)-20, 100 steps, input density 5%.
Both also with every synapse stochastic (release p = 0.5): hwsim only (the peers have no stochastic synapses),
their ratio is against the deterministic peers.

Peers (float32, the same weights): a plain PyTorch loop (conv2d / matmul per step, batched) and snnTorch
(``snn.Leaky`` with beta = 1 for IF, ``snn.RLeaky`` for the recurrent layer). Each workload is timed
``--repeats`` times (after a warm-up call); the table shows min / median / max samples per second of wall time
and the median samples per CPU-second (process CPU time over all threads), so a loaded machine shows up as
CPU-seconds well below wall x cores. Numba's cold compile is measured separately (benchmarks/run.py).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time

import numpy as np

from quantal.compile.graph import sum_pool_conv2d, sum_pool_dense
from quantal.compile.ir import Conv2dSynapse, DenseSynapse, Layer, Network, Neuron, Projection


def vector_isa() -> str:
    """The widest x86 vector extension the CPU reports (from /proc/cpuinfo), or the machine name."""
    try:
        flags = set(open("/proc/cpuinfo").read().split())
    except OSError:  # pragma: no cover - not Linux
        return platform.machine()
    for isa in ("avx512f", "avx2", "avx", "sse4_2"):
        if isa in flags:
            return isa.upper().replace("F", "") if isa == "avx512f" else isa.upper()
    return platform.machine()


class MachineLoad:
    """What else the machine did while a benchmark ran, from Linux's /proc/stat: the share of every CPU's time that
    other processes used (the CPUs' busy time less this process's and its waited-for children's CPU time) and the
    share the hypervisor gave to other guests (steal time). Created when the benchmark starts; :meth:`shares`
    at its end; None where /proc/stat cannot be read."""

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[list[int], float] | None:
        import resource

        try:
            with open("/proc/stat") as f:
                head = f.readline().split()
            ticks = [int(v) for v in head[1:9]]  # user nice system idle iowait irq softirq steal
        except (OSError, ValueError):  # pragma: no cover - not Linux
            return None
        if head[0] != "cpu" or len(ticks) < 8:  # pragma: no cover - an unknown format
            return None
        own = sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                     resource.getrusage(resource.RUSAGE_CHILDREN)))  # fmt: skip
        return ticks, own

    def shares(self) -> dict[str, float] | None:
        end = self._sample()
        if self.start is None or end is None:  # pragma: no cover - not Linux
            return None
        (t0, own0), (t1, own1) = self.start, end
        d = [b - a for a, b in zip(t0, t1)]
        hz = os.sysconf("SC_CLK_TCK")
        total = sum(d) / hz  # every CPU's time over the run, in seconds
        if total <= 0:
            return None
        busy = (d[0] + d[1] + d[2] + d[5] + d[6]) / hz  # user, nice, system, irq, softirq
        return {"others": max(0.0, busy - (own1 - own0)) / total, "steal": d[7] / hz / total}


def timed(fn, n_items: int, repeats: int) -> dict[str, float]:
    """Samples per second over ``repeats`` calls (after one warm-up call): min / median / max of wall time, and
    the median samples per CPU-second (process time, all threads)."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(n_items / (time.perf_counter() - t0))
        cpus.append(n_items / max(time.process_time() - c0, 1e-9))
    return {"min": min(walls), "median": statistics.median(walls), "max": max(walls),
            "per_cpu_s": statistics.median(cpus)}  # fmt: skip


def timed_hwsim(fn, n_items: int, repeats: int) -> dict:  # noqa: ANN001
    """:func:`timed` with Numba's threads (every core), and under ``one_thread`` the same on one thread: how far
    hwsim's rate scales with the cores (on a busy host, or a VM whose vCPUs do not give a core's worth each,
    well under 2x; the peers' rows at 1 and 2 threads show the same for them)."""
    import numba

    rate = timed(fn, n_items, repeats)
    threads = numba.get_num_threads()
    if threads > 1:
        numba.set_num_threads(1)
        try:
            rate["one_thread"] = timed(fn, n_items, repeats)
        finally:
            numba.set_num_threads(threads)
    return rate


# --------------------------------------------------------------------------------------------- networks


def _if(threshold: int, kind: str = "lif") -> Neuron:
    # IF: u forgets (current_decay 4096, u = a << 6), v integrates without leak (voltage_decay 0)
    return Neuron(kind=kind, current_decay=4096, voltage_decay=0, threshold=threshold)


def _release(shape: tuple[int, ...], stochastic: bool) -> np.ndarray | None:
    return np.full(shape, 127, np.uint8) if stochastic else None  # P(transmit) = (127 + 1) / 256 = 0.5


def w3_weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    def g(*shape: int) -> np.ndarray:
        return rng.integers(-40, 128, shape, dtype=np.int8)  # mostly excitatory, so activity reaches the end

    return {"c1": g(16, 2, 5, 5), "c2": g(16, 16, 3, 3), "c3": g(8, 16, 3, 3), "f1": g(256, 8 * 4 * 4),
            "f2": rng.integers(-128, 128, (10, 256), dtype=np.int8)}  # fmt: skip


W3_THRESHOLDS = {"c1": 500, "c2": 8000, "c3": 16000, "f1": 20000, "f2": 0}  # about 5-7% firing per step


def w3_network(wts: dict[str, np.ndarray], stochastic: bool) -> Network:
    th = W3_THRESHOLDS
    layers = (Layer(name="c1", shape=(16, 16, 16), neuron=_if(th["c1"])),
              Layer(name="c2", shape=(16, 16, 16), neuron=_if(th["c2"])),
              Layer(name="c3", shape=(8, 8, 8), neuron=_if(th["c3"])),
              Layer(name="f1", shape=(256,), neuron=_if(th["f1"])),
              Layer(name="f2", shape=(10,), neuron=_if(0, "readout")))  # fmt: skip

    def conv(k: np.ndarray, **geo: object) -> Conv2dSynapse:
        return Conv2dSynapse(weight=k, release=_release(k.shape, stochastic), **geo)  # type: ignore[arg-type]

    def dense(w: np.ndarray) -> DenseSynapse:
        return DenseSynapse(weight=w, release=_release(w.shape, stochastic))

    projs = (Projection(name="c1.in", source="input", target="c1", synapse=conv(wts["c1"], stride=2, padding=1)),
             Projection(name="c2.in", source="c1", target="c2", synapse=conv(wts["c2"], padding=1)),
             # sum-pool 2 then conv 3x3 pad 1 = one 6x6 conv with stride 2 and padding 2 (exact)
             Projection(name="c3.in", source="c2", target="c3",
                        synapse=sum_pool_conv2d(conv(wts["c3"], padding=1), 2, (16, 16, 16))),
             # sum-pool 2 then dense = dense on the unpooled map, each column repeated over its window
             Projection(name="f1.in", source="c3", target="f1", synapse=sum_pool_dense(dense(wts["f1"]), 2, (8, 8, 8))),
             Projection(name="f2.in", source="f1", target="f2", synapse=dense(wts["f2"])))  # fmt: skip
    return Network(name="w3" + ("s" if stochastic else ""), input_shape=(2, 34, 34), layers=layers,
                   projections=projs)  # fmt: skip


def w4_weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"in": rng.integers(-128, 128, (256, 700), dtype=np.int8),
            "rec": rng.integers(-128, 128, (256, 256), dtype=np.int8),
            "out": rng.integers(-128, 128, (20, 256), dtype=np.int8)}  # fmt: skip


W4_NEURON = {"current_decay": 410, "voltage_decay": 205, "threshold": 6000}  # alpha 0.9, beta 0.95


def w4_network(wts: dict[str, np.ndarray], stochastic: bool) -> Network:
    def dense(w: np.ndarray) -> DenseSynapse:
        return DenseSynapse(weight=w, release=_release(w.shape, stochastic))

    return Network(
        name="w4" + ("s" if stochastic else ""), input_shape=(700,),
        layers=(Layer(name="hidden", shape=(256,), neuron=Neuron(**W4_NEURON)),
                Layer(name="out", shape=(20,), neuron=Neuron(**W4_NEURON))),
        projections=(Projection(name="hidden.in", source="input", target="hidden", synapse=dense(wts["in"])),
                     Projection(name="hidden.rec", source="hidden", target="hidden", synapse=dense(wts["rec"])),
                     Projection(name="out.in", source="hidden", target="out", synapse=dense(wts["out"]))),
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------ peers


def torch_w3(wts: dict[str, np.ndarray], x: np.ndarray):
    """The W3 network as a plain PyTorch loop: conv2d per step, IF neurons (v += a, spike if v > theta, reset 0)."""
    import torch
    import torch.nn.functional as F

    w = {k: torch.tensor(v, dtype=torch.float32) for k, v in wts.items()}
    th = W3_THRESHOLDS
    xs = torch.tensor(x, dtype=torch.float32).reshape(x.shape[0], x.shape[1], 2, 34, 34)

    def if_step(v: torch.Tensor, a: torch.Tensor, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
        v = v + a
        s = (v > theta).float()
        return s, v * (1 - s)

    def run():
        with torch.no_grad():
            b = xs.shape[0]
            v1, v2 = torch.zeros(b, 16, 16, 16), torch.zeros(b, 16, 16, 16)
            v3, v4, v5 = torch.zeros(b, 8, 8, 8), torch.zeros(b, 256), torch.zeros(b, 10)
            for t in range(xs.shape[1]):
                s1, v1 = if_step(v1, F.conv2d(xs[:, t], w["c1"], stride=2, padding=1), th["c1"])
                s2, v2 = if_step(v2, F.conv2d(s1, w["c2"], padding=1), th["c2"])
                p2 = F.avg_pool2d(s2, 2) * 4  # sum pooling
                s3, v3 = if_step(v3, F.conv2d(p2, w["c3"], padding=1), th["c3"])
                p3 = (F.avg_pool2d(s3, 2) * 4).flatten(1)
                s4, v4 = if_step(v4, p3 @ w["f1"].T, th["f1"])
                v5 = v5 + s4 @ w["f2"].T
        return v5

    return run


def snntorch_w3(wts: dict[str, np.ndarray], x: np.ndarray):
    import snntorch as snn
    import torch
    from torch import nn

    th = W3_THRESHOLDS

    def conv(k: np.ndarray, **kw: int) -> nn.Conv2d:
        m = nn.Conv2d(k.shape[1], k.shape[0], k.shape[2], bias=False, **kw)
        m.weight.data = torch.tensor(k, dtype=torch.float32)
        return m

    def lin(w: np.ndarray) -> nn.Linear:
        m = nn.Linear(w.shape[1], w.shape[0], bias=False)
        m.weight.data = torch.tensor(w, dtype=torch.float32)
        return m

    c1, c2, c3 = conv(wts["c1"], stride=2, padding=1), conv(wts["c2"], padding=1), conv(wts["c3"], padding=1)
    f1, f2 = lin(wts["f1"]), lin(wts["f2"])
    lif = [snn.Leaky(beta=1.0, threshold=float(th[k]), reset_mechanism="zero") for k in ("c1", "c2", "c3", "f1")]
    pool = nn.AvgPool2d(2)
    xs = torch.tensor(x, dtype=torch.float32).reshape(x.shape[0], x.shape[1], 2, 34, 34)

    def run():
        with torch.no_grad():
            mem = [m.init_leaky() for m in lif]
            out = 0
            for t in range(xs.shape[1]):
                s, mem[0] = lif[0](c1(xs[:, t]), mem[0])
                s, mem[1] = lif[1](c2(s), mem[1])
                s, mem[2] = lif[2](c3(pool(s) * 4), mem[2])
                s, mem[3] = lif[3](f1((pool(s) * 4).flatten(1)), mem[3])
                out = out + f2(s)
        return out

    return run


def torch_w4(wts: dict[str, np.ndarray], x: np.ndarray):
    """W4 as a plain PyTorch loop: CUBA LIF (u = alpha u + a, v = beta v + u), the hidden layer fed by its own
    spikes of the previous step."""
    import torch

    w = {k: torch.tensor(v, dtype=torch.float32) for k, v in wts.items()}
    alpha, beta = 1 - W4_NEURON["current_decay"] / 4096, 1 - W4_NEURON["voltage_decay"] / 4096
    theta = float(W4_NEURON["threshold"])
    xs = torch.tensor(x, dtype=torch.float32)

    def run():
        with torch.no_grad():
            b = xs.shape[0]
            u1, v1, s1 = torch.zeros(b, 256), torch.zeros(b, 256), torch.zeros(b, 256)
            u2, v2 = torch.zeros(b, 20), torch.zeros(b, 20)
            count = torch.zeros(b, 20)
            for t in range(xs.shape[1]):
                u1 = alpha * u1 + xs[:, t] @ w["in"].T + s1 @ w["rec"].T
                v1 = beta * v1 + u1
                s_new = (v1 > theta).float()
                v1 = v1 * (1 - s_new)
                u2 = alpha * u2 + s1 @ w["out"].T
                v2 = beta * v2 + u2
                s2 = (v2 > theta).float()
                v2 = v2 * (1 - s2)
                count += s2
                s1 = s_new
        return count

    return run


def snntorch_w4(wts: dict[str, np.ndarray], x: np.ndarray):
    import snntorch as snn
    import torch
    from torch import nn

    fc_in = nn.Linear(700, 256, bias=False)
    fc_in.weight.data = torch.tensor(wts["in"], dtype=torch.float32)
    fc_out = nn.Linear(256, 20, bias=False)
    fc_out.weight.data = torch.tensor(wts["out"], dtype=torch.float32)
    beta = 1 - W4_NEURON["voltage_decay"] / 4096
    theta = float(W4_NEURON["threshold"])
    rlif = snn.RLeaky(beta=beta, linear_features=256, threshold=theta, reset_mechanism="zero")
    rlif.recurrent.weight.data = torch.tensor(wts["rec"], dtype=torch.float32)
    rlif.recurrent.bias.data.zero_()
    lif = snn.Leaky(beta=beta, threshold=theta, reset_mechanism="zero")
    xs = torch.tensor(x, dtype=torch.float32)

    def run():
        with torch.no_grad():
            spk, mem = rlif.init_rleaky()
            mem2 = lif.init_leaky()
            count = 0
            for t in range(xs.shape[1]):
                spk, mem = rlif(fc_in(xs[:, t]), spk, mem)
                s2, mem2 = lif(fc_out(spk), mem2)
                count = count + s2
        return count

    return run


def norse_w4(wts: dict[str, np.ndarray], x: np.ndarray):
    """W4 in Norse: ``LIFRecurrentCell`` (current-based LIF with a recurrent weight, Norse's own discretisation
    with the IR's decays) and a ``LIFCell`` readout layer, float32."""
    import norse.torch as nt
    import torch

    par = nt.LIFParameters(tau_syn_inv=torch.tensor(W4_NEURON["current_decay"] / 4096 / 1e-3),
                           tau_mem_inv=torch.tensor(W4_NEURON["voltage_decay"] / 4096 / 1e-3),
                           v_th=torch.tensor(float(W4_NEURON["threshold"])), v_leak=torch.tensor(0.0),
                           v_reset=torch.tensor(0.0))  # fmt: skip
    rec = nt.LIFRecurrentCell(700, 256, par, dt=1e-3, autapses=True)
    rec.input_weights.data = torch.tensor(wts["in"], dtype=torch.float32)
    rec.recurrent_weights.data = torch.tensor(wts["rec"], dtype=torch.float32)
    fc_out = torch.nn.Linear(256, 20, bias=False)
    fc_out.weight.data = torch.tensor(wts["out"], dtype=torch.float32)
    out = nt.LIFCell(par, dt=1e-3)
    xs = torch.tensor(x, dtype=torch.float32)

    def run():
        with torch.no_grad():
            s1 = s2 = None
            count = 0
            for t in range(xs.shape[1]):
                z, s1 = rec(xs[:, t], s1)
                z2, s2 = out(fc_out(z), s2)
                count = count + z2
        return count

    return run


def graph_rows(which: set[str], quick: bool, repeats: int, peer_rates) -> list[tuple]:  # noqa: ANN001
    """The W3 and W4 rows of benchmarks/run.py's table (``which`` of them): hwsim on the deterministic and the
    stochastic network, the peers through ``peer_rates`` (1 thread and every core)."""
    from quantal.hwsim import Simulator

    rows = []

    def hwsim_rows(label: str, build, wts: dict, x: np.ndarray, steps: int, peers: dict) -> None:  # noqa: ANN001
        for stochastic in (False, True):
            net = build(wts, stochastic)
            sim = Simulator(net)
            out = net.layers[-1].name
            rate = timed_hwsim(lambda sim=sim, out=out: sim.run(x, record=("counts",), layers=(out,)), len(x), repeats)
            note = ""
            if not stochastic:
                c = sim.run(x[:8], record=("counts",))
                note = "firing (spikes per neuron per step): " + ", ".join(
                    f"{la.name} {c[f'{la.name}.counts'].mean() / steps:.3f}" for la in net.layers
                    if la.neuron.kind != "readout")  # fmt: skip
            rows.append((label + (", stochastic p=0.5" if stochastic else ""), rate, peers, (None, 10), None, "",
                         note or "the deterministic peers"))  # fmt: skip

    if "W3" in which:
        rng = np.random.default_rng(3)  # each workload its own generator: the same data whatever else runs
        w3 = w3_weights(rng)
        n3 = 16 if quick else 64
        x3 = rng.random((n3, 300, 2 * 34 * 34)) < 0.02
        pb = 16 if quick else 32  # peer batch
        peers3 = {f"PyTorch loop, {k}": v for k, v in peer_rates(lambda: (torch_w3(w3, x3[:pb]), pb)).items()}
        peers3.update({f"snnTorch, {k}": v for k, v in peer_rates(lambda: (snntorch_w3(w3, x3[:pb]), pb)).items()})
        hwsim_rows("W3 spiking CNN", w3_network, w3, x3, 300, peers3)
    if "W4" in which:
        rng = np.random.default_rng(4)
        w4 = w4_weights(rng)
        n4 = 200 if quick else 2000
        x4 = rng.random((n4, 100, 700)) < 0.05
        pb4 = 64 if quick else 256
        peers4 = {}
        for label, fn in (("PyTorch loop", torch_w4), ("snnTorch RLeaky", snntorch_w4), ("Norse", norse_w4)):
            peers4.update({f"{label}, {k}": v for k, v in peer_rates(lambda fn=fn: (fn(w4, x4[:pb4]), pb4)).items()})
        hwsim_rows("W4 recurrent LIF 700-256r-20", w4_network, w4, x4, 100, peers4)
    return rows


# ------------------------------------------------------------------------------------------------- main


def main() -> int:
    """The W3 and W4 rows alone (``make bench`` prints them in benchmarks/run.py's one table)."""
    from run import main as run_main  # benchmarks/run.py, beside this script

    return run_main(["--only", "W3,W4", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
