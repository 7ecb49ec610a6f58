"""Random problem instances and brute-force references shared by the tests.

Import as ``from problem_instances import ...`` (``tests/`` is on pytest's pythonpath).
Kinds of ``H``:

* ``"well"``: ``XᵀX`` with ``X`` of 3n Gaussian rows (condition number ~10);
* ``"ill"``: eigenvalues log-spaced over 8 decades, random eigenvectors;
* ``"rankdef"``: ``XᵀX`` with ``X`` of only ``n // 2`` rows (rank n/2);
* ``"corr"``: strongly correlated inputs, as neighbouring pixels of a conv patch;
* ``"diag"``: diagonal (separable; RTN is optimal for quantization).
"""

from __future__ import annotations

import itertools

import numpy as np

from solvers.problem import PruneProblem, QuantProblem, grid_limits
from solvers.scales import mse_scale

KINDS = ("well", "ill", "rankdef", "corr", "diag")


def random_hessian(rng: np.random.Generator, n: int, kind: str = "well") -> np.ndarray:
    if kind == "well":
        X = rng.standard_normal((3 * n, n))
        H = X.T @ X
    elif kind == "ill":
        Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
        H = (Q * np.logspace(0, -8, n)) @ Q.T
    elif kind == "rankdef":
        X = rng.standard_normal((max(1, n // 2), n))
        H = X.T @ X
    elif kind == "corr":
        base = rng.standard_normal((4 * n, 1))
        X = 0.9 * base + 0.3 * rng.standard_normal((4 * n, n))
        H = X.T @ X
    elif kind == "diag":
        H = np.diag(rng.uniform(0.1, 10.0, n))
    else:
        raise ValueError(kind)
    return 0.5 * (H + H.T)


def random_quant_problem(
    rng: np.random.Generator, n: int, bits: int, kind: str = "well", *, outside: bool = False
) -> QuantProblem:
    """Weights ~ N(0, 1), MSE scale; ``outside=True`` shrinks the scale so w0 leaves the grid."""
    w0 = rng.standard_normal(n)
    s = mse_scale(w0, bits)
    if outside:
        s *= 0.5
    return QuantProblem(random_hessian(rng, n, kind), w0, scale=s, bits=bits)


def random_prune_problem(
    rng: np.random.Generator, n: int, k: int, kind: str = "well", **kw
) -> PruneProblem:
    w0 = rng.standard_normal(n)
    return PruneProblem(random_hessian(rng, n, kind), w0, k=k, **kw)


def rounding_tol(H: np.ndarray, w0: np.ndarray, w: np.ndarray | None = None,
                 rtol: float = 1e-12) -> float:
    """An absolute tolerance for comparing two computations of ``(w − w0)ᵀH(w − w0)``.

    Both are sums of products whose rounding error scales with ``|d|ᵀ|H||d|`` (``d = w − w0``)
    and with the terms cancelled to form ``d`` (``|w0|ᵀ|H||w0|``), not with the (possibly tiny)
    error itself; ``rtol`` times that scale covers float64 rounding for any summation order.
    """
    a = np.abs(np.asarray(H, dtype=float))
    x = np.abs(np.asarray(w0, dtype=float))
    scale = float(x @ a @ x)
    if w is not None:
        d = np.abs(np.asarray(w, dtype=float) - w0)
        y = np.abs(np.asarray(w, dtype=float))
        scale += float(d @ a @ d) + float(y @ a @ y)
    return rtol * scale


def brute_force_quant(p: QuantProblem, radius: int | None = None) -> tuple[float, np.ndarray]:
    """Least error over the whole grid (or, with ``radius``, over codes within ``radius`` of
    round-to-nearest, still clipped to the grid). Exhaustive: keep ``(levels)^n`` small."""
    zmin, zmax = grid_limits(p.bits)
    if radius is None:
        axes = [range(zmin, zmax + 1)] * p.n
    else:
        rtn = np.clip(np.rint(p.w0 / p.scale), zmin, zmax).astype(int)
        axes = [range(max(zmin, r - radius), min(zmax, r + radius) + 1) for r in rtn]
    Z = np.array(list(itertools.product(*axes)), dtype=float)
    D = p.scale * Z - p.w0
    errs = np.einsum("ij,jk,ik->i", D, p.H, D)
    i = int(np.argmin(errs))
    return float(max(errs[i], 0.0)), Z[i].astype(int)


def refit_error(H: np.ndarray, w0: np.ndarray, keep: np.ndarray) -> tuple[float, np.ndarray]:
    """Least error with support ⊆ ``keep`` (unboxed): least squares on the kept coordinates.

    Uses a pseudo-inverse, so it is exact for rank-deficient ``H`` too.
    """
    keep = np.asarray(keep, dtype=bool)
    w = np.zeros_like(w0)
    if keep.any():
        Hkk = H[np.ix_(keep, keep)]
        rhs = H[keep] @ w0
        w[keep] = np.linalg.lstsq(Hkk, rhs, rcond=None)[0]
    d = w - w0
    return max(0.0, float(d @ H @ d)), w


def brute_force_prune(p: PruneProblem) -> tuple[float, np.ndarray]:
    """Least unboxed error over every mask allowed by ``k`` (and the N:M pattern)."""
    if p.box_factor is not None:
        raise ValueError("brute_force_prune solves the unboxed problem only")
    best, best_mask = np.inf, None
    for keep_idx in itertools.combinations(range(p.n), p.k):
        mask = np.zeros(p.n, dtype=bool)
        mask[list(keep_idx)] = True
        if p.nm is not None:
            N, M = p.nm
            if np.any(mask.reshape(-1, M).sum(axis=1) > N):
                continue
        err, _ = refit_error(p.H, p.w0, mask)
        if err < best:
            best, best_mask = err, mask
    return float(best), best_mask


def random_prune_case(rng: np.random.Generator, kind: str, t: int) -> PruneProblem:
    """The ``t``-th small pruning case of a brute-force sweep: ``n`` in 4…10 and ``H`` of
    ``kind``; every third case with even ``n`` is 1:2 structured, the others keep a random
    ``k`` in 1…n−1."""
    n = int(rng.integers(4, 11))
    H = random_hessian(rng, n, kind)
    w0 = rng.standard_normal(n)
    if t % 3 == 2 and n % 2 == 0:
        return PruneProblem(H, w0, nm=(1, 2))
    return PruneProblem(H, w0, k=int(rng.integers(1, n)))
