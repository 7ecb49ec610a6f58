"""The paper's big-M formulation of pruning, built by every backend that solves pruning.

Kuzmin et al. (2023) solve pruning as the MIQP::

    min  (w − w0)ᵀ H (w − w0)
    s.t. −c·B·m_i <= w_i <= c·B·m_i,   m_i ∈ {0, 1},   Σ_i m_i <= k
         (N:M: Σ_{i in group g} m_i <= N for every group)

with ``B = max|w0|`` and ``c = 2``. The box ``|w_i| <= c·B`` is part of the model: its optimum
equals the unboxed optimum only when the box does not bind at an unboxed optimum. Backends build
this model from a :class:`~solvers.problem.PruneProblem`: with ``box_factor`` set they solve that
boxed problem; without, they solve the boxed variant with ``c = DEFAULT_BOX_FACTOR`` and report
it (the backend's bound is then a bound for the boxed variant only, so ``lower_bound`` is
``None`` and the bound goes to ``info["boxed_lower_bound"]``).

The quadratic is passed in factor form ``‖X(w − w0)‖²`` with ``XᵀX = H`` (eigen-decomposition,
rank-revealing), which keeps the model convex to the backend's eye even for singular ``H``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..problem import PruneProblem
from ..prune.refit import hessian_factor, refit
from ..result import SolveResult, Status
from .base import backend_result

#: The paper's box factor, used when the problem has none.
DEFAULT_BOX_FACTOR = 2.0


def boxed_variant(problem: PruneProblem, box_factor: float | None = None
                  ) -> tuple[PruneProblem, bool]:
    """``(boxed problem, defaulted)``: the problem itself when boxed, else its ``c``-boxed
    variant (``c = box_factor`` or :data:`DEFAULT_BOX_FACTOR`).

    Examples
    --------
    >>> p = PruneProblem(np.eye(2), np.array([1.0, -0.5]), k=1)
    >>> boxed, defaulted = boxed_variant(p)
    >>> boxed.box_factor, boxed.box, defaulted
    (2.0, 2.0, True)
    """
    if problem.box_factor is not None and box_factor is None:
        return problem, False
    c = DEFAULT_BOX_FACTOR if box_factor is None else float(box_factor)
    boxed = PruneProblem.unchecked(problem.H, problem.w0, k=problem.k, nm=problem.nm,
                                   box_factor=c)
    return boxed, problem.box_factor is None


def group_rows(problem: PruneProblem) -> list[tuple[list[int], int]]:
    """Cardinality rows ``(indices, limit)``: ``Σ m <= k`` and, for N:M, one row per group.

    Examples
    --------
    >>> group_rows(PruneProblem(np.eye(4), np.ones(4), nm=(1, 2)))
    [([0, 1, 2, 3], 2), ([0, 1], 1), ([2, 3], 1)]
    """
    rows = [(list(range(problem.n)), problem.k)]
    if problem.nm is not None:
        N, M = problem.nm
        rows += [(list(range(g * M, g * M + M)), N) for g in range(problem.n // M)]
    return rows


def factor_form(problem: PruneProblem) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y0)`` with ``XᵀX = H`` and ``y0 = X w0``: error = ``‖X w − y0‖²``.

    Examples
    --------
    >>> X, y0 = factor_form(PruneProblem(np.diag([4.0, 1.0]), np.array([1.0, 2.0]), k=1))
    >>> np.allclose(X.T @ X, np.diag([4.0, 1.0])), float(y0 @ y0)
    (True, 8.0)
    """
    X = hessian_factor(problem.H)
    return X, X @ problem.w0


def prune_result(
    problem: PruneProblem,
    boxed: PruneProblem,
    defaulted: bool,
    mask: np.ndarray | None,
    *,
    method: str,
    dual_bound: float | None,
    backend_status: Status,
    seconds: float,
    nodes: int = 0,
    message: str = "",
    info: dict[str, Any] | None = None,
) -> SolveResult:
    """Refit the backend's mask exactly (boxed) and build the result for ``problem``."""
    info = dict(info or {})
    info["formulation"] = f"big-M MIQP, box |w_i| <= {boxed.box_factor:g}·max|w0| = {boxed.box:.6g}"
    if mask is None:  # no solution at all: the empty mask is always feasible
        mask = np.zeros(problem.n, dtype=bool)
        message = (message + "; " if message else "") + "backend returned no solution"
    mask = boxed.check_mask(mask)
    weights, _, _ = refit(boxed, mask)
    if defaulted:
        info["boxed_lower_bound"] = dual_bound
        info["boxed_status"] = backend_status.value
        info["note"] = (
            f"the problem has no box: solved the paper's boxed variant (c = {boxed.box_factor:g}); "
            "its optimum equals the unboxed one only when the box does not bind, so its bound "
            "is not a bound here"
        )
        r = backend_result(problem, weights, method=method, dual_bound=None,
                           backend_status=Status.HEURISTIC, seconds=seconds, nodes=nodes,
                           mask=mask, message=message, info=info)
        return r
    return backend_result(problem, weights, method=method, dual_bound=dual_bound,
                          backend_status=backend_status, seconds=seconds, nodes=nodes,
                          mask=mask, message=message, info=info)
