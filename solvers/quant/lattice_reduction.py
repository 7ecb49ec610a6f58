"""LLL reduction of the search lattice, with the unimodular change of basis kept exactly.

For ``f(z) = ‖R(z − c)‖²`` (``H = RᵀR`` upper-triangular factor of full rank) and an integer
matrix ``Z`` with ``det Z = ±1``, ``z = Z·y`` is a bijection of ``Zⁿ``, and

    f(Z y) = (y − c′)ᵀ H′ (y − c′),   H′ = ZᵀHZ,   c′ = Z⁻¹c.

When ``H`` is ill-conditioned (e.g. the stem convolution of an image network, whose inputs are
neighbouring pixels) the diagonal of ``R`` decays steeply and a Schnorr–Euchner search in the
original basis visits hundreds of millions of nodes even at ``n = 27``; in an LLL-reduced basis
(Lenstra, Lenstra & Lovász 1982; for integer least squares e.g. Chang, Wen & Xie 2012) the same
search visits a few hundred. The reduction is a heuristic (it only chooses ``Z``); what the
search proves afterwards is certified in the reduced coordinates by
:mod:`solvers.quant.certify` (see :func:`reduced_problem` for the extra rounding terms).

The box ``lo <= z <= hi`` does not survive the change of basis as a box; see
:mod:`solvers.quant.reduced_search` for how the search deals with it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .setup_kernels import compensated_matvec, congruence

#: Lovász parameter.
DELTA = 0.99
#: Largest entry allowed in ``Z`` or ``Z⁻¹``: with codes below ``2¹⁵`` in magnitude and
#: ``n <= 2¹⁰``, every ``Z·y`` then stays far inside int64 and every ``Z⁻¹·c`` term exact.
MAX_ENTRY = 2 ** 12


@njit(cache=True)
def _size_reduce(R, Z, Zi, i, k, max_entry):
    """Column ``k`` −= μ·column ``i`` with ``μ = round(R_ik / R_ii)``; False on entry growth."""
    mu = np.rint(R[i, k] / R[i, i])
    if mu == 0.0:
        return True
    m = int(mu)
    for r in range(i + 1):
        R[r, k] -= mu * R[r, i]
    n = R.shape[0]
    ok = True
    for r in range(n):
        Z[r, k] -= m * Z[r, i]
        Zi[i, r] += m * Zi[k, r]
        if abs(Z[r, k]) > max_entry or abs(Zi[i, r]) > max_entry:
            ok = False
    return ok


@njit(cache=True)
def lll_upper(R, delta, max_entry, max_swaps):
    """LLL-reduce the columns of the upper-triangular ``R`` (full rank).

    Returns ``(R′, Z, Z⁻¹, ok)`` with ``R·Z = Q·R′`` (``Q`` orthogonal, never formed) and
    ``Z⁻¹`` exact; ``ok`` is False when an entry of ``Z`` or ``Z⁻¹`` would exceed ``max_entry``
    or more than ``max_swaps`` swaps were needed (then the result must not be used).
    """
    n = R.shape[0]
    R = R.copy()
    Z = np.eye(n, dtype=np.int64)
    Zi = np.eye(n, dtype=np.int64)
    k = 1
    swaps = 0
    while k < n:
        if not _size_reduce(R, Z, Zi, k - 1, k, max_entry):
            return R, Z, Zi, False
        a = R[k - 1, k - 1]
        b = R[k - 1, k]
        d = R[k, k]
        if delta * a * a > b * b + d * d:
            swaps += 1
            if swaps > max_swaps:
                return R, Z, Zi, False
            for r in range(k + 1):
                t = R[r, k - 1]
                R[r, k - 1] = R[r, k]
                R[r, k] = t
            for r in range(n):
                t2 = Z[r, k - 1]
                Z[r, k - 1] = Z[r, k]
                Z[r, k] = t2
                t2 = Zi[k - 1, r]
                Zi[k - 1, r] = Zi[k, r]
                Zi[k, r] = t2
            # restore the triangle: a rotation of rows k−1, k zeroes R[k, k−1]
            x = R[k - 1, k - 1]
            y = R[k, k - 1]
            h = np.hypot(x, y)
            cs = x / h
            sn = y / h
            for j in range(k - 1, n):
                t1 = R[k - 1, j]
                t3 = R[k, j]
                R[k - 1, j] = cs * t1 + sn * t3
                R[k, j] = -sn * t1 + cs * t3
            R[k, k - 1] = 0.0
            if k > 1:
                k -= 1
        else:
            for i in range(k - 2, -1, -1):
                if not _size_reduce(R, Z, Zi, i, k, max_entry):
                    return R, Z, Zi, False
            k += 1
    return R, Z, Zi, True


def lll_basis(R: np.ndarray, *, delta: float = DELTA) -> tuple[np.ndarray, np.ndarray] | None:
    """``(Z, Z⁻¹)`` reducing the full-rank upper-triangular ``R``, or ``None`` when the basis is
    already LLL-reduced (``Z = I``) or the reduction was abandoned (entry growth).

    Examples
    --------
    >>> import numpy as np
    >>> R = np.array([[1.0, 0.999], [0.0, 0.01]])     # nearly parallel columns
    >>> Z, Zi = lll_basis(R)
    >>> (Z @ Zi).tolist(), abs(round(np.linalg.det(Z)))
    ([[1, 0], [0, 1]], 1)
    """
    n = R.shape[0]
    _, Z, Zi, ok = lll_upper(np.ascontiguousarray(R, dtype=np.float64), float(delta),
                             MAX_ENTRY, 50 * n * n + 1000)
    if not ok or np.array_equal(Z, np.eye(n, dtype=np.int64)):
        return None
    return Z, Zi


def reduced_problem(H: np.ndarray, c: np.ndarray, Z: np.ndarray, Zi: np.ndarray):
    """``(H′, c′, dH, dc)``: ``H′ = ZᵀHZ`` and ``c′ = Z⁻¹c`` computed with compensated dot
    products, with bounds on their rounding.

    ``dH`` bounds ``‖H′ − ZᵀHZ‖_F``: each product is a ``Dot2`` (error ``u|·| + γ²Σ|terms|``),
    twice, so ``|ΔH′| <= (2u + 3γ²)·|Z|ᵀ|H||Z|``, charged as ``4u·‖|Z|ᵀ|H||Z|‖_F``. ``dc`` is a
    vector with ``|c′ − Z⁻¹c_true| <= dc`` entrywise, ``c_true`` the exact ``w0/s`` whose float
    ``c`` is within ``u|c|``: ``dc = 3u·|Z⁻¹||c|``.
    """
    u = np.finfo(np.float64).eps / 2
    Zf = Z.astype(np.float64)
    Hp = congruence(np.ascontiguousarray(H, dtype=np.float64), np.ascontiguousarray(Zf))
    cp = compensated_matvec(np.ascontiguousarray(Zi.astype(np.float64)),
                            np.ascontiguousarray(c, dtype=np.float64))
    A = np.abs(Zf).T @ np.abs(H) @ np.abs(Zf)
    n = H.shape[0]
    dH = 4.0 * u * float(np.linalg.norm(A)) * (1.0 + 4.0 * (n + 2) * u)
    dc = 3.0 * u * (np.abs(Zi).astype(np.float64) @ np.abs(c)) * (1.0 + 4.0 * (n + 2) * u)
    return Hp, cp, dH, dc
