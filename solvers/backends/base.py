"""The one interface every general-solver backend implements, and the result it hands back.

A backend (SCIP, Gurobi, HiGHS, CP-SAT, …) is one small class, one file each
(``solvers/backends/<name>.py``), in the way cvxpy puts its solvers behind one base class:

* ``name``: the registry name of its methods (``"scip"``, ``"highs"``, …);
* ``requires``: the modules it imports, lazily, inside its solves; :meth:`Backend.available`
  checks they can be imported without importing them;
* ``STATUS_MAP``: the backend's own status codes (strings, ints or enum names, as the backend
  reports them), every one of them, into pqbound's :class:`~solvers.result.Status`;
  :meth:`Backend.status` reads it and treats a code the map does not know as ``ERROR``;
* ``solve_quant(problem, *, time_limit=None, …)`` and ``solve_prune(problem, *, time_limit=None,
  …)`` with explicit keyword options (no ``**options``: the registry refuses unknown options by
  name, :meth:`solvers.registry.Method.check_options`). A backend that cannot solve one kind
  keeps the base method, which says so (:class:`~solvers.problem.ProblemError`).

The registry (:mod:`solvers.registry`) is the one list of methods; its backend entries point at a
backend instance's solve method (``"solvers.backends.scip:SCIP.solve_quant"``).

Every solve hands its solution to :func:`backend_result`, which recomputes the objective from the
solution itself (a backend's own objective value is never trusted) and keeps the backend's dual
bound only as far as it stays at or below that objective. The backend's bound is as valid as its
tolerances make it: backends are for cross-checks and benchmarks, and their results say so in
``info["bound_source"]``.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ..problem import ProblemError, PruneProblem, QuantProblem
from ..result import OPTIMALITY_RTOL, SolveResult, Status, relative_gap

log = logging.getLogger(__name__)


def importable(module: str) -> bool:
    """True when ``module`` can be imported here (without importing it).

    Examples
    --------
    >>> importable("numpy"), importable("no_such_module_here")
    (True, False)
    """
    return importlib.util.find_spec(module) is not None


class Backend:
    """One general solver behind pqbound's interface (see the module docstring).

    Examples
    --------
    A backend that solves neither kind says so by name:

    >>> import numpy as np
    >>> class Nothing(Backend):
    ...     name = "nothing"
    >>> Nothing().kinds(), Nothing().available()
    ((), True)
    >>> Nothing().solve_prune(PruneProblem(np.eye(2), np.ones(2), k=1))
    Traceback (most recent call last):
    ...
    solvers.problem.ProblemError: backend 'nothing' does not solve pruning problems ...
    """

    #: Registry name of the backend's methods.
    name: ClassVar[str] = ""
    #: Modules its solves import.
    requires: ClassVar[tuple[str, ...]] = ()
    #: Every status code of the backend → pqbound's status.
    STATUS_MAP: ClassVar[Mapping[Any, Status]] = {}

    def available(self) -> bool:
        """True when every module the backend needs can be imported here."""
        return all(importable(m) for m in self.requires)

    def status(self, raw: Any) -> Status:
        """The backend's status code ``raw`` as pqbound's :class:`Status` (unknown: ``ERROR``)."""
        try:
            return self.STATUS_MAP[raw]
        except (KeyError, TypeError):
            log.warning("%s: status %r is not in its STATUS_MAP, reported as error",
                        self.name, raw)
            return Status.ERROR

    def kinds(self) -> tuple[str, ...]:
        """The problem kinds it solves: ``"quant"``, ``"prune"``, both or neither."""
        return tuple(kind for kind in ("quant", "prune")
                     if getattr(type(self), f"solve_{kind}") is not getattr(Backend,
                                                                               f"solve_{kind}"))

    def solve_quant(self, problem: QuantProblem, *, time_limit: float | None = None
                    ) -> SolveResult:
        """Solve a quantization problem (a backend that can overrides this)."""
        raise self._cannot("quantization")

    def solve_prune(self, problem: PruneProblem, *, time_limit: float | None = None
                    ) -> SolveResult:
        """Solve a pruning problem (a backend that can overrides this)."""
        raise self._cannot("pruning")

    def _cannot(self, what: str) -> ProblemError:
        return ProblemError(f"backend {self.name!r} does not solve {what} problems "
                            f"(it solves: {', '.join(self.kinds()) or 'none'})")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


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

    ``backend_status`` is the backend's status already mapped through its ``STATUS_MAP``.
    ``OPTIMAL`` is kept only if the recomputed gap is within :data:`OPTIMALITY_RTOL`·10³ (general
    solvers are asked for a 1e-6 relative gap); otherwise it becomes ``GAP_LIMIT`` and the
    message says what the backend claimed, so disagreements show instead of hiding.

    Examples
    --------
    >>> import numpy as np
    >>> p = QuantProblem(np.eye(2), np.array([0.3, -0.2]), scale=0.5, bits=2)
    >>> r = backend_result(p, np.array([0.5, 0.0]), method="demo", dual_bound=0.0,
    ...                    backend_status=Status.OPTIMAL, seconds=0.0)
    >>> r.status.value, round(r.objective, 12), r.lower_bound
    ('gap_limit', 0.08, 0.0)
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
