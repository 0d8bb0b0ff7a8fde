"""``quantal sweep SWEEP.yaml``: robustness sweeps over a grid x trials (docs/devices.md §5).

A sweep file::

    name: drift                  # the sweep's name
    networks: {plain: runs/demo/demo.qnet, hardware-aware: runs/demo/hwa.qnet}   # label: path
    data: {name: digits, split: test, limit: null}   # the dataset (a name or FILE.npz), split, first N samples
    trials: 10                   # trials per grid point (random streams and static device draws)
    seed: 0                      # the random streams' seed
    grid:                        # every axis optional; the sweep runs the Cartesian product
      device: [ideal, pcm, {label: pcm-raw, preset: pcm, drift_compensation: false}]
      time: [1, 3600, 86400, 31536000]       # seconds after programming
      weight_bits: [8, 6, 4]                 # mantissa bits (compile.transform.reduce_weight_bits)
      release: [0.25, 0.5]                   # release probability of every stochastic synapse

Each (grid point, trial) is one run: the network (transformed), the device at that time, trial index k of
the random streams (static device draws and synapses), the whole dataset, through hwsim. Tasks group a few
runs of one grid point; a finished task appends its rows to ``results.csv`` in one write (flushed and
synced); a sweep started again skips the runs that have a row and drops a torn last line, so a killed sweep
resumes without lost or duplicated rows. Tasks run
in local processes (``--workers``, default the CPU count) or on a Dask cluster (``--scheduler ADDRESS``).
Afterwards ``summary.csv`` holds the mean and 95% t-interval per grid point and ``sweep_<axis>.png`` plots
accuracy against each swept axis.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from quantal.compile.ir import atomic_write
from quantal.plots import human_time  # numpy only: matplotlib loads when a figure is drawn

AXES = ("device", "time", "weight_bits", "release")
COLUMNS = ["key", "network", "device", "time", "weight_bits", "release", "trial", "accuracy", "samples", "seconds"]


class SweepError(ValueError):
    """A bad sweep file; the message names the key."""


# -------------------------------------------------------------------------------------------- config


def _device_label(d: Any) -> str:
    if isinstance(d, str):
        return d
    if isinstance(d, dict):
        if "label" in d:
            return str(d["label"])
        return ",".join(f"{k}={v}" for k, v in d.items())
    raise SweepError(f"grid.device: expected a preset name or a mapping, got {d!r}")


def load(path: str | Path) -> dict[str, Any]:
    """The validated sweep (network paths resolved against the sweep file's folder when relative)."""
    from quantal.compile.ir import read_yaml
    from quantal.hwsim.devices import DeviceError, from_config

    p = Path(path)
    raw = read_yaml(p, SweepError)
    if not isinstance(raw, dict):
        raise SweepError(f"{p}: a sweep file must be a mapping")
    known = {"name", "network", "networks", "data", "trials", "seed", "grid"}
    for k in raw:
        if k not in known:
            raise SweepError(f"{k}: unknown key (known: {', '.join(sorted(known))})")
    nets = raw.get("networks") or ({"net": raw["network"]} if "network" in raw else None)
    if not isinstance(nets, dict) or not nets:
        raise SweepError("networks: give a mapping label -> .qnet path (or network: PATH)")
    resolved = {}
    for label, q in nets.items():
        if not isinstance(q, str) or not q or "\x00" in q:
            raise SweepError(f"networks.{label}: expected a .qnet path, got {q!r:.60}")
        qp = Path(q)
        try:
            if not qp.is_absolute() and not qp.exists():
                qp = p.parent / qp
            found = qp.is_file()
        except OSError as e:  # a name too long for the file system, ...
            raise SweepError(f"networks.{label}: {q[:80]!r}: {e.strerror or e}") from None
        if not found:
            raise SweepError(f"networks.{label}: {q[:200]}: no such file")
        resolved[str(label)] = str(qp)
    raw_data = raw.get("data") or {}
    if not isinstance(raw_data, dict):
        raise SweepError(f"data: expected a mapping (name, split, limit), got {raw_data!r:.60}")
    unknown = sorted(map(str, set(raw_data) - {"name", "split", "limit"}))
    if unknown:
        raise SweepError(f"data.{unknown[0]}: unknown key (known: limit, name, split)")
    data = {"name": "digits", "split": "test", "limit": None, **raw_data}
    if not isinstance(data["name"], str) or data["name"] not in ("digits", "fashion-mnist"):
        raise SweepError(f"data.name: {data['name']!r} is not one of digits, fashion-mnist")
    if not isinstance(data["split"], str) or data["split"] not in ("train", "test"):
        raise SweepError(f"data.split: {data['split']!r} is not one of train, test")
    if data["limit"] is not None and (not isinstance(data["limit"], int) or isinstance(data["limit"], bool)
                                      or data["limit"] < 1):  # fmt: skip
        raise SweepError("data.limit: expected a positive integer or null")
    trials, seed = raw.get("trials", 10), raw.get("seed", 0)
    if not isinstance(trials, int) or isinstance(trials, bool) or trials < 1:
        raise SweepError(f"trials: expected a positive integer, got {trials!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**64:
        raise SweepError(f"seed: expected an integer in [0, 2**64), got {seed!r}")
    grid = raw.get("grid") or {}
    if not isinstance(grid, dict):
        raise SweepError("grid: expected a mapping of axis -> list of values")
    for k, vals in grid.items():
        if k not in AXES:
            raise SweepError(f"grid.{k}: unknown axis (known: {', '.join(AXES)})")
        if not isinstance(vals, list) or not vals:
            raise SweepError(f"grid.{k}: expected a non-empty list")
    devices = grid.get("device", ["ideal"])
    for d in devices:
        cfg = dict(d) if isinstance(d, dict) else d
        if isinstance(cfg, dict):
            cfg.pop("label", None)
        try:
            from_config(cfg)
        except DeviceError as e:
            raise SweepError(f"grid.device: {_device_label(d)}: {e}") from None
    times = grid.get("time", [0.0])
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t < math.inf for t in times):
        raise SweepError("grid.time: expected seconds >= 0")
    bits = grid.get("weight_bits", [8])
    if not all(isinstance(b, int) and not isinstance(b, bool) and 2 <= b <= 8 for b in bits):
        raise SweepError("grid.weight_bits: expected integers in [2, 8]")
    rel = grid.get("release", [None])
    if not all(r is None or (isinstance(r, (int, float)) and not isinstance(r, bool) and 0 < r <= 1) for r in rel):
        raise SweepError("grid.release: expected probabilities in (0, 1] (or null: unchanged)")
    name = str(raw.get("name", p.stem))
    if not name or len(name) > 100 or not all(ch.isalnum() or ch in "-_." for ch in name) or name.startswith("."):
        raise SweepError(f"name: {name[:100]!r} must be 1-100 letters, digits, '-', '_' or '.' (not starting with "
                         "'.'): it names the output folder")  # fmt: skip
    return {"name": name, "networks": resolved, "data": data, "trials": trials,
            "seed": seed, "grid": {"device": devices, "time": [float(t) for t in times], "weight_bits": bits,
                                   "release": rel}}  # fmt: skip


def points(sw: dict[str, Any]) -> list[dict[str, Any]]:
    """The grid points (network x device x time x weight_bits x release), each with a stable key."""
    g = sw["grid"]
    out = []
    for net, dev, t, b, r in itertools.product(sw["networks"], g["device"], g["time"], g["weight_bits"],
                                               g["release"]):  # fmt: skip
        pt = {"network": net, "device": _device_label(dev), "device_config": dev, "time": t, "weight_bits": b,
              "release": r}  # fmt: skip
        ident = json.dumps({k: pt[k] for k in ("network", "device_config", "time", "weight_bits", "release")},
                           sort_keys=True, default=str)  # fmt: skip
        pt["key"] = hashlib.sha1(ident.encode()).hexdigest()[:12]
        out.append(pt)
    return out


# --------------------------------------------------------------------------------------------- tasks

_CACHE: dict[str, Any] = {}


def run_task(task: dict[str, Any]) -> list[dict[str, Any]]:
    """One grid point and some of its trials (``task["trials"]``): the transformed network on the device,
    one result row per trial. Runs in a worker."""
    import time

    from quantal.compile.ir import load as load_net
    from quantal.compile.runspec import RunSpec
    from quantal.compile.transform import reduce_weight_bits, set_release
    from quantal.hwsim import Simulator
    from quantal.pipeline import encoded_dataset

    t0 = time.perf_counter()
    try:  # one thread per task: the parallelism is across tasks
        import numba

        numba.set_num_threads(1)
    except Exception:  # pragma: no cover
        pass
    path = task["path"]
    if path not in _CACHE:
        _CACHE[path] = load_net(path)
    net = _CACHE[path]
    d = task["data"]
    dkey = f"{path}|{d['name']}|{d['split']}|{d['limit']}|{task['seed']}"
    if dkey not in _CACHE:  # the encoding of quantal eval with the same seed
        _CACHE[dkey] = encoded_dataset(net, d["name"], split=d["split"], seed=task["seed"], limit=d["limit"])
    spikes, y, spec = _CACHE[dkey]
    pt = task["point"]
    if pt["weight_bits"] != 8:
        net = reduce_weight_bits(net, pt["weight_bits"])
    if pt["release"] is not None:
        net = set_release(net, pt["release"])
    device = _device(pt)
    if device.model.noiseless:
        device = None  # the ideal device is the plain semantics: skip the realisation
    last = net.layers[-1].name
    rs = RunSpec(steps=int(spec["run_steps"]), seed=task["seed"], record=("counts",), layers=(last,))
    sim = Simulator(net, device)
    rows = []
    for k in task["trials"]:
        out = sim.run(spikes, rs, trial_offset=k)
        acc = float((out[f"{last}.counts"].argmax(-1) == y).mean())
        rows.append({"key": pt["key"], "network": pt["network"], "device": pt["device"], "time": pt["time"],
                     "weight_bits": pt["weight_bits"], "release": "" if pt["release"] is None else pt["release"],
                     "trial": k, "accuracy": acc, "samples": int(len(y)),
                     "seconds": round(time.perf_counter() - t0, 4)})  # fmt: skip
        t0 = time.perf_counter()
    return rows


# ------------------------------------------------------------------------------------------- results


def _valid_row(r: dict[str, str | None]) -> bool:
    """A complete row: every column present, key and numbers parse (a torn write fails one of these)."""
    if None in r or any(r.get(c) is None for c in COLUMNS):
        return False
    try:
        int(str(r["key"]), 16)
        int(str(r["trial"]))
        float(str(r["time"]))
        int(str(r["weight_bits"]))
        acc = float(str(r["accuracy"]))
        int(str(r["samples"]))
        float(str(r["seconds"]))
        if r["release"] != "":
            float(str(r["release"]))
    except ValueError:
        return False
    return len(str(r["key"])) == 12 and 0.0 <= acc <= 1.0


def read_results(path: Path) -> list[dict[str, str]]:
    """The complete rows of ``results.csv``, parsed with a CSV reader (labels may hold commas and quotes),
    one per (key, trial): a torn line (a killed write) or a duplicate is dropped, and the file rewritten
    without it."""
    if not path.exists():
        return []
    text = path.read_bytes().decode("utf-8", errors="replace")
    if not text.strip():
        return []
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]  # a torn last line has no newline
    reader = csv.DictReader(io.StringIO(complete, newline=""))
    if reader.fieldnames != COLUMNS:
        raise SweepError(f"{path}: not a quantal sweep results file (columns {reader.fieldnames})")
    rows, seen = [], set()
    for r in reader:
        if not _valid_row(r):
            continue
        ident = (r["key"], int(r["trial"]))
        if ident in seen:
            continue
        seen.add(ident)
        rows.append(r)
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    if buf.getvalue() != text:
        atomic_write(path, lambda f: f.write(buf.getvalue().encode()))
    return rows


