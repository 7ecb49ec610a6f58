"""Compiled kernels of the exact level solver (numba, ``cache=True``, self-contained).

The search is Schnorr–Euchner enumeration generalised to per-input sorted level sets::

    minimise ‖R(w − c)‖²,  w_k ∈ T[k, :]  (sorted),  at most K nonzeros, at most N per group

with ``R`` upper triangular (``H[π, π] = RᵀR`` in the search order ``π``), rows enumerated from
the last (the top of the tree) down to row 0. With the rows ``> k`` fixed, the partial distance
``P_{k+1} = Σ_{i>k} (R(w − c))_i²`` bounds every completion (the rows ``<= k`` can be zeroed by
the continuous minimiser), and at row ``k`` the centre is ``ĉ_k = c_k − Σ_{j>k} R_kj(w_j −
c_j)/R_kk``. The candidates of row ``k`` are its levels in order of distance from ``ĉ_k``: a
binary search finds the two levels around ``ĉ_k``, then two pointers zig-zag outwards (levels
outside the convex hull are never generated: the box is the first and last level). A row with
``R_kk = 0`` adds nothing; all its levels are visited, nearest the incumbent's first.

Cardinality: ``used[k]`` counts the nonzeros of the rows above ``k`` and ``gcnt[g]`` those of
N:M group ``g`` among them. A row whose budget is spent (``used[k] = K`` or its group holds
``N``) has the zero level as its only candidate; every input has a zero level whenever a limit is
set (the problem type checks it), so no input is ever forced nonzero and the budget test is the
whole feasibility test.

The state lives in arrays owned by the caller: the kernel runs in node-budgeted slices and the
caller checks the clock between them. Centre updates use the partial-sum matrix of Ghasemmehdi &
Agrell (2011) as the integer solver does (:mod:`solvers.quant.kernels`). The rounding margin of a
leaf (:func:`leaf_margin`) is the integer solver's, with ``w − c`` for ``z − c``
(:mod:`solvers.quant.certify` explains it); it is restated here because a cached kernel may not
call a compiled function of another module.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_K = 0  # current row
_DONE = 1  # 1 when the whole tree has been explored
_STARTED = 2  # 1 once the root has been set up


@njit(cache=True)
def _term(rkk, v, ctr, dk, ck):
    """Row ``k``'s cost of value ``v``: ``(R_kk(v − ĉ_k))² + D_k(v − c_k)²``."""
    t = dk * (v - ck) * (v - ck)
    if rkk == 0.0:
        return t
    d = rkk * (v - ctr)
    return d * d + t


@njit(cache=True)
def _budget(K, used, k, v):
    """Nonzeros left for the rows below ``k`` when row ``k`` takes ``v`` (at least 0)."""
    b = K - used[k] - (1 if v != 0.0 else 0)
    return b if b > 0 else 0


@njit(cache=True)
def _zero_ahead(zix, k, up, dn):
    """True when row ``k``'s zero level is still among its unvisited candidates."""
    z = zix[k]
    return z >= 0 and (z >= up[k] or z <= dn[k])


@njit(cache=True)
def _refresh_center(R, c, wv, S, last, k, ctr, wref, Dv, vc):
    """Centre ``ĉ_k`` of row ``k`` from the partial sums (stale columns only), and in ``vc`` the
    minimiser of row ``k``'s cost ``(R_kk(v − ĉ_k))² + D_k(v − c_k)²``, around which the
    candidates are visited."""
    n = R.shape[0]
    j = last[k]
    acc = S[k, j + 1] if j + 1 < n + 1 else 0.0
    while j > k:
        acc += R[k, j] * (wv[j] - c[j])
        S[k, j] = acc
        j -= 1
    last[k] = k
    rkk = R[k, k]
    if rkk == 0.0:
        ctr[k] = wref[k]
    else:
        ctr[k] = c[k] - S[k, k + 1] / rkk
    r2 = rkk * rkk
    if r2 + Dv[k] > 0.0:
        vc[k] = (r2 * ctr[k] + Dv[k] * c[k]) / (r2 + Dv[k])
    else:
        vc[k] = wref[k]


@njit(cache=True)
def _mark_descent(last, k):
    if last[k] < k + 1:
        last[k] = k + 1
    if k > 0 and last[k - 1] < last[k]:
        last[k - 1] = last[k]


