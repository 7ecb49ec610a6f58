"""The one result type every solver and heuristic returns.

Contract (see DESIGN.md, "Certification contract")::

    lower_bound <= optimum <= objective

* ``objective`` is the error ``(w - w0)ᵀ H (w - w0)`` of the returned feasible solution
  ``weights``, recomputed from the solution itself (never a solver's own estimate).
* ``lower_bound`` is *proved* (valid despite floating-point error; each solver documents its
  margin), or ``None`` for a heuristic, which proves nothing.
* ``status`` is ``OPTIMAL`` only when the relative gap is within the solver's documented
  tolerance (default :data:`OPTIMALITY_RTOL`); a run stopped by a limit keeps both numbers valid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

import numpy as np

#: Relative gap under which a certified solve is reported as optimal.
OPTIMALITY_RTOL = 1e-9


class Status(str, Enum):
    """How a solve ended. ``str`` so that it prints and serialises as its value."""

    OPTIMAL = "optimal"
    TIME_LIMIT = "time_limit"
    NODE_LIMIT = "node_limit"
    GAP_LIMIT = "gap_limit"
    HEURISTIC = "heuristic"
    INFEASIBLE = "infeasible"
    ERROR = "error"

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.value


#: Errors below this share of the channel's norm ``w0ᵀHw0`` (SQNR above 90 dB) are "near
#: zero": there the gap is measured against ``GAP_NORM_FLOOR·norm`` instead of the error itself
#: (a solver may state a larger floor, e.g. exact pruning's float64 noise floor).
GAP_NORM_FLOOR = 1e-9


def relative_gap(objective: float, lower_bound: float | None, norm: float | None = None,
                 floor: float = GAP_NORM_FLOOR) -> float | None:
    """``(objective − lower_bound) / max(objective, floor·norm)``.

    Relative to the error, except where the error is near zero against the channel's norm
    (below ``floor·norm``, where a relative gap only measures float64 rounding): there against
    that share of the norm. So ``gap <= rtol`` means ``objective − lower_bound <=
    max(rtol·objective, rtol·floor·norm)``. Without a (finite, positive) ``norm``: relative to
    the error, 0 when both are 0. ``None`` without a bound.

    >>> relative_gap(2.0, 1.0), relative_gap(2**-40, 0.0, norm=1.0) == 2**-40 / 1e-9
    (0.5, True)
    """
    if lower_bound is None:
        return None
    den = objective
    if norm is not None and math.isfinite(norm) and norm > 0.0:
        den = max(den, floor * norm)
    if den <= 0.0:
        return 0.0 if lower_bound >= objective else math.inf
    return max(0.0, (objective - lower_bound) / den)


def sqnr_db(norm: float, error: float | None) -> float | None:
    """``10·log10(norm / error)``; ``inf`` for zero error, ``None`` when undefined."""
    if error is None or norm is None or not np.isfinite(norm) or norm <= 0.0:
        return None
    if error <= 0.0:
        return math.inf
    return 10.0 * math.log10(norm / error)


@dataclass(frozen=True)
class SolveResult:
    """Outcome of one solve of one per-channel problem.

    Attributes
    ----------
    status : Status
    weights : ndarray (n,)
        The returned solution ``w`` itself (quantized weights ``scale·codes``, or the pruned and
        refit weights), so anyone can recompute its error.
    objective : float
        Its error ``(w - w0)ᵀ H (w - w0)`` in the units of ``H``.
    lower_bound : float or None
        Certified lower bound on the optimum, ``None`` for heuristics.
    norm : float
        ``w0ᵀ H w0`` of the problem, so SQNRs can be reported from the result alone.
    method : str
        Registry name of the method that produced it (``"exact"``, ``"gptq"``, ``"scip"``, …).
    nodes : int
        Search nodes (or iterations) explored; 0 where the notion does not apply.
    seconds : float
        Wall-clock time of the solve.
    codes : ndarray of int or None
        Integer grid codes (quantization): ``weights == scale * codes``.
    mask : ndarray of bool or None
        Kept weights (pruning).
    message : str
        Free text from the solver (limits hit, backend status, …).
    info : dict
        Extra solver-specific figures (ordering used, root bound, backend version, …).
    gap_floor : float
        Share of ``norm`` below which an error counts as near zero for :attr:`gap`
        (default :data:`GAP_NORM_FLOOR`).
    """

    status: Status
    weights: np.ndarray
    objective: float
    lower_bound: float | None
    norm: float
    method: str = ""
    nodes: int = 0
    seconds: float = 0.0
    codes: np.ndarray | None = None
    mask: np.ndarray | None = None
    message: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    gap_floor: float = GAP_NORM_FLOOR

    def __post_init__(self) -> None:
        if self.lower_bound is not None and self.lower_bound > self.objective:
            # A bound above the objective of a feasible point is a bug, never a rounding matter
            # to paper over: refuse to build the result.
            raise ValueError(
                f"lower_bound {self.lower_bound!r} exceeds objective {self.objective!r} "
                f"(method {self.method!r}): the certification contract is broken"
            )

    @property
    def gap(self) -> float | None:
        """Relative gap ``(objective − lower_bound) / max(objective, gap_floor·norm)``
        (:func:`relative_gap`: against the norm where the error is near zero); ``None`` for
        heuristics. Exact solvers report ``OPTIMAL`` exactly when it is within their
        documented tolerance."""
        return relative_gap(self.objective, self.lower_bound, self.norm, self.gap_floor)

    @property
    def sqnr_db(self) -> float | None:
        """SQNR of the returned solution, ``10·log10(norm / objective)``."""
        return sqnr_db(self.norm, self.objective)

    @property
    def sqnr_upper_db(self) -> float | None:
        """The best SQNR the lower bound still allows (``None`` without a bound)."""
        return sqnr_db(self.norm, self.lower_bound)

    def with_(self, **changes: Any) -> SolveResult:
        """A copy with some fields replaced (e.g. ``seconds``)."""
        return replace(self, **changes)

    def to_dict(self, channel: int | None = None) -> dict[str, Any]:
        """JSON-ready dict in the shape ``pqbound solve … --json`` prints per channel."""
        out: dict[str, Any] = {}
        if channel is not None:
            out["channel"] = int(channel)
        out.update(
            {
                "method": self.method,
                "status": self.status.value,
                "lower_bound": _finite_or_none(self.lower_bound),
                "objective": _finite_or_none(self.objective),
                "norm": _finite_or_none(self.norm),
                "gap": _finite_or_none(self.gap),
                "seconds": float(self.seconds),
                "nodes": int(self.nodes),
                "sqnr_db": _json_float(self.sqnr_db),
                "sqnr_upper_db": _json_float(self.sqnr_upper_db),
            }
        )
        if self.codes is not None:
            out["codes"] = [int(c) for c in np.asarray(self.codes).ravel()]
        if self.mask is not None:
            out["mask"] = [bool(m) for m in np.asarray(self.mask).ravel()]
        out["weights"] = [float(x) for x in np.asarray(self.weights, dtype=float).ravel()]
        if self.message:
            out["message"] = self.message
        return out


def _finite_or_none(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _json_float(x: float | None) -> float | str | None:
    """Floats for JSON: ``inf`` becomes the string ``"inf"`` (strict JSON has no infinity)."""
    if x is None:
        return None
    x = float(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if math.isnan(x):
        return None
    return x
