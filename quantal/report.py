"""``quantal report RUN_DIR``: one self-contained HTML page with the plots, tables and configs of a run folder.

It collects what it finds under RUN_DIR: a demo or pipeline summary (``summary.json``), training metrics
(``metrics.json``), compiled networks (``*.qnet``: layers, quantisation report), sweeps (``summary.csv`` beside
``results.csv``), every PNG (embedded as data URIs) and the configurations (``*.yaml``). Nothing is fetched
from elsewhere: the page has inline CSS, inline images and one inline script that marks, after loading,
how many images decoded (``<body data-images-ok="k/n">``) and whether the page is wider than the window
(``data-overflow``; wide tables scroll inside their own box); the tests read both from headless Chromium.
A summary card leads with the headline numbers (accuracy per stage with its interval, activity per inference)
and the checks (fake-quant equals hwsim, Lava, NIR round trip, NetX); each figure sits next to its numbers.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from quantal.compile.ir import atomic_write
from quantal.plots import human_time  # numpy only: matplotlib loads when a figure is drawn

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;
padding:0 1rem}
.scroll{max-width:100%;overflow-x:auto}.card{border:1px solid #ccd;border-radius:8px;padding:.8rem 1rem;
background:#f8f9fc;margin:1rem 0}.card ul{margin:.3rem 0;padding-left:1.2rem}.ok{color:#0a6b2e}.bad{color:#a3241b}
.row{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}.row>div{flex:1 1 420px;min-width:0}
h1{font-size:1.6rem}h2{font-size:1.25rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem}td,th{border:1px solid #ccc;padding:.2rem .5rem}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{display:inline-block;margin:.5rem;max-width:100%}figure img{max-width:min(520px,100%)}
figcaption{font-size:.8rem;color:#555}
pre{background:#f7f7f7;padding:.6rem;overflow-x:auto;font-size:.8rem}
"""

SCRIPT = """window.addEventListener('load',function(){var a=Array.prototype.slice.call(document.images);
document.body.setAttribute('data-images-ok',a.filter(function(i){return i.complete&&i.naturalWidth>0}).length
+'/'+a.length);var d=document.documentElement;
document.body.setAttribute('data-overflow',d.scrollWidth>d.clientWidth?'1':'0');});"""


# columns shown in percent (values in [0, 1]): accuracies, their intervals, the stages of a quantisation report
PERCENT_KEYS = ("acc", "ci", "float", "fake_quant", "hwsim")


def _fmt(v: Any, key: str = "") -> str:
    """A cell for people: accuracies in percent with one decimal, intervals as [lo, hi], times after programming
    in people's units, other floats with 4 significant digits."""
    k = key.lower()
    pct = any(t in k for t in PERCENT_KEYS) and "loss" not in k
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v) and pct:
        return f"[{v[0]:.1%}, {v[1]:.1%}]"
    if v is None:
        return "&ndash;"  # not applicable (a layer without input projections, a field the file lacks)
    if isinstance(v, bool):
        return html.escape(str(v))
    if isinstance(v, (int, float)) and k == "time":
        return html.escape(human_time(float(v)))
    if isinstance(v, float) and pct and 0.0 <= v <= 1.0:
        return f"{v:.1%}"
    if isinstance(v, float) and abs(v) >= 1000:
        return f"{v:,.0f}"  # counts per inference: 22,207 rather than 2.221e+04
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return html.escape(json.dumps(v)[:200])
    return html.escape(str(v))


def table(rows: list[dict[str, Any]], cols: list[str] | None = None) -> str:
    if not rows:
        return "<p>(empty)</p>"
    cols = cols or list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(
        f"<td class='n'>{_fmt(r.get(c), c)}</td>" if isinstance(r.get(c), (int, float)) and not isinstance(
            r.get(c), bool) else f"<td>{_fmt(r.get(c), c)}</td>"
        for c in cols) + "</tr>" for r in rows)  # fmt: skip
    return f"<div class='scroll'><table><tr>{head}</tr>{body}</table></div>"


def _check(ok: bool | None, text: str) -> str:
    mark = "<span class='ok'>&#10003;</span>" if ok else ("<span class='bad'>&#10007;</span>" if ok is False else "")
    return f"<li>{mark} {text}</li>"


