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
    when ``ci = group(co) C_in/g + ci_g`` and the positions are linked by tap (ky, kx) (:func:`conv2d_taps`:
    ``y' = y s_h - p_h + ky d_h``, likewise x, inside the source; zero padding adds no links).
    """
    q, o, t = conv2d_taps(syn, src, dst)  # the geometry; every channel pair of a group shares it
    c_out, cin_g, kh, kw = syn.weight.shape
    co = np.arange(c_out).reshape(-1, 1, 1)
    ci_g = np.arange(cin_g).reshape(1, -1, 1)
    ci = (co // (c_out // syn.groups)) * cin_g + ci_g
    shape = (c_out, cin_g, len(q))
    i = np.broadcast_to(co * (dst[1] * dst[2]) + o, shape).ravel()
    j = np.broadcast_to(ci * (src[1] * src[2]) + q, shape).ravel()
    k = np.broadcast_to((co * cin_g + ci_g) * (kh * kw) + t, shape).ravel()
    order = np.lexsort((i, j))
    return i[order].astype(np.int64), j[order].astype(np.int64), k[order].astype(np.int64)


def conv2d_taps(syn: Conv2dSynapse, src: tuple[int, ...], dst: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """The spatial part of a conv2d projection's links: every (source position q = y' W + x', target position
    o = y W_out + x, kernel tap t = ky kw + kx) with ``y' = y stride - pad + ky dil`` (likewise x) inside the
    source, int64 arrays sorted by (q, o, t). A link of the projection is such a triple with any channel pair
    (ci, co) of one group; this table holds the geometry only (at most H_out W_out kh kw entries)."""
    _, h, w = src
    _, ho, wo = dst
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = syn.kernel, syn.stride, syn.padding, syn.dilation
    oy, ox, ky, kx = np.meshgrid(np.arange(ho), np.arange(wo), np.arange(kh), np.arange(kw), indexing="ij")
    iy, ix = oy * sh - ph + ky * dh, ox * sw - pw + kx * dw
    ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    q, o, t = (iy * w + ix)[ok], (oy * wo + ox)[ok], (ky * kw + kx)[ok]
    order = np.lexsort((t, o, q))
    return q[order].astype(np.int64), o[order].astype(np.int64), t[order].astype(np.int64)


def conv2d_fans(syn: Conv2dSynapse, src: tuple[int, ...], dst: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per target neuron the number of source neurons it has links to (fan-in), and per source neuron the
    number of target neurons it reaches (fan-out), from the tap table (no (target, source) matrix)."""
    q, o, _ = conv2d_taps(syn, src, dst)
    c_in, h, w = src
    c_out, ho, wo = dst
    cin_g, cout_g = c_in // syn.groups, c_out // syn.groups
    fan_in = np.tile(np.bincount(o, minlength=ho * wo) * cin_g, c_out)  # flat index: channel-major
    fan_out = np.tile(np.bincount(q, minlength=h * w) * cout_g, c_in)
    return fan_in, fan_out


def conv2d_nonzero_fan_out(syn: Conv2dSynapse, nonzero: np.ndarray, src: tuple[int, ...],
                           dst: tuple[int, ...]) -> np.ndarray:  # fmt: skip
    """Per source neuron the number of its links whose kernel element is nonzero in ``nonzero`` (a bool array of
    the kernel's shape): the synapses a spike of that neuron touches."""
    q, _, t = conv2d_taps(syn, src, dst)
    c_in, h, w = src
    c_out, cin_g, kh, kw = nonzero.shape
    cout_g = c_out // syn.groups
    # per input channel ci and tap: the nonzero kernel elements over the output channels of ci's group
    per = nonzero.reshape(syn.groups, cout_g, cin_g, kh * kw).sum(axis=1).reshape(c_in, kh * kw)
    out = np.zeros((c_in, h * w), np.int64)
    for ci in range(c_in):
        out[ci] = np.bincount(q, weights=per[ci, t], minlength=h * w).astype(np.int64)
    return out.ravel()


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


