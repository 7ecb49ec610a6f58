"""HiGHS (highspy) on the quantization problem as an outer-approximation MILP (Kelley cuts).

The convex objective ``f(z) = s²(z − c)ᵀH(z − c)`` is replaced by ``min t`` over tangent planes
``t >= f(ẑ) + ∇f(ẑ)ᵀ(z − ẑ)``; since ``f`` is convex every plane lies below it, so each MILP of
the loop is a relaxation and its dual bound (``mip_dual_bound``) is a valid lower bound at every
iteration (up to HiGHS's tolerances). The MILP's point gives a feasible code vector (upper bound)
and a new cut there and at its 1-opt polish; the loop stops when the relative gap is below
``gap``, after ``max_iterations`` MILPs, or at the time limit. Kelley's method converges slowly on
curved objectives: this is a cross-check, not a fast solver. (When OR-Tools is already loaded
the solve runs in a spawned process: their wheels' HiGHS builds conflict.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..problem import ProblemError, QuantProblem
from ..quant.incumbents import one_opt
from ..result import SolveResult, Status
from ..stopwatch import Stopwatch
from ._quant_model import QuantModel, codes_from, needs_isolation, run_isolated
from .base import backend_result


def solve_highs_oa(
    problem: QuantProblem,
    *,
    time_limit: float | None = None,
    gap: float = 1e-6,
    max_iterations: int = 2000,
    **options: Any,
) -> SolveResult:
    """Kelley outer approximation with HiGHS MILPs (single thread). ``nodes`` counts MILPs.

    Examples
    --------
    >>> import numpy as np
    >>> p = QuantProblem(np.array([[2.0, 1.9], [1.9, 2.0]]), np.array([0.55, -0.45]),
    ...                  scale=1.0, bits=2)
    >>> round(solve_highs_oa(p).objective, 6)   # [0, 0] and [1, -1] tie
    0.0695
    """
    if options:
        raise ProblemError(f"unknown options for highs: {sorted(options)}")
    try:
        if needs_isolation("highspy"):
            raise ImportError("ortools is loaded")
        import highspy
    except ImportError:  # OR-Tools' HiGHS build already in this process
        return run_isolated("solvers.backends.highs_quant:solve_highs_oa", problem,
                            time_limit=time_limit, gap=gap, max_iterations=max_iterations)

    sw = Stopwatch()
    qm = QuantModel.build(problem)
    n, H, c = qm.n, qm.Hs, qm.c
    inf = highspy.kHighsInf
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("mip_rel_gap", 1e-9)
    none_i, none_v = np.array([], dtype=np.int32), np.array([])
    for _ in range(n):
        h.addCol(0.0, float(qm.lo), float(qm.hi), 0, none_i, none_v)
    h.addCol(1.0, 0.0, inf, 0, none_i, none_v)  # t
    h.changeColsIntegrality(n, np.arange(n, dtype=np.int32),
                            np.full(n, highspy.HighsVarType.kInteger))
    cols = np.arange(n + 1, dtype=np.int32)

    def f(z: np.ndarray) -> float:
        d = z - c
        return float(d @ H @ d)

    def add_cut(z: np.ndarray) -> None:
        g = 2.0 * (H @ (z - c))
        # t >= f(ẑ) + g·(z − ẑ)   ⇔   g·z − t <= g·ẑ − f(ẑ)
        h.addRow(-inf, float(g @ z - f(z)), n + 1, cols, np.concatenate([g, [-1.0]]))

    best = one_opt(problem.H, c, qm.rtn, qm.lo, qm.hi)
    best_val = f(best)
    add_cut(best)
    add_cut(np.clip(c, qm.lo, qm.hi))
    lower, it, message = 0.0, 0, ""
    status = Status.OPTIMAL
    while True:
        if best_val <= 0.0 or best_val - lower <= gap * best_val:
            status = Status.OPTIMAL
            break
        if it >= max_iterations:
            status, message = Status.NODE_LIMIT, f"{it} MILPs without closing the gap"
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
        if info.primal_solution_status != 2:
            status = Status.TIME_LIMIT if mstat == highspy.HighsModelStatus.kTimeLimit \
                else Status.ERROR
            break
        z = codes_from(np.asarray(h.getSolution().col_value)[:n], qm.lo, qm.hi)
        zp = one_opt(problem.H, c, z, qm.lo, qm.hi)
        for cand in (z, zp):
            v = f(cand)
            if v < best_val:
                best_val, best = v, cand
        add_cut(z)
        if not np.array_equal(zp, z):
            add_cut(zp)
        if mstat == highspy.HighsModelStatus.kTimeLimit:
            status = Status.TIME_LIMIT
            break
    return backend_result(
        problem, problem.scale * best, method="highs", dual_bound=min(lower, best_val),
        backend_status=status, seconds=sw.seconds, nodes=it, codes=best,
        message=message or f"{it} MILPs",
        info={"backend": "HiGHS (outer approximation)", "iterations": it, "gap_setting": gap,
              "bound_source": "MILP dual bound of the cut relaxation (HiGHS tolerances)"},
    )