def graph_svg(net: Any) -> str:
    """The network's graph as inline SVG: the input and each layer a box (name, shape, kind) from left to right;
    each projection an arrow labelled with its kind (and delay): straight to the next box, an arc above for a
    skip, below for a connection back, a loop for recurrence onto the layer itself; dashed where stochastic."""
    from quantal.compile.ir import INPUT

    names = [INPUT] + [la.name for la in net.layers]
    pos = {n: k for k, n in enumerate(names)}
    bw, bh, gap = 120, 46, 60
    width = len(names) * (bw + gap) - gap + 20
    back = any(pos.get(p.target, 0) < pos.get(p.source, 0) for p in net.projections)
    span = max([abs(pos.get(p.target, 0) - pos.get(p.source, 0)) for p in net.projections] + [1])
    top = 40 + 9 * span + 20
    height = top + bh + (30 + 9 * span + 20 if back else 10)
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}' "
           "font-family='system-ui,sans-serif' font-size='11'><defs><marker id='ah' viewBox='0 0 10 10' refX='9' "
           "refY='5' markerWidth='7' markerHeight='7' orient='auto-start-reverse'><path d='M0,0L10,5L0,10z' "
           "fill='#444'/></marker></defs>"]  # fmt: skip
    for n in names:
        x = 10 + pos[n] * (bw + gap)
        if n == INPUT:
            sub, kind, fill = "x".join(map(str, net.input_shape)), "input", "#eef3fb"
        else:
            la = net.layer(n)
            sub, kind = "x".join(map(str, la.shape)), la.neuron.kind + (" (subtract)" if la.neuron.reset ==
                                                                         "subtract" else "")  # fmt: skip
            fill = "#f3f0fa" if la.neuron.kind == "readout" else "#eef8f1"
        out.append(f"<rect x='{x}' y='{top}' width='{bw}' height='{bh}' rx='6' fill='{fill}' stroke='#557'/>"
                   f"<text x='{x + bw / 2}' y='{top + 16}' text-anchor='middle' font-weight='600'>"
                   f"{html.escape(n[:18])}</text><text x='{x + bw / 2}' y='{top + 30}' text-anchor='middle'>"
                   f"{html.escape(sub)}</text><text x='{x + bw / 2}' y='{top + 42}' text-anchor='middle' "
                   f"fill='#666' font-size='9'>{html.escape(kind)}</text>")  # fmt: skip
    for p in net.projections:
        a, b = pos.get(p.source, 0), pos.get(p.target, 0)
        label = ("conv2d" if p.kind == "conv2d" else "dense") + (f", +{p.delay} steps" if p.delay else "")
        dash = " stroke-dasharray='5,3'" if p.synapse.stochastic else ""
        style = f"fill='none' stroke='#444'{dash} marker-end='url(#ah)'"
        xa, xb = 10 + a * (bw + gap), 10 + b * (bw + gap)
        if a == b:  # recurrence onto the layer itself: a loop above the box
            cx = xa + bw / 2
            out.append(f"<path d='M{cx - 18},{top} C{cx - 30},{top - 40} {cx + 30},{top - 40} {cx + 18},{top}' "
                       f"{style}/><text x='{cx + 26}' y='{top - 22}' font-size='9'>{html.escape(label)}</text>")
        elif b == a + 1:
            y = top + bh / 2
            out.append(f"<line x1='{xa + bw}' y1='{y}' x2='{xb}' y2='{y}' {style}/>"
                       f"<text x='{(xa + bw + xb) / 2}' y='{y - 5}' text-anchor='middle' font-size='9'>"
                       f"{html.escape(label)}</text>")  # fmt: skip
        else:  # a skip (forward, above) or a connection back (below)
            fwd = b > a
            y0 = top if fwd else top + bh
            rise = 30 + 18 * abs(b - a)  # longer jumps arc higher, so that their labels do not collide
            ym = y0 - rise if fwd else y0 + rise
            x0, x1 = xa + bw / 2, xb + bw / 2
            out.append(f"<path d='M{x0},{y0} Q{(x0 + x1) / 2},{ym} {x1},{y0}' {style}/>"
                       f"<text x='{(x0 + x1) / 2}' y='{(y0 + ym) / 2 + (0 if fwd else 10)}' text-anchor='middle' "
                       f"font-size='9'>{html.escape(label)}</text>")  # fmt: skip
    out.append("</svg>")
    return "<div class='scroll'>" + "".join(out) + "</div>"


