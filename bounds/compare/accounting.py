"""Compression accounting: which pruning density counts as "the same size" as b-bit quantization.

The baseline is FP16 weights (16 bits each). Three rules (``--accounting``):

* ``paper`` (the paper's, mask free): density ``b/16`` (8 bits ⇔ 50 % kept, 4 ⇔ 25 %, 2 ⇔ 12.5 %).
  It favours pruning: the positions of the kept weights are not charged.
* ``bitmask``: pruning is charged one bit per weight for a bitmask, so a kept weight costs 16 bits
  and every weight 1 more: ``16·d + 1 = b`` gives density ``(b − 1)/16``.
* ``corrected``: credits quantization's natural zeros (weights that round to code 0 need not be
  stored with a sparse format), keep ratio ``(1 − z_b)·b/16``, where ``z_b`` is the fraction of
  the layer's weights whose round-to-nearest code at ``b`` bits (with the run's scale) is 0,
  computed on the whole weight tensor of the layer, not a chunk.

Densities become budgets by :func:`solvers.problem.density_to_k` (``k = round(d·n)``) per problem.
"""

from __future__ import annotations

import numpy as np

from solvers.grid import round_to_grid
from solvers.problem import ProblemError

ACCOUNTINGS = ("paper", "bitmask", "corrected")


def prune_density(bits: int, accounting: str = "paper", *, zero_fraction: float = 0.0) -> float:
    """Density of kept weights matching ``bits``-bit quantization under ``accounting``.

    Examples
    --------
    >>> prune_density(4), prune_density(4, "bitmask"), prune_density(4, "corrected",
    ...                                                              zero_fraction=0.5)
    (0.25, 0.1875, 0.125)
    """
    if accounting not in ACCOUNTINGS:
        raise ProblemError(f"unknown accounting {accounting!r}; valid: {', '.join(ACCOUNTINGS)}")
    b = int(bits)
    if accounting == "paper":
        d = b / 16.0
    elif accounting == "bitmask":
        d = (b - 1) / 16.0
    else:
        if not 0.0 <= zero_fraction <= 1.0:
            raise ProblemError(f"zero_fraction must lie in [0, 1], got {zero_fraction}")
        d = (1.0 - zero_fraction) * b / 16.0
    return float(min(max(d, 0.0), 1.0))


def zero_fraction(W: np.ndarray, scale: float | np.ndarray, bits: int) -> float:
    """Fraction of entries of ``W`` whose round-to-nearest code at ``scale``, ``bits`` is 0.

    ``scale`` is a scalar (per tensor) or one value per row of ``W`` (per channel).
    """
    W = np.atleast_2d(np.asarray(W, dtype=float))
    s = np.asarray(scale, dtype=float)
    if s.ndim == 1:
        s = s[:, None]
    codes = round_to_grid(W, s, bits)
    return float(np.mean(codes == 0)) if codes.size else 0.0
