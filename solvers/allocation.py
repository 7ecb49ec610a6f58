"""Allocation across layers: per-layer bit widths or densities under a total size budget.

Each layer ``l`` offers options ``o`` (a bit width, a density, any format), each with a size in
bits ``s_lo`` (an integer: weights × bits per weight, metadata included by the caller) and a
normalised output error — the layer's summed channel errors over its summed norms,
``e = Σ_c (w_c − w0_c)ᵀ H (w_c − w0_c) / Σ_c w0_cᵀ H w0_c`` (``1/SQNR`` in linear units). The
allocation is the multiple-choice knapsack::

    minimise  Σ_l e_{l, o_l}   over one option o_l per layer,   subject to  Σ_l s_{l, o_l} ≤ B

solved exactly, on two error tables per option:

* ``error`` — the best error found (an achieved solution exists at that error), and
* ``bound`` — a certified lower bound on the layer's optimal error at that option (``None``:
  unknown, counted as 0, the trivial bound).

:func:`allocate` minimises the achieved errors (the allocation one can deploy, ``objective``) and
also returns ``lower_bound = min Σ_l bound_{l, o_l}`` over every feasible allocation. Since every
layer's true optimum lies above its bound, **no allocation within the budget, with any solver, can
reach a summed error below** ``lower_bound``: ``lower_bound ≤ best possible ≤ objective``, the
allocation-level analogue of :class:`solvers.result.SolveResult`'s contract. (With
``target="bound"`` the allocation minimising the summed bounds is returned instead.)

Solvers
-------
``dp``: dynamic programming over integer size units. Sizes are shifted by each layer's smallest
option and divided by the greatest common divisor ``g`` of the shifted sizes and the budget is
floored to units of ``g`` (exact, since every achievable total is a multiple of ``g`` above the
shifted base); ``best[j]`` = least total error using at most ``j`` units, one pass per layer,
vectorised over ``j``. Time ``O(Σ_l |options_l| · U)``, memory ``L · U`` bytes for the choices,
``U = budget units``; exact (sums of floats aside). ``milp``: the same model as a 0/1 MILP solved
by HiGHS through :func:`scipy.optimize.milp` with zero gap (for budgets too large for the table).
``auto``: ``dp`` when the choice table has at most ``max_cells`` cells, else ``milp``.

The sensitivity heuristic to compare against is :func:`hessian_trace_proxy` — HAWQ-V2/V3's
criterion (Dong et al. 2020; Yao et al. 2021) with the layer-wise Hessian ``H = XᵀX``: predicted
error ``(Tr H / n)·‖W − W0‖²_F / Σ_c w0_cᵀ H w0_c`` for a cheap perturbation ``W`` (RTN, magnitude
pruning) — fed to the same knapsack (as HAWQ-V3 feeds its ILP), so a comparison isolates the value
of certified, solved error curves over a trace proxy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce

import numpy as np

from .problem import ProblemError

#: ``auto`` uses the DP while ``layers × (units + 1)`` is at most this many cells.
MAX_CELLS = 200_000_000
METHODS = ("auto", "dp", "milp")
TARGETS = ("error", "bound")


@dataclass(frozen=True)
class LayerOption:
    """One way to compress one layer.

    Attributes
    ----------
    label : str
        What the option is, e.g. ``"4 bits"`` or ``"density 0.25"``.
    size_bits : int
        Storage in bits (integral; the caller's accounting, metadata included).
    error : float
        Normalised error of the best solution found (``≥ 0``, finite).
    bound : float or None
        Certified lower bound on the normalised optimal error (``0 ≤ bound ≤ error``), or None.
    """

    label: str
    size_bits: int
    error: float
    bound: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.size_bits, bool) or int(self.size_bits) != self.size_bits:
            raise ProblemError(f"option {self.label!r}: size_bits must be an integer, "
                               f"got {self.size_bits!r}")
        object.__setattr__(self, "size_bits", int(self.size_bits))
        if self.size_bits < 0:
            raise ProblemError(f"option {self.label!r}: size_bits must be >= 0")
        err = float(self.error)
        if not math.isfinite(err) or err < 0:
            raise ProblemError(f"option {self.label!r}: error must be finite and >= 0, "
                               f"got {self.error!r}")
        object.__setattr__(self, "error", err)
        if self.bound is not None:
            b = float(self.bound)
            if not math.isfinite(b) or b < 0:
                raise ProblemError(f"option {self.label!r}: bound must be finite and >= 0, "
                                   f"got {self.bound!r}")
            if b > err * (1 + 1e-9) + 1e-300:
                raise ProblemError(f"option {self.label!r}: bound {b:.6g} above the "
                                   f"achieved error {err:.6g}")
            object.__setattr__(self, "bound", b)

    @property
    def certified(self) -> float:
        """The bound, or 0 (the trivial bound) when unknown."""
        return 0.0 if self.bound is None else self.bound


@dataclass(frozen=True)
class LayerCurve:
    """A layer's options (its error curve over sizes)."""

    name: str
    options: tuple[LayerOption, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))
        if not self.options:
            raise ProblemError(f"layer {self.name!r} has no options")
        for o in self.options:
            if not isinstance(o, LayerOption):
                raise ProblemError(f"layer {self.name!r}: options must be LayerOption, "
                                   f"got {type(o).__name__}")


