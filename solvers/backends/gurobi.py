"""Gurobi (gurobipy) on the quantization MIQP and on the paper's big-M pruning MIQP.

**Quantization** (:meth:`Gurobi.solve_quant`): ``min s²(zᵀHz − 2(Hc)ᵀz + cᵀHc)`` over integer
``z`` in the grid (the direct form of :mod:`solvers.backends.quant_model`), started from
round-to-nearest. When Gurobi refuses the objective as not PSD (rank-deficient ``H`` with
rounding-level negative eigenvalues) the factor form ``‖y‖²``, ``y = sR(z − c)`` is used instead.

**Pruning** (:meth:`Gurobi.solve_prune`): the big-M model of :mod:`solvers.backends.bigm` with
the objective ``‖y‖²`` and the linear constraints ``y = X w − X w0`` (``XᵀX = H``), so Gurobi sees
a convex quadratic however ill-conditioned ``H`` is.

Both: one thread (``Threads = threads``), ``MIPGap = gap`` (1e-6). The dual bound is Gurobi's
``ObjBound``, valid up to Gurobi's tolerances. The pip licence is size-limited (2000 variables
and constraints): quantization far beyond these problems, pruning up to ``n`` ≈ 600.
"""

from __future__ import annotations

import numpy as np

from ..problem import ProblemError, PruneProblem, QuantProblem
from ..result import SolveResult, Status
from ..stopwatch import Stopwatch
from .base import Backend, backend_result
from .bigm import boxed_variant, factor_form, group_rows, prune_result
from .quant_model import QuantModel, codes_from, quant_formulation


class Gurobi(Backend):
    """Gurobi via gurobipy (method ``gurobi``, both kinds)."""

    name = "gurobi"
    requires = ("gurobipy",)
    #: ``Model.Status`` codes (``gurobipy.GRB.Status``; Gurobi documents them as fixed ints).
    STATUS_MAP = {
        2: Status.OPTIMAL,  # OPTIMAL
        9: Status.TIME_LIMIT,  # TIME_LIMIT
        11: Status.TIME_LIMIT,  # INTERRUPTED
        16: Status.TIME_LIMIT,  # WORK_LIMIT (deterministic time)
        7: Status.NODE_LIMIT,  # ITERATION_LIMIT
        8: Status.NODE_LIMIT,  # NODE_LIMIT
        13: Status.GAP_LIMIT,  # SUBOPTIMAL: a solution, optimality tolerances not met
        3: Status.INFEASIBLE,  # INFEASIBLE
        # limits pqbound never sets, states a finished solve cannot be in, and outcomes a
        # bounded feasible model cannot have
        1: Status.ERROR,  # LOADED
        4: Status.ERROR,  # INF_OR_UNBD
        5: Status.ERROR,  # UNBOUNDED
        6: Status.ERROR,  # CUTOFF
        10: Status.ERROR,  # SOLUTION_LIMIT
        12: Status.ERROR,  # NUMERIC
        14: Status.ERROR,  # INPROGRESS
        15: Status.ERROR,  # USER_OBJ_LIMIT
        17: Status.ERROR,  # MEM_LIMIT
        18: Status.ERROR,  # LOCALLY_OPTIMAL (nonlinear models only)
        19: Status.ERROR,  # LOCALLY_INFEASIBLE (nonlinear models only)
    }

    def solve_quant(
        self,
        problem: QuantProblem,
        *,
        time_limit: float | None = None,
        gap: float = 1e-6,
        threads: int = 1,
        formulation: str = "direct",
        verbose: bool = False,
    ) -> SolveResult:
        """Solve a quantization problem with Gurobi. ``nodes`` is Gurobi's node count.

        Examples
        --------
        >>> import numpy as np
        >>> p = QuantProblem(np.array([[2.0, 1.9], [1.9, 2.0]]), np.array([0.55, -0.45]),
        ...                  scale=1.0, bits=2)
        >>> round(GUROBI.solve_quant(p).objective, 6)   # [0, 0] and [1, -1] tie
        0.0695
        """
        import gurobipy as gp

        quant_formulation(formulation)
        sw = Stopwatch()
        qm = QuantModel.build(problem)
        with self._env(verbose) as env:
            for form in ([formulation, "factor"] if formulation == "direct" else [formulation]):
                with gp.Model("quant", env=env) as m:
                    self._settings(m, sw.remaining(time_limit), gap, threads)
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
                    codes = codes_from(z.X, qm.lo, qm.hi) if m.SolCount > 0 else qm.rtn
                    dual = float(m.ObjBound) if np.isfinite(m.ObjBound) else None
                    return backend_result(
                        problem, problem.scale * codes, method=self.name, dual_bound=dual,
                        backend_status=self.status(m.Status), seconds=sw.seconds,
                        nodes=int(m.NodeCount), codes=codes, message=f"Gurobi status {m.Status}",
                        info={"backend": self._version(gp), "formulation": form,
                              "gap_setting": gap,
                              "bound_source": "Gurobi ObjBound (Gurobi tolerances)"},
                    )
        raise ProblemError("Gurobi rejected both formulations")  # pragma: no cover

    def solve_prune(
        self,
        problem: PruneProblem,
        *,
        time_limit: float | None = None,
        gap: float = 1e-6,
        box_factor: float | None = None,
        threads: int = 1,
    ) -> SolveResult:
        """Solve the big-M model of a pruning problem with Gurobi (parameters as
        :meth:`solvers.backends.scip.Scip.solve_prune`; ``threads`` defaults to 1).

        Examples
        --------
        >>> import numpy as np
        >>> p = PruneProblem(np.diag([1.0, 2.0, 3.0]), np.array([1.0, -1.0, 0.5]), k=1,
        ...                  box_factor=2.0)
        >>> r = GUROBI.solve_prune(p)
        >>> r.mask.tolist(), round(r.objective, 6)
        ([False, True, False], 1.75)
        """
        import gurobipy as gp

        sw = Stopwatch()
        boxed, defaulted = boxed_variant(problem, box_factor)
        X, y0 = factor_form(boxed)
        n, B = boxed.n, boxed.box
        with self._env(False) as env, gp.Model(env=env) as model:
            self._settings(model, time_limit, gap, threads)
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
            status = self.status(model.Status)
            mask = np.asarray(m.X) > 0.5 if model.SolCount > 0 else None
            dual = float(model.ObjBound) if model.SolCount > 0 or status is Status.OPTIMAL \
                else None
            nodes, code = int(model.NodeCount), int(model.Status)
        return prune_result(problem, boxed, defaulted, mask, method=self.name, dual_bound=dual,
                            backend_status=status, seconds=sw.seconds, nodes=nodes,
                            message=f"Gurobi status {code}",
                            info={"backend": self._version(gp), "gap_setting": gap,
                                  "threads": threads})

    @staticmethod
    def _env(verbose: bool):
        """A started Gurobi environment, quiet unless ``verbose`` (a context manager)."""
        import gurobipy as gp

        env = gp.Env(empty=True)
        env.setParam("OutputFlag", 1 if verbose else 0)
        env.start()
        return env

    @staticmethod
    def _settings(model, time_limit: float | None, gap: float, threads: int) -> None:
        model.Params.Threads = int(threads)
        model.Params.MIPGap = float(gap)
        if time_limit is not None:
            model.Params.TimeLimit = max(0.0, float(time_limit))

    @staticmethod
    def _version(gp) -> str:
        return "Gurobi " + ".".join(str(v) for v in gp.gurobi.version())


GUROBI = Gurobi()
