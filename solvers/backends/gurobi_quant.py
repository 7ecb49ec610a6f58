"""Gurobi (gurobipy) on the quantization MIQP.

``min s²(zᵀHz − 2(Hc)ᵀz + cᵀHc)`` over integer ``z`` in the grid (the direct form of
:mod:`solvers.backends._quant_model`), one thread, ``MIPGap`` = ``gap`` (1e-6). When Gurobi
refuses the objective as not PSD (rank-deficient ``H`` with rounding-level negative eigenvalues)
the factor form ``‖y‖²``, ``y = sR(z − c)`` is used instead. The pip licence is size-limited
(2000 variables), far above these problems. The dual bound is Gurobi's ``ObjBound``, valid up to
Gurobi's tolerances.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..problem import ProblemError, QuantProblem
from ..result import SolveResult, Status
from ..stopwatch import Stopwatch
from ._quant_model import QuantModel, codes_from
from .base import backend_result


def solve_gurobi(
    problem: QuantProblem,
    *,
    time_limit: float | None = None,
    gap: float = 1e-6,
    threads: int = 1,
    formulation: str = "direct",
    verbose: bool = False,
    **options: Any,
) -> SolveResult:
    """Solve with Gurobi. ``nodes`` is Gurobi's node count.

    Examples
    --------
    >>> import numpy as np
    >>> p = QuantProblem(np.array([[2.0, 1.9], [1.9, 2.0]]), np.array([0.55, -0.45]),
    ...                  scale=1.0, bits=2)
    >>> round(solve_gurobi(p).objective, 6)   # [0, 0] and [1, -1] tie
    0.0695
    """
    import gurobipy as gp

    if options:
        raise ProblemError(f"unknown options for gurobi: {sorted(options)}")
    if formulation not in ("direct", "factor"):
        raise ProblemError(f"formulation must be 'direct' or 'factor', got {formulation!r}")
    sw = Stopwatch()
    qm = QuantModel.build(problem)
    S = gp.GRB.Status
    smap = {S.OPTIMAL: Status.OPTIMAL, S.TIME_LIMIT: Status.TIME_LIMIT,
            S.NODE_LIMIT: Status.NODE_LIMIT, S.INTERRUPTED: Status.TIME_LIMIT,
            S.INFEASIBLE: Status.INFEASIBLE}
    with gp.Env(empty=True) as env:
        env.setParam("OutputFlag", 1 if verbose else 0)
        env.start()
        for form in ([formulation, "factor"] if formulation == "direct" else [formulation]):
            with gp.Model("quant", env=env) as m:
                m.Params.Threads = int(threads)
                m.Params.MIPGap = float(gap)
                if time_limit is not None:
                    m.Params.TimeLimit = max(0.0, float(time_limit) - sw.seconds)
                z = m.addMVar(qm.n, vtype=gp.GRB.INTEGER, lb=qm.lo, ub=qm.hi)
                if form == "direct":
                    m.setObjective(z @ qm.Hs @ z + qm.lin @ z + qm.const, gp.GRB.MINIMIZE)
                else:
                    y = m.addMVar(qm.Rs.shape[0], lb=-gp.GRB.INFINITY)
                    m.addConstr(qm.Rs @ z - y == qm.rhs)
                    m.setObjective(y @ y, gp.GRB.MINIMIZE)
                z.Start = qm.rtn.astype(float)
                try:
                    m.optimize()
                except gp.GurobiError as exc:
                    if form == "direct" and "PSD" in str(exc).upper():
                        continue
                    raise ProblemError(f"Gurobi failed: {exc}") from exc
                status = smap.get(m.Status, Status.ERROR)
                codes = codes_from(z.X, qm.lo, qm.hi) if m.SolCount > 0 else qm.rtn
                dual = float(m.ObjBound) if np.isfinite(m.ObjBound) else None
                return backend_result(
                    problem, problem.scale * codes, method="gurobi", dual_bound=dual,
                    backend_status=status, seconds=sw.seconds, nodes=int(m.NodeCount),
                    codes=codes, message=f"Gurobi status {m.Status}",
                    info={"backend": f"Gurobi {gp.gurobi.version()}", "formulation": form,
                          "gap_setting": gap,
                          "bound_source": "Gurobi ObjBound (Gurobi tolerances)"},
                )
    raise ProblemError("Gurobi rejected both formulations")  # pragma: no cover