@dataclass(frozen=True)
class Allocation:
    """The chosen option per layer and the allocation's certificate.

    Attributes
    ----------
    choice : tuple of int
        Index of the chosen option per layer.
    labels : tuple of str
        The chosen options' labels.
    size_bits : int
        Total size of the allocation (``≤ budget_bits``).
    objective : float
        Summed achieved error of the allocation.
    bound_sum : float
        Summed certified bounds of the chosen options (unknown counted as 0).
    lower_bound : float
        ``min Σ bound`` over every allocation within the budget: no allocation can reach a
        summed optimal error below it.
    budget_bits : int
    target : str
        ``"error"`` (the allocation minimises ``objective``) or ``"bound"`` (minimises
        ``bound_sum``; then ``bound_sum == lower_bound``).
    method : str
        ``"dp"`` or ``"milp"``.
    """

    choice: tuple[int, ...]
    labels: tuple[str, ...]
    size_bits: int
    objective: float
    bound_sum: float
    lower_bound: float
    budget_bits: int
    target: str
    method: str

    @property
    def gap(self) -> float:
        """``(objective − lower_bound) / objective`` (0 when both are 0)."""
        if self.objective <= 0:
            return 0.0
        return max(0.0, (self.objective - self.lower_bound) / self.objective)


def allocate(curves: Sequence[LayerCurve], budget_bits: int, *, target: str = "error",
             method: str = "auto", max_cells: int = MAX_CELLS) -> Allocation:
    """Choose one option per layer within ``budget_bits``, minimising the summed error.

    Parameters
    ----------
    curves : the layers' options.
    budget_bits : total size budget in bits.
    target : ``"error"`` (minimise the summed achieved errors) or ``"bound"`` (minimise the
        summed certified bounds).
    method : ``"auto"``, ``"dp"`` or ``"milp"`` (see the module docstring).
    max_cells : ``auto``'s limit on the DP's choice table; ``dp`` refuses larger tables.

    Returns
    -------
    Allocation, with ``lower_bound`` = the least summed bound within the budget.

    Raises
    ------
    ProblemError : no layers, a budget below every layer's smallest option, a bad target or
        method, or a DP table above ``max_cells`` with ``method="dp"``.

    Examples
    --------
    >>> a = LayerCurve("a", (LayerOption("2b", 20, 0.5, 0.4), LayerOption("4b", 40, 0.1, 0.1)))
    >>> b = LayerCurve("b", (LayerOption("2b", 20, 0.2, 0.1), LayerOption("4b", 40, 0.05, 0.0)))
    >>> r = allocate([a, b], 60)
    >>> r.labels, round(r.objective, 6), round(r.lower_bound, 6)
    (('4b', '2b'), 0.3, 0.2)
    """
    if target not in TARGETS:
        raise ProblemError(f"target must be one of {TARGETS}, got {target!r}")
    if method not in METHODS:
        raise ProblemError(f"method must be one of {METHODS}, got {method!r}")
    curves = list(curves)
    if not curves:
        raise ProblemError("no layers to allocate")
    if isinstance(budget_bits, bool) or int(budget_bits) != budget_bits:
        raise ProblemError(f"budget_bits must be an integer, got {budget_bits!r}")
    budget = int(budget_bits)
    base = sum(min(o.size_bits for o in c.options) for c in curves)
    if budget < base:
        raise ProblemError(
            f"budget of {budget} bits is infeasible: every layer at its smallest option "
            f"already takes {base} bits ({base / max(budget, 1):.3g}x the budget)")
    units, cells = _units(curves, budget, base)
    if method == "dp" and cells > max_cells:
        raise ProblemError(f"the DP table would have {cells} cells (> max_cells = {max_cells}); "
                           "use method='milp' or coarser sizes")
    use = "dp" if method == "dp" or (method == "auto" and cells <= max_cells) else "milp"
    solve = _solve_dp if use == "dp" else _solve_milp

    def table(kind: str) -> list[np.ndarray]:
        if kind == "error":
            return [np.array([o.error for o in c.options]) for c in curves]
        return [np.array([o.certified for o in c.options]) for c in curves]

    bound_choice = solve(curves, table("bound"), budget, units)
    choice = bound_choice if target == "bound" else solve(curves, table("error"), budget, units)
    chosen = [c.options[i] for c, i in zip(curves, choice, strict=True)]
    size = sum(o.size_bits for o in chosen)
    if size > budget:  # the solvers guarantee feasibility; a failure here is a bug
        raise AssertionError(f"allocation of {size} bits exceeds the budget {budget}")
    lower = math.fsum(c.options[i].certified for c, i in zip(curves, bound_choice, strict=True))
    return Allocation(
        choice=tuple(choice), labels=tuple(o.label for o in chosen), size_bits=size,
        objective=math.fsum(o.error for o in chosen),
        bound_sum=math.fsum(o.certified for o in chosen), lower_bound=lower,
        budget_bits=budget, target=target, method=use)


