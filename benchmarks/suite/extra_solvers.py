"""Adapters to the optional solvers of the ``benchmarks`` extra: CPLEX, Xpress, fpylll, abess.

They live here, not in ``solvers/``, because they exist only to be measured against: each is
guarded by importability and returns the shared :class:`~solvers.result.SolveResult` through
:func:`solvers.backends.base.backend_result`, which recomputes the objective from the returned
solution (a backend's own objective value is never trusted).

Models (one output channel; ``f(w) = (w − w0)ᵀH(w − w0)``):

* **CPLEX / Xpress quantization**: integer ``z ∈ [zmin, zmax]ⁿ``, objective
  ``s²·zᵀHz − 2s·(Hw0)ᵀz + w0ᵀHw0`` (the constant added back outside the solver). Relative MIP
  gap 1e-6 (measured on the true error: the constant is the model's objective offset), one
  thread. CPLEX's absolute gap is set to 0, so only the relative gap stops it; Xpress keeps its
  *default* absolute and cut-off tolerances (``MIPABSSTOP`` …), so that the report shows what its
  "optimal" means out of the box.
* **CPLEX / Xpress pruning**: the paper's big-M model, binary ``m``, continuous ``w`` with
  ``−B·m_i ≤ w_i ≤ B·m_i``, ``Σm ≤ k``, ``B = box_factor·max|w0|`` (the problem's box; 2 when the
  problem has none, as in the paper).
* **fpylll CVP** (quantization, *unboxed*): ``H = RᵀR``, lattice basis ``s·R`` and target
  ``R·w0``, both scaled by ``2^40 / max|·|`` and rounded to integers, LLL-reduced, then
  Schnorr–Euchner enumeration (``fpylll.Enumeration`` on a float64 Gram–Schmidt object) around
  the target within the radius of its Babai point, which finds the closest vector. (fpylll's
  ``CVP.closest_vector(method="proved")`` takes seconds to minutes on these lattices; the
  enumeration is the "LLL + closest-vector enumeration, about 2 ms" the issue compares against.)
  It ignores the grid's box, so it is only a valid answer
  when the point it finds lies in the box; otherwise the row says so. Run at 8 bits or more only
  (below, the box binds too often, and the enumeration cannot be stopped by a time limit).
  Rank-deficient ``H`` has no such basis: skipped.
* **abess** (pruning heuristic): best-subset regression on ``X = R``, ``y = R·w0`` with support
  size ``k``, then the exact least-squares refit on the chosen support.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from solvers.backends.base import backend_result
from solvers.problem import ProblemError, PruneProblem, QuantProblem
from solvers.result import SolveResult, Status
from solvers.stopwatch import Stopwatch

#: Relative MIP gap asked of every general solver.
MIP_GAP = 1e-6


class LicenceSizeError(RuntimeError):
    """A size-limited (community / pip) licence refused the model."""


@dataclass(frozen=True)
class ExtraMethod:
    name: str
    kind: str
    module: str
    fn: Callable[..., SolveResult]
    certified: bool
    summary: str

    def available(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def quant_qp(p: QuantProblem) -> tuple[np.ndarray, np.ndarray, float]:
    """``(Q, c, const)`` with ``f(s·z) = ½ zᵀQz + cᵀz + const``."""
    Q = 2.0 * p.scale**2 * p.H
    c = -2.0 * p.scale * (p.H @ p.w0)
    return Q, c, p.norm


def big_m(p: PruneProblem) -> float:
    """Bound on kept weights: the problem's box, else the paper's ``2·max|w0|``."""
    box = p.box
    if box is None:
        box = 2.0 * float(np.max(np.abs(p.w0)))
    return max(box, 1e-12)


def factor(H: np.ndarray) -> np.ndarray:
    """A square ``R`` with ``RᵀR = H`` (symmetric square root through the eigendecomposition)."""
    lam, V = np.linalg.eigh(H)
    lam = np.clip(lam, 0.0, None)
    return (V * np.sqrt(lam)) @ V.T


def _codes_from_weights(p: QuantProblem, w: np.ndarray) -> np.ndarray:
    z = np.clip(np.rint(np.asarray(w) / p.scale), p.zmin, p.zmax).astype(np.int64)
    return z


# --------------------------------------------------------------------------------------------
# CPLEX
# --------------------------------------------------------------------------------------------


_CPLEX_OPTIMAL = {101, 102}  # MIP_optimal, MIP_optimal_tolerance
_CPLEX_TIME = {107, 108}  # time limit (feasible / infeasible)


def _cplex_model(time_limit: float | None):
    import cplex

    c = cplex.Cplex()
    for stream in ("log", "results", "warning", "error"):
        getattr(c, f"set_{stream}_stream")(None)
    c.parameters.threads.set(1)
    c.parameters.mip.tolerances.mipgap.set(MIP_GAP)
    c.parameters.mip.tolerances.absmipgap.set(0.0)
    if time_limit is not None:
        c.parameters.timelimit.set(max(0.01, float(time_limit)))
    return c


def _cplex_solve(c, sw: Stopwatch) -> tuple[Status, float | None, int, str]:
    import cplex

    try:
        c.solve()
    except cplex.exceptions.CplexSolverError as exc:
        if exc.args[2] in (1016,):  # promotional version: problem size limits exceeded
            raise LicenceSizeError(str(exc)) from None
        raise
    code = c.solution.get_status()
    status = Status.OPTIMAL if code in _CPLEX_OPTIMAL else (
        Status.TIME_LIMIT if code in _CPLEX_TIME else Status.ERROR)
    try:
        bound = float(c.solution.MIP.get_best_objective())
    except cplex.exceptions.CplexError:
        bound = None
    nodes = int(c.solution.progress.get_num_nodes_processed())
    return status, bound, nodes, c.solution.get_status_string()


def cplex_quant(p: QuantProblem, *, time_limit: float | None = None, **_: Any) -> SolveResult:
    import cplex

    sw = Stopwatch()
    Q, cvec, const = quant_qp(p)
    n = p.n
    c = _cplex_model(time_limit)
    c.variables.add(obj=cvec.tolist(), lb=[float(p.zmin)] * n, ub=[float(p.zmax)] * n,
                    types=[c.variables.type.integer] * n)
    idx = list(range(n))
    c.objective.set_quadratic([cplex.SparsePair(ind=idx, val=Q[i].tolist()) for i in range(n)])
    c.objective.set_offset(const)
    try:
        status, bound, nodes, msg = _cplex_solve(c, sw)
    except cplex.exceptions.CplexSolverError as exc:
        if exc.args[2] == 5002:  # Q not PSD to CPLEX's tolerance (rank-deficient H)
            c.parameters.optimalitytarget.set(3)
            status, bound, nodes, msg = _cplex_solve(c, sw)
        else:
            raise
    z = np.rint(np.asarray(c.solution.get_values())).astype(np.int64)
    z = np.clip(z, p.zmin, p.zmax)
    return backend_result(
        p, p.scale * z.astype(float), method="cplex", codes=z,
        dual_bound=bound, backend_status=status,
        seconds=sw.seconds, nodes=nodes, message=f"cplex: {msg}",
    )


def cplex_prune(p: PruneProblem, *, time_limit: float | None = None, **_: Any) -> SolveResult:
    import cplex

    sw = Stopwatch()
    n, M = p.n, big_m(p)
    c = _cplex_model(time_limit)
    lin = (-2.0 * (p.H @ p.w0)).tolist()
    c.variables.add(obj=lin, lb=[-M] * n, ub=[M] * n)  # w: 0..n-1
    c.variables.add(obj=[0.0] * n, types=[c.variables.type.binary] * n)  # m: n..2n-1
    Q = 2.0 * p.H
    qrows = [cplex.SparsePair(ind=list(range(n)), val=Q[i].tolist()) for i in range(n)]
    qrows += [cplex.SparsePair(ind=[], val=[]) for _ in range(n)]
    c.objective.set_quadratic(qrows)
    c.objective.set_offset(p.norm)
    rows, senses, rhs = [], [], []
    for i in range(n):
        rows.append(cplex.SparsePair(ind=[i, n + i], val=[1.0, -M]))
        senses.append("L")
        rhs.append(0.0)
        rows.append(cplex.SparsePair(ind=[i, n + i], val=[1.0, M]))
        senses.append("G")
        rhs.append(0.0)
    rows.append(cplex.SparsePair(ind=list(range(n, 2 * n)), val=[1.0] * n))
    senses.append("L")
    rhs.append(float(p.k))
    c.linear_constraints.add(lin_expr=rows, senses=senses, rhs=rhs)
    try:
        status, bound, nodes, msg = _cplex_solve(c, sw)
    except cplex.exceptions.CplexSolverError as exc:
        if exc.args[2] == 5002:
            c.parameters.optimalitytarget.set(3)
            status, bound, nodes, msg = _cplex_solve(c, sw)
        else:
            raise
    x = np.asarray(c.solution.get_values())
    w, mask = _prune_solution(p, x[:n], x[n:])
    return backend_result(
        p, w, method="cplex", mask=mask,
        dual_bound=bound, backend_status=status,
        seconds=sw.seconds, nodes=nodes, message=f"cplex: {msg}", info={"big_m": M},
    )


def _prune_solution(p: PruneProblem, w: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The backend's point with the weights its mask drops set exactly to zero.

    The weights are the backend's own (no refit): the objective recomputed from them is what the
    backend really found.
    """
    mask = np.asarray(m) > 0.5
    if mask.sum() > p.k:  # cannot happen for a feasible point; keep the k largest to stay valid
        keep = np.argsort(-np.abs(w))[: p.k]
        mask = np.zeros(p.n, dtype=bool)
        mask[keep] = True
    w = np.where(mask, w, 0.0)
    return w, mask


