"""Exact solve over levels: Schnorr–Euchner branch-and-bound on sorted per-input level sets.

Problem (:class:`~solvers.problem.LevelProblem`, DESIGN.md "One problem behind every format")::

    minimise (w − w0)ᵀ H (w − w0)   over w_j ∈ L_j,   ‖w‖₀ <= k  (or <= N per group of M)

Algorithm
---------
Under a plain nonzero limit (no N:M) with the live block of ``H`` positive definite the search
runs over supports instead (:func:`_support_first`, :func:`solvers.levels.kernels.
support_search`: OBS-updated refits, the saliency and levelled split bounds, the levels of each
full support solved by Schnorr–Euchner; docs/formats.md). Otherwise:

1. Inputs whose row of ``H`` is zero cannot change the error: they take the zero level (no
   nonzero spent) or, without one, the level nearest ``w0_j``, and leave the search.
2. Order the variables (V-BLAST, largest conditional precision at the top, from
   :mod:`solvers.quant.ordering`; under a nonzero limit the least OBS saliency at the top) and
   factor ``H[π, π] = RᵀR`` exactly, null directions as zero rows (:mod:`solvers.quant.factor`).
3. Incumbents, each polished by level 1-opt (and swaps under a nonzero limit): the nearest level
   (with a limit: the largest ``H_jj·w_j²`` kept), sequential GPTQ-like rounding over the levels
   in input order, nearest-plane rounding in the search order and, under a limit, the exact
   pruning solver's mask quantized exactly over the levels around the kept weights' compensated
   target (:func:`_requantize`; its certified pruning bound is a lower bound too); a search
   still open after :data:`SUPPORT_SEARCH_NODES` nodes runs a swap search over supports
   (:func:`_support_search`).
   Under a limit the search runs on a diagonal split ``H = D + (H − D)`` with a per-depth,
   per-budget separable tail bound (``split``, :func:`separable_tail`), and by default the
   conditional tail: the free rows' part of ``H − D`` around their conditional centre (given
   the fixed rows, stepped row by row) is at least ``Σ δ_i(x_i − c*_i)²`` for a certified
   diagonal ``δ`` of its leading block, minimised over the levels within the budget at every
   node (:func:`_conditional_tail`; docs/formats.md states the margin).
4. Depth-first search over the levels nearest each running centre, pruning on the partial
   distance, with the nonzero count tracked (:mod:`solvers.levels.kernels`, compiled), in
   node-budgeted slices with a clock check between slices.
5. Certification, the integer solver's (:mod:`solvers.quant.certify`, imported, in weight units:
   ``s = 1``, the box per input ``[min L_j, max L_j]``): a node is pruned only when its computed
   bound reaches ``U + M`` (``M`` the global rounding margin at the starting incumbent), every
   leaf reached gets the certificate ``p − m(d, p)``, and the reported bound is
   ``(1 − 4u)·min(leaf certificates, open-node bound − M)``. The level values are exact floats
   and ``w − c`` is one rounding, as ``z − c`` is for integer codes, so the margin carries over
   unchanged; the nonzero count is exact integer logic. With the split, ``E`` is measured for
   ``H − D`` (plus ``2u‖diag(H − D)‖`` for the subtraction), ``γ`` is doubled to cover the
   rounding of the separable part ``Σ D_k(w_k − c_k)²`` (``(n + 5)u`` relative at most), and the
   tail table is shrunk by ``8(n + 4)u``; the pruning solver's bound by ``8(n + 4)u`` too.

Contract: ``lower_bound <= optimum <= objective``; every returned weight is one of its levels and
the nonzero limit holds. ``OPTIMAL`` when the tree was exhausted and the margin leaves a relative
gap within ``margin_rtol`` (else ``GAP_LIMIT`` with a message); on a limit ``TIME_LIMIT`` /
``NODE_LIMIT`` with the best solution found and the open-node bound.

References: Schnorr & Euchner (1994); Agrell, Eriksson, Vardy & Zeger (2002); Ghasemmehdi &
Agrell (2011).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from ..problem import LevelProblem, ProblemError
from ..quant.certify import U_ROUND, Certifier, certified_bound, gamma
from ..quant.factor import live_inputs, ordered_cholesky
from ..quant.ordering import _regularised_inverse, order_variables
from ..result import OPTIMALITY_RTOL, SolveResult, Status, relative_gap
from ..stopwatch import passed
from . import kernels as kn

log = logging.getLogger(__name__)

ORDERINGS = ("auto", "box", "vblast", "natural", "saliency")
SPLITS = ("auto", "cond", True, False)
#: node limit of the support step's two solves when the caller gives a node limit
SUPPORT_NODES = 20_000
#: exact requantizations of the swap search over supports (:func:`_support_search`)
SUPPORT_SOLVES = 60
#: nodes after which a search under a nonzero limit runs that swap search once
SUPPORT_SEARCH_NODES = 1_000_000
#: nodes after which a search with the conditional tail switches to the largest-volume diagonals
UPGRADE_NODES = 50_000
#: depths between two largest-volume diagonals of the conditional tail, and their barrier weight
LOGDET_STEP, LOGDET_MU = 3, 1e-2
#: nodes of the first search after which ``ordering="auto"`` (without a nonzero limit) starts a
#: second search in the box-aware order beside it
SECOND_AFTER_NODES = 20_000
#: the diagonal split of the support-first search's bound: "logdet" the largest-volume diagonal
#: under ``H`` computed at the root by the pruning solver's compiled damped Newton method
#: (:func:`solvers.prune.kernels.node_split`, barrier weight ``SPLIT_MU``, at most
#: ``SUPPORT_SPLIT_STEPS`` steps from the Jacobi split, certified by a shifted Cholesky test);
#: "jacobi" 1 % inside the Jacobi split. On the tune layers (INT4, n = 32, 25 % nonzero) the
#: root log-det split cuts the nodes by 25-45 % for ~0.3-0.8 ms of set-up (the numpy log-det
#: split after 1,500 nodes it replaces cost 1.5-4 ms).
SUPPORT_SPLIT = "logdet"
SUPPORT_SPLIT_STEPS = 20
#: sweeps of the 1-swap local search over supports behind the support-first search's incumbent
SUPPORT_SWEEPS = 20


class LevelData:
    """The arrays of one problem restricted to a subset of inputs (the live ones).

    ``T`` (m, L) levels, ``zix`` zero-level indices, ``grp`` N:M group of each input (-1 when
    none), ``K`` the nonzero limit (``m`` when none), ``N`` per group.
    """

    def __init__(self, problem: LevelProblem, idx: np.ndarray):
        t = problem.table
        self.T = np.ascontiguousarray(t[idx])
        self.zix = np.ascontiguousarray(problem.zero_index[idx]).astype(np.int64)
        m = idx.size
        if problem.nm is not None:
            self.N = int(problem.nm[0])
            self.grp = (idx // problem.nm[1]).astype(np.int64)
        else:
            self.N, self.grp = m, np.full(m, -1, dtype=np.int64)
        self.K = m if problem.k is None else min(int(problem.k), m)
        self.groups = int(self.grp.max()) + 1 if m and self.grp.max() >= 0 else 1

    def permuted(self, order: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (np.ascontiguousarray(self.T[order]), np.ascontiguousarray(self.zix[order]),
                np.ascontiguousarray(self.grp[order]))

    def values(self, ix: np.ndarray) -> np.ndarray:
        return self.T[np.arange(self.T.shape[0]), ix]


def solve_levels(
    problem: LevelProblem,
    *,
    time_limit: float | None = None,
    node_limit: int | None = None,
    ordering: str = "auto",
    initial_weights: Any = None,
    margin_rtol: float = 1e-6,
    slice_nodes: int = 20_000,
    log_every: float = 10.0,
    split: bool | str = "auto",
    support_time: float = 1.0,
    support_first: bool | str = "auto",
) -> SolveResult:
    """Solve a :class:`~solvers.problem.LevelProblem` exactly (anytime).

    Parameters
    ----------
    problem : LevelProblem
    time_limit : float, optional
        Wall-clock seconds; on expiry the best solution and a valid lower bound are returned.
    node_limit : int, optional
        Search nodes; same behaviour (status ``NODE_LIMIT``).
    ordering : {"auto", "vblast", "natural", "saliency"}
        Variable order of the search tree (exactness never depends on it): ``"vblast"`` the
        largest conditional precision on top; ``"saliency"`` the least OBS saliency
        ``w0_j²/(H⁻¹)_jj`` on top (the inputs most likely pruned are decided first: on
        MobileNetV2 n = 32 INT4 at 50 % nonzero, 5/5 proved with median 0.34 s against 1/5 with
        the reverse order within 10 s); ``"auto"``: saliency under a nonzero limit, else vblast.
    initial_weights : array_like, optional
        A known feasible solution (every weight one of its levels), one more starting incumbent.
    margin_rtol : float
        Largest relative gap (the floating-point margin) with which an exhausted search is
        reported ``OPTIMAL``.
    slice_nodes : int
        Nodes per compiled slice between clock checks (adapted to ~20 ms per slice without a
        node limit; with one, fixed: slices, the switch to stronger tail diagonals and the
        support step's own limits then count nodes, so the result does not depend on the clock
        unless ``time_limit`` expires first).
    log_every : float
        Seconds between progress lines on this module's logger (INFO).
    split : {"auto", "cond", True, False}
        Diagonal split ``H = D + (H − D)``, ``D`` the certified largest-volume diagonal under
        ``H`` (:func:`solvers.prune.bounds.diagonal_split`, ``"logdet"``): the search runs on the
        factor of ``H − D`` with the separable part ``Σ D_j(w_j − w0_j)²`` added row by row, and
        every node adds the least separable cost of the rows below that the remaining nonzero
        budget allows (:func:`separable_tail`). ``"cond"``: the split plus the conditional
        tail — the free rows' part of ``H − D`` around their conditional centre, bounded below
        by a certified diagonal per depth (:func:`_conditional_tail`,
        :func:`solvers.levels.kernels.cond_tail`); on MobileNetV2 n = 32 INT4 at 50 % nonzero
        (tune layers) the median solve 589 → 208 ms. ``"auto"``: ``"cond"`` with a nonzero
        limit, else none.
    support_time : float
        With a nonzero limit: seconds (at most 10 % of ``time_limit``) for the exact pruning
        solver (:func:`solvers.prune.exact.solve_exact`, continuous weights, the same limit);
        its mask, quantized exactly over the levels, is one more incumbent, and its certified
        bound — the joint problem's feasible set lies inside the pruning problem's — is a lower
        bound too (the larger one is reported). 0 switches it off.
    support_first : {"auto", True, False}
        With a plain nonzero limit (no N:M): search over supports first
        (:func:`solvers.levels.kernels.support_search`: the pruning solver's saliency bound
        and the split bound with each kept input's nearest-level cost, the levels of each full
        support solved exactly by Schnorr–Euchner). On MobileNetV2 n = 32 INT4 at 25 %
        nonzero it proves every instance in tens of milliseconds where the level search took
        up to 30 s and more (docs/formats.md). ``"auto"``: on whenever it applies (a nonzero
        limit ``k < n``, no N:M groups, the live block of ``H`` positive definite); else the
        level search.

    Returns
    -------
    SolveResult
        ``weights`` (every one a level), ``objective``, ``lower_bound``, ``nodes``; ``codes``
        holds the level index of each input; ``info`` the incumbent source and the margin.

    Examples
    --------
    >>> import numpy as np
    >>> from solvers import LevelProblem
    >>> H = np.array([[2.0, 1.9], [1.9, 2.0]])
    >>> p = LevelProblem(H, [0.8, -0.45], levels=[-1.0, -0.5, 0.0, 0.5, 1.0])
    >>> r = solve_levels(p)
    >>> r.status.value, r.weights.tolist(), round(r.objective, 6), r.lower_bound <= r.objective
    ('optimal', [1.0, -0.5], 0.047, True)
    >>> p1 = LevelProblem(H, [0.8, -0.45], levels=[-1.0, -0.5, 0.0, 0.5, 1.0], k=1)
    >>> solve_levels(p1).weights.tolist()                     # at most one nonzero
    [0.5, 0.0]
    """
    t0 = time.perf_counter()
    deadline = None if time_limit is None else t0 + max(0.0, float(time_limit))
    if ordering not in ORDERINGS:
        raise ProblemError(f"unknown ordering {ordering!r}; valid: {', '.join(ORDERINGS)}")
    if split not in SPLITS:
        raise ProblemError(f"split must be 'auto', 'cond', True or False, got {split!r}")
    H, c, n = problem.H, problem.w0, problem.n
    zero = problem.zero_index
    table = problem.table
    # dead inputs: the zero level, else the nearest
    ix_all = np.array([zero[j] if zero[j] >= 0 else kn._nearest_index(table[j], c[j])
                       for j in range(n)], dtype=np.int64)
    idx = np.arange(n) if np.all(np.diagonal(H) > 0.0) else np.flatnonzero(live_inputs(H))
    info: dict[str, Any] = {"ordering": ordering, "dead_inputs": int(n - idx.size)}
    if idx.size == 0:
        w = problem.weights(ix_all)
        return SolveResult(Status.OPTIMAL, w, problem.error(w), 0.0, problem.norm, "exact", 0,
                           time.perf_counter() - t0, ix_all, None,
                           "H is zero: every solution is optimal", info)
    Hl = np.ascontiguousarray(H if idx.size == n else H[np.ix_(idx, idx)])
    cl = np.ascontiguousarray(c[idx])
    d = LevelData(problem, idx)

    sparse = d.K < idx.size
    if support_first not in ("auto", True, False):
        raise ProblemError(f"support_first must be 'auto', True or False, got {support_first!r}")
    if sparse and support_first and d.grp.max() < 0:
        res = _support_first(problem, Hl, cl, d, idx, ix_all, deadline, node_limit,
                             margin_rtol, t0, info)
        if res is not None:
            return res
    order = _order(Hl, cl, d, ordering)
    Rs, rank = ordered_cholesky(Hl, order)
    info["rank"] = int(rank)
    Tp, zp, gp = d.permuted(order)
    cands = _incumbents(Hl, cl, d, Rs, np.ascontiguousarray(cl[order]), order, Tp, zp, gp)
    prune_bound = None
    if sparse and support_time > 0:
        ix_sup, prune_bound = _support_incumbent(problem, idx, d, support_time, deadline,
                                                 node_limit is not None)
        if ix_sup is not None:
            cands["support"] = ix_sup
            cands["support+1opt"] = kn.one_opt(Hl, cl, d.T, d.zix, d.K, d.grp, d.N,
                                               ix_sup.copy(), 50)
        info["prune_bound"] = prune_bound
    D = np.zeros(idx.size)
    cond = split == "cond" or (split == "auto" and sparse)
    if split is True or cond:
        from ..prune.bounds import diagonal_split

        D = diagonal_split(Hl, cl, np.ones(idx.size, dtype=bool), d.K, "logdet")
    info["split"] = "cond" if cond else bool(np.any(D > 0))
    if initial_weights is not None:
        w_init = problem.check_weights(initial_weights)
        cands["given"] = np.array([int(np.flatnonzero(table[j] == w_init[j])[0]) for j in idx])
    values = {k: kn.objective(Hl, cl, d.values(v)) for k, v in cands.items()}
    best_name = min(values, key=values.get)
    info["incumbent"] = best_name
    info["incumbent_values"] = {k: float(v) for k, v in values.items()}

    searches = [_Search(Hl, cl, d, order, D, cands[best_name], cond)]
    info["slack"] = searches[0].slack
    info["residual_norm"] = searches[0].certifier.residual_norm
    second = "box" if ordering == "auto" and not sparse else None
    nodes = 0
    budget = max(1000, int(slice_nodes))
    limit_hit: Status | None = None
    next_log = t0 + log_every
    done = None
    while done is None:
        if second is not None and nodes >= SECOND_AFTER_NODES:
            # the first order is slow on this problem: a second search in the box-aware order
            # beside it, slice by slice, sharing incumbents; the first to finish proves
            searches.append(_Search(Hl, cl, d, _order(Hl, cl, d, second), D,
                                    searches[0].incumbent(), cond))
            info["second_ordering"], second = second, None
        for sr in searches:
            if node_limit is not None:
                budget = max(1, min(budget, int(node_limit) - nodes))
            ts = time.perf_counter()
            nodes += sr.run(budget)
            if not sr.upgraded and nodes >= UPGRADE_NODES and not sr.done:
                sr.upgrade()
            if (sparse and support_time > 0 and "support_search" not in info
                    and nodes >= SUPPORT_SEARCH_NODES and not sr.done):
                # a long search: a better incumbent may pay (deterministic: counted solves)
                ix_s, e_s = _support_search(Hl, cl, d, sr.incumbent(), SUPPORT_SOLVES, deadline)
                sr.offer(ix_s)
                info["support_search"] = e_s
            now = time.perf_counter()
            if sr.done:
                done = sr
                break
            limit_hit = _limit_hit(nodes, node_limit, deadline, now)
            if limit_hit is not None:
                break
            if node_limit is None:  # slices of ~20 ms; with a node limit fixed (deterministic)
                dt = max(now - ts, 1e-6)
                target = 0.02 if deadline is None else min(0.02, max(1e-3, (deadline - now) / 2))
                budget = int(min(max(1000, budget * target / dt), 50_000_000))
        if limit_hit is not None:
            break
        if len(searches) == 2:  # share the better incumbent
            a, b2 = searches
            ia, ib = a.incumbent(), b2.incumbent()
            if a.value(ia) < a.value(ib):
                b2.offer(ia)
            else:
                a.offer(ib)
        if now >= next_log:
            log.info("levels exact n=%d: %d nodes, %.1f s, incumbent %.6g, bound %.6g",
                     n, nodes, now - t0, min(sr.ubest[0] for sr in searches),
                     max(sr.open_bound() for sr in searches))
            next_log = now + log_every

    best = min(searches, key=lambda sr: sr.ubest[0]) if done is None else done
    if done is not None:
        b = float(done.ubest[1])
        if len(searches) == 2:
            info["proved_by"] = "box" if done is searches[1] else "first ordering"
    else:
        b = max(min(float(sr.ubest[1]), sr.open_bound() - sr.slack) for sr in searches)
    ix_all[idx] = best.incumbent()
    w = problem.weights(ix_all)
    obj = problem.error(w)
    lower = float(min(certified_bound(b, 1.0), obj))
    if prune_bound is not None and prune_bound > lower:
        info["search_bound"] = lower
        lower = float(min(prune_bound, obj))
    return _result(problem, w, obj, lower, ix_all, nodes, limit_hit, margin_rtol, t0, info)


def _limit_hit(nodes, node_limit, deadline, now) -> Status | None:
    if node_limit is not None and nodes >= node_limit:
        return Status.NODE_LIMIT
    if deadline is not None and now >= deadline:
        return Status.TIME_LIMIT
    return None


def _support_first(problem, Hl, cl, d: LevelData, idx, ix_all, deadline, node_limit,
                   margin_rtol, t0, info):
    """The support-first search (:func:`solvers.levels.kernels.support_search`), or None when
    ``H`` of the live inputs is not positive definite (then the level search runs)."""
    from ..prune.bounds import margin_for
    from ..prune.kernels import greedy_obs, swap_search
    from ..prune.refit import PIVOT_RTOL

    m = cl.size
    try:
        np.linalg.cholesky(Hl)
        G0 = np.linalg.inv(Hl)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(G0)) or not np.all(np.diagonal(G0) > 0.0):
        return None
    alive = np.ones(m, dtype=bool)
    mu, kappa, capped = margin_for(Hl, alive)
    dvec, split_name = _support_split(Hl, kappa)
    # a first incumbent (the search's first leaf comes within ~n nodes and is better)
    ib = _repair(Hl, d, np.array([kn._nearest_index(d.T[j], cl[j]) for j in range(m)],
                                 dtype=np.int64))
    ub = np.array([kn.objective(Hl, cl, d.values(ib)), np.inf])
    inc = {"nearest": float(ub[0])}
    # better ones: the greedy OBS support and its 1-swap local optimum (the pruning solver's
    # kernels, one group of m inputs), their levels solved exactly (one leaf each)
    keep = greedy_obs(G0, cl, d.K, m, alive)
    swapped, _, ok = swap_search(Hl, cl, keep, d.K, m, alive, PIVOT_RTOL, SUPPORT_SWEEPS)
    for name, kp in (("greedy", keep), ("greedy+swap", swapped if ok else None)):
        ix = np.empty(m, dtype=np.int64)
        v = -1.0 if kp is None else kn._leaf(Hl, cl, d.T, d.zix, kp, mu, ub[0], ix, dvec)
        if 0.0 <= v < ub[0]:
            ib, ub[0] = ix, v
            inc[name] = float(v)
    st = kn.new_support_state(m)
    st["G"][0] = 0.5 * (G0 + G0.T)
    st["w"][0] = cl
    info.update(method="support-first", split=split_name, margin=mu, kappa=kappa,
                margin_capped=capped, incumbent=min(inc, key=inc.get), incumbent_values=inc)
    # a first slice of 200 nodes (~1 ms), then ~20 ms slices: a short time limit is honoured
    nodes, budget, limit_hit = 0, 200, None
    while st["top"][1] == 0:
        if node_limit is not None:
            budget = max(1, min(budget, int(node_limit) - nodes))
        ts = time.perf_counter()
        nodes += kn.support_search(Hl, cl, d.T, d.zix, d.K, dvec, mu, st["G"], st["w"],
                                   st["e"], st["phase"], st["sel"], st["first"], st["stt"],
                                   st["bnd"], st["top"], st["src"], ib, ub, budget)
        if st["top"][1] == 1:
            break
        now = time.perf_counter()
        limit_hit = _limit_hit(nodes, node_limit, deadline, now)
        if limit_hit is not None:
            break
        if node_limit is None:  # slices of ~20 ms
            budget = int(min(max(budget * 0.02 / max(now - ts, 1e-6), 200), 10**6))
    ix_all[idx] = ib
    w = problem.weights(ix_all)
    obj = problem.error(w)
    lower = min(obj * (1.0 - 2.0 * mu), float(ub[1]))
    if limit_hit is not None:
        lower = min(lower, kn.support_open_bound(st["bnd"], st["phase"], st["top"], mu))
    return _result(problem, w, obj, max(0.0, float(lower)), ix_all, nodes, limit_hit,
                   margin_rtol, t0, info)


def _support_split(Hl, kappa) -> tuple[np.ndarray, str]:
    """The certified diagonal ``d`` (``H ⪰ diag d``) of the support-first search's bound
    (:data:`SUPPORT_SPLIT`); the Jacobi split when the log-det one fails its test."""
    from ..prune.bounds import certify_diagonal, scaled_spectrum

    m = Hl.shape[0]
    if SUPPORT_SPLIT == "logdet":
        from ..prune.exact import split_tau
        from ..prune.kernels import node_split

        dout = np.zeros(m)
        if node_split(Hl, np.zeros(m, dtype=np.int64), np.zeros(m), dout, split_tau(m, kappa),
                      SUPPORT_SPLIT_STEPS):
            return dout, "logdet"
    lam, s = scaled_spectrum(Hl, np.ones(m, dtype=bool))  # 1 % inside: certified at once
    return certify_diagonal(Hl, max(0.99 * float(lam[0]), 0.0) * s * s), "jacobi"


class _Search:
    """One depth-first search in one variable order (its factor, margins, tail and state).

    Incumbents enter and leave in input order (level indices of the live inputs).
    """

    def __init__(self, Hl, cl, d: LevelData, order, D, ix0, cond: bool = False):
        m = cl.size
        self.order, self.inv = order, np.argsort(order)
        self.Dp = np.ascontiguousarray(D[order])
        Hp = Hl[np.ix_(order, order)]
        self.split = bool(np.any(self.Dp > 0))
        Hs = Hp - np.diag(self.Dp) if self.split else Hp
        self.R, _ = ordered_cholesky(Hs, None)
        self.cp = np.ascontiguousarray(cl[order])
        self.Tp, self.zp, self.gp = d.permuted(order)
        self.K, self.N = d.K, d.N
        # the split's diagonal is subtracted in float64: at most u·|H_jj − D_j| per entry
        extra = 2 * U_ROUND * float(np.linalg.norm(np.diag(Hs))) if self.split else 0.0
        self.certifier = Certifier(Hs, self.R, self.cp, self.Tp[:, 0].copy(),
                                   self.Tp[:, -1].copy(), extra_residual=extra)
        if self.split:  # the separable part's rounding: γ more, relative (module docstring)
            self.certifier.gamma *= 2.0
            self.certifier.cert[1] = self.certifier.gamma
        self.ibest = np.ascontiguousarray(np.asarray(ix0)[order]).astype(np.int64)
        u0 = self.value(ix0)
        self.slack, _ = self.certifier.global_margin(u0)
        self.ubest = np.array([u0, u0 - self._margin(self.ibest, u0)])
        self.tail = separable_tail(self.Dp, self.cp, self.Tp, self.zp, sparse=d.K < m)
        self.st = kn.new_state(m, d.groups)
        self.Hs = Hs
        self.cond = _conditional_tail(Hs, self.R, self.certifier.residual_norm, u0) \
            if cond else None
        self.upgraded = self.cond is None
        if self.cond is None:  # off: empty arrays (the kernel's test: dl has n + 1 rows)
            self.cond = (np.zeros((1, 1)), np.zeros((1, 1)), np.zeros(3), np.zeros(1))

    def upgrade(self) -> None:
        """The conditional tail with the largest-volume diagonals (a long search pays for
        them); the search state is unchanged: every node's bound is valid with either."""
        self.upgraded = True
        better = _conditional_tail(self.Hs, self.R, self.certifier.residual_norm,
                                   float(self.cond[2][0]), "logdet")
        if better is not None:
            self.cond = better

    def _margin(self, ixp, u):
        wv = self.Tp[np.arange(ixp.size), ixp]
        return kn.leaf_margin(self.R, self.cp, wv, u, self.certifier.cert)

    def value(self, ix) -> float:
        """The search's computed value of a solution given in input order."""
        ixp = np.asarray(ix)[self.order]
        return kn.r_distance(self.R, self.cp, self.Tp[np.arange(ixp.size), ixp], self.Dp)

    def incumbent(self) -> np.ndarray:
        return self.ibest[self.inv].copy()

    def offer(self, ix) -> None:
        """Take ``ix`` (input order) as incumbent if its value is lower (with its leaf
        certificate, as for a leaf reached)."""
        u = self.value(ix)
        if u < self.ubest[0]:
            self.ibest[:] = np.asarray(ix)[self.order]
            self.ubest[0] = u
            self.ubest[1] = min(self.ubest[1], u - self._margin(self.ibest, u))

    @property
    def done(self) -> bool:
        return bool(self.st["st"][1] == 1)

    def run(self, budget: int) -> int:
        st = self.st
        return kn.level_search(self.R, self.cp, self.Tp, self.zp, self.K, self.gp, self.N,
                               self.Dp, self.tail, self.slack, self.certifier.cert, self.ibest,
                               self.ubest, st["ix"], st["wv"], st["P"], st["ctr"], st["vc"],
                               st["up"], st["dn"], st["S"], st["last"], st["used"],
                               st["gcnt"], st["alw"], st["st"], budget, self.cond[0],
                               self.cond[1], st["Cm"], st["ext"], self.cond[2], st["rz"],
                               self.cond[3])

    def open_bound(self) -> float:
        st = self.st
        return float(kn.open_bound(self.R, self.cp, self.Tp, self.zp, self.K, self.Dp,
                                   self.tail, self.ubest, st["wv"], st["P"], st["ctr"],
                                   st["vc"], st["up"], st["dn"], st["used"], st["st"]))


