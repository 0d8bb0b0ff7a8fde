"""RBSE: CD-k against a plain RBM in the reliable limit, likelihood by exact enumeration, and features."""

import numpy as np
import torch

from quantal.train.rbse import RBSE


def rbm_cd_reference(W, b, c, v0, h0, vk, hk):
    """Plain-numpy RBM CD-k statistics (the p -> 1 limit of the RBSE updates)."""
    n = v0.shape[0]
    return (v0.T @ h0 - vk.T @ hk) / n, (v0 - vk).mean(0), (h0 - hk).mean(0)


def test_reliable_limit_is_the_rbm_cd_update():
    # rho = +40: p = 1 - 4e-18 (every mask is all ones), q = sigmoid(rho + W v h) = 1 to double precision.
    m = RBSE(6, 4, seed=1)
    m.rho[:] = 40.0
    m.W = torch.randn(6, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    W0, b0, c0 = m.W.clone(), m.b.clone(), m.c.clone()
    v0 = (torch.rand(50, 6, generator=torch.Generator().manual_seed(3)) < 0.5).double()
    # replay the chain with the same generator state to get (h0, vk, hk)
    state = m.gen.get_state()
    grads = m.cd_step(v0, k=1, lr=0.0)
    m.gen.set_state(state)
    ones = torch.ones(50, 6, 4, dtype=torch.float64)
    _ = m.sample_mask(50)
    h0 = m._bern(torch.sigmoid(c0 + torch.einsum("bi,bij->bj", v0, ones * W0)))
    _ = m.sample_mask(50)
    vk = m._bern(torch.sigmoid(b0 + torch.einsum("bj,bij->bi", h0, ones * W0)))
    _ = m.sample_mask(50)
    hk = m._bern(torch.sigmoid(c0 + torch.einsum("bi,bij->bj", vk, ones * W0)))
    dW, db, dc = rbm_cd_reference(W0.numpy(), b0.numpy(), c0.numpy(), v0.numpy(), h0.numpy(), vk.numpy(),
                                  hk.numpy())  # fmt: skip
    assert np.allclose(grads["W"].numpy(), dW) and np.allclose(grads["b"].numpy(), db)
    assert np.allclose(grads["c"].numpy(), dc)
    assert torch.allclose(grads["rho"], torch.zeros_like(grads["rho"]))


def test_training_raises_the_exact_likelihood_of_the_data():
    # 4 visible, 2 hidden units (2**(8 + 4 + 2) states enumerated exactly). Data: two patterns.
    data = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=torch.float64).repeat(32, 1)
    m = RBSE(4, 2, p=0.5, seed=0)
    before = m.exact_log_likelihood(data).item()
    for _ in range(600):
        m.cd_step(data, k=1, lr=0.5)
    after = m.exact_log_likelihood(data).item()
    # log P under the untrained model is ~ log(1/16) = -2.77 per sample; the optimum is log(1/2) = -0.69
    assert after > before + 1.0, (before, after)
    assert not torch.allclose(m.p, torch.full_like(m.p, 0.5))  # the release probabilities were learned


def test_features_support_a_classifier_on_digits():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    d = load_digits()
    v = torch.tensor(d.data / 16.0 > 0.4, dtype=torch.float64)
    m = RBSE(64, 64, p=0.6, seed=0)
    for epoch in range(10):
        order = torch.randperm(len(v), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(v), 64):
            m.cd_step(v[order[i:i + 64]], k=1, lr=0.2)
    feats = m.features(v).numpy()
    clf = LogisticRegression(max_iter=2000).fit(feats[:1200], d.target[:1200])
    # chance is 0.1; the learned stochastic features must support > 0.7 held-out accuracy (0.80 seen)
    assert clf.score(feats[1200:], d.target[1200:]) > 0.7
    assert not torch.allclose(m.p, torch.full_like(m.p, 0.6))  # release probabilities were learned


def test_the_strongest_synapses_become_the_most_reliable_on_digits():
    """examples/rbse_digits.py, seed 0 (docs/science.md): over 3 seeds Spearman(|W|, p) = 0.958 ± 0.002 and the
    5th-95th percentile spread of p = 0.136 ± 0.005 after 30 epochs; the bounds are 10 sd wide (float64 torch
    sums may differ between CPUs)."""
    import sys
    from argparse import Namespace
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
    from rbse_digits import train as rbse_train

    from quantal.train import data

    v = torch.tensor(data.load("digits", "train").x > 0.5, dtype=torch.float64)
    model = RBSE(v.shape[1], 64, p=0.5, seed=0)
    a = Namespace(epochs=30, lr=0.2, lr_rho=1.0)
    last = rbse_train(model, v, a.epochs, a.lr, a.lr_rho, 0, True)[-1]
    assert abs(last["spearman"] - 0.958) < 0.02
    assert abs((last["p_95"] - last["p_05"]) - 0.136) < 0.05
