"""The floating-point margins that keep the exact solver's lower bound a proof.

The search compares ``f_R(z) = ‖R(z − c)‖²`` evaluated in float64; the problem's error is
``f(z) = s²·(z − c)ᵀ H (z − c)`` with the exact ``c = w0 / s``. What separates them, for
``d = z − c``:

1. the factorisation residual ``E = H[π, π] − RᵀR`` (rounding, plus rows dropped as null
   directions), measured after the fact with compensated dot products (Ogita, Rump & Oishi's
   ``Dot2``: as accurate as twice the working precision; charged as ``u_E = 2⁻⁶⁴``):
   ``|dᵀ E d| <= ‖E‖_F ‖d‖² + γ_E G`` with ``γ_E = (n + 4)u_E/(1 − (n + 4)u_E)`` covering the
   rounding of that computation;
2. rounding in each row value ``(R d)_k`` as the search computes it (partial sums, the centre
   ``ĉ_k = c_k − S/R_kk`` and ``R_kk(z_k − ĉ_k)``), at most ``γ (|R||d|)_k + 3u (|R||c|)_k``,
   and the rounding of ``c = fl(w0/s)``, at most ``u (|R||c|)_k``; so with
   ``e = γ√G + 4u√G_c`` the sum of squared rows is off by at most ``2√f·e + e² + γ f``.

Here ``u = 2⁻⁵³``, ``γ = (n + 4)u / (1 − (n + 4)u)``, ``G = ‖ |R||d| ‖²``,
``G_c = ‖ |R||c| ‖²``. Together (with a safety factor 2 on the rounding terms):

    m(d, f) = 2‖E‖_F ‖d‖² + 2(γ_E G + 2√f·e + e² + γ f).

How the search uses it (:func:`solvers.quant.kernels.se_search`):

* **pruning slack** — a node is pruned only when its computed bound reaches ``U + M``, where
  ``M = m`` evaluated at the worst ``|d|`` (the box, ``D_i = max(|lo − c_i|, |hi − c_i|)``,
  tightened by the ellipsoid ``|d_i| <= √(U (H⁻¹)_ii)`` when ``H`` is well enough conditioned)
  and at the starting incumbent's ``U`` (``m`` grows with ``f``, and ``U`` only decreases). So no
  point whose true error is below the incumbent's computed value is ever pruned;
* **leaf certificates** — each leaf reached gets ``p − m(d, p)`` with its own ``d`` (small near
  the optimum); the least of these over the leaves reached is ``ubest[1]``.

When the tree is exhausted every point truly better than the final incumbent's computed value
was reached as a leaf, so ``min(leaf certificates)`` is a proved lower bound. When the search is
stopped early the open nodes add ``min_open(bound) − M``. The reported bound is then multiplied by
``s²(1 − 4u)``.
"""

from __future__ import annotations

import numpy as np

from .setup_kernels import residual_frobenius, upper_inverse_row_norms

U_ROUND = np.finfo(np.float64).eps / 2
#: Unit roundoff charged to the residual's entries: they come from compensated dot products
#: (Ogita, Rump & Oishi 2005), error ``u|e| + γ_{n+1}²Σ|terms|``; ``γ_{n+1}² <= (n + 4)·2⁻⁶⁴``
#: for every ``n < 2⁴²``, so ``γ_E`` below (with ``2⁻⁶⁴``) covers the second term and the
#: inflation of ``‖E‖_F`` the first.
U_E = 2.0 ** -64


def gamma(n: int) -> float:
    """``γ = (n + 4)u / (1 − (n + 4)u)``."""
    return (n + 4) * U_ROUND / (1.0 - (n + 4) * U_ROUND)


