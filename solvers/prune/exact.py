"""Exact pruning: ``min (w − w0)ᵀH(w − w0)`` over ``w`` with at most ``k`` nonzeros (or N:M).

Entry point of the registry method ``("prune", "exact")``. The pieces:

* :mod:`~solvers.prune.incumbents`: magnitude + refit, greedy OBS, SparseGPT-style, swaps;
* :mod:`~solvers.prune.bounds`: the diagonal split ``H ⪰ D`` and the floating-point margin;
* :mod:`~solvers.prune.search`: the depth-first branch-and-bound (compiled kernels in
  :mod:`~solvers.prune.kernels`);
* :mod:`~solvers.prune.refit`: the exact refit of the returned mask (boxed or not).

Inputs whose column of ``H`` is zero ("dead" inputs, ``H_jj = 0``) cost nothing to prune and are
pruned first; this is exact, not a heuristic (keeping one only spends budget).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from ..problem import ProblemError, PruneProblem
from ..result import OPTIMALITY_RTOL, SolveResult, Status, relative_gap
from ..stopwatch import Stopwatch
from .bounds import diagonal_split, margin_for
from .incumbents import Incumbent, find_incumbents, groups, magnitude_mask
from .refit import refit
from .search import FATHOM_RTOL, run_search

log = logging.getLogger(__name__)

#: Absolute gap (relative to ``n·norm``) treated as closed: the float64 noise floor.
NOISE_FLOOR = 4 * float(np.finfo(float).eps)
#: ``diagonal="auto"``: nodes of the cheap first phase before the perspective restart.
AUTO_SWITCH_NODES = 4000


def solve_exact(
    problem: PruneProblem,
    *,
    time_limit: float | None = None,
    node_limit: int | None = None,
    diagonal: str = "auto",
    incumbents: bool = True,
    branching: str = "product",
    compare_unstructured: bool = False,
    perspective: int = 15,
    **options: Any,
) -> SolveResult:
    """Prune one channel exactly by branch-and-bound over sparsity masks.

    Solves ``min (w − w0)ᵀ H (w − w0)`` over ``w`` with at most ``k`` nonzeros (at most ``N`` in
    each group of ``M`` consecutive inputs when ``problem.nm`` is set), kept weights free or,
    with ``problem.box_factor = c``, within ``|w_i| <= c·max|w0|``.

    Parameters
    ----------
    problem : PruneProblem
    time_limit : float, optional
        Seconds; on expiry the best mask so far and a valid lower bound (least bound over the
        open nodes and the closed subtrees) are returned with status ``TIME_LIMIT``.
    node_limit : int, optional
        Same, counting branch-and-bound nodes (status ``NODE_LIMIT``).
    diagonal : {"auto", "jacobi", "logdet", "eig", "sdp", "none"}
        How the diagonal split ``H ⪰ D`` of the separable and perspective node bounds is chosen
        (:func:`solvers.prune.bounds.diagonal_split`). ``auto`` (default) runs the cheap
        configuration first (``jacobi`` split, no perspective bound) for
        :data:`AUTO_SWITCH_NODES` nodes, which finishes most problems up to ``n ≈ 32``; a search
        still open then restarts from its incumbent with the ``logdet`` split and the
        perspective bound (``perspective`` steps per node), which is what proves ``n = 64``.
    branching : {"product", "saliency"}
        Branching rule: ``product`` picks the input whose prune-child and keep-child bounds
        (computed at every node anyway) rise most (product of the increases), and explores the
        weaker child first; ``saliency`` branches on the least OBS saliency, prune child first.
    perspective : int
        Alternating steps of the perspective node bound per node
        (:func:`solvers.prune.kernels.perspective_bound`; warm-started from the parent, the
        root gets more);
        0 switches it off and leaves the separable, Gershgorin and kept-side bounds.
    compare_unstructured : bool
        For an N:M problem, also solve unstructured pruning at the same ``k`` (same limits) and
        report it in ``info["unstructured"]`` (objective, lower bound, status, SQNRs): N:M is a
        restriction of it, so the pair shows what the pattern costs.
    incumbents : bool
        Seed the search with the heuristics' best solution (magnitude, OBS, SparseGPT, swaps).

    Returns
    -------
    SolveResult
        ``mask`` (True = kept), ``weights`` = the exact refit on the mask (zeros elsewhere),
        ``objective`` its error, ``lower_bound`` ≤ optimum; ``status`` ``OPTIMAL`` when the
        relative gap is at most :data:`~solvers.result.OPTIMALITY_RTOL`. ``info`` holds the root
        bound, the incumbents' errors, the margin, node counts.

    Examples
    --------
    >>> import numpy as np
    >>> from solvers.problem import PruneProblem
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((40, 8))
    >>> p = PruneProblem(X.T @ X, rng.standard_normal(8), k=3)
    >>> r = solve_exact(p)
    >>> r.status.value, int(r.mask.sum()), r.lower_bound <= r.objective
    ('optimal', 3, True)
    """
    if options:
        raise ProblemError(f"unknown options for the exact pruning solver: {sorted(options)}")
    if isinstance(perspective, bool) or not isinstance(perspective, (int, np.integer)) \
            or perspective < 0:
        raise ProblemError(f"perspective must be an integer >= 0, got {perspective!r}")
    if branching not in ("product", "saliency"):
        raise ProblemError(f"branching must be 'product' or 'saliency', got {branching!r}")
    if not isinstance(problem, PruneProblem):
        raise ProblemError(f"expected a PruneProblem, got {type(problem).__name__}")
    if time_limit is not None and not (time_limit > 0):
        raise ProblemError(f"time_limit must be > 0, got {time_limit!r}")
    sw = Stopwatch()
    deadline = None if time_limit is None else sw.start + float(time_limit)
    H = np.ascontiguousarray(problem.H, dtype=np.float64)
    w0 = np.ascontiguousarray(problem.w0, dtype=np.float64)
    n = problem.n
    N, M = groups(problem)
    alive = np.diag(H) > 0.0
    box = problem.box
    boxv = 0.0 if box is None else float(box)

    cands = find_incumbents(problem, alive) if incumbents else []
    if not cands:
        m = magnitude_mask(problem, alive)
        w, v, lo = refit(problem, m)
        cands = [Incumbent(m, w, v, lo, "magnitude")]
    inc = cands[0]

    margin, kappa, capped = margin_for(H, alive)
    need_total = n - problem.k
    phases = []
    if diagonal == "auto":
        d = diagonal_split(H, w0, alive, need_total, "jacobi")
        first = AUTO_SWITCH_NODES if node_limit is None else min(node_limit, AUTO_SWITCH_NODES)
        out = run_search(H, w0, N=N, M=M, alive=alive, d=d, box=boxv, margin=margin,
                         incumbent_mask=inc.mask, incumbent_value=inc.value,
                         time_limit=time_limit, node_limit=first, deadline=deadline,
                         branching=branching, perspective=0)
        phases.append({"diagonal": "jacobi", "perspective": 0, "nodes": out.nodes,
                       "status": out.status.value})
        more = None if node_limit is None else node_limit - out.nodes
        if out.status is Status.NODE_LIMIT and (more is None or more > 0) and perspective > 0:
            d = diagonal_split(H, w0, alive, need_total, "logdet")
            first_out = out
            out = run_search(H, w0, N=N, M=M, alive=alive, d=d, box=boxv, margin=margin,
                             incumbent_mask=first_out.mask, incumbent_value=first_out.upper,
                             time_limit=time_limit, node_limit=more, deadline=deadline,
                             branching=branching, perspective=perspective)
            phases.append({"diagonal": "logdet", "perspective": perspective,
                           "nodes": out.nodes, "status": out.status.value})
            out.nodes += first_out.nodes
            out.leaves += first_out.leaves
            out.singular_nodes += first_out.singular_nodes
            out.improvements += first_out.improvements
            out.root_bound = max(out.root_bound, first_out.root_bound)
    else:
        d = diagonal_split(H, w0, alive, need_total, diagonal)
        out = run_search(H, w0, N=N, M=M, alive=alive, d=d, box=boxv, margin=margin,
                         incumbent_mask=inc.mask, incumbent_value=inc.value,
                         time_limit=time_limit, node_limit=node_limit, deadline=deadline,
                         branching=branching, perspective=perspective)

    mask = problem.check_mask(out.mask)
    weights, objective, _ = refit(problem, mask)
    if objective > inc.value:  # refit of the tree's leaf disagreed (rounding): keep the better
        mask, weights, objective = inc.mask, inc.weights, inc.value
    lower = min(out.lower, objective)
    status = out.status
    gap = relative_gap(objective, lower)
    message = ""
    # an objective at the float64 noise floor of the norm counts as zero (rank-deficient H
    # with k >= rank: the optimum is 0, the refit leaves ~n·ε·norm of rounding)
    floor = NOISE_FLOOR * n * problem.norm
    if status is Status.OPTIMAL and objective - lower <= floor:
        gap = 0.0
    if status is Status.OPTIMAL and (gap is None or gap > OPTIMALITY_RTOL):
        status = Status.GAP_LIMIT
        message = f"search complete but the certified gap is {gap:.3g} (see info['margin'])"
    if capped:
        message = (message + "; " if message else "") + (
            f"H is ill-conditioned (Jacobi-scaled condition {kappa:.3g}): bounds carry a "
            f"relative margin of {margin:.1e}, smaller than float64 can guarantee"
        )
    seconds = sw.seconds
    info = {
        "root_bound": out.root_bound,
        "incumbents": {c.source: c.value for c in cands},
        "incumbent_source": inc.source,
        "improved_by_search": out.improvements > 0 and objective < inc.value,
        "leaves": out.leaves,
        "singular_nodes": out.singular_nodes,
        "open_nodes": out.info["open_nodes"],
        "margin": margin,
        "fathom_rtol": FATHOM_RTOL,
        "kappa_scaled": kappa,
        "diagonal": diagonal,
        "phases": phases,
        "perspective": perspective,
        "diagonal_sum": float(np.sum(d)),
        "dead_inputs": int(n - alive.sum()),
        "nm": problem.nm,
        "k": problem.k,
        "box": box,
        "formulation": "boxed" if box is not None else "unboxed",
    }
    if compare_unstructured and problem.nm is not None:
        free = solve_exact(
            PruneProblem.unchecked(problem.H, problem.w0, k=problem.k,
                                   box_factor=problem.box_factor),
            time_limit=time_limit, node_limit=node_limit, diagonal=diagonal,
            incumbents=incumbents, branching=branching, perspective=perspective)
        info["unstructured"] = {"objective": free.objective, "lower_bound": free.lower_bound,
                                "status": free.status.value, "sqnr_db": free.sqnr_db,
                                "sqnr_upper_db": free.sqnr_upper_db, "seconds": free.seconds}
    if status is Status.TIME_LIMIT:
        message = (message + "; " if message else "") + f"time limit {time_limit:g} s reached"
    elif status is Status.NODE_LIMIT:
        message = (message + "; " if message else "") + f"node limit {node_limit} reached"
    log.debug("exact prune n=%d k=%d: %s in %.3fs, %d nodes", n, problem.k, status, seconds,
              out.nodes)
    return SolveResult(
        status=status,
        weights=weights,
        objective=objective,
        lower_bound=lower if math.isfinite(lower) else None,
        norm=problem.norm,
        method="exact",
        nodes=out.nodes,
        seconds=seconds,
        mask=mask,
        message=message,
        info=info,
    )


__all__ = ["solve_exact"]
