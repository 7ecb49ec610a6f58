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

and, what only the search needs, a **swap local search** from each of them: best-improvement
exchanges of one kept and one pruned input (within a group for N:M) with exact updates, until no
exchange lowers the error (compiled: :func:`solvers.prune.kernels.swap_search`). Different
starts end in different local optima (on MobileNetV2's ``features.8.conv.0.0`` the swap from
SparseGPT's mask is 10.6 % better than the one from OBS's; issue 20).

For searches that run long, :func:`pair_swap_improve` goes one step deeper: exchanges of up to
two kept inputs against up to two pruned ones (unstructured only); for searches that run
longer still, :func:`kicked_search` restarts it from random exchanges of 2–5 inputs.

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
from .refit import PIVOT_RTOL, refit, regular_cholesky

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


def pair_swap_improve(problem: PruneProblem, mask: np.ndarray, alive: np.ndarray,
                      max_sweeps: int = 100, stop=None) -> np.ndarray:
    """Best-improvement local search over exchanges of one or two kept inputs against one or
    two pruned ``alive`` ones (unstructured problems; an N:M problem gets the 1-swap search).

    The error of a kept set ``K`` is ``c − bᵀ H_KK⁻¹ b`` (``b = H w0``, ``c = w0ᵀ H w0``:
    unboxed). For each set ``O`` of one or two kept inputs taken out, with ``K0 = K − O`` and
    ``C`` its complement, the Schur complement ``S = H_CC − H_C,K0 H_K0K0⁻¹ H_K0,C`` and the
    residual correlations ``r = b_C − H_C,K0 H_K0K0⁻¹ b_K0`` give the error of adding any
    ``J ⊆ C − O`` back exactly: ``e(K0) − r_Jᵀ S_JJ⁻¹ r_J`` (a 2×2 solve for a pair). Each sweep
    takes the best exchange over all ``O`` and ``J`` of equal size; it stops when none lowers
    the error by a relative ``1e-12`` (an exchange whose ``H_K0K0`` or ``S_JJ`` is numerically
    singular is skipped). ``O(k²·n·k²)`` per sweep, so it is run only where the search is long;
    ``stop()`` (optional) is asked before each sweep and ends the search when true.
    """
    N, M = groups(problem)
    keep = mask & alive
    if M < problem.n or keep.sum() < 1 or (~keep & alive).sum() < 1:
        return swap_improve(problem, mask, alive)
    H, w0 = problem.H, problem.w0
    b = H @ w0
    c = float(w0 @ b)
    cur = _kept_error(H, b, c, keep)
    if cur is None:
        return mask
    for _ in range(max_sweeps):
        if stop is not None and stop():
            break
        K = np.flatnonzero(keep)
        free = np.flatnonzero(~keep & alive)
        best_v, best_out, best_in = cur * (1.0 - 1e-12), None, None
        outs = [(i,) for i in K] + [(K[a], K[bb]) for a in range(len(K))
                                    for bb in range(a + 1, len(K))]
        for out in outs:
            got = _best_addition(H, b, c, K, free, out)
            if got is not None and got[0] < best_v:
                best_v, best_out, best_in = got[0], out, got[1]
        if best_out is None:
            break
        trial = keep.copy()
        trial[list(best_out)] = False
        trial[list(best_in)] = True
        v = _kept_error(H, b, c, trial)
        if v is None or v >= cur * (1.0 - 1e-12):  # rounding disagreed: stop where we are
            break
        keep, cur = trial, v
    return keep