# --------------------------------------------------------------------------------------------
# Xpress
# --------------------------------------------------------------------------------------------


def _xpress_problem(time_limit: float | None):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import xpress as xp

        prob = xp.problem()
    prob.setControl("outputlog", 0)
    prob.setControl("threads", 1)
    prob.setControl("miprelstop", MIP_GAP)
    if time_limit is not None:
        prob.setControl("timelimit", max(0.01, float(time_limit)))
    return prob


def _upper_triangle(Q: np.ndarray, offset: int = 0) -> tuple[list[int], list[int], list[float]]:
    i, j = np.triu_indices(Q.shape[0])
    vals = Q[i, j]
    keep = vals != 0.0
    return (i[keep] + offset).tolist(), (j[keep] + offset).tolist(), vals[keep].tolist()


def _xpress_run(prob) -> tuple[Status, float | None, int, str]:
    import xpress as xp

    try:
        prob.optimize()
    except xp.ModelError as exc:  # pragma: no cover - depends on the licence
        if "size" in str(exc).lower() or "licen" in str(exc).lower():
            raise LicenceSizeError(str(exc)) from None
        raise
    sol_status = xp.enums.SolStatus(int(prob.attributes.solstatus))
    stop = xp.enums.StopType(int(prob.attributes.stopstatus))
    optimal = sol_status == xp.SolStatus.OPTIMAL
    status = Status.OPTIMAL if optimal else (
        Status.TIME_LIMIT if stop == xp.enums.StopType.TIMELIMIT else Status.ERROR)
    bound = float(prob.attributes.bestbound)
    nodes = int(prob.attributes.nodes)
    msg = f"solstatus={_name(sol_status)}, stopstatus={_name(stop)}"
    return status, bound if math.isfinite(bound) else None, nodes, msg


