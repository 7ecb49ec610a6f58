"""The exact search re-centred on the box-constrained continuous optimum, for a binding box.

When the box ``[lo, hi]`` cuts the unconstrained optimum off (at 8 bits on real layers: a scale
chosen below ``max|w|/127`` clips a few weights, whose targets ``c_i = w0_i / s`` lie outside the
box), the incumbent's error ``U`` is far above the unconstrained minimum, and the ellipsoid
``(z − c)ᵀH(z − c) < U`` holds astronomically many lattice points (10¹⁴–10⁴⁰ on MobileNetV2's
time-limited chunks at n = 32) which the Schnorr–Euchner search, whose node bound ignores the box
below the node, must wade through. No change of basis helps: those points are really there.

Let ``x`` be the minimiser of the continuous relaxation over the box and ``g = H(x − c)`` its
gradient. For every ``z`` (exact identity of quadratics)::

    f(z) = (z − c)ᵀH(z − c) = f(x) + (z − x)ᵀH(z − x) + 2gᵀ(z − x).

At ``x`` (KKT) ``g_i = 0`` where ``x_i`` is inside the box, ``g_i <= 0`` where ``x_i = hi``,
``g_i >= 0`` where ``x_i = lo``: each term ``a_i(z_i − b_i)`` with ``a_i = 2g_i`` and ``b_i`` the
active end is ``>= 0`` on the box. So ``f(z) − f(x)`` is a sum of squared rows of ``R(z − x)``
plus per-coordinate penalties, every one nonnegative on the box: the search
(:func:`solvers.quant.kernels.se_search` with ``pen``) keeps its node bound (fixed rows' sum) and
its pruning, but the threshold is now ``U − f(x)``, the integrality gap (units to tens), instead
of ``U``; and the penalties add the box's price to every node. On those chunks the search then
finishes in thousands of nodes instead of not in 10⁸.

Certification (``x``, ``g`` are float64, so the identity above holds for the true ``g`` only):
the search runs on ``‖R(z − x)‖² + Σ_A a_i(z_i − b_i)`` with ``a_i`` the computed ``2ĝ_i`` on the
active set ``A`` (those of the right sign; ``a_i = 0`` elsewhere), certified like the original
search by :class:`solvers.quant.certify.Certifier` centred on ``x`` (exact floats), plus
``pen_err`` for the rounding of the penalties. Then for every box point

    f(z) >= f̲(x) + [‖R(z − x)‖² + Σ_A a_i(z_i − b_i)] − E,
    E = 2Σ_A |g_i − ĝ_i|·(hi − lo) + 2Σ_{i∉A} (|ĝ_i| + |g_i − ĝ_i|)·W_i,

``W_i = max(|lo − x_i|, |hi − x_i|)``, ``|g − ĝ|`` bounded entrywise by :func:`_gradient_error`
and ``f̲(x)`` a proved lower bound of ``f(x)`` (:func:`_value_interval`). The bound of an
exhausted search is ``f̲(x) + min(leaf certificates) − E``; of a stopped one the open nodes'
bound enters as usual. ``x`` need not be optimal for any of this: a poor ``x`` only makes the
search slower and ``E`` larger.
"""

from __future__ import annotations

import numpy as np

from ..stopwatch import passed
from .certify import U_ROUND, Certifier, gamma
from .kernels import leaf_margin, new_state, open_bound, r_distance, se_search

#: iterations of the projected Newton method for the box relaxation
BOX_QP_ITERATIONS = 100


