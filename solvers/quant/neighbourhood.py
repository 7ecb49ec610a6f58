"""Large-neighbourhood search: better incumbents by re-solving windows of variables exactly.

With every variable outside a window ``W`` fixed, the error is a quadratic in ``z_W`` alone,

    f(z) = (z_W − t)ᵀ H_WW (z_W − t) + const,   t = c_W − H_WW⁻¹ H_WF (z_F − c_F),

a box-constrained integer least-squares problem of ``|W|`` variables, which the compiled
Schnorr–Euchner search (:func:`solvers.quant.kernels.se_search`) solves exactly in well under a
millisecond for ``|W| ≈ 16–24`` at 4 bits. A window's solution replaces the incumbent only when
the *full* objective, recomputed from scratch, decreases; so the windows only steer and never
affect correctness (a singular ``H_WW`` gets a least-squares ``t``; if that makes the window
model inexact, its proposal is simply rejected). Windows are grown around a random seed
variable by coupling strength ``|H_ij| / √(H_ii H_jj)`` (mixed with random picks), the usual
recipe of LNS for quadratic integer programs.

Only incumbents come out of here: the exact solver's bounds never depend on it.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from .factor import ordered_cholesky
from .incumbents import objective
from .kernels import new_state, r_distance, se_search
from .ordering import order_variables

log = logging.getLogger(__name__)


def _window_solve(Hw: np.ndarray, t: np.ndarray, lo: int, hi: int, z0: np.ndarray,
                  max_nodes: int) -> np.ndarray:
    """Best codes of ``min (z − t)ᵀHw(z − t)`` found within ``max_nodes`` nodes, from ``z0``."""
    m = Hw.shape[0]
    order = order_variables(Hw, t, lo, hi, "box")
    R, _ = ordered_cholesky(Hw, order)
    tp = np.ascontiguousarray(t[order])
    zb = z0[order].astype(np.int64).copy()
    u0 = r_distance(R, tp, zb)
    ubest = np.array([u0, np.inf])
    st = new_state(m)
    se_search(R, tp, lo, hi, np.zeros(m + 1), 0.0, np.zeros(4), zb, ubest, st["z"], st["P"],
              st["ctr"], st["up"], st["dn"], st["S"], st["last"], st["st"], max_nodes)
    z = np.empty(m, dtype=np.int64)
    z[order] = zb
    return z


def improve(H: np.ndarray, c: np.ndarray, lo: int, hi: int, z: np.ndarray, *,
            time_limit: float = 1.0, window: int = 24, max_window: int = 48,
            max_nodes: int = 200_000, patience: int | None = None, restarts: bool = False,
            seed: int = 0, max_windows: int | None = None) -> tuple[np.ndarray, dict]:
    """Improve the codes ``z`` of ``min (z − c)ᵀH(z − c)`` on the box by window re-solves.

    Parameters
    ----------
    H, c, lo, hi : the problem in grid units.
    z : (n,) int starting codes (not modified).
    time_limit : seconds to spend.
    window : variables per window at the start (``min(window, n)``).
    max_window : after ``n`` windows in a row without improvement the window grows by 8 up to
        this size (larger windows escape deeper local optima, at more nodes each).
    max_nodes : node budget of one window's search.
    patience : stop after this many windows in a row without improvement at the largest
        window (default ``3n``).
    restarts : instead of stopping then, perturb the best point (a coupled group of
        ``window`` variables moved by ±1) and search on from there until ``time_limit``
        (iterated local search; the best point over all restarts is returned).
    seed : randomness of the window choice.
    max_windows : stop after this many window searches (``None``: no limit). Everything but the
        clock is deterministic, so a run that ends on this limit or on ``patience`` gives the
        same codes on a busy machine as on an idle one.

    Returns
    -------
    z : the best codes found (never worse than the input).
    stats : ``{"windows", "improvements", "restarts", "window", "seconds", "start", "end"}``
        (``start``, ``end``: ``f`` in grid units, ``(z − c)ᵀH(z − c)``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((80, 40)); H = X.T @ X
    >>> c = 3 * rng.standard_normal(40)
    >>> z0 = np.clip(np.rint(c), -8, 7).astype(np.int64)
    >>> z, st = improve(H, c, -8, 7, z0, time_limit=0.5)
    >>> st["end"] <= st["start"]
    True
    """
    t0 = time.perf_counter()
    n = H.shape[0]
    w = int(min(max(2, window), n))
    rng = np.random.default_rng(seed)
    z = np.array(z, dtype=np.int64)
    best = objective(H, c, z)
    start = best
    d = np.sqrt(np.maximum(np.diag(H), np.finfo(float).tiny))
    corr = np.abs(H) / np.outer(d, d)
    patience = 3 * n if patience is None else int(patience)
    windows = improvements = fails = nrestart = 0
    wmax = int(min(max(w, max_window), n))
    w0 = w
    zbest, vbest = z, best
    while time.perf_counter() - t0 < time_limit and (max_windows is None
                                                      or windows < max_windows):
        if w < wmax and fails >= n:
            w, fails = min(w + 8, wmax), 0
        if w >= wmax and fails >= patience:
            if not restarts:
                break
            # iterated local search: kick a coupled group of the best point by ±1
            grp = np.argsort(-(corr[int(rng.integers(n))] + 1e-3 * rng.random(n)))[:w0]
            z = zbest.copy()
            z[grp] = np.clip(z[grp] + rng.choice(np.array([-1, 1]), size=grp.size), lo, hi)
            best = objective(H, c, z)
            w, fails = w0, 0
            nrestart += 1
        seed_var = int(rng.integers(n))
        if rng.random() < 0.75:
            score = corr[seed_var] + 1e-3 * rng.random(n)
            W = np.argsort(-score)[:w]
        else:
            W = rng.choice(n, size=w, replace=False)
        W = np.sort(W)
        F = np.setdiff1d(np.arange(n), W, assume_unique=True)
        Hw = np.ascontiguousarray(H[np.ix_(W, W)])
        g = H[np.ix_(W, F)] @ (z[F] - c[F])
        try:
            shift = np.linalg.solve(Hw, g)
        except np.linalg.LinAlgError:
            shift = np.linalg.lstsq(Hw, g, rcond=None)[0]
        t = np.ascontiguousarray(c[W] - shift)
        zw = _window_solve(Hw, t, lo, hi, z[W], max_nodes)
        windows += 1
        if np.array_equal(zw, z[W]):
            fails += 1
            continue
        cand = z.copy()
        cand[W] = zw
        v = objective(H, c, cand)
        if v < best:
            z, best = cand, v
            fails = 0
            if v < vbest:
                zbest, vbest = z, v
                improvements += 1
        else:
            fails += 1
    z, best = zbest, vbest
    stats = {"windows": windows, "improvements": improvements, "restarts": nrestart,
             "window": w, "seconds": time.perf_counter() - t0, "start": start, "end": best}
    log.debug("LNS n=%d: %d windows, %d improvements, %.6g -> %.6g", n, windows, improvements,
              start, best)
    return z, stats
