"""Compiled kernels of the exact quantization solver (numba, ``cache=True``).

The search is the Schnorr–Euchner depth-first enumeration of box-constrained integer least
squares ``min_z ‖R(z − c)‖²`` with ``R`` upper triangular, ``lo <= z_i <= hi``. Levels are the
rows of ``R``, enumerated from the last row (level ``n−1``, the top of the tree) down to row 0.
With the levels ``> k`` fixed, the partial distance

    P_{k+1} = Σ_{i>k} (R(z − c))_i²

is the least value any completion can reach (the rows ``<= k`` can be zeroed by the continuous
minimiser), so it is a valid node bound. At level ``k`` the centre is
``ĉ_k = c_k − Σ_{j>k} R_kj (z_j − c_j) / R_kk`` and the candidate values are visited in order of
distance from ``ĉ_k`` inside the box (zig-zag clipped to ``[lo, hi]``). A row with ``R_kk = 0``
(a direction in the null space of ``H``) adds nothing; all its box values are visited, nearest
the incumbent's value first.

The search state lives in arrays owned by the caller, so the kernel runs in node-budgeted slices
and the caller checks the clock between slices (no Python call inside the loop). Every node costs
one centre update of ``O(n − k)`` flops, kept ``O(1)`` amortised by the partial-sum matrix of
Ghasemmehdi & Agrell (2011): ``S[k, j] = Σ_{l>=j} R_kl (z_l − c_l)`` is only recomputed for the
columns that changed since row ``k`` last used it.

An optional per-level bound vector ``tail`` adds to a node's bound a number that every completion
of the remaining rows must pay (see :mod:`solvers.quant.bounds`); with ``tail = 0`` the search is
the classical one.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# state slots (int64 array ``st``)
_K = 0  # current level
_DONE = 1  # 1 when the whole tree has been explored
_STARTED = 2  # 1 once the root has been set up


@njit(cache=True)
def _term(rkk: float, z: float, ctr: float) -> float:
    if rkk == 0.0:
        return 0.0
    d = rkk * (z - ctr)
    return d * d


@njit(cache=True)
def _first(ctr: float, lo: int, hi: int) -> int:
    v = np.rint(ctr)
    if v < lo:
        return lo
    if v > hi:
        return hi
    return int(v)


@njit(cache=True)
def _refresh_center(R, c, z, S, last, k, ctr, zref):
    """Centre of level ``k`` from the partial sums, updating the stale columns only."""
    n = R.shape[0]
    # columns last[k] .. k+1 have changed since row k last summed them
    j = last[k]
    acc = S[k, j + 1] if j + 1 < n + 1 else 0.0
    while j > k:
        acc += R[k, j] * (z[j] - c[j])
        S[k, j] = acc
        j -= 1
    last[k] = k
    rkk = R[k, k]
    if rkk == 0.0:
        ctr[k] = zref[k]
    else:
        ctr[k] = c[k] - S[k, k + 1] / rkk


@njit(cache=True)
def _mark_descent(last, k):
    """About to descend into row ``k`` after setting ``z[k+1]``: lazily propagate staleness.

    ``last[i]`` is the highest column changed since row ``i`` last summed; whatever is stale
    for row ``k`` is stale for row ``k−1`` too (it is reached only through row ``k``).
    """
    if last[k] < k + 1:
        last[k] = k + 1
    if k > 0 and last[k - 1] < last[k]:
        last[k - 1] = last[k]


@njit(cache=True)
def leaf_margin(R, c, z, p, cert):
    """Rounding margin of one leaf's computed value ``p`` (see :mod:`solvers.quant.certify`).

    ``cert = [2‖E‖_F, γ, 4u√G_c, γ_E]``; with ``d = z − c``, ``G = ‖|R||d|‖²`` and
    ``e = γ√G + 4u√G_c`` the margin is ``2‖E‖_F‖d‖² + 2(γ_E G + 2√p·e + e² + γp)``.
    """
    n = R.shape[0]
    G = 0.0
    dd = 0.0
    for k in range(n):
        dk = z[k] - c[k]
        dd += dk * dk
        s = 0.0
        for j in range(k, n):
            s += abs(R[k, j]) * abs(z[j] - c[j])
        G += s * s
    gamma = cert[1]
    e = gamma * np.sqrt(G) + cert[2]
    pp = p if p > 0.0 else 0.0
    return cert[0] * dd + 2.0 * (cert[3] * G + 2.0 * np.sqrt(pp) * e + e * e + gamma * pp)


@njit(cache=True)
def _next_sibling(z, up, dn, cv, k, lo, hi):
    """Move level ``k`` to its next value in zig-zag order around ``cv``; False when none is
    left."""
    cu = up[k] <= hi
    cd = dn[k] >= lo
    if not cu and not cd:
        return False
    if cu and cd:
        if abs(up[k] - cv) <= abs(cv - dn[k]):
            z[k] = up[k]
            up[k] += 1
        else:
            z[k] = dn[k]
            dn[k] -= 1
    elif cu:
        z[k] = up[k]
        up[k] += 1
    else:
        z[k] = dn[k]
        dn[k] -= 1
    return True


@njit(cache=True)
def _order_centre(ctr, pen, k):
    """Where the zig-zag of level ``k`` is centred: ``ĉ_k``, or ``ĉ_k + δ_k`` with a penalty."""
    if pen is None:
        return ctr[k]
    return ctr[k] + pen[2, k]


@njit(cache=True)
def _row_cost(R, ctr, pen, k, v):
    """Row ``k``'s cost at value ``v``: the square, plus the penalty if any."""
    t = _term(R[k, k], v, ctr[k])
    if pen is not None:
        t += pen[0, k] * (v - pen[1, k])
    return t


