"""What every general-solver adapter shares: availability, status mapping, the result.

An adapter builds its backend's model, runs it, and hands the solution to
:func:`backend_result`, which recomputes the objective from the solution itself (a backend's own
objective value is never trusted) and keeps the backend's dual bound only as far as it stays at or
below that objective. The backend's bound is as valid as its tolerances make it: adapters are for
cross-checks and benchmarks, and their results say so in ``info["bound_source"]``.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from ..problem import PruneProblem, QuantProblem
from ..result import OPTIMALITY_RTOL, SolveResult, Status, relative_gap


def importable(module: str) -> bool:
    """True when ``module`` can be imported here."""
    return importlib.util.find_spec(module) is not None


def backend_result(
    problem: QuantProblem | PruneProblem,
    weights: np.ndarray,
    *,
    method: str,
    dual_bound: float | None,
    backend_status: Status,
    seconds: float,
    nodes: int = 0,
    codes: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    message: str = "",
    info: dict[str, Any] | None = None,
) -> SolveResult:
    """A :class:`SolveResult` from a backend's solution and dual bound.

    ``backend_status`` is the backend's status already mapped through the adapter's status map.
    ``OPTIMAL`` is kept only if the recomputed gap is within :data:`OPTIMALITY_RTOL`·10³ (general
    solvers are asked for a 1e-6 relative gap); otherwise it becomes ``GAP_LIMIT`` and the
    message says what the backend claimed, so disagreements show instead of hiding.
    """
    weights = np.asarray(weights, dtype=np.float64)
    objective = problem.error(weights)
    lb = None
    if dual_bound is not None and np.isfinite(dual_bound):
        lb = min(float(dual_bound), objective)
    status = backend_status
    gap = relative_gap(objective, lb)
    if status is Status.OPTIMAL and (gap is None or gap > max(1e-6, OPTIMALITY_RTOL * 1e3)):
        status = Status.GAP_LIMIT
        message = (message + "; " if message else "") + (
            f"backend claimed optimal but the recomputed gap is {gap}"
        )
    info = dict(info or {})
    info.setdefault("bound_source", f"{method} dual bound (backend tolerances)")
    return SolveResult(
        status=status,
        weights=weights,
        objective=objective,
        lower_bound=lb,
        norm=problem.norm,
        method=method,
        nodes=int(nodes),
        seconds=float(seconds),
        codes=codes,
        mask=mask,
        message=message,
        info=info,
    )