def _conditional_tail(Hs, R, rho, u0, diagonal="jacobi"):
    """The arrays ``(dl, Gm, cst)`` of the conditional tail (:func:`solvers.levels.kernels.
    cond_tail`) or None.

    ``Hs`` is the searched matrix (``H − D`` with the split) in the search order, ``R`` its
    factor, ``ρ = ‖E‖_F`` a bound on the factorisation residual. Per depth ``k`` a diagonal
    ``dl[k, :k]`` under the leading block, certified for ``Hs[:k, :k] − ρI``
    (:func:`solvers.prune.bounds.certify_diagonal`), so ``(RᵀR)[:k, :k] − diag(dl[k, :k]) ⪰ 0``:
    with the rows ``>= k`` fixed the free rows' part ``(x − c*)ᵀ(RᵀR)[:k, :k](x − c*)`` is at
    least ``Σ dl[k, i](x_i − c*_i)²``. ``diagonal``: ``"jacobi"`` (``λ_min`` of the Jacobi-scaled
    block times ``diag``, one eigenvalue problem per depth) or ``"logdet"`` (the largest-volume
    diagonal, :func:`solvers.prune.bounds.logdet_diagonal`, every :data:`LOGDET_STEP` depths;
    the depths between take the leading part of the one above — a leading block of
    ``A − diag(d) ⪰ 0`` is again ⪰ 0). ``Gm[i, k] = R_kk (R⁻¹)_ik``: ``c*[:k]`` moves by
    ``Gm[:k, k]·(v − ĉ_k)`` when row ``k`` takes ``v`` (``ĉ_k`` its centre). None when ``R``
    is singular (a null direction: no unique centre) or every ``dl`` is zero.
    """
    from scipy.linalg import solve_triangular

    from ..prune.bounds import certify_diagonal, logdet_diagonal

    m = R.shape[0]
    if not np.all(np.diagonal(R) > 0.0):
        return None
    dl = np.zeros((m + 1, m))
    above = None
    for k in range(m, 0, -1):
        A = Hs[:k, :k] - rho * np.eye(k)
        if diagonal == "logdet":
            if k >= 2 and ((m - k) % LOGDET_STEP == 0 or above is None):
                dd = logdet_diagonal(Hs[:k, :k], LOGDET_MU)
                if dd is not None:
                    above = dl[k, :k] = certify_diagonal(A, dd)
                    continue
            if above is not None:
                dl[k, :k] = above[:k]
                continue
        s = np.sqrt(np.maximum(np.diagonal(Hs)[:k], 0.0))
        if not np.all(s > 0.0):
            continue
        lam = float(np.linalg.eigvalsh(Hs[:k, :k] / np.outer(s, s))[0])
        if lam > 0.0:
            dl[k, :k] = certify_diagonal(A, lam * s * s)
    if not np.any(dl > 0.0):
        return None
    Rinv = solve_triangular(R, np.eye(m), lower=False)
    Gm = np.ascontiguousarray(np.triu(Rinv * np.diagonal(R)[None, :], 1))
    if not np.all(np.isfinite(Gm)):
        return None
    cst = np.array([u0, 1.0 - 8.0 * (m + 4) * U_ROUND, gamma(m)])
    return dl, Gm, cst, _residual_slopes(R, Gm)


