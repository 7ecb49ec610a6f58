"""Starting solutions for the branch-and-bound: feasible masks, each refit exactly.

The masks come from the heuristics of :mod:`solvers.heuristics` (one implementation of each),
run on the problem without damping:

* **magnitude**: keep the ``k`` largest ``|w0_i|`` (the ``N`` largest per group), never a dead
  input (:func:`solvers.heuristics.magnitude.magnitude_masks` with ``alive``);
* **greedy OBS** (Hassibi & Stork 1993; Frantar & Alistarh 2022): repeatedly remove the input of
  least saliency ``w_j² / (H_KK^-1)_jj`` with the exact rank-one update
  (:func:`solvers.heuristics.obs.obs_greedy`);
* **SparseGPT** (Frantar & Alistarh 2023): the mask by ``w_j² / [chol(H^-1)]_jj²``, each pruned
  weight's error fed forward through the upper Cholesky factor of ``H^-1``; one block for the
  whole row (so an unstructured mask is chosen at once), each N:M group chosen when the sweep
  reaches it (:func:`solvers.heuristics.sparsegpt.sparsegpt`);

and, what only the search needs, a **swap local search** from the best of them: best-improvement
exchanges of one kept and one pruned input (within a group for N:M) with exact updates, until no
exchange lowers the error (compiled: :func:`solvers.prune.kernels.swap_search`).

The best is the incumbent. Every mask is refit exactly (:func:`~solvers.prune.refit.refit`,
boxed when the problem is), so the numbers compare like with like; dead inputs (``alive``
false) are dropped from every mask (keeping one only spends budget).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..heuristics.magnitude import magnitude_masks
from ..heuristics.obs import obs_greedy
from ..heuristics.sparsegpt import sparsegpt
from ..problem import PruneProblem
from . import kernels
from .refit import PIVOT_RTOL, refit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Incumbent:
    """A feasible mask with its refit weights, error and the heuristic that found it.

    ``lower`` is a lower bound on the least error *with this mask* (the Frank–Wolfe bound of a
    boxed refit; ``value`` itself unboxed), not a bound on the problem.
    """

    mask: np.ndarray
    weights: np.ndarray
    value: float
    lower: float
    source: str


def groups(problem: PruneProblem) -> tuple[int, int]:
    """``(N, M)``: the uniform group form of the constraint (unstructured: one group)."""
    if problem.nm is not None:
        return problem.nm
    return problem.k, problem.n


def magnitude_mask(problem: PruneProblem, alive: np.ndarray) -> np.ndarray:
    """The ``k`` largest ``|w0_i|`` among the ``alive`` inputs (``N`` per group for N:M).

    Examples
    --------
    >>> import numpy as np
    >>> p = PruneProblem(np.diag([1.0, 0.0, 1.0, 1.0]), np.array([0.1, -0.9, 0.5, 0.2]), k=2)
    >>> magnitude_mask(p, np.diag(p.H) > 0).tolist()
    [False, False, True, True]
    """
    return magnitude_masks(problem.w0, problem.k, problem.nm, alive=alive)[0]


def obs_mask(problem: PruneProblem, alive: np.ndarray) -> np.ndarray:
    """Greedy OBS's mask on the undamped ``H``, dead inputs dropped (the caller refits)."""
    return obs_greedy(problem, refit=False, damp=0.0).mask & alive


def sparsegpt_mask(problem: PruneProblem, alive: np.ndarray) -> np.ndarray:
    """SparseGPT's mask on the undamped ``H``, one block per row, dead inputs dropped."""
    return sparsegpt(problem, block_size=problem.n, damp=0.0).mask & alive


def swap_improve(problem: PruneProblem, mask: np.ndarray, alive: np.ndarray,
                 max_sweeps: int = 50) -> np.ndarray:
    """1-swap local search from ``mask`` (unchanged when a kept block is singular)."""
    N, M = groups(problem)
    keep, _, ok = kernels.swap_search(problem.H, problem.w0, mask.copy(), N, M, alive,
                                      PIVOT_RTOL, max_sweeps)
    return keep if ok else mask


def find_incumbents(problem: PruneProblem, alive: np.ndarray, *, swaps: bool = True,
                    masks: dict[str, np.ndarray] | None = None) -> list[Incumbent]:
    """All heuristics' refit solutions, best first (``alive``: the inputs with ``H_jj > 0``).

    ``masks``: the heuristics' masks by name (``magnitude``, ``obs``, ``sparsegpt``), already
    computed (for many rows of one ``H`` at once: :mod:`solvers.prune.batch`); those given are
    used as they are, the others computed here.

    Examples
    --------
    >>> import numpy as np
    >>> H = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]])
    >>> p = PruneProblem(H, np.array([1.0, 1.1, 0.8]), k=2)
    >>> for c in find_incumbents(p, np.diag(H) > 0):
    ...     print(c.source, c.mask.tolist(), round(c.value, 12))
    obs [False, True, True] 0.19
    sparsegpt [False, True, True] 0.19
    magnitude [True, True, False] 0.64
    """
    found: list[Incumbent] = []
    for name, fn in (("magnitude", magnitude_mask), ("obs", obs_mask),
                     ("sparsegpt", sparsegpt_mask)):
        m = masks[name] if masks is not None and name in masks else fn(problem, alive)
        w, v, lo = refit(problem, m)
        found.append(Incumbent(m, w, v, lo, name))
    found.sort(key=lambda c: c.value)
    if swaps and found:
        best = found[0]
        m = swap_improve(problem, best.mask, alive)
        if not np.array_equal(m, best.mask):
            w, v, lo = refit(problem, m)
            found.append(Incumbent(m, w, v, lo, f"swap({best.source})"))
            found.sort(key=lambda c: c.value)
    for c in found:
        log.debug("incumbent %-16s error %.9g", c.source, c.value)
    return found
