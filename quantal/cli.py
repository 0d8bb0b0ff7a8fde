"""The ``quantal`` command line.

Every problem with a file or an argument exits with status 2 and one line on stderr naming it (no
traceback); outputs are written atomically, so a failed command leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

EXIT_USAGE = 2
EXIT_INTERNAL = 3  # an unexpected exception: a bug in quantal, not bad input


class UsageError(Exception):
    """A user-facing problem: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line instead of usage + message
        sub = self.prog.removeprefix("quantal").strip()  # "run" for `quantal run`, "" for the top level
        raise UsageError(f"{sub}: {message}" if sub else message)


def _dataset_arg(text: str) -> str:
    """A dataset name or a .npz dataset file (its contents are checked when it is loaded)."""
    if text in ("digits", "fashion-mnist") or text.endswith(".npz"):
        return text
    raise argparse.ArgumentTypeError(f"unknown dataset {text!r} (digits, fashion-mnist, or FILE.npz)")


def _load_net(path: str) -> Any:
    from quantal.compile.ir import load

    return load(path)


MAX_INPUT_BYTES = 2**32  # the largest input array quantal run reads (4 GiB), checked from the header first


def _load_spikes(path: str) -> np.ndarray:
    """A spike array from a ``.npy`` file: the header (shape, dtype) is read and checked before anything is
    allocated; a malformed file of any kind is one :class:`UsageError`."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{path}: no such file")
    from quantal.compile.ir import describe_exception, read_npy_header

    try:
        with open(p, "rb") as f:
            shape, dtype, nbytes = read_npy_header(f)
    except Exception as e:  # noqa: BLE001 - numpy's header parser fails in many ways on hostile bytes
        raise UsageError(f"{path}: not a readable .npy array ({describe_exception(e, 'bad header')})") from None
    if dtype.hasobject or dtype.kind not in "biuf":
        raise UsageError(f"{path}: spikes must be a bool or numeric array, not dtype {dtype}")
    if nbytes > MAX_INPUT_BYTES:
        raise UsageError(f"{path}: the array {list(shape)} of {dtype} would take {nbytes / 2**30:.1f} GiB (the limit "
                         f"is {MAX_INPUT_BYTES / 2**30:.0f} GiB)")  # fmt: skip
    try:
        arr = np.load(p, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - a truncated or corrupt body
        raise UsageError(f"{path}: not a readable .npy array ({describe_exception(e)})") from None
    if not isinstance(arr, np.ndarray):
        raise UsageError(f"{path}: expected a single .npy array, not an archive")
    if arr.ndim < 3:
        raise UsageError(f"{path}: spikes must be (samples, T, input size or *input shape), got shape "
                         f"{list(arr.shape)}")  # fmt: skip
    return arr


def cmd_run(args: argparse.Namespace) -> int:
    from quantal.compile.ir import atomic_write
    from quantal.compile.runspec import RunSpec, parse_list

    device = _device(args)
    net = _load_net(args.net)
    spikes = _load_spikes(args.input)
    steps = args.steps
    stored = (net.metadata.get("input") or {}).get("run_steps") if isinstance(net.metadata, dict) else None
    if steps is None and isinstance(stored, int) and not isinstance(stored, bool) and stored > spikes.shape[1]:
        # the network's stored run length: its input steps plus the steps the last input needs to reach the
        # readout; stopping at T_in would cut them off
        steps = stored
        if not args.quiet:
            print(f"steps: {steps} (the network's stored run_steps, longer than the input's {spikes.shape[1]}; "
                  "--steps overrides)", file=sys.stderr)  # fmt: skip
    spec = RunSpec(
        steps=steps,
        seed=args.seed,
        trials=args.trials,
        record=parse_list(args.record) or (),
        layers=parse_list(args.layers),
    )
    from quantal.hwsim import Simulator

    out = Simulator(net, device).run(spikes, spec, progress=sys.stderr.isatty() and not args.quiet)
    atomic_write(args.out, lambda f: np.savez(f, **out))
    if args.json:
        print(json.dumps({"out": str(args.out), "samples": int(spikes.shape[0]), "steps": steps or int(spikes.shape[1]),
                          "seed": args.seed, "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)}
                                                        for k, v in out.items()}}))  # fmt: skip
    elif not args.quiet:
        parts = [f"{k} {v.shape}" for k, v in out.items()]
        print(f"wrote {args.out}: " + ", ".join(parts))
    return 0


def _device(args: argparse.Namespace) -> Any:
    """The device of ``--device FILE.yaml|PRESET`` at ``--time`` seconds (None without --device)."""
    from quantal.hwsim import devices

    if args.device is None:
        if args.time is not None:
            raise UsageError("--time needs --device")
        return None
    if Path(args.device).is_file():
        return devices.load(args.device, time=args.time)
    if args.device in devices.PRESETS:
        return devices.from_config({"preset": args.device}, time=args.time)
    raise UsageError(f"--device: {args.device}: no such file (or preset: {', '.join(devices.PRESETS)})")


def cmd_inspect(args: argparse.Namespace) -> int:
    from quantal.inspect import format_report, report

    net = _load_net(args.net)
    act = None
    if args.data is not None:
        from quantal import cost, pipeline

        spikes, _, spec = pipeline.encoded_dataset(net, args.data, seed=args.seed, limit=args.limit,
                                                   encoder=args.encoder, steps=args.steps)  # fmt: skip
        act = cost.activity(net, spikes, int(spec["run_steps"]), seed=args.seed)
        act["dataset"] = args.data
    rep = report(net, act)
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        print(format_report(rep))
    for w in rep["warnings"] if args.json else []:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from quantal.train.config import load
    from quantal.train.trainer import train

    cfg = load(args.config)
    rows = train(cfg, args.out, progress=sys.stderr.isatty())
    if getattr(args, "json", False):
        print(json.dumps({"run": str(args.out), "epochs": len(rows), "final": rows[-1] if rows else None}))
    elif rows:
        print(f"done: {len(rows)} epochs, test accuracy {rows[-1]['test_acc']:.1%}; run in {args.out}")
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from quantal.pipeline import compile_run

    as_json = getattr(args, "json", False)
    net, rep = compile_run(args.run, args.out, calibration=args.calibration, limit=args.limit, seed=args.seed,
                           name=args.name, log=(lambda *a: None) if args.quiet or as_json else print)  # fmt: skip
    if as_json:
        print(json.dumps({"network": str(args.out), "layers": [la.name for la in net.layers], **rep}, default=str))
    elif not args.quiet:
        acc = rep["accuracy"]
        print(f"wrote {args.out}: {len(net.layers)} layers, "
              + ", ".join(f"{la.name} {la.size}" for la in net.layers))  # fmt: skip
        for r in rep["layers"]:
            print(f"  {r['name']:8s} scale {r['scale']:.4g} (limited by {r['scale_limited_by']}), weight_exp "
                  f"{r['weight_exp']}, {r['weight_bits_used']} bits used, {r['saturated_weights']}/{r['weights']} "
                  f"weights saturated")  # fmt: skip
        print("  accuracy on the test split: " + ", ".join(f"{k.replace('_', '-')} {v:.1%}" for k, v in acc.items())
              + ("  (fake-quant and hwsim outputs identical)" if rep["fake_quant_equals_hwsim"]
                 else "  (WARNING: fake-quant and hwsim outputs differ)"))  # fmt: skip
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from quantal.compile.transform import mean_field
    from quantal.pipeline import evaluate

    net = _load_net(args.net)
    note = ""
    if args.deterministic:
        net, clipped = mean_field(net)
        note = f" (mean-field: stochastic synapses at their expected weight, {clipped} clipped)"
    device = _device(args)
    if device is not None:
        from quantal.plots import human_time

        note += f" on device {args.device} at t = {human_time(device.time)} after programming"
    res = evaluate(net, args.data, split=args.split, trials=args.trials, seed=args.seed, limit=args.limit,
                   encoder=args.encoder, steps=args.steps, progress=sys.stderr.isatty(), device=device)  # fmt: skip
    res["deterministic"] = bool(args.deterministic)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    lo, hi = res["ci95"]
    print(f"{res['network']} on {res['dataset']} {res['split']} ({res['samples']} samples, {res['encoder']} code, "
          f"{res['steps']} steps){note}")  # fmt: skip
    print(f"accuracy {res['accuracy']:.2%}  95% CI [{lo:.2%}, {hi:.2%}]  ({res['ci_method']}, seed {res['seed']})")
    if res["trials"] > 1:
        accs = res["per_trial"]
        print(f"per trial: min {min(accs):.2%}, max {max(accs):.2%}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from quantal import sweep

    out = args.out
    if out is None:
        out = str(Path("runs") / sweep.load(args.sweep)["name"])
    as_json = getattr(args, "json", False)
    res = sweep.run(args.sweep, out, workers=args.workers, scheduler=args.scheduler,
                    progress=sys.stderr.isatty(), log=(lambda *a: None) if as_json else print)  # fmt: skip
    if as_json:
        print(json.dumps(res, default=str))
        return 0
    print(f"{res['ran']} tasks run, {res['skipped']} already done, {res['seconds']:.1f} s; results in "
          f"{res['results']}, summary in {res['summary']}")  # fmt: skip
    for f in res["figures"]:
        print(f"  {f}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from quantal.targets.lava.driver import LavaRunError, LavaUnavailable
    from quantal.targets.verify import verify_lava, verify_netx

    net = _load_net(args.net)
    spikes = _load_spikes(args.input)
    from quantal.compile.runspec import check_input

    x = check_input(spikes, net)
    try:
        if args.target == "netx":
            div, hw = verify_netx(net, x, steps=args.steps)
        else:
            div, hw = verify_lava(net, x, steps=args.steps, seed=args.seed, trial=args.trial)
    except LavaUnavailable as e:
        raise UsageError(str(e)) from None
    except LavaRunError as e:
        raise UsageError(str(e).splitlines()[-1]) from None
    steps = next(iter(hw.values())).shape[1]
    if getattr(args, "json", False):
        print(json.dumps({"target": args.target, "identical": div is None, "layers": len(net.layers),
                          "samples": int(x.shape[0]), "steps": int(steps), "seed": args.seed, "trial": args.trial,
                          "first_divergence": div}))  # fmt: skip
        return 0 if div is None else 1
    if div is None:
        what = "Lava via lava-dl's NetX reader" if args.target == "netx" else "Lava"
        print(f"identical: {what} and hwsim agree on spikes, u and v of {len(net.layers)} layers, {x.shape[0]} "
              f"samples x {steps} steps (seed {args.seed}, trial {args.trial})")  # fmt: skip
        return 0
    if "message" in div:
        print(f"differ: {div['message']}")
    else:
        print(f"differ: first divergence at layer '{div['layer']}' neuron {div['neuron']} step {div['step']} "
              f"(sample {div['sample']}): {div['quantity']} = {div['target']} in Lava, "
              f"{div['hwsim']} in hwsim")  # fmt: skip
    return 1


def cmd_export(args: argparse.Namespace) -> int:
    import warnings

    from quantal.targets import nir as qnir

    net = _load_net(args.net)
    if args.target == "netx":
        from quantal.targets import netx

        path = netx.export(net, args.out, steps=args.steps)
        if args.json:
            print(json.dumps({"target": "netx", "out": str(path), "layers": [la.name for la in net.layers]}))
        else:
            print(f"wrote {path} (NetX HDF5, {len(net.layers)} CUBA layers)")
        return 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = qnir.export(net, args.out, dt=args.dt)
    if args.json:
        print(json.dumps({"target": "nir", "out": str(path), "dt": args.dt, "layers": [la.name for la in net.layers],
                          "warnings": [str(w.message) for w in caught]}))  # fmt: skip
        return 0
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    print(f"wrote {path} (NIR, dt = {args.dt:g} s)")
    return 0


def _is_netx(path: str) -> bool:
    """Whether ``path`` is an HDF5 file laid out as NetX (a /layer group) rather than NIR (a /node group)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "layer" in f and "node" not in f
    except OSError:
        return False


