"""train: PyTorch layers, gradient estimators and trainers for stochastic networks (see docs/train.md).

Importing this package does not import torch; its modules do.
"""
