"""gygax-zenke 4.1 and 4.2 on the paper's minimal network: the derivative against its closed form, the sign
concordance and closed-loop integrals at the paper's parameters."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from quantal.train import demos


def closed_form_dydw(w: torch.Tensor, beta: float, beta_d: float) -> torch.Tensor:
    """dy/dw by the chain rule, with every sigma' of steepness beta_d (beta_d = beta: the true derivative;
    beta_d = beta_sg: the surrogate). sigma_b'(z) = b s (1 - s) with s = sigmoid(b z)."""
    p = demos.PARAMS

    def d(z: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(beta_d * z)
        return beta_d * s * (1 - s)

    g = torch.sigmoid(beta * w * p["x"])
    h1, h2 = torch.sigmoid(beta * p["v1"] * g), torch.sigmoid(beta * p["v2"] * g)
    z_out = p["u1"] * h1 + p["u2"] * h2
    bracket = p["u1"] * d(p["v1"] * g) * p["v1"] + p["u2"] * d(p["v2"] * g) * p["v2"]  # the two terms
    return d(z_out) * bracket * d(w * p["x"]) * p["x"]


def test_derivatives_equal_their_closed_form():
    w = torch.linspace(-0.2, 0.2, 401, dtype=torch.float64)
    true = demos.derivative_dw(w, surrogate=False)
    assert torch.allclose(true, closed_form_dydw(w, 100.0, 100.0), rtol=1e-10, atol=1e-300)
    for b in (1.0, 15.0, 30.0):
        sd = demos.derivative_dw(w, surrogate=True, p={"beta_sg": b})
        assert torch.allclose(sd, closed_form_dydw(w, 100.0, b), rtol=1e-10, atol=1e-300)


def test_the_surrogate_is_the_true_derivative_when_the_steepnesses_match():
    w = torch.linspace(-0.2, 0.2, 401, dtype=torch.float64)  # the paper's network, no parameter overridden
    assert torch.allclose(demos.derivative_dw(w, surrogate=True, p={"beta_sg": 100.0}),
                          demos.derivative_dw(w, surrogate=False), rtol=1e-12, atol=1e-300)  # fmt: skip


@pytest.mark.parametrize("beta_sg, fraction", [(15.0, 0.5329), (30.0, 0.0550), (100.0, 0.0)])
def test_sign_concordance_over_the_paper_sweep(beta_sg, fraction):
    # w over [-0.2, 0.2] on 4001 points: the fraction moves by at most ~2/4001 with the grid
    r = demos.sign_concordance(torch.linspace(-0.2, 0.2, 4001, dtype=torch.float64), beta_sg)
    assert abs(r["fraction_opposite"] - fraction) < 1e-3


def test_closed_loop_integral_is_zero_only_for_the_true_gradient():
    # forward beta = 1e4 makes y nearly binary: 2e6 quadrature points resolve it (2e5 give the same SD values to 1%)
    true = demos.closed_loop_integral(surrogate=False)
    assert abs(true) < 1e-6
    for b, want in ((1.0, -0.0425), (5.0, 0.3691), (20.0, 1.8176)):
        fine = demos.closed_loop_integral(surrogate=True, beta_sg=b)
        coarse = demos.closed_loop_integral(surrogate=True, beta_sg=b, n=200_000)
        assert abs(fine - want) < 0.01 * abs(want) and abs(coarse - fine) < 0.01 * abs(fine)


def test_example_writes_its_plots(tmp_path):
    script = Path(__file__).parents[2] / "examples" / "surrogate_gradients.py"
    r = subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "4.1 sign concordance" in r.stdout and "4.2 closed-loop" in r.stdout
    assert (tmp_path / "sign_concordance.png").stat().st_size > 10_000
    assert (tmp_path / "closed_loop.png").stat().st_size > 10_000