@njit(cache=True)
def _maps_inside(Z, z, box):
    """``box[0] <= Z·z <= box[1]`` (exact integer arithmetic)."""
    n = Z.shape[0]
    for i in range(n):
        v = 0
        for j in range(n):
            v += Z[i, j] * z[j]
        if v < box[0] or v > box[1]:
            return False
    return True


@njit(cache=True)
def se_search(R, c, lo, hi, tail, slack, cert, zbest, ubest, z, P, ctr, up, dn, S, last, st,
              max_nodes, leaf_map=None, leaf_box=None, pen=None):
    """Run the depth-first search for at most ``max_nodes`` nodes from the saved state.

    Parameters
    ----------
    R : (n, n) float64, upper triangular (rows with ``R_kk = 0`` are all zero).
    c : (n,) float64 target.
    lo, hi : int box.
    tail : (n + 1,) float64, ``tail[k]`` a lower bound on ``Σ_{i<k} (R(z − c))_i²`` valid for
        every node (0 for the classical search); ``tail[0] = 0``.
    slack : float, a node is pruned when its bound reaches ``U + slack`` (``U`` the incumbent's
        computed value): the global rounding margin, so that no point truly better than the
        incumbent is ever pruned on a rounding error.
    cert : (3,) float64, constants of :func:`leaf_margin`.
    zbest : (n,) int64, incumbent (updated in place). ``ubest`` (2,) float64: ``ubest[0]`` its
        computed value ``‖R(z − c)‖²`` (``inf`` when there is none), ``ubest[1]`` the least
        certified value ``p − leaf_margin`` over the leaves visited (both updated in place).
    z, P, ctr, up, dn, S, last, st : search state (see :func:`new_state`).
    max_nodes : int, node budget for this call.
    leaf_map, leaf_box : optional (n, n) int64 ``Z`` and (2,) int64 ``[lo, hi]``: a leaf counts
        (as incumbent and certificate) only when ``lo <= Z·z <= hi`` — the search over a
        relaxation of the feasible set in a reduced basis
        (:mod:`solvers.quant.reduced_search`). When the tree is exhausted, every *feasible*
        point better than the incumbent was reached, so the certificates of the feasible leaves
        still bound the optimum.
    pen : optional (3, n) float64 ``[a, b, δ]``: row ``k`` pays ``a_k·(z_k − b_k)`` on top of
        its square, a penalty ``>= 0`` on the box (``b_k`` the box end ``z_k`` is pushed
        against, ``a_k`` of the sign that makes it so; 0 for none), and its values are visited
        in zig-zag order around ``ĉ_k + δ_k`` with ``δ_k = −a_k / (2R_kk²)``, the minimiser of
        square plus penalty — so that farther siblings still cost more and pruning one prunes
        them (:mod:`solvers.quant.shifted_search`).

    Returns
    -------
    nodes : int, nodes visited in this call. ``st[1] == 1`` when the tree is exhausted.
    """
    n = R.shape[0]
    nodes = 0
    if st[_DONE] == 1:
        return 0
    if st[_STARTED] == 0:
        k = n - 1
        P[n] = 0.0
        for i in range(n):
            last[i] = n - 1
        for i in range(n):
            S[i, n] = 0.0
        _refresh_center(R, c, z, S, last, k, ctr, zbest)
        z[k] = _first(_order_centre(ctr, pen, k), lo, hi)
        up[k] = z[k] + 1
        dn[k] = z[k] - 1
        st[_STARTED] = 1
        st[_K] = k
    k = st[_K]
    U = ubest[0]
    while nodes < max_nodes:
        nodes += 1
        p = P[k + 1] + _term(R[k, k], z[k], ctr[k])
        if pen is not None:
            p += pen[0, k] * (z[k] - pen[1, k])
        if p + tail[k] < U + slack:
            if k > 0:
                P[k] = p
                k -= 1
                _mark_descent(last, k)
                _refresh_center(R, c, z, S, last, k, ctr, zbest)
                z[k] = _first(_order_centre(ctr, pen, k), lo, hi)
                up[k] = z[k] + 1
                dn[k] = z[k] - 1
                continue
            # a leaf: certify it, maybe a new incumbent, then its next sibling
            if leaf_map is None or _maps_inside(leaf_map, z, leaf_box):
                lb = p - leaf_margin(R, c, z, p, cert)
                if lb < ubest[1]:
                    ubest[1] = lb
                if p < U:
                    U = p
                    ubest[0] = p
                    for i in range(n):
                        zbest[i] = z[i]
            if _next_sibling(z, up, dn, _order_centre(ctr, pen, k), k, lo, hi):
                continue
        # pruned (farther siblings too: same P, larger term) or level exhausted: go up
        while True:
            k += 1
            if k >= n:
                st[_DONE] = 1
                st[_K] = n
                return nodes
            if _next_sibling(z, up, dn, _order_centre(ctr, pen, k), k, lo, hi):
                break
    st[_K] = k
    return nodes


