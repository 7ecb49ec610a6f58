"""Variable orderings for the search tree (which variable sits at which level).

The search fixes the top level first, so the top should hold variables whose value is nearly
forced: a large conditional precision ``r_kk²`` (few candidates inside the sphere) and, where the
box binds, a large distance between the continuous centre and the box (an early, large partial
distance that prunes). All orderings are computed from the top down with the inverse of the
remaining block, ``G = (H_UU)⁻¹``: the precision of ``j`` at the top of the set ``U`` is
``1/G_jj`` and its continuous centre, given the variables already placed above (``F``), is
``ĉ_U = c_U − G·H_UF (z_F − c_F)``. Placing ``j`` downdates ``G`` by one rank-one step. The
ordering only steers the search; exactness never depends on it. For a singular ``H`` the inverse
of ``H + δI`` (``δ`` tiny, for the *ordering only*) ranks the null directions last.

* ``"vblast"``: largest precision at the top (V-BLAST / sorted-QR order, unboxed).
* ``"box"``: Chang & Han (2008) box-aware order: at each step the variable whose box-clipped
  Babai residual ``(1/G_jj)·(clip(round(ĉ_j)) − ĉ_j)²`` is largest goes to the top, and its
  Babai value is fixed for the next step's centres. Ties (e.g. all residuals zero) go to the
  largest precision.
* ``"natural"``: the input order (input 0 at the top).
"""

from __future__ import annotations

import numpy as np

from ..problem import ProblemError
from .kernels import order_from_inverse, shifted_inverse

ORDERINGS = ("box", "vblast", "natural")


def _regularised_inverse(H: np.ndarray) -> np.ndarray:
    n = H.shape[0]
    d = max(float(np.trace(H)) / n, np.finfo(float).tiny)
    G, ok = shifted_inverse(np.ascontiguousarray(H, dtype=np.float64), 1e-10 * d)
    if ok and np.all(np.isfinite(G)):
        return G
    return np.linalg.pinv(H + 1e-8 * d * np.eye(n), hermitian=True)


def order_variables(
    H: np.ndarray, c: np.ndarray, lo: int, hi: int, method: str = "box"
) -> np.ndarray:
    """Permutation ``order`` with ``order[k]`` the variable at level ``k`` (top = ``n − 1``).

    Examples
    --------
    >>> import numpy as np
    >>> H = np.diag([1.0, 4.0, 2.0])
    >>> order_variables(H, np.zeros(3), -2, 1, "vblast").tolist()   # top = largest H_jj
    [0, 2, 1]
    """
    n = H.shape[0]
    if method == "natural":
        return np.arange(n)[::-1].copy()
    if method not in ORDERINGS:
        raise ProblemError(f"unknown ordering {method!r}; valid: {', '.join(ORDERINGS)}")
    G = _regularised_inverse(H)
    return order_from_inverse(np.ascontiguousarray(G), np.ascontiguousarray(H),
                              np.ascontiguousarray(c, dtype=np.float64), int(lo), int(hi),
                              method == "box")
