"""SCIP (pyscipopt) on the paper's big-M MIQP for pruning (see :mod:`solvers.backends.bigm`).

Single thread, relative gap ``1e-6``. The objective ``‖X(w − w0)‖²`` is modelled as
``min t`` with ``t >= Σ_r y_r²`` and ``y = X w − X w0`` (a convex quadratic constraint).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..problem import ProblemError, PruneProblem
from ..result import SolveResult, Status
from ..stopwatch import Stopwatch
from .bigm import boxed_variant, factor_form, finish, group_rows

STATUS_MAP = {
    "optimal": Status.OPTIMAL,
    "gaplimit": Status.OPTIMAL,
    "timelimit": Status.TIME_LIMIT,
    "nodelimit": Status.NODE_LIMIT,
    "totalnodelimit": Status.NODE_LIMIT,
    "infeasible": Status.INFEASIBLE,
}


def solve_scip(
    problem: PruneProblem,
    *,
    time_limit: float | None = None,
    gap: float = 1e-6,
    box_factor: float | None = None,
    **options: Any,
) -> SolveResult:
    """Solve the big-M model with SCIP.

    Parameters
    ----------
    problem : PruneProblem
        Boxed problems are solved as given; unboxed ones as the ``c = 2`` boxed variant
        (``lower_bound`` is then ``None``; see :mod:`solvers.backends.bigm`).
    time_limit : float, optional
    gap : float
        SCIP's ``limits/gap`` (relative).
    box_factor : float, optional
        Override the box factor ``c``.

    Examples
    --------
    >>> import numpy as np
    >>> from solvers.problem import PruneProblem
    >>> p = PruneProblem(np.diag([1.0, 2.0, 3.0]), np.array([1.0, -1.0, 0.5]), k=1,
    ...                  box_factor=2.0)
    >>> r = solve_scip(p)
    >>> r.mask.tolist(), round(r.objective, 6)
    ([False, True, False], 1.75)
    """
    import pyscipopt as scip

    if options:
        raise ProblemError(f"unknown options for scip: {sorted(options)}")
    sw = Stopwatch()
    boxed, defaulted = boxed_variant(problem, box_factor)
    X, y0 = factor_form(boxed)
    n, r = boxed.n, X.shape[0]
    B = boxed.box
    model = scip.Model()
    model.hideOutput()
    model.setParam("parallel/maxnthreads", 1)
    model.setParam("lp/threads", 1)
    model.setParam("limits/gap", float(gap))
    if time_limit is not None:
        model.setParam("limits/time", float(time_limit))
    w = [model.addVar(f"w{i}", lb=-B, ub=B) for i in range(n)]
    m = [model.addVar(f"m{i}", vtype="B") for i in range(n)]
    y = [model.addVar(f"y{j}", lb=None, ub=None) for j in range(r)]
    t = model.addVar("t", lb=0.0, ub=None)
    for i in range(n):
        model.addCons(w[i] <= B * m[i])
        model.addCons(w[i] >= -B * m[i])
    for idx, lim in group_rows(boxed):
        model.addCons(scip.quicksum(m[i] for i in idx) <= lim)
    for j in range(r):
        model.addCons(
            y[j] == scip.quicksum(float(X[j, i]) * w[i] for i in range(n) if X[j, i] != 0.0)
            - float(y0[j])
        )
    model.addCons(scip.quicksum(v * v for v in y) <= t)
    model.setObjective(t, "minimize")
    model.optimize()
    st = model.getStatus()
    status = STATUS_MAP.get(st, Status.ERROR)
    mask = None
    if model.getNSols() > 0:
        sol = model.getBestSol()
        mask = np.array([model.getSolVal(sol, v) > 0.5 for v in m])
    try:
        dual = float(model.getDualbound())
    except Exception:  # noqa: BLE001
        dual = None
    return finish(problem, boxed, defaulted, mask, method="scip", dual_bound=dual,
                  backend_status=status, seconds=sw.seconds, nodes=int(model.getNNodes()),
                  message=f"SCIP status {st}",
                  info={"backend": f"SCIP {model.version()}", "gap_setting": gap})
