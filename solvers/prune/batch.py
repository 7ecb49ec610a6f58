"""Exact pruning of many rows that share one ``H``: :func:`solve_exact_many`.

The paper's problems come in families: every output channel of one input chunk of a layer
sees the same ``H = XᵀX`` (only ``w0`` differs), at each density. What depends on ``H`` alone
is computed once per family and reused for every row (:class:`SharedHessian`):

* the live inputs (``H_jj > 0``) and the floating-point margin of the bounds
  (:func:`~solvers.prune.bounds.margin_for`: an eigendecomposition);
* the diagonal splits ``H ⪰ diag(d)`` that do not depend on ``w0`` (``jacobi``, ``logdet``,
  ``eig``, ``none``; the ``sdp`` split does, and is computed per row);
* the starting masks of greedy OBS and SparseGPT, computed for all rows at once by the layer
  versions of the heuristics (one factorisation of ``H`` instead of one per row), and the
  magnitude masks.

Each row is then solved by :func:`solvers.prune.exact.solve_exact` with these shared pieces:
its own incumbents' refits, swap search, branch-and-bound, refit and status, limits per row.
Each result means exactly what a single solve's does (``weights``, ``objective``,
``lower_bound ≤`` optimum, ``status``); a mask tie among the heuristics may be broken the other
way (the layer heuristics sum in another order), so the incumbent, and an unproved row's
solution, may differ; a proved optimum's objective agrees to the optimality tolerance.

A family whose ``H`` the solver would rescale (entries beyond ``2^±200``,
:func:`~solvers.problem.hessian_exponent`) is solved row by row.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..heuristics.magnitude import magnitude_masks
from ..heuristics.obs import obs_layer
from ..heuristics.sparsegpt import sparsegpt_layer
from ..problem import PruneProblem, hessian_exponent
from ..result import SolveResult
from . import exact
from .bounds import diagonal_split, margin_for
from .exact import solve_exact

#: nodes of ``diagonal="auto"``'s first phase (``logdet`` split, no perspective) in a family
AUTO_SWITCH_NODES = 20_000
#: the least family that starts on the ``logdet`` split: it costs about 14 ms (a Newton method,
#: one Cholesky per step, at n = 32), which a family of 2 does not earn back (measured: a
#: 2-channel sample of the study no faster than single solves), a family of 32 does
LOGDET_MIN_ROWS = 8

#: ``box_screen`` in a family: after this many screened rows, a family keeps screening only
#: while at least half of its screens answered (a box active on most rows makes the unboxed
#: relaxation's search wasted work)
SCREEN_PROBATION = 8

#: diagonal splits that depend on ``H`` (and the live inputs) alone
H_ONLY_SPLITS = ("jacobi", "logdet", "eig", "none")


class SharedHessian:
    """What the exact pruning solves of one ``H`` share.

    ``auto_first``: the split of ``diagonal="auto"``'s first phase (no perspective bound).
    Alone, a solve starts with the Jacobi split (one eigenvalue problem); for a family the
    ``logdet`` split (the largest-volume diagonal under ``H``, a Newton method) costs the same
    once shared, and its tighter node bounds cut the search: measured on MobileNetV2's
    classifier and ``features.17.conv.2`` chunks (paper protocol, boxed, k = 4…16), 1.1–2.5×
    less CPU per problem with the perspective bound off (families of at least
    :data:`LOGDET_MIN_ROWS` rows; smaller ones start as a single solve does); and the first
    phase runs longer
    (:data:`AUTO_SWITCH_NODES`: 20,000 nodes, not 4,000): on the classifier's chunk 5 at
    k = 8, 26.6 ms per problem against 86 ms switching at 4,000 (most rows need 4,000–8,000
    nodes, which the perspective phase makes ~10× dearer each).

    ``rows`` (``(C, n)`` ``w0``) with budget ``k`` or ``nm``: the heuristics' masks are
    computed for those rows at once; :meth:`masks` hands a problem the masks of its row
    (matched by its ``w0``; ``None`` for a ``w0`` or budget not among them).
    """

    def __init__(self, H: np.ndarray, rows: np.ndarray | None = None, k: int | None = None,
                 nm: tuple[int, int] | None = None) -> None:
        self.H = np.ascontiguousarray(H, dtype=np.float64)
        self.alive = np.diag(self.H) > 0.0
        self.rows = 0 if rows is None else len(rows)  # recorded in each solve's info
        self.auto_first = (("logdet", AUTO_SWITCH_NODES) if self.rows >= LOGDET_MIN_ROWS
                           else ("jacobi", exact.AUTO_SWITCH_NODES))
        self.margin = margin_for(self.H, self.alive)
        self._splits: dict[str, np.ndarray] = {}
        self._masks: dict[bytes, dict[str, np.ndarray]] = {}
        self._budget = (k, None if nm is None else tuple(nm))  # the rows' (k, nm)
        self._screens = [0, 0]  # box screens tried, answered (the relaxation's optimum inside)
        if rows is not None and len(rows):
            self._heuristic_masks(np.asarray(rows, dtype=np.float64), k, nm)

    def _heuristic_masks(self, W0: np.ndarray, k: int | None, nm) -> None:
        """Magnitude, greedy OBS and SparseGPT masks of every row (undamped ``H``, one block
        per row; dead inputs dropped), as :func:`solvers.prune.incumbents.find_incumbents`
        computes them one row at a time."""
        H, n = self.H, self.H.shape[0]
        kk = W0.shape[1] // nm[1] * nm[0] if nm is not None else k
        mag = magnitude_masks(W0, kk, nm, alive=self.alive)
        obs = obs_layer(H, W0, kk, nm=nm, refit=False, damp=0.0).masks & self.alive
        sgpt = sparsegpt_layer(H, W0, kk, nm=nm, block_size=n, damp=0.0,
                               refit=False).masks & self.alive
        for i, w in enumerate(W0):
            self._masks[w.tobytes()] = {"magnitude": mag[i], "obs": obs[i],
                                        "sparsegpt": sgpt[i]}

    def screen_worthwhile(self) -> bool:
        """Whether the next boxed row should be screened by its unboxed relaxation
        (:func:`solvers.prune.exact.solve_exact`'s ``box_screen``): always for the first
        :data:`SCREEN_PROBATION` rows, then while at least half of the screens answered."""
        tried, answered = self._screens
        return tried < SCREEN_PROBATION or 2 * answered >= tried

    def screened(self, answered: bool) -> None:
        """Record one screen's outcome."""
        self._screens[0] += 1
        self._screens[1] += bool(answered)

    def masks(self, problem: PruneProblem) -> dict[str, np.ndarray] | None:
        """The precomputed masks of ``problem``'s row, or ``None``."""
        nm = None if problem.nm is None else tuple(problem.nm)
        if (problem.k, nm) != self._budget:
            return None
        found = self._masks.get(np.ascontiguousarray(problem.w0, dtype=np.float64).tobytes())
        return None if found is None else {k: v.copy() for k, v in found.items()}

    def split(self, H: np.ndarray, w0: np.ndarray, alive: np.ndarray, need: int,
              method: str = "jacobi") -> np.ndarray:
        """:func:`~solvers.prune.bounds.diagonal_split`, memoised for the ``H``-only
        methods (a copy each time: the search may not change it, but no caller shares it)."""
        if method not in H_ONLY_SPLITS or H is not self.H and not np.array_equal(H, self.H):
            return diagonal_split(H, w0, alive, need, method)
        if method not in self._splits:
            self._splits[method] = diagonal_split(self.H, w0, self.alive, need, method)
        return self._splits[method].copy()


def shared_hessian(H: np.ndarray, rows: np.ndarray, k: int | None = None,
                   nm: tuple[int, int] | None = None) -> SharedHessian | None:
    """The :class:`SharedHessian` of ``rows`` (``(C, n)`` ``w0`` with one budget), or ``None``
    where sharing does not apply: fewer than two rows, or an ``H`` the solver rescales
    (:func:`~solvers.problem.hessian_exponent`), whose rows are solved one by one."""
    if len(rows) < 2 or hessian_exponent(H) != 0:
        return None
    return SharedHessian(H, rows, k=k, nm=nm)


def solve_exact_many(problems: Sequence[PruneProblem], **options: Any) -> list[SolveResult]:
    """``[solve_exact(p, **options) for p in problems]``, sharing the work that depends on
    ``H`` alone among the problems with the same ``H`` (see the module docstring).

    Limits (``time_limit``, ``node_limit``) apply to each problem, as in
    :func:`~solvers.prune.exact.solve_exact`; each result's ``seconds`` is its own solve's,
    without the shared set-up (which is recorded in ``info["shared_seconds"]``, the family's
    total, on every row of the family, beside ``info["shared_rows"]``, its size).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((40, 8))
    >>> ps = [PruneProblem(X.T @ X, w, k=3) for w in rng.standard_normal((3, 8))]
    >>> rs = solve_exact_many(ps)
    >>> [r.status.value for r in rs], all(r.lower_bound <= r.objective for r in rs)
    (['optimal', 'optimal', 'optimal'], True)
    """
    out: list[SolveResult | None] = [None] * len(problems)
    for idx in _families(problems):
        first = problems[idx[0]]
        t0 = time.perf_counter()
        shared = shared_hessian(first.H, np.stack([problems[i].w0 for i in idx]),
                                k=first.k, nm=first.nm)
        setup = time.perf_counter() - t0
        for i in idx:
            r = solve_exact(problems[i], _shared=shared, **options)
            if shared is not None:
                r = r.with_(info={**r.info, "shared_seconds": setup})
            out[i] = r
    return out  # type: ignore[return-value]


def _families(problems: Sequence[PruneProblem]) -> list[list[int]]:
    """Indices grouped by equal ``H`` and budget (``k``, ``nm``), in first-seen order."""
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(problems):
        H = np.ascontiguousarray(p.H)
        key = (H.shape, p.k, p.nm, H.tobytes())
        groups.setdefault(key, []).append(i)
    return list(groups.values())


__all__ = ["SharedHessian", "shared_hessian", "solve_exact_many"]
