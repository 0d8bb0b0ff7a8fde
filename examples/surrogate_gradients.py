"""gygax-zenke sections 4.1 and 4.2 on the minimal network of quantal.train.demos.

    python examples/surrogate_gradients.py [--out runs/surrogate]

4.1 sign concordance: sweeps the hidden weight w and shows where the surrogate derivative (SD) of dy/dw has
    the opposite sign of the true derivative, for several surrogate steepnesses (sign_concordance.png).
4.2 closed loops: integrates the true gradient and the SD of y around circles in the (w, v1) plane: zero for
    the true gradient, non-zero for SDs, at every quadrature resolution (closed_loop.png).
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
    w = torch.linspace(-0.1, 0.25, 3501, dtype=torch.float64)
    steep = [2.0, 5.0, 10.0, 25.0, 50.0]

    fig1, ax0 = plt.subplots(figsize=(6, 4))
    fig2, ax1 = plt.subplots(figsize=(6, 4))
    ax = [ax0, ax1]
    true = demos.derivative_dw(w, surrogate=False)
    ax[0].plot(w, true / true.abs().max(), "k", lw=2, label="true dy/dw")
    print("4.1 sign concordance: fraction of w in [-0.1, 0.25] where the SD has the opposite sign")
    for b in steep:
        r = demos.sign_concordance(w, b)
        sd = r["surrogate"]
        ax[0].plot(w, sd / sd.abs().max(), label=f"SD, beta_sg={b:g}")
        opp = w[r["opposite"]]
        where = f"w in [{opp.min():.4f}, {opp.max():.4f}]" if len(opp) else "nowhere"
        print(f"  beta_sg = {b:5g}: {r['fraction_opposite']:.3f}  ({where})")
    ax[0].axhline(0, color="grey", lw=0.5)
    ax[0].set(xlabel="hidden weight w", ylabel="derivative (normalised)", title="4.1 sign concordance")
    ax[0].legend(fontsize=7)

    print("4.2 closed-loop integrals around a circle (radius 0.05 about w=0.075, v1=1)")
    ns = [250, 1000, 4000, 16000]
    ax[1].plot(ns, [abs(demos.closed_loop_integral(surrogate=False, n=n)) + 1e-18 for n in ns], "k-o",
               label="true gradient")  # fmt: skip
    print(f"  true gradient: {demos.closed_loop_integral(surrogate=False):+.2e}")
    for b in steep:
        vals = [demos.closed_loop_integral(surrogate=True, n=n, beta_sg=b) for n in ns]
        ax[1].plot(ns, [abs(v) for v in vals], "-o", label=f"SD, beta_sg={b:g}")
        print(f"  SD beta_sg = {b:5g}: {vals[-1]:+.5f} (n=250: {vals[0]:+.5f})")
    ax[1].set(xscale="log", yscale="log", xlabel="quadrature points", ylabel="|closed-loop integral|",
              title="4.2 SDs are not gradients")  # fmt: skip
    ax[1].legend(fontsize=7)
    for fig, name in ((fig1, "sign_concordance.png"), (fig2, "closed_loop.png")):
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
