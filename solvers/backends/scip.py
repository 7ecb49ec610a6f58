"""SCIP, through pyscipopt (quantization and pruning) and through cvxpy (quantization).

**Quantization** (:meth:`Scip.solve_quant`): ``min t`` s.t. ``t >= s²(zᵀHz − 2(Hc)ᵀz) + const``
(the direct form of :mod:`solvers.backends.quant_model`; ``formulation="factor"`` uses
``t >= ‖y‖²``, ``y = sR(z − c)``), integer ``z`` in the grid, started from round-to-nearest.

**Pruning** (:meth:`Scip.solve_prune`): the paper's big-M MIQP (:mod:`solvers.backends.bigm`),
the objective ``‖X(w − w0)‖²`` modelled as ``min t`` with ``t >= Σ_r y_r²`` and
``y = X w − X w0`` (a convex quadratic constraint).

Both: one thread, relative gap ``gap`` (1e-6); the dual bound is SCIP's, valid up to SCIP's
feasibility and optimality tolerances (``info["bound_source"]`` says so).

**Through cvxpy** (:class:`ScipCvxpy`, method ``scip-cvxpy``): the same quantization problem
stated in cvxpy (``sum_squares`` of the factor form) and handed to SCIP. cvxpy reports no dual
bound, so an optimal solve's bound is taken as ``objective / (1 + gap)`` (SCIP's gap criterion)
and a stopped one has none.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..problem import ProblemError, PruneProblem, QuantProblem
from ..result import SolveResult, Status
from ..stopwatch import Stopwatch
from .base import Backend, backend_result
from .bigm import boxed_variant, factor_form, group_rows, prune_result
from .quant_model import QuantModel, codes_from, quant_formulation


class Scip(Backend):
    """SCIP via pyscipopt (method ``scip``, both kinds)."""

    name = "scip"
    requires = ("pyscipopt",)
    #: ``Model.getStatus()`` strings (every value of ``pyscipopt.SCIP_STATUS``).
    STATUS_MAP = {
        "optimal": Status.OPTIMAL,
        "gaplimit": Status.OPTIMAL,  # limits/gap reached: checked again on the recomputed gap
        "timelimit": Status.TIME_LIMIT,
        "userinterrupt": Status.TIME_LIMIT,
        "nodelimit": Status.NODE_LIMIT,
        "totalnodelimit": Status.NODE_LIMIT,
        "stallnodelimit": Status.NODE_LIMIT,
        "infeasible": Status.INFEASIBLE,
        # limits pqbound never sets, and outcomes a bounded feasible model cannot have
        "memlimit": Status.ERROR,
        "sollimit": Status.ERROR,
        "bestsollimit": Status.ERROR,
        "restartlimit": Status.ERROR,
        "primallimit": Status.ERROR,
        "duallimit": Status.ERROR,
        "unbounded": Status.ERROR,
        "inforunbd": Status.ERROR,
        "unknown": Status.ERROR,
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
        """Solve a quantization problem with SCIP. ``nodes`` is SCIP's node count.

        Examples
        --------
        >>> import numpy as np
        >>> p = QuantProblem(np.array([[2.0, 1.9], [1.9, 2.0]]), np.array([0.55, -0.45]),
        ...                  scale=1.0, bits=2)
        >>> round(SCIP.solve_quant(p).objective, 6)   # [0, 0] and [1, -1] tie
        0.0695
        """
        from pyscipopt import quicksum

        quant_formulation(formulation)
        sw = Stopwatch()
        qm = QuantModel.build(problem)
        n = qm.n
        m = self._model("quant", time_limit, gap, threads, verbose)
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
        codes = codes_from([m.getVal(v) for v in z], qm.lo, qm.hi) if m.getNSols() > 0 \
            else qm.rtn
        return backend_result(
            problem, problem.scale * codes, method=self.name, dual_bound=float(m.getDualbound()),
            backend_status=self.status(raw), seconds=sw.seconds, nodes=int(m.getNNodes()),
            codes=codes, message=f"SCIP status {raw}",
            info={"backend": f"SCIP {m.version()} (pyscipopt)", "formulation": formulation,
                  "gap_setting": gap, "bound_source": "SCIP dual bound (SCIP tolerances)"},
        )

    def solve_prune(
        self,
        problem: PruneProblem,
        *,
        time_limit: float | None = None,
        gap: float = 1e-6,
        box_factor: float | None = None,
    ) -> SolveResult:
        """Solve the big-M model of a pruning problem with SCIP.

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
        >>> p = PruneProblem(np.diag([1.0, 2.0, 3.0]), np.array([1.0, -1.0, 0.5]), k=1,
        ...                  box_factor=2.0)
        >>> r = SCIP.solve_prune(p)
        >>> r.mask.tolist(), round(r.objective, 6)
        ([False, True, False], 1.75)
        """
        import pyscipopt as scip

        sw = Stopwatch()
        boxed, defaulted = boxed_variant(problem, box_factor)
        X, y0 = factor_form(boxed)
        n, r = boxed.n, X.shape[0]
        B = boxed.box
        model = self._model("prune", time_limit, gap, 1, False)
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
        raw = model.getStatus()
        mask = None
        if model.getNSols() > 0:
            sol = model.getBestSol()
            mask = np.array([model.getSolVal(sol, v) > 0.5 for v in m])
        try:
            dual = float(model.getDualbound())
        except Exception:  # noqa: BLE001
            dual = None
        return prune_result(problem, boxed, defaulted, mask, method=self.name, dual_bound=dual,
                            backend_status=self.status(raw), seconds=sw.seconds,
                            nodes=int(model.getNNodes()), message=f"SCIP status {raw}",
                            info={"backend": f"SCIP {model.version()} (pyscipopt)",
                                  "gap_setting": gap})

    @staticmethod
    def _model(name: str, time_limit: float | None, gap: float, threads: int, verbose: bool):
        """A pyscipopt model with pqbound's settings: quiet, ``threads`` threads, ``gap``."""
        from pyscipopt import Model

        m = Model(name)
        if not verbose:
            m.hideOutput()
        m.setParam("limits/gap", float(gap))
        m.setParam("parallel/maxnthreads", int(threads))
        m.setParam("lp/threads", int(threads))
        if time_limit is not None:
            m.setParam("limits/time", max(0.01, float(time_limit)))
        return m


