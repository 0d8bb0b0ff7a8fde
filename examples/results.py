"""Every number in quantal's docs, by the command that regenerates it.

    python examples/results.py                 # list the results, what each number is and where the docs show it
    python examples/results.py NAME [NAME ...] # run them: each prints the numbers the docs show
    python examples/results.py all             # run every one (several hours on 2 cores; `make results`)

Each result runs one command (an example script, a training configuration, a benchmark or the demo) in a fresh
output folder under ``runs/results/NAME`` and prints its output, headed by what its numbers are: a single run of
a seed, an ensemble of K passes, or a mean ± sd over seeds. Numbers that go through training depend on the
floating-point summation order of the machine's kernels, so another CPU reproduces them to within the spread
the docs give, not digit for digit; the tests that guard these results assert them with tolerances from that
spread.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "runs" / "results"


@dataclass(frozen=True)
class Result:
    """One result: ``argv`` (``{out}`` is its fresh output folder), the pages that show its numbers, what they are,
    and about how long it takes on 2 cores."""

    argv: tuple[str, ...]
    pages: str
    what: str
    minutes: float


PY = "{python}"


def _train(kind: str, what: str, minutes: float) -> Result:
    """``quantal train examples/train_<kind>.yaml``: the model table of docs/train.md."""
    return Result((PY, "-m", "quantal", "train", f"examples/train_{kind}.yaml", "--out", "{out}"),
                  "docs/train.md (models)", f"single run of seed 0: {what}", minutes)


RESULTS: dict[str, Result] = {
    "demo": Result(("make", "demo"), "docs/compile.md §8, docs/devices.md (hardware-aware table), README.md",
                   "single run of seed 0: accuracies on the digits test split; 20 trials or chips with 95% intervals",
                   4),
    **{f"train-{kind}": _train(kind, what, minutes) for kind, what, minutes in (
        ("mlp", "final test accuracy", 0.5),
        ("s2m", "final test accuracy (one stochastic pass)", 1),
        ("lif", "final test accuracy", 2),
        ("rbse", "final test accuracy of the logistic readout", 1))},
    "surrogate": Result((PY, "examples/surrogate_gradients.py", "--out", "{out}"),
                        "docs/train.md (surrogate gradients), docs/science.md",
                        "deterministic: sweeps and closed-loop integrals of the paper's minimal network", 1),
    "fig7": Result((PY, "examples/stochastic_vs_deterministic.py", "--out", "{out}"),
                   "docs/train.md (stochastic vs deterministic), docs/science.md",
                   "mean ± sd over seeds 0-2; stochastic evaluations average 10 runs", 5),
    "estimators": Result((PY, "examples/binary_estimators.py", "--out", "{out}"),
                         "docs/train.md (models: binary), docs/science.md",
                         "mean ± sd over seeds 0-2: one stochastic pass and ensembles of 10; exact enumeration", 8),
    "s2m": Result((PY, "examples/s2m_fashion.py", "--out", "{out}"), "docs/train.md (S2M), docs/science.md",
                  "mean ± sd over seeds 0-2; a stochastic network's error is the mean of 10 passes", 45),
    "rbse": Result((PY, "examples/rbse_digits.py", "--out", "{out}"), "docs/train.md (RBSE), docs/science.md",
                   "mean ± sd over seeds 0-2; few-shot accuracies average 20 draws of the labelled set", 2),
    "fashion-cnn": Result((PY, "examples/fashion.py", "cnn", "--out", "{out}"), "docs/train.md (Fashion-MNIST)",
                          "single run of seed 0; the chips column is the mean ± sd over 20 simulated PCM chips", 55),
    "fashion-rows": Result((PY, "examples/fashion.py", "rows", "--recurrent", "--out", "{out}"),
                           "docs/train.md (Fashion-MNIST)", "single run of seed 0, as fashion-cnn", 15),
    "fashion-rows-flat": Result((PY, "examples/fashion.py", "rows", "--no-recurrent", "--out", "{out}"),
                                "docs/train.md (Fashion-MNIST)", "single run of seed 0, as fashion-cnn", 15),
    "own-model": Result((PY, "examples/own_model.py", "--out", "{out}"), "docs/guide.md",
                        "single run of seed 0; PCM chips: mean ± sd over 20 chips", 1),
    "nir-peers": Result(("make", "nir-peers"), "docs/targets.md (agreement table)",
                        "exact agreement counts of spikes between quantal and each peer tool", 5),
    "bench": Result((PY, "benchmarks/run.py"), "docs/performance.md (results)",
                    "min / median / max of 5 repeats per row, measured in one run on a shared machine", 15),
    "bench-breakdown": Result((PY, "benchmarks/breakdown.py"), "docs/performance.md (where the time goes)",
                              "one run of each piece on one thread", 1),
    "bench-fakequant": Result((PY, "benchmarks/fakequant.py"), "docs/performance.md (fake-quant training)",
                              "min / median / max of 5 epochs per row, one run", 10),
    "bench-devices": Result((PY, "benchmarks/devices.py"), "docs/performance.md, docs/devices.md (workers)",
                            "one run: wall time of device sweeps on 1 and 2 workers", 5),
    "bench-train": Result((PY, "benchmarks/train_throughput.py"), "docs/performance.md (training throughput)",
                          "one run: training samples per second of each model kind", 2),
}


def listing() -> str:
    w = max(map(len, RESULTS))
    lines = [f"{'name'.ljust(w)}  minutes  what (shown in)"]
    for name, r in RESULTS.items():
        lines.append(f"{name.ljust(w)}  {r.minutes:7.1f}  {r.what} ({r.pages})")
    return "\n".join(lines)


def command(name: str) -> list[str]:
    r = RESULTS[name]
    out = OUT / name
    return [sys.executable if a == PY else a.format(out=out) for a in r.argv]


def run(name: str) -> int:
    r = RESULTS[name]
    out = OUT / name
    if out.exists():
        shutil.rmtree(out)  # this result's own folder: every run starts fresh
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = command(name)
    print(f"== {name}: {' '.join(Path(a).name if a == sys.executable else a for a in argv)}", flush=True)
    print(f"== what: {r.what}; shown in {r.pages}", flush=True)
    t0 = time.perf_counter()
    rc = subprocess.call(argv, cwd=ROOT)
    print(f"== {name}: exit {rc} after {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
    return rc


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args in (["-h"], ["--help"], ["--list"]):
        print(__doc__.split("\n")[0] + "\n\n" + listing())
        return 0
    names = list(RESULTS) if args == ["all"] else args
    unknown = [n for n in names if n not in RESULTS]
    if unknown:
        print(f"results: unknown result {unknown[0]!r} (known: all, {', '.join(RESULTS)})", file=sys.stderr)
        return 2
    failed = [n for n in names if run(n) != 0]
    if failed:
        print(f"results: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
