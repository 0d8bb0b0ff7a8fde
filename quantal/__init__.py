"""quantal: stochastic neural networks from PyTorch training to neuromorphic hardware.

The pipeline lives in sub-packages installed from the repository's root folders::

    quantal.train    (train/)    PyTorch layers and trainers for stochastic networks
    quantal.compile  (compile/)  the fixed-point IR (.qnet), its reference semantics, lowering
    quantal.hwsim    (hwsim/)    the Numba simulator of noisy, quantized devices
    quantal.targets  (targets/)  exporters: Lava, NetX HDF5, NIR

Importing quantal is cheap: no torch, no numba compilation.
"""

__version__ = "0.1.0"