def uniform_choice(curves: Sequence[LayerCurve], label: str) -> tuple[int, ...]:
    """The index of the option called ``label`` in every layer (the uniform setting)."""
    out = []
    for c in curves:
        hits = [i for i, o in enumerate(c.options) if o.label == label]
        if not hits:
            raise ProblemError(f"layer {c.name!r} has no option {label!r} "
                               f"(has {[o.label for o in c.options]})")
        out.append(hits[0])
    return tuple(out)


def hessian_trace_proxy(h_diag: np.ndarray, W0: np.ndarray, W: np.ndarray,
                        norm: float) -> float:
    """HAWQ's sensitivity criterion as a predicted normalised error of one layer.

    ``(Tr H / n) · ‖W − W0‖²_F / norm``: the layer-wise Hessian's average diagonal times the
    perturbation's energy, over the layer's summed ``w0ᵀ H w0``. Exact when ``H`` is a multiple
    of the identity; otherwise a proxy that ignores both the spread of ``diag H`` and the
    off-diagonal terms — which is what the certified curves add.

    Parameters
    ----------
    h_diag : ``diag H`` (``n``), shared by the channels, or one row per channel (``C×n``).
    W0, W : original and perturbed weights (``C×n``).
    norm : ``Σ_c w0_cᵀ H w0_c`` (> 0).

    Examples
    --------
    >>> hessian_trace_proxy(np.array([1.0, 3.0]), np.array([[1.0, 1.0]]),
    ...                     np.array([[1.0, 0.0]]), 4.0)
    0.5
    """
    h = np.asarray(h_diag, dtype=np.float64)
    W0 = np.atleast_2d(np.asarray(W0, dtype=np.float64))
    W = np.atleast_2d(np.asarray(W, dtype=np.float64))
    if W.shape != W0.shape:
        raise ProblemError(f"W has shape {W.shape}, W0 {W0.shape}")
    if h.shape not in ((W0.shape[1],), W0.shape):
        raise ProblemError(f"h_diag has shape {h.shape}, expected ({W0.shape[1]},) or "
                           f"{W0.shape}")
    if not (math.isfinite(norm) and norm > 0):
        raise ProblemError(f"norm must be finite and > 0, got {norm!r}")
    avg = np.mean(h, axis=-1, keepdims=True) if h.ndim == 2 else np.mean(h)
    return float(np.sum(avg * (W - W0) ** 2) / norm)


