"""Gurobi (gurobipy) on the paper's big-M MIQP for pruning (see :mod:`solvers.backends.bigm`).

Single thread (``Threads=1``), ``MIPGap = 1e-6``. The objective is ``‖y‖²`` with the linear
constraints ``y = X w − X w0`` (``XᵀX = H``), so Gurobi sees a convex quadratic however
ill-conditioned ``H`` is. The size-limited licence (≤ 2000 variables) covers ``n`` up to ~600.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..problem import ProblemError, PruneProblem
from ..result import SolveResult, Status
from ..stopwatch import Stopwatch
from .bigm import boxed_variant, factor_form, finish, group_rows


def _status_map(gp) -> dict[int, Status]:
    S = gp.GRB.Status
    return {
        S.OPTIMAL: Status.OPTIMAL,
        S.TIME_LIMIT: Status.TIME_LIMIT,
        S.NODE_LIMIT: Status.NODE_LIMIT,
        S.INFEASIBLE: Status.INFEASIBLE,
        S.INTERRUPTED: Status.TIME_LIMIT,
    }


def solve_gurobi(
    problem: PruneProblem,
    *,
    time_limit: float | None = None,
    gap: float = 1e-6,
    box_factor: float | None = None,
    threads: int = 1,
    **options: Any,
) -> SolveResult:
    """Solve the big-M model with Gurobi (parameters as :func:`~solvers.backends.scip_prune.
    solve_scip`; ``threads`` defaults to 1).

    Examples
    --------
    >>> import numpy as np
    >>> from solvers.problem import PruneProblem
    >>> p = PruneProblem(np.diag([1.0, 2.0, 3.0]), np.array([1.0, -1.0, 0.5]), k=1,
    ...                  box_factor=2.0)
    >>> r = solve_gurobi(p)
    >>> r.mask.tolist(), round(r.objective, 6)
    ([False, True, False], 1.75)
    """
    import gurobipy as gp

    if options:
        raise ProblemError(f"unknown options for gurobi: {sorted(options)}")
    sw = Stopwatch()
    boxed, defaulted = boxed_variant(problem, box_factor)
    X, y0 = factor_form(boxed)
    n = boxed.n
    B = boxed.box
    with gp.Env(empty=True) as env:
        env.setParam("OutputFlag", 0)
        env.start()
        with gp.Model(env=env) as model:
            model.Params.Threads = int(threads)
            model.Params.MIPGap = float(gap)
            if time_limit is not None:
                model.Params.TimeLimit = float(time_limit)
            w = model.addMVar(n, lb=-B, ub=B, name="w")
            m = model.addMVar(n, vtype=gp.GRB.BINARY, name="m")
            y = model.addMVar(X.shape[0], lb=-gp.GRB.INFINITY, name="y")
            model.addConstr(w <= B * m)
            model.addConstr(w >= -B * m)
            for idx, lim in group_rows(boxed):
                model.addConstr(m[idx].sum() <= lim)
            model.addConstr(y == X @ w - y0)
            model.setObjective(y @ y, gp.GRB.MINIMIZE)
            model.optimize()
            status = _status_map(gp).get(model.Status, Status.ERROR)
            mask = None
            if model.SolCount > 0:
                mask = np.asarray(m.X) > 0.5
            dual = float(model.ObjBound) if model.SolCount > 0 or status is Status.OPTIMAL \
                else None
            nodes = int(model.NodeCount)
            code = int(model.Status)
    ver = ".".join(str(v) for v in gp.gurobi.version())
    return finish(problem, boxed, defaulted, mask, method="gurobi", dual_bound=dual,
                  backend_status=status, seconds=sw.seconds, nodes=nodes,
                  message=f"Gurobi status {code}",
                  info={"backend": f"Gurobi {ver}", "gap_setting": gap, "threads": threads})
