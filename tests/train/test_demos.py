"""gygax-zenke 4.1 and 4.2 on the minimal network: hand-derived signs and closed-loop integrals."""

import math
import subprocess
import sys
from pathlib import Path

import torch

from quantal.train import demos


def sig_prime(z: float) -> float:
    s = 1 / (1 + math.exp(-z))
    return s * (1 - s)


def test_surrogate_sign_is_opposite_at_w_zero_by_hand():
    # dy/dw = sigma'(.) beta_1 [v1 beta_1 sigma'(beta_1 (w - 0.05)) + v2 beta_2 sigma'(beta_2 (w - 0.1))] x.
    # At w = 0 the bracket is 100 sigma'(-5) - 25 sigma'(-2.5) = 0.665 - 1.752 < 0, while the SD's bracket
    # beta_sg [sigma'(-0.05 beta_sg) - sigma'(-0.1 beta_sg)] > 0 for every beta_sg (nearer the bump's centre).
    bracket_true = 100 * sig_prime(-5.0) - 25 * sig_prime(-2.5)
    assert bracket_true < 0
    w = torch.tensor([0.0], dtype=torch.float64)
    assert demos.derivative_dw(w, surrogate=False).item() < 0
    for b in (2.0, 10.0, 25.0, 100.0):
        assert b * (sig_prime(-0.05 * b) - sig_prime(-0.1 * b)) > 0
        assert demos.derivative_dw(w, surrogate=True, p={"beta_sg": b}).item() > 0


def test_surrogate_equals_true_derivative_when_steepnesses_match():
    # with beta_1 = beta_2 = beta_sg the SD is the true derivative
    w = torch.linspace(-0.1, 0.25, 101, dtype=torch.float64)
    p = {"beta1": 30.0, "beta2": 30.0, "beta_sg": 30.0}
    assert torch.allclose(demos.derivative_dw(w, surrogate=True, p=p), demos.derivative_dw(w, surrogate=False, p=p))


def test_closed_loop_integral_is_zero_only_for_the_true_gradient():
    true = [demos.closed_loop_integral(surrogate=False, n=n) for n in (500, 4000)]
    assert all(abs(v) < 1e-12 for v in true)
    for b in (5.0, 10.0, 25.0):
        coarse = demos.closed_loop_integral(surrogate=True, n=500, beta_sg=b)
        fine = demos.closed_loop_integral(surrogate=True, n=16000, beta_sg=b)
        assert abs(fine) > 1e-3  # not conservative
        assert abs(coarse - fine) < 1e-9  # and not a quadrature error


def test_example_writes_its_plot(tmp_path):
    script = Path(__file__).parents[2] / "examples" / "surrogate_gradients.py"
    r = subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "4.1 sign concordance" in r.stdout and "4.2 closed-loop" in r.stdout
    assert (tmp_path / "sign_concordance.png").stat().st_size > 10_000
    assert (tmp_path / "closed_loop.png").stat().st_size > 10_000
