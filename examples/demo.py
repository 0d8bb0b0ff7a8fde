"""The quantal demo (``make demo``): the whole pipeline on the bundled 8x8 digits, in a few minutes on 2 cores.

1. ``quantal train``: LIF neurons with blank-out synapses and escape noise (examples/demo.yaml), float
   training, then fake-quant training in the IR's exact integer arithmetic and random streams;
2. ``quantal compile``: the trained model to ``demo.qnet`` (int8 weights, 8-bit release probabilities,
   12-bit decays) with a quantisation report in its metadata;
3. ``quantal eval``: accuracy in hwsim, clean (the mean-field network: every stochastic synapse at its
   expected weight) and stochastic (synapses sampled, over trials, with a 95% confidence interval);
4. ``quantal inspect --data``: neurons, synapses, memory, cores, synaptic operations and energy per inference;
5. ``quantal run``: one test digit through the network (its spikes and readout v in ``digit.npz``);
6. ``quantal verify --target lava``: the network in Intel Lava (its own Python 3.10 venv) against hwsim;
7. ``quantal export --target nir`` and ``quantal import``: the network as a NIR graph and back; ``quantal
   export --target netx``, which refuses the stochastic demo network with its reason (NetX holds
   deterministic CUBA layers only);
8. hardware-aware training of the same network on phase-change memory (examples/demo_hwa.yaml), and
   ``quantal sweep`` of plain vs hardware-aware on the ideal and PCM devices from 1 s to 1 year after
   programming (examples/demo_sweep.yaml);
9. ``quantal report``: everything on one HTML page, with the spike raster of a test digit per network.

Everything lands in ``runs/demo/`` (checkpoints, .qnet files, summary.json, PNG plots, sweep/, report.html).
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from quantal import plots
from quantal.compile import ir
from quantal.compile.ir import atomic_write
from quantal.train.data import encode, load

HERE = Path(__file__).resolve().parent


def sh(*args: str, capture: bool = False) -> str:
    print(f"\n$ {' '.join(shlex.quote(a) for a in args)}", flush=True)
    r = subprocess.run(args, check=True, text=True, stdout=subprocess.PIPE if capture else None)
    return r.stdout if capture else ""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--config", default=str(HERE / "demo.yaml"))
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--hwa-config", default=str(HERE / "demo_hwa.yaml"))
    p.add_argument("--sweep", default=str(HERE / "demo_sweep.yaml"))
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    quantal = str(Path(sys.executable).with_name("quantal"))
    t0 = time.perf_counter()

    run_dir, netp = out / "train", out / "demo.qnet"
    sh(quantal, "train", args.config, "--out", str(run_dir))
    sh(quantal, "compile", str(run_dir), "-o", str(netp), "--name", "demo")
    clean = json.loads(sh(quantal, "eval", str(netp), "--data", "digits", "--deterministic", "--json", capture=True))
    print(f"clean (mean-field) accuracy {clean['accuracy']:.2%}")
    stoch = json.loads(sh(quantal, "eval", str(netp), "--data", "digits", "--trials", str(args.trials), "--json",
                          capture=True))  # fmt: skip
    lo, hi = stoch["ci95"]
    print(f"stochastic accuracy {stoch['accuracy']:.2%}, 95% CI [{lo:.2%}, {hi:.2%}] over {stoch['trials']} trials")
    sh(quantal, "inspect", str(netp), "--data", "digits")
    inspect = json.loads(sh(quantal, "inspect", str(netp), "--data", "digits", "--json", capture=True))

    # one test digit through `quantal run`
    net = ir.load(netp)
    spec = net.metadata["input"]
    test = load("digits", "test")
    x = encode(test.x[:1], spec["encoder"], spec["steps"], max_rate=spec["max_rate"], seed=0)
    np.save(out / "digit.npy", x)
    sh(quantal, "run", str(netp), "--input", str(out / "digit.npy"), "--out", str(out / "digit.npz"),
       "--steps", str(spec["run_steps"]), "--record", "spikes,v")  # fmt: skip
    with np.load(out / "digit.npz") as res:
        print(f"digit.npz: {', '.join(sorted(res.files))}")

    # the demo network in Lava (its own Python 3.10 venv): bit for bit against hwsim
    xv = encode(test.x[:20], spec["encoder"], spec["steps"], max_rate=spec["max_rate"], seed=0)
    np.save(out / "verify_input.npy", xv)
    cmd = [quantal, "verify", str(netp), "--target", "lava", "--input", str(out / "verify_input.npy"),
           "--steps", str(spec["run_steps"]), "--seed", "0"]  # fmt: skip
    print(f"\n$ {' '.join(shlex.quote(a) for a in cmd)}", flush=True)
    rv = subprocess.run(cmd, text=True, capture_output=True)
    lava_result = (rv.stdout or rv.stderr).strip()
    print(lava_result if rv.returncode != 2 else f"Lava verification skipped: {lava_result}")

    # NIR export, and the exact round trip back to the IR
    sh(quantal, "export", str(netp), "--target", "nir", "-o", str(out / "demo.nir"))
    sh(quantal, "import", str(out / "demo.nir"), "-o", str(out / "demo_from_nir.qnet"))
    nir_ok = ir.load(out / "demo_from_nir.qnet").layers == net.layers
    print(f"NIR round trip exact: {nir_ok}")
    # NetX HDF5 holds deterministic CUBA layers only: the demo network's stochastic synapses are refused
    cmd = [quantal, "export", str(netp), "--target", "netx", "-o", str(out / "demo.h5")]
    print(f"\n$ {' '.join(shlex.quote(a) for a in cmd)}", flush=True)
    rn = subprocess.run(cmd, text=True, capture_output=True)
    netx_result = (rn.stdout or rn.stderr).strip().removeprefix("quantal: error: ")
    if rn.returncode:
        netx_result = f"refused: {netx_result}"
    print(netx_result)

    # hardware-aware training and the drift sweep
    hwa_dir, hwa_net = out / "train_hwa", out / "hwa.qnet"
    sh(quantal, "train", args.hwa_config, "--out", str(hwa_dir))
    sh(quantal, "compile", str(hwa_dir), "-o", str(hwa_net), "--name", "demo-hwa")
    sh(quantal, "sweep", args.sweep, "--out", str(out / "sweep"), "--workers", "2")
    drift_trials = yaml.safe_load(Path(args.sweep).read_text())["trials"]
    with open(out / "sweep" / "summary.csv") as f:
        drift = [{k: (float(v) if k in ("time", "accuracy", "ci_lo", "ci_hi") else v) for k, v in r.items()}
                 for r in csv.DictReader(f)]  # fmt: skip

    # plots
    rows = json.loads((run_dir / "metrics.json").read_text())
    acc = net.metadata["quantization"]["accuracy"]
    figs = [
        plots.training_curve(rows, out / "training_curve.png"),
        plots.accuracy_bars([
            ("float\n(PyTorch)", acc["float"], None),
            ("fake-quant\n(PyTorch, exact IR)", acc["fake_quant"], None),
            ("hwsim\n(1 run, same seed)", acc["hwsim"], None),
            ("hwsim clean\n(mean-field)", clean["accuracy"], tuple(clean["ci95"])),
            (f"hwsim stochastic\n({stoch['trials']} trials)", stoch["accuracy"], tuple(stoch["ci95"])),
        ], out / "accuracy.png"),  # fmt: skip
    ]  # fmt: skip

    summary = {
        "network": str(netp), "checkpoint": str(run_dir / ("qat.pt" if (run_dir / "qat.pt").exists() else "last.pt")),
        "training": rows[-1], "accuracy": {**acc, "hwsim_clean_mean_field": clean, "hwsim_stochastic": stoch},
        "fake_quant_equals_hwsim": net.metadata["quantization"]["fake_quant_equals_hwsim"],
        "quantization": net.metadata["quantization"]["layers"], "totals": inspect["totals"],
        "activity": inspect["activity"], "figures": [str(f) for f in figs],
        "drift": [{k: r[k] for k in ("network", "device", "time", "accuracy", "ci_lo", "ci_hi")} for r in drift],
        "lava_verification": {"exit_status": rv.returncode, "result": lava_result},
        "nir": {"file": str(out / "demo.nir"), "round_trip_exact": nir_ok},
        "netx": {"exit_status": rn.returncode, "result": netx_result},
    }  # fmt: skip
    # your own model: a stochastic spiking CNN of quantal.nn layers, from_torch, fixed point, PCM chips, Lava
    print("\n== your own model (examples/own_model.py): a stochastic spiking CNN")
    from own_model import run as own_model

    summary["own_model_cnn"] = own_model(out_dir=out / "own_model", log=lambda m: print(f"  {m}"))
    summary["seconds"] = time.perf_counter() - t0
    atomic_write(out / "summary.json", lambda f: f.write(json.dumps(summary, indent=2).encode()))
    sh(quantal, "report", str(out))

    print("\nsummary")
    print(f"  float {acc['float']:.1%} -> fake-quant {acc['fake_quant']:.1%} -> hwsim {acc['hwsim']:.1%} "
          f"(fake-quant and hwsim identical: {summary['fake_quant_equals_hwsim']})")  # fmt: skip
    print(f"  hwsim clean (mean-field) {clean['accuracy']:.1%}; stochastic {stoch['accuracy']:.1%} "
          f"[{lo:.1%}, {hi:.1%}] over {stoch['trials']} trials")  # fmt: skip
    print(f"  Lava (20 test digits, spikes, u and v): {lava_result}")
    print(f"  NIR: {out / 'demo.nir'} (round trip back to the IR exact: {nir_ok})")
    print(f"  NetX HDF5: {netx_result}")
    a = inspect["activity"]
    print(f"  {a['per_inference']['synops']:,.0f} synaptic ops and ~{a['energy_nj_per_inference']:,.0f} nJ per "
          f"inference (Loihi figures), {inspect['totals']['cores']} cores")  # fmt: skip
    year = {(r["network"], r["device"]): r for r in drift if r["time"] == max(d["time"] for d in drift)}
    print(f"  1 year after programming (mean, 95% CI over {drift_trials} chips):")
    for (netname, dev), r in sorted(year.items()):
        print(f"    {netname:15s} {dev:18s} {r['accuracy']:.1%} [{r['ci_lo']:.1%}, {r['ci_hi']:.1%}]")
    cnn = summary["own_model_cnn"]
    print(f"  your own CNN (quantal.nn, from_torch): float {cnn['float_accuracy']:.1%}, "
          f"hwsim {cnn['hwsim_accuracy']:.1%} (fake-quant identical: {cnn['fake_quant_equals_hwsim']}), "
          f"PCM 1 day {cnn['pcm_1day_mean']:.1%} +- {cnn['pcm_1day_sd']:.1%} over 20 chips, Lava {cnn['lava']}")
    print(f"\nwritten to {out}/:")
    for f in [run_dir / "metrics.csv", Path(summary["checkpoint"]), netp, hwa_net, out / "demo.nir",
              out / "summary.json", *figs,
              out / "sweep" / "results.csv", out / "sweep" / "sweep_time.png", out / "report.html",
              Path(summary["own_model_cnn"]["network"])]:
        print(f"  {f}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
