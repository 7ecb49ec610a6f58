"""Whole-network runs (``pqbound network``): orchestration without torch.

:func:`~bounds.network.run.run_network` compresses every chosen layer of a model with one
method at one size, measures the network against the original on held-out data and writes
``state_dict.pt`` and ``summary.json``; :mod:`bounds.network.sweep` runs every method over a
range of sizes and writes the report. The torch side is :mod:`layers.network`.
"""

from .run import run_network
from .settings import NetworkConfig

__all__ = ["NetworkConfig", "run_network"]
