"""Exact pruning: ``min (w − w0)ᵀH(w − w0)`` over ``w`` with at most ``k`` nonzeros (or N:M).

Entry point of the registry method ``("prune", "exact")``. The pieces:

* :mod:`~solvers.prune.incumbents`: magnitude + refit, greedy OBS, SparseGPT-style, swaps;
* :mod:`~solvers.prune.bounds`: the diagonal split ``H ⪰ D`` and the floating-point margin;
* :mod:`~solvers.prune.search`: the depth-first branch-and-bound (compiled kernels in
  :mod:`~solvers.prune.kernels`);
* :mod:`~solvers.prune.refit`: the exact refit of the returned mask (boxed or not).

Inputs whose column of ``H`` is zero ("dead" inputs, ``H_jj = 0``) cost nothing to prune and are
pruned first; this is exact, not a heuristic (keeping one only spends budget).

A boxed problem is first *screened* (``box_screen``): its relaxation without the box is solved
(a node cap, half the time limit); the box's feasible set lies inside the relaxation's, so the
relaxation's lower bound is one of the boxed optimum, and when the relaxation's solution keeps
every weight within the box it is feasible for the boxed problem too: the pair (solution,
bound) then certifies the boxed problem with the same gap. Otherwise the boxed search runs with
the time left, and the better of the two lower bounds is reported. On MobileNetV2's classifier
chunks (paper protocol, ill-conditioned ``H``) the unboxed search needs 4–5× fewer nodes than
the boxed one, and its optimum lies within the box on almost every row.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from ..problem import ProblemError, PruneProblem, hessian_exponent
from ..result import GAP_NORM_FLOOR, OPTIMALITY_RTOL, SolveResult, Status, relative_gap
from ..stopwatch import Stopwatch
from .bounds import diagonal_split, margin_for
from .incumbents import (
    Incumbent,
    find_incumbents,
    groups,
    kicked_search,
    magnitude_mask,
    pair_swap_improve,
    swap_improve,
)
from .refit import refit
from .search import FATHOM_RTOL, run_search

log = logging.getLogger(__name__)

#: Absolute gap (relative to ``n·norm``) treated as closed: the float64 noise floor.
NOISE_FLOOR = 4 * float(np.finfo(float).eps)
#: ``diagonal="auto"``: nodes of the cheap first phase before the perspective restart.
AUTO_SWITCH_NODES = 4000
#: the options of :func:`solve_exact` besides ``time_limit``
OPTIONS = ("node_limit", "diagonal", "incumbents", "branching", "compare_unstructured",
           "perspective", "resplit", "box_screen", "local_search", "threads")
#: ``box_screen``: node cap of the unboxed relaxation's search (it also gets at most half of
#: ``time_limit``); a relaxation still open then falls back to the boxed search
SCREEN_NODES = 20_000
#: ``diagonal="auto"``: the perspective phase re-optimises a node's split once this many inputs
#: were decided since its split was made (``resplit=None``; issue 20, docs/pruning.md).
AUTO_RESPLIT = 4
#: the values of ``diagonal``
DIAGONALS = ("auto", "jacobi", "logdet", "eig", "sdp", "none")


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
    _shared: Any = None,
    resplit: int | None = None,
    local_search: int = 2,
    box_screen: bool = True,
    threads: int = 1,
    **unknown: Any,
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
    resplit : int, optional
        Re-optimise the diagonal split at a node once this many inputs were decided since the
        split it inherited was made (:func:`solvers.prune.kernels.node_split`: the log-det
        split of the node's Schur complement ``S_UU``, certified, handed down to its subtree);
        0: the root's split everywhere. ``None`` (default): :data:`AUTO_RESPLIT` in the
        perspective phase of ``diagonal="auto"`` (searches the cheap phase did not finish),
        0 with an explicit ``diagonal``.
    box_screen : bool
        For a boxed problem: solve the relaxation without the box first and return its
        solution when that keeps every weight within the box (see the module docstring);
        ``info["box_screen"]`` says what happened (``"inside"``: the relaxation's solution
        answered; ``"outside"`` / ``"open"``: the boxed search ran after it, its bound the
        better of the two; ``"skipped"``: a family whose screens mostly failed stopped
        screening). The result is as certified either way.
    compare_unstructured : bool
        For an N:M problem, also solve unstructured pruning at the same ``k`` (same limits) and
        report it in ``info["unstructured"]`` (objective, lower bound, status, SQNRs): N:M is a
        restriction of it, so the pair shows what the pattern costs.
    threads : int
        Threads searching subtrees at once (:mod:`solvers.prune.parallel`; default 1). They
        share the incumbent and the work between chunks of about 20 ms; the optimum and the
        certificate are those of the serial search, the node count varies from run to run.
        Worth it on long searches (``n`` = 64 problems the cheap phase does not finish); the
        time limit is wall-clock as always.
    incumbents : bool
        Seed the search with the heuristics' best solution (magnitude, OBS, SparseGPT, swaps).
    local_search : {2, 1, 0}
        The incumbents' local search (with ``incumbents``). 2 (default): the 1-swap search from
        the best heuristic's mask, and from the others' when the search reaches the perspective
        phase of ``diagonal="auto"``; when that phase (unboxed) runs past 4 000 nodes, the
        pair-exchange search (:func:`~solvers.prune.incumbents.pair_swap_improve`) from its
        incumbent then and from
        a few of the incumbents it improves later, and after 40 000, 80 000, … nodes 16 random
        kicks with that search (:func:`~solvers.prune.incumbents.kicked_search`; issue 20).
        1: the 1-swap search from the best heuristic's mask only (the solver before). 0: no
        local search.
    _shared : SharedHessian, optional
        Internal: what this problem shares with others of the same ``H``
        (:class:`solvers.prune.batch.SharedHessian`: the margin, the ``H``-only diagonal
        splits, the heuristics' masks computed for all rows at once). The result is the same
        as without it; use :func:`solvers.prune.batch.solve_exact_many`.

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
    if unknown:  # named like the registry does (a direct call gets the same message)
        raise ProblemError(f"prune method 'exact' has no option {', '.join(sorted(unknown))}; "
                           f"valid: {', '.join(OPTIONS)}")
    _check_options(problem, time_limit, diagonal, branching, perspective, resplit, threads)
    if local_search not in (0, 1, 2) or isinstance(local_search, bool):
        raise ProblemError(f"local_search must be 0, 1 or 2, got {local_search!r}")
    shift = hessian_exponent(problem.H)
    if shift:  # (a SharedHessian is never made for such an H)
        return _solve_rescaled(problem, shift, time_limit=time_limit, node_limit=node_limit,
                               diagonal=diagonal, incumbents=incumbents, branching=branching,
                               compare_unstructured=compare_unstructured,
                               perspective=perspective, resplit=resplit,
                               box_screen=box_screen, local_search=local_search,
                               threads=threads)
    if box_screen and problem.box is not None and not compare_unstructured:
        return _screened(problem, time_limit=time_limit, node_limit=node_limit,
                         diagonal=diagonal, incumbents=incumbents, branching=branching,
                         perspective=perspective, _shared=_shared, resplit=resplit,
                         local_search=local_search, threads=threads)
    sw = Stopwatch()
    deadline = None if time_limit is None else sw.start + float(time_limit)
    H = np.ascontiguousarray(problem.H, dtype=np.float64)
    w0 = np.ascontiguousarray(problem.w0, dtype=np.float64)
    n = problem.n
    alive = np.diag(H) > 0.0

    cands = _incumbents(problem, alive, incumbents,
                        None if _shared is None else _shared.masks(problem), local_search)
    inc = cands[0]
    margin, kappa, capped = margin_for(H, alive) if _shared is None else _shared.margin
    split, first = ((diagonal_split, ("jacobi", AUTO_SWITCH_NODES)) if _shared is None
                    else (_shared.split, _shared.auto_first))
    polish = (_polisher(problem, alive) if incumbents and local_search == 2
              and problem.box is None else None)
    starts = ([c.mask for c in cands[1:] if not c.source.startswith("swap")]
              if incumbents and local_search == 2 else [])
    out, d, phases = _branch_and_bound(problem, H, w0, alive, margin, kappa, inc, diagonal,
                                       branching, perspective, resplit, time_limit, node_limit,
                                       deadline, split, first, polish, starts, threads)
    mask, weights, objective = _solution(problem, out, inc)
    lower = min(out.lower, objective)
    status, message = _status(problem, out.status, objective, lower, time_limit, node_limit,
                              margin, kappa, capped)
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
        "resplit": resplit,
        "local_search": local_search,
        "threads": threads,
        "handoffs": out.info["handoffs"],
        "diagonal_sum": float(np.sum(d)),
        "dead_inputs": int(n - alive.sum()),
        "nm": problem.nm,
        "k": problem.k,
        "box": problem.box,
        "formulation": "boxed" if problem.box is not None else "unboxed",
    }
    if _shared is not None:
        info["shared_rows"] = _shared.rows
    if compare_unstructured and problem.nm is not None:
        info["unstructured"] = _unstructured(problem, time_limit, node_limit, diagonal,
                                             incumbents, branching, perspective, resplit,
                                             local_search, threads)
    seconds = sw.seconds
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
        gap_floor=gap_floor(n),
    )


# --- the named steps of the driver --------------------------------------------------------------


def _check_options(problem, time_limit, diagonal, branching, perspective, resplit,
                   threads=1) -> None:
    """One clear :class:`ProblemError` for a bad argument (before any work)."""
    if not isinstance(problem, PruneProblem):
        raise ProblemError(f"expected a PruneProblem, got {type(problem).__name__}")
    if isinstance(perspective, bool) or not isinstance(perspective, (int, np.integer)) \
            or perspective < 0:
        raise ProblemError(f"perspective must be an integer >= 0, got {perspective!r}")
    if resplit is not None and (isinstance(resplit, bool)
                                or not isinstance(resplit, (int, np.integer)) or resplit < 0):
        raise ProblemError(f"resplit must be an integer >= 0 or None, got {resplit!r}")
    if branching not in ("product", "saliency"):
        raise ProblemError(f"branching must be 'product' or 'saliency', got {branching!r}")
    if diagonal not in DIAGONALS:
        raise ProblemError(f"unknown diagonal split {diagonal!r}; use {', '.join(DIAGONALS)}")
    if time_limit is not None and not (time_limit > 0):
        raise ProblemError(f"time_limit must be > 0, got {time_limit!r}")
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ProblemError(f"threads must be an integer >= 1, got {threads!r}")


def _incumbents(problem, alive, use_heuristics, masks=None, local_search=2) -> list[Incumbent]:
    """Starting solutions, best first: the heuristics' (magnitude, OBS, SparseGPT, the swap
    search from the best (``local_search`` 1 or 2); their masks from ``masks`` when given), or
    magnitude alone."""
    swaps = ("none", "best", "best")[local_search]
    cands = find_incumbents(problem, alive, masks=masks, swaps=swaps) if use_heuristics else []
    if not cands:
        m = magnitude_mask(problem, alive)
        w, v, lo = refit(problem, m)
        cands = [Incumbent(m, w, v, lo, "magnitude")]
    return cands


def _polisher(problem, alive):
    """The local search of a long search: :func:`~solvers.prune.incumbents.pair_swap_improve`
    from a mask (with ``kicks``: :func:`~solvers.prune.incumbents.kicked_search`, seeded 0, 1,
    … by round), with the mask's unboxed refit error (the search's own value of it)."""
    rounds = [0]  # the kicks' seed: each round of kicks tries new ones

    def polish(mask, stop, kicks=0):
        if kicks:
            m = kicked_search(problem, mask, alive, kicks, seed=rounds[0], stop=stop)
            rounds[0] += 1
        else:
            m = pair_swap_improve(problem, mask, alive, stop=stop)
        return m, refit(problem, m)[1]
    return polish


def _swap_starts(problem, alive, starts, mask, value):
    """The best of ``(mask, value)`` and the 1-swap search from each mask of ``starts`` (its
    refit error: the search's value of a mask, boxed or not)."""
    for m in starts:
        m = swap_improve(problem, m, alive)
        v = refit(problem, m)[1]
        if v < value * (1.0 - 1e-12):
            mask, value = m, v
    return mask, value


def _branch_and_bound(problem, H, w0, alive, margin, kappa, inc, diagonal, branching,
                      perspective, resplit, time_limit, node_limit, deadline,
                      split_fn=diagonal_split, first_phase=("jacobi", AUTO_SWITCH_NODES),
                      polish=None, starts=(), threads=1):
    """The search, in one phase or (``diagonal="auto"``) two: the cheap ``first_phase`` split
    without the perspective bound for a number of nodes (Jacobi for
    :data:`AUTO_SWITCH_NODES`; see :class:`~solvers.prune.batch.SharedHessian` for a family
    of rows), then, if still open, a restart
    from its incumbent with the ``logdet`` split and the perspective bound. That phase starts
    from the best of its incumbent and the 1-swap searches from the masks ``starts`` (the other
    heuristics'); ``polish`` (unboxed, with heuristics on) is its local search
    (``(mask, stop, kicks) -> (mask, value)``), run as it grows long
    (:func:`~solvers.prune.search.run_search`). Returns the
    :class:`~solvers.prune.search.SearchOutcome` (node counts of both phases summed), the
    diagonal of the last phase and a record per phase."""
    N, M = groups(problem)
    need_total = problem.n - problem.k
    boxv = 0.0 if problem.box is None else float(problem.box)

    tau = split_tau(problem.n, kappa)

    def phase(split, mask, value, limit, steps, again=0, pol=None):
        d = split_fn(H, w0, alive, need_total, split)
        out = run_search(H, w0, N=N, M=M, alive=alive, d=d, box=boxv, margin=margin,
                         incumbent_mask=mask, incumbent_value=value, time_limit=time_limit,
                         node_limit=limit, deadline=deadline, branching=branching,
                         perspective=steps, resplit=again, split_tau=tau, polish=pol,
                         threads=threads)
        return out, d

    if diagonal != "auto":
        out, d = phase(diagonal, inc.mask, inc.value, node_limit, perspective, resplit or 0)
        return out, d, []
    first_split, switch = first_phase
    first = switch if node_limit is None else min(node_limit, switch)
    out, d = phase(first_split, inc.mask, inc.value, first, 0)
    phases = [{"diagonal": first_split, "perspective": 0, "nodes": out.nodes,
               "status": out.status.value}]
    more = None if node_limit is None else node_limit - out.nodes
    if out.status is Status.NODE_LIMIT and (more is None or more > 0) and perspective > 0:
        first_out = out
        again = AUTO_RESPLIT if resplit is None else resplit
        mask, value = _swap_starts(problem, alive, starts, first_out.mask, first_out.upper)
        if value < first_out.upper:
            first_out.improvements += 1
        out, d = phase("logdet", mask, value, more, perspective, again, polish)
        phases.append({"diagonal": "logdet", "perspective": perspective, "resplit": again,
                       "nodes": out.nodes, "status": out.status.value})
        out.nodes += first_out.nodes
        out.leaves += first_out.leaves
        out.singular_nodes += first_out.singular_nodes
        out.improvements += first_out.improvements
        out.info["handoffs"] += first_out.info["handoffs"]
        out.root_bound = max(out.root_bound, first_out.root_bound)
    return out, d, phases


def _solution(problem, out, inc):
    """The returned ``(mask, weights, objective)``: the exact refit of the search's mask, or
    the incumbent's when rounding made that refit worse."""
    mask = problem.check_mask(out.mask)
    weights, objective, _ = refit(problem, mask)
    if objective > inc.value:  # refit of the tree's leaf disagreed (rounding): keep the better
        return inc.mask, inc.weights, inc.value
    return mask, weights, objective


def _status(problem, status, objective, lower, time_limit, node_limit, margin, kappa, capped):
    """``OPTIMAL`` exactly when the reported gap (:func:`~solvers.result.relative_gap`, against
    :func:`gap_floor`·norm where the error is near zero) is within
    :data:`~solvers.result.OPTIMALITY_RTOL`; else the limit that stopped the search, or
    ``GAP_LIMIT`` after a complete search."""
    gap = relative_gap(objective, lower, problem.norm, gap_floor(problem.n))
    tol = OPTIMALITY_RTOL
    limit = status if status in (Status.TIME_LIMIT, Status.NODE_LIMIT) else None
    notes = []
    if gap is not None and gap <= tol:
        status = Status.OPTIMAL
        if limit is not None:
            notes.append(f"{limit.value} reached, but the bounds already prove the gap "
                         f"{gap:.3g} <= {tol:.3g}")
    elif limit is None:
        status = Status.GAP_LIMIT
        notes.append(f"search complete but the certified gap is {gap:.3g} > {tol:.3g} "
                     f"(see info['margin'])")
    if capped:
        notes.append(f"H is ill-conditioned (Jacobi-scaled condition {kappa:.3g}): bounds carry "
                     f"a relative margin of {margin:.1e}, smaller than float64 can guarantee")
    if status is Status.TIME_LIMIT:
        notes.append(f"time limit {time_limit:g} s reached")
    elif status is Status.NODE_LIMIT:
        notes.append(f"node limit {node_limit} reached")
    return status, "; ".join(notes)


def split_tau(n: int, kappa: float) -> float:
    """Certification shift of a node's re-optimised split (:func:`solvers.prune.kernels.
    node_split`), relative to ``diag(S_UU)``: ``max(1e-9, 64·n·ε·κ)`` covers the rounding of
    the computed Schur complement (``~n·ε·κ`` relative, as the margin) and of the Cholesky
    test (``~n·ε``)."""
    return max(1e-9, 64.0 * n * float(np.finfo(float).eps) * float(kappa))


def gap_floor(n: int) -> float:
    """Exact pruning's near-zero floor (:func:`~solvers.result.relative_gap`):
    ``NOISE_FLOOR·n / OPTIMALITY_RTOL``, so that ``OPTIMAL`` (gap ``<= OPTIMALITY_RTOL``)
    means ``objective − lower_bound <= max(OPTIMALITY_RTOL·objective, NOISE_FLOOR·n·norm)``:
    the float64 noise of a refit's error (a rank-deficient ``H`` with ``k >= rank`` has
    optimum 0, and the refit leaves ``~n·ε·norm`` of rounding)."""
    return max(GAP_NORM_FLOOR, NOISE_FLOOR * n / OPTIMALITY_RTOL)


def _solve_rescaled(problem: PruneProblem, shift: int, **options: Any) -> SolveResult:
    """Solve with ``H·2^−shift`` (only exponents change: the same masks and refit weights) and
    report in the user's units: ``objective`` recomputed on the user's ``H``, bounds multiplied
    back by ``2^shift``. Refused when the error or the norm overflows float64 there."""
    r = solve_exact(PruneProblem.unchecked(np.ldexp(problem.H, -shift), problem.w0,
                                           k=problem.k, nm=problem.nm,
                                           box_factor=problem.box_factor), **options)
    obj = problem.error(r.weights)
    if not (math.isfinite(obj) and math.isfinite(problem.norm)):
        raise ProblemError(
            f"H is too large (largest diagonal entry about 2^{shift}): the pruning error "
            f"does not fit in float64; divide H by a power of two")

    def back(v):
        return v if v is None or not math.isfinite(v) else float(np.ldexp(v, shift))

    info = dict(r.info)
    info["root_bound"] = back(info["root_bound"])
    info["incumbents"] = {k: back(v) for k, v in info["incumbents"].items()}
    if "unstructured" in info:
        u = dict(info["unstructured"])
        u["objective"], u["lower_bound"] = back(u["objective"]), back(u["lower_bound"])
        info["unstructured"] = u
    info["h_exponent"] = shift
    lower = None if r.lower_bound is None else min(back(r.lower_bound), obj)
    return r.with_(weights=r.weights, objective=obj, lower_bound=lower, norm=problem.norm,
                   info=info)


def _screened(problem: PruneProblem, *, time_limit, node_limit, _shared,
              **options: Any) -> SolveResult:
    """A boxed problem through its unboxed relaxation first (``box_screen``, see the module
    docstring): the relaxation's result when its solution lies within the box, else the boxed
    search with the time (and nodes) left and the better lower bound of the two."""
    sw = Stopwatch()
    tried = _shared is None or _shared.screen_worthwhile()
    if tried:
        cap = SCREEN_NODES if node_limit is None else min(SCREEN_NODES, node_limit)
        relax = solve_exact(
            PruneProblem.unchecked(problem.H, problem.w0, k=problem.k, nm=problem.nm),
            time_limit=None if time_limit is None else 0.5 * time_limit, node_limit=cap,
            _shared=_shared, box_screen=False, **options)
        inside = bool(np.all(np.abs(relax.weights) <= problem.box))
        if _shared is not None:
            _shared.screened(inside and relax.status is Status.OPTIMAL)
        if inside and relax.status is Status.OPTIMAL:
            info = {**relax.info, "box": problem.box, "formulation": "boxed",
                    "box_screen": "inside"}
            return relax.with_(info=info, seconds=sw.seconds)
    left = None if time_limit is None else max(time_limit - sw.seconds, 1e-3)
    more = node_limit if node_limit is None or not tried else max(node_limit - relax.nodes, 1)
    r = solve_exact(problem, time_limit=left, node_limit=more, _shared=_shared,
                    box_screen=False, **options)
    if not tried:
        return r.with_(info={**r.info, "box_screen": "skipped"})
    info = {**r.info, "box_screen": "open" if inside else "outside",
            "screen_nodes": relax.nodes, "screen_lower_bound": relax.lower_bound}
    lower = r.lower_bound
    if relax.lower_bound is not None and (lower is None or relax.lower_bound > lower):
        lower = min(relax.lower_bound, r.objective)
    status, message = r.status, r.message
    if status is not Status.OPTIMAL and lower is not None:
        gap = relative_gap(r.objective, lower, problem.norm, gap_floor(problem.n))
        if gap is not None and gap <= OPTIMALITY_RTOL:
            status, message = Status.OPTIMAL, (message + "; " if message else "") + \
                "the unboxed relaxation's bound closes the gap"
    return r.with_(info=info, lower_bound=lower, status=status, message=message,
                   nodes=r.nodes + relax.nodes, seconds=sw.seconds)


def _unstructured(problem, time_limit, node_limit, diagonal, incumbents, branching,
                  perspective, resplit, local_search, threads) -> dict:
    """Unstructured pruning at the same ``k`` and limits, for an N:M problem's comparison."""
    free = solve_exact(
        PruneProblem.unchecked(problem.H, problem.w0, k=problem.k,
                               box_factor=problem.box_factor),
        time_limit=time_limit, node_limit=node_limit, diagonal=diagonal,
        incumbents=incumbents, branching=branching, perspective=perspective,
        resplit=resplit, local_search=local_search, threads=threads)
    return {"objective": free.objective, "lower_bound": free.lower_bound,
            "status": free.status.value, "sqnr_db": free.sqnr_db,
            "sqnr_upper_db": free.sqnr_upper_db, "seconds": free.seconds}


__all__ = ["solve_exact"]
