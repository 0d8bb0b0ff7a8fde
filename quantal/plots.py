"""PNG figures of the pipeline: training curve, accuracy through the pipeline, spike raster (matplotlib, Agg).

Every figure is written atomically (a temporary file, then a rename).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _save(fig: Any, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    from quantal.compile.ir import atomic_write

    out = atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120, bbox_inches="tight"))
    plt.close(fig)
    return out


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
    """One bar per stage (label, accuracy, optional 95% interval)."""
    fig, ax = _figure(figsize=(7, 3.6))
    x = np.arange(len(bars))
    vals = [b[1] for b in bars]
    err = np.array([[v - b[2][0], b[2][1] - v] if b[2] else [0, 0] for v, b in zip(vals, bars)]).T
    ax.bar(x, vals, yerr=err, capsize=4, color=["#7a9cc6", "#5b8a5b", "#c98b4e", "#9b7bb8", "#c65b5b"][: len(bars)])
    for xi, v in zip(x, vals):
        ax.text(xi, v / 2, f"{v:.1%}", ha="center", color="white", fontsize=9)
    ax.set_xticks(x, [b[0] for b in bars], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("test accuracy")
    ax.set_title("accuracy through the pipeline (bars: 95% CI)")
    return _save(fig, path)


def raster(layers: list[tuple[str, np.ndarray]], readout: tuple[str, np.ndarray] | None, path: str | Path,
           title: str = "") -> Path:  # fmt: skip
    """Spike rasters (steps, neurons) of one sample per layer, and the readout's v over time."""
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
        for k in range(v.shape[1]):
            ax.plot(np.arange(v.shape[0]), v[:, k], label=str(k), lw=1)
        ax.set_ylabel(f"{name}\nv")
        ax.legend(ncol=5, fontsize=6, loc="upper left")
    axes[-1].set_xlabel("step")
    if title:
        axes[0].set_title(title)
    return _save(fig, path)
