"""Compiled dense linear algebra of the exact solver's set-up (numba, ``cache=True``).

At ``n = 32`` the search itself takes about a millisecond, so the set-up must cost tens of
microseconds, not the hundreds that NumPy/SciPy calls on small matrices cost. Kernels:

* :func:`residual_frobenius`: ``‖H − RᵀR‖_F`` with every entry computed by the compensated dot
  product ``Dot2`` of Ogita, Rump & Oishi (2005, *Accurate sum and dot product*): the entry is as
  accurate as if computed in twice the working precision,
  ``|ê − e| <= u|e| + γ_{m}²·Σ|terms|`` (``m = n + 1`` terms, ``γ_m = m·u/(1 − m·u)``). This
  replaces a ``long double`` computation, which is both slower and platform dependent.
* :func:`upper_inverse_row_norms`: ``(H⁻¹)_ii = ‖row i of R⁻¹‖²`` for ``H = RᵀR``, by back
  substitution.
* :func:`congruence` and :func:`compensated_matvec`: ``ZᵀHZ`` and ``Z⁻¹c`` for a lattice
  reduction (:mod:`solvers.quant.lattice_reduction`), every entry a compensated dot product.

Self-contained on purpose: numba's on-disk cache keys a compiled function on its own file, so a
cached function here that called a compiled function of another module (say ``kernels.py``)
would keep running the stale code after that module changed. Kernels that need the search's
Cholesky (the ordering's shifted inverse) live beside it in :mod:`solvers.quant.kernels`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_SPLIT = 134217729.0  # 2**27 + 1 (Dekker's splitter for float64)


@njit(cache=True, inline="always")
def _two_sum(a, b):
    x = a + b
    z = x - a
    return x, (a - (x - z)) + (b - z)


@njit(cache=True, inline="always")
def _two_product(a, b):
    x = a * b
    t = _SPLIT * a
    ah = t - (t - a)
    al = a - ah
    t = _SPLIT * b
    bh = t - (t - b)
    bl = b - bh
    return x, al * bl - (((x - ah * bh) - al * bh) - ah * bl)


@njit(cache=True)
def residual_frobenius(H, R):
    """``‖Ê‖_F`` for ``E = H − RᵀR``, every entry ``Ê_ij`` a compensated dot product.

    ``R`` is upper triangular, so ``(RᵀR)_ij = Σ_{k <= min(i, j)} R_ki R_kj``. The Frobenius
    norm of the computed entries is summed in plain float64 (the caller inflates it by its
    rounding, ``(n² + 2)u`` relative).
    """
    n = H.shape[0]
    tot = 0.0
    for i in range(n):
        for j in range(i, n):
            p = H[i, j]
            s = 0.0
            for k in range(i + 1):
                h, r = _two_product(-R[k, i], R[k, j])
                p, q = _two_sum(p, h)
                s += q + r
            e = p + s
            w = 1.0 if i == j else 2.0
            tot += w * e * e
    return np.sqrt(tot)


@njit(cache=True)
def upper_inverse_row_norms(R):
    """``Σ_j (R⁻¹)_ij²`` for every ``i`` (``= (H⁻¹)_ii`` when ``H = RᵀR``); ``R`` nonsingular.

    Column ``j`` of ``R⁻¹`` solves ``R x = e_j`` by back substitution (``x_i = 0`` for
    ``i > j``).
    """
    n = R.shape[0]
    out = np.zeros(n)
    x = np.zeros(n)
    for j in range(n):
        for i in range(j, -1, -1):
            s = 1.0 if i == j else 0.0
            for m in range(i + 1, j + 1):
                s -= R[i, m] * x[m]
            x[i] = s / R[i, i]
            out[i] += x[i] * x[i]
    return out


@njit(cache=True)
def _dot2(a, b):
    """``aᵀb`` by Ogita–Rump–Oishi ``Dot2``: error ``<= u|aᵀb| + γ_m²·|a|ᵀ|b|``."""
    p = 0.0
    s = 0.0
    for i in range(a.shape[0]):
        h, r = _two_product(a[i], b[i])
        p, q = _two_sum(p, h)
        s += q + r
    return p + s


@njit(cache=True)
def compensated_matvec(A, x):
    """``A·x`` with every entry a compensated dot product (:func:`_dot2`)."""
    n = A.shape[0]
    out = np.empty(n)
    for i in range(n):
        out[i] = _dot2(A[i], x)
    return out


@njit(cache=True)
def congruence(H, Z):
    """``ZᵀHZ`` (symmetric) with ``T = HZ`` and then ``ZᵀT`` by compensated dot products."""
    n = H.shape[0]
    T = np.empty((n, n))
    for j in range(n):
        col = np.ascontiguousarray(Z[:, j])
        for i in range(n):
            T[i, j] = _dot2(H[i], col)
    out = np.empty((n, n))
    for i in range(n):
        zi = np.ascontiguousarray(Z[:, i])
        for j in range(i, n):
            v = _dot2(zi, np.ascontiguousarray(T[:, j]))
            out[i, j] = v
            out[j, i] = v
    return out


@njit(cache=True)
def quadratic_form(H, c, z):
    """``(z − c)ᵀ H (z − c)`` for integer ``z``."""
    n = H.shape[0]
    d = np.empty(n)
    for i in range(n):
        d[i] = z[i] - c[i]
    tot = 0.0
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += H[i, j] * d[j]
        tot += d[i] * s
    return tot
