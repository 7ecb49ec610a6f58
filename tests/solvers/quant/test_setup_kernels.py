"""The compiled set-up kernels against exact rational arithmetic and LAPACK."""

from fractions import Fraction

import numpy as np
import pytest
from problem_instances import random_hessian

from solvers.quant.certify import Certifier
from solvers.quant.factor import ordered_cholesky
from solvers.quant.kernels import shifted_inverse
from solvers.quant.setup_kernels import residual_frobenius, upper_inverse_row_norms


def _exact_residual_frobenius(H, R):
    n = H.shape[0]
    tot = Fraction(0)
    for i in range(n):
        for j in range(n):
            e = Fraction(H[i, j]) - sum(Fraction(R[k, i]) * Fraction(R[k, j]) for k in range(n))
            tot += e * e
    return float(tot) ** 0.5


@pytest.mark.parametrize("kind", ["well", "ill", "rankdef", "corr", "diag"])
def test_residual_norm_matches_exact_arithmetic(kind):
    rng = np.random.default_rng(7)
    for _ in range(3):
        n = int(rng.integers(2, 9))
        H = random_hessian(rng, n, kind)
        R, _ = ordered_cholesky(H, rng.permutation(n))
        exact = _exact_residual_frobenius(H, R)
        got = residual_frobenius(H, R)
        assert abs(got - exact) <= 1e-14 * exact + 1e-300
        # the certifier's inflated norm is never below the exact one
        c = rng.standard_normal(n)
        assert Certifier(H, R, c, -2, 1).residual_norm >= exact


def test_inverse_row_norms_and_shifted_inverse_match_lapack():
    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 33):
        H = random_hessian(rng, n, "well")
        R = np.linalg.cholesky(H).T
        np.testing.assert_allclose(upper_inverse_row_norms(R), np.diag(np.linalg.inv(H)),
                                   rtol=1e-9)
        G, ok = shifted_inverse(H, 1e-3)
        assert ok
        np.testing.assert_allclose(G, np.linalg.inv(H + 1e-3 * np.eye(n)), rtol=1e-8,
                                   atol=1e-12)
    _, ok = shifted_inverse(-np.eye(3), 0.0)
    assert not ok
