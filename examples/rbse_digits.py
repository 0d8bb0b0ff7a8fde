"""RBSE on digits: how release probabilities follow synaptic strength during training, and few-shot learning on
RBSE features against an RBM's and raw pixels (Al-Shedivat, Neftci and Cauwenberghs).

    python examples/rbse_digits.py [--seeds 3] [--epochs 30] [--hidden 64] [--lr 0.2] [--lr-rho 1.0]
                                   [--out runs/rbse]

Per seed, an RBSE (binarised 8x8 digits, 64 visible and ``--hidden`` hidden units, initial release p = 0.5,
CD-1, batch 64) and an RBM (the same code with reliable synapses, p = 1 - 1e-6 and no update of p, which is
exactly the RBM's CD-1) are trained without labels. After each RBSE epoch the script records the Pearson and
Spearman correlations between |W_ij| and p_ij over all synapses, and how far p has spread (its standard deviation
and 5th/95th percentiles). Few-shot: a logistic regression is fitted on K labelled training images per class
(K = 1, 5, 10; 20 random draws of the K-shot set) using RBSE features (E[h | v] averaged over 8 sampled masks),
RBM features (E[h | v]) or the binarised pixels the models see, and scored on the test split. Prints mean ± sd
over seeds (each seed's value is the mean over its draws), writes ``<out>/rbse_digits.json`` and
``<out>/rbse_digits.png``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from quantal.plots import _figure, _save
from quantal.train import data
from quantal.train.rbse import RBSE

SHOTS = (1, 5, 10)
DRAWS = 20


def train(model: RBSE, v: torch.Tensor, epochs: int, lr: float, lr_rho: float, seed: int, track: bool) -> list[dict]:
    """CD-1 epochs; with ``track``, the |W|-p relation after each."""
    rows = []
    for epoch in range(epochs):
        order = torch.randperm(len(v), generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        for i in range(0, len(order), 64):
            model.cd_step(v[order[i : i + 64]], k=1, lr=lr, lr_rho=lr_rho)
        if track:
            w, p = model.W.abs().flatten().numpy(), model.p.flatten().numpy()
            rows.append({"epoch": epoch + 1, "pearson": float(stats.pearsonr(w, p)[0]),
                         "spearman": float(stats.spearmanr(w, p)[0]), "p_sd": float(p.std()),
                         "p_05": float(np.quantile(p, 0.05)), "p_95": float(np.quantile(p, 0.95))})  # fmt: skip
    return rows


def few_shot(f_train: np.ndarray, y_train: np.ndarray, f_test: np.ndarray, y_test: np.ndarray, k: int,
             seed: int) -> float:  # fmt: skip
    """Mean test accuracy of a logistic regression on k training samples per class, over DRAWS draws."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    accs = []
    for _ in range(DRAWS):
        pick = np.concatenate([rng.choice(np.flatnonzero(y_train == c), k, replace=False) for c in range(10)])
        clf = LogisticRegression(max_iter=5000).fit(f_train[pick], y_train[pick])
        accs.append(clf.score(f_test, y_test))
    return float(np.mean(accs))


def run(seed: int, a: argparse.Namespace, tr: data.Dataset, te: data.Dataset) -> dict:
    v_tr = torch.tensor(tr.x > 0.5, dtype=torch.float64)
    v_te = torch.tensor(te.x > 0.5, dtype=torch.float64)
    rbse = RBSE(v_tr.shape[1], a.hidden, p=0.5, seed=seed)
    track = train(rbse, v_tr, a.epochs, a.lr, a.lr_rho, seed, True)
    rbm = RBSE(v_tr.shape[1], a.hidden, p=1 - 1e-6, seed=seed)
    train(rbm, v_tr, a.epochs, a.lr, 0.0, seed, False)
    feats = {"RBSE": (rbse.features(v_tr).numpy(), rbse.features(v_te).numpy()),
             "RBM": (rbm.features(v_tr).numpy(), rbm.features(v_te).numpy()),
             "binarised pixels": (v_tr.numpy(), v_te.numpy())}  # what the RBSE and the RBM see
    shots = {name: {k: few_shot(f[0], tr.y, f[1], te.y, k, 1000 * seed + k) for k in SHOTS}
             for name, f in feats.items()}  # fmt: skip
    return {"track": track, "shots": shots, "p_max": float(rbse.p.max()), "W": rbse.W.abs().flatten().tolist()[:4096],
            "p": rbse.p.flatten().tolist()[:4096]}  # fmt: skip