def summary_card(d: dict[str, Any]) -> str:
    """The headline numbers and checks of a demo or pipeline summary, in one card."""
    items = []
    acc = d.get("accuracy") or {}
    for stage, v in acc.items():
        if isinstance(v, dict) and isinstance(v.get("accuracy"), (int, float)):
            ci = v.get("ci95")
            half = f" &plusmn; {(ci[1] - ci[0]) / 2:.1%}" if isinstance(ci, list) and len(ci) == 2 else ""
            what = html.escape(str(v.get("ci_method") or ""))
            items.append(f"<li><b>{html.escape(stage.replace('_', ' '))}</b>: {v['accuracy']:.1%}{half}"
                         f"{f' <small>({what})</small>' if what else ''}</li>")  # fmt: skip
        elif isinstance(v, (int, float)):
            items.append(f"<li><b>{html.escape(stage.replace('_', ' '))}</b>: {v:.1%}</li>")
    checks = []
    if "fake_quant_equals_hwsim" in d:
        checks.append(_check(bool(d["fake_quant_equals_hwsim"]), "the fake-quant model trained equals the deployed "
                             "network in hwsim, bit for bit"))  # fmt: skip
    lv = d.get("lava_verification")
    if isinstance(lv, dict):
        checks.append(_check(lv.get("exit_status") == 0, "Lava: " + html.escape(str(lv.get("result", "")))))
    nr = d.get("nir")
    if isinstance(nr, dict):
        checks.append(_check(bool(nr.get("round_trip_exact")), "NIR export and import: " + (
            "exact round trip" if nr.get("round_trip_exact") else "the round trip differs")))  # fmt: skip
    nx = d.get("netx")
    if isinstance(nx, dict):
        checks.append(_check(None if nx.get("exit_status") == 2 else nx.get("exit_status") == 0,
                             "NetX: " + html.escape(str(nx.get("result", "")))))  # fmt: skip
    act = (d.get("activity") or {}).get("per_inference")
    if isinstance(act, dict):
        e = (d.get("activity") or {}).get("energy_nj_per_inference")
        parts = [f"{act.get('synops', 0):,.0f} synaptic operations", f"{act.get('spikes', 0):,.0f} spikes"]
        if isinstance(e, (int, float)):
            parts.append(f"{e:.3g} nJ (estimate)")
        items.append("<li><b>per inference</b>: " + ", ".join(parts) + "</li>")
    if not items and not checks:
        return ""
    return (f"<div class='card'><b>At a glance</b><ul>{''.join(items)}</ul>"
            + (f"<b>Checks</b><ul>{''.join(checks)}</ul>" if checks else "") + "</div>")


def _png(data: bytes, caption: str) -> str:
    cap = html.escape(caption)
    return (f"<figure><img alt='{cap}' src='data:image/png;base64,{base64.b64encode(data).decode()}'>"
            f"<figcaption>{cap}</figcaption></figure>")


