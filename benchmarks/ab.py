"""hwsim at two or more git revisions, measured in one process, alternating. Not a test.

    python benchmarks/ab.py REV [REV ...] [--only W1,W1r,W2,W3,W3s,W4,W4s,E] [--repeats 7]

Each revision's ``hwsim`` package (``git archive REV hwsim``; ``work`` is the working tree) is imported under its
own name from a temporary folder, with its own Numba cache (so each compiles once, before the timed runs). The W1
and W2 networks of benchmarks/run.py (and, with ``--only``, W1r: W1 with a release byte of its own drawn for every
synapse instead of one for all; W3 and W4 of benchmarks/graphs.py, ``s`` for their stochastic variants; and E: a
700-256-256-20 network of LIF layers with escape noise and stochastic synapses, 3,000 samples of 100 steps at input
density 0.05) run on every version in turn, ``--repeats`` times, and the table gives min / median / max samples per
second of wall time; alternating spreads the machine's load over all versions alike. The versions' outputs are
checked to be identical.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))


def load(rev: str, folder: Path, k: int):  # noqa: ANN201
    """The hwsim package of ``rev`` as module ``hwsim_ab<k>``."""
    dest = folder / f"hwsim_ab{k}"
    if rev == "work":
        src = ROOT / "hwsim"
        dest.mkdir()
        for f in src.glob("*.py"):
            (dest / f.name).write_bytes(f.read_bytes())
    else:
        tar = subprocess.run(["git", "archive", rev, "hwsim"], cwd=ROOT, check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(tar)) as t:
            t.extractall(folder / f"rev{k}", filter="data")
        (folder / f"rev{k}" / "hwsim").rename(dest)
    spec = importlib.util.spec_from_file_location(dest.name, dest / "__init__.py",
                                                  submodule_search_locations=[str(dest)])  # fmt: skip
    mod = importlib.util.module_from_spec(spec)
    sys.modules[dest.name] = mod
    spec.loader.exec_module(mod)
    return importlib.import_module(f"{dest.name}.engine")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("revs", nargs="+", help="git revisions, or 'work' for the working tree")
    p.add_argument("--only", default="W1,W2")
    p.add_argument("--repeats", type=int, default=7)
    a = p.parse_args(argv)
    from graphs import w3_network, w3_weights, w4_network, w4_weights  # benchmarks/graphs.py
    from run import w1_network, w2_network  # benchmarks/run.py

    work = {}
    only = a.only.split(",")
    for name in ("W1", "W1r"):
        if name in only:  # the generators of benchmarks/run.py: the same networks
            rng = np.random.default_rng(1)
            work[name] = (w1_network(rng, per_synapse=name == "W1r"), rng.random((20000, 1, 784)) < 0.2,
                          {"steps": 5, "layers": ("fc4",), "record": ("counts",)})  # fmt: skip
    if "W2" in only:
        rng = np.random.default_rng(2)
        work["W2"] = (w2_network(rng), rng.random((3000, 100, 700)) < 0.05,
                      {"layers": ("out",), "record": ("counts",)})  # fmt: skip
    if "E" in only:
        from quantal.compile.testing import random_network

        rng = np.random.default_rng(5)
        net = random_network(rng, [700, 256, 256, 20], release="random", escape=True, readout=True,
                             weight_exp_range=(-3, 0))
        work["E"] = (net, rng.random((3000, 100, 700)) < 0.05,
                     {"layers": (net.layers[-1].name,), "record": ("counts",)})  # fmt: skip
    for name, build, seed, shape, p in (("W3", w3_network, 3, (64, 300, 2 * 34 * 34), 0.02),
                                        ("W4", w4_network, 4, (2000, 100, 700), 0.05)):  # benchmarks/graphs.py
        for stochastic in (False, True):
            if name + "s" * stochastic in only:
                rng = np.random.default_rng(seed)
                wts = (w3_weights if name == "W3" else w4_weights)(rng)
                net = build(wts, stochastic)
                work[name + "s" * stochastic] = (net, rng.random(shape) < p,
                                                 {"layers": (net.layers[-1].name,), "record": ("counts",)})
    with tempfile.TemporaryDirectory() as tmp:
        engines = [load(rev, Path(tmp), k) for k, rev in enumerate(a.revs)]
        print(f"{'workload':8}  {'revision':12}  samples/s min / median / max")
        for name, (net, x, kw) in work.items():
            sims = [e.Simulator(net) for e in engines]
            # compiles each version, then checks they agree
            outs = [s.run(x[:min(500, len(x) // 4)], **kw) for s in sims]
            for o in outs[1:]:
                assert all(np.array_equal(o[q], outs[0][q]) for q in o), "the versions' outputs differ"
            rates: list[list[float]] = [[] for _ in sims]
            for _ in range(a.repeats):
                for k, s in enumerate(sims):
                    t0 = time.perf_counter()
                    s.run(x, **kw)
                    rates[k].append(len(x) / (time.perf_counter() - t0))
            for rev, r in zip(a.revs, rates):
                print(f"{name:8}  {rev[:12]:12}  {min(r):,.0f} / {statistics.median(r):,.0f} / {max(r):,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