# ------------------------------------------------------------------------------------ solvers


def _units(curves: Sequence[LayerCurve], budget: int, base: int) -> tuple[tuple[int, int], int]:
    """``((g, U), cells)``: the size unit ``g``, the budget in units above the base, the table."""
    extras = [o.size_bits - min(p.size_bits for p in c.options) for c in curves
              for o in c.options]
    g = reduce(math.gcd, extras, 0) or 1
    cap = sum(max(o.size_bits for o in c.options) - min(o.size_bits for o in c.options)
              for c in curves)
    U = min(budget - base, cap) // g
    return (g, U), len(curves) * (U + 1)


def _solve_dp(curves: Sequence[LayerCurve], values: list[np.ndarray], budget: int,
              units: tuple[int, int]) -> list[int]:
    g, U = units
    best = np.zeros(U + 1)  # best[j]: least total over the layers so far using <= j units
    dtype = np.int8 if max(len(c.options) for c in curves) <= 127 else np.int32
    choices = []
    for c, v in zip(curves, values, strict=True):
        lo = min(o.size_bits for o in c.options)
        nxt = np.full(U + 1, np.inf)
        arg = np.zeros(U + 1, dtype=dtype)
        for i, o in enumerate(c.options):
            s = (o.size_bits - lo) // g
            if s > U:
                continue
            cand = best[:U + 1 - s] + v[i]
            better = cand < nxt[s:]
            nxt[s:][better] = cand[better]
            arg[s:][better] = i
        choices.append(arg)
        best = nxt
    j = U
    out = []
    for c, arg in zip(reversed(curves), reversed(choices), strict=True):
        i = int(arg[j])
        out.append(i)
        j -= (c.options[i].size_bits - min(o.size_bits for o in c.options)) // g
    return out[::-1]


def _solve_milp(curves: Sequence[LayerCurve], values: list[np.ndarray], budget: int,
                units: tuple[int, int]) -> list[int]:
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import lil_matrix

    counts = [len(c.options) for c in curves]
    starts = np.concatenate([[0], np.cumsum(counts)])
    m = int(starts[-1])
    cost = np.concatenate(values)
    g, U = units  # in units of g above each layer's smallest option: small, exact integers
    sizes = np.array([(o.size_bits - min(p.size_bits for p in c.options)) // g
                      for c in curves for o in c.options], dtype=np.float64)
    A = lil_matrix((len(curves) + 1, m))
    for li in range(len(curves)):
        A[li, starts[li]:starts[li + 1]] = 1.0
    A[len(curves), :] = sizes
    lo = np.concatenate([np.ones(len(curves)), [-np.inf]])
    hi = np.concatenate([np.ones(len(curves)), [float(U)]])
    res = milp(cost, constraints=LinearConstraint(A.tocsr(), lo, hi),
               integrality=np.ones(m), bounds=Bounds(0, 1),
               options={"mip_rel_gap": 0.0, "disp": False})
    if res.x is None or res.status != 0:
        raise ProblemError(f"the allocation MILP failed: {res.message}")
    x = np.asarray(res.x)
    return [int(np.argmax(x[starts[li]:starts[li + 1]])) for li in range(len(curves))]