@njit(cache=True)
def open_bound(R, lo, hi, tail, ubest, z, P, ctr, up, dn, st, pen=None):
    """Least bound over the open nodes of a stopped search (``ubest`` when exhausted).

    The open nodes are the current candidate at level ``k`` (and its farther siblings, whose
    bounds are larger) and, at every level above, the unvisited siblings: the values beyond
    ``up`` and below ``dn``, on each side the nearest the cheapest (the row cost is convex with
    its minimum inside the visited interval). ``pen`` as in :func:`se_search`.
    """
    n = R.shape[0]
    best = ubest[0]
    if st[_DONE] == 1 or st[_STARTED] == 0:
        return best if st[_DONE] == 1 else 0.0
    k = st[_K]
    b = P[k + 1] + _row_cost(R, ctr, pen, k, z[k]) + tail[k]
    if b < best:
        best = b
    for j in range(k + 1, n):
        if up[j] <= hi:
            b = P[j + 1] + _row_cost(R, ctr, pen, j, up[j]) + tail[j]
            if b < best:
                best = b
        if dn[j] >= lo:
            b = P[j + 1] + _row_cost(R, ctr, pen, j, dn[j]) + tail[j]
            if b < best:
                best = b
    return best


def new_state(n: int) -> dict:
    """Fresh search state arrays for :func:`se_search`."""
    return {
        "z": np.zeros(n, dtype=np.int64),
        "P": np.zeros(n + 1, dtype=np.float64),
        "ctr": np.zeros(n, dtype=np.float64),
        "up": np.zeros(n, dtype=np.int64),
        "dn": np.zeros(n, dtype=np.int64),
        "S": np.zeros((n, n + 1), dtype=np.float64),
        "last": np.zeros(n, dtype=np.int64),
        "st": np.zeros(3, dtype=np.int64),
    }


@njit(cache=True)
def r_distance(R, c, z):
    """``‖R(z − c)‖²`` summed row by row in the same order as the search."""
    n = R.shape[0]
    tot = 0.0
    for k in range(n - 1, -1, -1):
        s = 0.0
        for j in range(n - 1, k - 1, -1):
            s += R[k, j] * (z[j] - c[j])
        tot += s * s
    return tot


