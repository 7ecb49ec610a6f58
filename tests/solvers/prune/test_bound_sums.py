"""The node bounds' in-place sums (:func:`solvers.prune.kernels._sum_smallest`, ``_top_sum``)
against ``np.sort``: the same values, bit for bit (the search's node counts depend on them)."""

import numpy as np
import pytest

from solvers.prune import kernels


def _reference_smallest(vals, cnt):
    if cnt <= 0:
        return 0.0, 0.0
    s = np.sort(vals)
    tot = 0.0
    for i in range(cnt):
        tot += s[i]
    return tot, s[cnt - 1]


def _reference_top(vals, cnt):
    m = vals.shape[0]
    if cnt >= m:
        tot = 0.0
        for v in vals:
            tot += v
        return tot, -np.inf
    if cnt <= 0:
        return 0.0, np.inf
    s = np.sort(vals)
    tot = 0.0
    for i in range(m - cnt, m):
        tot += s[i]
    return tot, s[m - cnt]


@pytest.mark.parametrize("seed", range(6))
def test_sums_match_a_full_sort(seed):
    rng = np.random.default_rng(seed)
    for m in (1, 2, 5, 17, 32):
        vals = rng.standard_normal(m) ** 2 * 10.0 ** rng.integers(-8, 8, size=m)
        vals[rng.random(m) < 0.2] = 0.0  # ties
        if seed % 2:
            vals[rng.random(m) < 0.1] = np.inf  # a forward bound's "cannot keep"
        for cnt in range(-1, m + 2):
            if cnt <= m:  # the search asks for at most the undecided count
                assert kernels._sum_smallest(vals.copy(), cnt) == _reference_smallest(vals, cnt)
            assert kernels._top_sum(vals.copy(), cnt) == _reference_top(vals, cnt)


def test_sort_prefix_sorts_only_the_prefix():
    vals = np.array([3.0, 1.0, 2.0, -5.0, 9.0])
    kernels._sort_prefix(vals, 3)
    assert vals.tolist() == [1.0, 2.0, 3.0, -5.0, 9.0]
