"""Device and sweep benchmarks (docs/performance.md). Not a test.

    python benchmarks/devices.py [--quick] [--json OUT.json]

D1  Realising a PCM device (programming noise + drift to t = 1 day + global drift compensation) for a
    784-528-10 network (419,232 synapses, 838,464 devices). Goal <= 20 ms. Peer: the same model written the
    way simulators such as aihwkit write it, vectorised PyTorch on the whole weight tensor (torch.randn
    draws), measured in the same run. Numba's first-call compile time is reported separately.
S1  A drift sweep (2 devices x 4 times x trials) of a 64-128-10 stochastic network on the digits test split,
    on 1 and on 2 local worker processes (spawned by the sweep, so their start-up counts), and on a Dask
    LocalCluster with 1 and 2 workers (already running and warm, as a user's cluster is). Goal >= 1.8x.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from quantal.compile.ir import DenseSynapse, Network, Neuron, save
from quantal.hwsim import devices as D


def d1_network(rng: np.random.Generator) -> Network:
    w1 = rng.integers(-128, 128, (528, 784), dtype=np.int8)
    w2 = rng.integers(-128, 128, (10, 528), dtype=np.int8)
    return Network.chain("d1", 784, (
        ("fc1", 528, DenseSynapse(weight=w1), Neuron()),
        ("out", 10, DenseSynapse(weight=w2), Neuron(kind="readout"))))  # fmt: skip


def realize_quantal(net: Network, spec: D.DeviceSpec, trial: int) -> list[np.ndarray]:
    return [D.realize(spec.model, p.synapse.weight, spec.time, seed=0, trial=trial, layer=k)
            for k, p in enumerate(net.projections)]  # fmt: skip


def realize_torch(ws: list, t: float, gen: object) -> list:
    """The peer: PCM programming noise, drift and compensation on whole tensors with torch.randn."""
    import torch

    out = []
    for w in ws:
        g = torch.stack([w.clamp(min=0), (-w).clamp(min=0)]) / 128  # g_hat per polarity
        sig = 0.26348 + 1.9650 * g - 1.1731 * g**2
        gp = (g * 25 + sig * torch.randn(g.shape, generator=gen, dtype=g.dtype)).clamp(min=0)
        lg = torch.log(g.clamp(min=1e-12))
        mu = (-0.0155 * lg + 0.0244).clamp(0.049, 0.1)
        sd = (-0.0125 * lg - 0.0059).clamp(0.008, 0.045)
        nu = (mu + sd * torch.randn(g.shape, generator=gen, dtype=g.dtype)).abs()
        gt = gp * ((t + 20.0) / 20.0) ** (-nu)
        alpha = (gp[0] - gp[1]).abs().sum() / (gt[0] - gt[1]).abs().sum()
        out.append(128 * alpha * (gt[0] - gt[1]) / 25)
    return out


def best_time(fn, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def compile_time() -> float:
    """First call of the device kernel in a fresh process with an empty Numba cache."""
    code = ("import time, numpy as np; from quantal.hwsim import devices as D; m = np.ones((4, 4), np.int8);"
            "t0 = time.perf_counter(); D.realize(D.PCM(), m, 60.0, seed=0, trial=0, layer=0);"
            "print(time.perf_counter() - t0)")  # fmt: skip
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return float(r.stdout.strip())


def s1_files(tmp: Path, trials: int) -> Path:
    rng = np.random.default_rng(0)
    w1 = rng.integers(-128, 128, (128, 64), dtype=np.int8)
    w2 = rng.integers(-128, 128, (10, 128), dtype=np.int8)
    net = Network.chain("s1", 64, (
        ("h", 128, DenseSynapse(weight=w1, release=np.full((128, 64), 127, np.uint8)),
              Neuron(current_decay=2048, voltage_decay=1024, threshold=400)),
        ("out", 10, DenseSynapse(weight=w2), Neuron(kind="readout"))),
        metadata={"input": {"encoder": "rate", "steps": 8, "max_rate": 1.0, "run_steps": 10}})  # fmt: skip
    save(net, tmp / "s1.qnet")
    sw = {"name": "s1", "network": str(tmp / "s1.qnet"), "trials": trials,
          "grid": {"device": ["pcm", "rram"], "time": [1, 3600, 86400, 31536000]}}  # fmt: skip
    (tmp / "s1.yaml").write_text(yaml.safe_dump(sw))
    return tmp / "s1.yaml"


def _warm() -> None:
    import numpy as np

    from quantal.compile.testing import random_network
    from quantal.hwsim import simulate

    net = random_network(np.random.default_rng(0), [4, 3], release=0.5)
    simulate(net, np.zeros((1, 2, 4), np.uint8), steps=2)


def sweep_time(path: Path, out: Path, workers: int | None = None, dask_workers: int | None = None) -> float:
    from quantal import sweep

    t0 = time.perf_counter()
    if dask_workers is None:
        sweep.run(path, out, workers=workers, progress=False, log=lambda *_: None)
    else:
        from dask.distributed import Client, LocalCluster

        with LocalCluster(n_workers=dask_workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster:  # fmt: skip
            # A user's cluster is already running and warm: start-up and each worker's first import of quantal
            # (and load of the cached kernels) are excluded.
            with Client(cluster.scheduler_address) as client:
                client.run(_warm)
            t0 = time.perf_counter()
            sweep.run(path, out, scheduler=cluster.scheduler_address, progress=False, log=lambda *_: None)
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    import torch

    rows = []
    net = d1_network(np.random.default_rng(0))
    spec = D.from_config("pcm", time=86400.0)
    realize_quantal(net, spec, 0)  # compile / load the cached kernel
    reps = 5 if args.quick else 20
    tq = best_time(lambda: realize_quantal(net, spec, 1), reps)
    ws = [torch.from_numpy(p.synapse.weight.astype(np.float64)) for p in net.projections]
    gen = torch.Generator().manual_seed(0)
    tt = best_time(lambda: realize_torch(ws, 86400.0, gen), reps)
    n_syn = sum(p.synapse.weight.size for p in net.projections)
    rows.append({"benchmark": f"D1 realise PCM, {n_syn:,} synapses", "quantal": f"{tq * 1e3:.1f} ms",
                 "peer": f"{tt * 1e3:.1f} ms (PyTorch)", "ratio": f"{tt / tq:.1f}x", "goal": "<= 20 ms",
                 "met": tq <= 0.020})  # fmt: skip
    ct = compile_time()
    trials = 8 if args.quick else 48
    with tempfile.TemporaryDirectory() as tmp:
        tmp_p = Path(tmp)
        sw = s1_files(tmp_p, trials)
        t1 = sweep_time(sw, tmp_p / "l1", workers=1)
        t2 = sweep_time(sw, tmp_p / "l2", workers=2)
        d1 = sweep_time(sw, tmp_p / "d1", dask_workers=1)
        d2 = sweep_time(sw, tmp_p / "d2", dask_workers=2)
    n_tasks = 2 * 4 * trials  # (grid point, trial) runs
    rows.append({"benchmark": f"S1 sweep, {n_tasks} runs, local processes", "quantal": f"{t2:.2f} s (2 workers)",
                 "peer": f"{t1:.2f} s (1 worker)", "ratio": f"{t1 / t2:.2f}x", "goal": ">= 1.8x",
                 "met": t1 / t2 >= 1.8})  # fmt: skip
    rows.append({"benchmark": f"S1 sweep, {n_tasks} runs, Dask LocalCluster", "quantal": f"{d2:.2f} s (2 workers)",
                 "peer": f"{d1:.2f} s (1 worker)", "ratio": f"{d1 / d2:.2f}x", "goal": ">= 1.8x",
                 "met": d1 / d2 >= 1.8})  # fmt: skip
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"device kernel first-call compile: {ct:.1f} s (excluded above)")  # fmt: skip
    cols = ["benchmark", "quantal", "peer", "ratio", "goal", "met"]
    widths = [max(len(str(r[c])) for r in rows + [dict(zip(cols, cols))]) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(str(r[c]).ljust(w) for c, w in zip(cols, widths)))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "compile_seconds": ct}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