def _name(x: Any) -> str:
    return getattr(x, "name", str(x))


def xpress_quant(p: QuantProblem, *, time_limit: float | None = None, **_: Any) -> SolveResult:
    sw = Stopwatch()
    Q, cvec, const = quant_qp(p)
    n = p.n
    prob = _xpress_problem(time_limit)
    q1, q2, qv = _upper_triangle(Q)
    try:
        prob.loadMIQP("quant", rowtype=[], rhs=[], rng=None, objcoef=cvec.tolist(),
                      start=[0] * (n + 1), collen=None, rowind=[], rowcoef=[],
                      lb=[float(p.zmin)] * n, ub=[float(p.zmax)] * n,
                      objqcol1=q1, objqcol2=q2, objqcoef=qv,
                      coltype=["I"] * n, entind=list(range(n)), limit=None)
        prob.chgObj([-1], [-const])  # column -1: minus the objective constant
        status, bound, nodes, msg = _xpress_run(prob)
    except Exception as exc:
        _maybe_licence(exc)
        raise
    x = np.asarray(prob.getSolution(), dtype=float)
    z = np.clip(np.rint(x), p.zmin, p.zmax).astype(np.int64)
    return backend_result(
        p, p.scale * z.astype(float), method="xpress", codes=z,
        dual_bound=bound, backend_status=status,
        seconds=sw.seconds, nodes=nodes, message=f"xpress: {msg}",
    )


