"""``quantal report RUN_DIR``: one self-contained HTML page with the plots, tables and configs of a run folder.

It collects what it finds under RUN_DIR: a demo or pipeline summary (``summary.json``), training metrics
(``metrics.json``), compiled networks (``*.qnet``: layers, quantisation report), sweeps (``summary.csv`` beside
``results.csv``), every PNG (embedded as data URIs) and the configurations (``*.yaml``). Nothing is fetched
from elsewhere: the page has inline CSS, inline images and one inline script that marks, after loading,
how many images decoded (``<body data-images-ok="k/n">``; the tests read it from headless Chromium).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path
from typing import Any

from quantal.compile.ir import atomic_write

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{font-size:1.6rem}h2{font-size:1.25rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem}td,th{border:1px solid #ccc;padding:.2rem .5rem}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{display:inline-block;margin:.5rem}figure img{max-width:520px}figcaption{font-size:.8rem;color:#555}
pre{background:#f7f7f7;padding:.6rem;overflow-x:auto;font-size:.8rem}
"""

SCRIPT = """window.addEventListener('load',function(){var a=Array.prototype.slice.call(document.images);
document.body.setAttribute('data-images-ok',a.filter(function(i){return i.complete&&i.naturalWidth>0}).length
+'/'+a.length);});"""


def _fmt(v: Any) -> str:
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
        f"<td class='n'>{_fmt(r.get(c))}</td>" if isinstance(r.get(c), (int, float)) else f"<td>{_fmt(r.get(c))}</td>"
        for c in cols) + "</tr>" for r in rows)  # fmt: skip
    return f"<table><tr>{head}</tr>{body}</table>"


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


def build(root: str | Path) -> str:
    """The report's HTML for the folder ``root``."""
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
        parts += ["<h2>Summary</h2>", table(flat)]
        if "activity" in d and d["activity"]:
            parts.append(table([{**d["activity"]["per_inference"],
                                 "energy_nJ": d["activity"]["energy_nj_per_inference"]}]))  # fmt: skip
        if "drift" in d:
            parts.append(table(d["drift"]))
    for m in _files(root, "metrics.json"):
        rows = _json(m)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            parts.append(f"<p>{html.escape(str(m.relative_to(root)))}: not readable training metrics</p>")
            continue
        parts += [f"<h2>Training: {html.escape(str(m.parent.relative_to(root)) or '.')}</h2>", table(rows)]
    for q in _files(root, "*.qnet"):
        try:
            rep = inspect_report(load(q))
        except (IRError, OSError, ValueError, KeyError, TypeError) as e:
            parts.append(f"<p>{html.escape(str(q))}: {html.escape(str(e))}</p>")
            continue
        cols = ["name", "kind", "size", "n_in", "synapses", "stochastic_synapses", "weight_bits", "weight_exp",
                "current_decay", "voltage_decay", "threshold", "memory_bytes", "cores"]  # fmt: skip
        parts += [f"<h2>Network: {html.escape(str(q.relative_to(root)))}</h2>", table(rep["layers"], cols),
                  table([rep["totals"]])]  # fmt: skip
        if rep.get("quantization"):
            qq = rep["quantization"]
            acc = {**(qq.get("accuracy") or {}), "fake_quant_equals_hwsim": qq.get("fake_quant_equals_hwsim")}
            parts += ["<p>quantisation (" + html.escape(str(qq.get("method"))) + ")</p>", table(qq["layers"]),
                      table([acc])]
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
            f"{html.escape(root.name)}</title><style>{CSS}</style></head><body>{''.join(parts)}"
            f"<script>{SCRIPT}</script></body></html>")  # fmt: skip


def write(root: str | Path, out: str | Path | None = None) -> Path:
    """Write the report (default ``RUN_DIR/report.html``) atomically; returns its path."""
    text = build(root)
    path = Path(out) if out is not None else Path(root) / "report.html"
    return atomic_write(path, lambda f: f.write(text.encode()))
