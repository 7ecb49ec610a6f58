"""Exact quantization: box-constrained integer least squares by Schnorr–Euchner search.

Problem (one output channel, DESIGN.md)::

    minimize  (s·z − w0)ᵀ H (s·z − w0) = s²·(z − c)ᵀ H (z − c),   c = w0 / s,
    over integer z with zmin <= z_i <= zmax.

Algorithm
---------
1. Inputs whose row of ``H`` is zero cannot change the error: they take their round-to-nearest
   code and leave the search (:func:`~solvers.quant.factor.live_inputs`).
2. Order the variables (:mod:`~solvers.quant.ordering`, box-aware Chang–Han by default) and
   factor ``H[π, π] = RᵀR`` exactly, null directions as zero rows
   (:mod:`~solvers.quant.factor`; no damping).
3. Incumbent: the best of round-to-nearest, GPTQ-like sequential rounding, box-clipped Babai in
   the search order, each polished by integer 1-opt (:mod:`~solvers.quant.incumbents`).
4. Depth-first Schnorr–Euchner enumeration clipped to the box, pruning every node whose partial
   distance reaches the incumbent (:mod:`~solvers.quant.kernels`, compiled with numba), run in
   node-budgeted slices with a clock check between slices.
5. Certification (:mod:`~solvers.quant.certify`): the search's bound — the incumbent's value when
   the tree is exhausted, else the least bound over the open nodes — minus a floating-point
   margin ``m`` is the reported ``lower_bound``.
6. Large problems (48+ live inputs, time-limited): if the search has not finished after
   ``min(2 s, 20 %)``, large-neighbourhood search (:mod:`~solvers.quant.neighbourhood`) improves
   the incumbent, and the search resumes with it; when the search stops on a limit, the
   certified Lagrangian (SDP-dual) bound (:mod:`~solvers.quant.lagrangian`), strengthened by
   tangents along short dual-lattice directions (:mod:`~solvers.quant.lattice_cuts`), is
   computed and the larger of the two bounds reported.

Contract: ``lower_bound <= optimum <= objective`` always. ``status`` is ``OPTIMAL`` when the tree
was exhausted: then the returned codes are optimal and ``objective − lower_bound`` is only the
floating-point margin of :mod:`~solvers.quant.certify` (typically below 1e-12 relative; larger
for very ill-conditioned or rank-deficient ``H``, where float64 cannot resolve more). If that
margin exceeds ``margin_rtol`` (default 1e-6) relative, the status is ``GAP_LIMIT`` and the
message says so. On a time or node limit the status is ``TIME_LIMIT`` / ``NODE_LIMIT`` with the best
solution found and a valid bound.

References: Schnorr & Euchner (1994); Agrell, Eriksson, Vardy & Zeger (2002); Chang & Han (2008),
*Solving box-constrained integer least squares problems*; Ghasemmehdi & Agrell (2011).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import time
from typing import Any

import numpy as np

from ..problem import ProblemError, QuantProblem, hessian_exponent
from ..result import OPTIMALITY_RTOL, SolveResult, Status, relative_gap
from .certify import Certifier, certified_bound
from .factor import live_inputs, ordered_cholesky
from .incumbents import babai, objective, one_opt, rtn, sequential_rounding
from .kernels import leaf_margin, new_state, open_bound, r_distance, se_search
from .ordering import order_variables
from .reduced_search import ReducedSearch
from .shifted_search import ShiftedSearch

log = logging.getLogger(__name__)

#: live inputs from which ``lagrangian="auto"`` computes the Lagrangian bound on a limit (and
#: ``neighbourhood="auto"`` runs large-neighbourhood search)
LAGRANGIAN_MIN_N = 48
#: ... and up to this many (a Newton step solves a 2n × 2n system: beyond, the time reserve
#: would not cover even a few steps)
LAGRANGIAN_MAX_N = 512
#: seconds of search before the neighbourhood search starts (at most 20 % of the time limit),
#: and its length (at most 30 %) below ``LNS_LONG_N`` live inputs
LNS_START, LNS_SPAN = 2.0, 5.0
#: from this many live inputs the neighbourhood search runs until 5 % of the time is left
LNS_LONG_N = 96
#: nodes of the original search after which ``reduction="auto"`` starts the LLL-reduced search
#: beside it (most problems at n = 32 are done before; ill-conditioned ones never are)
REDUCE_AFTER_NODES = 20_000
#: live inputs up to which ``recentre="auto"`` starts the re-centred search (its set-up solves
#: dense systems of the free variables: milliseconds at 128, a second at 512)
RECENTRE_MAX_N = 128
#: share of the time limit (at most ``DUAL_RESERVE_MAX`` s) kept back for the Lagrangian bound
#: and its dual-lattice cuts (:mod:`solvers.quant.lattice_cuts`) when the search stops; from
#: ``LNS_LONG_N`` live inputs (the search never finishes, the neighbourhood search's gains level
#: off within seconds, the cuts keep gaining) ``DUAL_RESERVE_LONG``
DUAL_RESERVE, DUAL_RESERVE_LONG, DUAL_RESERVE_MAX = 0.2, 0.4, 30.0
#: ``H`` whose largest diagonal entry lies outside ``2^±H_EXPONENT_RANGE`` is solved divided by
#: a power of two (exact: only exponents change), results reported in the user's units
H_EXPONENT_RANGE = 200


def solve_exact(
    problem: QuantProblem,
    *,
    time_limit: float | None = None,
    node_limit: int | None = None,
    ordering: str = "auto",
    initial_codes: Any = None,
    margin_rtol: float = 1e-6,
    slice_nodes: int = 200_000,
    log_every: float = 10.0,
    sdp_reserve: float = 0.0,
    lagrangian: bool | str = "auto",
    neighbourhood: bool | str = "auto",
    reduction: bool | str = "auto",
    recentre: bool | str = "auto",
) -> SolveResult:
    """Solve a :class:`~solvers.problem.QuantProblem` exactly (anytime).

    Parameters
    ----------
    problem : QuantProblem
    time_limit : float, optional
        Wall-clock seconds; on expiry the best solution and a valid lower bound are returned.
    node_limit : int, optional
        Search nodes; same behaviour as the time limit (status ``NODE_LIMIT``).
    ordering : {"auto", "box", "vblast", "natural"}
        Variable order of the search tree (see :mod:`solvers.quant.ordering`); ``"auto"`` is
        the box-aware order up to 5 bits and V-BLAST above, where the box rarely binds.
    initial_codes : array_like of int, optional
        A known feasible code vector, used as one more starting incumbent.
    margin_rtol : float
        Largest relative gap (the floating-point margin) with which an exhausted search is
        reported ``OPTIMAL``; the gap itself is always in the result.
    slice_nodes : int
        Nodes per compiled slice between clock checks: under a time limit adapted to ~20 ms
        per slice; without one, doubled from slice to slice up to ``slice_nodes``, by node
        counts alone, so that a node-limited solve gives the same result on any machine.
    log_every : float
        Seconds between progress lines on the ``solvers.quant.exact`` logger (INFO).
    sdp_reserve : float
        Share of ``time_limit`` kept back, for ``n >= 64`` and ``time_limit >= 5`` s, to compute
        the certified SDP bound (:func:`solvers.quant.sdp.solve_sdp`) when the search does not
        finish; the larger of the two bounds (and the better solution) is returned. The
        depth-first search's own bound from its open nodes is weak on large problems, the
        SDP's is typically within ~2 dB. Off (0) by default: at ``n = 128`` the SDP solve
        through cvxpy can take longer than the reserve, so the time limit is then overrun.
    lagrangian : {"auto", True, False}
        When the search stops on a limit, also compute our own certified Lagrangian (SDP-dual)
        bound (:mod:`solvers.quant.lagrangian`, no cvxpy) and report the larger bound. With a
        ``time_limit`` the rest of the time goes to rounds of dual-lattice tangents
        (:mod:`solvers.quant.lattice_cuts`), which strengthen it; on a node limit alone the
        plain bound is computed. ``"auto"``: for 48–512 live inputs, with ``min(30 s, 20 %)``
        of ``time_limit`` kept back for it (40 % from 96 live inputs). ``True``: for any ``n``.
    neighbourhood : {"auto", True, False}
        With a ``time_limit``: if the search has not finished after ``min(2 s, 20 %)`` of it,
        improve the incumbent by large-neighbourhood search (:mod:`solvers.quant.neighbourhood`,
        windows of 24–48 variables re-solved exactly) for ``min(5 s, 30 %)`` (from ``n >= 96``
        live inputs: until 5 % of the time is left, iterated with random kicks), then resume
        the search with the better incumbent (prunes more). ``"auto"``: for ``n >= 48`` live
        inputs.

    reduction : {"auto", True, False}
        Also search in an LLL-reduced basis (:mod:`solvers.quant.reduced_search`), slice by slice
        beside the original search, sharing incumbents; whichever finishes first proves the
        optimum, and on a limit the larger bound counts. It wins by orders of magnitude on
        ill-conditioned ``H`` (e.g. the stem convolution, where the original search does not
        finish at n = 27) and at 8 bits. ``"auto"``: after ``REDUCE_AFTER_NODES`` nodes of the
        original search, for full-rank ``H``; ``True``: from the start.
    recentre : {"auto", True, False}
        Also search ``f(z) − f(x)`` around the minimiser ``x`` of the box relaxation, with the
        box's KKT multipliers as penalties (:mod:`solvers.quant.shifted_search`), slice by slice
        beside the others, when the box binds at ``x`` (clipped weights: 8 bits with a clipping
        scale); it proves in thousands of nodes what the original search does not in 10⁸.
        ``"auto"``: with the reduced search (after ``REDUCE_AFTER_NODES`` nodes), full-rank
        ``H`` of at most ``RECENTRE_MAX_N`` live inputs; ``True``: from the start, any size.

    Returns
    -------
    SolveResult
        ``codes`` (int64), ``weights = scale·codes``, ``objective``, ``lower_bound``,
        ``nodes``; ``info`` holds the ordering, the rank, the incumbent source, the margin.

    Examples
    --------
    >>> import numpy as np
    >>> from solvers import QuantProblem
    >>> H = np.array([[2.0, 1.9], [1.9, 2.0]])
    >>> p = QuantProblem(H, np.array([0.55, -0.45]), scale=1.0, bits=2)
    >>> r = solve_exact(p)
    >>> r.status.value, round(r.objective, 6), r.lower_bound <= r.objective
    ('optimal', 0.0695, True)
    """
    t0 = time.perf_counter()
    for name, value in (("reduction", reduction), ("lagrangian", lagrangian),
                        ("neighbourhood", neighbourhood), ("recentre", recentre)):
        if value not in ("auto", True, False):
            raise ProblemError(f"{name} must be 'auto', True or False, got {value!r}")
    shift = hessian_exponent(problem.H, H_EXPONENT_RANGE)
    if shift:
        return _solve_rescaled(problem, shift, time_limit=time_limit, node_limit=node_limit,
                               ordering=ordering, initial_codes=initial_codes,
                               margin_rtol=margin_rtol, slice_nodes=slice_nodes,
                               log_every=log_every, sdp_reserve=sdp_reserve,
                               lagrangian=lagrangian, neighbourhood=neighbourhood,
                               reduction=reduction, recentre=recentre)
    if ordering == "auto":
        ordering = "box" if problem.bits <= 5 else "vblast"
    s, lo, hi = problem.scale, problem.zmin, problem.zmax
    c = problem.w0 / s
    codes = rtn(c, lo, hi)
    H = problem.H
    n = problem.n
    idx = np.arange(n) if np.all(np.diagonal(H) > 0.0) else np.flatnonzero(live_inputs(H))
    info: dict[str, Any] = {"ordering": ordering, "dead_inputs": int(n - idx.size)}
    if idx.size == 0:
        w = problem.weights(codes)
        return SolveResult(Status.OPTIMAL, w, problem.error(w), 0.0, problem.norm, "exact",
                           0, time.perf_counter() - t0, codes, None,
                           "H is zero: every solution is optimal", info)
    use_dual = lagrangian is True or (lagrangian == "auto"
                                      and LAGRANGIAN_MIN_N <= idx.size <= LAGRANGIAN_MAX_N)
    use_sdp = (time_limit is not None and float(time_limit) >= 5.0 and n >= 64
               and 0.0 < sdp_reserve < 1.0 and importlib.util.find_spec("cvxpy") is not None)
    deadline = _search_deadline(t0, time_limit, use_sdp, sdp_reserve, use_dual, idx.size)

    Hl = H if idx.size == n else H[np.ix_(idx, idx)]
    cl = c[idx]
    tree = _start_tree(problem, Hl, cl, lo, hi, ordering, initial_codes, idx, info)
    limit_hit, helpers = _run_search(tree, Hl, cl, t0, deadline, time_limit, node_limit,
                                     slice_nodes, log_every, neighbourhood,
                                     (reduction, recentre), info)
    b = _search_bound(tree, helpers, limit_hit, info)

    codes[idx] = tree.codes()
    w = s * codes.astype(np.float64)  # codes lie in the box by construction
    obj = problem.error(w)
    lower = float(min(certified_bound(b, s), obj))
    if limit_hit is not None and use_dual:
        lower = _dual_bound(Hl, cl, lo, hi, s, t0, time_limit, lower, obj, info)
    if limit_hit is Status.TIME_LIMIT and use_sdp:
        codes, w, obj, lower = _sdp_bound(problem, t0, time_limit, codes, w, obj, lower, info)
    status, msg = _status(obj, lower, problem.norm, limit_hit, tree.nodes, margin_rtol, info)
    seconds = time.perf_counter() - t0
    log.debug("exact n=%d: %s, %d nodes, %.3f s", n, status.value, tree.nodes, seconds)
    if not math.isfinite(obj):  # pragma: no cover - validated inputs make this impossible
        raise FloatingPointError("non-finite objective")
    return SolveResult(status, w, obj, lower, problem.norm, "exact", tree.nodes, seconds, codes,
                       None, msg, info)


# --- the named steps of the driver --------------------------------------------------------------


def _solve_rescaled(problem: QuantProblem, shift: int, **options: Any) -> SolveResult:
    """Solve with ``H·2^−shift`` (only the exponents change) and report in the user's units.

    The codes are the same for both problems (the objective only scales); ``objective`` is
    recomputed on the user's ``H`` and every bound multiplied back by ``2^shift`` (exact in
    binary floating point). Refused with a :class:`ProblemError` when the error or the norm
    does not fit in float64 in the user's units.
    """
    Hn = np.ldexp(problem.H, -shift)
    r = solve_exact(QuantProblem.unchecked(Hn, problem.w0, problem.scale, problem.bits),
                    **options)
    w = problem.weights(r.codes)
    obj = problem.error(w)
    norm = problem.norm
    if not (math.isfinite(obj) and math.isfinite(norm)):
        raise ProblemError(
            f"H is too large (largest diagonal entry about 2^{shift}): the quantization error "
            f"does not fit in float64; divide H by a power of two")

    def back(v):
        return None if v is None else float(np.ldexp(v, shift))

    lower = None if r.lower_bound is None else min(back(r.lower_bound), obj)
    info = dict(r.info)
    for key in ("slack", "residual_norm", "search_bound", "lagrangian_bound",
                "plain_lagrangian_bound", "sdp_bound"):
        if isinstance(info.get(key), float):
            info[key] = back(info[key])
    if "incumbent_values" in info:
        info["incumbent_values"] = {k: back(v) for k, v in info["incumbent_values"].items()}
    info["h_exponent"] = shift
    return SolveResult(r.status, w, obj, lower, norm, "exact", r.nodes, r.seconds, r.codes,
                       None, r.message, info)


def _search_deadline(t0, time_limit, use_sdp, sdp_reserve, use_dual, n_live):
    """When the search must stop: the time limit less the reserves of the bounds computed
    after it (the SDP's share, the Lagrangian bound's); ``None`` without a time limit."""
    if time_limit is None:
        return None
    limit = max(0.0, float(time_limit))
    deadline = t0 + limit * ((1.0 - sdp_reserve) if use_sdp else 1.0)
    if use_dual:
        share = DUAL_RESERVE_LONG if n_live >= LNS_LONG_N else DUAL_RESERVE
        deadline -= min(DUAL_RESERVE_MAX, share * limit)
    return deadline


class _Tree:
    """The Schnorr–Euchner search over the live inputs, in the search order ``order``.

    ``H[π, π] = RᵀR``, ``cp = c[π]``; the incumbent ``zbest`` (search order) with
    ``ubest = [its distance, its leaf's certified lower bound]``; the kernel's resumable state;
    ``slack`` the certifier's global margin. :meth:`offer` installs a better point found
    elsewhere (neighbourhood search, the reduced search).
    """

    def __init__(self, R, cp, order, lo, hi, certifier, zbest):
        self.R, self.cp, self.order, self.lo, self.hi = R, cp, order, lo, hi
        self.certifier, self.cert = certifier, certifier.cert
        self.zbest = zbest
        u0 = r_distance(R, cp, zbest)
        self.slack, self.used_ellipsoid = certifier.global_margin(u0)
        self.ubest = np.array([u0, u0 - leaf_margin(R, cp, zbest, u0, self.cert)])
        self.tail = np.zeros(zbest.size + 1)
        self.st = new_state(zbest.size)
        self.nodes = 0

    def step(self, budget: int) -> bool:
        """Run up to ``budget`` nodes; True when the tree is exhausted."""
        st = self.st
        self.nodes += se_search(self.R, self.cp, self.lo, self.hi, self.tail, self.slack,
                                self.cert, self.zbest, self.ubest, st["z"], st["P"], st["ctr"],
                                st["up"], st["dn"], st["S"], st["last"], st["st"], budget)
        return bool(st["st"][1] == 1)

    def open_bound(self) -> float:
        """Least bound over the open nodes (the incumbent's when none is open)."""
        st = self.st
        return float(open_bound(self.R, self.lo, self.hi, self.tail, self.ubest, st["z"],
                                st["P"], st["ctr"], st["up"], st["dn"], st["st"]))

    def codes(self) -> np.ndarray:
        """The incumbent in input order (of the live inputs)."""
        return _unpermute(self.zbest, self.order)

    def offer(self, z: np.ndarray) -> bool:
        """Take ``z`` (input order) as the incumbent if it is better; True if taken."""
        zp = np.ascontiguousarray(z[self.order])
        u = r_distance(self.R, self.cp, zp)
        if not u < self.ubest[0]:
            return False
        self.zbest[:] = zp
        self.ubest[0] = u
        self.ubest[1] = min(self.ubest[1], u - leaf_margin(self.R, self.cp, zp, u, self.cert))
        return True


def _start_tree(problem, Hl, cl, lo, hi, ordering, initial_codes, idx, info) -> _Tree:
    """Order and factor the live inputs, find the starting incumbent, set up the search.

    Incumbents: round-to-nearest, sequential rounding (up to 512 live inputs), the caller's
    ``initial_codes``, box-clipped Babai in the search order from the best of those, each
    polished by integer 1-opt; the best starts the search.
    """
    cands: dict[str, np.ndarray] = {"rtn": rtn(cl, lo, hi)}
    if idx.size <= 512:
        cands["sequential"] = sequential_rounding(Hl, cl, lo, hi)
    if initial_codes is not None:
        z0 = np.asarray(initial_codes, dtype=np.int64)
        problem.weights(z0)  # checks shape and grid
        cands["given"] = z0[idx]
    order = order_variables(Hl, cl, lo, hi, ordering)
    Hp = Hl[np.ix_(order, order)]
    R, rank = ordered_cholesky(Hp, None)
    info["rank"] = int(rank)
    cp = cl[order]
    best_name = min(cands, key=lambda k: objective(Hl, cl, cands[k]))
    cands["babai"] = babai(R, cp, lo, hi, cands[best_name][order])[np.argsort(order)]
    for name in list(cands):
        cands[name + "+1opt"] = one_opt(Hl, cl, cands[name], lo, hi)
    values = {k: objective(Hl, cl, v) for k, v in cands.items()}
    best_name = min(values, key=values.get)
    info["incumbent"] = best_name
    info["incumbent_values"] = {k: float(v) for k, v in values.items()}
    tree = _Tree(R, cp, order, lo, hi, Certifier(Hp, R, cp, lo, hi),
                 cands[best_name][order].astype(np.int64).copy())
    s = problem.scale
    info["slack"] = s * s * tree.slack
    info["ellipsoid"] = tree.used_ellipsoid
    info["residual_norm"] = tree.certifier.residual_norm
    return tree


def _run_search(tree, Hl, cl, t0, deadline, time_limit, node_limit, slice_nodes, log_every,
                neighbourhood, helper_modes, info):
    """The search in node-budgeted slices (about 20 ms each) with a clock check between them;
    the helper searches (the LLL-reduced one, the re-centred one; ``helper_modes`` their
    ``reduction``, ``recentre`` options) interleaved slice by slice once started, sharing
    incumbents; one neighbourhood-search phase on large time-limited problems. Returns
    ``(limit_hit, helpers)``: the limit that stopped the search (None: a tree was exhausted)
    and the helper searches started (by name)."""
    n = Hl.shape[0]
    lns_at = None
    if time_limit is not None and (neighbourhood is True or (
            neighbourhood == "auto" and n >= LAGRANGIAN_MIN_N)):
        lns_at = t0 + min(0.2 * float(time_limit), LNS_START)
    # with a time limit the first slice is short (the set-up may have used the time already);
    # the budget then adapts to ~20 ms per slice
    budget = max(1000, int(slice_nodes)) if deadline is None else 1000
    next_log = t0 + log_every
    helpers: dict[str, Any] = {}
    starts = {}
    if info["rank"] == n and n >= 2:
        for name, mode in zip(("reduced", "shifted"), helper_modes, strict=True):
            if mode is False or (name == "shifted" and mode == "auto" and n > RECENTRE_MAX_N):
                continue
            starts[name] = 0 if mode is True else REDUCE_AFTER_NODES
            budget = min(budget, max(1000, starts[name]))
    while True:
        for name in [k for k, at in starts.items() if tree.nodes >= at]:
            del starts[name]
            helper = _start_helper(name, tree, Hl, cl, deadline)
            info["reduction" if name == "reduced" else "recentred"] = helper is not None
            if helper is not None:
                helpers[name] = helper
        for helper in helpers.values():  # one slice of each helper, then one of the original
            if node_limit is not None:
                budget = max(1, min(budget, int(node_limit) - tree.nodes))
            tree.nodes += helper.step(budget)
            if not tree.offer(helper.codes):
                helper.offer(tree.codes())
            if helper.done:
                return None, helpers
        if node_limit is not None:
            budget = max(1, min(budget, int(node_limit) - tree.nodes))
        ts = time.perf_counter()
        done = tree.step(budget)
        now = time.perf_counter()
        if done:
            return None, helpers
        if node_limit is not None and tree.nodes >= node_limit:
            return Status.NODE_LIMIT, helpers
        if deadline is not None and now >= deadline:
            return Status.TIME_LIMIT, helpers
        if deadline is None:  # no clock to watch: slices by node counts alone, so a
            # node-limited solve gives the same answer on any machine, however loaded
            budget = min(2 * budget, max(1000, int(slice_nodes)))
        else:  # aim at ~20 ms per slice, never past the deadline by much
            dt = max(now - ts, 1e-6)
            target = min(0.02, max(1e-3, (deadline - now) / 2))
            budget = int(min(max(1000, budget * target / dt), 50_000_000))
        if lns_at is not None and now >= lns_at:
            lns_at = None
            if n >= LNS_LONG_N:  # the search will not finish: improve the incumbent
                span = deadline - now - 0.05 * float(time_limit)
            else:
                span = min(0.3 * float(time_limit), LNS_SPAN, deadline - now - 0.05)
            if span > 0.05 and _lns_phase(tree, Hl, cl, span, info, restarts=n >= LNS_LONG_N):
                info["incumbent"] = "lns"
        if now >= next_log:
            log.info("exact n=%d: %d nodes, %.1f s, incumbent %.6g, bound %.6g", n, tree.nodes,
                     now - t0, tree.ubest[0], tree.open_bound())
            next_log = now + log_every


def _start_helper(name, tree, Hl, cl, deadline):
    """The reduced (``"reduced"``) or re-centred (``"shifted"``) search from the tree's
    incumbent, or None when it cannot help; the re-centred one's set-up stops iterating at
    ``deadline``."""
    if name == "reduced":
        return ReducedSearch.build(Hl, cl, tree.lo, tree.hi, tree.codes())
    return ShiftedSearch.build(Hl, cl, tree.R, tree.order, tree.lo, tree.hi, tree.codes(),
                               deadline)


def _search_bound(tree, helpers, limit_hit, info) -> float:
    """The searches' lower bound on ``(z − c)ᵀH(z − c)`` before the floating-point margin:
    the incumbent leaf's certified bound when the tree was exhausted, a helper's bound when it
    was, else the least bound over the open nodes (less the slack), or a helper's if larger."""
    b = float(tree.ubest[1])
    for name, helper in helpers.items():
        info[f"{name}_nodes"] = helper.nodes
    for name, helper in helpers.items():
        if helper.done:
            info["proved_by"] = f"{name} search"
            return helper.bound()  # it proved its incumbent (now the tree's) optimal
    if limit_hit is not None:
        b = min(b, tree.open_bound() - tree.slack)
        for helper in helpers.values():
            b = max(b, helper.bound())
    return b


def _dual_bound(Hl, cl, lo, hi, s, t0, time_limit, lower, obj, info) -> float:
    """The larger of ``lower`` and the certified Lagrangian bound: plain on a node limit,
    strengthened by dual-lattice cuts for the rest of the time on a time limit."""
    if time_limit is None:  # a node limit: the plain bound, no time to spend on cuts
        from .lagrangian import certified_root_bound

        db, dr = certified_root_bound(Hl, cl, lo, hi)
        info["lagrangian_seconds"] = dr.seconds
    else:
        from .lattice_cuts import cut_bound

        rem = max(0.01, t0 + float(time_limit) - time.perf_counter())
        db, dr, cuts = cut_bound(Hl, cl, lo, hi, time_limit=rem)
        info["lagrangian_seconds"] = cuts["seconds"]
        info["plain_lagrangian_bound"] = certified_bound(cuts["plain_bound"], s)
        info["cut_rounds"], info["cut_directions"] = cuts["rounds"], cuts["directions"]
    info["search_bound"] = lower
    info["lagrangian_bound"] = certified_bound(db, s)
    return float(min(max(lower, certified_bound(db, s)), obj))


def _sdp_bound(problem, t0, time_limit, codes, w, obj, lower, info):
    """The certified SDP bound (and its rounding, if better) in the time kept back for it."""
    from .sdp import solve_sdp

    rem = max(0.5, t0 + float(time_limit) - time.perf_counter())
    rs = solve_sdp(problem, time_limit=rem, samples=50)
    info["sdp_bound"] = rs.lower_bound
    info["search_bound"] = lower
    if rs.objective < obj:
        codes, w, obj = rs.codes.copy(), rs.weights, rs.objective
        info["incumbent"] = "sdp rounding"
    return codes, w, obj, float(min(max(lower, rs.lower_bound), obj))


def _status(obj, lower, norm, limit_hit, nodes, margin_rtol, info) -> tuple[Status, str]:
    """``OPTIMAL`` exactly when the reported gap (:func:`~solvers.result.relative_gap`, against
    the norm where the error is near zero) is within ``max(margin_rtol, OPTIMALITY_RTOL)``;
    else the limit that stopped the search, or ``GAP_LIMIT`` after a complete search."""
    gap = relative_gap(obj, lower, norm)
    tol = max(margin_rtol, OPTIMALITY_RTOL)
    if gap is not None and gap <= tol:
        if limit_hit is None:
            return Status.OPTIMAL, ""
        return Status.OPTIMAL, (f"{limit_hit.value} after {nodes} nodes, but the bounds "
                                f"already prove the gap {gap:.3g} <= {tol:g}")
    if limit_hit is not None:
        msg = f"{limit_hit.value} after {nodes} nodes; bound from the open nodes"
        if "lagrangian_bound" in info:
            msg += " and the Lagrangian bound"
        return limit_hit, msg
    return Status.GAP_LIMIT, (
        f"search complete; the floating-point margin leaves a gap {gap:.3g} > {tol:g} "
        f"(the codes are optimal up to that margin)")


def _lns_phase(tree, Hl, cl, span, info, restarts=False) -> bool:
    """Large-neighbourhood search from the incumbent for ``span`` s (with restarts: iterated,
    patience ``n``); a better point found becomes the search's incumbent (True)."""
    from .neighbourhood import improve

    znew, stats = improve(Hl, cl, tree.lo, tree.hi, tree.codes(), time_limit=span,
                          restarts=restarts, patience=tree.zbest.size if restarts else None)
    info["lns"] = {k: (float(v) if isinstance(v, float) else v) for k, v in stats.items()}
    return tree.offer(znew)


def _unpermute(zp: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Codes in input order from codes in search order."""
    z = np.empty_like(zp)
    z[order] = zp
    return z
