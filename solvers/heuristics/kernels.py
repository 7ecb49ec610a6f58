"""Compiled inner loops: the greedy one-weight-at-a-time methods (OBQ, OBS greedy) and the
element-wise part of AdaRound's Adam step (see the section at the end).

The greedy methods keep, per channel, the inverse Hessian ``Hinv`` of the weights still free
(the *active* set ``F``) and repeat: score every active weight, pick one, apply the OBS update
to the others, and remove the picked row and column from ``Hinv``::

    w_F   −= (w_q − target_q) / Hinv_qq · Hinv_{F,q}
    Hinv  ← Hinv − Hinv_{:,q} Hinv_{q,:} / Hinv_qq        (on F × F only)

``Hinv`` is kept compact (``Hinv[:m, :m]`` over ``act[:m]``; a removed slot is refilled by the
last active row and column), so a step costs ``|F|²`` contiguous operations and a whole channel
``~n³/3``. ``Hinv[t, t]`` belongs to weight ``act[t]``. Ties in the score go to the lower index.
The functions work in place on one channel and can be resumed (``nsteps`` steps per call), so
the caller can check a time limit between calls.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _eliminate(A, act, w, r, m, p, coef):
    """Apply the OBS update for the weight at position ``p`` and drop it from the active block.

    ``A[:m, :m]`` is ``H_F⁻¹`` over the active weights ``act[:m]`` (kept compact: the last
    active row and column move into the freed slot). ``w_F −= coef·A[:, p]``, then
    ``A ← A − A[:, p] A[p, :] / A[p, p]`` on the remaining block. Returns ``m − 1``.
    """
    d = A[p, p]
    for t in range(m):
        r[t] = A[t, p]
    for t in range(m):
        if t != p:
            w[act[t]] -= r[t] * coef
    last = m - 1
    if p != last:
        for t in range(m):
            A[p, t] = A[last, t]
        for t in range(m):
            A[t, p] = A[t, last]
        r[p] = r[last]
        act[p] = act[last]
    m = last
    for a in range(m):
        ra = r[a] / d
        if ra != 0.0:
            for b in range(m):
                A[a, b] -= ra * r[b]
    return m


@njit(cache=True)
def obq_steps(w, Hinv, act, m, codes, scale, zmin, zmax, outlier, greedy, nsteps, floor_d):
    """Quantize up to ``nsteps`` weights of one channel; returns the new active count ``m``.

    ``greedy``: pick the least ``(Q(w_i) − w_i)²/Hinv_ii`` (or, with ``outlier``, the largest
    rounding error once some weight is more than half a step outside the grid); otherwise the
    lowest active index (natural order).
    """
    half = 0.25 * scale * scale
    r = np.empty(max(m, 1))
    for _ in range(nsteps):
        if m == 0:
            break
        best_pos = -1
        best = np.inf
        big_pos = -1
        big = -1.0
        low_pos = -1
        for t in range(m):
            i = act[t]
            z = min(max(np.rint(w[i] / scale), zmin), zmax)
            e = (w[i] - z * scale) ** 2
            if low_pos < 0 or i < act[low_pos]:
                low_pos = t
            d = max(Hinv[t, t], floor_d)
            sc = e / d
            if sc < best or (sc == best and i < act[best_pos]):
                best, best_pos = sc, t
            if e > big or (e == big and i < act[big_pos]):
                big, big_pos = e, t
        if not greedy:
            pos = low_pos
        elif outlier and big > half:
            pos = big_pos
        else:
            pos = best_pos
        j = act[pos]
        z = min(max(np.rint(w[j] / scale), zmin), zmax)
        q = z * scale
        codes[j] = int(z)
        d = max(Hinv[pos, pos], floor_d)
        Hinv[pos, pos] = d
        m = _eliminate(Hinv, act, w, r, m, pos, (w[j] - q) / d)
        w[j] = q
    return m


@njit(cache=True)
def obs_steps(w, Hinv, act, m, group, group_left, nsteps, floor_d):
    """Remove up to ``nsteps`` weights of one channel greedily; returns the new active count.

    Score ``w_i²/Hinv_ii``; a weight whose group has no removals left (``group_left[g] == 0``,
    the N:M budget) is skipped. Removed weights are set to 0.
    """
    r = np.empty(max(m, 1))
    for _ in range(nsteps):
        best_pos = -1
        best = np.inf
        for t in range(m):
            i = act[t]
            if group_left[group[i]] <= 0:
                continue
            sc = w[i] * w[i] / max(Hinv[t, t], floor_d)
            if best_pos < 0 or sc < best or (sc == best and i < act[best_pos]):
                best, best_pos = sc, t
        if best_pos < 0:
            break
        j = act[best_pos]
        d = max(Hinv[best_pos, best_pos], floor_d)
        Hinv[best_pos, best_pos] = d
        group_left[group[j]] -= 1
        m = _eliminate(Hinv, act, w, r, m, best_pos, w[j] / d)
        w[j] = 0.0
    return m


# --------------------------------------------------------------------------------------------
# AdaRound: the element-wise part of one Adam step, fused (the matrix product stays in BLAS)
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def adaround_residual(V, F, s, zmin, zmax, W0, zeta, gamma, D):
    """``D = s·clip(F + h(V), zmin, zmax) − W0`` with the rectified sigmoid ``h``."""
    C, n = V.shape
    for c in range(C):
        for i in range(n):
            sig = 0.5 * (1.0 + np.tanh(0.5 * V[c, i]))
            h = min(max(sig * (zeta - gamma) + gamma, 0.0), 1.0)
            x = min(max(F[c, i] + h, zmin), zmax)
            D[c, i] = x * s[c] - W0[c, i]


@njit(cache=True)
def adaround_adam(V, G, F, grad_scale, zmin, zmax, zeta, gamma, reg_weight, beta, m, v, lr,
                  b1, b2, eps, t):
    """One Adam step on ``V`` from ``G = D·H``; ``beta < 0`` means no regulariser (warm-up).

    ``dL/dV = [grad_scale·G·[zmin ≤ x ≤ zmax] + λ·d(1 − |2h − 1|^β)/dh] · dh/dV``, with
    ``dh/dV = (ζ − γ)σ(1 − σ)`` where the rectified sigmoid is not clipped, else 0.
    """
    C, n = V.shape
    c1 = 1.0 - b1**t
    c2 = 1.0 - b2**t
    for c in range(C):
        gs = grad_scale[c]
        for i in range(n):
            sig = 0.5 * (1.0 + np.tanh(0.5 * V[c, i]))
            raw = sig * (zeta - gamma) + gamma
            h = min(max(raw, 0.0), 1.0)
            x = F[c, i] + h
            g = G[c, i] * gs if (x >= zmin and x <= zmax) else 0.0
            if beta >= 0.0 and reg_weight > 0.0:
                u = 2.0 * h - 1.0
                au = abs(u)
                if au > 0.0:
                    g -= reg_weight * 2.0 * beta * au ** (beta - 1.0) * (1.0 if u > 0 else -1.0)
            if raw > 0.0 and raw < 1.0:
                g *= (zeta - gamma) * sig * (1.0 - sig)
            else:
                g = 0.0
            m[c, i] = b1 * m[c, i] + (1.0 - b1) * g
            v[c, i] = b2 * v[c, i] + (1.0 - b2) * g * g
            V[c, i] -= lr * (m[c, i] / c1) / (np.sqrt(v[c, i] / c2) + eps)