def _residual_slopes(R, Gm):
    """Per row ``k``: how fast the bound on ``‖R_{<k,<k}(ĉ − c*)‖`` grows with ``|v − ĉ_k|``
    (:func:`solvers.levels.kernels.parent_residual`): ``ρ1 = R_{<k,<k}Gm[:k, k] + R_{<k,k}``
    (zero in exact arithmetic), computed, plus ``2γ‖|R_{<k,<k}||Gm[:k, k]| + |R_{<k,k}|‖`` for
    that computation, plus ``(u + 3u(1 + 3u))‖|R_{<k,<k}||Gm[:k, k]|‖`` for the rounding of
    ``v − ĉ_k`` and of the centre step; times ``1 + 1e-12``."""
    m = R.shape[0]
    g = gamma(m + 2)
    out = np.zeros(m)
    for k in range(1, m):
        Rr, gk, rk = R[:k, :k], Gm[:k, k], R[:k, k]
        rho1 = float(np.linalg.norm(Rr @ gk + rk))
        a = np.abs(Rr) @ np.abs(gk)
        out[k] = (rho1 + 2.0 * g * float(np.linalg.norm(a + np.abs(rk)))
                  + (U_ROUND + 3.0 * U_ROUND * (1.0 + 3.0 * U_ROUND)) * float(np.linalg.norm(a)))
    return out * (1.0 + 1e-12)