class ScipCvxpy(Backend):
    """SCIP through cvxpy (method ``scip-cvxpy``, quantization only)."""

    name = "scip-cvxpy"
    requires = ("cvxpy", "pyscipopt")
    #: ``Problem.status`` strings of cvxpy (``cvxpy.settings``); cvxpy folds SCIP's time, gap
    #: and node limits into ``optimal_inaccurate``.
    STATUS_MAP = {
        "optimal": Status.OPTIMAL,
        "optimal_inaccurate": Status.TIME_LIMIT,
        "user_limit": Status.TIME_LIMIT,
        "infeasible": Status.INFEASIBLE,
        "infeasible_inaccurate": Status.INFEASIBLE,
        "unbounded": Status.ERROR,
        "unbounded_inaccurate": Status.ERROR,
        "infeasible_or_unbounded": Status.ERROR,
        "solver_error": Status.ERROR,
    }

    def solve_quant(
        self,
        problem: QuantProblem,
        *,
        time_limit: float | None = None,
        gap: float = 1e-6,
        verbose: bool = False,
    ) -> SolveResult:
        """Solve a quantization problem with SCIP through cvxpy (``sum_squares`` of the factor
        form).

        Examples
        --------
        >>> import numpy as np
        >>> p = QuantProblem(np.array([[2.0, 1.9], [1.9, 2.0]]), np.array([0.55, -0.45]),
        ...                  scale=1.0, bits=2)
        >>> round(SCIP_CVXPY.solve_quant(p).objective, 6)
        0.0695
        """
        import cvxpy as cp

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
        if z.value is None:  # no solution to read: round to nearest, no bound
            codes, status = qm.rtn, Status.TIME_LIMIT
        else:
            codes, status = codes_from(z.value, qm.lo, qm.hi), self.status(raw)
        obj = problem.error(problem.scale * codes)
        dual = obj / (1.0 + gap) if status is Status.OPTIMAL else None
        return backend_result(
            problem, problem.scale * codes, method=self.name, dual_bound=dual,
            backend_status=status, seconds=sw.seconds, codes=codes,
            message=f"cvxpy status {raw}",
            info={"backend": "SCIP (cvxpy)", "gap_setting": gap,
                  "bound_source": "objective/(1+gap) from SCIP's optimal status (cvxpy reports "
                                  "no dual bound)"},
        )


SCIP = Scip()
SCIP_CVXPY = ScipCvxpy()
