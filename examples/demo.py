"""The quantal demo (``make demo``).

Today it shows the simulator half of the pipeline on an example network: it writes a small stochastic
network (``examples/example_network.py``) and rate-coded input spikes to ``runs/demo/``, then runs the two
commands a user would run — ``quantal inspect`` and ``quantal run`` — and summarises what came out.
Training, compilation from PyTorch and export join the demo as those parts land (see the README).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from example_network import example_input, example_network  # noqa: E402

from quantal.compile import ir  # noqa: E402


def sh(*args: str) -> None:
    print(f"\n$ {' '.join(shlex.quote(a) for a in args)}", flush=True)
    subprocess.run(args, check=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--trials", type=int, default=16)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    quantal = str(Path(sys.executable).with_name("quantal"))

    net = example_network()
    netp = ir.save(net, out / "example.qnet")
    x = example_input(n_samples=200)
    np.save(out / "spikes.npy", x)
    print(f"wrote {netp} and {out / 'spikes.npy'} (input {x.shape}, density {x.mean():.2f})")

    sh(quantal, "inspect", str(netp))
    t0 = time.perf_counter()
    sh(quantal, "run", str(netp), "--input", str(out / "spikes.npy"), "--out", str(out / "run.npz"),
       "--steps", "30", "--trials", str(args.trials), "--seed", "1", "--record", "spikes,counts")  # fmt: skip
    elapsed = time.perf_counter() - t0

    res = np.load(out / "run.npz")
    print("\nsummary")
    for layer in net.layers:
        if layer.neuron.kind == "readout":
            continue
        s = res[f"{layer.name}.spikes"]
        print(f"  {layer.name:8s} mean firing {s.mean():.3f} spikes/neuron/step over {s.shape[0]} trials")
    counts = res["out.counts"].astype(np.float64)  # (trials, samples, classes): final readout potentials
    pred = counts.argmax(-1)  # (trials, samples)
    labels = np.arange(x.shape[0]) % 10
    acc = (pred == labels).mean(axis=1)
    agree = (pred == pred[0]).mean()
    print(f"  readout  argmax matches the input's class on {acc.mean():.1%} of samples "
          f"(trial-to-trial sd {acc.std():.1%}: the stochastic synapses at work)")  # fmt: skip
    print(f"  readout  predictions agree with trial 0 on {agree:.1%} of (trial, sample) pairs")
    print(f"\nrun took {elapsed:.1f} s including start-up; everything is in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
