"""BLAS runs on one thread while pqbound solves, unless the user set a thread count."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from bounds.blas_threads import THREAD_VARS, one_blas_thread


def _blas_threads() -> list[int]:
    return [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]


@pytest.fixture
def no_thread_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    for v in THREAD_VARS:
        monkeypatch.delenv(v, raising=False)


def test_one_thread_inside_and_restored_after(no_thread_vars: None) -> None:
    before = _blas_threads()
    with one_blas_thread():
        assert _blas_threads() and all(t == 1 for t in _blas_threads())
        h = np.eye(40) @ np.eye(40)  # BLAS still works
        assert h[3, 3] == 1.0
    assert _blas_threads() == before


def test_user_choice_is_held(monkeypatch: pytest.MonkeyPatch, no_thread_vars: None) -> None:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(2, user_api="blas"):  # what asking for two gives on this machine
        two = _blas_threads()
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    with threadpool_limits(1, user_api="blas"):  # as a forked worker's BLAS may be
        with one_blas_thread():
            assert _blas_threads() == two


def test_unreadable_choice_leaves_blas_alone(monkeypatch, no_thread_vars) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "auto")
    before = _blas_threads()
    with one_blas_thread():
        assert _blas_threads() == before


def test_solve_file_runs_with_one_blas_thread(tmp_path, monkeypatch, no_thread_vars) -> None:
    import bounds.batch_solve as bs

    seen: list[list[int]] = []

    def spy(path, settings, progress):
        seen.append(_blas_threads())
        return {"problem": path}, []

    monkeypatch.setattr(bs, "_solve_file", spy)
    out = bs.solve_file(tmp_path / "x.npz", bs.SolveSettings(kind="quant", method="rtn", bits=4))
    assert out.ok and seen and all(t == 1 for t in seen[0])
