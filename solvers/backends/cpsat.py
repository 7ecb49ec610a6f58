"""OR-Tools CP-SAT on an integer-scaled quantization model (quantization only).

CP-SAT works in exact integer arithmetic, so the real objective must be scaled to integers:
with the factor ``H = RᵀR`` (rows ``r_k``), ``K`` a power of two and integer coefficients
``A = round(K·R)``, ``b = round(K·Rc)``, the model is

    minimize  Σ_k y_k²,   y_k = A_k·z − b_k  (integer),  zmin <= z <= zmax,

with ``y_k²`` through ``AddMultiplicationEquality``. Its optimum is *not* the real one: it is the
exact optimum of a perturbed problem ``‖(A z − b)/K‖²``. The real objective of the returned codes
is recomputed from ``H``, and CP-SAT's integer bound ``B`` converts into a bound on the real
problem through the coefficient error: for every ``z`` in the box,
``‖R(z − c)‖ >= ‖Az − b‖/K − δ`` with ``δ = ‖|AK⁻¹ − R|·|z| + |bK⁻¹ − Rc|‖ <= δ_max`` (computed
from the actual rounding errors at the worst box corner), so ``f* >= s²·max(0, √B/K − δ_max)²``.
That bound is as certified as CP-SAT's integer arithmetic (exact) and float64's computation of
``δ_max`` (safety factor 1.01): ``info["bound_source"]`` says so. A CP-SAT ``OPTIMAL`` is
kept only if that converted bound closes the real gap to 1e-6 (usually it does not, and the
result says ``gap_limit``). ``K`` is chosen so every ``|y_k|`` stays below ``2^26`` (squares
below ``2^52``); the returned codes are optimal for the scaled model, typically within ~1e-6
relative of the real optimum, so use this backend as a cross-check, not as a reference to 1e-9.

The OR-Tools and highspy wheels cannot share a process (each carries its own HiGHS): when
highspy is already loaded the solve runs in a spawned process (:mod:`solvers.backends.isolation`).
CP-SAT has no continuous variables, so it does not take the big-M pruning model.
"""

from __future__ import annotations

import math

import numpy as np

from ..problem import QuantProblem
from ..result import SolveResult, Status
from ..stopwatch import Stopwatch
from .base import Backend, backend_result
from .isolation import isolated
from .quant_model import QuantModel


class CpSat(Backend):
    """OR-Tools CP-SAT (method ``cpsat``, quantization only)."""

    name = "cpsat"
    requires = ("ortools",)
    #: ``CpSolver.StatusName()`` of every ``CpSolverStatus``.
    STATUS_MAP = {
        "OPTIMAL": Status.OPTIMAL,
        "FEASIBLE": Status.TIME_LIMIT,  # stopped with a solution, optimality not proved
        "UNKNOWN": Status.TIME_LIMIT,  # stopped before any solution (codes: round to nearest)
        "INFEASIBLE": Status.INFEASIBLE,
        "MODEL_INVALID": Status.ERROR,
    }

    @isolated("ortools.sat.python.cp_model")
    def solve_quant(
        self,
        problem: QuantProblem,
        *,
        time_limit: float | None = None,
        gap: float = 1e-6,
        threads: int = 1,
        max_y_bits: int = 26,
    ) -> SolveResult:
        """CP-SAT on the integer-scaled model (see the module docstring for what it certifies).

        Examples
        --------
        >>> import numpy as np
        >>> p = QuantProblem(np.array([[2.0, 1.9], [1.9, 2.0]]), np.array([0.55, -0.45]),
        ...                  scale=1.0, bits=2)
        >>> round(CPSAT.solve_quant(p).objective, 6)   # [0, 0] and [1, -1] tie
        0.0695
        """
        from ortools.sat.python import cp_model

        sw = Stopwatch()
        qm = QuantModel.build(problem)
        s = problem.scale
        R, Rc = qm.Rs / s, qm.rhs / s  # unscaled factor rows and R c
        zabs = max(abs(qm.lo), abs(qm.hi))
        reach = np.abs(R).sum(axis=1) * zabs + np.abs(Rc)  # max |row value| over the box
        top = float(reach.max()) if reach.size else 0.0
        K = 2.0 ** math.floor(math.log2((2.0 ** max_y_bits) / top)) if top > 0 else 1.0
        A = np.rint(K * R).astype(np.int64)
        b = np.rint(K * Rc).astype(np.int64)
        m = cp_model.CpModel()
        z = [m.NewIntVar(qm.lo, qm.hi, f"z{i}") for i in range(qm.n)]
        ylim = int(np.abs(A).sum(axis=1).max() * zabs + np.abs(b).max()) if A.size else 0
        sq = []
        for k in range(A.shape[0]):
            y = m.NewIntVar(-ylim, ylim, f"y{k}")
            m.Add(y == sum(int(A[k, j]) * z[j] for j in range(qm.n) if A[k, j] != 0) - int(b[k]))
            q = m.NewIntVar(0, ylim * ylim, f"q{k}")
            m.AddMultiplicationEquality(q, [y, y])
            sq.append(q)
        m.Minimize(sum(sq))
        for i in range(qm.n):
            m.AddHint(z[i], int(qm.rtn[i]))
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = int(threads)
        solver.parameters.relative_gap_limit = float(gap)
        if time_limit is not None:
            solver.parameters.max_time_in_seconds = max(0.01, float(time_limit))
        raw = solver.Solve(m)
        name = solver.StatusName(raw)
        if raw in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            codes = np.array([solver.Value(v) for v in z], dtype=np.int64)
        else:
            codes = qm.rtn
        # worst-case coefficient error over the box
        dA = np.abs(A / K - R)
        db = np.abs(b / K - Rc)
        delta = float(np.sqrt(np.sum((dA.sum(axis=1) * zabs + db) ** 2))) * 1.01
        B = float(solver.BestObjectiveBound()) if raw != cp_model.UNKNOWN else 0.0
        root = max(0.0, math.sqrt(max(B, 0.0)) / K - delta)
        dual = s * s * root * root * (1.0 - 1e-12)
        return backend_result(
            problem, s * codes, method=self.name, dual_bound=dual,
            backend_status=self.status(name), seconds=sw.seconds,
            nodes=int(solver.NumBranches()), codes=codes,
            message=f"CP-SAT {name} on the model scaled by K = 2^{int(math.log2(K))}",
            info={"backend": "OR-Tools CP-SAT", "scale_K": K, "coefficient_error": delta,
                  "gap_setting": gap,
                  "bound_source": "CP-SAT integer bound on the scaled model, reduced by the "
                                  "coefficient-rounding error (certified up to float64 in δ)"},
        )


CPSAT = CpSat()
