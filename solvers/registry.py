"""The one registry of solve methods, imported lazily.

Every method is a function ``fn(problem, *, time_limit=None, **options) -> SolveResult`` taking a
:class:`~solvers.problem.QuantProblem` or :class:`~solvers.problem.PruneProblem`. Entries name
the function by ``"module:attribute"`` so that importing the registry costs nothing and a missing
optional backend (gurobipy, …) only matters when that method is asked for. The general solvers'
entries point at a backend's solve method (``"solvers.backends.scip:SCIP.solve_quant"``, see
:mod:`solvers.backends.base`): one backend, one file, both of its kinds.

Options are checked by name before any work (:meth:`Method.check_options`): a method states its
keyword options in its signature, and an unknown one is refused with the list of valid ones.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .problem import LevelProblem, ProblemError, PruneProblem, QuantProblem
from .result import SolveResult


@dataclass(frozen=True)
class Method:
    """One registered solve method."""

    name: str
    kind: str  # "quant", "prune" or "levels"
    target: str  # "package.module:function"
    certified: bool  # returns a proved lower bound
    summary: str
    requires: tuple[str, ...] = ()  # importable modules it needs

    def available(self) -> bool:
        """True when every module it needs can be imported here."""
        return all(importlib.util.find_spec(m) is not None for m in self.requires)

    def load(self) -> Callable[..., SolveResult]:
        """The solve function (``attribute`` may be dotted: a backend's bound method)."""
        if not self.available():
            missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
            raise ProblemError(
                f"method {self.name!r} needs {', '.join(missing)}, which is not installed"
            )
        module, attr = self.target.split(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj

    def options(self) -> list[str] | None:
        """Names of the keyword options the method takes (``None``: it takes any)."""
        params = inspect.signature(self.load()).parameters.values()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return None
        return [p.name for p in params
                if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "time_limit"]

    def check_options(self, options: dict[str, Any]) -> None:
        """Refuse options the method does not take, naming the valid ones."""
        valid = self.options()
        if valid is None:
            return
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ProblemError(
                f"{self.kind} method {self.name!r} has no option {', '.join(unknown)}; "
                f"valid: {', '.join(valid) or '(none)'}"
            )


_Q, _P = "quant", "prune"
_L = "levels"  # LevelProblem: every weight one of its levels, optional nonzero limit

METHODS: dict[tuple[str, str], Method] = {
    (m.kind, m.name): m
    for m in [
        # Quantization: certified
        Method("exact", _Q, "solvers.quant.exact:solve_exact", True,
               "box-constrained integer least squares, Schnorr-Euchner branch-and-bound"),
        Method("sdp", _Q, "solvers.quant.sdp:solve_sdp", True,
               "Park & Boyd SDP relaxation (lower bound) + randomized rounding",
               ("cvxpy",)),
        Method("scip", _Q, "solvers.backends.scip:SCIP.solve_quant", True,
               "SCIP via pyscipopt (MIQP)", ("pyscipopt",)),
        Method("scip-cvxpy", _Q, "solvers.backends.scip:SCIP_CVXPY.solve_quant", True,
               "SCIP via cvxpy", ("cvxpy", "pyscipopt")),
        Method("gurobi", _Q, "solvers.backends.gurobi:GUROBI.solve_quant", True,
               "Gurobi via gurobipy (MIQP)", ("gurobipy",)),
        Method("highs", _Q, "solvers.backends.highs:HIGHS.solve_quant", True,
               "HiGHS MILP, outer approximation with Kelley cuts", ("highspy",)),
        Method("cpsat", _Q, "solvers.backends.cpsat:CPSAT.solve_quant", True,
               "OR-Tools CP-SAT on an integer-scaled model", ("ortools",)),
        # Quantization: heuristics
        Method("rtn", _Q, "solvers.heuristics.rtn:rtn", False, "round to nearest"),
        Method("gptq", _Q, "solvers.heuristics.gptq:gptq", False,
               "GPTQ: sequential rounding with inverse-Hessian error feedback"),
        Method("obq", _Q, "solvers.heuristics.obq:obq", False,
               "OBQ: greedy-order optimal brain quantization"),
        Method("adaround", _Q, "solvers.heuristics.adaround:adaround", False,
               "AdaRound: learned rounding on the layer objective"),
        # Levels (any scalar format, optional nonzero limit): certified
        Method("exact", _L, "solvers.levels.exact:solve_levels", True,
               "Schnorr-Euchner branch-and-bound over per-input sorted levels, nonzero limit"),
        Method("scip", _L, "solvers.backends.scip_levels:SCIP_LEVELS.solve_levels", True,
               "SCIP via pyscipopt (binary expansion of the levels, MIQP)", ("pyscipopt",)),
        # Levels: heuristics (solvers/heuristics/levels.py)
        Method("rtn", _L, "solvers.heuristics.levels:rtn_levels", False,
               "nearest level (under a nonzero limit: magnitude mask first)"),
        Method("gptq", _L, "solvers.heuristics.levels:gptq_levels", False,
               "GPTQ with nearest-level rounding (static groups; act_order option)"),
        Method("wanda", _L, "solvers.heuristics.levels:wanda_levels", False,
               "Wanda mask |w|·sqrt(H_jj), kept weights to the nearest level"),
        Method("wanda-gptq", _L, "solvers.heuristics.levels:wanda_gptq", False,
               "Wanda mask, then GPTQ over the kept inputs towards their exact refit"),
        Method("prune-gptq", _L, "solvers.heuristics.levels:prune_gptq", False,
               "prune then quantize: SparseGPT mask, exact refit, GPTQ over the kept inputs"),
        Method("sparsegpt", _L, "solvers.heuristics.levels:sparsegpt_levels", False,
               "SparseGPT's joint sparse + quantized pass (nearest level)"),
        # Pruning: certified
        Method("exact", _P, "solvers.prune.exact:solve_exact", True,
               "branch-and-bound over sparsity masks"),
        Method("scip", _P, "solvers.backends.scip:SCIP.solve_prune", True,
               "SCIP via pyscipopt (big-M MIQP, the paper's formulation)", ("pyscipopt",)),
        Method("gurobi", _P, "solvers.backends.gurobi:GUROBI.solve_prune", True,
               "Gurobi via gurobipy (big-M MIQP)", ("gurobipy",)),
        Method("highs", _P, "solvers.backends.highs:HIGHS.solve_prune", True,
               "HiGHS MILP, outer approximation of the big-M model", ("highspy",)),
        # Pruning: heuristics
        Method("magnitude", _P, "solvers.heuristics.magnitude:magnitude", False,
               "magnitude pruning, kept weights unchanged"),
        Method("magnitude-refit", _P, "solvers.heuristics.magnitude:magnitude_refit", False,
               "magnitude pruning with least-squares refit of kept weights"),
        Method("obs", _P, "solvers.heuristics.obs:obs_greedy", False,
               "OBS greedy: remove the least-damaging weight, exact update, repeat"),
        Method("sparsegpt", _P, "solvers.heuristics.sparsegpt:sparsegpt", False,
               "SparseGPT: column-wise mask selection with inverse-Hessian updates"),
        Method("wanda", _P, "solvers.heuristics.wanda:wanda", False,
               "Wanda: keep the largest |w|·sqrt(H_jj), weights unchanged"),
        Method("wanda-refit", _P, "solvers.heuristics.wanda:wanda_refit", False,
               "Wanda's mask with an exact least-squares refit of the kept weights"),
    ]
}


def methods(kind: str) -> list[Method]:
    """Registered methods for ``"quant"``, ``"prune"`` or ``"levels"``."""
    return [m for (k, _), m in METHODS.items() if k == kind]


def get_method(kind: str, name: str) -> Method:
    try:
        return METHODS[(kind, name)]
    except KeyError:
        valid = ", ".join(m.name for m in methods(kind))
        raise ProblemError(f"unknown {kind} method {name!r}; valid: {valid}") from None


def solve(
    problem: QuantProblem | PruneProblem | LevelProblem,
    method: str = "exact",
    *,
    time_limit: float | None = None,
    **options: Any,
) -> SolveResult:
    """Solve ``problem`` with a registered method.

    Examples
    --------
    >>> import numpy as np
    >>> from solvers import QuantProblem, solve
    >>> p = QuantProblem(np.eye(3), np.array([0.26, -0.49, 0.9]), scale=0.25, bits=3)
    >>> solve(p, "rtn").objective >= solve(p, "exact").lower_bound
    True
    """
    if isinstance(problem, QuantProblem):
        kind = _Q
    elif isinstance(problem, PruneProblem):
        kind = _P
    elif isinstance(problem, LevelProblem):
        kind = _L
    else:
        raise ProblemError(f"expected a QuantProblem, PruneProblem or LevelProblem, got "
                           f"{type(problem)!r}")
    entry = get_method(kind, method)
    entry.check_options(options)
    return entry.load()(problem, time_limit=time_limit, **options)