def _img(path: Path, root: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    cap = html.escape(str(path.relative_to(root)))
    return f"<figure><img alt='{cap}' src='data:image/png;base64,{data}'><figcaption>{cap}</figcaption></figure>"


def _num(v: str) -> Any:
    try:
        return float(v) if any(ch in v for ch in ".e") else int(v)
    except ValueError:
        return v


MAX_FILE_BYTES = 16 * 2**20  # a file larger than this is listed, not read


def _files(root: Path, pattern: str) -> list[Path]:
    """Regular files under ``root`` matching ``pattern``: no symlinks (to files or folders), FIFOs or devices,
    nothing outside ``root``, sorted."""
    import stat

    real_root = root.resolve()
    out = []
    for p in root.rglob(pattern):
        try:
            st = p.lstat()
            if not stat.S_ISREG(st.st_mode) or any((root / q).is_symlink() for q in p.relative_to(root).parents):
                continue  # not a regular file, or reached through a symlinked folder
            if not p.resolve().is_relative_to(real_root):
                continue
        except OSError:
            continue
        out.append(p)
    return sorted(out)


def _text(p: Path) -> str | None:
    """A small text file's content (None when too large or unreadable)."""
    try:
        if p.stat().st_size > MAX_FILE_BYTES:
            return None
        return p.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return None


def _json(p: Path) -> Any:
    text = _text(p)
    try:
        return None if text is None else json.loads(text)
    except ValueError:
        return None


MAX_RASTER_NEURONS = 4096  # per layer: wider layers are drawn as their first 4,096 neurons


def sample_raster(net: Any, sample: int = 0, seed: int = 0) -> tuple[bytes | None, str]:
    """The spike raster of test sample ``sample`` of the network's own dataset (``metadata.input.dataset``,
    encoded as its metadata says, the encoder and the random streams seeded by ``seed`` and the sample's index,
    as ``quantal eval`` runs it): (PNG bytes, caption), or (None, why not)."""
    from quantal.compile.runspec import RunSpec
    from quantal.hwsim import simulate
    from quantal.pipeline import PipelineError, encoded_dataset
    from quantal.plots import raster

    meta = net.metadata.get("input") if isinstance(net.metadata, dict) else None
    data = meta.get("dataset") if isinstance(meta, dict) else None
    if not isinstance(data, str):
        return None, "no spike raster: the network's metadata names no dataset (metadata.input.dataset)"
    try:
        x, y, spec = encoded_dataset(net, data, seed=seed, limit=sample + 1)
    except (PipelineError, OSError, ValueError) as e:
        return None, f"no spike raster: {e}"
    if sample >= len(x):
        return None, f"no spike raster: the {data} test split has {len(x)} samples, not a sample {sample}"
    names = [la.name for la in net.layers]
    res = simulate(net, x[sample:sample + 1], RunSpec(steps=int(spec["run_steps"]), seed=seed, record=("spikes", "v"),
                                                      layers=tuple(names)), sample_offset=sample)  # fmt: skip
    out = net.layers[-1]
    readout = out.neuron.kind == "readout"
    # a readout is drawn as its v over time (and its final v's argmax is the prediction); other layers as spikes
    spiking = names if not readout else names[:-1]
    rows = [("input", x[sample, :, :MAX_RASTER_NEURONS])]
    rows += [(n, res[f"{n}.spikes"][0][:, :MAX_RASTER_NEURONS]) for n in spiking]
    last = (out.name, res[f"{out.name}.v"][0]) if readout else None
    what = f"label {int(y[sample])}" + (f", predicted {int(np.argmax(last[1][-1]))}" if readout else "")
    png = raster(rows, last, None, title=f"{data} test sample {sample}: {what}")
    return png, (f"spikes per layer of {data} test sample {sample} ({what}), one run with seed {seed}"
                 + (", and the readout's v" if readout else ""))  # fmt: skip


def build(root: str | Path, *, sample: int = 0, seed: int = 0) -> str:
    """The report's HTML for the folder ``root``; each network with a dataset in its metadata gets the spike
    raster of test sample ``sample`` (run with ``seed``)."""
    from quantal.compile.ir import IRError, load
    from quantal.inspect import report as inspect_report

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such run directory")
    parts = [f"<h1>quantal report: {html.escape(root.name)}</h1>"]
    shown: set[Path] = set()
    s = root / "summary.json"
    d = _json(s) if s.is_file() and not s.is_symlink() else None
    if isinstance(d, dict):
        acc = d.get("accuracy", {})
        flat = [{"stage": k, "accuracy": v if not isinstance(v, dict) else v.get("accuracy"),
                 "95% CI": "" if not isinstance(v, dict) else v.get("ci95")} for k, v in acc.items()]  # fmt: skip
        fig = root / "accuracy.png"
        side = ""
        if fig.is_file() and not fig.is_symlink() and fig.stat().st_size <= MAX_FILE_BYTES:
            side = f"<div>{_img(fig, root)}</div>"
            shown.add(fig)
        parts += ["<h2>Summary</h2>", f"<div class='row'><div>{summary_card(d)}{table(flat)}</div>{side}</div>"]
        if "activity" in d and d["activity"]:
            parts.append(table([{**d["activity"]["per_inference"],
                                 "energy_nJ": d["activity"]["energy_nj_per_inference"]}]))  # fmt: skip
            layers = d["activity"].get("layers")
            if isinstance(layers, list) and layers and all(isinstance(r, dict) and "name" in r for r in layers):
                from quantal.plots import layer_activity

                parts.append(_png(layer_activity(layers), "activity per layer: firing rate, and spikes, synaptic "
                                                          "operations and estimated energy per inference (Loihi's "
                                                          "published per-operation energies)"))
        if "drift" in d and not any((p.parent / "results.csv").is_file() for p in _files(root, "summary.csv")):
            parts.append(table(d["drift"]))  # (a sweep folder shows the same numbers with its plots below)
    for m in _files(root, "metrics.json"):
        rows = _json(m)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            parts.append(f"<p>{html.escape(str(m.relative_to(root)))}: not readable training metrics</p>")
            continue
        curve = next((c for c in (m.parent / "training_curve.png", root / "training_curve.png")
                      if c.is_file() and not c.is_symlink() and c not in shown), None)  # fmt: skip
        side = ""
        if curve is not None:
            side = f"<div>{_img(curve, root)}</div>"
            shown.add(curve)
        parts += [f"<h2>Training: {html.escape(str(m.parent.relative_to(root)) or '.')}</h2>",
                  f"<div class='row'><div>{table(rows)}</div>{side}</div>"]
    for q in _files(root, "*.qnet"):
        try:
            net_q = load(q)
            rep = inspect_report(net_q)
        except (IRError, OSError, ValueError, KeyError, TypeError) as e:
            parts.append(f"<p>{html.escape(str(q))}: {html.escape(str(e))}</p>")
            continue
        cols = ["name", "kind", "size", "n_in", "synapses", "stochastic_synapses", "weight_bits", "weight_exp",
                "current_decay", "voltage_decay", "threshold", "memory_bytes", "cores"]  # fmt: skip
        png, caption = sample_raster(net_q, sample, seed)
        side = (f"<div>{_png(png, caption)}</div>" if png is not None
                else f"<div><p><small>{html.escape(caption)}</small></p></div>")  # fmt: skip
        parts += [f"<h2>Network: {html.escape(str(q.relative_to(root)))}</h2>",
                  f"<div class='row'><div>{graph_svg(net_q)}"
                  "<p><small>boxes: the input and the layers; arrows: projections (dashed: stochastic synapses; "
                  f"a loop: recurrence)</small></p></div>{side}</div>", table(rep["layers"], cols),
                  table([rep["totals"]])]
        from quantal.plots import weight_drift_histogram

        hist = weight_drift_histogram(net_q)
        if hist is not None:
            parts.append(_png(hist, "weights: stored mantissas, and as a PCM device realises them 1 s, 1 day and "
                                    "1 year after programming (seed 0, trial 0)"))
        if rep.get("quantization"):
            qq = rep["quantization"]
            acc = {**(qq.get("accuracy") or {}), "fake_quant_equals_hwsim": qq.get("fake_quant_equals_hwsim")}
            parts += ["<p>quantisation (" + html.escape(str(qq.get("method"))) + ")</p>", table(qq["layers"]),
                      table([acc])]
            if isinstance(qq.get("layers"), list) and qq["layers"]:
                from quantal.plots import quantization_errors

                parts.append(_png(quantization_errors(qq["layers"]), "quantisation error per layer"))
    for sc in _files(root, "summary.csv"):
        text = _text(sc)
        if not (sc.parent / "results.csv").is_file() or text is None:
            continue
        rows = [{str(k): _num(str(v)) for k, v in r.items()} for r in csv.DictReader(io.StringIO(text))]
        parts += [f"<h2>Sweep: {html.escape(str(sc.parent.relative_to(root)) or '.')}</h2>", table(rows)]
        for png in [p for p in _files(sc.parent, "sweep_*.png") if p.parent == sc.parent]:
            parts.append(_img(png, root))
            shown.add(png)
    pngs = [p for p in _files(root, "*.png") if p not in shown and p.stat().st_size <= MAX_FILE_BYTES]
    if pngs:
        parts += ["<h2>Figures</h2>"] + [_img(p, root) for p in pngs]
    yamls = [(y, _text(y)) for y in _files(root, "*.yaml")]
    if yamls:
        parts.append("<h2>Configurations</h2>")
        for y, text in yamls:
            body = "(too large to show)" if text is None else text
            parts.append(f"<p>{html.escape(str(y.relative_to(root)))}</p><pre>{html.escape(body)}</pre>")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>quantal report: "
            f"{html.escape(root.name)}</title><meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}"
            f"<script>{SCRIPT}</script></body></html>")  # fmt: skip


def write(root: str | Path, out: str | Path | None = None, *, sample: int = 0, seed: int = 0) -> Path:
    """Write the report (default ``RUN_DIR/report.html``) atomically; returns its path."""
    text = build(root, sample=sample, seed=seed)
    path = Path(out) if out is not None else Path(root) / "report.html"
    return atomic_write(path, lambda f: f.write(text.encode()))
