"""SCIP on the level problem: the binary expansion of the levels (an independent MIQP model).

For a :class:`~solvers.problem.LevelProblem` with levels ``λ_jl`` (``l = 0 … L−1``)::

    minimise t   s.t.  t >= ‖y‖²,  y = R(w − w0)   (H = RᵀR),
                       w_j = Σ_l λ_jl b_jl,   Σ_l b_jl = 1,   b_jl ∈ {0, 1},
                       Σ_j Σ_{l: λ_jl ≠ 0} b_jl <= k            (a nonzero limit)
                       Σ_{j ∈ group} Σ_{l: λ_jl ≠ 0} b_jl <= N  (each N:M group)

one binary per (input, level), exactly one per input. It shares nothing with the exact solver
(no factorisation, no ordering, no search), so agreement between the two is a real cross-check.
The returned weights are the levels of the binaries SCIP chose; the objective is recomputed from
them (:func:`solvers.backends.base.backend_result`) and SCIP's dual bound is kept as far as it
stays at or below it, valid up to SCIP's tolerances (``info["bound_source"]``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..problem import LevelProblem
from ..quant.factor import ordered_cholesky
from ..result import SolveResult
from ..stopwatch import Stopwatch
from .base import Backend, backend_result
from .scip import Scip


@dataclass(frozen=True)
class LevelModel:
    """The binary expansion's data, for any MIQP backend (SCIP here, CPLEX in benchmarks/).

    ``T`` (n, L) levels, ``nonzero`` (n, L) bool (``λ_jl ≠ 0``), ``H``, ``lin = −2Hw0``,
    ``const = w0ᵀHw0`` (the direct form), ``R``, ``rhs = R·w0`` (the factor form
    ``‖R(w − w0)‖²``, nonzero rows of the exact Cholesky factor), ``k`` (or None),
    ``groups``: lists of inputs with at most ``N`` nonzeros each, ``start`` a feasible level
    index per input (the nearest level; the zero level under a limit).
    """

    n: int
    T: np.ndarray
    nonzero: np.ndarray
    H: np.ndarray
    lin: np.ndarray
    const: float
    k: int | None
    groups: list[list[int]]
    N: int | None
    start: np.ndarray
    R: np.ndarray
    rhs: np.ndarray

    @classmethod
    def build(cls, p: LevelProblem) -> LevelModel:
        T = np.ascontiguousarray(p.table)
        n = p.n
        groups: list[list[int]] = []
        N = None
        if p.nm is not None:
            N, M = p.nm
            groups = [list(range(g, g + M)) for g in range(0, n, M)]
        start = np.abs(T - p.w0[:, None]).argmin(axis=1)
        if p.k is not None:  # all zero is feasible under any limit
            start = p.zero_index.copy()
        R, _ = ordered_cholesky(p.H, np.arange(n))
        R = R[np.diag(R) > 0.0]
        return cls(n, T, T != 0.0, p.H, -2.0 * (p.H @ p.w0), float(p.w0 @ p.H @ p.w0), p.k,
                   groups, N, start, R, R @ p.w0)

    def weights(self, b: np.ndarray) -> np.ndarray:
        """Weights from a (n, L) array of binary values (the largest per input wins)."""
        ix = np.asarray(b, dtype=float).reshape(self.n, -1).argmax(axis=1)
        return self.T[np.arange(self.n), ix]


class ScipLevels(Backend):
    """SCIP on level problems (its name, modules and status map are :class:`Scip`'s)."""

    name = Scip.name
    requires = Scip.requires
    STATUS_MAP = Scip.STATUS_MAP

    def solve_levels(self, problem: LevelProblem, *, time_limit: float | None = None,
                     gap: float = 1e-6, threads: int = 1, verbose: bool = False) -> SolveResult:
        """Solve the binary-expansion MIQP with SCIP (pyscipopt); ``nodes`` is SCIP's count.

        Examples
        --------
        >>> import numpy as np
        >>> p = LevelProblem(np.array([[2.0, 1.9], [1.9, 2.0]]), [0.8, -0.45],
        ...                  levels=[-1.0, -0.5, 0.0, 0.5, 1.0], k=1)
        >>> SCIP_LEVELS.solve_levels(p).weights.tolist()
        [0.5, 0.0]
        """
        return solve_scip_levels(problem, time_limit=time_limit, gap=gap, threads=threads,
                                 verbose=verbose, status=self.status)


def solve_scip_levels(problem: LevelProblem, *, time_limit: float | None, gap: float,
                      threads: int, verbose: bool, status) -> SolveResult:
    """The model and its solve (see the module docstring); ``status`` maps SCIP's codes.
    """
    from pyscipopt import quicksum

    sw = Stopwatch()
    lm = LevelModel.build(problem)
    n, L = lm.T.shape
    m = Scip._model("levels", time_limit, gap, threads, verbose)
    b = [[m.addVar(f"b{j}_{l}", vtype="B") for l in range(L)] for j in range(n)]
    lo, hi = lm.T[:, 0], lm.T[:, -1]
    w = [m.addVar(f"w{j}", lb=float(lo[j]), ub=float(hi[j])) for j in range(n)]
    for j in range(n):
        m.addCons(quicksum(b[j]) == 1)
        m.addCons(quicksum(float(lm.T[j, l]) * b[j][l] for l in range(L)) == w[j])
    nz = [[b[j][l] for l in range(L) if lm.nonzero[j, l]] for j in range(n)]
    if lm.k is not None:
        m.addCons(quicksum(v for row in nz for v in row) <= lm.k)
    for grp in lm.groups:
        m.addCons(quicksum(v for j in grp for v in nz[j]) <= lm.N)
    t = m.addVar("t", lb=0.0)
    # the error as a sum of squares ‖R(w − w0)‖², H = RᵀR (rank-revealing, no cancellation)
    y = [m.addVar(f"y{r}", lb=None, ub=None) for r in range(lm.R.shape[0])]
    for r, row in enumerate(lm.R):
        m.addCons(quicksum(float(row[j]) * w[j] for j in range(n) if row[j] != 0.0) - y[r]
                  == float(lm.rhs[r]))
    m.addCons(quicksum(v * v for v in y) <= t)
    m.setObjective(t, "minimize")
    start = m.createSol()
    w_start = lm.T[np.arange(n), lm.start]
    for j in range(n):
        for l in range(L):
            m.setSolVal(start, b[j][l], 1.0 if l == lm.start[j] else 0.0)
        m.setSolVal(start, w[j], float(w_start[j]))
    m.setSolVal(start, t, problem.error(w_start) * (1 + 1e-9) + 1e-12)
    m.addSol(start, free=True)
    m.optimize()
    raw = m.getStatus()
    mapped = status(raw)
    if m.getNSols() > 0:
        weights = lm.weights(np.array([[m.getVal(v) for v in row] for row in b]))
    else:
        weights = w_start
    problem.check_weights(weights)
    return backend_result(
        problem, weights, method="scip", dual_bound=float(m.getDualbound()),
        backend_status=mapped, seconds=sw.seconds, nodes=int(m.getNNodes()),
        message=f"SCIP status {raw}",
        info={"backend": "SCIP (pyscipopt)", "model": "binary expansion of the levels",
              "gap_setting": gap, "bound_source": "SCIP dual bound (SCIP tolerances)"},
    )


SCIP_LEVELS = ScipLevels()