def _order(Hl, cl, d: LevelData, ordering: str) -> np.ndarray:
    """``order[k]``: the input at row ``k`` (the top is ``n − 1``)."""
    m = cl.size
    if ordering == "auto":
        ordering = "saliency" if d.K < m else "vblast"
    if ordering == "natural":
        return np.arange(m)[::-1].copy()
    if ordering == "saliency":  # OBS saliency w0_j²/(H⁻¹)_jj: the likely pruned on top
        G = _regularised_inverse(Hl)
        sal = cl * cl / np.maximum(np.diag(G), np.finfo(float).tiny)
        return np.argsort(-sal, kind="stable")
    if ordering == "box":
        return kn.order_box(np.ascontiguousarray(_regularised_inverse(Hl)), Hl, cl, d.T)
    return order_variables(Hl, cl, 0, 0, "vblast")


def separable_tail(D: np.ndarray, c: np.ndarray, T: np.ndarray, zix: np.ndarray, *,
                   sparse: bool) -> np.ndarray:
    """``tail[k, b]``: the least ``Σ_{i<k} D_i(w_i − c_i)²`` over levels with at most ``b``
    nonzeros among the rows ``i < k`` (search order), a lower bound on what those rows add.

    Per row the best level costs ``a_i`` and the zero level ``z_i``; at most ``b`` nonzeros means
    at least ``k − b`` zeros: the rows whose best level is zero give theirs for free, the others
    pay the smallest extra costs ``z_i − a_i``. Computed values are shrunk by
    ``8(n + 4)u`` relative (the rounding of these sums), so the table stays a lower bound.

    Examples
    --------
    >>> import numpy as np
    >>> T = np.array([[-1.0, 0.0, 1.0]] * 2)
    >>> t = separable_tail(np.ones(2), np.array([0.9, -0.8]), T, np.array([1, 1]), sparse=True)
    >>> np.round(t[2], 6).tolist()                     # b = 0: both zero; 1: one; 2: none
    [1.45, 0.65, 0.05]
    """
    n = c.size
    tail = np.zeros((n + 1, n + 1))
    if not np.any(D > 0.0):
        return tail
    a = D * np.min((T - c[:, None]) ** 2, axis=1)
    zero = np.where(zix >= 0, D * c * c, np.inf)
    for k in range(1, n + 1):
        base = float(np.sum(a[:k]))
        tail[k, :] = base
        if sparse:
            extra = np.sort((zero[:k] - a[:k])[zero[:k] > a[:k]])
            p0 = k - extra.size
            pref = np.concatenate([[0.0], np.cumsum(extra)])
            for b in range(n + 1):
                m = min(max(0, k - b - p0), extra.size)
                tail[k, b] = base + pref[m]
    return tail * (1.0 - 8.0 * (n + 4) * U_ROUND)