def xpress_prune(p: PruneProblem, *, time_limit: float | None = None, **_: Any) -> SolveResult:
    sw = Stopwatch()
    n, M = p.n, big_m(p)
    prob = _xpress_problem(time_limit)
    q1, q2, qv = _upper_triangle(2.0 * p.H)
    # columns: w (0..n-1), m (n..2n-1); rows: w_i - M m_i <= 0, w_i + M m_i >= 0, Σ m <= k
    rowtype = ["L"] * n + ["G"] * n + ["L"]
    rhs = [0.0] * (2 * n) + [float(p.k)]
    start, rowind, rowcoef = [0], [], []
    for i in range(n):  # w_i appears in rows i and n + i
        rowind += [i, n + i]
        rowcoef += [1.0, 1.0]
        start.append(len(rowind))
    for i in range(n):  # m_i appears in rows i, n + i and 2n
        rowind += [i, n + i, 2 * n]
        rowcoef += [-M, M, 1.0]
        start.append(len(rowind))
    lin = (-2.0 * (p.H @ p.w0)).tolist() + [0.0] * n
    try:
        prob.loadMIQP("prune", rowtype=rowtype, rhs=rhs, rng=None, objcoef=lin, start=start,
                      collen=None, rowind=rowind, rowcoef=rowcoef,
                      lb=[-M] * n + [0.0] * n, ub=[M] * n + [1.0] * n,
                      objqcol1=q1, objqcol2=q2, objqcoef=qv,
                      coltype=["B"] * n, entind=list(range(n, 2 * n)), limit=None)
        prob.chgObj([-1], [-p.norm])
        status, bound, nodes, msg = _xpress_run(prob)
    except Exception as exc:
        _maybe_licence(exc)
        raise
    x = np.asarray(prob.getSolution(), dtype=float)
    w, mask = _prune_solution(p, x[:n], x[n:])
    return backend_result(
        p, w, method="xpress", mask=mask,
        dual_bound=bound, backend_status=status,
        seconds=sw.seconds, nodes=nodes, message=f"xpress: {msg}", info={"big_m": M},
    )


def _maybe_licence(exc: Exception) -> None:
    text = str(exc).lower()
    if "community" in text or "size" in text and "licen" in text or "too large" in text:
        raise LicenceSizeError(str(exc)) from None


# --------------------------------------------------------------------------------------------
# fpylll: LLL + closest-vector enumeration (unboxed quantization)
# --------------------------------------------------------------------------------------------

#: Integer scaling of the lattice basis: entries up to 2^FPYLLL_BITS.
FPYLLL_BITS = 40
#: Below this bit width the box binds too often for the unboxed CVP to say anything.
FPYLLL_MIN_BITS = 8