@njit(cache=True)
def _lower_index(row, x):
    """Number of levels ``< x`` in the sorted ``row`` (binary search)."""
    lo = 0
    hi = row.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if row[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _nearest_index(row, x):
    """Index of the level of ``row`` nearest ``x`` (ties to the lower)."""
    i = _lower_index(row, x)
    if i == 0:
        return 0
    if i == row.shape[0]:
        return i - 1
    return i - 1 if x - row[i - 1] <= row[i] - x else i


@njit(cache=True)
def _allowed(k, used, K, grp, gcnt, N):
    if used[k] >= K:
        return False
    g = grp[k]
    return g < 0 or gcnt[g] < N


@njit(cache=True)
def _first(T, zix, k, ctr, alw, ix, up, dn, wv):
    """Set row ``k`` to its first candidate (nearest the centre, or zero when not allowed)."""
    L = T.shape[1]
    if alw[k] == 0:
        ix[k] = zix[k]
        up[k] = L
        dn[k] = -1
    else:
        i = _nearest_index(T[k], ctr[k])
        ix[k] = i
        up[k] = i + 1
        dn[k] = i - 1
    wv[k] = T[k, ix[k]]


@njit(cache=True)
def _peek(T, k, ctr, up, dn):
    """Index of the next sibling of row ``k`` in zig-zag order, or -1."""
    L = T.shape[1]
    cu = up[k] < L
    cd = dn[k] >= 0
    if cu and cd:
        if T[k, up[k]] - ctr[k] <= ctr[k] - T[k, dn[k]]:
            return up[k]
        return dn[k]
    if cu:
        return up[k]
    if cd:
        return dn[k]
    return -1


@njit(cache=True)
def _next_sibling(T, k, ctr, ix, up, dn, wv):
    i = _peek(T, k, ctr, up, dn)
    if i < 0:
        return False
    if i == up[k]:
        up[k] += 1
    else:
        dn[k] -= 1
    ix[k] = i
    wv[k] = T[k, i]
    return True


@njit(cache=True)
def leaf_margin(R, c, wv, p, cert):
    """Rounding margin of one leaf's computed value ``p`` (:mod:`solvers.quant.certify`).

    ``cert = [2‖E‖_F, γ, e_c, γ_E]``; with ``d = w − c``, ``G = ‖|R||d|‖²`` and
    ``e = γ√G + e_c`` the margin is ``2‖E‖_F‖d‖² + 2(γ_E G + 2√p·e + e² + γp)``.
    """
    n = R.shape[0]
    G = 0.0
    dd = 0.0
    for k in range(n):
        dk = wv[k] - c[k]
        dd += dk * dk
        s = 0.0
        for j in range(k, n):
            s += abs(R[k, j]) * abs(wv[j] - c[j])
        G += s * s
    gamma = cert[1]
    e = gamma * np.sqrt(G) + cert[2]
    pp = p if p > 0.0 else 0.0
    return cert[0] * dd + 2.0 * (cert[3] * G + 2.0 * np.sqrt(pp) * e + e * e + gamma * pp)


@njit(cache=True)
def _centre_step(Cm, Gm, k, delta):
    """``Cm[k, i] = Cm[k + 1, i] + Gm[i, k]·delta`` for the rows ``i < k``: the conditional
    centres (offsets from ``c``) of the free rows once row ``k`` sits ``delta`` from its own."""
    for i in range(k):
        Cm[k, i] = Cm[k + 1, i] + Gm[i, k] * delta


@njit(cache=True)
def cond_tail(T, zix, c, Dv, dl, Cm, k, b, ext):
    """Least ``Σ_{i<k} dl[k, i](w_i − ĉ_i)² + Dv_i(w_i − c_i)²`` over levels with at most ``b``
    nonzeros, ``ĉ_i = c_i + Cm[k, i]`` (computed): per row the best level costs ``a_i``; the
    rows whose best level is nonzero beyond the budget pay the least extra costs of zeroing.
    ``ext`` is scratch (at least ``k`` entries)."""
    base = 0.0
    cnt = 0
    for i in range(k):
        x0 = c[i] + Cm[k, i]
        dd = dl[k, i]
        de = Dv[i]
        if dd + de <= 0.0:
            continue
        j = _nearest_index(T[i], (dd * x0 + de * c[i]) / (dd + de))
        t = T[i, j] - x0
        t2 = T[i, j] - c[i]
        a = dd * t * t + de * t2 * t2
        base += a
        if T[i, j] != 0.0 and zix[i] >= 0:
            e = dd * x0 * x0 + de * c[i] * c[i] - a
            q = cnt  # insertion into the sorted scratch
            while q > 0 and ext[q - 1] > e:
                ext[q] = ext[q - 1]
                q -= 1
            ext[q] = e
            cnt += 1
    force = cnt - b
    for q in range(force if force > 0 else 0):
        base += ext[q]
    return base


@njit(cache=True)
def parent_residual(R, c, Cm, wv, ctr_k, k, gamma):
    """The part of the centre check shared by the values of row ``k`` (its parent fixed).

    With row ``k`` at ``v`` the free rows' computed centres are ``ĉ = c + Cm[k]`` (rounded), and
    ``‖R_{<k,<k}(ĉ − c*)‖`` — all that :func:`_tail_prunes` needs of their error — is the norm
    of the free rows of ``R(x − c)`` at ``x = (ĉ, v, fixed)``, which vanish at ``c*``. Split
    as ``ρ0 + (v − ĉ_k)ρ1(v) + R_{<k,<k}(rounding)`` with
    ``ρ0 = R_{<k,<k}Cm[k + 1] + R_{<k,k}(ĉ_k − c_k) + R_{<k,>k}(w − c)_{>k}`` (here, once per
    parent) and ``ρ1`` per row (:func:`solvers.levels.exact._residual_slopes`). Returns
    ``‖ρ̂0‖ + 2γ‖|R||·|‖`` (its rounding) ``+ u(1 + 3u)‖|R_{<k,<k}|(2|Cm[k + 1]| + |c|)‖`` (the
    rounding of the centre step and of ``c + Cm``, apart from the part that grows with
    ``|v − ĉ_k|``)."""
    n = R.shape[0]
    r2 = 0.0
    a2 = 0.0
    b2 = 0.0
    dk = ctr_k - c[k]
    for i in range(k):
        s = 0.0
        sa = 0.0
        sb = 0.0
        for j in range(i, k):
            x = Cm[k + 1, j]
            s += R[i, j] * x
            sa += abs(R[i, j]) * abs(x)
            sb += abs(R[i, j]) * (2.0 * abs(x) + abs(c[j]))
        s += R[i, k] * dk
        sa += abs(R[i, k]) * abs(dk)
        for j in range(k + 1, n):
            d = wv[j] - c[j]
            s += R[i, j] * d
            sa += abs(R[i, j]) * abs(d)
        r2 += s * s
        a2 += sa * sa
        b2 += sb * sb
    u = 1.1102230246251565e-16
    return np.sqrt(r2) + 2.0 * gamma * np.sqrt(a2) + u * (1.0 + 3.0 * u) * np.sqrt(b2)


@njit(cache=True)
def _tail_prunes(R, c, T, zix, K, used, k, wv, ctr, Dv, dl, Cm, Gm, ext, cst, p, U, slack,
                 rz, slope):
    """With row ``k`` set (``k > 0``): update the free rows' conditional centres and say
    whether the certified conditional tail lifts the node's bound ``p`` to ``U + slack``.

    With ``A = (RᵀR)[:k, :k] ⪰ diag(dl[k, :k])`` the free rows cost at least
    ``B + Σ Dv_i(x_i − c_i)²``, ``B = (x − c*)ᵀA(x − c*) >= Σ dl(x − c*)²``; the computed centre
    ``ĉ`` is off by ``e`` with ``√Σ dl e² <= ‖R_{<k,<k} e‖ <= r`` (:func:`parent_residual`), so
    ``B >= (√B̂ − r)² >= B̂ − 2r√B̂`` with ``B̂`` at ``ĉ``, and the free rows cost at least
    ``t − 2r√t`` where ``t <= B̂ + Σ Dv(x − c)²`` is the computed tail (:func:`cond_tail`).

    ``cst = [u0, 1 − η, γ]``: the tail is used only while ``p <= u0`` (the starting incumbent's
    value, at which the pruning slack is measured), shrunk by ``1 − η`` for its own rounding.
    ``r = rz[k] + |v − ĉ_k|·slope[k]`` bounds ``‖R_{<k,<k}(ĉ − c*)‖``: ``rz[k]`` from
    :func:`parent_residual` once per parent (``-1``: not yet), ``slope`` per row."""
    _centre_step(Cm, Gm, k, wv[k] - ctr[k])
    if p > cst[0]:
        return False
    t = cond_tail(T, zix, c, Dv, dl, Cm, k, _budget(K, used, k, wv[k]), ext) * cst[1]
    if p + t < U + slack:
        return False
    if rz[k] < 0.0:  # first check among these siblings
        rz[k] = parent_residual(R, c, Cm, wv, ctr[k], k, cst[2])
    r = (rz[k] + abs(wv[k] - ctr[k]) * slope[k]) * (1.0 + 1e-12)
    return t > r * r and p + t - 2.0 * r * np.sqrt(t) >= U + slack


@njit(cache=True)
def level_search(R, c, T, zix, K, grp, N, Dv, tail, slack, cert, ibest, ubest, ix, wv, P, ctr,
                 vc, up, dn, S, last, used, gcnt, alw, st, max_nodes, dl, Gm, Cm, ext, cst, rz,
                 slope):
    """Run the depth-first search for at most ``max_nodes`` nodes from the saved state.

    Parameters
    ----------
    R : (n, n) upper triangular; c : (n,) target, both in the search order; ``RᵀR`` is ``H``
        or, with a diagonal split, ``H − diag(Dv)``.
    T : (n, L) sorted levels of each row; zix : (n,) index of the zero level (-1: none).
    K : int, at most ``K`` nonzeros (``n`` for no limit); grp : (n,) N:M group of each row
        (-1: none); N : int, nonzeros allowed per group.
    Dv : (n,) the diagonal split (zeros: none); row ``k`` costs
        ``(R_kk(w_k − ĉ_k))² + Dv_k(w_k − c_k)²``.
    tail : (n + 1, n + 1), ``tail[k, b]`` a lower bound on the cost of rows ``< k`` when at most
        ``b`` of them are nonzero (zeros for the classical search).
    slack : a node is pruned when its bound reaches ``U + slack``.
    cert : (4,) constants of :func:`leaf_margin`.
    ibest : (n,) int64 incumbent level indices (updated in place); ubest : (2,) its computed
        value and the least certified leaf value (updated in place).
    ix … st : search state (:func:`new_state`).

    dl, Gm, Cm, ext, cst : the conditional tail (empty ``dl``: off). ``dl`` a diagonal with
        ``(RᵀR)[:k, :k] − diag(dl[:k]) ⪰ 0`` for every ``k``; ``Gm[i, k]`` the move of row
        ``i``'s conditional centre per unit of row ``k`` (``i < k``); ``Cm`` (n + 1, n) the
        centres' offsets per depth (state); ``ext`` scratch; ``cst``, ``rz`` (state) and
        ``slope`` of :func:`_tail_prunes`.
        A node the tail prunes moves on to its next sibling (the tail depends on the value).

    A pruned nonzero candidate prunes its farther siblings except the zero level, whose bound
    has a smaller tail (one more nonzero left below): it is visited next, then the row ends.

    Returns
    -------
    nodes visited in this call; ``st[1] == 1`` when the tree is exhausted.
    """
    n = R.shape[0]
    L = T.shape[1]
    nodes = 0
    if st[_DONE] == 1:
        return 0
    wref = np.empty(n)
    for i in range(n):
        wref[i] = T[i, ibest[i]]
    cond = dl.shape[0] == n + 1
    if st[_STARTED] == 0:
        if cond:
            for i in range(n):
                Cm[n, i] = 0.0
            rz[n - 1] = -1.0
        k = n - 1
        P[n] = 0.0
        for i in range(n):
            last[i] = n - 1
            S[i, n] = 0.0
        for g in range(gcnt.shape[0]):
            gcnt[g] = 0
        used[k] = 0
        alw[k] = 1 if _allowed(k, used, K, grp, gcnt, N) else 0
        _refresh_center(R, c, wv, S, last, k, ctr, wref, Dv, vc)
        _first(T, zix, k, vc, alw, ix, up, dn, wv)
        st[_STARTED] = 1
        st[_K] = k
    k = st[_K]
    U = ubest[0]
    while nodes < max_nodes:
        nodes += 1
        p = P[k + 1] + _term(R[k, k], wv[k], ctr[k], Dv[k], c[k])
        pt = p + tail[k, _budget(K, used, k, wv[k])]
        if pt < U + slack:
            if k > 0 and cond and _tail_prunes(R, c, T, zix, K, used, k, wv, ctr, Dv, dl, Cm,
                                               Gm, ext, cst, p, U, slack, rz, slope):
                pass  # the tail prunes this value only: on to the next sibling
            elif k > 0:
                P[k] = p
                nz = 1 if wv[k] != 0.0 else 0
                used[k - 1] = used[k] + nz
                if nz == 1 and grp[k] >= 0:
                    gcnt[grp[k]] += 1
                k -= 1
                rz[k] = -1.0
                _mark_descent(last, k)
                _refresh_center(R, c, wv, S, last, k, ctr, wref, Dv, vc)
                alw[k] = 1 if _allowed(k, used, K, grp, gcnt, N) else 0
                _first(T, zix, k, vc, alw, ix, up, dn, wv)
                continue
            else:
                lb = p - leaf_margin(R, c, wv, p, cert)
                if lb < ubest[1]:
                    ubest[1] = lb
                if p < U:
                    U = p
                    ubest[0] = p
                    for i in range(n):
                        ibest[i] = ix[i]
                        wref[i] = wv[i]
            if _next_sibling(T, k, vc, ix, up, dn, wv):
                continue
        elif wv[k] != 0.0 and _zero_ahead(zix, k, up, dn):
            # farther nonzero siblings are pruned too; the zero level may not be
            ix[k] = zix[k]
            wv[k] = 0.0
            up[k] = L
            dn[k] = -1
            continue
        # pruned (farther siblings too: same P, larger term) or row exhausted: go up
        while True:
            k += 1
            if k >= n:
                st[_DONE] = 1
                st[_K] = n
                return nodes
            if wv[k] != 0.0 and grp[k] >= 0:  # row k's value is about to change
                gcnt[grp[k]] -= 1
            if _next_sibling(T, k, vc, ix, up, dn, wv):
                break
    st[_K] = k
    return nodes


@njit(cache=True)
def open_bound(R, c, T, zix, K, Dv, tail, ubest, wv, P, ctr, vc, up, dn, used, st):
    """Least bound over the open nodes of a stopped search (``ubest[0]`` when exhausted): the
    current candidate and, at every row above, the next unvisited sibling and the zero level
    when it is still unvisited."""
    n = R.shape[0]
    best = ubest[0]
    if st[_DONE] == 1 or st[_STARTED] == 0:
        return best if st[_DONE] == 1 else 0.0
    k = st[_K]
    b = P[k + 1] + _term(R[k, k], wv[k], ctr[k], Dv[k], c[k]) + tail[k, _budget(K, used, k,
                                                                              wv[k])]
    if b < best:
        best = b
    for j in range(k, n):
        cands = (_peek(T, j, vc, up, dn), zix[j] if _zero_ahead(zix, j, up, dn) else -1)
        for i in cands:
            if i < 0:
                continue
            v = T[j, i]
            b = P[j + 1] + _term(R[j, j], v, ctr[j], Dv[j], c[j]) + tail[j, _budget(K, used, j,
                                                                                     v)]
            if b < best:
                best = b
    return best


def new_state(n: int, groups: int) -> dict:
    """Fresh search state arrays for :func:`level_search`."""
    return {
        "ix": np.zeros(n, dtype=np.int64),
        "wv": np.zeros(n, dtype=np.float64),
        "P": np.zeros(n + 1, dtype=np.float64),
        "ctr": np.zeros(n, dtype=np.float64),
        "vc": np.zeros(n, dtype=np.float64),
        "up": np.zeros(n, dtype=np.int64),
        "dn": np.zeros(n, dtype=np.int64),
        "S": np.zeros((n, n + 1), dtype=np.float64),
        "last": np.zeros(n, dtype=np.int64),
        "used": np.zeros(n, dtype=np.int64),
        "gcnt": np.zeros(max(1, groups), dtype=np.int64),
        "alw": np.zeros(n, dtype=np.int64),
        "st": np.zeros(3, dtype=np.int64),
        "Cm": np.zeros((n + 1, n), dtype=np.float64),
        "ext": np.zeros(n + 1, dtype=np.float64),
        "rz": np.full(n, -1.0, dtype=np.float64),
    }


@njit(cache=True)
def r_distance(R, c, wv, Dv):
    """``‖R(w − c)‖² + Σ Dv_k(w_k − c_k)²`` summed row by row in the search's order."""
    n = R.shape[0]
    tot = 0.0
    for k in range(n - 1, -1, -1):
        s = 0.0
        for j in range(n - 1, k - 1, -1):
            s += R[k, j] * (wv[j] - c[j])
        tot += s * s + Dv[k] * (wv[k] - c[k]) * (wv[k] - c[k])
    return tot


@njit(cache=True)
def nearest_plane(R, c, T, zix, K, grp, N, iref):
    """Sequential (nearest-plane, GPTQ-like) rounding over the levels from the top row down,
    spending the nonzero budget greedily; rows with ``R_kk = 0`` take ``iref``."""
    n = R.shape[0]
    ix = np.zeros(n, dtype=np.int64)
    wv = np.zeros(n)
    gcnt = np.zeros(n + 1, dtype=np.int64)
    used = 0
    for k in range(n - 1, -1, -1):
        g = grp[k]
        ok = used < K and (g < 0 or gcnt[g] < N)
        if not ok:
            ix[k] = zix[k]
        elif R[k, k] == 0.0:
            ix[k] = iref[k]
        else:
            s = 0.0
            for j in range(k + 1, n):
                s += R[k, j] * (wv[j] - c[j])
            ix[k] = _nearest_index(T[k], c[k] - s / R[k, k])
        wv[k] = T[k, ix[k]]
        if wv[k] != 0.0:
            used += 1
            if g >= 0:
                gcnt[g] += 1
    return ix


@njit(cache=True)
def one_opt(H, c, T, zix, K, grp, N, ix, max_sweeps):
    """Coordinate descent over levels in place, within the nonzero limits: best single-level
    moves, and (with a limit) best swaps of a nonzero to zero against a zero to a level."""
    n = H.shape[0]
    w = np.empty(n)
    for i in range(n):
        w[i] = T[i, ix[i]]
    g = np.zeros(n)
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += H[i, j] * (w[j] - c[j])
        g[i] = s
    ng = 1
    for i in range(n):
        if grp[i] + 1 > ng:
            ng = grp[i] + 1
    gcnt = np.zeros(ng, dtype=np.int64)
    used = 0
    for i in range(n):
        if w[i] != 0.0:
            used += 1
            if grp[i] >= 0:
                gcnt[grp[i]] += 1
    for _ in range(max_sweeps):
        improved = False
        for i in range(n):
            h = H[i, i]
            if h <= 0.0:
                continue
            # may input i be nonzero after the move (its own nonzero freed first)?
            own = 1 if w[i] != 0.0 else 0
            gi = grp[i]
            free = used - own < K and (gi < 0 or gcnt[gi] - own < N)
            if free:
                j = _nearest_index(T[i], w[i] - g[i] / h)
            else:
                j = zix[i]
            t = T[i, j] - w[i]
            if j != ix[i] and 2.0 * t * g[i] + t * t * h < -1e-15 * h * (1.0 + t * t):
                nz = 1 if T[i, j] != 0.0 else 0
                used += nz - own
                if gi >= 0:
                    gcnt[gi] += nz - own
                ix[i] = j
                w[i] = T[i, j]
                for r in range(n):
                    g[r] += t * H[r, i]
                improved = True
        if K < n or ng > 1:
            # swaps: a nonzero a goes to zero, a zero b takes its best level
            for a in range(n):
                if w[a] == 0.0 or zix[a] < 0:
                    continue
                ta = -w[a]
                da = 2.0 * ta * g[a] + ta * ta * H[a, a]
                best_d = -1e-15 * (1.0 + abs(da))
                best_b = -1
                best_j = -1
                for b in range(n):
                    if b == a or w[b] != 0.0 or H[b, b] <= 0.0:
                        continue
                    if grp[b] >= 0 and grp[b] != grp[a] and gcnt[grp[b]] >= N:
                        continue
                    gb = g[b] + ta * H[b, a]
                    j = _nearest_index(T[b], w[b] - gb / H[b, b])
                    tb = T[b, j] - w[b]
                    if tb == 0.0:
                        continue
                    d = da + 2.0 * tb * gb + tb * tb * H[b, b]
                    if d < best_d:
                        best_d, best_b, best_j = d, b, j
                if best_b >= 0:
                    b = best_b
                    tb = T[b, best_j] - w[b]
                    ix[a] = zix[a]
                    w[a] = 0.0
                    ix[b] = best_j
                    w[b] = T[b, best_j]
                    if grp[a] >= 0:
                        gcnt[grp[a]] -= 1
                    if grp[b] >= 0:
                        gcnt[grp[b]] += 1
                    for r in range(n):
                        g[r] += ta * H[r, a] + tb * H[r, b]
                    improved = True
        if not improved:
            break
    return ix


@njit(cache=True)
def objective(H, c, wv):
    """``(w − c)ᵀ H (w − c)``."""
    n = H.shape[0]
    tot = 0.0
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += H[i, j] * (wv[j] - c[j])
        tot += (wv[i] - c[i]) * s
    return tot if tot > 0.0 else 0.0


@njit(cache=True)
def order_box(G, H, c, T):
    """Chang & Han's box-aware greedy order with levels for integers (``G`` = inverse of ``H``,
    destroyed): from the top down, the variable whose nearest-level residual
    ``(1/G_jj)·(v_j − ĉ_j)²`` at its conditional centre is largest goes next, and its nearest
    level is fixed for the next centres (:mod:`solvers.quant.ordering` for integers)."""
    n = G.shape[0]
    alive = np.ones(n, dtype=np.bool_)
    y = np.zeros(n)
    order = np.empty(n, dtype=np.int64)
    tiny = 1e-300
    for level in range(n - 1, -1, -1):
        best = -1
        best_score = -1.0
        best_prec = -1.0
        best_v = 0.0
        for j in range(n):
            if not alive[j]:
                continue
            gjj = G[j, j] if G[j, j] > tiny else tiny
            prec = 1.0 / gjj
            s = 0.0
            for i in range(n):
                if alive[i]:
                    s += G[j, i] * y[i]
            ctr = c[j] - s
            v = T[j, _nearest_index(T[j], ctr)]
            score = prec * (v - ctr) * (v - ctr)
            if score > best_score or (score == best_score and prec > best_prec):
                best, best_score, best_prec, best_v = j, score, prec, v
        order[level] = best
        alive[best] = False
        d = best_v - c[best]
        for i in range(n):
            y[i] += H[i, best] * d
        gbb = G[best, best] if G[best, best] > tiny else tiny
        for i in range(n):
            if not alive[i]:
                continue
            f = G[i, best] / gbb
            if f == 0.0:
                continue
            for j in range(n):
                if alive[j]:
                    G[i, j] -= f * G[best, j]
    return order


# --------------------------------------------------------------------------------------------
# Support-first search (a plain nonzero limit; driver: solvers.levels.exact._support_first)
# --------------------------------------------------------------------------------------------
# Problem: ``min (w − w0)ᵀH(w − w0)`` over ``w_j ∈ L_j`` with at most ``K`` nonzero (zero a level
# of every input). The tree decides *supports*: a node marks some inputs pruned (``w_j = 0``) and
# some kept (allowed nonzero, any level incl. zero); ``P`` the pruned, ``Kc`` the rest.
#
# Node bound. With ``P`` at zero every completion has error ``e(P) + (x − w)ᵀ H_KK (x − w)`` over
# ``x`` on ``Kc`` (``w`` the continuous refit on ``Kc``, ``e(P)`` its error: both from the inverse
# ``G = (H_KK)⁻¹``, updated by one OBS step per prune on the rows not pruned). ``need`` more
# inputs of the undecided ``U`` must be pruned. Two valid bounds, the larger taken:
#
# 1. monotonicity (the pruning solver's saliency bound): pruning a set ``S`` costs at least its
#    largest OBS saliency ``w_j²/G_jj``, so at least the ``need``-th smallest over ``U``;
# 2. the split ``H ⪰ D`` (certified; the root's largest-volume one, ``exact._support_split``; Schur
#    complements keep ``H_KK ⪰ D_KK``) with the levels: ``(x − w)ᵀH_KK(x − w) >= Σ_K D_j(x_j −
#    w_j)²``; an input that stays costs at least ``q_j = D_j·min_l (l − w_j)²`` (its nearest
#    level), one pruned later ``D_j w_j²``: ``Σ_K q_j`` plus the ``need`` smallest extra costs
#    ``D_j w_j² − q_j`` over ``U``. This is the boxed/levelled pruning bound: without the levels
#    (``q = 0``) it is the pruning solver's separable bound.
#
# Leaves: once ``n − K`` inputs are pruned (or ``K`` kept, the rest pruned) the support ``S`` is
# fixed and the levels on it are solved exactly by Schnorr–Euchner (:func:`_se_levels`: the
# Cholesky factor of ``H_SS`` in the box-aware order of ``S`` (:func:`order_box`), target the
# refit on ``S``, levels visited in order of distance from each running centre, cut off at the
# incumbent), unless the refit's error plus the support's own split bound already reaches it.
#
# Floating point: bounds come from rank-one updated inverses (the pruning solver's margin ``μ``,
# :func:`solvers.prune.bounds.margin_for`, ``4nεκ`` clipped): a node is discarded only when
# ``bound·(1 − μ) >= U``, a leaf's Schnorr–Euchner search is cut off at ``(U − e)/(1 − μ)``
# (looser), so a solution whose true error is below ``U(1 − μ)`` is never discarded; the caller
# reports ``U·(1 − 2μ)`` (or the least open bound) as the lower bound.
#
# The kernel is resumable: the caller owns the stack (:func:`new_support_state`) and runs it in
# node-budgeted slices, checking the clock between them.

UNDECIDED, KEPT, PRUNED = 0, 1, 2


def new_support_state(n: int) -> dict:
    """Stack arrays of :func:`support_search` for ``n`` inputs."""
    return {"G": np.zeros((n + 1, n, n)), "w": np.zeros((n + 1, n)), "e": np.zeros(n + 1),
            "phase": np.zeros(n + 1, dtype=np.int64), "sel": np.zeros(n + 1, dtype=np.int64),
            "first": np.zeros(n + 1, dtype=np.int64), "stt": np.zeros(n, dtype=np.int64),
            "bnd": np.zeros(n + 1), "top": np.zeros(2, dtype=np.int64),
            "src": np.zeros(n + 1, dtype=np.int64)}


@njit(cache=True)
def _nearest_sq(row, x):
    """``min_l (l − x)²`` over the sorted ``row``."""
    v = row[_nearest_index(row, x)] - x
    return v * v


@njit(cache=True)
def _obs_child(G, w, G1, w1, j, stt, col):
    """The prune child of input ``j`` (``stt[j]`` already ``PRUNED``): ``G1``, ``w1`` receive the
    OBS-updated inverse and refit on the inputs not pruned (the rows and columns of pruned
    inputs are copied unchanged: stale, never read); returns the error increase ``w_j²/G_jj``
    (``inf`` for a non-positive pivot). ``col``: work space of ``n``. The update runs over whole
    contiguous rows (faster than gathering the inputs not pruned)."""
    g = G[j, j]
    if not g > 0.0:
        return np.inf
    n = w.shape[0]
    f = w[j] / g
    for a in range(n):
        col[a] = G[a, j] if stt[a] != PRUNED else 0.0
    for a in range(n):
        ca = col[a] / g
        w1[a] = w[a] - col[a] * f
        Ga = G[a]
        G1a = G1[a]
        for b in range(n):
            G1a[b] = Ga[b] - ca * col[b]
    w1[j] = 0.0
    return w[j] * f


@njit(cache=True)
def support_bound(G, w, e, stt, need, T, dvec, sal, ext):
    """The larger of the saliency and levelled split bounds of a node (section comment);
    ``sal``, ``ext``: work space of ``n``."""
    n = w.shape[0]
    base = e
    cnt = 0
    for j in range(n):
        if stt[j] == PRUNED:
            continue
        q = dvec[j] * _nearest_sq(T[j], w[j]) if dvec[j] > 0.0 else 0.0
        base += q
        if stt[j] == UNDECIDED:
            w2 = w[j] * w[j]
            sal[cnt] = w2 / G[j, j] if G[j, j] > 0.0 else 0.0
            ext[cnt] = max(dvec[j] * w2 - q, 0.0)
            cnt += 1
    if need <= 0:
        return base
    ext[:cnt].sort()
    for i in range(need):
        base += ext[i]
    sal[:cnt].sort()
    return max(e + sal[need - 1], base)


@njit(cache=True)
def _upper_cholesky(A):
    """``R`` upper triangular with ``A = RᵀR``, or None when a pivot is not positive."""
    m = A.shape[0]
    R = np.zeros((m, m))
    for j in range(m):
        s = A[j, j]
        for k in range(j):
            s -= R[k, j] * R[k, j]
        if s <= 0.0:
            return None
        R[j, j] = np.sqrt(s)
        for i in range(j + 1, m):
            s = A[j, i]
            for k in range(j):
                s -= R[k, j] * R[k, i]
            R[j, i] = s / R[j, j]
    return R


@njit(cache=True)
def _se_levels(R, t, T, cut, out):
    """``min ‖R(x − t)‖²`` over ``x_i ∈ T[i]`` (``R`` upper triangular, positive diagonal),
    below ``cut``: Schnorr–Euchner, rows from the last down, the levels of each row visited
    outwards from its centre. Writes the best level indices into ``out`` and returns their
    value, or ``inf`` when nothing is below ``cut`` (``out`` then unchanged)."""
    m = t.shape[0]
    L = T.shape[1]
    ctr = np.zeros(m)
    P = np.zeros(m + 1)
    up = np.zeros(m, dtype=np.int64)
    dn = np.zeros(m, dtype=np.int64)
    x = np.zeros(m, dtype=np.int64)
    best = np.inf
    k = m - 1
    ctr[k] = t[k]
    up[k] = _lower_index(T[k], ctr[k])
    dn[k] = up[k] - 1
    while True:
        # next candidate of row k: the nearer of T[k, dn] and T[k, up]
        i = -1
        if dn[k] >= 0 and (up[k] >= L or ctr[k] - T[k, dn[k]] <= T[k, up[k]] - ctr[k]):
            i = dn[k]
            dn[k] -= 1
        elif up[k] < L:
            i = up[k]
            up[k] += 1
        p = np.inf
        if i >= 0:
            d = R[k, k] * (T[k, i] - ctr[k])
            p = P[k + 1] + d * d
        if p >= cut:  # the remaining candidates are farther: row k is done
            k += 1
            if k == m:
                break
            continue
        x[k] = i
        P[k] = p
        if k == 0:
            cut = p
            best = p
            out[:] = x
            continue
        k -= 1
        s = 0.0
        for j in range(k + 1, m):
            s += R[k, j] * (T[j, x[j]] - t[j])
        ctr[k] = t[k] - s / R[k, k]
        up[k] = _lower_index(T[k], ctr[k])
        dn[k] = up[k] - 1
    return best


@njit(cache=True)
def _leaf(H, w0, T, zix, keep, mu, U, ix_out, dvec):
    """Exact levels on the support ``keep`` (the others zero) below ``U``: writes the level
    indices into ``ix_out`` and returns the full error (``inf`` if nothing below ``U``;
    ``-1`` if ``H_SS`` is not positive definite to working precision). Before the enumeration
    the support's own split bound ``e + Σ_S d_j·min_l (l − t_j)²`` (``t`` the refit, ``e`` its
    error, ``H_SS ⪰ diag d_S``) may already reach ``U``."""
    n = w0.shape[0]
    idx = np.flatnonzero(keep)
    m = idx.shape[0]
    A = np.empty((m, m))
    t = np.zeros(m)
    for p in range(m):
        for q in range(m):
            A[p, q] = H[idx[p], idx[q]]
        acc = 0.0
        for j in range(n):  # the dropped weights' pull on the kept ones
            if not keep[j]:
                acc += H[idx[p], j] * w0[j]
        t[p] = acc
    R = _upper_cholesky(A)
    if R is None:
        return -1.0
    # the refit t = w0_S + H_SS⁻¹ H_S,dropped w0_dropped: two triangular solves with R
    for p in range(m):
        s = t[p]
        for q in range(p):
            s -= R[q, p] * t[q]
        t[p] = s / R[p, p]
    for p in range(m - 1, -1, -1):
        s = t[p]
        for q in range(p + 1, m):
            s -= R[p, q] * t[q]
        t[p] = s / R[p, p]
    full = np.zeros(n)
    for p in range(m):
        t[p] += w0[idx[p]]
        full[idx[p]] = t[p]
    e = objective(H, w0, full)
    if e * (1.0 - mu) >= U:
        return np.inf
    lb = e
    for p in range(m):
        if dvec[idx[p]] > 0.0:
            lb += dvec[idx[p]] * _nearest_sq(T[idx[p]], t[p])
    if lb * (1.0 - mu) >= U:
        return np.inf
    Ts = np.empty((m, T.shape[1]))
    for p in range(m):
        Ts[p] = T[idx[p]]
    xs = np.zeros(m, dtype=np.int64)
    if m > 0:
        # the enumeration in the box-aware order of the support (a leaf's H_SS can be far
        # from diagonal: in input order one enumeration took ~4 ms on a MobileNetV2 problem)
        od = order_box(np.linalg.inv(A), A, t, Ts)
        Ap = np.empty((m, m))
        for a in range(m):
            for b in range(m):
                Ap[a, b] = A[od[a], od[b]]
        Rp = _upper_cholesky(Ap)
        if Rp is None:  # rounding in the reordered factorisation: the input order
            od = np.arange(m)
            Rp = R
        tp = t[od]
        Tp = Ts[od]
        xp = np.zeros(m, dtype=np.int64)
        v = _se_levels(Rp, tp, Tp, (U - e * (1.0 - mu)) / (1.0 - mu), xp)
        if not v < np.inf:
            return np.inf
        for a in range(m):
            xs[od[a]] = xp[a]
    for j in range(n):
        ix_out[j] = zix[j]
        full[j] = 0.0
    for p in range(m):
        ix_out[idx[p]] = xs[p]
        full[idx[p]] = Ts[p, xs[p]]
    return objective(H, w0, full)


@njit(cache=True)
def support_search(H, w0, T, zix, K, dvec, mu, Gs, ws, es, phase, sel, first, stt, bnd, top,
                   src, ibest, ubest, budget):
    """Run at most ``budget`` nodes of the support tree; returns the nodes run.

    ``Gs[0]``, ``ws[0]``, ``es[0]``: ``H⁻¹``, ``w0``, 0 (set by the caller); the node at depth
    ``p`` reads slot ``src[p]`` (a keep child shares its parent's: nothing changes). ``top[0]`` the
    current depth (``-1``: exhausted), ``top[1]`` 1 once exhausted. ``ibest`` / ``ubest[0]``
    the incumbent's level indices and computed error; ``ubest[1]`` the least bound of a leaf
    whose solve failed (``H_SS`` singular: that subtree then counts as open). ``bnd[p]``: the
    bound of the node at depth ``p`` (for the open-node bound).
    """
    n = w0.shape[0]
    p = top[0]
    nodes = 0
    keep = np.zeros(n, dtype=np.bool_)
    ix = np.zeros(n, dtype=np.int64)
    salw = np.empty(n)
    extw = np.empty(n)
    colw = np.empty(n)
    while p >= 0 and nodes < budget:
        if phase[p] == 0:
            nodes += 1
            npr = 0
            nkp = 0
            for j in range(n):
                if stt[j] == PRUNED:
                    npr += 1
                elif stt[j] == KEPT:
                    nkp += 1
            need = (n - K) - npr
            q = src[p]
            b = support_bound(Gs[q], ws[q], es[q], stt, need, T, dvec, salw, extw)
            bnd[p] = b
            if b * (1.0 - mu) >= ubest[0]:
                phase[p] = 3
                continue
            if need <= 0 or nkp >= K:
                for j in range(n):
                    keep[j] = stt[j] == KEPT or (need <= 0 and stt[j] == UNDECIDED)
                v = _leaf(H, w0, T, zix, keep, mu, ubest[0], ix, dvec)
                if v < 0.0:
                    ubest[1] = min(ubest[1], b * (1.0 - mu))
                elif v < ubest[0]:
                    ubest[0] = v
                    ibest[:] = ix
                phase[p] = 3
                continue
            # branch on the undecided input most costly to prune (keep it first)
            bj = -1
            bs = -1.0
            for j in range(n):
                if stt[j] == UNDECIDED:
                    g = Gs[q][j, j]
                    s = ws[q][j] * ws[q][j] / g if g > 0.0 else np.inf
                    if s > bs:
                        bs = s
                        bj = j
            sel[p] = bj
            first[p] = KEPT
            phase[p] = 1
            kind = KEPT
        elif phase[p] == 1:
            phase[p] = 2
            kind = PRUNED if first[p] == KEPT else KEPT
        else:
            if phase[p] == 2:
                stt[sel[p]] = UNDECIDED
            p -= 1
            continue
        j = sel[p]
        stt[j] = kind
        if kind == PRUNED:  # slot p + 1 is no ancestor's (their slots are <= their depth)
            q = src[p]
            es[p + 1] = es[q] + _obs_child(Gs[q], ws[q], Gs[p + 1], ws[p + 1], j, stt, colw)
            src[p + 1] = p + 1
        else:
            src[p + 1] = src[p]
        phase[p + 1] = 0
        p += 1
    top[0] = p
    if p < 0:
        top[1] = 1
    return nodes


@njit(cache=True)
def support_open_bound(bnd, phase, top, mu):
    """Least bound over the open subtrees, safe: the second child of every node on the stack
    still in its first child (phase 1; the node's bound covers it) and the top node when not
    yet evaluated (its parent's bound covers it). A node in phase 2 has its first child done
    and its second on the stack above it."""
    t = top[0]
    if t < 0:
        return np.inf
    if phase[0] == 0:
        return 0.0
    b = np.inf
    for p in range(t):
        if phase[p] == 1:
            b = min(b, bnd[p] * (1.0 - mu))
    if phase[t] == 0:
        b = min(b, bnd[t - 1] * (1.0 - mu))
    return b
