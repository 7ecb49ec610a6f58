"""Starting solutions for the branch-and-bound: feasible masks, each refit exactly.

* **magnitude + refit**: keep the ``k`` largest ``|w0_i|`` (the ``N`` largest per group);
* **greedy OBS** (Hassibi & Stork 1993; Frantar & Alistarh 2022): repeatedly remove the input of
  least saliency ``w_j² / (H_KK^-1)_jj`` with the exact rank-one update;
* **SparseGPT-style** (Frantar & Alistarh 2023): choose the mask by ``w_j² / [chol(H^-1)]_jj²``
  and sweep the columns left to right, feeding each pruned weight's error forward through the
  upper Cholesky factor of ``H^-1``;
* **swap local search**: best-improvement exchanges of one kept and one pruned input (within a
  group for N:M) with exact updates, until no exchange lowers the error.

The best is the incumbent. Every mask is refit exactly (:func:`~solvers.prune.refit.refit`), so
the numbers compare like with like.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..problem import PruneProblem
from . import kernels
from .refit import PIVOT_RTOL, refit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Incumbent:
    """A feasible mask with its refit weights, error and the heuristic that found it."""

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


def top_per_group(score: np.ndarray, N: int, M: int, alive: np.ndarray) -> np.ndarray:
    """Keep the ``N`` highest ``score`` of each group of ``M`` (dead inputs never kept)."""
    n = score.shape[0]
    s = np.where(alive, score, -np.inf)
    mask = np.zeros(n, dtype=bool)
    for g in range(n // M):
        sl = slice(g * M, g * M + M)
        order = np.argsort(-s[sl], kind="stable")[:N]
        idx = np.arange(g * M, g * M + M)[order]
        mask[idx[np.isfinite(s[idx])]] = True
    return mask


def magnitude_mask(problem: PruneProblem, alive: np.ndarray) -> np.ndarray:
    N, M = groups(problem)
    return top_per_group(np.abs(problem.w0), N, M, alive)


def _inverse(problem: PruneProblem, alive: np.ndarray) -> np.ndarray | None:
    G = np.zeros((problem.n, problem.n))
    ok = kernels.chol_inverse(problem.H, alive, PIVOT_RTOL, G)
    return G if ok else None


def obs_mask(problem: PruneProblem, alive: np.ndarray, G: np.ndarray | None) -> np.ndarray | None:
    if G is None:
        return None
    N, M = groups(problem)
    w = np.where(alive, problem.w0, 0.0)
    # start from the refit on the alive inputs (dead inputs carry no error)
    w_alive = np.zeros(problem.n)
    kernels.refit_from_inverse(problem.H, problem.w0, alive, G, w_alive)
    del w
    return kernels.greedy_obs(G, w_alive, N, M, alive)


def sparsegpt_mask(
    problem: PruneProblem, alive: np.ndarray, G: np.ndarray | None
) -> np.ndarray | None:
    """SparseGPT-style: per block (whole row, or one N:M group) pick the mask from the
    current weights, then sweep its columns with inverse-Hessian error feedback."""
    if G is None:
        return None
    N, M = groups(problem)
    idx = np.flatnonzero(alive)
    Gs = G[np.ix_(idx, idx)]
    try:
        U = np.linalg.cholesky(Gs[::-1, ::-1])[::-1, ::-1].T  # upper factor, G = UᵀU
    except np.linalg.LinAlgError:
        return None
    w = np.zeros(problem.n)
    w[idx] = problem.w0[idx]
    Ufull = np.zeros((problem.n, problem.n))
    Ufull[np.ix_(idx, idx)] = U
    d = np.ones(problem.n)
    d[idx] = np.diag(U)
    mask = np.zeros(problem.n, dtype=bool)
    # blocks: the whole row (unstructured), one group of M (N:M); the mask of each block is
    # chosen from the weights as updated by the sweep over the previous blocks
    for g in range(problem.n // M):
        sl = slice(g * M, g * M + M)
        score = np.zeros(problem.n)
        score[sl] = w[sl] ** 2 / d[sl] ** 2
        blk = top_per_group(score, N, M, alive)
        mask[sl] = blk[sl]
        for a in range(g * M, g * M + M):
            if alive[a] and not mask[a]:
                err = w[a] / d[a]
                w[a:] -= err * Ufull[a, a:]
    return mask


def swap_improve(problem: PruneProblem, mask: np.ndarray, alive: np.ndarray,
                 max_sweeps: int = 50) -> np.ndarray:
    N, M = groups(problem)
    keep, _, ok = kernels.swap_search(problem.H, problem.w0, mask.copy(), N, M, alive,
                                      PIVOT_RTOL, max_sweeps)
    return keep if ok else mask


def find_incumbents(problem: PruneProblem, alive: np.ndarray, *, swaps: bool = True
                    ) -> list[Incumbent]:
    """All heuristics' refit solutions, best first."""
    G = _inverse(problem, alive)
    found: list[Incumbent] = []
    for name, fn in (
        ("magnitude", lambda: magnitude_mask(problem, alive)),
        ("obs", lambda: obs_mask(problem, alive, G)),
        ("sparsegpt", lambda: sparsegpt_mask(problem, alive, G)),
    ):
        m = fn()
        if m is None:
            continue
        w, v, lo = refit(problem, m)
        found.append(Incumbent(m, w, v, lo, name))
    found.sort(key=lambda c: c.value)
    if swaps and found and G is not None:
        best = found[0]
        m = swap_improve(problem, best.mask, alive)
        if not np.array_equal(m, best.mask):
            w, v, lo = refit(problem, m)
            found.append(Incumbent(m, w, v, lo, f"swap({best.source})"))
            found.sort(key=lambda c: c.value)
    for c in found:
        log.debug("incumbent %-16s error %.9g", c.source, c.value)
    return found