def box_relaxation(H: np.ndarray, c: np.ndarray, lo: float, hi: float,
                   deadline: float | None = None) -> np.ndarray:
    """Approximate minimiser of ``(x − c)ᵀH(x − c)`` over ``x ∈ [lo, hi]ⁿ`` (``H`` positive
    definite): projected Newton steps on the free variables with backtracking, from the
    clipped ``c``, until converged, ``BOX_QP_ITERATIONS`` steps or ``deadline``
    (:func:`solvers.stopwatch.passed`); coordinates within ``1e-12`` relative of a box end are
    put on it exactly. Any point of the box is a valid answer for the uses here.

    Examples
    --------
    >>> import numpy as np
    >>> H = np.array([[2.0, 1.0], [1.0, 2.0]])
    >>> box_relaxation(H, np.array([3.0, 0.0]), -1.0, 1.0).round(6).tolist()
    [1.0, 1.0]
    """
    n = c.size
    x = np.clip(c, lo, hi)

    def f(v):
        d = v - c
        return float(d @ H @ d)

    fx = f(x)
    tol = 1e-12 * max(1.0, abs(lo), abs(hi))
    for _ in range(BOX_QP_ITERATIONS):
        if passed(deadline):
            break
        g = H @ (x - c)
        free = ((x > lo) & (x < hi)) | ((x <= lo) & (g < 0)) | ((x >= hi) & (g > 0))
        if not free.any():
            break
        F = np.flatnonzero(free)
        d = np.zeros(n)
        try:
            d[F] = -np.linalg.solve(H[np.ix_(F, F)], g[F])
        except np.linalg.LinAlgError:
            break
        step, improved = 1.0, False
        while step > 1e-8:
            xn = np.clip(x + step * d, lo, hi)
            fn = f(xn)
            if fn < fx:
                improved = True
                break
            step *= 0.5
        if not improved:
            break
        moved = float(np.max(np.abs(xn - x)))
        x, fx = xn, fn
        if moved <= tol:
            break
    x = np.where(np.abs(x - lo) <= tol, float(lo), x)
    return np.where(np.abs(x - hi) <= tol, float(hi), x)