def kicked_search(problem: PruneProblem, mask: np.ndarray, alive: np.ndarray, kicks: int,
                  seed: int = 0, stop=None) -> np.ndarray:
    """Iterated local search: ``kicks`` times, exchange 2–5 random kept inputs for as many
    random pruned ``alive`` ones (seeded: deterministic) and descend with the 1-swap and the
    pair-exchange searches; the best mask found (``mask`` itself when no kick improves it).

    An escape from the pair-exchange local optima: on MobileNetV2's ``features.8.conv.0.0``
    (25 %, channel 24) 25 kicks take 153.66 to 146.82, below CPLEX's 148.44 after 60 s.
    ``stop()`` (optional) is asked before each kick. Unstructured problems only (an N:M
    problem gets :func:`pair_swap_improve`).
    """
    N, M = groups(problem)
    if M < problem.n:
        return pair_swap_improve(problem, mask, alive, stop=stop)
    H, w0 = problem.H, problem.w0
    b = H @ w0
    c = float(w0 @ b)
    best = pair_swap_improve(problem, mask, alive, stop=stop)
    best_v = _kept_error(H, b, c, best)
    if best_v is None:
        return best
    rng = np.random.default_rng(seed)
    for _ in range(kicks):
        if stop is not None and stop():
            break
        K, P = np.flatnonzero(best), np.flatnonzero(~best & alive)
        size = min(int(rng.integers(2, 6)), K.size, P.size)
        if size < 1:
            break
        trial = best.copy()
        trial[rng.choice(K, size, replace=False)] = False
        trial[rng.choice(P, size, replace=False)] = True
        trial = pair_swap_improve(problem, swap_improve(problem, trial, alive), alive,
                                  stop=stop)
        v = _kept_error(H, b, c, trial)
        if v is not None and v < best_v * (1.0 - 1e-12):
            best, best_v = trial, v
    return best


def _kept_error(H, b, c, keep):
    """Unboxed error ``c − bᵀ H_KK⁻¹ b`` of keeping ``keep`` (None when ``H_KK`` is not
    positive definite to :data:`PIVOT_RTOL`)."""
    K = np.flatnonzero(keep)
    if K.size == 0:
        return c
    L = regular_cholesky(H[np.ix_(K, K)])
    if L is None:
        return None
    y = np.linalg.solve(L, b[K])
    return float(c - y @ y)


def _best_addition(H, b, c, K, free, out):
    """The best set of ``len(out)`` inputs of ``free`` to keep instead of ``out`` (a subset of
    ``K``): ``(error, inputs)``, or None (no regular exchange)."""
    K0 = np.setdiff1d(K, out)
    if K0.size:
        L = regular_cholesky(H[np.ix_(K0, K0)])
        if L is None:
            return None
        Y = np.linalg.solve(L, np.column_stack([H[np.ix_(K0, free)], b[K0]]))
        S = H[np.ix_(free, free)] - Y[:, :-1].T @ Y[:, :-1]
        r = b[free] - Y[:, :-1].T @ Y[:, -1]
        e0 = c - float(Y[:, -1] @ Y[:, -1])
    else:
        S, r, e0 = H[np.ix_(free, free)], b[free].copy(), c
    d = np.diag(S).copy()
    hd = np.diag(H)[free]
    ok1 = d > PIVOT_RTOL * hd
    if len(out) == 1:
        gain = np.where(ok1, r * r / np.where(ok1, d, 1.0), -np.inf)
        j = int(np.argmax(gain))
        return (e0 - gain[j], (free[j],)) if np.isfinite(gain[j]) else None
    det = np.outer(d, d) - S * S
    ok = (det > PIVOT_RTOL * np.outer(hd, hd)) & np.outer(ok1, ok1)
    np.fill_diagonal(ok, False)
    num = np.outer(r * r, d) + np.outer(d, r * r) - 2.0 * S * np.outer(r, r)
    gain = np.where(ok, num / np.where(ok, det, 1.0), -np.inf)
    a, bb = np.unravel_index(int(np.argmax(gain)), gain.shape)
    if not np.isfinite(gain[a, bb]):
        return None
    return e0 - float(gain[a, bb]), (free[a], free[bb])


def find_incumbents(problem: PruneProblem, alive: np.ndarray, *, swaps: str = "all",
                    masks: dict[str, np.ndarray] | None = None) -> list[Incumbent]:
    """All heuristics' refit solutions, best first (``alive``: the inputs with ``H_jj > 0``).

    ``swaps``: the 1-swap search from each heuristic's mask (``"all"``), from the best one
    (``"best"``) or none (``"none"``).
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
    if swaps != "none":
        seen = [c.mask for c in found]
        for start in found[:1] if swaps == "best" else list(found):
            m = swap_improve(problem, start.mask, alive)
            if any(np.array_equal(m, x) for x in seen):
                continue
            seen.append(m)
            w, v, lo = refit(problem, m)
            found.append(Incumbent(m, w, v, lo, f"swap({start.source})"))
        found.sort(key=lambda c: c.value)
    for c in found:
        log.debug("incumbent %-16s error %.9g", c.source, c.value)
    return found