def _result(problem, w, obj, lower, ix, nodes, limit_hit, margin_rtol, t0, info):
    gap = relative_gap(obj, lower)
    if limit_hit is not None:
        status = limit_hit
        msg = f"{limit_hit.value} after {nodes} nodes; bound from the open nodes"
    elif gap is not None and (gap <= max(margin_rtol, OPTIMALITY_RTOL) or obj - lower <= 1e-300):
        status, msg = Status.OPTIMAL, ""
    else:
        status = Status.GAP_LIMIT
        msg = (f"search complete; the floating-point margin leaves a relative gap {gap:.3g} "
               f"> {margin_rtol:g} (the weights are optimal up to that margin)")
    seconds = time.perf_counter() - t0
    log.debug("levels exact n=%d: %s, %d nodes, %.3f s", problem.n, status.value, nodes, seconds)
    return SolveResult(status, w, obj, lower, problem.norm, "exact", nodes, seconds, ix, None,
                       msg, info)


def _incumbents(Hl, cl, d: LevelData, R, cp, order, Tp, zp, gp) -> dict[str, np.ndarray]:
    """Starting solutions as level indices in input order (live inputs), each with 1-opt."""
    m = cl.size
    near = np.array([kn._nearest_index(d.T[j], cl[j]) for j in range(m)], dtype=np.int64)
    cands = {"nearest": _repair(Hl, d, near)}
    if m <= 512:
        nat = np.arange(m)[::-1].copy()  # input 0 at the top: GPTQ's order
        Rn, _ = ordered_cholesky(Hl, nat)
        Tn, zn, gn = d.permuted(nat)
        seq = kn.nearest_plane(Rn, np.ascontiguousarray(cl[nat]), Tn, zn, d.K, gn, d.N,
                               np.ascontiguousarray(cands["nearest"][nat]))
        cands["sequential"] = _unpermute(seq, nat)
    np_ix = kn.nearest_plane(R, cp, Tp, zp, d.K, gp, d.N,
                             np.ascontiguousarray(cands["nearest"][order]))
    cands["nearest_plane"] = _unpermute(np_ix, order)
    for name in list(cands):
        cands[name + "+1opt"] = kn.one_opt(Hl, cl, d.T, d.zix, d.K, d.grp, d.N,
                                           cands[name].copy(), 50)
    return cands


