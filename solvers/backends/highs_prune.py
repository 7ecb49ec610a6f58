"""HiGHS (highspy) on the big-M pruning model as an outer-approximation MILP (Kelley cuts).

The convex quadratic ``f(w) = (w − w0)ᵀH(w − w0)`` is replaced by ``min t`` over the cuts
``t >= f(ŵ) + ∇f(ŵ)ᵀ(w − ŵ)``, each a tangent plane, so every MILP of the loop is a relaxation of
the boxed big-M MIQP (see :mod:`solvers.backends.bigm`) and its dual bound is a valid lower bound
on the boxed optimum at every iteration. Each MILP's mask is refit exactly (boxed) for the upper
bound, and cuts are added at the MILP point and at the refit point, until the relative gap is
below ``gap`` or the time runs out.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..problem import ProblemError, PruneProblem
from ..prune.incumbents import magnitude_mask
from ..prune.refit import refit
from ..result import SolveResult, Status
from ..stopwatch import Stopwatch
from .bigm import boxed_variant, finish, group_rows


def solve_highs_oa(
    problem: PruneProblem,
    *,
    time_limit: float | None = None,
    gap: float = 1e-6,
    box_factor: float | None = None,
    max_iterations: int = 500,
    **options: Any,
) -> SolveResult:
    """Outer approximation of the big-M MIQP with HiGHS MILPs (single thread).

    Parameters as :func:`~solvers.backends.scip_prune.solve_scip`; ``max_iterations`` bounds
    the number of MILPs. ``nodes`` reports the MILPs solved.

    Examples
    --------
    >>> import numpy as np
    >>> from solvers.problem import PruneProblem
    >>> p = PruneProblem(np.diag([1.0, 2.0, 3.0]), np.array([1.0, -1.0, 0.5]), k=1,
    ...                  box_factor=2.0)
    >>> r = solve_highs_oa(p)
    >>> r.mask.tolist(), round(r.objective, 6)
    ([False, True, False], 1.75)
    """
    import highspy

    if options:
        raise ProblemError(f"unknown options for highs: {sorted(options)}")
    sw = Stopwatch()
    boxed, defaulted = boxed_variant(problem, box_factor)
    H, w0, n, B = boxed.H, boxed.w0, boxed.n, boxed.box
    inf = highspy.kHighsInf
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("mip_rel_gap", 1e-9)
    # columns: w (0..n-1), m (n..2n-1), t (2n)
    for _ in range(n):
        h.addCol(0.0, -B, B, 0, np.array([], dtype=np.int32), np.array([]))
    for _ in range(n):
        h.addCol(0.0, 0.0, 1.0, 0, np.array([], dtype=np.int32), np.array([]))
    h.addCol(1.0, 0.0, inf, 0, np.array([], dtype=np.int32), np.array([]))
    h.changeColsIntegrality(n, np.arange(n, 2 * n, dtype=np.int32),
                            np.full(n, highspy.HighsVarType.kInteger))
    for i in range(n):
        idx = np.array([i, n + i], dtype=np.int32)
        h.addRow(-inf, 0.0, 2, idx, np.array([1.0, -B]))   # w_i <= B m_i
        h.addRow(0.0, inf, 2, idx, np.array([1.0, B]))     # w_i >= -B m_i
    for idx, lim in group_rows(boxed):
        cols = np.array([n + i for i in idx], dtype=np.int32)
        h.addRow(-inf, float(lim), len(cols), cols, np.ones(len(cols)))

    def add_cut(wh: np.ndarray) -> None:
        d = wh - w0
        g = 2.0 * (H @ d)
        f = float(d @ H @ d)
        # g·w − t <= g·ŵ − f(ŵ)
        cols = np.concatenate([np.arange(n, dtype=np.int32), np.array([2 * n], dtype=np.int32)])
        vals = np.concatenate([g, [-1.0]])
        h.addRow(-inf, float(g @ wh - f), n + 1, cols, vals)

    best_mask = magnitude_mask(boxed, np.diag(H) > 0.0)
    best_w, best_val, _ = refit(boxed, best_mask)
    add_cut(best_w)
    add_cut(np.zeros(n))
    lower = 0.0
    status = Status.OPTIMAL
    it = 0
    message = ""
    while True:
        if best_val <= 0.0 or (best_val - lower) <= gap * best_val:
            status = Status.OPTIMAL
            break
        if it >= max_iterations:
            status = Status.NODE_LIMIT
            message = f"{it} MILPs without closing the gap"
            break
        rem = sw.remaining(time_limit)
        if rem is not None:
            if rem <= 0.0:
                status = Status.TIME_LIMIT
                break
            h.setOptionValue("time_limit", float(rem))
        h.run()
        it += 1
        info = h.getInfo()
        mstat = h.getModelStatus()
        db = float(info.mip_dual_bound)
        if math.isfinite(db):
            lower = max(lower, db)
        if info.primal_solution_status != 2:  # no feasible MILP point (time out)
            status = Status.TIME_LIMIT if mstat == highspy.HighsModelStatus.kTimeLimit \
                else Status.ERROR
            break
        x = np.asarray(h.getSolution().col_value)
        wm, mm = x[:n], x[n:2 * n] > 0.5
        wr, val, _ = refit(boxed, mm)
        if val < best_val:
            best_val, best_w, best_mask = val, wr, mm
        add_cut(np.clip(wm, -B, B))
        add_cut(wr)
        if mstat == highspy.HighsModelStatus.kTimeLimit:
            status = Status.TIME_LIMIT
            break
    return finish(problem, boxed, defaulted, best_mask, method="highs",
                  dual_bound=min(lower, best_val), backend_status=status,
                  seconds=sw.seconds, nodes=it, message=message or f"{it} MILPs",
                  info={"backend": "HiGHS (outer approximation)", "iterations": it,
                        "gap_setting": gap})
