"""The unbiased estimator against exact gradients by enumeration of every binary state; homeostasis."""

import itertools
import math

import torch

from quantal.train.estimators import NoisyRectifier, UnbiasedEstimator, sample_binary

# A two-unit chain: h1 ~ B(sigmoid(t1)), h2 ~ B(sigmoid(t2 + w h1)), L = (h2 - 1)^2 + c h1 + 3 (offset on
# purpose: the baseline must remove it).
T1, T2, W, C = 0.3, -0.4, 1.5, 0.7


def loss_fn(h1, h2):
    return (h2 - 1.0) ** 2 + C * h1 + 3.0


def exact_gradient():
    """d E[L] / d(t1, t2, w) by enumerating the four states with autograd on the exact expectation."""
    t = torch.tensor([T1, T2, W], dtype=torch.float64, requires_grad=True)
    expectation = 0.0
    for h1, h2 in itertools.product([0.0, 1.0], repeat=2):
        p1 = torch.sigmoid(t[0])
        p2 = torch.sigmoid(t[1] + t[2] * h1)
        prob = (p1 if h1 else 1 - p1) * (p2 if h2 else 1 - p2)
        expectation = expectation + prob * loss_fn(h1, h2)
    (g,) = torch.autograd.grad(expectation, t)
    return g


def test_unbiased_estimator_matches_exact_gradient():
    # 200 batches of 2,000 samples; the estimator's mean is compared to the exact gradient with a z-test at
    # 5 standard errors (the standard error is computed from the per-sample estimates themselves).
    gen = torch.Generator().manual_seed(0)
    est1, est2 = UnbiasedEstimator(1, momentum=0.9), UnbiasedEstimator(1, momentum=0.9)
    samples = []
    for _ in range(200):
        n = 2000
        a1 = torch.full((n, 1), T1, dtype=torch.float64)
        h1, p1 = sample_binary(a1, gen)
        a2 = T2 + W * h1
        h2, p2 = sample_binary(a2, gen)
        L = loss_fn(h1[:, 0], h2[:, 0])
        g1 = est1.estimate(h1, p1, L)[:, 0]  # dL/dt1 estimate
        g2 = est2.estimate(h2, p2, L)[:, 0]  # dL/da2; da2/dt2 = 1, da2/dw = h1
        est1.update(h1, p1, L)
        est2.update(h2, p2, L)
        samples.append(torch.stack([g1, g2, g2 * h1[:, 0]], 1))
    g = torch.cat(samples)
    mean, se = g.mean(0), g.std(0) / math.sqrt(g.shape[0])
    assert torch.all((mean - exact_gradient()).abs() < 5 * se)
    # the baseline converged to E[(h - s)^2 L] / E[(h - s)^2], which removes the +3 offset's variance
    assert 3.0 < est1.baseline.item() < 5.0


def test_baseline_reduces_variance():
    gen = torch.Generator().manual_seed(1)
    est = UnbiasedEstimator(1, momentum=0.5)
    a = torch.full((5000, 1), T1, dtype=torch.float64)
    for _ in range(20):  # warm the baseline up
        h, p = sample_binary(a, gen)
        est.update(h, p, loss_fn(h[:, 0], torch.zeros(5000, dtype=torch.float64)))
    h, p = sample_binary(a, gen)
    L = loss_fn(h[:, 0], torch.zeros(5000, dtype=torch.float64))
    plain = ((h - p) * L[:, None]).var()
    centred = est.estimate(h, p, L).var()
    assert centred < 0.2 * plain


def test_surrogate_loss_gradient_is_the_estimate():
    a = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    h, p = sample_binary(a)
    L = torch.arange(4, dtype=torch.float64)
    est = UnbiasedEstimator(3)
    expected = est.estimate(h, p, L).mean(0)
    est.surrogate_loss(a, h, p, L).backward()
    assert torch.allclose(a.grad.sum(0), expected)


def test_noisy_rectifier_homeostasis_reaches_the_target_rate():
    torch.manual_seed(0)
    layer = NoisyRectifier(5, sigma=0.5, target_rate=0.2, eta=0.05)
    drive = torch.tensor([-3.0, -1.0, 0.0, 1.0, 3.0])
    for _ in range(400):
        layer(drive.expand(256, 5))
    layer.eval()
    rate = (layer(drive.expand(20000, 5)) > 0).float().mean(0)
    assert torch.all((rate - 0.2).abs() < 0.03)
    # the gradient is ordinary back-propagation through the rectifier
    a = torch.randn(3, 5, requires_grad=True)
    layer(a).sum().backward()
    assert a.grad is not None and set(a.grad.unique().tolist()) <= {0.0, 1.0}


def test_the_optimal_baseline_by_exact_enumeration():
    """examples/binary_estimators.py's enumeration: E[g] is the exact gradient for b = 0 and b*, and b* has the
    smallest variance of any constant baseline (a grid around it)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
    from binary_estimators import baseline_variance

    r = baseline_variance()
    g = float(exact_gradient()[0])
    assert abs(r["mean_b0"] - g) < 1e-12 and abs(r["mean_bopt"] - g) < 1e-12
    assert r["var_bopt"] < r["var_b0"] / 10  # the +3 offset's variance is gone
    s1 = 1 / (1 + math.exp(-T1))
    states = [(h1, h2) for h1 in (0.0, 1.0) for h2 in (0.0, 1.0)]

    def prob(h1: float, h2: float) -> float:
        p2 = 1 / (1 + math.exp(-(T2 + W * h1)))
        return (s1 if h1 else 1 - s1) * (p2 if h2 else 1 - p2)

    def var(b: float) -> float:
        pr = [prob(h1, h2) for h1, h2 in states]
        gs = [(h1 - s1) * (loss_fn(h1, h2) - b) for h1, h2 in states]
        m = sum(p * x for p, x in zip(pr, gs))
        return sum(p * x * x for p, x in zip(pr, gs)) - m * m

    assert abs(var(r["b_opt"]) - r["var_bopt"]) < 1e-12
    assert all(var(r["b_opt"] + d) > r["var_bopt"] for d in (-1.0, -0.1, -0.01, 0.01, 0.1, 1.0))