def cmd_import(args: argparse.Namespace) -> int:
    from quantal.compile.ir import save
    from quantal.targets import nir as qnir

    if Path(args.model).is_file() and _is_netx(args.model):  # NetX: integer semantics, an exact import
        from quantal.targets import netx

        if args.data is not None:
            raise UsageError("--data calibrates NIR imports; a NetX file imports exactly, without calibration")
        net = netx.read_network(args.model, name=args.name or Path(args.model).stem)
        save(net, args.out)
        steps = (net.metadata.get("input") or {}).get("run_steps")
        if args.json:
            print(json.dumps({"format": "netx", "out": str(args.out), "exact": True, "run_steps": steps,
                              "layers": [la.name for la in net.layers]}))  # fmt: skip
            return 0
        print(f"wrote {args.out}: {len(net.layers)} layers ({', '.join(la.name for la in net.layers)}), exactly "
              f"(NetX integers){f'; tSample {steps} steps' if steps else ''}")  # fmt: skip
        return 0
    calib = None
    if args.data is not None:
        from quantal.train import data

        if args.encoder is None or args.steps is None:
            raise UsageError("--data needs --encoder and --steps (how the network's input was encoded)")
        ds = data.load(args.data, "train")
        calib = data.encode(ds.x[: args.calibration], args.encoder, args.steps, seed=0)
    net, rows = qnir.import_file(args.model, calib=calib, dt=args.dt, name=args.name or Path(args.model).stem,
                                 reset=args.reset)  # fmt: skip
    if args.data is not None:
        # the output lags the input by the graph's depth (docs/targets.md): run that many steps more
        lag = int((net.metadata.get("nir") or {}).get("delay_steps", len(net.layers)))
        meta = {**net.metadata, "input": {"dataset": args.data, "encoder": args.encoder, "steps": args.steps,
                                          "max_rate": 1.0, "run_steps": args.steps + lag}}  # fmt: skip
        net = net.replace(metadata=meta)
    save(net, args.out)
    lag = (net.metadata.get("nir") or {}).get("delay_steps")
    if args.json:
        print(json.dumps({"format": "nir", "out": str(args.out), "exact": not rows, "delay_steps": lag,
                          "layers": [la.name for la in net.layers], "quantization": rows}, default=str))  # fmt: skip
        return 0
    how = "exactly (quantal metadata)" if not rows else "quantised with the compile calibration"
    print(f"wrote {args.out}: {len(net.layers)} layers ({', '.join(la.name for la in net.layers)}), {how}")
    if lag is not None:
        print(f"  the output lags the NIR graph's by {lag} steps (one per layer): quantal run's step t + {lag} is the "
              "graph's step t")  # fmt: skip
    for r in rows:
        if "weights" not in r:  # a layer with no projection (the always-on source of constant inputs)
            print(f"  {r['name']:10s} scale {r['scale']:.4g} (no input projections)")
            continue
        print(f"  {r['name']:10s} scale {r['scale']:.4g} (limited by {r['scale_limited_by']}), weight_exp "
              f"{r['weight_exp']}, {r['saturated_weights']}/{r['weights']} weights saturated")  # fmt: skip
    return 0


