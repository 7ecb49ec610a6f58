"""pqbound's user-facing room: the ``pqbound`` CLI and the Python API that join ``layers`` (torch)
and ``solvers`` (pure numpy math): export, per-layer comparisons, the results store, reports and
the distribution study. Imports run one way: ``bounds → solvers`` and ``bounds → layers``.
"""
