"""The perspective node bound of the pruning branch-and-bound (numba, ``cache=True``).

At a node (decided-kept ``F``, undecided ``U``, refit ``w`` on ``K = F ∪ U``, error ``e`` of the
decided prunes) every leaf below has error ``e + (x − w)ᵀ H_KK (x − w)`` for some ``x`` supported
on ``K`` that keeps at most ``m_g`` undecided inputs of each group ``g``. With the certified split
``H ⪰ D`` (:func:`solvers.prune.bounds.diagonal_split`) write ``H_KK = A + D_U`` (``D`` on ``U``
only, ``A ⪰ 0``) and replace each separable term ``d_j (x_j − w_j)²`` by its convex hull over
"``x_j = 0`` or ``z_j = 1``", the *perspective* ``d_j (x_j²/z_j − 2 x_j w_j + w_j²)``, with
``z_j ∈ [0, 1]`` and ``Σ_{j ∈ U∩g} z_j ≤ m_g``. This relaxation (Frangioni & Gentile 2006;
Atamtürk & Gómez; Dong, Chen & Linderoth 2015; the node relaxation of L0BnB) is at least the
separable bound of :func:`solvers.prune.kernels.node_bound` and usually several times larger.

Certified by weak duality, for **any** ``y ∈ R^U``
------------------------------------------------------
With ``C = (A/A_FF)_UU = S_UU − D_U`` (``S = H/H_FF``, the forward side of the node) and
``u = C y``, Fenchel's ``d x²/z ≥ 2 v x − z v²/d`` with ``v = D w − u`` and minimising over ``x``
and ``z`` gives::

    relaxation >= h(y) = e + Σ_U d_j w_j² − 2 uᵀw_U − yᵀu − Σ_g top_{m_g}( (d_j w_j − u_j)² / d_j )

(``top_m``: sum of the ``m`` largest over ``U ∩ g``). ``y = 0`` is the separable bound; the best
``y`` is the relaxation's optimum. No inverse enters ``h``: rounding in ``y`` (from an
approximate solve) costs nothing, and the evaluation error of ``h`` itself is bounded from
absolute values and subtracted (:func:`perspective_value`).

Choosing ``y`` (alternating minimisation of the primal, warm-started down the tree): given
weights ``a_j = |x_j|·√d_j`` the best ``z`` water-fills ``z_j = min(1, a_j/τ_g)`` per group, and
given ``z`` the best ``x = w + y`` solves ``(C + D Z⁻¹) y = D (I − Z⁻¹) w`` (a positive definite
system: ``C + D Z⁻¹ ⪰ S_UU``). A node inherits its parent's ``a``, so one iteration per node
usually suffices.

Each undecided ``j`` also gets the bounds of its two children from the same ``y`` (forcing
``z_j = 0`` or ``z_j = 1`` changes only the ``top`` term), used for screening and branching.
"""

from __future__ import annotations

import numpy as np
from numba import njit

UNDECIDED = 0
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
    # Cholesky in place (lower)
    for a in range(nf):
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


@njit(cache=True)
def perspective_bound(S, w, e, st, mkeep, M, d, warm, iters, target, out_sal, out_kb):
    """Best certified ``h(y)`` over ``iters`` alternating steps (``-inf`` when not applicable).

    ``warm[j]`` holds the water-filling weights ``a_j`` of the previous solve (read, then
    overwritten for the children; zeros mean "start from ``|w_j|·√d_j``"). Stops early once the
    bound reaches ``target``, or once the geometric extrapolation of its last two gains says it
    will not. ``out_sal[j]`` / ``out_kb[j]`` are raised to the bound of the
    children that prune / keep ``j`` (computed from the same ``y``, so equally certified).
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
    best, _ = perspective_value(S, d, w, e, idx, gid, mkeep, ybest, terms)
    gain1 = 0.0
    gain2 = 0.0
    for it in range(iters):
        if best >= target:
            break
        if it >= 2 and np.isfinite(target):
            # the steps shrink about geometrically: stop when their extrapolated sum cannot
            # reach the target (the node will be branched anyway)
            rate = min(gain1 / gain2, 0.9) if gain2 > 0.0 else 0.0
            if gain1 * rate / (1.0 - rate) < target - best:
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
        if not solve_y(S, d, w, idx, z, y):
            break
        v, _ = perspective_value(S, d, w, e, idx, gid, mkeep, y, terms)
        gain2 = gain1
        gain1 = max(v - best, 0.0)
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
    best, _ = perspective_value(S, d, w, e, idx, gid, mkeep, ybest, terms)
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
