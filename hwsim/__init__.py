"""hwsim: the Numba simulator of IR networks (bit-exact with the reference semantics).

Numba is imported on first use, not at import time: ``from quantal.hwsim import simulate`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Simulator", "simulate"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