def box_deviation(c: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``max(|lo − c_i|, |hi − c_i|)``: the largest ``|z_i − c_i|`` on the box."""
    return np.maximum(np.abs(lo - c), np.abs(hi - c))


def ellipsoid_deviation(R: np.ndarray, U: float) -> np.ndarray | None:
    """``√(U (H⁻¹)_ii)·(1 + 1e-6)`` from ``R``, or ``None`` when ``R`` is singular or too
    ill-conditioned (``cond(R) > 1e4``) for the computed inverse to be trusted to 1e-6."""
    d = np.diag(R)
    if d.size == 0 or d.min() <= 0.0 or d.max() / d.min() > 1e4:
        return None
    hinv = upper_inverse_row_norms(np.ascontiguousarray(R, dtype=np.float64))
    if not np.all(np.isfinite(hinv)):
        return None
    return np.sqrt(max(U, 0.0) * hinv) * (1.0 + 1e-6) + 1e-300


class Certifier:
    """The constants of the margins for one factorisation.

    Attributes
    ----------
    cert : (4,) array ``[2‖E‖_F, γ, 4u√G_c, γ_E]`` passed to the compiled leaf margin.
    residual_norm : ``‖E‖_F``.
    """

    def __init__(self, H_perm: np.ndarray, R: np.ndarray, c_perm: np.ndarray, lo: int, hi: int,
                 *, extra_residual: float = 0.0, center_error: np.ndarray | None = None):
        """``extra_residual`` bounds ``‖H_true − H_perm‖_F`` and ``center_error`` bounds
        ``|c_true − c_perm|`` entrywise beyond the ``u|c|`` rounding already charged, for a
        problem whose ``H_perm``, ``c_perm`` were themselves computed (a lattice reduction,
        :mod:`solvers.quant.lattice_reduction`): the first adds to ``‖E‖_F``, the second adds
        ``2‖|R|·center_error‖`` to the row-value error ``e``."""
        n = R.shape[0]
        self.R, self.c, self.lo, self.hi = R, c_perm, lo, hi
        fro = residual_frobenius(np.ascontiguousarray(H_perm, dtype=np.float64),
                                 np.ascontiguousarray(R, dtype=np.float64))
        # the Frobenius norm of the computed entries, summed in float64, is inflated by its own
        # rounding, (n² + 2)u relative (and by at least 1e-12)
        self.residual_norm = (float(fro) * (1.0 + max(1e-12, 2.0 * (n * n + 2) * U_ROUND))
                              + float(extra_residual))
        self.gamma = gamma(n)
        self.gamma_e = (n + 4) * U_E / (1.0 - (n + 4) * U_E)
        Gc = float(np.sum((np.abs(R) @ np.abs(c_perm)) ** 2))
        e_c = 4.0 * U_ROUND * np.sqrt(Gc)
        if center_error is not None:
            e_c += 2.0 * float(np.linalg.norm(np.abs(R) @ center_error)) * (1.0 + 1e-12)
        self.cert = np.array([2.0 * self.residual_norm, self.gamma, e_c, self.gamma_e])

    def margin(self, D: np.ndarray, f: float) -> float:
        """``m(d, f)`` for ``|d| <= D`` entrywise (monotone in ``|d|`` and in ``f``)."""
        G = float(np.sum((np.abs(self.R) @ D) ** 2))
        g = self.gamma
        e = g * np.sqrt(G) + self.cert[2]
        f = max(f, 0.0)
        return float(self.cert[0] * (D @ D)
                     + 2.0 * (self.gamma_e * G + 2.0 * np.sqrt(f) * e + e * e + g * f))

    def global_margin(self, U: float) -> tuple[float, bool]:
        """``M``: the margin over every point of the box at least as good as ``U``.

        Returns ``(M, used_ellipsoid)``.
        """
        D = box_deviation(self.c, self.lo, self.hi)
        ell = ellipsoid_deviation(self.R, U)
        if ell is not None:
            D = np.minimum(D, ell)
        return self.margin(D, U), ell is not None


def certified_bound(b: float, scale: float) -> float:
    """``s²·(1 − 4u)·max(0, b)``: a bound in search units turned into the problem's units."""
    return scale * scale * (1.0 - 4 * U_ROUND) * max(0.0, b)
