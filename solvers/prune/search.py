"""The search tree: a depth-first branch-and-bound over keep / prune decisions, run in chunks.

Each node fixes some inputs kept (``F``), some pruned (``P``) and leaves the rest ``U``
undecided. It stores both sides of the problem, each updated by rank-one steps:

* backward: ``G = (H_KK)^-1`` for ``K = F ∪ U``, the refit ``w`` on ``K`` and the error ``e`` of
  pruning exactly ``P``; *prune j* is the OBS update (no refactorisation);
* forward: the Schur complement ``S = H/H_FF``, residual correlations ``r`` and the error
  ``c_F`` of keeping only ``F``; *keep j* is one elimination step.

The compiled kernel (:func:`solvers.prune.kernels.dfs_chunk`) processes a chunk of nodes and
returns; between chunks this module checks the time and node limits, so a stopped search still
holds its open nodes, whose least bound makes the anytime lower bound::

    lower_bound = min(least bound of every closed subtree, least bound of every open node)
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..result import OPTIMALITY_RTOL, Status
from . import kernels
from .parallel import Workers
from .refit import PIVOT_RTOL

log = logging.getLogger(__name__)

#: Subtrees are closed when their safe bound reaches ``ub·(1 − FATHOM_RTOL)``.
FATHOM_RTOL = OPTIMALITY_RTOL / 4
#: Perspective-bound steps at the root and at the open nodes of a stopped search.
ROOT_STEPS = 40
OPEN_STEPS = 20


#: The search's ``polish`` (local search from its incumbent) first runs after this many nodes
#: (about 1 CPU s at ``n`` = 64: the sub-second solves never pay for it; one run costs up to
#: ~0.3 s at 50 % density), then again at the first improvement after twice the nodes of its
#: last run, and so on.
POLISH_NODES = 4_000
#: Nodes at which a search still open first runs ``polish`` with :data:`KICKS` kicks; the next
#: time at twice as many nodes, and so on (a few per cent of a long search's time).
KICK_NODES = 40_000
KICKS = 16


def _past(deadline) -> bool:
    """Whether ``deadline`` has passed, read through this module's ``time`` (not
    :func:`solvers.stopwatch.passed`): ``benchmarks/prune_scan.py`` points it at the thread's
    CPU clock to make time limits count CPU seconds."""
    return deadline is not None and time.perf_counter() >= deadline


def _polish(polish, workers: Workers, deadline, kicks=0) -> None:
    """Replace the shared incumbent (:attr:`~solvers.prune.parallel.Workers.top`) by
    ``polish(mask, stop, kicks)`` when that is better; the workers keep searching meanwhile.
    The replaced incumbent's leaf bound stays with the worker that found it, which files it
    with its closed subtrees at its next exchange (:meth:`~solvers.prune.parallel.Workers.step`)."""
    with workers.lock:
        start = workers.top.mask.astype(bool)
    got = polish(start, lambda: _past(deadline), kicks)
    if got is None:
        return
    mask, value = got
    with workers.lock:
        fstate, best_w, best_mask, counters = workers.top
        if not value < fstate[0] * (1.0 - 1e-12):
            return
        fstate[0] = value
        best_mask[:] = mask
        best_w[:] = np.nan
        counters[2] += 1


@dataclass
class SearchOutcome:
    mask: np.ndarray
    weights: np.ndarray | None  # kernel's weights for the incumbent (None: Python refits)
    upper: float
    lower: float
    status: Status
    nodes: int
    leaves: int
    improvements: int
    singular_nodes: int
    root_bound: float
    info: dict = field(default_factory=dict)


def _drive(workers: Workers, deadline, node_limit, polish) -> Status:
    """Step the workers until every stack is empty or a limit is reached, running ``polish``
    on the shared incumbent on schedule (see :func:`run_search`); returns the status. The
    workers are at rest afterwards."""
    polished = (-1, POLISH_NODES)  # (improvements at the last polish, its next node)
    kick_at = KICK_NODES
    status = Status.OPTIMAL
    try:
        while workers.open:
            nodes = workers.nodes
            if polish is not None and nodes >= kick_at:
                kick_at *= 2
                _polish(polish, workers, deadline, KICKS)
                polished = (workers.counter(2), 2 * nodes)
            elif (polish is not None and workers.counter(2) != polished[0]
                  and nodes >= polished[1]):
                _polish(polish, workers, deadline)
                polished = (workers.counter(2), 2 * nodes)
            if _past(deadline):
                status = Status.TIME_LIMIT
                break
            if node_limit is not None and workers.nodes >= node_limit:
                status = Status.NODE_LIMIT
                break
            workers.step(node_limit)
    finally:
        workers.stop()
    return status


def slot_bound(G, w, e, S, r, cF, state, hasinv, N, M, d, margin, abs_margin, warm=None,
               piters=0) -> float:
    """Safe lower bound of one stored node (used for the root and for open nodes).

    ``warm`` (updated in place) and ``piters``: the perspective bound's warm start and steps.
    """
    n = state.shape[0]
    g = n // M
    z = np.zeros(g, dtype=np.int64)
    warm = np.zeros(n) if warm is None else warm
    return float(kernels.combined_bound(G, w, e, S, r, cF, state, bool(hasinv), N, M, d,
                                        margin, abs_margin, z, z.copy(), z.copy(),
                                        np.zeros(n), np.zeros(n), warm, int(piters), math.inf,
                                        np.zeros(2 * n + 1), False))


def run_search(H, w0, *, N, M, alive, d, box, margin, incumbent_mask, incumbent_value,
               time_limit=None, node_limit=None, deadline=None, branching="product",
               perspective=1, resplit=0, split_tau=1e-9, polish=None,
               threads=1) -> SearchOutcome:
    """Depth-first branch-and-bound from the root (dead inputs pre-pruned).

    ``incumbent_*`` seed the upper bound (a refit heuristic solution). ``box`` is the absolute
    box (0 for none). ``deadline`` is a ``time.perf_counter()`` value. ``perspective``: steps
    of the perspective bound per node (0: off; the root and the open nodes get more).
    ``resplit``: a node re-optimises its diagonal split once this many inputs were decided
    since its inherited split was made (0: ``d`` everywhere;
    :func:`solvers.prune.kernels.node_split`, certified with the shift ``split_tau``).
    ``polish``: ``(mask, stop, kicks) -> (mask, value)`` or None (``stop()``: the deadline
    has passed), a local search run from the search's incumbent after :data:`POLISH_NODES`
    nodes, then at its first improvement after twice the nodes of the last run (``kicks`` = 0),
    and with :data:`KICKS` kicks after
    :data:`KICK_NODES` nodes, twice as many, and so on; a better mask it returns becomes the
    incumbent (unboxed searches only: ``value`` must be the search's own error of that mask).
    The bound stays valid: the replaced incumbent's leaf bound
    joins the closed subtrees', and the new mask's leaf is still in the tree.
    ``threads``: workers searching subtrees at once (:mod:`solvers.prune.parallel`).
    """
    n = H.shape[0]
    rule = {"saliency": 0, "product": 1}[branching]
    stack = kernels.new_stack(n, 2 * n + 4)
    Gs, ws, es, Ss, rs, cfs = stack.G, stack.w, stack.e, stack.S, stack.r, stack.cF
    states, hasinv, As, Ds = stack.state, stack.hasinv, stack.warm, stack.d
    piters = max(0, int(perspective))
    Ds[0] = d
    stack.dmade[0] = int(np.count_nonzero(~alive))
    Ss[0] = H
    rs[0] = H @ w0
    cfs[0] = max(0.0, float(w0 @ H @ w0))
    abs_margin = margin * n * cfs[0]
    states[0, ~alive] = kernels.PRUNED
    ok = kernels.chol_inverse(H, alive, PIVOT_RTOL, Gs[0])
    if ok:
        es[0] = kernels.refit_from_inverse(H, w0, alive, Gs[0], ws[0])
        hasinv[0] = True
    else:
        Gs[0] = 0.0
        es[0] = kernels.schur_error(H, w0, alive, PIVOT_RTOL)
    root_bound = slot_bound(Gs[0], ws[0], es[0], Ss[0], rs[0], cfs[0], states[0], hasinv[0],
                            N, M, d, margin, abs_margin, As[0], ROOT_STEPS if piters else 0)
    best = kernels.Best(np.array([incumbent_value, math.inf, math.inf]), np.full(n, np.nan),
                        incumbent_mask.copy(), np.zeros(4, dtype=np.int64))
    spec = kernels.SearchSpec(H, w0, d, int(N), int(M), float(box), PIVOT_RTOL, float(margin),
                              float(abs_margin), FATHOM_RTOL, rule, piters, int(resplit),
                              float(split_tau))
    workers = Workers(spec, stack, best, 1, threads, kernels.dfs_chunk)
    status = _drive(workers, deadline, node_limit, polish)
    open_bound = math.inf
    for st_, sp in zip(workers.stacks, workers.sps, strict=True):
        for s in range(sp):
            open_bound = min(open_bound, slot_bound(
                st_.G[s], st_.w[s], st_.e[s], st_.S[s], st_.r[s], st_.cF[s], st_.state[s],
                st_.hasinv[s], N, M, st_.d[s], margin, abs_margin, st_.warm[s].copy(),
                OPEN_STEPS if piters else 0))
    top = workers.top
    fstate, best_w, best_mask = top.fstate, top.w, top.mask
    counters = [workers.counter(i) for i in range(4)]
    ub = float(fstate[0])
    closed = min(min(float(b.fstate[1]), float(b.fstate[2])) for b in workers.bests)
    lower = min(closed, open_bound, ub)
    # the root's bound holds for the whole tree (the frontier's may be computed less tightly)
    lower = max(lower, min(root_bound, ub))
    improved = counters[2] > 0
    return SearchOutcome(
        mask=best_mask.astype(bool),
        weights=best_w if improved and np.all(np.isfinite(best_w)) else None,
        upper=ub,
        lower=max(0.0, lower),
        status=status,
        nodes=int(counters[0]),
        leaves=int(counters[1]),
        improvements=int(counters[2]),
        singular_nodes=int(counters[3]),
        root_bound=max(0.0, min(root_bound, ub)),
        info={"open_nodes": workers.open,
              "open_bound": open_bound if workers.open else None,
              "handoffs": workers.handoffs},
    )
