"""Graph helpers shared by every executor: the links of a conv2d projection and its expanded matrix.

A conv2d projection is defined (docs/ir.md) as the dense projection whose matrix W[i, j] is the kernel element
linking target neuron i to source neuron j. :func:`conv2d_links` lists those links; :func:`expand` builds the
matrix of any per-element array (weights, release bytes, reliable weights, device weights) from them. The
reference executor uses the matrix (clarity); hwsim and the fake-quant model never materialise it. Numpy only.
"""

from __future__ import annotations

import numpy as np

from .ir import Conv2dSynapse, DenseSynapse, Network, Projection


def conv2d_links(syn: Conv2dSynapse, src: tuple[int, ...], dst: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Every (target i, source j, kernel element k) of a conv2d projection, int64 arrays sorted by (j, i).

    Target (co, y, x) has flat index ``(co H_out + y) W_out + x``; source (ci, y', x') likewise; kernel element
    (co, ci_g, ky, kx) is ``weight.ravel()`` index ``((co C_in/g + ci_g) kh + ky) kw + kx``. The link exists
    when ``ci = group(co) C_in/g + ci_g``, ``y' = y s_h - p_h + ky d_h`` and ``x' = x s_w - p_w + kx d_w`` lie
    inside the source (zero padding adds no links).
    """
    c_out, cin_g, kh, kw = syn.weight.shape
    _, h_in, w_in = src
    _, h_out, w_out = dst
    (sh, sw), (ph, pw), (dh, dw) = syn.stride, syn.padding, syn.dilation
    co, ci_g, ky, kx, y, x = np.meshgrid(np.arange(c_out), np.arange(cin_g), np.arange(kh), np.arange(kw),
                                         np.arange(h_out), np.arange(w_out), indexing="ij", sparse=True)  # fmt: skip
    iy = y * sh - ph + ky * dh
    ix = x * sw - pw + kx * dw
    ci = (co // (c_out // syn.groups)) * cin_g + ci_g
    shape = np.broadcast_shapes(co.shape, ci_g.shape, ky.shape, kx.shape, y.shape, x.shape)
    ok = np.broadcast_to((iy >= 0) & (iy < h_in) & (ix >= 0) & (ix < w_in), shape)
    i = np.broadcast_to((co * h_out + y) * w_out + x, shape)[ok]
    j = np.broadcast_to((ci * h_in + iy) * w_in + ix, shape)[ok]
    k = np.broadcast_to(((co * cin_g + ci_g) * kh + ky) * kw + kx, shape)[ok]
    order = np.lexsort((i, j))
    return i[order].astype(np.int64), j[order].astype(np.int64), k[order].astype(np.int64)


def expand(net: Network, p: Projection, stored: np.ndarray | None, fill: int | float = 0) -> np.ndarray | None:
    """The (target size, source size) matrix of a per-synapse array of projection ``p`` (``stored`` has the
    shape of its ``weight``): itself for a dense projection; for conv2d the kernel element of every link and
    ``fill`` elsewhere. None stays None."""
    if stored is None:
        return None
    if isinstance(p.synapse, DenseSynapse):
        return np.asarray(stored)
    src, dst = net.source_shape(p), net.layer(p.target).shape
    i, j, k = conv2d_links(p.synapse, src, dst)
    out = np.full((int(np.prod(dst)), int(np.prod(src))), fill, dtype=np.asarray(stored).dtype)
    out[i, j] = np.asarray(stored).ravel()[k]
    return out
