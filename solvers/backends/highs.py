"""HiGHS (highspy) on both problems, by outer approximation: MILPs with Kelley cuts.

HiGHS solves MILPs, not MIQPs, so the convex objective ``f(x) = (x − x0)ᵀQ(x − x0)`` is
replaced by ``min t`` over tangent planes (Kelley cuts)::

    t >= f(x̂) + ∇f(x̂)ᵀ(x − x̂)        ⇔        ∇f(x̂)ᵀx − t <= ∇f(x̂)ᵀx̂ − f(x̂)

Since ``f`` is convex every plane lies below it, so each MILP of the loop is a relaxation of the
problem and its dual bound (``mip_dual_bound``) is a valid lower bound at every iteration (up to
HiGHS's tolerances). Each MILP's point gives feasible solutions (the upper bound) and new cuts;
the loop (:func:`kelley`, one loop for both problems) stops when the relative gap is below
``gap``, after ``max_iterations`` MILPs (status ``node_limit``), or at the time limit. Kelley's
method converges slowly on curved objectives: this is a cross-check, not a fast solver.
``nodes`` counts the MILPs.

* **Quantization** (:meth:`HiGHS.solve_quant`): ``x = z`` integer in the grid,
  ``Q = s²H``, ``x0 = c = w0/s``. Each MILP point is rounded onto the grid and polished by 1-opt;
  both are candidates and both get a cut. Starts from round-to-nearest + 1-opt.
* **Pruning** (:meth:`HiGHS.solve_prune`): the big-M model of :mod:`solvers.backends.bigm`,
  ``x = w`` (with the binary ``m`` and the cardinality rows), ``Q = H``, ``x0 = w0``. Each MILP
  mask is refit exactly (boxed) for the candidate; cuts at the MILP's ``w`` and at the refit.
  Starts from magnitude pruning + refit.

The OR-Tools and highspy wheels cannot share a process (each carries its own HiGHS): when
OR-Tools is already loaded, either solve runs in a spawned process
(:mod:`solvers.backends.isolation`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..problem import PruneProblem, QuantProblem
from ..prune.incumbents import magnitude_mask
from ..prune.refit import refit
from ..quant.incumbents import one_opt
from ..result import SolveResult, Status
from ..stopwatch import Stopwatch
from .base import Backend, backend_result
from .bigm import boxed_variant, group_rows, prune_result
from .isolation import isolated
from .quant_model import QuantModel, codes_from

#: What one MILP point yields: candidates ``(solution, value)`` and the points to cut at.
Step = Callable[[np.ndarray], tuple[Sequence[tuple[Any, float]], Sequence[np.ndarray]]]


class HiGHS(Backend):
    """HiGHS via highspy (method ``highs``, both kinds, by outer approximation)."""

    name = "highs"
    requires = ("highspy",)
    #: ``HighsModelStatus`` names of one MILP of the loop (every member of the enum).
    STATUS_MAP = {
        "kOptimal": Status.OPTIMAL,
        "kTimeLimit": Status.TIME_LIMIT,
        "kInterrupt": Status.TIME_LIMIT,
        "kHighsInterrupt": Status.TIME_LIMIT,
        "kIterationLimit": Status.NODE_LIMIT,
        "kSolutionLimit": Status.NODE_LIMIT,
        "kInfeasible": Status.INFEASIBLE,
        # limits pqbound never sets, failures, and outcomes a bounded feasible MILP cannot have
        "kObjectiveBound": Status.ERROR,
        "kObjectiveTarget": Status.ERROR,
        "kMemoryLimit": Status.ERROR,
        "kUnbounded": Status.ERROR,
        "kUnboundedOrInfeasible": Status.ERROR,
        "kModelEmpty": Status.ERROR,
        "kNotset": Status.ERROR,
        "kLoadError": Status.ERROR,
        "kModelError": Status.ERROR,
        "kPresolveError": Status.ERROR,
        "kSolveError": Status.ERROR,
        "kPostsolveError": Status.ERROR,
        "kUnknown": Status.ERROR,
    }

    @isolated("highspy")
    def solve_quant(
        self,
        problem: QuantProblem,
        *,
        time_limit: float | None = None,
        gap: float = 1e-6,
        max_iterations: int = 2000,
    ) -> SolveResult:
        """Kelley outer approximation of a quantization problem (single thread).

        Examples
        --------
        >>> import numpy as np
        >>> p = QuantProblem(np.array([[2.0, 1.9], [1.9, 2.0]]), np.array([0.55, -0.45]),
        ...                  scale=1.0, bits=2)
        >>> round(HIGHS.solve_quant(p).objective, 6)   # [0, 0] and [1, -1] tie
        0.0695
        """
        import highspy

        sw = Stopwatch()
        qm = QuantModel.build(problem)
        n = qm.n
        h = _milp(highspy)
        _add_columns(h, np.full(n, float(qm.lo)), np.full(n, float(qm.hi)))
        _add_columns(h, np.zeros(1), np.full(1, highspy.kHighsInf), cost=1.0)  # t
        h.changeColsIntegrality(n, np.arange(n, dtype=np.int32),
                                np.full(n, highspy.HighsVarType.kInteger))
        cuts = KelleyCuts(h, qm.Hs, qm.c, np.arange(n), n, highspy.kHighsInf)
        best = one_opt(problem.H, qm.c, qm.rtn, qm.lo, qm.hi)
        cuts.add(best)
        cuts.add(np.clip(qm.c, qm.lo, qm.hi))

        def step(x: np.ndarray):
            z = codes_from(x[:n], qm.lo, qm.hi)
            zp = one_opt(problem.H, qm.c, z, qm.lo, qm.hi)
            return [(z, cuts.value(z)), (zp, cuts.value(zp))], \
                [z] if np.array_equal(zp, z) else [z, zp]

        best, best_val, lower, it, status, message = self.kelley(
            h, cuts, step, best, cuts.value(best), gap=gap, max_iterations=max_iterations,
            time_limit=time_limit, stopwatch=sw)
        return backend_result(
            problem, problem.scale * best, method=self.name, dual_bound=min(lower, best_val),
            backend_status=status, seconds=sw.seconds, nodes=it, codes=best,
            message=message or f"{it} MILPs",
            info={"backend": "HiGHS (outer approximation)", "iterations": it,
                  "gap_setting": gap,
                  "bound_source": "MILP dual bound of the cut relaxation (HiGHS tolerances)"},
        )

    @isolated("highspy")
    def solve_prune(
        self,
        problem: PruneProblem,
        *,
        time_limit: float | None = None,
        gap: float = 1e-6,
        box_factor: float | None = None,
        max_iterations: int = 500,
    ) -> SolveResult:
        """Kelley outer approximation of the big-M model of a pruning problem (single thread).

        Parameters as :meth:`solvers.backends.scip.Scip.solve_prune`; ``max_iterations`` bounds
        the number of MILPs.

        Examples
        --------
        >>> import numpy as np
        >>> p = PruneProblem(np.diag([1.0, 2.0, 3.0]), np.array([1.0, -1.0, 0.5]), k=1,
        ...                  box_factor=2.0)
        >>> r = HIGHS.solve_prune(p)
        >>> r.mask.tolist(), round(r.objective, 6)
        ([False, True, False], 1.75)
        """
        import highspy

        sw = Stopwatch()
        boxed, defaulted = boxed_variant(problem, box_factor)
        H, w0, n, B = boxed.H, boxed.w0, boxed.n, boxed.box
        inf = highspy.kHighsInf
        # columns: w (0..n-1), m (n..2n-1), t (2n)
        h = _milp(highspy)
        _add_columns(h, np.full(n, -B), np.full(n, B))
        _add_columns(h, np.zeros(n), np.ones(n))
        _add_columns(h, np.zeros(1), np.full(1, inf), cost=1.0)
        h.changeColsIntegrality(n, np.arange(n, 2 * n, dtype=np.int32),
                                np.full(n, highspy.HighsVarType.kInteger))
        for i in range(n):
            idx = np.array([i, n + i], dtype=np.int32)
            h.addRow(-inf, 0.0, 2, idx, np.array([1.0, -B]))   # w_i <= B m_i
            h.addRow(0.0, inf, 2, idx, np.array([1.0, B]))     # w_i >= -B m_i
        for idx, lim in group_rows(boxed):
            cols = np.array([n + i for i in idx], dtype=np.int32)
            h.addRow(-inf, float(lim), len(cols), cols, np.ones(len(cols)))
        cuts = KelleyCuts(h, H, w0, np.arange(n), 2 * n, inf)
        best_mask = magnitude_mask(boxed, np.diag(H) > 0.0)
        best_w, best_val, _ = refit(boxed, best_mask)
        cuts.add(best_w)
        cuts.add(np.zeros(n))

        def step(x: np.ndarray):
            wm, mm = x[:n], x[n:2 * n] > 0.5
            wr, val, _ = refit(boxed, mm)
            return [(mm, val)], [np.clip(wm, -B, B), wr]

        best_mask, best_val, lower, it, status, message = self.kelley(
            h, cuts, step, best_mask, best_val, gap=gap, max_iterations=max_iterations,
            time_limit=time_limit, stopwatch=sw)
        return prune_result(problem, boxed, defaulted, best_mask, method=self.name,
                            dual_bound=min(lower, best_val), backend_status=status,
                            seconds=sw.seconds, nodes=it, message=message or f"{it} MILPs",
                            info={"backend": "HiGHS (outer approximation)", "iterations": it,
                                  "gap_setting": gap})

    def kelley(
        self,
        h: Any,
        cuts: KelleyCuts,
        step: Step,
        best: Any,
        best_val: float,
        *,
        gap: float,
        max_iterations: int,
        time_limit: float | None,
        stopwatch: Stopwatch,
    ) -> tuple[Any, float, float, int, Status, str]:
        """The outer-approximation loop over the MILP ``h`` (cuts already added).

        Each round: stop if ``best_val`` is within the relative ``gap`` of the lower bound
        (``OPTIMAL``), after ``max_iterations`` MILPs (``NODE_LIMIT``) or when the time is up
        (``TIME_LIMIT``); else solve the MILP, raise the lower bound to its dual bound, and hand
        its point to ``step``, which returns the candidates ``(solution, value)`` it yields and
        the points at which ``cuts`` get a new cut. A MILP that ends other than optimal (a time
        limit inside HiGHS) ends the loop with its mapped status.

        Returns ``(best, best_val, lower, iterations, status, message)``.
        """
        lower, it, message = 0.0, 0, ""
        while True:
            if best_val <= 0.0 or best_val - lower <= gap * best_val:
                status = Status.OPTIMAL
                break
            if it >= max_iterations:
                status, message = Status.NODE_LIMIT, f"{it} MILPs without closing the gap"
                break
            rem = stopwatch.remaining(time_limit)
            if rem is not None:
                if rem <= 0.0:
                    status = Status.TIME_LIMIT
                    break
                h.setOptionValue("time_limit", float(rem))
            h.run()
            it += 1
            info = h.getInfo()
            milp = self.status(h.getModelStatus().name)
            db = float(info.mip_dual_bound)
            if math.isfinite(db):
                lower = max(lower, db)
            if info.primal_solution_status != 2:  # no feasible MILP point
                status = Status.ERROR if milp is Status.OPTIMAL else milp
                break
            candidates, cut_points = step(np.asarray(h.getSolution().col_value))
            for sol, val in candidates:
                if val < best_val:
                    best, best_val = sol, val
            for x in cut_points:
                cuts.add(x)
            if milp is not Status.OPTIMAL:
                status = milp
                break
        return best, best_val, lower, it, status, message


class KelleyCuts:
    """Tangent-plane cuts of ``f(x) = (x − x0)ᵀQ(x − x0)`` on the MILP columns ``cols`` and the
    epigraph column ``t`` of a highspy model."""

    def __init__(self, h: Any, Q: np.ndarray, x0: np.ndarray, cols: np.ndarray, t: int,
                 inf: float):
        self.h, self.Q, self.x0, self.inf = h, Q, x0, inf
        self.cols = np.append(np.asarray(cols, dtype=np.int32), np.int32(t))

    def value(self, x: np.ndarray) -> float:
        """``f(x)``."""
        d = x - self.x0
        return float(d @ self.Q @ d)

    def add(self, x: np.ndarray) -> None:
        """The cut at ``x``: ``∇f(x)ᵀy − t <= ∇f(x)ᵀx − f(x)``."""
        g = 2.0 * (self.Q @ (x - self.x0))
        self.h.addRow(-self.inf, float(g @ x - self.value(x)), len(self.cols),
                      self.cols, np.append(g, -1.0))


def _milp(highspy) -> Any:
    """An empty highspy model with pqbound's settings: quiet, one thread, MIP gap 1e-9."""
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("mip_rel_gap", 1e-9)
    return h


def _add_columns(h: Any, lo: np.ndarray, hi: np.ndarray, cost: float = 0.0) -> None:
    """Continuous columns with bounds ``lo``/``hi`` and objective coefficient ``cost``."""
    none_i, none_v = np.array([], dtype=np.int32), np.array([])
    for a, b in zip(lo, hi, strict=True):
        h.addCol(cost, float(a), float(b), 0, none_i, none_v)


HIGHS = HiGHS()
