"""pqbound solvers: pure math on (H, w0, constraints). Knows nothing of torch or networks.

The public surface: the problem types, the result type, the method registry and ``solve``.
"""

from .problem import (
    LayerProblem,
    LevelProblem,
    ProblemError,
    PruneProblem,
    QuantProblem,
    grid_limits,
)
from .registry import METHODS, Method, get_method, methods, solve
from .result import OPTIMALITY_RTOL, SolveResult, Status

__all__ = [
    "LayerProblem",
    "LevelProblem",
    "METHODS",
    "Method",
    "OPTIMALITY_RTOL",
    "ProblemError",
    "PruneProblem",
    "QuantProblem",
    "SolveResult",
    "Status",
    "get_method",
    "grid_limits",
    "methods",
    "solve",
]