def _support_incumbent(problem: LevelProblem, idx, d: LevelData, support_time, deadline,
                       by_nodes: bool):
    """The exact pruning mask (continuous weights) quantized exactly over the levels.

    ``by_nodes`` (the caller has a node limit): both solves stop after
    :data:`SUPPORT_NODES` nodes instead of ``support_time``, so the result does not depend on
    the clock (unless the caller's own time limit binds).

    Returns ``(level indices of the live inputs or None, certified pruning bound or None)``.
    """
    from ..problem import PruneProblem
    from ..prune.exact import solve_exact as prune_exact

    t = float(support_time)
    if deadline is not None:
        t = min(t, 0.1 * max(0.0, deadline - time.perf_counter()))
    if t <= 0.0:
        return None, None
    if by_nodes:  # the clock only through the caller's own time limit
        t = None if deadline is None else 0.1 * max(0.0, deadline - time.perf_counter())
    H = problem.H[np.ix_(idx, idx)]
    w0 = problem.w0[idx]
    if problem.nm is not None and idx.size == problem.n:
        pp = PruneProblem.unchecked(H, w0, nm=problem.nm)
    else:  # dead inputs break the N:M grouping of the live ones: the limit k alone (weaker)
        pp = PruneProblem.unchecked(H, w0, k=d.K)
    nl = SUPPORT_NODES if by_nodes else None
    pr = prune_exact(pp, time_limit=t, node_limit=nl)
    # the pruning solver's bound may equal its computed objective (e.g. k = 0): shrink it by
    # that computation's rounding, relative 8(n + 4)u, so it stays below the exact optimum
    bound = None if pr.lower_bound is None else \
        max(0.0, pr.lower_bound * (1.0 - 8.0 * (idx.size + 4) * U_ROUND))
    ix, _ = _requantize(H, w0, d, np.asarray(pr.mask, dtype=bool), t, nl)
    return ix, bound