# --------------------------------------------------------------------------------------------
# Set-up kernels: factorisation, ordering and incumbents (compiled so that small problems cost
# microseconds, not milliseconds of Python overhead)
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def cholesky_rows(Hp, rtol):
    """Upper ``R`` with ``Hp ≈ RᵀR``; rows whose Schur pivot is ``<= rtol·Hp_kk`` stay zero.

    Returns ``(R, rank)``. See :func:`solvers.quant.factor.ordered_cholesky`.
    """
    n = Hp.shape[0]
    R = np.zeros((n, n))
    rank = 0
    for k in range(n):
        p = Hp[k, k]
        for i in range(k):
            p -= R[i, k] * R[i, k]
        if p <= rtol * Hp[k, k] or p <= 0.0:
            continue
        r = np.sqrt(p)
        R[k, k] = r
        for j in range(k + 1, n):
            s = Hp[k, j]
            for i in range(k):
                s -= R[i, k] * R[i, j]
            R[k, j] = s / r
        rank += 1
    return R, rank


@njit(cache=True)
def shifted_inverse(H, shift):
    """``((H + shift·I)⁻¹, ok)`` through its Cholesky factor
    (:func:`cholesky_rows`); ``ok`` is False when a pivot is not
    positive."""
    n = H.shape[0]
    Hs = H.copy()
    for i in range(n):
        Hs[i, i] += shift
    R, rank = cholesky_rows(Hs, 0.0)
    if rank < n:
        return np.zeros((n, n)), False
    # Ri = R⁻¹ (upper triangular) by back substitution, then G = Ri Riᵀ
    Ri = np.zeros((n, n))
    for j in range(n):
        Ri[j, j] = 1.0 / R[j, j]
        for i in range(j - 1, -1, -1):
            s = 0.0
            for m in range(i + 1, j + 1):
                s -= R[i, m] * Ri[m, j]
            Ri[i, j] = s / R[i, i]
    G = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            s = 0.0
            for k in range(j, n):
                s += Ri[i, k] * Ri[j, k]
            G[i, j] = s
            G[j, i] = s
    return G, True


@njit(cache=True)
def babai_rows(R, c, lo, hi, zref):
    """Box-clipped nearest plane for ``‖R(z − c)‖²`` (rows with ``R_kk = 0`` take ``zref``)."""
    n = R.shape[0]
    z = np.zeros(n, dtype=np.int64)
    for k in range(n - 1, -1, -1):
        if R[k, k] == 0.0:
            z[k] = zref[k]
            continue
        s = 0.0
        for j in range(k + 1, n):
            s += R[k, j] * (z[j] - c[j])
        z[k] = _first(c[k] - s / R[k, k], lo, hi)
    return z


@njit(cache=True)
def one_opt_moves(H, c, z, lo, hi, max_sweeps):
    """Integer coordinate descent in place: best single-coordinate moves until none helps."""
    n = H.shape[0]
    g = np.zeros(n)
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += H[i, j] * (z[j] - c[j])
        g[i] = s
    for _ in range(max_sweeps):
        improved = False
        for i in range(n):
            h = H[i, i]
            if h <= 0.0:
                continue
            t = _first(z[i] - g[i] / h, lo, hi) - z[i]
            if t != 0 and 2.0 * t * g[i] + t * t * h < -1e-15 * h:
                z[i] += t
                for j in range(n):
                    g[j] += t * H[j, i]
                improved = True
        if not improved:
            break
    return z


@njit(cache=True)
def order_from_inverse(G, H, c, lo, hi, box):
    """Top-down greedy ordering on the inverse ``G`` (destroyed). See
    :mod:`solvers.quant.ordering`; ``box`` selects Chang–Han (else V-BLAST)."""
    n = G.shape[0]
    alive = np.ones(n, dtype=np.bool_)
    y = np.zeros(n)
    order = np.empty(n, dtype=np.int64)
    tiny = 1e-300
    for level in range(n - 1, -1, -1):
        best = -1
        best_score = -1.0
        best_prec = -1.0
        best_z = 0.0
        for j in range(n):
            if not alive[j]:
                continue
            gjj = G[j, j] if G[j, j] > tiny else tiny
            prec = 1.0 / gjj
            score = 0.0
            zr = 0.0
            if box:
                s = 0.0
                for i in range(n):
                    if alive[i]:
                        s += G[j, i] * y[i]
                ctr = c[j] - s
                zr = float(_first(ctr, lo, hi))
                score = prec * (zr - ctr) * (zr - ctr)
            if score > best_score or (score == best_score and prec > best_prec):
                best, best_score, best_prec, best_z = j, score, prec, zr
        order[level] = best
        alive[best] = False
        if box:
            d = best_z - c[best]
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
