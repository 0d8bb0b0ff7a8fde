"""PNG figures of the pipeline: training curve, accuracy through the pipeline, spike raster (matplotlib, Agg).

Every figure is written atomically (a temporary file, then a rename).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: Okabe & Ito's colour-blind-safe palette (black last); series keep their colour across figures (see colours).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def human_time(seconds: float) -> str:
    """A duration for people: "0 s", "30 s", "5 min", "1 h", "1 day", "3.5 days", "1 year"."""
    x = float(seconds)
    for unit, size in (("year", 365 * 86400.0), ("day", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if abs(x) >= size:
            v = x / size
            text = f"{v:.3g}"
            plural = unit in ("year", "day") and text != "1"
            return f"{text} {unit}{'s' if plural else ''}"
    return f"{x:.3g} s"


def colours(labels: list[str]) -> dict[str, tuple[str, str]]:
    """A (colour, marker) per series label, in the given order: the same label gets the same style in every
    figure drawn from the same list; past 8 series the markers tell the colours' repeats apart."""
    return {lab: (PALETTE[k % len(PALETTE)], MARKERS[(k // len(PALETTE)) % len(MARKERS)])
            for k, lab in enumerate(labels)}  # fmt: skip


def _save(fig: Any, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    from quantal.compile.ir import atomic_write

    out = atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120, bbox_inches="tight"))
    plt.close(fig)
    return out


def _save_or_bytes(fig: Any, path: str | Path | None) -> Any:
    """Write the figure to ``path`` (atomically), or return its PNG bytes when ``path`` is None (for pages that
    embed their images)."""
    if path is not None:
        return _save(fig, path)
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _figure(*args: Any, **kwargs: Any) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def training_curve(rows: list[dict], path: str | Path) -> Path:
    """Train and test accuracy per epoch; fake-quant epochs shaded."""
    fig, ax = _figure(figsize=(6, 3.6))
    ep = [r["epoch"] for r in rows]
    ax.plot(ep, [r["train_acc"] for r in rows], "o-", label="train")
    ax.plot(ep, [r["test_acc"] for r in rows], "s-", label="test")
    fq = [r["epoch"] for r in rows if r.get("phase") == "fake-quant"]
    if fq:
        ax.axvspan(min(fq) - 0.5, max(fq) + 0.5, color="0.9", zorder=0, label="fake-quant (exact IR arithmetic)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_title("training")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def accuracy_bars(bars: list[tuple[str, float, tuple[float, float] | None]], path: str | Path) -> Path:
    """One point per stage (label, accuracy, optional 95% interval) on an axis zoomed to the data, so that the
    differences the pipeline is about can be seen; the first stage is drawn as a dashed reference line."""
    from matplotlib.ticker import PercentFormatter

    fig, ax = _figure(figsize=(7, 3.6))
    x = np.arange(len(bars))
    vals = np.array([b[1] for b in bars], float)
    lo = np.array([b[2][0] if b[2] else b[1] for b in bars], float)
    hi = np.array([b[2][1] if b[2] else b[1] for b in bars], float)
    for k in range(len(bars)):
        c = PALETTE[k % len(PALETTE)]
        ax.errorbar([x[k]], [vals[k]], yerr=[[vals[k] - lo[k]], [hi[k] - vals[k]]], fmt=MARKERS[0], color=c,
                    capsize=5, ms=7)  # fmt: skip
        ci = f"\n[{lo[k]:.1%}, {hi[k]:.1%}]" if bars[k][2] else ""
        ax.annotate(f"{vals[k]:.1%}{ci}", (x[k], hi[k]), textcoords="offset points", xytext=(0, 6), ha="center",
                    fontsize=8)  # fmt: skip
    if len(bars):
        ax.axhline(vals[0], color="0.5", ls="--", lw=1, zorder=0, label=f"{bars[0][0]}: {vals[0]:.1%}")
        span = max(float(hi.max() - lo.min()), 0.01)
        ax.set_ylim(max(0.0, float(lo.min()) - 0.25 * span), min(1.0, float(hi.max()) + 0.45 * span))
        ax.legend(fontsize=7, loc="lower left", frameon=False)
    ax.set_xticks(x, [b[0] for b in bars], fontsize=8)
    ax.set_xlim(-0.5, len(bars) - 0.5)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.set_ylabel("test accuracy (95% CI)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("accuracy through the pipeline (axis zoomed to the data)")
    return _save(fig, path)


def raster(layers: list[tuple[str, np.ndarray]], readout: tuple[str, np.ndarray] | None, path: str | Path | None,
           title: str = "") -> Any:  # fmt: skip
    """Spike rasters (steps, neurons) of one sample per layer, and the readout's v over time. Returns the PNG
    bytes when ``path`` is None."""
    n = len(layers) + (readout is not None)
    fig, axes = _figure(n, 1, figsize=(6, 1.6 + 1.5 * n), sharex=True)
    axes = np.atleast_1d(axes)
    for ax, (name, s) in zip(axes, layers):
        t, i = np.nonzero(s)
        ax.scatter(t, i, s=4, marker="|", color="k")
        ax.set_ylabel(f"{name}\nneuron")
        ax.set_ylim(-0.5, s.shape[1] - 0.5)
    if readout is not None:
        name, v = readout
        ax = axes[-1]
        top = float(np.abs(v).max(initial=0))
        e = int(np.floor(np.log10(top))) if top >= 1000 else 0  # the axis' multiplier, stated in its label
        win = int(np.argmax(v[-1])) if v.size else -1
        for k in range(v.shape[1]):
            ax.plot(np.arange(v.shape[0]), v[:, k] / 10.0**e, label=f"{k} (max)" if k == win else str(k),
                    lw=2.4 if k == win else 0.9, color=PALETTE[k % len(PALETTE)],
                    ls="-" if k < len(PALETTE) else "--", zorder=3 if k == win else 2)  # fmt: skip
        unit = f" x 10^{e}" if e else ""
        ax.set_ylabel(f"{name}\nv{unit}\n(IR units: 64 x\nthe synaptic input)")
        ax.legend(ncol=2, fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="output neuron",
                  title_fontsize=6, frameon=False)
    axes[-1].set_xlabel("step")
    if title:
        axes[0].set_title(title)
    return _save_or_bytes(fig, path)


def weight_drift_histogram(net: Any, path: str | Path | None = None, *, preset: str = "pcm",
                           times: tuple[float, ...] = (1.0, 86400.0, 31536000.0), max_weights: int = 2_000_000) -> Any:
    """Histograms of every projection's weights: the stored mantissas, and the weights a ``preset`` device
    realises at each of ``times`` after programming (seed 0, trial 0; drift compensation as the preset has it),
    in mantissa units. Returns the PNG bytes when ``path`` is None. Skipped (None) above ``max_weights``."""
    from quantal.hwsim.devices import from_config, synapse_arrays

    projs = [(pi, p) for pi, p in enumerate(net.projections) if p.synapse.weight.size <= max_weights]
    if not projs:
        return None
    fig, axes = _figure(1, len(projs), figsize=(min(4.2 * len(projs), 12.6), 3.0), squeeze=False)
    for ax, (pi, p) in zip(axes[0], projs):
        stored = p.synapse.weight.astype(np.float64).ravel()
        lo, hi = float(stored.min(initial=-1)), float(stored.max(initial=1))
        bins = np.linspace(lo - 0.5, hi + 0.5, 41)
        ax.hist(stored, bins=bins, histtype="stepfilled", color="0.8", label="stored mantissas")
        for k, t in enumerate(times):
            spec = from_config({"preset": preset}, time=t)
            wq = synapse_arrays(spec, p.synapse.weight, None, seed=0, trial=0, layer=pi)[0]
            ax.hist(wq.astype(np.float64).ravel() / 2**16, bins=bins, histtype="step", lw=1.4,
                    color=PALETTE[k % len(PALETTE)], label=f"{preset}, {human_time(t)}")  # fmt: skip
        ax.set_title(f"{p.name} ({p.synapse.weight.size:,} weights)", fontsize=9)
        ax.set_xlabel("weight (mantissa units)")
        ax.set_yscale("log")
    axes[0][0].set_ylabel("count")
    axes[0][-1].legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save_or_bytes(fig, path)


def layer_activity(layers: list[dict[str, Any]], path: str | Path | None = None) -> Any:
    """Per layer: the firing rate (``rate``, when the report has it), spikes, synaptic operations and the estimated
    energy (``energy_nj``, when present) per inference (bars), from an activity report (``name``, ``spikes``,
    ``synops``). Returns the PNG bytes when ``path`` is None."""
    panels = [("spikes", "spikes per inference"), ("synops", "synaptic operations per inference")]
    if all("rate" in r for r in layers):
        panels.insert(0, ("rate", "firing rate (spikes per neuron per step)"))
    if all("energy_nj" in r for r in layers):
        panels.append(("energy_nj", "estimated energy per inference (nJ)"))
    fig, axes = _figure(1, len(panels), figsize=(min(4.2 * len(panels), 14.0), 2.8))
    names = [str(r["name"]) for r in layers]
    for ax, (key, title) in zip(np.atleast_1d(axes), panels):
        vals = [float(r.get(key, 0)) for r in layers]
        bars = ax.bar(range(len(names)), vals, color=PALETTE[0])
        labels = [f"{v:.1%}" if key == "rate" else f"{v:,.0f}" if v >= 10 else f"{v:.2g}" for v in vals]
        ax.bar_label(bars, labels=labels, fontsize=7)
        if key == "rate":
            from matplotlib.ticker import PercentFormatter

            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_xticks(range(len(names)), names, fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.margins(y=0.15)
    return _save_or_bytes(fig, path)


def quantization_errors(rows: list[dict[str, Any]], path: str | Path | None = None) -> Any:
    """Per layer: the mean |weight error| of the quantisation in LSB of its mantissa, and the share of saturated
    weights, from a quantisation report. Returns the PNG bytes when ``path`` is None."""
    fig, axes = _figure(1, 2, figsize=(8.4, 2.6))
    names = [str(r.get("name")) for r in rows]
    err = [float(r.get("mean_abs_weight_error_lsb") or 0.0) for r in rows]
    sat = [float(r.get("saturated_weights") or 0) / max(float(r.get("weights") or 1), 1.0) for r in rows]
    axes[0].bar_label(axes[0].bar(range(len(names)), err, color=PALETTE[2]), fmt="%.3g", fontsize=7)
    axes[0].axhline(0.25, color="0.5", ls="--", lw=1, label="uniform rounding (0.25 LSB)")
    axes[0].set_title("mean |weight error| (LSB)", fontsize=9)
    axes[0].legend(fontsize=7, frameon=False)
    pct = [100 * v for v in sat]
    axes[1].bar_label(axes[1].bar(range(len(names)), pct, color=PALETTE[3]), fmt="%.2g", fontsize=7)
    axes[1].set_ylim(0, max(1.0, 1.2 * max(pct, default=0.0)))  # a 0-1% axis when nothing saturates
    axes[1].set_title("saturated weights (%)", fontsize=9)
    for ax in axes:
        ax.set_xticks(range(len(names)), names, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    return _save_or_bytes(fig, path)