def _gradient_error(H: np.ndarray, x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Entrywise bound on ``|g − ĝ|``, ``g = H(x − c_true)`` and ``ĝ = fl(H·fl(x − c))``, where
    the float ``c`` is within ``u|c|`` of the true ``c``: ``2γ_{n+2}·|H|(|x| + 2|c|)``
    (the subtraction and the true ``c`` cost ``u(|x| + 2|c|)`` per entry, the product
    ``γ_n``; doubled for safety)."""
    n = c.size
    return 2.0 * gamma(n + 2) * (np.abs(H) @ (np.abs(x) + 2.0 * np.abs(c)))


def _value_interval(H: np.ndarray, x: np.ndarray, c: np.ndarray) -> tuple[float, float]:
    """``(f̂, err)`` with ``|f(x) − f̂| <= err``, ``f(x) = (x − c_true)ᵀH(x − c_true)``.

    With ``d = fl(x − c)`` and ``|d − (x − c_true)| <= e = u(|x| + 2|c|)``: the value is
    ``dᵀHd`` within ``2eᵀ|H||d| + eᵀ|H|e``, and ``dᵀHd`` in float within
    ``γ_{2n}·|d|ᵀ|H||d|``; all doubled for safety.
    """
    n = c.size
    d = x - c
    e = U_ROUND * (np.abs(x) + 2.0 * np.abs(c))
    A = np.abs(H)
    ad = np.abs(d)
    err = gamma(2 * n) * float(ad @ A @ ad) + 2.0 * float(e @ A @ ad) + float(e @ A @ e)
    return float(d @ H @ d), 2.0 * err


class ShiftedSearch:
    """The search of ``f(z) − f(x)`` around the box relaxation's minimiser ``x`` (module doc),
    in the original tree's order and factor ``R``, run in slices beside it.

    Build it with :meth:`build` (``None`` when the box does not bind at ``x``). Values inside
    are in the units of ``(z − c)ᵀH(z − c)`` less ``f(x)``; :meth:`bound` and incumbents are
    exchanged in the original ones (codes in the order of the live inputs).
    """

    def __init__(self, R, xp, pen, order, lo, hi, certifier, slack, base, z0):
        self.R, self.xp, self.pen, self.order = R, xp, pen, order
        self.lo, self.hi = lo, hi
        self.certifier, self.slack, self.base = certifier, slack, base
        n = R.shape[0]
        self.zbest = z0
        u0 = self._value(z0)
        self.ubest = np.array([u0, u0 - leaf_margin(R, xp, z0, u0, certifier.cert)])
        self.tail = np.zeros(n + 1)
        self.state = new_state(n)
        self.nodes = 0

    @classmethod
    def build(cls, H: np.ndarray, c: np.ndarray, R: np.ndarray, order: np.ndarray, lo: int,
              hi: int, z0: np.ndarray, deadline: float | None = None) -> ShiftedSearch | None:
        """``H``, ``c`` of the live inputs, ``R`` their full-rank factor in ``order``
        (``H[π, π] ≈ RᵀR``), ``z0`` the incumbent (input order); ``deadline`` bounds the box
        relaxation's iterations; see the class doc."""
        n = c.size
        d = np.diag(R)
        if n == 0 or d.min() <= 0.0:
            return None
        x = box_relaxation(H, c, float(lo), float(hi), deadline)
        g = H @ (x - c)
        g_err = _gradient_error(H, x, c)
        at_hi = (x == hi) & (g < 0)
        at_lo = (x == lo) & (g > 0)
        active = at_hi | at_lo
        if not active.any():
            return None  # the box does not bind: the search would be the original one
        a = np.where(active, 2.0 * g, 0.0)
        b = np.where(at_hi, float(hi), np.where(at_lo, float(lo), 0.0))
        W = np.maximum(np.abs(lo - x), np.abs(hi - x))
        E = 2.0 * float(np.sum(np.where(active, g_err * (hi - lo), (np.abs(g) + g_err) * W)))
        fx, fx_err = _value_interval(H, x, c)
        Hp = H[np.ix_(order, order)]
        xp, ap, bp = x[order], a[order], b[order]
        pen = np.ascontiguousarray(np.stack([ap, bp, -ap / (2.0 * d * d)]))
        certifier = Certifier(Hp, R, xp, lo, hi)
        # the penalties' rounding: one product and its addition per row, over the box
        pen_err = 2.0 * gamma(n) * float(np.sum(np.abs(ap))) * (hi - lo)
        zp = np.ascontiguousarray(np.asarray(z0, dtype=np.int64)[order])
        u0 = r_distance(R, xp, zp) + float(ap @ (zp - bp))
        margin, _ = certifier.global_margin(max(u0, 0.0))
        base = fx - fx_err - E - pen_err
        return cls(R, xp, pen, order, lo, hi, certifier, margin + pen_err, base, zp.copy())

    def _value(self, zp: np.ndarray) -> float:
        return float(r_distance(self.R, self.xp, zp) + self.pen[0] @ (zp - self.pen[1]))

    @property
    def done(self) -> bool:
        """True when the tree is exhausted: :attr:`codes` is then optimal."""
        return bool(self.state["st"][1] == 1)

    @property
    def codes(self) -> np.ndarray:
        """The best box point found, in the order of the live inputs."""
        z = np.empty_like(self.zbest)
        z[self.order] = self.zbest
        return z

    def step(self, budget: int) -> int:
        """Search at most ``budget`` nodes; returns the nodes visited."""
        st = self.state
        k = se_search(self.R, self.xp, self.lo, self.hi, self.tail, self.slack,
                      self.certifier.cert, self.zbest, self.ubest, st["z"], st["P"], st["ctr"],
                      st["up"], st["dn"], st["S"], st["last"], st["st"], int(budget), None, None,
                      self.pen)
        self.nodes += k
        return k

    def offer(self, z: np.ndarray) -> None:
        """Take the box point ``z`` (input order) as incumbent if it is better."""
        zp = np.ascontiguousarray(np.asarray(z, dtype=np.int64)[self.order])
        u = self._value(zp)
        if u < self.ubest[0]:
            self.zbest[:] = zp
            self.ubest[0] = u
            self.ubest[1] = min(self.ubest[1],
                                u - leaf_margin(self.R, self.xp, zp, max(u, 0.0),
                                                self.certifier.cert))

    def bound(self) -> float:
        """Certified lower bound on ``(z − c)ᵀH(z − c)`` over the box from what was searched
        so far (before the ``s²`` of :func:`solvers.quant.certify.certified_bound`)."""
        b = float(self.ubest[1])
        if not self.done:
            st = self.state
            ob = float(open_bound(self.R, self.lo, self.hi, self.tail, self.ubest, st["z"],
                                  st["P"], st["ctr"], st["up"], st["dn"], st["st"], self.pen))
            b = min(b, ob - self.slack)
        return self.base + b