def _requantize(H, w0, d: LevelData, mask, time_limit=None, node_limit=None):
    """The best levels on the support ``mask`` (the others at zero), solved exactly: with the
    dropped inputs ``P`` at zero the error is ``(x − t)ᵀH_KK(x − t) + const`` over the kept
    ``K``, ``t = w0_K + H_KK⁺H_KP w0_P`` (the pruned weights' compensation; for ``H ⪰ 0``
    ``H_KP w0_P`` lies in the range of ``H_KK``). Returns ``(level indices, error)`` with the
    error the full problem's (a node or time limit leaves the best found)."""
    keep, drop = np.flatnonzero(mask), np.flatnonzero(~mask)
    ix = d.zix.copy()
    if keep.size:
        HKK = H[np.ix_(keep, keep)]
        t = w0[keep]
        if drop.size:
            t = t + np.linalg.lstsq(HKK, H[np.ix_(keep, drop)] @ w0[drop], rcond=None)[0]
        sub = LevelProblem.unchecked(HKK, np.ascontiguousarray(t), d.T[keep])
        ix[keep] = solve_levels(sub, time_limit=time_limit, node_limit=node_limit,
                                support_time=0).codes
    return ix, float(kn.objective(H, w0, d.values(ix)))


def _support_search(H, w0, d: LevelData, ix, max_solves: int, deadline: float | None = None):
    """Swap local search over supports, each support quantized exactly (:func:`_requantize`):
    from the support of ``ix``, the swaps (one kept input out, one dropped in) in order of
    their continuous pruning cost, the first that improves the error is taken; at most
    ``max_solves`` exact requantizations (a node limit on each), so deterministic unless the
    caller's ``deadline`` (``perf_counter`` seconds) stops it first. Only for a plain nonzero
    limit (N:M groups: unchanged). Returns ``(level indices, error)``."""
    best_ix, best = _requantize(H, w0, d, d.values(ix) != 0.0, node_limit=SUPPORT_NODES)
    cur = kn.objective(H, w0, d.values(ix))
    if cur < best:
        best_ix, best = ix.copy(), cur
    if d.grp.max() >= 0:
        return best_ix, best
    solves = 1
    while solves < max_solves:
        mask = d.values(best_ix) != 0.0
        kept, dropped = np.flatnonzero(mask), np.flatnonzero(~mask)
        if kept.size == 0 or dropped.size == 0:
            break
        swaps = []
        for i in kept:
            for j in dropped:
                m2 = mask.copy()
                m2[i], m2[j] = False, True
                swaps.append((_pruning_cost(H, w0, m2), int(i), int(j)))
        swaps.sort()
        improved = False
        for _, i, j in swaps:
            if solves >= max_solves or passed(deadline):
                break
            m2 = mask.copy()
            m2[i], m2[j] = False, True
            ix2, e2 = _requantize(H, w0, d, m2, node_limit=SUPPORT_NODES)
            solves += 1
            if e2 < best:
                best_ix, best, improved = ix2, e2, True
                break
        if not improved:
            break
    return best_ix, best


