"""Restricted Boltzmann Stochastic Ensemble (alshedivat-rbse): an RBM whose synapses transmit with learnable
probabilities, trained by contrastive divergence (CD-k).

Model. A synapse mask M_ij ~ Bernoulli(p_ij), p = sigmoid(rho), selects one member of the ensemble; given M
the network is an RBM with weights M * W (elementwise):

    E(v, h; M) = -v^T (M * W) h - b^T v - c^T h,      P(v, h, M) = P(M; p) exp(-E(v, h; M)) / Z(M)

Gradients (derived in docs/train.md). With log P(v) = log sum_M P(M) P(v | M), the seed's two-phase form
dlogP/dalpha = E_model[d phi/d alpha] - E_data[d phi/d alpha] becomes, after approximating every member's
partition function by a shared one (which the seed's conditioning of theta on (v, h) implies), the posterior
of each mask entry given a visible-hidden pair:

    q_ij(v, h) = P(M_ij = 1 | v, h) = sigmoid(rho_ij + W_ij v_i h_j)

and the CD-k updates, with (v0, h0) the data phase and (vk, hk) the end of a k-step Gibbs chain that draws a
fresh mask at every step:

    dW_ij   = < q_ij v_i h_j >_0 - < q_ij v_i h_j >_k
    drho_ij = < q_ij >_0 - < q_ij >_k            (= E[M_ij - p_ij | data] - E[M_ij - p_ij | model])
    db      = < v >_0 - < v >_k,      dc = < h >_0 - < h >_k

With p -> 1 (rho -> +inf) q = 1 and this is exactly the RBM's CD-k. Features for a classifier are
E[h | v] averaged over sampled masks (:meth:`RBSE.features`).
"""

from __future__ import annotations

import torch


class RBSE:
    """An RBSE with ``n_visible`` binary visible and ``n_hidden`` binary hidden units (plain tensors)."""

    def __init__(self, n_visible: int, n_hidden: int, p: float = 0.5, *, seed: int = 0,
                 dtype: torch.dtype = torch.float64) -> None:  # fmt: skip
        if not 0 < p < 1:
            raise ValueError(f"initial release probability must be in (0, 1), got {p}")
        self.gen = torch.Generator().manual_seed(seed)
        self.W = 0.01 * torch.randn(n_visible, n_hidden, generator=self.gen, dtype=dtype)
        self.b = torch.zeros(n_visible, dtype=dtype)
        self.c = torch.zeros(n_hidden, dtype=dtype)
        self.rho = torch.full((n_visible, n_hidden), float(torch.logit(torch.tensor(p))), dtype=dtype)

    @property
    def p(self) -> torch.Tensor:
        return torch.sigmoid(self.rho)

    def _bern(self, prob: torch.Tensor) -> torch.Tensor:
        return (torch.rand(prob.shape, generator=self.gen, dtype=prob.dtype) < prob).to(prob.dtype)

    def sample_mask(self, batch: int) -> torch.Tensor:
        return self._bern(self.p.expand(batch, *self.p.shape))

    def h_given_v(self, v: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.c + torch.einsum("bi,bij->bj", v, M * self.W))

    def v_given_h(self, h: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.b + torch.einsum("bj,bij->bi", h, M * self.W))

    def _stats(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = torch.sigmoid(self.rho + self.W * v[:, :, None] * h[:, None, :])  # P(M_ij = 1 | v, h)
        return (q * v[:, :, None] * h[:, None, :]).mean(0), q.mean(0)

    def cd_step(self, v0: torch.Tensor, k: int = 1, lr: float = 0.05, lr_rho: float | None = None) -> dict:
        """One CD-k update on the batch ``v0`` (batch, n_visible) of 0/1 values; returns the gradients."""
        n = v0.shape[0]
        h0 = self._bern(self.h_given_v(v0, self.sample_mask(n)))
        v, h = v0, h0
        for _ in range(k):
            v = self._bern(self.v_given_h(h, self.sample_mask(n)))
            h = self._bern(self.h_given_v(v, self.sample_mask(n)))
        w0, q0 = self._stats(v0, h0)
        wk, qk = self._stats(v, h)
        grads = {"W": w0 - wk, "rho": q0 - qk, "b": (v0 - v).mean(0), "c": (h0 - h).mean(0)}
        self.W += lr * grads["W"]
        self.rho += (lr if lr_rho is None else lr_rho) * grads["rho"]
        self.b += lr * grads["b"]
        self.c += lr * grads["c"]
        return grads

    def state_dict(self) -> dict:
        return {"W": self.W, "b": self.b, "c": self.c, "rho": self.rho, "gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.W, self.b, self.c, self.rho = (state[k].clone() for k in ("W", "b", "c", "rho"))
        self.gen.set_state(state["gen"])

    def reconstruction_error(self, v: torch.Tensor) -> float:
        """Mean squared error of E[v | h ~ P(h | v)] against v, one sampled mask per step (a CD monitor)."""
        n = v.shape[0]
        h = self._bern(self.h_given_v(v, self.sample_mask(n)))
        return float(((self.v_given_h(h, self.sample_mask(n)) - v) ** 2).mean())

    def features(self, v: torch.Tensor, n_masks: int = 8) -> torch.Tensor:
        """E[h | v], averaged over ``n_masks`` sampled ensemble members: (batch, n_hidden)."""
        return torch.stack([self.h_given_v(v, self.sample_mask(v.shape[0])) for _ in range(n_masks)]).mean(0)

    def exact_log_likelihood(self, v: torch.Tensor) -> torch.Tensor:
        """Mean log P(v) by enumerating every mask, hidden and visible state (tiny models only, for tests)."""
        nv, nh = self.W.shape
        if nv * nh + nv + nh > 20:
            raise ValueError("exact_log_likelihood enumerates 2**(nv*nh + nv + nh) states: too many")
        dt = self.W.dtype
        masks = _all_binary(nv * nh, dt).reshape(-1, nv, nh)
        hs, vs = _all_binary(nh, dt), _all_binary(nv, dt)
        p = self.p
        log_pm = (masks * torch.log(p) + (1 - masks) * torch.log1p(-p)).sum((1, 2))  # (n_masks,)
        Wm = masks * self.W  # (n_masks, nv, nh)
        # -E for every (mask, v, h): v^T Wm h + b.v + c.h
        neg_e = torch.einsum("vi,mij,hj->mvh", vs, Wm, hs) + (vs @ self.b)[None, :, None] + (hs @ self.c)[None, None]
        log_z = torch.logsumexp(neg_e.reshape(neg_e.shape[0], -1), 1)  # per mask
        log_pv_given_m = torch.logsumexp(neg_e, 2) - log_z[:, None]  # (n_masks, 2**nv)
        log_pv = torch.logsumexp(log_pm[:, None] + log_pv_given_m, 0)  # (2**nv,)
        index = (v.to(torch.int64) * (2 ** torch.arange(nv - 1, -1, -1))).sum(1)
        return log_pv[index].mean()


def _all_binary(n: int, dtype: torch.dtype) -> torch.Tensor:
    """All 2**n binary vectors of length n, row k = the bits of k (most significant first)."""
    k = torch.arange(2**n)
    return ((k[:, None] >> torch.arange(n - 1, -1, -1)) & 1).to(dtype)
