"""gygax-zenke sections 4.1 and 4.2 on the minimal network of quantal.train.demos.

    python examples/surrogate_gradients.py [--out runs/surrogate]

4.1 sign concordance: sweeps the hidden weight w over [-0.2, 0.2] and shows where the surrogate derivative (SD)
    of dy/dw has the opposite sign of the true derivative, for beta_sg = 15, 30, 100 (sign_concordance.png).
4.2 closed loops: integrates the true gradient and the SD of y around a circle of radius 1.8 in a random plane
    of the five parameters: zero for the true gradient, non-zero for SDs, converged in the number of
    quadrature points (closed_loop.png).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from quantal.train import demos  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/surrogate")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    w = torch.linspace(-0.2, 0.2, 4001, dtype=torch.float64)
    steep = [15.0, 30.0, 100.0]

    fig1, ax0 = plt.subplots(figsize=(6, 4))
    fig2, ax1 = plt.subplots(figsize=(6, 4))
    true = demos.derivative_dw(w, surrogate=False)
    ax0.plot(w, true / true.abs().max(), "k", lw=2, label="true dy/dw (beta = 100)")
    print("4.1 sign concordance: share of w in [-0.2, 0.2] (4001 points) where the SD has the opposite sign")
    for b in steep:
        r = demos.sign_concordance(w, b)
        sd = r["surrogate"]
        ax0.plot(w, sd / sd.abs().max(), label=f"SD, beta_sg = {b:g}")
        opp = w[r["opposite"]]
        where = f"w in [{opp.min():.4f}, {opp.max():.4f}]" if len(opp) else "nowhere"
        print(f"  beta_sg = {b:5g}: {r['fraction_opposite']:.3f}  ({where})")
    ax0.axhline(0, color="grey", lw=0.5)
    ax0.set(xlabel="hidden weight w", ylabel="derivative (normalised)", title="4.1 sign concordance")
    ax0.legend(fontsize=7)

    print("4.2 closed-loop integrals around a circle of radius 1.8 in a random plane of (w, v1, v2, u1, u2), "
          "forward beta = 1e4")
    ns = [20_000, 200_000, 2_000_000]
    loops = {None: [demos.closed_loop_integral(surrogate=False, n=n) for n in ns]}
    for b in (1.0, 5.0, 20.0):
        loops[b] = [demos.closed_loop_integral(surrogate=True, beta_sg=b, n=n) for n in ns]
    for b, vals in loops.items():
        name = "true gradient" if b is None else f"SD, beta_sg = {b:g}"
        ax1.plot(ns, [abs(v) + 1e-12 for v in vals], "-o", label=name)
        print(f"  {name}: {vals[-1]:+.4f} (n = {ns[0]:,}: {vals[0]:+.4f}, {ns[1]:,}: {vals[1]:+.4f})")
    ax1.set(xscale="log", yscale="log", xlabel="quadrature points", ylabel="|closed-loop integral|",
            title="4.2 SDs are not gradients")  # fmt: skip
    ax1.legend(fontsize=7)
    for fig, name in ((fig1, "sign_concordance.png"), (fig2, "closed_loop.png")):
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
