"""Compiled inner loops of the pruning branch-and-bound (numba, ``cache=True``).

Everything here is a pure function on float64 / int arrays; the Python side (``search.py``,
``incumbents.py``, ``refit.py``) owns the bookkeeping. Notation (see ``docs/pruning.md``)::

    K  kept-or-undecided set of a node,  G = (H_KK)^-1,  w = refit on K (zeros elsewhere)
    e  = (w - w0)ᵀ H (w - w0)           error of pruning exactly the decided-pruned set
    removing j from K (OBS, exact):      e += w_j² / G_jj
                                         w -= G[:, j] · w_j / G_jj
                                         G -= G[:, j] G[j, :] / G_jj

Variables carry a state: 0 undecided, 1 kept (decided), 2 pruned (decided). Constraints are
written uniformly as *groups*: group ``g`` (inputs ``g·M … g·M + M − 1``) keeps at most ``N``;
unstructured pruning is the single group ``M = n``, ``N = k``.

Why one file of ~1600 lines: numba's on-disk cache (``cache=True``) keys a compiled function on
its own source file only. A cached function that calls a compiled function of *another* module
is not recompiled when that other file changes: it keeps running the stale inlined code. So
every compiled function the search calls lives here, and no kernel here imports a compiled
function from elsewhere.

The depth-first search's state travels in three records (named tuples, which numba passes as
plain structs): :class:`SearchSpec` (the problem and the constants of a search),
:class:`NodeStack` (the stack of open nodes, one slot per depth) and :class:`Best` (the
incumbent, the bounds of closed subtrees and the counters).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

UNDECIDED = 0
KEPT = 1
PRUNED = 2


# --------------------------------------------------------------------------------------------
# Dense linear algebra on index subsets
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def chol_inverse(H, keep, pivot_rtol, G):
    """``G[K, K] = (H_KK)^-1`` for ``K = {i : keep[i]}``; zeros elsewhere.

    Cholesky with a relative pivot test: returns False (and leaves ``G`` undefined) when some
    pivot is below ``pivot_rtol·H_ii``, i.e. ``H_KK`` is singular to working precision.
    """
    idx = kept_index(keep)
    m = idx.shape[0]
    G[:, :] = 0.0
    if m == 0:
        return True
    L = np.zeros((m, m))
    for a in range(m):
        for b in range(a + 1):
            s = H[idx[a], idx[b]]
            for c in range(b):
                s -= L[a, c] * L[b, c]
            if a == b:
                if s <= pivot_rtol * H[idx[a], idx[a]] or s <= 0.0:
                    return False
                L[a, a] = np.sqrt(s)
            else:
                L[a, b] = s / L[b, b]
    # inverse of L (lower triangular)
    Li = np.zeros((m, m))
    for a in range(m):
        Li[a, a] = 1.0 / L[a, a]
        for b in range(a):
            s = 0.0
            for c in range(b, a):
                s -= L[a, c] * Li[c, b]
            Li[a, b] = s / L[a, a]
    for a in range(m):
        for b in range(a + 1):
            s = 0.0
            for c in range(a, m):
                s += Li[c, a] * Li[c, b]
            G[idx[a], idx[b]] = s
            G[idx[b], idx[a]] = s
    return True


@njit(cache=True)
def refit_from_inverse(H, w0, keep, G, w):
    """Unboxed refit on ``K`` from ``G = (H_KK)^-1``: ``w_K = w0_K + G_KK H_KR w0_R``; returns e."""
    n = H.shape[0]
    t = np.zeros(n)
    for i in range(n):
        if keep[i]:
            s = 0.0
            for j in range(n):
                if not keep[j]:
                    s += H[i, j] * w0[j]
            t[i] = s
    for i in range(n):
        if keep[i]:
            s = 0.0
            for j in range(n):
                if keep[j]:
                    s += G[i, j] * t[j]
            w[i] = w0[i] + s
        else:
            w[i] = 0.0
    return quad_error(H, w0, w)


@njit(cache=True)
def kept_index(keep):
    """Indices ``i`` with ``keep[i]``, in increasing order."""
    m = 0
    for i in range(keep.shape[0]):
        if keep[i]:
            m += 1
    idx = np.empty(m, dtype=np.int64)
    a = 0
    for i in range(keep.shape[0]):
        if keep[i]:
            idx[a] = i
            a += 1
    return idx


@njit(cache=True)
def lstsq_refit(H, w0, keep):
    """Minimum-norm least-squares refit on ``K`` (singular ``H_KK``): ``w_K = w0_K + δ``,
    ``δ = pinv(H_KK) H_KR w0_R``."""
    n = H.shape[0]
    idx = kept_index(keep)
    m = idx.shape[0]
    A = np.empty((m, m))
    r = np.zeros(m)
    for p in range(m):
        for q in range(m):
            A[p, q] = H[idx[p], idx[q]]
        for j in range(n):
            if not keep[j]:
                r[p] += H[idx[p], j] * w0[j]
    w = np.zeros(n)
    if m == 0:
        return w
    delta = np.linalg.lstsq(A, r, 1e-11)[0]
    for p in range(m):
        w[idx[p]] = w0[idx[p]] + delta[p]
    return w


@njit(cache=True)
def quad_error(H, w0, w):
    n = H.shape[0]
    d = w - w0
    s = 0.0
    for i in range(n):
        r = 0.0
        for j in range(n):
            r += H[i, j] * d[j]
        s += d[i] * r
    return max(s, 0.0)


@njit(cache=True)
def schur_error(H, w0, keep, pivot_rtol):
    """``e = w0_Rᵀ (H / H_KK) w0_R`` by semidefinite elimination of ``K`` (rank-deficient safe).

    A kept pivot below ``pivot_rtol·H_ii`` is a column dependent on those already eliminated; for
    a PSD matrix its whole row of the Schur complement is then zero to working precision, so it
    is skipped. This is least squares on the kept columns (pseudo-inverse semantics), not a
    damped solve.
    """
    n = H.shape[0]
    S = H.copy()
    for j in range(n):
        if not keep[j]:
            continue
        p = S[j, j]
        if p <= pivot_rtol * H[j, j] or p <= 0.0:
            continue
        for a in range(n):
            if a == j or S[a, j] == 0.0:
                continue
            f = S[a, j] / p
            for b in range(n):
                S[a, b] -= f * S[j, b]
        for b in range(n):
            S[j, b] = 0.0
            S[b, j] = 0.0
    s = 0.0
    for a in range(n):
        if keep[a]:
            continue
        for b in range(n):
            if not keep[b]:
                s += w0[a] * S[a, b] * w0[b]
    return max(s, 0.0)


@njit(cache=True)
def obs_remove(G, w, j):
    """Remove ``j`` from the kept set in place (OBS exact update); returns the error increase."""
    gjj = G[j, j]
    inc = w[j] * w[j] / gjj
    eliminate(G, w, j, gjj)
    clear(G, w, j)
    return inc


@njit(cache=True)
def eliminate(M, v, j, piv):
    """Rank-one elimination of index ``j`` with pivot ``piv``, in place:
    ``v −= M[:, j]·v_j/piv`` and ``M −= M[:, j] M[j, :]/piv`` (``M`` symmetric)."""
    n = M.shape[0]
    col = M[:, j].copy()
    f = v[j] / piv
    for i in range(n):
        v[i] -= col[i] * f
    for a in range(n):
        ca = col[a] / piv
        if ca == 0.0:
            continue
        for b in range(n):
            M[a, b] -= ca * col[b]


@njit(cache=True)
def clear(M, v, j):
    """Zero row and column ``j`` of ``M`` and entry ``j`` of ``v``."""
    for i in range(M.shape[0]):
        M[i, j] = 0.0
        M[j, i] = 0.0
    v[j] = 0.0


# --------------------------------------------------------------------------------------------
# Box-constrained refit: min (x - c)ᵀ Q (x - c) over -B <= x <= B (primal active set)
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def box_qp(Q, c, B, max_iter, singular=False):
    """Exact primal active-set solve of ``min (x − c)ᵀ Q (x − c)`` s.t. ``|x_i| <= B``, Q ≻ 0.

    Returns ``(x, value, lower)`` where ``lower`` is the Frank–Wolfe (linearisation) bound
    ``value + min_{y in box} ∇f(x)ᵀ(y − x)``, a valid lower bound on the box optimum for any
    feasible ``x`` by convexity, equal to ``value`` at the exact optimum. With ``singular``
    (Q only PSD) the free-set systems are solved in the least-squares sense (minimum norm), which
    is consistent because the right-hand side lies in the range of ``Q_FF`` for ``Q = XᵀX``.
    """
    m = c.shape[0]
    x = np.minimum(np.maximum(c, -B), B)
    # working set: 0 free, -1 at lower, +1 at upper
    ws = np.zeros(m, dtype=np.int64)
    for i in range(m):
        if x[i] <= -B:
            ws[i] = -1
        elif x[i] >= B:
            ws[i] = 1
    for _ in range(max_iter):
        nf = 0
        for i in range(m):
            if ws[i] == 0:
                nf += 1
        free = np.empty(nf, dtype=np.int64)
        a = 0
        for i in range(m):
            if ws[i] == 0:
                free[a] = i
                a += 1
        target = x.copy()
        if nf > 0:
            # Q_FF (y_F - c_F) = -Q_FW (x_W - c_W)
            A = np.empty((nf, nf))
            r = np.zeros(nf)
            for p in range(nf):
                for q in range(nf):
                    A[p, q] = Q[free[p], free[q]]
                s = 0.0
                for i in range(m):
                    if ws[i] != 0:
                        s += Q[free[p], i] * (x[i] - c[i])
                r[p] = -s
            if singular:
                y = np.linalg.lstsq(A, r)[0]
            else:
                y = np.linalg.solve(A, r)
            for p in range(nf):
                target[free[p]] = c[free[p]] + y[p]
        # ratio test towards target
        alpha = 1.0
        block = -1
        for p in range(nf):
            i = free[p]
            d = target[i] - x[i]
            if d > 0.0 and target[i] > B:
                t = (B - x[i]) / d
                if t < alpha:
                    alpha = t
                    block = i
            elif d < 0.0 and target[i] < -B:
                t = (-B - x[i]) / d
                if t < alpha:
                    alpha = t
                    block = i
        for p in range(nf):
            i = free[p]
            x[i] = x[i] + alpha * (target[i] - x[i])
        if block >= 0:
            if target[block] > B:
                x[block] = B
                ws[block] = 1
            else:
                x[block] = -B
                ws[block] = -1
            continue
        # stationary on the free set: check multipliers of the working set
        g = 2.0 * (Q @ (x - c))
        worst = 0.0
        wi = -1
        for i in range(m):
            if ws[i] == -1 and g[i] < worst:  # at lower bound, gradient must be >= 0
                worst = g[i]
                wi = i
            elif ws[i] == 1 and -g[i] < worst:  # at upper bound, gradient must be <= 0
                worst = -g[i]
                wi = i
        if wi < 0:
            break
        ws[wi] = 0
    d = x - c
    val = max(float(d @ (Q @ d)), 0.0)
    g = 2.0 * (Q @ d)
    fw = 0.0
    for i in range(m):
        lo = g[i] * (-B - x[i])
        hi = g[i] * (B - x[i])
        fw += min(lo, hi)
    return x, val, min(val, val + fw)


@njit(cache=True)
def boxed_leaf(H, keep, G, w, e, B, singular=False):
    """Boxed value of a leaf: the unboxed refit ``w`` if it fits the box, else a box QP.

    Uses ``(x − w0)ᵀH(x − w0) = e + (x − w)_Kᵀ H_KK (x − w)_K`` for ``x`` supported on ``K``.
    Returns ``(value, lower, x)``.
    """
    n = H.shape[0]
    fits = True
    for i in range(n):
        if keep[i] and abs(w[i]) > B:
            fits = False
            break
    if fits:
        return e, e, w.copy()
    idx = kept_index(keep)
    m = idx.shape[0]
    Q = np.empty((m, m))
    c = np.empty(m)
    for p in range(m):
        c[p] = w[idx[p]]
        for q in range(m):
            Q[p, q] = H[idx[p], idx[q]]
    xs, val, low = box_qp(Q, c, B, 20 * m + 50, singular)
    x = np.zeros(n)
    for p in range(m):
        x[idx[p]] = xs[p]
    return e + val, e + low, x


# --------------------------------------------------------------------------------------------
# Node bound
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def _sort_prefix(vals, m):
    """Sort ``vals[:m]`` ascending in place (insertion sort: ``m <= n`` is small, and no
    array is allocated, unlike ``np.sort``; the sorted values, hence every sum taken over
    them in order, are the same)."""
    for i in range(1, m):
        x = vals[i]
        j = i - 1
        while j >= 0 and vals[j] > x:
            vals[j + 1] = vals[j]
            j -= 1
        vals[j + 1] = x


@njit(cache=True)
def _sum_smallest(vals, cnt):
    """Sum of the ``cnt`` smallest values and the ``cnt``-th smallest (``vals`` is sorted in
    place)."""
    if cnt <= 0:
        return 0.0, 0.0
    _sort_prefix(vals, vals.shape[0])
    tot = 0.0
    for i in range(cnt):
        tot += vals[i]
    return tot, vals[cnt - 1]


@njit(cache=True)
def node_bound(G, w, e, state, need, M, dvec, out_sal, out_keep):
    """Lower bound on the node's subtree: ``e + max(three valid bounds on the increment)``.

    For the pruned-more set ``S ⊆ U`` the exact increment is ``Δ(S) = w_Sᵀ (G_SS)^-1 w_S``, and
    ``S`` must hold at least ``need[g]`` undecided inputs of each group ``g``.

    1. monotonicity: ``Δ(S) >= max_{j in S} Δ_j`` with ``Δ_j = w_j²/G_jj`` (OBS saliency), so
       ``Δ(S) >= max_g (need[g]-th smallest Δ_j in g)``;
    2. diagonal split ``H ⪰ D``: ``(G_SS)^-1`` is a Schur complement of ``H_KK ⪰ D_KK``, hence
       ``⪰ D_SS`` and ``Δ(S) >= Σ_{j in S} d_j w_j²`` → sum of the smallest per group;
    3. Gershgorin on ``G``: ``G_SS ⪯ diag(ρ_j)``, ``ρ_j = Σ_{i in U} |G_ij|``, so
       ``Δ(S) >= Σ_{j in S} w_j² / ρ_j``.

    ``out_sal[j]`` receives the bound of the subtrees that prune ``j`` (the same three bounds
    with ``j`` forced into ``S``), used for screening and branching; ``out_keep`` is cleared.
    Returns the bound.
    """
    for i in range(G.shape[0]):
        out_keep[i] = False
    return _node_bound(G, w, e, state, need, M, dvec, out_sal)


@njit(cache=True)
def _node_bound(G, w, e, state, need, M, dvec, out_sal):
    """:func:`node_bound` without its ``out_keep`` (which it only clears): one scratch
    allocation per call, the per-group sorts in place."""
    n = G.shape[0]
    ngroups = n // M
    inc_sal = 0.0
    inc_d = 0.0
    inc_g = 0.0
    work = np.zeros((5, n))
    a_d = work[0]
    a_g = work[1]
    tg3 = np.zeros((3, ngroups))
    t_sal = tg3[0]
    t_d = tg3[1]
    t_g = tg3[2]
    und = np.empty(n, dtype=np.int64)  # the undecided inputs, in order (Gershgorin sums)
    nu = 0
    for i in range(n):
        out_sal[i] = 0.0
        if state[i] == UNDECIDED:
            und[nu] = i
            nu += 1
    for g in range(ngroups):
        if need[g] <= 0:
            continue
        cnt = 0
        for j in range(g * M, g * M + M):
            if state[j] == UNDECIDED:
                cnt += 1
        sal = work[2, :cnt]
        ad = work[3, :cnt]
        ag = work[4, :cnt]
        c = 0
        for j in range(g * M, g * M + M):
            if state[j] != UNDECIDED:
                continue
            wj2 = w[j] * w[j]
            gjj = G[j, j]
            s = wj2 / gjj if gjj > 0.0 else 0.0
            rho = 0.0
            for a in range(nu):
                rho += abs(G[und[a], j])
            sal[c] = s
            ad[c] = dvec[j] * wj2
            ag[c] = wj2 / rho if rho > 0.0 else 0.0
            out_sal[j] = s
            a_d[j] = ad[c]
            a_g[j] = ag[c]
            c += 1
        k = need[g]
        _, ts = _sum_smallest(sal, k)
        sd, td = _sum_smallest(ad, k)
        sg, tg = _sum_smallest(ag, k)
        t_sal[g] = ts
        t_d[g] = td
        t_g[g] = tg
        if ts > inc_sal:
            inc_sal = ts
        inc_d += sd
        inc_g += sg
    bound = e + max(inc_sal, max(inc_d, inc_g))
    # per-variable bound of the subtrees that prune j (used for screening)
    for g in range(ngroups):
        if need[g] <= 0:
            continue
        for j in range(g * M, g * M + M):
            if state[j] != UNDECIDED:
                continue
            bs = max(out_sal[j], inc_sal)
            bd = inc_d
            if a_d[j] > t_d[g]:
                bd = inc_d - t_d[g] + a_d[j]
            bg = inc_g
            if a_g[j] > t_g[g]:
                bg = inc_g - t_g[g] + a_g[j]
            out_sal[j] = e + max(bs, max(bd, bg))
    return bound


# --------------------------------------------------------------------------------------------
# Forward (kept-set) side: Schur complement of the decided-kept block
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def fwd_keep(S, r, j, hjj, pivot_rtol):
    """Add ``j`` to the decided-kept set ``F``: one step of (semidefinite) Gaussian elimination.

    ``S = H / H_FF`` (Schur complement, rows/columns of ``F`` zero), ``r = −H d_F`` with
    ``d_F = w_F − w0`` for the refit ``w_F`` on ``F``. Returns the error decrease
    ``r_j² / S_jj`` (0 for a pivot below ``pivot_rtol·H_jj``: ``j`` depends on ``F``).
    """
    piv = S[j, j]
    gain = 0.0
    if piv > pivot_rtol * hjj and piv > 0.0:
        gain = r[j] * r[j] / piv
        eliminate(S, r, j, piv)
    clear(S, r, j)
    return gain


@njit(cache=True)
def _top_sum(vals, cnt):
    """Sum of the ``cnt`` largest values and the ``cnt``-th largest (−inf when all are taken;
    ``vals`` is sorted in place when fewer are taken)."""
    m = vals.shape[0]
    if cnt >= m:
        tot = 0.0
        for i in range(m):
            tot += vals[i]
        return tot, -np.inf
    if cnt <= 0:
        return 0.0, np.inf
    _sort_prefix(vals, m)
    tot = 0.0
    for i in range(m - cnt, m):
        tot += vals[i]
    return tot, vals[m - cnt]


@njit(cache=True)
def fwd_bound(S, r, cF, st, mkeep, M, dvec, out_kb):
    """Lower bound from the kept side: ``cF − (upper bound on the gain of the keeps to come)``.

    Every solution of the subtree keeps ``F`` plus some ``T ⊆ U`` with at most ``mkeep[g]``
    from group ``g``; its error is ``cF − gain(T)``, ``gain(T) = r_Tᵀ (S_TT)^+ r_T``. For any
    diagonal ``Δ`` with ``S_UU ⪰ Δ ≻ 0``, ``(S_TT)^-1 ⪯ Δ_T^-1`` so ``gain(T) <= Σ_{j∈T}
    r_j²/Δ_j``. Two such diagonals: the split ``D`` (``S = H/H_FF ⪰ D``, as Schur complements
    preserve ``H ⪰ D``) and Gershgorin ``Δ_j = S_jj − Σ_{i∈U, i≠j} |S_ij|`` where positive.
    A zero ``Δ_j`` with ``r_j ≠ 0`` makes that bound infinite (useless), never invalid.
    ``out_kb[j]`` receives the bound of the subtrees that keep ``j`` (``inf``: cannot keep).
    """
    n = S.shape[0]
    ngroups = n // M
    tot_d = 0.0
    tot_g = 0.0
    work = np.zeros((4, n))  # one scratch allocation per call
    a_d = work[0]
    a_g = work[1]
    tg2 = np.zeros((2, ngroups))
    t_d = tg2[0]
    t_g = tg2[1]
    und = np.empty(n, dtype=np.int64)  # the undecided inputs, in order (Gershgorin sums)
    nu = 0
    for j in range(n):
        out_kb[j] = np.inf
        if st[j] == UNDECIDED:
            und[nu] = j
            nu += 1
    for g in range(ngroups):
        cnt = 0
        for j in range(g * M, g * M + M):
            if st[j] == UNDECIDED:
                cnt += 1
        if cnt == 0 or mkeep[g] <= 0:
            continue
        vd = work[2, :cnt]
        vg = work[3, :cnt]
        c = 0
        for j in range(g * M, g * M + M):
            if st[j] != UNDECIDED:
                continue
            r2 = r[j] * r[j]
            off = 0.0
            for a in range(nu):
                if und[a] != j:
                    off += abs(S[und[a], j])
            dg = S[j, j] - off
            if r2 == 0.0:
                vd[c] = 0.0
                vg[c] = 0.0
            else:
                vd[c] = r2 / dvec[j] if dvec[j] > 0.0 else np.inf
                vg[c] = r2 / dg if dg > 0.0 else np.inf
            a_d[j] = vd[c]
            a_g[j] = vg[c]
            c += 1
        sd, td = _top_sum(vd, mkeep[g])
        sg, tg = _top_sum(vg, mkeep[g])
        tot_d += sd
        tot_g += sg
        t_d[g] = td
        t_g[g] = tg
    gain = min(tot_d, tot_g)
    for g in range(ngroups):
        if mkeep[g] <= 0:
            continue
        for j in range(g * M, g * M + M):
            if st[j] != UNDECIDED:
                continue
            if a_d[j] >= t_d[g] or not np.isfinite(t_d[g]):
                gd = tot_d
            else:
                gd = tot_d - t_d[g] + a_d[j]
            if a_g[j] >= t_g[g] or not np.isfinite(t_g[g]):
                gg = tot_g
            else:
                gg = tot_g - t_g[g] + a_g[j]
            out_kb[j] = cF - min(gd, gg)
    return cF - gain


@njit(cache=True)
def group_counts(st, N, M, need, mkeep, ucount):
    """Per group: prunes still needed, keeps still allowed, undecided count. False if a group
    already keeps more than ``N``."""
    n = st.shape[0]
    ok = True
    for g in range(n // M):
        pr = 0
        kp = 0
        u = 0
        for j in range(g * M, g * M + M):
            if st[j] == PRUNED:
                pr += 1
            elif st[j] == KEPT:
                kp += 1
            else:
                u += 1
        need[g] = max(0, (M - N) - pr)
        mkeep[g] = N - kp
        ucount[g] = u
        if kp > N:
            ok = False
    return ok


@njit(cache=True)
def combined_bound(G, w, e, S, r, cF, st, hasinv, N, M, dvec, margin, abs_margin,
                   need, mkeep, ucount, sal, kb, warm, piters, target, brs, skip_small):
    """Safe lower bound of a node (both sides, margins applied); ``inf`` if infeasible.

    Fills ``sal[j]`` (safe bound of the subtrees pruning ``j``) and ``kb[j]`` (keeping ``j``).
    With ``piters > 0`` the perspective bound (:func:`perspective_bound`, up to
    ``piters`` alternating steps warm-started from ``warm``, stopping once the bound reaches
    the safe ``target``) is added to the max. ``brs`` (length ``2n + 1``) receives the
    branching scores: the safe per-variable bounds *without* the perspective bound (prune
    children, keep children) and the node bound they refine (the perspective bound's own
    per-variable values move one side only, so they make poor branching scores).
    ``skip_small``: no perspective bound when at most two prunes or two keeps are left (the
    unboxed search then completes the node exactly).
    """
    n = st.shape[0]
    if not group_counts(st, N, M, need, mkeep, ucount):
        return np.inf
    if hasinv:
        bb = _node_bound(G, w, e, st, need, M, dvec, sal)
    else:
        bb = e
        for j in range(n):
            sal[j] = e
    bf = fwd_bound(S, r, cF, st, mkeep, M, dvec, kb)
    for j in range(n):
        brs[j] = sal[j] * (1.0 - margin)
        brs[n + j] = (kb[j] - abs_margin) * (1.0 - margin)
    brs[2 * n] = max(max(bb, bf - abs_margin) * (1.0 - margin), 0.0)
    # the perspective bound is skipped where the cheap bounds already close the node, and,
    # with ``skip_small``, where the search completes the last two decisions exactly anyway
    small = False
    if skip_small:
        tn = 0
        tk = 0
        for g in range(need.shape[0]):
            tn += need[g]
            tk += min(mkeep[g], ucount[g])
        small = tn <= 2 or tk <= 2
    if hasinv and piters > 0 and not small and brs[2 * n] < target:
        tgt = target / (1.0 - margin) if np.isfinite(target) else np.inf
        pb = perspective_bound(S, w, e, st, mkeep, M, dvec, warm, piters, tgt, sal, kb)
        if pb > bb:
            bb = pb
    for j in range(n):
        sal[j] = sal[j] * (1.0 - margin)
        kb[j] = (kb[j] - abs_margin) * (1.0 - margin)
    b = max(bb, bf - abs_margin) * (1.0 - margin)
    return max(b, 0.0)


# --------------------------------------------------------------------------------------------
# The perspective node bound
# --------------------------------------------------------------------------------------------
#
# At a node (decided-kept ``F``, undecided ``U``, refit ``w`` on ``K = F ∪ U``, error ``e`` of the
# decided prunes) every leaf below has error ``e + (x − w)ᵀ H_KK (x − w)`` for some ``x`` supported
# on ``K`` that keeps at most ``m_g`` undecided inputs of each group ``g``. With the certified split
# ``H ⪰ D`` (:func:`solvers.prune.bounds.diagonal_split`) write ``H_KK = A + D_U`` (``D`` on ``U``
# only, ``A ⪰ 0``) and replace each separable term ``d_j (x_j − w_j)²`` by its convex hull over
# "``x_j = 0`` or ``z_j = 1``", the *perspective* ``d_j (x_j²/z_j − 2 x_j w_j + w_j²)``, with
# ``z_j ∈ [0, 1]`` and ``Σ_{j ∈ U∩g} z_j ≤ m_g``. This relaxation (Frangioni & Gentile 2006;
# Atamtürk & Gómez; Dong, Chen & Linderoth 2015; the node relaxation of L0BnB) is at least the
# separable bound of :func:`solvers.prune.kernels.node_bound` and usually several times larger.
#
# Certified by weak duality, for **any** ``y ∈ R^U``
# ------------------------------------------------------
# With ``C = (A/A_FF)_UU = S_UU − D_U`` (``S = H/H_FF``, the forward side of the node) and
# ``u = C y``, Fenchel's ``d x²/z ≥ 2 v x − z v²/d`` with ``v = D w − u`` and minimising over ``x``
# and ``z`` gives::
#
#     relaxation >= h(y) = e + Σ_U d_j w_j² − 2 uᵀw_U − yᵀu
#                          − Σ_g top_{m_g}( (d_j w_j − u_j)² / d_j )
#
# (``top_m``: sum of the ``m`` largest over ``U ∩ g``). ``y = 0`` is the separable bound; the best
# ``y`` is the relaxation's optimum. No inverse enters ``h``: rounding in ``y`` (from an
# approximate solve) costs nothing, and the evaluation error of ``h`` itself is bounded from
# absolute values and subtracted (:func:`perspective_value`).
#
# Choosing ``y`` (alternating minimisation of the primal, warm-started down the tree): given
# weights ``a_j = |x_j|·√d_j`` the best ``z`` water-fills ``z_j = min(1, a_j/τ_g)`` per group, and
# given ``z`` the best ``x = w + y`` solves ``(C + D Z⁻¹) y = D (I − Z⁻¹) w`` (a positive definite
# system: ``C + D Z⁻¹ ⪰ S_UU``). A node inherits its parent's ``a`` (``As`` in the search), and
# the better converged the parent, the better the children start.
#
# Each undecided ``j`` also gets the bounds of its two children from the same ``y`` (forcing
# ``z_j = 0`` or ``z_j = 1`` changes only the ``top`` term), used for screening (the product
# branching rule keeps the separable / kept-side scores, which move both children).
#
# These functions live in this module, not their own: numba's cache does not see edits in
# another module, so a compiled ``dfs_chunk`` would keep calling a stale copy.

EPS = 2.220446049250313e-16


@njit(cache=True)
def waterfill(a, cap, z):
    """``z_i = min(1, a_i/τ)`` with ``Σ z = cap`` (all ones when at most ``cap`` are positive)."""
    m = a.shape[0]
    pos = 0
    for i in range(m):
        if a[i] > 0.0:
            pos += 1
    if cap <= 0:
        for i in range(m):
            z[i] = 0.0
        return
    if pos <= cap:
        for i in range(m):
            z[i] = 1.0 if a[i] > 0.0 else 0.0
        return
    s = -np.sort(-a)  # descending
    tail = 0.0
    for i in range(m):
        tail += s[i]
    tau = tail / cap
    for r in range(cap):
        # the r largest are capped at 1, the rest share cap − r
        tau = tail / (cap - r)
        if s[r] <= tau:
            break
        tail -= s[r]
    for i in range(m):
        v = a[i] / tau if tau > 0.0 else 0.0
        z[i] = 1.0 if v > 1.0 else v


@njit(cache=True)
def perspective_value(S, d, w, e, idx, gid, mkeep, y, terms):
    """``(h(y) − float error bound, h(y))`` for ``y`` on ``idx`` (the undecided inputs).

    ``gid[p]`` is the group of ``idx[p]``; ``terms[p]`` receives ``(d_j w_j − u_j)²/d_j``.
    The subtracted error bounds the rounding of this evaluation from absolute values.
    """
    m = idx.shape[0]
    base = e
    absum = abs(e)
    uw = 0.0
    yu = 0.0
    gam = 2.0 * (m + 4) * EPS
    terr = 0.0
    for p in range(m):
        j = idx[p]
        u = 0.0
        au = 0.0
        for q in range(m):
            c = S[j, idx[q]]
            if q == p:
                c -= d[j]
            u += c * y[q]
            au += abs(c * y[q])
        dw = d[j] * w[j]
        base += dw * w[j]
        absum += abs(dw * w[j]) + 2.0 * abs(u * w[j]) + 2.0 * au * abs(w[j]) + abs(y[p]) * au
        uw += u * w[j]
        yu += y[p] * u
        r = dw - u
        terms[p] = r * r / d[j]
        du = gam * au + EPS * abs(dw)
        terr += (2.0 * abs(r) * du + du * du) / d[j] + 4.0 * EPS * terms[p]
        absum += terms[p]
    val = base - 2.0 * uw - yu
    # subtract the largest m_g terms of each group
    ngroups = mkeep.shape[0]
    for g in range(ngroups):
        cnt = 0
        for p in range(m):
            if gid[p] == g:
                cnt += 1
        if cnt == 0:
            continue
        k = mkeep[g]
        if k <= 0:
            continue
        tg = np.empty(cnt)
        c = 0
        for p in range(m):
            if gid[p] == g:
                tg[c] = terms[p]
                c += 1
        if k >= cnt:
            for i in range(cnt):
                val -= tg[i]
        else:
            srt = np.sort(tg)
            for i in range(cnt - k, cnt):
                val -= srt[i]
    return val - gam * absum - terr, val


@njit(cache=True)
def chol_in_place(L):
    """Cholesky factorisation of the symmetric matrix whose lower triangle ``L`` holds, in
    place (lower factor); False if a pivot is not positive."""
    m = L.shape[0]
    for a in range(m):
        for c in range(a + 1):
            s = L[a, c]
            for t in range(c):
                s -= L[a, t] * L[c, t]
            if a == c:
                if not (s > 0.0):
                    return False
                L[a, a] = np.sqrt(s)
            else:
                L[a, c] = s / L[c, c]
    return True


@njit(cache=True)
def solve_y(S, d, w, idx, z, y):
    """``y`` with ``(C + D Z⁻¹) y = D (I − Z⁻¹) w`` on the inputs with ``z > 0`` and ``y = −w``
    (``x = 0``) where ``z = 0``. Returns False if the system is not numerically positive."""
    m = idx.shape[0]
    free = np.empty(m, dtype=np.int64)
    nf = 0
    for p in range(m):
        if z[p] > 1e-12:
            free[nf] = p
            nf += 1
        else:
            y[p] = -w[idx[p]]
    if nf == 0:
        return True
    L = np.empty((nf, nf))
    b = np.empty(nf)
    for a in range(nf):
        pa = free[a]
        ja = idx[pa]
        za = z[pa]
        rhs = d[ja] * (1.0 - 1.0 / za) * w[ja]
        for q in range(m):
            if z[q] <= 1e-12:
                rhs -= S[ja, idx[q]] * y[q]  # C = S off the diagonal
        b[a] = rhs
        for c in range(a + 1):
            L[a, c] = S[ja, idx[free[c]]]
        L[a, a] += d[ja] * (1.0 / za - 1.0)
    if not chol_in_place(L):
        return False
    for a in range(nf):
        s = b[a]
        for t in range(a):
            s -= L[a, t] * b[t]
        b[a] = s / L[a, a]
    for a in range(nf - 1, -1, -1):
        s = b[a]
        for t in range(a + 1, nf):
            s -= L[t, a] * b[t]
        b[a] = s / L[a, a]
    for a in range(nf):
        y[free[a]] = b[a]
    return True


#: Later alternating steps at a node refine ``y`` by this many preconditioned CG iterations
#: (warm-started from the previous step) instead of a fresh Cholesky solve; 0: always Cholesky.
CG_STEPS = 3


@njit(cache=True)
def cg_y(S, d, w, idx, z, y, steps):
    """``steps`` Jacobi-preconditioned CG iterations on ``(C + D Z⁻¹) y = D (I − Z⁻¹) w`` from
    the current ``y`` (inputs with ``z = 0`` pinned at ``y = −w``). Any ``y`` gives a valid
    bound, so an inexact solve only costs tightness."""
    m = idx.shape[0]
    free = np.zeros(m, dtype=np.bool_)
    for p in range(m):
        if z[p] > 1e-12:
            free[p] = True
        else:
            y[p] = -w[idx[p]]
    r = np.zeros(m)
    dg = np.ones(m)
    for p in range(m):
        if not free[p]:
            continue
        j = idx[p]
        acc = d[j] * (1.0 - 1.0 / z[p]) * w[j] - (d[j] / z[p] - d[j]) * y[p]
        for q in range(m):
            acc -= S[j, idx[q]] * y[q]
        r[p] = acc
        dg[p] = S[j, j] - d[j] + d[j] / z[p]
        if not (dg[p] > 0.0):
            return
    zz = np.zeros(m)
    pv = np.zeros(m)
    rz_old = 0.0
    for p in range(m):
        if free[p]:
            zz[p] = r[p] / dg[p]
            pv[p] = zz[p]
            rz_old += r[p] * zz[p]
    ap = np.zeros(m)
    for _ in range(steps):
        if not (rz_old > 0.0):
            return
        pap = 0.0
        for p in range(m):
            if not free[p]:
                continue
            j = idx[p]
            acc = (d[j] / z[p] - d[j]) * pv[p]
            for q in range(m):
                if free[q]:
                    acc += S[j, idx[q]] * pv[q]
            ap[p] = acc
            pap += pv[p] * acc
        if not (pap > 0.0):
            return
        alpha = rz_old / pap
        rz = 0.0
        for p in range(m):
            if free[p]:
                y[p] += alpha * pv[p]
                r[p] -= alpha * ap[p]
                zz[p] = r[p] / dg[p]
                rz += r[p] * zz[p]
        beta = rz / rz_old
        rz_old = rz
        for p in range(m):
            if free[p]:
                pv[p] = zz[p] + beta * pv[p]


@njit(cache=True)
def perspective_bound(S, w, e, st, mkeep, M, d, warm, iters, target, out_sal, out_kb):
    """Best certified ``h(y)`` over ``iters`` alternating steps (``-inf`` when not applicable).

    ``warm[j]`` holds the water-filling weights ``a_j`` of the previous solve (read, then
    overwritten for the children; zeros mean "start from ``|w_j|·√d_j``"). Stops early once the
    bound reaches ``target`` (stopping earlier on a predicted miss was measured to cost nodes:
    the children's warm start is worse). ``out_sal[j]`` / ``out_kb[j]`` are raised to the bound
    of the children that prune / keep ``j`` (computed from the same ``y``, so equally certified).
    """
    n = S.shape[0]
    m = 0
    for j in range(n):
        if st[j] == UNDECIDED:
            if not (d[j] > 0.0):
                return -np.inf
            m += 1
    if m == 0 or iters <= 0:
        return -np.inf
    idx = np.empty(m, dtype=np.int64)
    gid = np.empty(m, dtype=np.int64)
    c = 0
    for j in range(n):
        if st[j] == UNDECIDED:
            idx[c] = j
            gid[c] = j // M
            c += 1
    ngroups = mkeep.shape[0]
    binding = False
    for g in range(ngroups):
        cnt = 0
        for p in range(m):
            if gid[p] == g:
                cnt += 1
        if cnt > max(mkeep[g], 0):
            binding = True
    if not binding:
        return -np.inf
    a = np.empty(m)
    amax = 0.0
    fresh = True
    for p in range(m):
        a[p] = warm[idx[p]]
        if a[p] > 0.0:
            fresh = False
    if fresh:
        for p in range(m):
            a[p] = abs(w[idx[p]]) * np.sqrt(d[idx[p]])
    for p in range(m):
        amax = max(amax, a[p])
    z = np.zeros(m)
    y = np.zeros(m)
    ybest = np.zeros(m)
    terms = np.zeros(m)
    # compact copies of the undecided block: the inner loops then read contiguous memory
    Sc = np.empty((m, m))
    dc = np.empty(m)
    wc = np.empty(m)
    ic = np.arange(m)
    for p in range(m):
        dc[p] = d[idx[p]]
        wc[p] = w[idx[p]]
        for q in range(m):
            Sc[p, q] = S[idx[p], idx[q]]
    best, _ = perspective_value(Sc, dc, wc, e, ic, gid, mkeep, ybest, terms)
    for it in range(iters):
        if best >= target:
            break
        # floor the weights so that no input is pinned to x = 0 for good
        for p in range(m):
            a[p] = max(a[p], 1e-9 * amax)
        for g in range(ngroups):
            cnt = 0
            for p in range(m):
                if gid[p] == g:
                    cnt += 1
            if cnt == 0:
                continue
            ag = np.empty(cnt)
            zg = np.empty(cnt)
            q = 0
            for p in range(m):
                if gid[p] == g:
                    ag[q] = a[p]
                    q += 1
            waterfill(ag, max(mkeep[g], 0), zg)
            q = 0
            for p in range(m):
                if gid[p] == g:
                    z[p] = zg[q]
                    q += 1
        if it == 0 or CG_STEPS <= 0:
            if not solve_y(Sc, dc, wc, ic, z, y):
                break
        else:
            cg_y(Sc, dc, wc, ic, z, y, CG_STEPS)
        v, _ = perspective_value(Sc, dc, wc, e, ic, gid, mkeep, y, terms)
        if v > best:
            best = v
            ybest[:] = y
        amax = 0.0
        for p in range(m):
            a[p] = abs(w[idx[p]] + y[p]) * np.sqrt(d[idx[p]])
            amax = max(amax, a[p])
    for p in range(m):
        warm[idx[p]] = a[p]
    # children bounds from ybest: only the top term changes
    best, _ = perspective_value(Sc, dc, wc, e, ic, gid, mkeep, ybest, terms)
    for g in range(ngroups):
        cnt = 0
        for p in range(m):
            if gid[p] == g:
                cnt += 1
        if cnt == 0 or mkeep[g] <= 0:
            continue
        k = mkeep[g]
        tg = np.empty(cnt)
        q = 0
        for p in range(m):
            if gid[p] == g:
                tg[q] = terms[p]
                q += 1
        srt = np.sort(tg)
        kth = srt[cnt - k] if k <= cnt else -np.inf  # smallest of the top k
        nxt = srt[cnt - k - 1] if k < cnt else 0.0  # largest outside the top k
        for p in range(m):
            if gid[p] != g:
                continue
            j = idx[p]
            t = terms[p]
            if k >= cnt:
                pr = best + t  # pruning j: every other term still fits
                kp = best
            elif t >= kth:
                pr = best + t - nxt
                kp = best
            else:
                pr = best
                kp = best + kth - t
            # the children's evaluation error: the same terms, at most the full slack + t
            pr -= 4.0 * EPS * t
            kp -= 4.0 * EPS * t
            if pr > out_sal[j]:
                out_sal[j] = pr
            if kp > out_kb[j]:
                out_kb[j] = kp
    return best


# --------------------------------------------------------------------------------------------
# The diagonal split re-optimised at a node
# --------------------------------------------------------------------------------------------
#
# Every bound of a node needs only ``S_UU ⪰ D_U`` (``S = H/H_FF``; equivalently
# ``H_KK − D_U ⪰ 0`` with ``D`` zero on ``F``), not ``H ⪰ D``: a near-null direction of ``H``
# whose support is partly pruned, or whose kept part is absorbed by ``F``, no longer caps
# ``D``. A split valid at a node stays valid for its whole subtree (``U' ⊆ U``: principal
# submatrices and Schur complements preserve ``⪰``), so a node re-optimises its inherited split
# and hands it down. The re-optimisation is the log-det split of ``S_UU``
# (:func:`solvers.prune.bounds.logdet_diagonal`: ``max Σ log d_j + μ log det(S_UU − D)``, a few
# damped Newton steps per barrier weight, warm-started from the inherited split), certified
# by a Cholesky factorisation of ``S_UU − D_U − τ·diag(S_UU)`` in the Jacobi scaling: ``τ``
# covers the rounding of the computed ``S`` and of the factorisation, so the exact ``S_UU −
# D_U`` is positive semidefinite. A split that fails the test is not used (the inherited one is).


@njit(cache=True)
def _chol_minus(A, x, shift, L):
    """Cholesky factor ``L`` of ``A − diag(x) − shift·I`` (lower, in place); False if a pivot
    is not positive."""
    m = A.shape[0]
    for a in range(m):
        for c in range(a + 1):
            L[a, c] = A[a, c]
        L[a, a] -= x[a] + shift
    return chol_in_place(L)


@njit(cache=True)
def _barrier_value(A, x, mu, L):
    """``Σ log x + 2μ Σ log L_aa`` with ``L`` the factor of ``A − diag(x)`` (−inf if none)."""
    for a in range(x.shape[0]):
        if not (x[a] > 0.0):
            return -np.inf
    if not _chol_minus(A, x, 0.0, L):
        return -np.inf
    v = 0.0
    for a in range(x.shape[0]):
        v += np.log(x[a]) + 2.0 * mu * np.log(L[a, a])
    return v


#: Barrier weight of a node's split re-optimisation (the root's log-det split runs to 1e-4;
#: a node takes a few damped Newton steps at this weight from its inherited split, so a split
#: improves down a path).
SPLIT_MU = 0.02
#: Newton steps per re-optimisation.
SPLIT_STEPS = 3


@njit(cache=True)
def node_split(S, st, dcur, dout, tau, steps):
    """Re-optimise the split on the undecided block of ``S`` (see the comment above).

    ``dcur`` is the node's inherited split (valid: ``S_UU ⪰ D_U``); ``dout`` receives the new
    one on ``U`` (``dcur`` elsewhere). ``tau``: the certification shift, relative to
    ``diag(S_UU)``; ``steps``: Newton steps per barrier weight. Returns True when ``dout``
    holds a new certified split, False when it is ``dcur`` unchanged.
    """
    n = S.shape[0]
    for j in range(n):
        dout[j] = dcur[j]
    m = 0
    for j in range(n):
        if st[j] == UNDECIDED:
            m += 1
    if m < 2:
        return False
    idx = np.empty(m, dtype=np.int64)
    c = 0
    for j in range(n):
        if st[j] == UNDECIDED:
            idx[c] = j
            c += 1
    sc = np.empty(m)
    for p in range(m):
        v = S[idx[p], idx[p]]
        if not (v > 0.0):
            return False
        sc[p] = np.sqrt(v)
    A = np.empty((m, m))
    for p in range(m):
        for q in range(m):
            A[p, q] = S[idx[p], idx[q]] / (sc[p] * sc[q])
    x = np.empty(m)
    xmax = 0.0
    for p in range(m):
        x[p] = dcur[idx[p]] / (sc[p] * sc[p])
        xmax = max(xmax, x[p])
    if not (xmax > 0.0):
        # no inherited split (H singular at the root): start from the Jacobi split of S_UU
        lam = np.linalg.eigvalsh(A)[0]
        if not (lam > 1e3 * m * EPS):
            return False
        for p in range(m):
            x[p] = 0.5 * lam
        xmax = 0.5 * lam
    for p in range(m):
        x[p] = max(x[p], 1e-3 * xmax)
    L = np.zeros((m, m))
    mu = SPLIT_MU
    val = _barrier_value(A, x, mu, L)
    shrink = 0
    while not np.isfinite(val) and shrink < 6:
        x *= 0.5
        val = _barrier_value(A, x, mu, L)
        shrink += 1
    if not np.isfinite(val):
        return False
    B = np.zeros((m, m))
    Hn = np.zeros((m, m))
    g = np.zeros(m)
    if True:
        for _ in range(steps):
            # B = (A − X)^-1 (LAPACK; A − X is positive definite here)
            for a in range(m):
                for b in range(m):
                    B[a, b] = A[a, b]
                B[a, a] -= x[a]
            B = np.linalg.inv(B)
            for a in range(m):
                g[a] = 1.0 / x[a] - mu * B[a, a]
                for b in range(m):
                    Hn[a, b] = mu * B[a, b] * B[a, b]
                Hn[a, a] += 1.0 / (x[a] * x[a])
            step = np.linalg.solve(Hn, g)
            dec = 0.0
            for a in range(m):
                dec += g[a] * step[a]
            if not (dec > 1e-8):
                break
            t = 1.0
            moved = False
            while t > 1e-6:
                xn = x + t * step
                vn = _barrier_value(A, xn, mu, L)
                if vn >= val + 0.25 * t * dec:
                    x = xn
                    val = vn
                    moved = True
                    break
                t *= 0.5
            if not moved:
                _barrier_value(A, x, mu, L)  # restore the factor of the current x
                break
    # certify: the exact S_UU − D_U must be PSD; shrink towards the inherited split otherwise
    for _ in range(4):
        if _chol_minus(A, x, tau, L):
            for p in range(m):
                dout[idx[p]] = x[p] * sc[p] * sc[p] * (1.0 - 8.0 * EPS)
            return True
        x *= 1.0 - 1e3 * tau
        for p in range(m):
            x[p] = max(x[p] - 2.0 * tau, 0.0)
    return False


# --------------------------------------------------------------------------------------------
# Exact completion of the last two decisions
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def pair_removal(G, w, i, j):
    """``Δ({i, j}) = [w_i w_j] (G_{ij,ij})^-1 [w_i w_j]ᵀ``: the exact cost of pruning both."""
    a = G[i, i]
    b = G[i, j]
    c = G[j, j]
    det = a * c - b * b
    if det <= 1e-14 * a * c:
        return np.inf  # numerically dependent pair: no exact value here
    return (w[i] * w[i] * c - 2.0 * w[i] * w[j] * b + w[j] * w[j] * a) / det


@njit(cache=True)
def pair_gain(S, r, i, j, pivot_rtol, H):
    """Exact error decrease of keeping both ``i`` and ``j`` after ``F`` (2×2 Schur system)."""
    a = S[i, i]
    b = S[i, j]
    c = S[j, j]
    gi = r[i] * r[i] / a if a > pivot_rtol * H[i, i] and a > 0.0 else 0.0
    gj = r[j] * r[j] / c if c > pivot_rtol * H[j, j] and c > 0.0 else 0.0
    det = a * c - b * b
    if a <= pivot_rtol * H[i, i] or a <= 0.0:
        return gj  # i depends on F: for PSD S its whole row vanishes
    if c <= pivot_rtol * H[j, j] or c <= 0.0:
        return gi
    if det <= 1e-12 * a * c:
        return np.inf  # near-dependent pair: no reliable value (callers give up)
    return (r[i] * r[i] * c - 2.0 * r[i] * r[j] * b + r[j] * r[j] * a) / det


@njit(cache=True)
def last_prunes(G, w, e, st, need, M, out_prune):
    """Exact best completion when at most two more prunes are needed (every feasible choice of
    the pruned-more set ``S``, ``|S| = Σ need <= 2``, respecting each group's need).

    Returns the least error ``e + Δ(S)`` and writes the best ``S`` into ``out_prune``.
    """
    n = G.shape[0]
    ngroups = n // M
    tot = 0
    g1 = -1
    g2 = -1
    for g in range(ngroups):
        if need[g] > 0:
            tot += need[g]
            if g1 < 0:
                g1 = g
            else:
                g2 = g
    for j in range(n):
        out_prune[j] = False
    best = np.inf
    bi = -1
    bj = -1
    if tot == 1:
        for i in range(g1 * M, g1 * M + M):
            if st[i] == UNDECIDED and G[i, i] > 0.0:
                v = w[i] * w[i] / G[i, i]
                if v < best:
                    best = v
                    bi = i
    elif tot == 2:
        lo1 = g1 * M
        hi1 = g1 * M + M
        if g2 < 0:
            lo2 = lo1
            hi2 = hi1
        else:
            lo2 = g2 * M
            hi2 = g2 * M + M
        for i in range(lo1, hi1):
            if st[i] != UNDECIDED:
                continue
            for j in range(max(lo2, i + 1) if g2 < 0 else lo2, hi2):
                if st[j] != UNDECIDED:
                    continue
                v = pair_removal(G, w, i, j)
                if not np.isfinite(v):
                    return np.inf  # a near-dependent pair: give up, branch instead
                if v < best:
                    best = v
                    bi = i
                    bj = j
    if bi >= 0:
        out_prune[bi] = True
    if bj >= 0:
        out_prune[bj] = True
    return e + best


@njit(cache=True)
def last_keeps(S, r, cF, st, mkeep, M, pivot_rtol, H, out_keep):
    """Exact best completion when at most two more keeps are allowed (all allowed ``T``)."""
    n = S.shape[0]
    ngroups = n // M
    for j in range(n):
        out_keep[j] = False
    best = 0.0
    bi = -1
    bj = -1
    for i in range(n):
        if st[i] != UNDECIDED or mkeep[i // M] <= 0:
            continue
        a = S[i, i]
        if a > pivot_rtol * H[i, i] and a > 0.0:
            v = r[i] * r[i] / a
            if v > best:
                best = v
                bi = i
                bj = -1
    tot = 0
    for g in range(ngroups):
        tot += max(0, mkeep[g])
    if tot >= 2:
        for i in range(n):
            if st[i] != UNDECIDED or mkeep[i // M] <= 0:
                continue
            for j in range(i + 1, n):
                if st[j] != UNDECIDED or mkeep[j // M] <= 0:
                    continue
                if j // M == i // M and mkeep[i // M] < 2:
                    continue
                v = pair_gain(S, r, i, j, pivot_rtol, H)
                if not np.isfinite(v):
                    return -np.inf  # give up, branch instead
                if v > best:
                    best = v
                    bi = i
                    bj = j
    if bi >= 0:
        out_keep[bi] = True
    if bj >= 0:
        out_keep[bj] = True
    return cF - best


# --------------------------------------------------------------------------------------------
# Depth-first branch-and-bound, resumable in chunks
# --------------------------------------------------------------------------------------------


#: The problem and the constants of one search: ``H``, ``w0``, the diagonal split ``d``;
#: groups of ``M`` inputs keeping at most ``N``; the absolute ``box`` (0: none); the refit's
#: ``pivot_rtol``; the bound margins (relative ``margin``, absolute ``abs_margin``); a subtree
#: closes when its safe bound reaches ``ub·(1 − fathom_rtol)``; the branching ``rule``
#: (0 saliency, 1 product); ``piters`` perspective steps per node (0: that bound off);
#: ``resplit``: a node re-optimises its split (:func:`node_split`) once at least this many
#: inputs were decided since its split was made (0: never; the root's ``d`` throughout), with
#: the certification shift ``split_tau``.
SearchSpec = namedtuple("SearchSpec", "H w0 d N M box pivot_rtol margin abs_margin fathom_rtol "
                                      "rule piters resplit split_tau")
#: The stack of open nodes; slot ``s`` holds the backward side ``G[s]`` (``(H_KK)^-1``),
#: ``w[s]``, ``e[s]``, ``hasinv[s]``; the forward side ``S[s]`` (``H/H_FF``), ``r[s]``,
#: ``cF[s]`` (error of keeping only ``F``); the decisions ``state[s]``; the perspective bound's
#: warm start ``warm[s]``; the node's diagonal split ``d[s]`` (valid for its subtree) and the
#: number of inputs decided when it was made, ``dmade[s]``.
NodeStack = namedtuple("NodeStack", "G w e S r cF state hasinv warm d dmade")
#: The search's results so far: ``fstate = [ub, fathom_min, ub_lower]`` (incumbent value,
#: least safe bound of any subtree closed so far, safe lower bound of the incumbent's own
#: leaf); the incumbent's ``w`` (NaN: the caller refits) and ``mask``;
#: ``counters = [nodes, leaves, improvements, singular_nodes]``.
Best = namedtuple("Best", "fstate w mask counters")


def new_stack(n: int, cap: int) -> NodeStack:
    """An empty :class:`NodeStack` of ``cap`` slots for ``n`` inputs."""
    return NodeStack(np.zeros((cap, n, n)), np.zeros((cap, n)), np.zeros(cap),
                     np.zeros((cap, n, n)), np.zeros((cap, n)), np.zeros(cap),
                     np.zeros((cap, n), dtype=np.int8), np.zeros(cap, dtype=np.bool_),
                     np.zeros((cap, n)), np.zeros((cap, n)), np.zeros(cap, dtype=np.int64))


@njit(cache=True)
def prune_slot(H, w0, stack, t, bj, pivot_rtol, keep):
    """Slot ``t`` (state already marks ``bj`` pruned): update its backward side for ``bj``."""
    n = H.shape[0]
    Gs, ws, es, hasinv = stack.G, stack.w, stack.e, stack.hasinv
    if hasinv[t] and Gs[t][bj, bj] > 0.0:
        es[t] = es[t] + obs_remove(Gs[t], ws[t], bj)
        return
    for j in range(n):
        keep[j] = stack.state[t][j] != PRUNED
    if chol_inverse(H, keep, pivot_rtol, Gs[t]):
        es[t] = refit_from_inverse(H, w0, keep, Gs[t], ws[t])
        hasinv[t] = True
    else:
        es[t] = schur_error(H, w0, keep, pivot_rtol)
        ws[t][:] = 0.0
        hasinv[t] = False


@njit(cache=True)
def copy_slot(stack, s, t):
    """Slot ``t`` becomes a copy of slot ``s``."""
    stack.G[t][:, :] = stack.G[s]
    stack.w[t][:] = stack.w[s]
    stack.e[t] = stack.e[s]
    stack.S[t][:, :] = stack.S[s]
    stack.r[t][:] = stack.r[s]
    stack.cF[t] = stack.cF[s]
    stack.state[t][:] = stack.state[s]
    stack.hasinv[t] = stack.hasinv[s]
    stack.warm[t][:] = stack.warm[s]
    stack.d[t][:] = stack.d[s]
    stack.dmade[t] = stack.dmade[s]


@njit(cache=True, nogil=True)
def dfs_chunk(spec, stack, best, sp, budget):
    """Process up to ``budget`` nodes of the depth-first search; returns the new stack size
    and the nodes processed.

    ``spec`` (:class:`SearchSpec`) is read only; ``stack`` (:class:`NodeStack`, ``sp`` slots
    in use) and ``best`` (:class:`Best`) are updated in place. Bounds are shrunk by the
    relative ``margin`` (and forward ones by ``abs_margin`` first); a subtree closes when its
    safe bound reaches ``ub·(1 − fathom_rtol)``. Compiled without the GIL: the workers of
    :mod:`solvers.prune.parallel` run it on their own stacks at the same time.
    """
    H, w0, N, M, box = spec.H, spec.w0, spec.N, spec.M, spec.box
    pivot_rtol, margin, abs_margin = spec.pivot_rtol, spec.margin, spec.abs_margin
    fathom_rtol, rule, piters = spec.fathom_rtol, spec.rule, spec.piters
    resplit, split_tau = spec.resplit, spec.split_tau
    Gs, ws, es, Ss, rs, cfs = stack.G, stack.w, stack.e, stack.S, stack.r, stack.cF
    states, hasinv, As, Ds = stack.state, stack.hasinv, stack.warm, stack.d
    fstate, best_w, best_mask, counters = best.fstate, best.w, best.mask, best.counters
    n = H.shape[0]
    ngroups = n // M
    need = np.zeros(ngroups, dtype=np.int64)
    mkeep = np.zeros(ngroups, dtype=np.int64)
    ucount = np.zeros(ngroups, dtype=np.int64)
    sal = np.zeros(n)
    kb = np.zeros(n)
    brs = np.zeros(2 * n + 1)
    keep = np.zeros(n, dtype=np.bool_)
    dnew = np.zeros(n)
    done = 0
    while sp > 0 and done < budget:
        sp -= 1
        s = sp
        done += 1
        counters[0] += 1
        G = Gs[s]
        w = ws[s]
        e = es[s]
        st = states[s]
        ub = fstate[0]
        thresh = ub * (1.0 - fathom_rtol)
        if not hasinv[s]:
            counters[3] += 1
        dvec = Ds[s]
        if resplit > 0 and hasinv[s]:
            decided = 0
            for j in range(n):
                if st[j] != UNDECIDED:
                    decided += 1
            if decided - stack.dmade[s] >= resplit:
                stack.dmade[s] = decided
                if node_split(Ss[s], st, dvec, dnew, split_tau, SPLIT_STEPS):
                    dvec[:] = dnew
        safe = combined_bound(G, w, e, Ss[s], rs[s], cfs[s], st, hasinv[s], N, M, dvec,
                              margin, abs_margin, need, mkeep, ucount, sal, kb, As[s], piters,
                              thresh, brs, box == 0.0)
        if safe >= thresh:
            if np.isfinite(safe) and safe < fstate[1]:
                fstate[1] = safe
            continue
        # the decided-kept set alone is feasible: a free incumbent (unboxed only)
        if box == 0.0 and cfs[s] < ub:
            fstate[0] = cfs[s]
            ub = fstate[0]
            thresh = ub * (1.0 - fathom_rtol)
            counters[2] += 1
            for j in range(n):
                best_mask[j] = st[j] == KEPT
                best_w[j] = np.nan
            if safe >= thresh:
                if safe < fstate[1]:
                    fstate[1] = safe
                continue
        total_need = 0
        total_keep = 0
        for g in range(ngroups):
            total_need += need[g]
            total_keep += min(mkeep[g], ucount[g])
        # at most two prunes (backward side) or two keeps (forward side) left: solve exactly
        if hasinv[s] and total_need <= 2 and total_need >= 1:
            vb = last_prunes(G, w, e, st, need, M, keep)
            if np.isfinite(vb):
                lows = vb * (1.0 - margin)
                if box == 0.0:
                    counters[1] += 1
                    if vb < ub:
                        if fstate[2] < fstate[1]:
                            fstate[1] = fstate[2]
                        fstate[0] = vb
                        fstate[2] = lows
                        counters[2] += 1
                        for j in range(n):
                            best_mask[j] = st[j] != PRUNED and not keep[j]
                            best_w[j] = np.nan
                    elif lows < fstate[1]:
                        fstate[1] = lows
                    continue
                if lows >= thresh:  # boxed: the unboxed completion is a bound only
                    if lows < fstate[1]:
                        fstate[1] = lows
                    continue
        if box == 0.0 and total_keep <= 2 and total_keep >= 1:
            vf = last_keeps(Ss[s], rs[s], cfs[s], st, mkeep, M, pivot_rtol, H, keep)
            lows = max(0.0, (vf - abs_margin) * (1.0 - margin)) if np.isfinite(vf) else -1.0
            if np.isfinite(vf) and vf < ub:
                fstate[0] = vf
                ub = vf
                thresh = ub * (1.0 - fathom_rtol)
                counters[2] += 1
                for j in range(n):
                    best_mask[j] = st[j] == KEPT or keep[j]
                    best_w[j] = np.nan
            if lows >= 0.0 and lows >= thresh:
                counters[1] += 1
                if lows < fstate[1]:
                    fstate[1] = lows
                continue
        # a leaf with no keep left is closed from the kept side only when its (absolute-margin)
        # bound clears the threshold; otherwise the prune chain below reaches it through the
        # backward side, whose values carry no absolute margin
        fwd_leaf = total_keep == 0 and box == 0.0 and (
            max(0.0, (cfs[s] - abs_margin) * (1.0 - margin)) >= thresh or cfs[s] < ub)
        if total_need == 0 or fwd_leaf:
            counters[1] += 1
            if total_need == 0:
                # leaf: keep every undecided input
                for j in range(n):
                    keep[j] = st[j] != PRUNED
                if not hasinv[s] and box > 0.0:
                    wl = lstsq_refit(H, w0, keep)
                    val, low, xw = boxed_leaf(H, keep, G, wl, e, box, True)
                    has_w = True
                elif not hasinv[s]:
                    val = e
                    low = e
                    xw = np.zeros(n)
                    has_w = False
                elif box > 0.0:
                    val, low, xw = boxed_leaf(H, keep, G, w, e, box)
                    has_w = True
                else:
                    val = e
                    low = e
                    xw = w.copy()
                    has_w = True
                lows = low * (1.0 - margin)
            else:
                # leaf: no keep left, prune every undecided input (value cF)
                for j in range(n):
                    keep[j] = st[j] == KEPT
                val = cfs[s]
                lows = max(0.0, (cfs[s] - abs_margin) * (1.0 - margin))
                xw = np.zeros(n)
                has_w = False
            if val < ub:
                if fstate[2] < fstate[1]:
                    fstate[1] = fstate[2]
                fstate[0] = val
                fstate[2] = lows
                counters[2] += 1
                for j in range(n):
                    best_mask[j] = keep[j]
                    best_w[j] = xw[j] if has_w else np.nan
            elif lows < fstate[1]:
                fstate[1] = lows
            continue
        # screening: prune-j bound closes => keep j; keep-j bound closes => prune j
        changed = False
        for j in range(n):
            if st[j] != UNDECIDED:
                continue
            g = j // M
            if hasinv[s] and need[g] > 0 and sal[j] >= thresh:
                st[j] = KEPT
                cfs[s] -= fwd_keep(Ss[s], rs[s], j, H[j, j], pivot_rtol)
                if sal[j] < fstate[1]:
                    fstate[1] = sal[j]
                changed = True
            elif hasinv[s] and mkeep[g] > 0 and kb[j] >= thresh and G[j, j] > 0.0:
                st[j] = PRUNED
                es[s] = es[s] + obs_remove(G, w, j)
                if kb[j] < fstate[1]:
                    fstate[1] = kb[j]
                changed = True
        if changed:
            sp = s + 1  # evaluate the node again with the new decisions
            continue
        # branch variable. rule 0: least saliency, prune child first. rule 1 (product rule):
        # the j whose two children have the largest product of bound increases (the per-variable
        # bounds sal[j] (prune j) and kb[j] (keep j) come for free), weaker child first
        bj = -1
        best = np.inf if rule == 0 or not hasinv[s] else -np.inf
        ref = brs[2 * n]
        eps = 1e-9 * max(thresh - ref, 1e-300)
        for j in range(n):
            if st[j] != UNDECIDED or need[j // M] <= 0:
                continue
            if not hasinv[s]:
                v = abs(w0[j])
                if v < best:
                    best = v
                    bj = j
            elif rule == 0:
                if sal[j] < best:
                    best = sal[j]
                    bj = j
            else:
                v = max(brs[j] - ref, eps) * max(brs[n + j] - ref, eps)
                if v > best:
                    best = v
                    bj = j
        g = bj // M
        can_keep = ucount[g] - 1 >= need[g] and mkeep[g] >= 1
        prune_first = rule == 0 or not hasinv[s] or brs[bj] <= brs[n + bj]
        if can_keep and not prune_first:
            # keep child on top (slot s + 1), prune child in place (slot s)
            t = s + 1
            copy_slot(stack, s, t)
            states[t][bj] = KEPT
            cfs[t] = cfs[s] - fwd_keep(Ss[t], rs[t], bj, H[bj, bj], pivot_rtol)
            st[bj] = PRUNED
            prune_slot(H, w0, stack, s, bj, pivot_rtol, keep)
            sp = t + 1
            continue
        t = s + 1 if can_keep else s
        if t != s:
            copy_slot(stack, s, t)
        states[t][bj] = PRUNED
        prune_slot(H, w0, stack, t, bj, pivot_rtol, keep)
        if can_keep:
            st[bj] = KEPT
            cfs[s] -= fwd_keep(Ss[s], rs[s], bj, H[bj, bj], pivot_rtol)
        sp = t + 1
    return sp, done


# --------------------------------------------------------------------------------------------
# Incumbent kernels
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def greedy_obs(G0, w0, N, M, alive):
    """Greedy OBS: repeatedly remove the least-saliency kept input (exact updates) until each
    group keeps at most ``N``. ``G0 = H^-1`` over the ``alive`` inputs. Returns the keep mask."""
    n = G0.shape[0]
    G = G0.copy()
    w = w0.copy()
    keep = alive.copy()
    for i in range(n):
        if not keep[i]:
            w[i] = 0.0
    ngroups = n // M
    while True:
        bj = -1
        best = np.inf
        for g in range(ngroups):
            kept = 0
            for j in range(g * M, g * M + M):
                if keep[j]:
                    kept += 1
            if kept <= N:
                continue
            for j in range(g * M, g * M + M):
                if keep[j] and G[j, j] > 0.0:
                    s = w[j] * w[j] / G[j, j]
                    if s < best:
                        best = s
                        bj = j
        if bj < 0:
            break
        obs_remove(G, w, bj)
        keep[bj] = False
    return keep


@njit(cache=True)
def swap_search(H, w0, keep, N, M, alive, pivot_rtol, max_sweeps):
    """Best-improvement 1-swap local search (drop one kept input, add one pruned input of the same
    group — or any group for unstructured pruning), with exact rank-one updates.

    Returns ``(keep, e, ok)``; ``ok`` is False when some kept block was singular (no search).
    """
    n = H.shape[0]
    keep = keep.copy()
    G = np.zeros((n, n))
    w = np.zeros(n)
    for _ in range(max_sweeps):
        if not chol_inverse(H, keep, pivot_rtol, G):
            return keep, 0.0, False
        e = refit_from_inverse(H, w0, keep, G, w)
        best_e = e
        bi = -1
        bj = -1
        for i in range(n):
            if not keep[i]:
                continue
            Gi = G.copy()
            wi = w.copy()
            ei = e + obs_remove(Gi, wi, i)
            d = wi - w0
            for j in range(n):
                if keep[j] or j == i or not alive[j]:
                    continue
                if M < n and j // M != i // M:
                    continue
                # Schur pivot and residual correlation of j w.r.t. K \ {i}
                hG = np.zeros(n)
                for a in range(n):
                    if keep[a] and a != i:
                        hG[a] = H[a, j]
                q = 0.0
                for a in range(n):
                    if hG[a] != 0.0:
                        t = 0.0
                        for b in range(n):
                            t += Gi[a, b] * hG[b]
                        q += hG[a] * t
                piv = H[j, j] - q
                if piv <= pivot_rtol * H[j, j]:
                    continue
                r = 0.0
                for a in range(n):
                    r -= H[j, a] * d[a]
                ej = ei - r * r / piv
                if ej < best_e * (1.0 - 1e-12) - 1e-300:
                    best_e = ej
                    bi = i
                    bj = j
        if bi < 0:
            return keep, e, True
        keep[bi] = False
        keep[bj] = True
    if not chol_inverse(H, keep, pivot_rtol, G):
        return keep, 0.0, False
    return keep, refit_from_inverse(H, w0, keep, G, w), True