def _ms(v: list[float], scale: float = 100.0, unit: str = "%", digits: int = 1) -> str:
    sd = f" ± {scale * statistics.stdev(v):.{digits}f}" if len(v) > 1 else ""
    return f"{scale * statistics.fmean(v):.{digits}f}{sd}{unit}"


def plot(results: list[dict], path: Path) -> None:
    fig, ax = _figure(1, 3, figsize=(13.5, 3.8))
    r0 = results[0]
    ax[0].scatter(r0["W"], r0["p"], s=3, alpha=0.4)
    ax[0].set_xlabel("|W_ij|")
    ax[0].set_ylabel("release probability p_ij")
    ax[0].set_title(f"after training (seed 0): Spearman {r0['track'][-1]['spearman']:+.2f}")
    for r in results:
        ep = [t["epoch"] for t in r["track"]]
        ax[1].plot(ep, [t["spearman"] for t in r["track"]], color="C0", alpha=0.7)
        ax[1].plot(ep, [t["p_95"] - t["p_05"] for t in r["track"]], color="C1", alpha=0.7)
    ax[1].plot([], [], color="C0", label="Spearman(|W|, p)")
    ax[1].plot([], [], color="C1", label="p: 95th - 5th percentile")
    ax[1].set_xlabel("epoch")
    ax[1].set_title("over training (one line per seed)")
    ax[1].legend()
    for c, name in enumerate(results[0]["shots"]):
        acc = np.array([[r["shots"][name][k] for k in SHOTS] for r in results]) * 100
        ax[2].errorbar(SHOTS, acc.mean(0), yerr=acc.std(0, ddof=1) if len(acc) > 1 else None, label=name,
                       marker="o", capsize=3, color=f"C{c}")  # fmt: skip
    ax[2].set_xlabel("labelled samples per class")
    ax[2].set_ylabel("test accuracy (%)")
    ax[2].set_title("few-shot logistic regression (± sd, seeds)")
    ax[2].legend()
    fig.tight_layout()
    _save(fig, path)  # written atomically


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.2)
    ap.add_argument("--lr-rho", type=float, default=1.0, help="learning rate of the release logits")
    ap.add_argument("--out", type=Path, default=Path("runs/rbse"))
    a = ap.parse_args(argv)
    if a.seeds < 1 or a.epochs < 1 or a.hidden < 1 or a.lr <= 0 or a.lr_rho < 0:
        print("rbse_digits: seeds, epochs, hidden >= 1, lr > 0 and lr-rho >= 0", file=sys.stderr)
        return 2
    tr, te = data.load("digits", "train"), data.load("digits", "test")
    results = []
    for s in range(a.seeds):
        results.append(run(s, a, tr, te))
        print(f"seed {s} done", file=sys.stderr, flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    tmp = a.out / "rbse_digits.json.tmp"
    tmp.write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()}, "results": results}))
    tmp.replace(a.out / "rbse_digits.json")
    plot(results, a.out / "rbse_digits.png")
    last = [r["track"][-1] for r in results]
    print(f"RBSE on binarised digits, {a.hidden} hidden, {a.epochs} epochs of CD-1, {a.seeds} seeds (mean ± sd over "
          f"seeds)")  # fmt: skip
    print(f"|W|-p correlation after training: Pearson {_ms([t['pearson'] for t in last], 1, '', 3)}, "
          f"Spearman {_ms([t['spearman'] for t in last], 1, '', 3)}; p spread (95th - 5th percentile) "
          f"{_ms([t['p_95'] - t['p_05'] for t in last], 1, '', 3)}, "
          f"sd {_ms([t['p_sd'] for t in last], 1, '', 3)}")  # fmt: skip
    first = [r["track"][0] for r in results]
    print(f"over training: Spearman at least {min(t['spearman'] for r in results for t in r['track']):.3f} after "
          f"every epoch of every seed; p spread after epoch 1 {_ms([t['p_95'] - t['p_05'] for t in first], 1, '', 3)}; "
          f"largest p after training {min(r['p_max'] for r in results):.2f}-{max(r['p_max'] for r in results):.2f} "
          f"over seeds")  # fmt: skip
    for k in SHOTS:
        row = ", ".join(f"{name} {_ms([r['shots'][name][k] for r in results])}" for name in results[0]["shots"])
        print(f"{k}-shot test accuracy (mean of {DRAWS} draws): {row}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