def _append(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append a finished task's rows (one write, flushed and synced)."""
    new = not path.exists()
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    if new:
        w.writeheader()
    w.writerows(rows)
    with open(path, "a", newline="") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())


def _done_keys(rows: list[dict[str, str]]) -> set[tuple[str, int]]:
    return {(r["key"], int(r["trial"])) for r in rows}


def run(sweep_path: str | Path, out: str | Path, *, workers: int | None = None, scheduler: str | None = None,
        progress: bool = True, log: Callable[..., None] = print) -> dict[str, Any]:  # fmt: skip
    """Run (or resume) a sweep into ``out``; returns a summary (tasks run, skipped, seconds, files)."""
    sw = load(sweep_path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        return _run_locked(sw, out, workers, scheduler, progress, log)


class _locked:
    """An exclusive lock on ``out/.lock`` for the whole sweep: a second sweep into the same folder is refused
    (two writers would both run the missing rows and duplicate them)."""

    def __init__(self, out: Path) -> None:
        self.path = out / ".lock"

    def __enter__(self) -> None:
        import fcntl

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            raise SweepError(f"{self.path.parent}: another sweep is writing into this folder (it holds "
                             f"{self.path}); wait for it to finish or choose another --out") from None  # fmt: skip

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing releases the lock


def _device(pt: dict[str, Any]) -> Any:
    """The grid point's device at its time (a mapping's ``label`` is the sweep's, not the device's)."""
    from quantal.hwsim.devices import from_config

    cfg = pt["device_config"]
    cfg = {k: v for k, v in cfg.items() if k != "label"} if isinstance(cfg, dict) else cfg
    return from_config(cfg, time=pt["time"])


def _deterministic(net: Any, pt: dict[str, Any]) -> bool:
    """Whether every trial of grid point ``pt`` of ``net`` computes the same thing (no stochastic synapse or
    escape noise after the transforms, a noiseless device)."""
    if pt["release"] is not None:  # set_release gives every stochastic synapse this probability
        releases = pt["release"] < 1 and any(p.synapse.release is not None for p in net.projections)
    else:
        releases = any(p.synapse.release is not None for p in net.projections)
    escape = any(la.neuron.escape_noise is not None for la in net.layers)
    return not releases and not escape and _device(pt).model.noiseless


def _run_locked(sw: dict[str, Any], out: Path, workers: int | None, scheduler: str | None, progress: bool,
                log: Callable[..., None]) -> dict[str, Any]:  # fmt: skip
    import time

    from tqdm.auto import tqdm

    cfg_text = yaml.safe_dump(sw, sort_keys=False)
    from quantal.compile.ir import read_yaml

    if (out / "sweep.yaml").exists() and read_yaml(out / "sweep.yaml", SweepError) != sw:
        raise SweepError(f"{out} holds another sweep; choose another --out")
    atomic_write(out / "sweep.yaml", lambda f: f.write(cfg_text.encode()))
    res_path = out / "results.csv"
    done = _done_keys(read_results(res_path))
    pts = points(sw)
    todo = [(pt, [k for k in range(sw["trials"]) if (pt["key"], k) not in done]) for pt in pts]
    todo = [(pt, ks) for pt, ks in todo if ks]
    n_runs = sum(len(ks) for _, ks in todo)
    n_all = len(pts) * sw["trials"]
    if done:
        log(f"resuming {out}: {n_all - n_runs} of {n_all} (grid point, trial) runs already done")
    # Tasks: a grid point's missing trials in chunks, about 4 tasks per worker so that the workers stay busy
    # while per-task overhead (a message, a write) stays small.
    n_workers = 2 if scheduler is not None else (workers or os.cpu_count() or 1)
    chunk = max(1, n_runs // (4 * max(n_workers, 2)) // max(len(todo), 1))
    tasks = [{"path": sw["networks"][pt["network"]], "data": sw["data"], "seed": sw["seed"], "point": pt,
              "trials": ks[i:i + chunk]} for pt, ks in todo for i in range(0, len(ks), chunk)]  # fmt: skip
    t0 = time.perf_counter()
    bar = tqdm(total=n_runs, unit="run", disable=not progress, desc=f"sweep {sw['name']}")
    if tasks:
        if scheduler is not None:
            _run_dask(tasks, scheduler, res_path, bar)
        else:
            _run_local(tasks, n_workers, res_path, bar)
    bar.close()
    elapsed = time.perf_counter() - t0
    rows = read_results(res_path)
    from quantal.compile.ir import load as load_net

    nets = {label: load_net(path) for label, path in sw["networks"].items()}
    det = {pt["key"] for pt in pts if _deterministic(nets[pt["network"]], pt)}
    summary = summarize(rows, order=[pt["key"] for pt in pts], deterministic=det)
    _write_summary(out / "summary.csv", summary)
    figs = plot(summary, out)
    return {"tasks": n_all, "ran": n_runs, "skipped": n_all - n_runs, "seconds": elapsed,
            "results": str(res_path), "summary": str(out / "summary.csv"),
            "figures": [str(f) for f in figs]}  # fmt: skip


def _run_local(tasks: list[dict], workers: int, res_path: Path, bar: Any) -> None:
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as ex:
        _collect(as_completed([ex.submit(run_task, t) for t in tasks]), res_path, bar)


def _collect(done: Any, res_path: Path, bar: Any) -> None:
    """Append each finished task's rows as it completes (futures of local processes or of Dask)."""
    for f in done:
        rows = f.result()
        _append(res_path, rows)
        bar.update(len(rows))


def _run_dask(tasks: list[dict], scheduler: str, res_path: Path, bar: Any) -> None:
    from dask.distributed import Client, as_completed

    try:
        client = Client(scheduler, timeout="10s")
    except OSError as e:
        raise SweepError(f"--scheduler: cannot reach {scheduler} ({e})") from None
    try:
        _collect(as_completed(client.map(run_task, tasks, pure=False)), res_path, bar)
    finally:
        client.close()


# ----------------------------------------------------------------------------------- summary, plots


def summarize(rows: list[dict[str, str]], order: list[str] | None = None,
              deterministic: set[str] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Per grid point: mean accuracy and its 95% interval (``pipeline.confidence_interval``: a t-interval over
    trials, or the test set's Wilson interval for a deterministic point, a single trial or equal trials), in
    the grid's order (``order``: the points' keys) or sorted by the axes. Rows are taken in (key, trial) order,
    so the bytes of the summary do not depend on the order the tasks finished in."""
    from quantal.pipeline import confidence_interval

    groups: dict[str, list[dict[str, str]]] = {}
    for r in sorted(rows, key=lambda r: (r["key"], int(r["trial"]))):
        groups.setdefault(r["key"], []).append(r)
    out = []
    for key, g in groups.items():
        accs = np.array([float(r["accuracy"]) for r in g])
        det = deterministic is not None and key in deterministic
        lo, hi, how = confidence_interval(accs, int(g[0]["samples"]), deterministic=det)
        r0 = g[0]
        out.append({"network": r0["network"], "device": r0["device"], "time": float(r0["time"]),
                    "weight_bits": int(r0["weight_bits"]), "release": r0["release"], "trials": len(g),
                    "accuracy": float(accs.mean()), "ci_lo": lo, "ci_hi": hi, "ci_method": how,
                    "_key": key})  # fmt: skip
    if order is not None:
        rank = {k: i for i, k in enumerate(order)}
        out.sort(key=lambda r: rank.get(r["_key"], len(rank)))
    else:
        out.sort(key=lambda r: (r["network"], r["device"], r["time"], -r["weight_bits"], str(r["release"])))
    for r in out:
        del r["_key"]
    return out


def _write_summary(path: Path, summary: list[dict[str, Any]]) -> None:
    buf = io.StringIO(newline="")
    if summary:
        w = csv.DictWriter(buf, fieldnames=list(summary[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(summary)
    atomic_write(path, lambda f: f.write(buf.getvalue().encode()))


def _value_label(axis: str, value: Any) -> str:
    if axis == "time" and value not in ("", None):
        return human_time(float(value))
    if axis == "weight_bits" and value not in ("", None):
        return f"{int(float(value))} bits"
    if axis == "release" and value not in ("", None):
        return f"p = {float(value):g}"
    return str(value)


def _sort_key(axis: str, value: Any) -> Any:
    try:
        return (0, float(value))
    except (TypeError, ValueError):
        return (1, str(value))


MAX_SERIES = 6  # lines per panel before a plot splits into small multiples


def plot(summary: list[dict[str, Any]], out: Path) -> list[Path]:
    """``sweep_<axis>.png`` for every axis with more than one value: accuracy (mean, 95% band, in percent, the
    axis zoomed to the data) against it, one line per combination of the other varying axes (and the network).
    Series are sorted by value, labelled in people's units (1 h, 1 day, 8 bits) and keep one colour-blind-safe
    colour and marker across the figures; the legend sits beside the plot. Past ``MAX_SERIES`` lines the figure
    becomes small multiples, one panel per value of the first other varying axis."""
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    from quantal.plots import _figure, _save, colours

    figs: list[Path] = []
    axes = ["time", "weight_bits", "release"]
    vary = [a for a in ("network", "device", *axes) if len({str(r[a]) for r in summary}) > 1]
    styles: dict[str, tuple[str, str]] = {}  # one style per series label across all the figures

    def style_of(label: str) -> tuple[str, str]:
        if label not in styles:
            styles[label] = colours([*styles, label])[label]
        return styles[label]

    def series(others: list[str], r: dict[str, Any]) -> tuple:
        return tuple(_sort_key(a, r[a]) for a in others)

    def name(others: list[str], r: dict[str, Any]) -> str:
        return " / ".join(_value_label(a, r[a]) for a in others) or "all"

    def finish(ax: Any, others: list[str], lo: float, hi: float, legend: bool = True) -> None:
        pad = max(0.01, 0.08 * (hi - lo))
        ax.set_ylim(max(0.0, lo - pad), min(1.0, hi + pad))  # zoomed to the data (the bands included)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
        ax.set_ylabel("test accuracy (mean, 95% CI)")
        ax.grid(alpha=0.3)
        if not legend:
            return
        ax.legend(fontsize=7, title=" / ".join(a.replace("_", " ") for a in others) if others else None,
                  title_fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # fmt: skip

    for ax_name in axes:
        if ax_name not in vary:
            continue
        others = [a for a in vary if a != ax_name]
        n_series = len({series(others, r) for r in summary})
        # past MAX_SERIES lines, small multiples: one panel per value of the first other axis
        facet = others[0] if n_series > MAX_SERIES and len(others) >= 2 else None
        panels = sorted({_sort_key(facet, r[facet]) for r in summary}) if facet else [None]
        inner = others[1:] if facet else others
        fig, axs = _figure(1, len(panels), figsize=(min(4.0 * len(panels) + 2.4, 16.0), 3.8), sharey=True,
                           squeeze=False)  # fmt: skip
        lo, hi = 1.0, 0.0
        for ax, panel in zip(axs[0], panels):
            lines: dict[tuple, list[dict]] = {}
            for r in summary:
                if facet is None or _sort_key(facet, r[facet]) == panel:
                    lines.setdefault(series(inner, r), []).append(r)
            labels = {k: name(inner, rs[0]) for k, rs in lines.items()}
            for key in sorted(lines):
                rs = sorted(lines[key], key=lambda r: _sort_key(ax_name, r[ax_name]))
                x = [float(r[ax_name]) if r[ax_name] != "" else np.nan for r in rs]
                m = [r["accuracy"] for r in rs]
                c, mk = style_of(labels[key])
                ax.plot(x, m, "-", marker=mk, color=c, label=labels[key])
                ax.fill_between(x, [r["ci_lo"] for r in rs], [r["ci_hi"] for r in rs], color=c, alpha=0.15, lw=0)
                lo, hi = min(lo, *(r["ci_lo"] for r in rs)), max(hi, *(r["ci_hi"] for r in rs))
            if facet is not None:
                first = next(r for r in summary if _sort_key(facet, r[facet]) == panel)
                ax.set_title(f"{facet.replace('_', ' ')}: {_value_label(facet, first[facet])}", fontsize=9)
            xs = sorted({float(r[ax_name]) for r in summary if r[ax_name] != ""})
            if ax_name == "time":
                ax.set_xscale("symlog", linthresh=1.0)
                ax.set_xticks(xs, [human_time(t) for t in xs], fontsize=8)
                ax.set_xlabel("time after programming")
            elif ax_name == "weight_bits":
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                ax.set_xlabel("weight bits")
            else:
                ax.set_xlabel("release probability p")
        for ax in axs[0]:
            finish(ax, inner, lo, hi, legend=ax is axs[0][-1])
        figs.append(_save(fig, out / f"sweep_{ax_name}.png"))
    if "device" in vary:  # accuracy against the devices in the sweep file's order (e.g. rising noise levels)
        devices = list(dict.fromkeys(r["device"] for r in summary))
        others = [a for a in vary if a != "device"]
        fig, ax = _figure(figsize=(7.4, 3.8))
        lines = {}
        for r in summary:
            lines.setdefault(series(others, r), {})[r["device"]] = r
        labels = {k: name(others, next(iter(d.values()))) for k, d in lines.items()}
        lo, hi = 1.0, 0.0
        for key in sorted(lines):
            by_dev = lines[key]
            xs = [k for k, d in enumerate(devices) if d in by_dev]
            rs = [by_dev[devices[k]] for k in xs]
            m = np.array([r["accuracy"] for r in rs])
            err = np.array([[r["accuracy"] - r["ci_lo"] for r in rs], [r["ci_hi"] - r["accuracy"] for r in rs]])
            c, mk = style_of(labels[key])
            ax.errorbar(xs, m, yerr=err, fmt="-", marker=mk, color=c, capsize=3, label=labels[key])
            lo, hi = min(lo, *(r["ci_lo"] for r in rs)), max(hi, *(r["ci_hi"] for r in rs))
        ax.set_xticks(range(len(devices)), devices, rotation=20, fontsize=8)
        ax.set_xlabel("device (in the sweep file's order)")
        finish(ax, others, lo, hi)
        figs.append(_save(fig, out / "sweep_device.png"))
    return figs
