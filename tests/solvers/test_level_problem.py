"""LevelProblem: validation (every bad input the issue lists) and its helpers."""

from __future__ import annotations

import numpy as np
import pytest

from solvers import LayerProblem, LevelProblem, ProblemError, QuantProblem

H3 = np.eye(3)
W3 = np.array([0.3, -0.8, 0.05])


@pytest.mark.parametrize("levels,match", [
    ([0.0, np.nan, 1.0], "NaN or infinite"),
    ([0.0, np.inf], "NaN or infinite"),
    ([1.0, 0.0, 2.0], "not sorted"),
    ([0.0, 0.5, 0.5], "repeated"),
    ([], "empty"),
    (np.zeros((3, 0)), "empty"),
    (np.zeros((2, 3)), r"shape \(n, L\) = \(3, L\)"),
    (np.zeros((3, 2, 2)), r"shape \(L,\) or \(n, L\)"),
    ([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]], "levels of input 2 are not sorted"),
])
def test_bad_levels(levels, match):
    with pytest.raises(ProblemError, match=match):
        LevelProblem(H3, W3, levels=levels)


@pytest.mark.parametrize("kw,match", [
    ({"k": -1}, r"k must be an integer in \[0, n = 3\]"),
    ({"k": 4}, r"k must be an integer in \[0, n = 3\]"),
    ({"k": 1.5}, "k must be an integer"),
    ({"nm": (2, 4)}, "M to divide n = 3"),
    ({"nm": (3, 2)}, "0 <= N <= M"),
    ({"nm": "x"}, "pair"),
    ({"nm": (1, 3), "k": 2}, "contradicts"),
])
def test_bad_sparsity(kw, match):
    with pytest.raises(ProblemError, match=match):
        LevelProblem(H3, W3, levels=[-1.0, 0.0, 1.0], **kw)


def test_sparsity_needs_zero_level():
    with pytest.raises(ProblemError, match="needs zero as a level of every input.*no input"):
        LevelProblem(H3, W3, levels=[-1.0, 1.0], k=1)
    table = np.array([[-1.0, 0.0, 1.0], [-1.0, 0.5, 1.0], [0.0, 1.0, 2.0]])
    with pytest.raises(ProblemError, match=r"inputs 1 \(of 3\) have a zero level"):
        LevelProblem(H3, W3, levels=table, k=2)
    with pytest.raises(ProblemError, match="the 1:1 pattern"):
        LevelProblem(np.eye(2), [0.1, 0.2], levels=[0.5, 1.0], nm=(1, 1))
    LevelProblem(H3, W3, levels=[-1.0, 1.0])  # no limit: zero need not be a level


def test_helpers_and_from_quant():
    table = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-0.5, 0.0, 0.5]])
    p = LevelProblem(H3, W3, levels=table, k=2)
    assert not p.shared and p.sparse and p.zero_index.tolist() == [1, 1, 1]
    np.testing.assert_array_equal(p.weights([2, 0, 1]), [1.0, -2.0, 0.0])
    with pytest.raises(ProblemError, match="not one of its levels"):
        p.check_weights([1.0, -1.0, 0.0])
    with pytest.raises(ProblemError, match="more than k = 2"):
        p.check_weights([1.0, -2.0, 0.5])
    with pytest.raises(ProblemError, match="level indices"):
        p.weights([3, 0, 0])
    q = QuantProblem(H3, W3, scale=0.25, bits=3)
    lp = LevelProblem.from_quant(q, k=1)
    np.testing.assert_array_equal(lp.levels, 0.25 * np.arange(-4, 4))
    assert lp.k == 1 and lp.error(lp.check_weights([0.25, 0, 0])) == q.error([0.25, 0, 0])
    pn = LevelProblem(np.eye(4), np.ones(4), levels=[0.0, 1.0], nm=(1, 2))
    assert pn.k == 2
    with pytest.raises(ProblemError, match="2:4|1:2"):
        pn.check_weights([1.0, 1.0, 0.0, 0.0])


def test_layer_problem_levels():
    lp = LayerProblem(np.eye(4), np.arange(8.0).reshape(2, 4))
    p = lp.levels(1, [0.0, 4.0, 8.0], k=2)
    assert isinstance(p, LevelProblem) and p.k == 2 and p.w0.tolist() == [4, 5, 6, 7]
    with pytest.raises(ProblemError, match="zero as a level"):
        lp.levels(0, [1.0, 2.0], k=1)