def _check_pool(pool: int, src: tuple[int, int, int]) -> None:
    _, h, w = src
    if pool < 1 or h % pool or w % pool:
        raise ValueError(f"a sum-pool of {pool} needs a height and width divisible by it, got {h}x{w}")


def sum_pool_conv2d(syn: Conv2dSynapse, pool: int, src: tuple[int, int, int]) -> Conv2dSynapse:
    """The conv2d projection that equals ``syn`` applied to a sum-pool (window and stride ``pool``) of a source of
    shape ``src`` = [C, H, W]: one projection, the exact composition of the two linear maps.

    With ``z = y s - pad + k d`` the pooled index of tap k and ``x = pool z + dz`` (dz < pool) the unpooled one,
    ``x = y (pool s) - pool pad + (pool d k + dz)``: stride ``pool s``, padding ``pool pad``, and kernel tap k of
    the result at ``pool d k + dz`` for every dz (zeros between the taps when d > 1). H and W must be multiples
    of ``pool`` (a sum-pool drops the remainder, the composed convolution would not)."""
    _check_pool(pool, src)

    def spread(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else spread_pooled_kernel(a, pool, syn.dilation)

    stride, padding = pooled_geometry(syn.stride, syn.padding, pool)
    return Conv2dSynapse(weight=spread(syn.weight), stride=stride, padding=padding, groups=syn.groups,
                         weight_exp=syn.weight_exp, release=spread(syn.release), weight_fixed=spread(syn.weight_fixed))


def pooled_geometry(stride: tuple[int, int], padding: tuple[int, int], pool: int) -> tuple[tuple[int, int], ...]:
    """(stride, padding) of a conv after a sum-pool of ``pool``, as one conv on the unpooled map (dilation 1,
    kernel from :func:`spread_pooled_kernel`): both scale by ``pool``."""
    return (pool * stride[0], pool * stride[1]), (pool * padding[0], pool * padding[1])


def spread_pooled_kernel(a: np.ndarray, pool: int, dilation: tuple[int, int] = (1, 1)) -> np.ndarray:
    """A conv kernel (C_out, C_in/g, kh, kw) on a sum-pooled map as the kernel on the unpooled map: tap (ky, kx)
    at rows pool·dil_h·ky .. + pool and columns pool·dil_w·kx .. + pool, zeros elsewhere (any dtype: integer
    mantissas, release codes, float weights)."""
    c_out, c_in, kh, kw = a.shape
    dh, dw = dilation
    out = np.zeros((c_out, c_in, pool * dh * (kh - 1) + pool, pool * dw * (kw - 1) + pool), a.dtype)
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = pool * dh * ky, pool * dw * kx
            out[:, :, y0:y0 + pool, x0:x0 + pool] = a[:, :, ky:ky + 1, kx:kx + 1]
    return out


def spread_pooled_columns(a: np.ndarray, src: tuple[int, int, int], pool: int) -> np.ndarray:
    """Dense columns over a sum-pooled [C, H / pool, W / pool] map as columns over the unpooled [C, H, W] map:
    column (c, y, x) is column (c, y // pool, x // pool)."""
    c, h, w = src
    m = a.reshape(a.shape[0], c, h // pool, w // pool)
    return np.repeat(np.repeat(m, pool, axis=2), pool, axis=3).reshape(a.shape[0], -1)


def sum_pool_dense(syn: DenseSynapse, pool: int, src: tuple[int, int, int]) -> DenseSynapse:
    """The dense projection that equals ``syn`` (columns over the pooled [C, H / pool, W / pool] map) applied to a
    sum-pool of a [C, H, W] source: column (c, y, x) of the result is column (c, y // pool, x // pool)."""
    _check_pool(pool, src)

    def spread(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else spread_pooled_columns(a, src, pool)

    return DenseSynapse(weight=spread(syn.weight), weight_exp=syn.weight_exp, release=spread(syn.release),
                        weight_fixed=spread(syn.weight_fixed))