def fpylll_cvp(p: QuantProblem, *, time_limit: float | None = None, **_: Any) -> SolveResult:
    """Closest vector of the lattice ``s·R·Zⁿ`` to ``R·w0``, ignoring the box (see module doc)."""
    from fpylll import GSO, LLL, Enumeration, IntegerMatrix

    if p.bits < FPYLLL_MIN_BITS:
        raise ProblemError(
            f"fpylll CVP ignores the box, which binds often below {FPYLLL_MIN_BITS} bits, and "
            "its enumeration cannot be stopped by a time limit: run at 8 bits only")
    sw = Stopwatch()
    R = np.linalg.cholesky(p.H + 0.0).T if _full_rank(p.H) else None
    if R is None:
        raise ProblemError("fpylll CVP needs a full-rank H (a lattice basis); H is singular")
    B = p.scale * R.T  # rows: basis vectors s·R[:, i]
    t = R @ p.w0
    F = 2.0**FPYLLL_BITS / max(float(np.max(np.abs(B))), float(np.max(np.abs(t))), 1e-300)
    A = IntegerMatrix.from_matrix([[int(v) for v in row] for row in np.rint(B * F)])
    LLL.reduction(A)
    M = GSO.Mat(A, float_type="d")
    M.update_gso()
    target = [float(v) for v in t * F]
    babai = np.array(A.multiply_left(M.babai(target)), dtype=float)
    radius = float(np.sum((babai - np.asarray(target)) ** 2)) * (1.0 + 1e-9)
    _, coeffs = Enumeration(M).enumerate(0, p.n, radius, 0, target=M.from_canonical(target))[0]
    v = np.array(A.multiply_left([int(round(x)) for x in coeffs]), dtype=float)
    z = np.rint(np.linalg.solve(B.T * F, v)).astype(np.int64)
    inside = bool(np.all(z >= p.zmin) and np.all(z <= p.zmax))
    zc = np.clip(z, p.zmin, p.zmax)
    res = backend_result(
        p, p.scale * zc.astype(float), method="fpylll-cvp", codes=zc, dual_bound=None,
        backend_status=Status.HEURISTIC, seconds=sw.seconds,
        message="unboxed CVP optimum inside the box" if inside
        else "unboxed CVP optimum lies outside the box (clipped; not a solution of this problem)",
        info={"inside_box": inside, "bound_source": "none (ignores the box)"},
    )
    return res


def _full_rank(H: np.ndarray) -> bool:
    try:
        np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        return False
    lam = np.linalg.eigvalsh(H)
    return bool(lam[0] > 1e-10 * lam[-1])


# --------------------------------------------------------------------------------------------
# abess: best-subset heuristic (pruning)
# --------------------------------------------------------------------------------------------


def abess_prune(p: PruneProblem, *, time_limit: float | None = None, **_: Any) -> SolveResult:
    """abess support of size ``k`` on ``‖R w − R w0‖²``, then the exact refit on it."""
    import warnings

    from abess import LinearRegression

    sw = Stopwatch()
    R = factor(p.H)
    y = R @ p.w0
    if p.k == 0:
        mask = np.zeros(p.n, dtype=bool)
    else:
        model = LinearRegression(support_size=[p.k], fit_intercept=False, thread=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(R, y)
        coef = np.asarray(model.coef_, dtype=float).ravel()
        order = np.argsort(-np.abs(coef))
        mask = np.zeros(p.n, dtype=bool)
        mask[order[: p.k]] = True
    w = refit(p, mask)
    return backend_result(
        p, w, method="abess", mask=mask, dual_bound=None, backend_status=Status.HEURISTIC,
        seconds=sw.seconds, message="abess support + exact refit",
    )


def refit(p: PruneProblem, mask: np.ndarray) -> np.ndarray:
    """Least error with support ⊆ mask (box ignored unless it binds: then clipped)."""
    w = np.zeros(p.n)
    if mask.any():
        Hkk = p.H[np.ix_(mask, mask)]
        w[mask] = np.linalg.lstsq(Hkk, p.H[mask] @ p.w0, rcond=None)[0]
    if p.box is not None:
        w = np.clip(w, -p.box, p.box)
    return w


EXTRA_METHODS: dict[tuple[str, str], ExtraMethod] = {
    (m.kind, m.name): m
    for m in [
        ExtraMethod("cplex", "quant", "cplex", cplex_quant, True,
                    "CPLEX community edition, MIQP (integer codes)"),
        ExtraMethod("xpress", "quant", "xpress", xpress_quant, True,
                    "Xpress community edition, MIQP (default cut-off tolerances)"),
        ExtraMethod("fpylll-cvp", "quant", "fpylll", fpylll_cvp, False,
                    "fpylll LLL + proved CVP enumeration, ignores the box"),
        ExtraMethod("cplex", "prune", "cplex", cplex_prune, True,
                    "CPLEX community edition, big-M MIQP"),
        ExtraMethod("xpress", "prune", "xpress", xpress_prune, True,
                    "Xpress community edition, big-M MIQP (default cut-off tolerances)"),
        ExtraMethod("abess", "prune", "abess", abess_prune, False,
                    "abess best-subset heuristic + exact refit"),
    ]
}