def cmd_warmup(args: argparse.Namespace) -> int:
    from quantal.hwsim.warm import warm_up

    def progress(name: str, seconds: float) -> None:
        if not args.quiet:
            print(f"  {name}: {seconds:.1f} s", flush=True)

    total = warm_up(progress)
    print(f"hwsim kernels compiled or loaded from Numba's cache in {total:.1f} s; later runs start warm")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from quantal import report

    if not Path(args.run).is_dir():
        raise UsageError(f"{args.run}: no such run directory")
    path = report.write(args.run, args.out, sample=args.sample, seed=args.seed)
    print(json.dumps({"report": str(path), "bytes": path.stat().st_size}) if args.json else f"wrote {path}")
    return 0


def _float_arg(name: str) -> Any:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not value >= 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{name} must be a finite number >= 0, got {text}")
        return value

    return parse


def _int_arg(name: str, lo: int, hi: int | None = None) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
            raise argparse.ArgumentTypeError(f"{name} must be {rng}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="quantal", description="Stochastic neural networks from PyTorch to neuromorphic hardware.")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="simulate a .qnet network on input spikes (hwsim)")
    r.add_argument("net", metavar="NET.qnet")
    r.add_argument("--input", required=True, metavar="SPIKES.npy",
                   help="(n_samples, T_in, input.size), bool or uint8, nonzero = spike")  # fmt: skip
    r.add_argument("--out", required=True, metavar="OUT.npz")
    r.add_argument("--steps", type=_int_arg("--steps", 1), default=None,
                   help="default: T_in, or the network's stored run_steps when that is longer")
    r.add_argument("--seed", type=_int_arg("--seed", 0, 2**64 - 1), default=0)
    r.add_argument("--trials", type=_int_arg("--trials", 1), default=None,
                   help="K repetitions with trial index 0..K-1 (adds a leading axis)")  # fmt: skip
    r.add_argument("--record", default="spikes", help="comma list of spikes,u,v,counts (default: spikes)")
    r.add_argument("--layers", default=None, help="comma list of layer names (default: all)")
    r.add_argument("--device", default=None, metavar="DEVICE.yaml",
                   help="device model: a YAML file or a preset (ideal, pcm, rram); see docs/devices.md")  # fmt: skip
    r.add_argument("--time", type=_float_arg("--time"), default=None,
                   help="seconds since programming (drift), overrides the device file's time")  # fmt: skip
    r.add_argument("-q", "--quiet", action="store_true")
    r.add_argument("--json", action="store_true", help="machine-readable output (one JSON object)")
    r.set_defaults(func=cmd_run)

    t = sub.add_parser("train", help="train a stochastic network from a YAML configuration")
    t.add_argument("config", metavar="CONFIG.yaml")
    t.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory (resumed if it exists)")
    t.add_argument("--json", action="store_true", help="machine-readable output (one JSON object)")
    t.set_defaults(func=cmd_train)

    i = sub.add_parser("inspect", help="validate a .qnet network and describe it")
    i.add_argument("net", metavar="NET.qnet")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.add_argument("--data", type=_dataset_arg, default=None,
                   help="measure synaptic operations and energy on this dataset's test split (hwsim)")  # fmt: skip
    i.add_argument("--limit", type=_int_arg("--limit", 1), default=200, help="samples for --data (default 200)")
    i.add_argument("--seed", type=_int_arg("--seed", 0, 2**64 - 1), default=0)
    i.add_argument("--encoder", choices=("rate", "latency", "static", "pairs"), default=None,
                   help="input encoder (default: the network's metadata)")  # fmt: skip
    i.add_argument("--steps", type=_int_arg("--steps", 1), default=None, help="encoder steps (default: metadata)")
    i.set_defaults(func=cmd_inspect)

    c = sub.add_parser("compile", help="lower a trained run (or checkpoint) to a .qnet network")
    c.add_argument("run", metavar="RUN_DIR|CHECKPOINT")
    c.add_argument("-o", "--out", required=True, metavar="NET.qnet")
    c.add_argument("--calibration", type=_int_arg("--calibration", 1), default=512,
                   help="training samples for calibrating the scales (default 512)")  # fmt: skip
    c.add_argument("--limit", type=_int_arg("--limit", 1), default=None, help="test samples for the report")
    c.add_argument("--seed", type=_int_arg("--seed", 0, 2**64 - 1), default=0,
                   help="stream and encoder seed of the report's evaluation")  # fmt: skip
    c.add_argument("--name", default=None, help="network name (default: the run directory's name)")
    c.add_argument("-q", "--quiet", action="store_true")
    c.add_argument("--json", action="store_true", help="machine-readable output (one JSON object)")
    c.set_defaults(func=cmd_compile)

    e = sub.add_parser("eval", help="accuracy of a .qnet network on a dataset through hwsim")
    e.add_argument("net", metavar="NET.qnet")
    e.add_argument("--data", required=True, type=_dataset_arg,
                   help="digits, fashion-mnist, or FILE.npz (x_train, y_train, x_test, y_test; docs/guide.md)")
    e.add_argument("--split", default="test", choices=("train", "test"))
    e.add_argument("--trials", type=_int_arg("--trials", 1), default=None,
                   help="trials (default: 10 for stochastic networks, 1 otherwise)")  # fmt: skip
    e.add_argument("--seed", type=_int_arg("--seed", 0, 2**64 - 1), default=0)
    e.add_argument("--limit", type=_int_arg("--limit", 1), default=None, help="use the first N samples")
    e.add_argument("--encoder", choices=("rate", "latency", "static", "pairs"), default=None,
                   help="input encoder (default: the network's metadata)")  # fmt: skip
    e.add_argument("--steps", type=_int_arg("--steps", 1), default=None, help="encoder steps (default: metadata)")
    e.add_argument("--deterministic", action="store_true",
                   help="evaluate the mean-field network (stochastic synapses at their expected weight)")  # fmt: skip
    e.add_argument("--device", default=None, metavar="DEVICE.yaml", help="device model (YAML file or preset)")
    e.add_argument("--time", type=_float_arg("--time"), default=None, help="seconds since programming")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval)

    w = sub.add_parser("sweep", help="robustness sweep over a grid x trials (resumable; local or Dask)")
    w.add_argument("sweep", metavar="SWEEP.yaml")
    w.add_argument("--out", default=None, metavar="DIR", help="results folder (default: runs/<name>)")
    w.add_argument("--workers", type=_int_arg("--workers", 1), default=None,
                   help="local worker processes (default: the CPU count)")  # fmt: skip
    w.add_argument("--scheduler", default=None, metavar="ADDRESS", help="a Dask scheduler, e.g. tcp://host:8786")
    w.add_argument("--json", action="store_true", help="machine-readable output (one JSON object)")
    w.set_defaults(func=cmd_sweep)

    v = sub.add_parser("verify", help="run a network on a target and in hwsim; exit 0 when identical, else 1")
    v.add_argument("net", metavar="NET.qnet")
    v.add_argument("--target", required=True, choices=("lava", "netx"),
                   help="lava (its own Python 3.10 venv), or netx: the NetX HDF5 export built in Lava")  # fmt: skip
    v.add_argument("--input", required=True, metavar="SPIKES.npy")
    v.add_argument("--steps", type=_int_arg("--steps", 1), default=None)
    v.add_argument("--seed", type=_int_arg("--seed", 0, 2**64 - 1), default=0)
    v.add_argument("--trial", type=_int_arg("--trial", 0), default=0)
    v.add_argument("--json", action="store_true", help="machine-readable output (one JSON object)")
    v.set_defaults(func=cmd_verify)

    x = sub.add_parser("export", help="write a .qnet network as NIR (the peers' format) or lava-dl NetX HDF5")
    x.add_argument("net", metavar="NET.qnet")
    x.add_argument("--target", required=True, choices=("nir", "netx"))
    x.add_argument("-o", "--out", required=True, metavar="FILE")
    x.add_argument("--dt", type=float, default=1e-4, help="seconds per step in the NIR graph (default 1e-4)")
    x.add_argument("--steps", type=_int_arg("--steps", 1), default=None,
                   help="NetX: steps per sample (tSample; default: the network's stored run_steps)")
    x.add_argument("--json", action="store_true", help="machine-readable output (one JSON object)")
    x.set_defaults(func=cmd_export)

    im = sub.add_parser("import", help="read a NIR graph (quantal's or a peer's) or a NetX HDF5 file into a .qnet")
    im.add_argument("model", metavar="MODEL.nir|MODEL.h5")
    im.add_argument("-o", "--out", required=True, metavar="NET.qnet")
    im.add_argument("--dt", type=float, default=None, help="seconds per step (default: the graph's, else 1e-4)")
    im.add_argument("--data", type=_dataset_arg, default=None, help="calibrate on this data (a name or FILE.npz)")
    im.add_argument("--encoder", choices=("rate", "latency", "static", "pairs"), default=None)
    im.add_argument("--steps", type=_int_arg("--steps", 1), default=None)
    im.add_argument("--calibration", type=_int_arg("--calibration", 1), default=512)
    im.add_argument("--name", default=None)
    im.add_argument("--reset", choices=("zero", "subtract"), default="zero",
                    help="reset of imported neurons: zero (NIR's v_reset = 0, default) or subtract (sinabs, spyx)")
    im.add_argument("--json", action="store_true", help="machine-readable output (one JSON object)")
    wu = sub.add_parser("warmup", help="compile hwsim's kernels into Numba's cache (make does this after install)")
    wu.add_argument("-q", "--quiet", action="store_true")
    wu.set_defaults(func=cmd_warmup)
    im.set_defaults(func=cmd_import)

    rp = sub.add_parser("report", help="one self-contained HTML page of a run, sweep or demo folder")
    rp.add_argument("run", metavar="RUN_DIR")
    rp.add_argument("--out", default=None, metavar="REPORT.html", help="default: RUN_DIR/report.html")
    rp.add_argument("--sample", type=_int_arg("--sample", 0), default=0, metavar="N",
                    help="test sample whose spike raster each network shows (default 0)")
    rp.add_argument("--seed", type=_int_arg("--seed", 0, 2**64 - 1), default=0,
                    help="random streams of that run (default 0)")
    rp.add_argument("--json", action="store_true", help="machine-readable output (one JSON object)")
    rp.set_defaults(func=cmd_report)
    return p


