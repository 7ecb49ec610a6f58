"""The .npz problem file round-trips and rejects bad files with clear errors."""

import numpy as np
import pytest
from problem_instances import random_hessian

from bounds.problem_file import load_problem, save_problem
from bounds.scale_choice import choose_scales
from solvers.problem import LayerProblem, ProblemError


def test_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    lp = LayerProblem(random_hessian(rng, 6), rng.standard_normal((2, 6)),
                      {"layer": "features.1", "chunk": 0, "input_start": 0, "input_stop": 6,
                       "rows": 18, "dead_inputs": np.zeros(6, bool), "model": "toy"})
    path = save_problem(tmp_path / "p.npz", lp)
    back = load_problem(path)
    assert np.array_equal(back.H, lp.H) and np.array_equal(back.W0, lp.W0)
    assert back.meta["layer"] == "features.1" and back.meta["rows"] == 18
    assert back.meta["model"] == "toy"
    assert back.meta["dead_inputs"].dtype == bool


def test_numpy_only_file_with_w0(tmp_path):
    path = tmp_path / "hand.npz"
    np.savez(path, H=np.eye(3), w0=np.array([0.1, 0.2, 0.3]))
    lp = load_problem(path)
    assert lp.channels == 1 and lp.n == 3


def test_bad_files(tmp_path):
    with pytest.raises(ProblemError, match="does not exist"):
        load_problem(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ProblemError, match="not an .npz file"):
        load_problem(bad)
    np.savez(tmp_path / "noh.npz", W0=np.ones((1, 2)))
    with pytest.raises(ProblemError, match="no 'H'"):
        load_problem(tmp_path / "noh.npz")
    np.savez(tmp_path / "asym.npz", H=np.array([[1.0, 2.0], [0.0, 1.0]]), W0=np.ones((1, 2)))
    with pytest.raises(ProblemError, match="asym.npz: H is not symmetric"):
        load_problem(tmp_path / "asym.npz")


def test_scale_choice_precedence():
    rng = np.random.default_rng(1)
    W0 = rng.standard_normal((3, 5))
    table = np.tile(np.arange(1, 17, dtype=float)[:, None], (1, 3)) * [[1, 2, 3]]
    lp = LayerProblem(np.eye(5), W0, {"scales_mse_channel": table,
                                      "scales_mse_tensor": np.arange(1, 17.0)})
    assert np.allclose(choose_scales(lp, 4), 4.0)
    assert np.allclose(choose_scales(lp, 4, per_channel=True), [4, 8, 12])
    assert np.allclose(choose_scales(lp, 4, scale=0.1), 0.1)
    bare = LayerProblem(np.eye(5), W0)
    assert np.allclose(choose_scales(bare, 4, method="minmax"), np.abs(W0).max() / 7)


def test_scale_table_rows_not_computed_are_a_clear_error():
    table = np.full(16, np.nan)
    table[3] = 0.5
    lp = LayerProblem(np.eye(2), np.ones((1, 2)), {"scales_mse_tensor": table})
    assert choose_scales(lp, 4)[0] == 0.5
    with pytest.raises(ProblemError, match="no entry for 5 bits"):
        choose_scales(lp, 5)
