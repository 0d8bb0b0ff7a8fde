"""Random streams v1 in PyTorch, bit for bit the draws of :mod:`quantal.compile.streams`.

torch has no unsigned 64-bit shifts, so the uint64 words live in int64 tensors holding the same bits:
multiplication and addition wrap modulo 2**64 in two's complement exactly as uint64 arithmetic does, and a
logical right shift is an arithmetic shift followed by a mask that clears the copied sign bits.
"""

from __future__ import annotations

import torch

from quantal.compile.streams import M1, M2, STREAM_ESCAPE, STREAM_RELEASE, G


def _s64(x: int) -> int:
    """The int64 value with the same 64 bits as the unsigned integer ``x mod 2**64``."""
    x &= (1 << 64) - 1
    return x - (1 << 64) if x >= 1 << 63 else x


_G, _M1, _M2 = _s64(G), _s64(M1), _s64(M2)


def _srl(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of the uint64 bits held in int64: arithmetic shift, then clear the top k bits."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def mix(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser on int64 tensors holding uint64 bits (products wrap modulo 2**64)."""
    z = z ^ _srl(z, 30)
    z = z * _M1  # wraps modulo 2**64
    z = z ^ _srl(z, 27)
    z = z * _M2  # wraps modulo 2**64
    return z ^ _srl(z, 31)


def key(h: torch.Tensor | None, *xs: torch.Tensor | int) -> torch.Tensor:
    """Continue ``key(...)`` from the partial hash ``h`` (None = start) with the arguments ``xs``."""
    out = torch.zeros((), dtype=torch.int64) if h is None else h
    for x in xs:
        x = torch.as_tensor(_s64(x) if isinstance(x, int) else x, dtype=torch.int64)
        out = mix(out ^ mix(x + _G))  # x + G wraps modulo 2**64
    return out


def word(k: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``mix(k + G * (m + 1))``: the m-th word of key k (broadcasting)."""
    return mix(k + _G * (m + 1))  # product and sum wrap modulo 2**64


def event_bytes(seed: int, trial: int, samples: torch.Tensor, step: int, layer: int, inputs: torch.Tensor,
                size: int) -> torch.Tensor:  # fmt: skip
    """Stream-1 bytes for spike events: event e is input ``inputs[e]`` active in sample ``samples[e]`` at
    ``step``; returns int64 (E, size), entry [e, i] is compared with ``release[i, inputs[e]]``."""
    h = key(None, seed, STREAM_RELEASE, trial)
    k = key(h, samples.to(torch.int64), step, layer, inputs.to(torch.int64))  # (E,)
    n_words = (size + 7) // 8
    w = word(k[:, None], torch.arange(n_words, dtype=torch.int64)[None, :])  # (E, n_words), byte i in word i // 8
    shifts = 8 * torch.arange(8, dtype=torch.int64)
    # byte b of a word: arithmetic shift right by 8 b, then the low 8 bits (the mask drops copied sign bits)
    return ((w[:, :, None] >> shifts) & 0xFF).reshape(len(k), 8 * n_words)[:, :size]


def target_bytes(seed: int, trial: int, samples: torch.Tensor, step: int, index: int, inputs: torch.Tensor,
                 event: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Stream-1 bytes of single synapses: event e is input ``inputs[e]`` active in sample ``samples[e]`` at
    ``step`` of projection ``index``; synapse s of event ``event[s]`` reaching target ``targets[s]`` uses byte
    ``targets % 8`` of ``word(k_e, targets // 8)``. Returns int64 (S,)."""
    h = key(None, seed, STREAM_RELEASE, trial)
    k = key(h, samples.to(torch.int64), step, index, inputs.to(torch.int64))  # (E,)
    w = word(k[event], targets // 8)
    # byte b of a word: arithmetic shift right by 8 b, then the low 8 bits (the mask drops copied sign bits)
    return (w >> (8 * (targets % 8))) & 0xFF


def release_bytes(seed: int, trial: int, samples: torch.Tensor, step: int, layer: int, n_in: int,
                  size: int) -> torch.Tensor:  # fmt: skip
    """Stream-1 bytes for every input of a layer: int64 (batch, n_in, size), entry [b, j, i] is the byte that
    post-neuron i compares with ``release[i, j]`` when input j is active at ``step`` in sample ``samples[b]``."""
    b = samples.to(torch.int64).repeat_interleave(n_in)
    j = torch.arange(n_in, dtype=torch.int64).repeat(len(samples))
    return event_bytes(seed, trial, b, step, layer, j, size).reshape(len(samples), n_in, size)


def escape_uniforms(seed: int, trial: int, samples: torch.Tensor, step: int, layer: int, size: int) -> torch.Tensor:
    """Stream-2 uniforms U in [0, 65535], int64 (batch, size)."""
    h = key(None, seed, STREAM_ESCAPE, trial)
    h = key(h, samples.to(torch.int64), step, layer)  # (B,)
    n_words = (size + 3) // 4
    w = word(h[:, None], torch.arange(n_words, dtype=torch.int64)[None, :])  # lane i in word i // 4
    shifts = 16 * torch.arange(4, dtype=torch.int64)
    return ((w[:, :, None] >> shifts) & 0xFFFF).reshape(len(h), 4 * n_words)[:, :size]  # mask drops sign bits
