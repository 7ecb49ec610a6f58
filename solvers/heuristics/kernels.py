"""Compiled inner loops of the greedy one-weight-at-a-time methods (OBQ, OBS greedy).

Both keep, per channel, the inverse Hessian ``Hinv`` of the weights still free (the *active*
set ``F``) and repeat: score every active weight, pick one, apply the OBS update to the others,
and remove the picked row and column from ``Hinv``::

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