def _version() -> str:
    from quantal import __version__

    return f"quantal {__version__}"


def _printable(text: str) -> str:
    """``text`` with control characters (ANSI escapes, carriage returns) shown escaped, for a terminal."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


#: The user-facing errors (one line, exit status 2) besides UsageError, by module. Only the modules a command
#: has imported are looked up when something is raised: an error class whose module was never imported cannot
#: have been raised, so `quantal run` does not import the trainer's, the sweeps' or the exporters' modules (and
#: their own imports) to recognise their errors, which would add to every command's start-up.
USER_ERRORS = (("quantal.compile.ir", "IRError"), ("quantal.compile.runspec", "RunError"),
               ("quantal.train.config", "ConfigError"), ("quantal.train.data", "DataError"),
               ("quantal.pipeline", "PipelineError"), ("quantal.hwsim.devices", "DeviceError"),
               ("quantal.sweep", "SweepError"), ("quantal.targets.nir", "NIRError"),
               ("quantal.targets.netx", "NetXError"), ("quantal.compile.quantize", "LoweringError"))  # fmt: skip


def user_errors() -> tuple[type[Exception], ...]:
    """UsageError and the :data:`USER_ERRORS` of the modules imported so far (a module still being imported
    may not define its error yet: skipped, so that looking up never raises an error of its own)."""
    loaded = (getattr(sys.modules.get(m), name, None) for m, name in USER_ERRORS)
    return (UsageError, *(e for e in loaded if isinstance(e, type) and issubclass(e, Exception)))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except user_errors() as e:  # evaluated when something is raised: the modules the command imported
        print(f"quantal: error: {_printable(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # the reader of the output went away (`quantal inspect --json | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes stdout
        return 141  # 128 + SIGPIPE, as Unix tools exit
    except OSError as e:
        print(f"quantal: error: {e.filename or ''}: {e.strerror or e}".replace(": : ", ": "), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("quantal: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, RecursionError) as e:  # input that passed the checks but is still too large or deep
        print(f"quantal: error: the input is too large or too deeply nested to process ({type(e).__name__})",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    except Exception as e:  # noqa: BLE001 - the one guard for bugs: one line, its own exit status
        where = ""
        tb = e.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is not None:
            where = f" at {Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}"
        msg = _printable(str(e).splitlines()[0] if str(e) else "")[:200]
        print(f"quantal: internal error: {type(e).__name__}: {msg}{where} (a bug in quantal: please report it with "
              "the command that caused it; QUANTAL_TRACEBACK=1 shows the traceback)", file=sys.stderr)  # fmt: skip
        if os.environ.get("QUANTAL_TRACEBACK"):
            import traceback

            traceback.print_exc()
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
