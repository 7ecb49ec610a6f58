"""SCIP on the quantization MIQP: through pyscipopt, and through cvxpy.

``solve_scip`` builds ``min t`` s.t. ``t >= s²(zᵀHz − 2(Hc)ᵀz) + const`` (the direct form of
:mod:`solvers.backends._quant_model`; ``formulation="factor"`` uses ``t >= ‖y‖²``,
``y = sR(z − c)``), integer ``z`` in the grid, one thread, relative gap ``gap`` (1e-6). Its dual
bound is SCIP's, valid up to SCIP's feasibility and optimality tolerances (``info["bound_source"]``
says so). ``solve_scip_cvxpy`` states the same problem in cvxpy (``sum_squares`` of the factor
form) and hands it to SCIP; cvxpy reports no dual bound, so an optimal solve's bound is taken as
``objective / (1 + gap)`` (SCIP's gap criterion) and a stopped one has none.
"""

from __future__ import annotations

from typing import Any

from ..problem import ProblemError, QuantProblem
from ..result import SolveResult, Status
from ..stopwatch import Stopwatch
from ._quant_model import QuantModel, codes_from
from .base import backend_result

_SCIP_STATUS = {
    "optimal": Status.OPTIMAL,
    "gaplimit": Status.OPTIMAL,
    "timelimit": Status.TIME_LIMIT,
    "nodelimit": Status.NODE_LIMIT,
    "totalnodelimit": Status.NODE_LIMIT,
    "userinterrupt": Status.TIME_LIMIT,
    "infeasible": Status.INFEASIBLE,
}


def solve_scip(
    problem: QuantProblem,
    *,
    time_limit: float | None = None,
    gap: float = 1e-6,
    threads: int = 1,
    formulation: str = "direct",
    verbose: bool = False,
    **options: Any,
) -> SolveResult:
    """Solve with SCIP (pyscipopt). ``nodes`` is SCIP's node count.

    Examples
    --------
    >>> import numpy as np
    >>> p = QuantProblem(np.array([[2.0, 1.9], [1.9, 2.0]]), np.array([0.55, -0.45]),
    ...                  scale=1.0, bits=2)
    >>> round(solve_scip(p).objective, 6)   # [0, 0] and [1, -1] tie
    0.0695
    """
    from pyscipopt import Model, quicksum

    if options:
        raise ProblemError(f"unknown options for scip: {sorted(options)}")
    if formulation not in ("direct", "factor"):
        raise ProblemError(f"formulation must be 'direct' or 'factor', got {formulation!r}")
    sw = Stopwatch()
    qm = QuantModel.build(problem)
    n = qm.n
    m = Model("quant")
    if not verbose:
        m.hideOutput()
    m.setParam("limits/gap", float(gap))
    m.setParam("parallel/maxnthreads", int(threads))
    m.setParam("lp/threads", int(threads))
    if time_limit is not None:
        m.setParam("limits/time", max(0.01, float(time_limit)))
    z = [m.addVar(f"z{i}", vtype="I", lb=qm.lo, ub=qm.hi) for i in range(n)]
    t = m.addVar("t", lb=0.0)
    if formulation == "direct":
        H, lin = qm.Hs, qm.lin
        quad = quicksum(H[i, j] * z[i] * z[j] for i in range(n) for j in range(n)
                        if H[i, j] != 0.0)
        m.addCons(quad + quicksum(lin[i] * z[i] for i in range(n)) + qm.const <= t)
    else:
        y = [m.addVar(f"y{k}", lb=None, ub=None) for k in range(qm.Rs.shape[0])]
        for k, row in enumerate(qm.Rs):
            m.addCons(quicksum(row[j] * z[j] for j in range(n) if row[j] != 0.0) - y[k]
                      == qm.rhs[k])
        m.addCons(quicksum(v * v for v in y) <= t)
    m.setObjective(t, "minimize")
    start = m.createSol()
    for i in range(n):
        m.setSolVal(start, z[i], float(qm.rtn[i]))
    m.setSolVal(start, t, float(problem.error(problem.scale * qm.rtn)) * (1 + 1e-9) + 1e-12)
    if formulation == "factor":
        yv = qm.Rs @ qm.rtn - qm.rhs
        for k, v in enumerate(y):
            m.setSolVal(start, v, float(yv[k]))
    m.addSol(start, free=True)
    m.optimize()
    raw = m.getStatus()
    status = _SCIP_STATUS.get(raw, Status.ERROR)
    codes = codes_from([m.getVal(v) for v in z], qm.lo, qm.hi) if m.getNSols() > 0 \
        else qm.rtn
    dual = float(m.getDualbound())
    return backend_result(
        problem, problem.scale * codes, method="scip", dual_bound=dual,
        backend_status=status, seconds=sw.seconds, nodes=int(m.getNNodes()), codes=codes,
        message=f"SCIP status {raw}",
        info={"backend": "SCIP (pyscipopt)", "formulation": formulation, "gap_setting": gap,
              "bound_source": "SCIP dual bound (SCIP tolerances)"},
    )


def solve_scip_cvxpy(
    problem: QuantProblem,
    *,
    time_limit: float | None = None,
    gap: float = 1e-6,
    verbose: bool = False,
    **options: Any,
) -> SolveResult:
    """Solve with SCIP through cvxpy (``sum_squares`` of the factor form)."""
    import cvxpy as cp

    if options:
        raise ProblemError(f"unknown options for scip-cvxpy: {sorted(options)}")
    sw = Stopwatch()
    qm = QuantModel.build(problem)
    z = cp.Variable(qm.n, integer=True)
    prob = cp.Problem(cp.Minimize(cp.sum_squares(qm.Rs @ z - qm.rhs)),
                      [z >= qm.lo, z <= qm.hi])
    params: dict[str, Any] = {"limits/gap": float(gap), "parallel/maxnthreads": 1,
                              "lp/threads": 1}
    if time_limit is not None:
        params["limits/time"] = max(0.01, float(time_limit))
    try:
        prob.solve(solver=cp.SCIP, verbose=verbose, scip_params=params)
    except cp.error.SolverError as exc:
        raise ProblemError(f"SCIP through cvxpy failed: {exc}") from exc
    raw = prob.status
    if z.value is None:
        codes, status = qm.rtn, Status.TIME_LIMIT
    else:
        codes = codes_from(z.value, qm.lo, qm.hi)
        status = Status.OPTIMAL if raw == cp.OPTIMAL else Status.TIME_LIMIT
    obj = problem.error(problem.scale * codes)
    dual = obj / (1.0 + gap) if status is Status.OPTIMAL else None
    return backend_result(
        problem, problem.scale * codes, method="scip-cvxpy", dual_bound=dual,
        backend_status=status, seconds=sw.seconds, codes=codes, message=f"cvxpy status {raw}",
        info={"backend": "SCIP (cvxpy)", "gap_setting": gap,
              "bound_source": "objective/(1+gap) from SCIP's optimal status (cvxpy reports no "
                              "dual bound)"},
    )