def _pruning_cost(H, w0, mask):
    """``w0_Pᵀ(H/H_KK)w0_P``: the least error with the inputs ``P`` outside ``mask`` at zero
    and the kept ones continuous (a ranking only)."""
    keep, drop = np.flatnonzero(mask), np.flatnonzero(~mask)
    if drop.size == 0:
        return 0.0
    wp = w0[drop]
    g = H[np.ix_(drop, drop)] @ wp
    if keep.size:
        b = H[np.ix_(keep, drop)] @ wp
        g = g - H[np.ix_(drop, keep)] @ np.linalg.lstsq(H[np.ix_(keep, keep)], b, rcond=None)[0]
    return float(wp @ g)


def _repair(Hl, d: LevelData, ix: np.ndarray) -> np.ndarray:
    """Within the nonzero limits: keep the nonzeros with the largest ``H_jj·w_j²`` (per N:M
    group, then overall), the rest take the zero level."""
    w = d.values(ix)
    nz = np.flatnonzero(w != 0.0)
    if nz.size <= d.K and d.grp.max() < 0:
        return ix
    score = np.diagonal(Hl) * w * w
    keep = np.zeros(w.size, dtype=bool)
    cnt: dict[int, int] = {}
    for j in sorted(nz, key=lambda j: -score[j]):
        g = int(d.grp[j])
        if keep.sum() >= d.K or (g >= 0 and cnt.get(g, 0) >= d.N):
            continue
        keep[j] = True
        cnt[g] = cnt.get(g, 0) + 1
    out = ix.copy()
    out[~keep & (w != 0.0)] = d.zix[~keep & (w != 0.0)]
    return out


def _unpermute(xp: np.ndarray, order: np.ndarray) -> np.ndarray:
    x = np.empty_like(xp)
    x[order] = xp
    return x
