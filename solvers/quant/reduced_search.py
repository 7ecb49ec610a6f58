"""The exact search in an LLL-reduced basis, for ill-conditioned ``H``.

With ``z = Z·y`` (``Z`` unimodular, :mod:`solvers.quant.lattice_reduction`) the problem
``min (z − c)ᵀH(z − c)`` over ``z ∈ [lo, hi]ⁿ`` becomes ``min (y − c′)ᵀH′(y − c′)`` over the
``y`` with ``Z·y`` in the box. That set is not a box, so the search runs over the box that
contains it, ``y_i ∈ [Σ_j min(Z⁻¹_ij·lo, Z⁻¹_ij·hi), Σ_j max(…)]`` (one interval ``[lo′, hi′]``
for all ``i``), and a leaf counts only when ``Z·y`` lies in the box (checked in exact integer
arithmetic; ``leaf_map`` of :func:`~solvers.quant.kernels.se_search`). An exhausted search has
then reached every box point better than its incumbent: its incumbent is optimal, with the
usual certificate. This is fast when few lattice points outside the box beat the boxed
optimum — always at 6–8 bits on real layers and, on the stem convolution of MobileNetV2 (whose
``H`` has condition number ~3e5 and defeats the search in the original basis), most of the time
even at 2–4 bits.

The search itself is :func:`solvers.quant.kernels.se_search` on ``R′`` (the Cholesky factor of
``H′`` in the reduced order), started from the best known box point ``Z⁻¹·z₀``, certified by
:class:`solvers.quant.certify.Certifier` with the extra rounding of ``H′`` and ``c′``.
"""

from __future__ import annotations

import numpy as np

from ..stopwatch import passed
from .certify import Certifier
from .factor import ordered_cholesky
from .kernels import leaf_margin, new_state, open_bound, r_distance, se_search
from .lattice_reduction import lll_basis, reduced_problem


class ReducedSearch:
    """The search of the reduced problem, run in slices beside the original one.

    Build it with :meth:`build` (``None`` when reduction cannot help: singular ``H``, a basis
    already reduced, or a margin too wide to prune with). Incumbents are exchanged in the
    original coordinates ``z`` (:meth:`offer`, :attr:`codes`). Values are in the units of
    ``(z − c)ᵀH(z − c)``, before the ``s²`` of :func:`solvers.quant.certify.certified_bound`.
    """

    def __init__(self, Z, Zi, R, cp, ylo, yhi, lo, hi, certifier, slack, y0):
        self.Z, self.Zi, self.R, self.cp = Z, Zi, R, cp
        self.ylo, self.yhi = ylo, yhi
        self.box = np.array([lo, hi], dtype=np.int64)
        self.certifier, self.slack = certifier, slack
        n = R.shape[0]
        self.ybest = y0
        u0 = r_distance(R, cp, y0)
        self.ubest = np.array([u0, u0 - leaf_margin(R, cp, y0, u0, certifier.cert)])
        self.tail = np.zeros(n + 1)
        self.state = new_state(n)
        self.nodes = 0

    @classmethod
    def build(cls, H: np.ndarray, c: np.ndarray, lo: int, hi: int,
              z0: np.ndarray) -> ReducedSearch | None:
        """Reduce ``H`` and start from the box point ``z0``; see the class doc."""
        n = H.shape[0]
        R0, rank = ordered_cholesky(H, np.arange(n))
        if rank < n:
            return None
        basis = lll_basis(R0)
        if basis is None:
            return None
        Z, Zi = basis
        Hp, cp, dH, dc = reduced_problem(H, c, Z, Zi)
        R, rank = ordered_cholesky(Hp, np.arange(n))
        if rank < n:
            return None
        # the relaxed box of y = Z⁻¹z over z ∈ [lo, hi]ⁿ
        ylo = int(np.min(np.minimum(Zi * lo, Zi * hi).sum(axis=1)))
        yhi = int(np.max(np.maximum(Zi * lo, Zi * hi).sum(axis=1)))
        certifier = Certifier(Hp, R, cp, ylo, yhi, extra_residual=dH, center_error=dc)
        y0 = (Zi @ np.asarray(z0, dtype=np.int64)).astype(np.int64)
        slack, used_ellipsoid = certifier.global_margin(r_distance(R, cp, y0))
        if not used_ellipsoid:  # the relaxed box alone gives a margin too wide to prune with
            return None
        return cls(Z, Zi, R, cp, ylo, yhi, lo, hi, certifier, slack, y0)

    @property
    def done(self) -> bool:
        """True when the tree is exhausted: :attr:`codes` is then optimal."""
        return bool(self.state["st"][1] == 1)

    @property
    def codes(self) -> np.ndarray:
        """The best box point found (original coordinates)."""
        return (self.Z @ self.ybest).astype(np.int64)

    def step(self, budget: int) -> int:
        """Search at most ``budget`` nodes; returns the nodes visited."""
        st = self.state
        k = se_search(self.R, self.cp, self.ylo, self.yhi, self.tail, self.slack,
                      self.certifier.cert, self.ybest, self.ubest, st["z"], st["P"], st["ctr"],
                      st["up"], st["dn"], st["S"], st["last"], st["st"], int(budget), self.Z,
                      self.box)
        self.nodes += k
        return k

    def offer(self, z: np.ndarray) -> None:
        """Take the box point ``z`` as incumbent if it is better (prunes more)."""
        y = (self.Zi @ np.asarray(z, dtype=np.int64)).astype(np.int64)
        u = r_distance(self.R, self.cp, y)
        if u < self.ubest[0]:
            self.ybest[:] = y
            self.ubest[0] = u
            self.ubest[1] = min(self.ubest[1],
                                u - leaf_margin(self.R, self.cp, y, u, self.certifier.cert))

    def bound(self) -> float:
        """Certified lower bound on the boxed optimum from what was searched so far."""
        b = float(self.ubest[1])
        if self.done:
            return b
        st = self.state
        ob = float(open_bound(self.R, self.ylo, self.yhi, self.tail, self.ubest, st["z"],
                              st["P"], st["ctr"], st["up"], st["dn"], st["st"]))
        return min(b, ob - self.slack)


def reduced_search(H: np.ndarray, c: np.ndarray, lo: int, hi: int, z0: np.ndarray, *,
                   deadline: float | None = None, node_limit: int | None = None,
                   slice_nodes: int = 100_000) -> ReducedSearch | None:
    """Run :class:`ReducedSearch` alone until done or a limit; ``None`` when not applicable.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((40, 6)) @ np.triu(np.ones((6, 6)))
    >>> H = X.T @ X                                   # strongly correlated inputs
    >>> c = np.linspace(-2.3, 2.6, 6)
    >>> rs = reduced_search(H, c, -8, 7, np.clip(np.rint(c), -8, 7).astype(np.int64))
    >>> z = rs.codes
    >>> bool(rs.done and rs.bound() <= (z - c) @ H @ (z - c))
    True
    """
    rs = ReducedSearch.build(H, c, lo, hi, z0)
    if rs is None:
        return None
    while not rs.done:
        budget = slice_nodes if node_limit is None else min(slice_nodes, node_limit - rs.nodes)
        if budget <= 0 or passed(deadline):
            break
        rs.step(budget)
    return rs
