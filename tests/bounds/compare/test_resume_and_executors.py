"""Kill a run mid-way and resume it; process pool and Dask give the same rows as a local run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bounds.compare import ResultStore, run_compare

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = textwrap.dedent("""
    import pathlib, signal, sys, time
    # Ctrl-C raises KeyboardInterrupt here even when this test runs in a background job, whose
    # children inherit SIGINT ignored (a shell without job control does that to '&' commands).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, {tests!r})
    sys.path.insert(0, {root!r})
    import numpy as np
    from solvers.problem import LayerProblem
    from bounds.compare import run_compare

    # Stop mid-run deterministically: after the first stored batch (one chunk's 8 tasks), say
    # so and wait to be killed (however fast or slow the machine, the signal always arrives
    # mid-run).
    from store_pause import pause_after_first_batch
    pause_after_first_batch({ready!r})
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 24)); X[:, 1:] += 0.5 * X[:, :-1]
    P = LayerProblem(X.T @ X, rng.standard_normal((4, 24)) * 0.1, {{"layer": "toy"}})
    run_compare("toy", problems={{"toy": P}}, db={db!r}, workers=1, bits=(2, 4),
                opt_dim=8, channels=1, max_chunks=None, time_limit=30.0, whole_layer=False,
                quant_methods=("adaround", "rtn"), prune_methods=("magnitude",))
""")


def _count(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT count(*) FROM results").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _snapshot(db: Path) -> dict[str, tuple]:
    con = sqlite3.connect(db)
    try:
        return {r[0]: r[1:] for r in con.execute(
            "SELECT task_key, created, seconds, objective, weights FROM results")}
    finally:
        con.close()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_kill_mid_run_then_resume_recomputes_nothing(tmp_path, sig):
    db = tmp_path / "r.sqlite"
    ready = tmp_path / "one-batch-stored"
    script = SCRIPT.format(tests=str(ROOT / "tests"), root=str(ROOT), db=str(db),
                           ready=str(ready))
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    # Output to a file, not a pipe nobody reads: on a cold numba cache the compile bar alone
    # can fill a pipe's buffer, and a child blocked writing its exit traceback never exits.
    log = tmp_path / "child.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 600
        while not ready.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
        assert _count(db) == 8
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = _snapshot(db)
    assert len(before) == 8  # mid-run: one batch of three (a chunk: 2 bits · 4 solves)
    # Every stored row is complete (no half-written rows).
    for _key, (created, seconds, objective, weights) in before.items():
        assert created and seconds is not None and objective is not None and weights
    # Resume in this process: the stored rows are reused untouched, the rest solved.
    import numpy as np

    from solvers.problem import LayerProblem

    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 24))
    X[:, 1:] += 0.5 * X[:, :-1]
    P = LayerProblem(X.T @ X, rng.standard_normal((4, 24)) * 0.1, {"layer": "toy"})
    s = run_compare("toy", problems={"toy": P}, db=db, workers=1, bits=(2, 4), opt_dim=8,
                    channels=1, max_chunks=None, time_limit=30.0, whole_layer=False,
                    quant_methods=("adaround", "rtn"), prune_methods=("magnitude",))
    after = _snapshot(db)
    assert s.reused == len(before) and s.solved == s.tasks - len(before) == len(after) - len(
        before)
    for key, val in before.items():
        assert after[key] == val  # not recomputed, not rewritten


def _rows(db, run_id):
    with ResultStore(db, readonly=True) as st:
        return {r["task_key"]: (r["status"], r["objective"], r["lower_bound"], r["norm"],
                                r["weights"])
                for r in st.rows(run_id, solutions=True)}


DETERMINISTIC = dict(bits=(2, 4), opt_dim=4, channels=1, max_chunks=None, time_limit=60.0,
                     quant_methods=("exact", "rtn", "gptq"),
                     prune_methods=("exact", "magnitude", "obs"))


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        sa, oa, la, na, wa = a[k]
        sb, ob, lb, nb, wb = b[k]
        assert sa == sb
        # the same solve in another process: equal up to rounding of the problem's scale
        tol = 1e-12 * max(na or 0.0, nb or 0.0)
        assert oa == pytest.approx(ob, rel=1e-9, abs=tol)
        assert (la is None) == (lb is None)
        if la is not None:
            assert la == pytest.approx(lb, rel=1e-9, abs=tol)


def test_process_pool_and_dask_agree_with_a_local_run(tmp_path, toy):
    local = run_compare("toy", problems={"toy": toy}, db=tmp_path / "local.sqlite", workers=1,
                        **DETERMINISTIC)
    pool = run_compare("toy", problems={"toy": toy}, db=tmp_path / "pool.sqlite", workers=2,
                       **DETERMINISTIC)
    assert pool.settings["executor"]["kind"] == "pool"
    _same(_rows(tmp_path / "local.sqlite", local.run_id),
          _rows(tmp_path / "pool.sqlite", pool.run_id))
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  protocol="tcp", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        dask = run_compare("toy", problems={"toy": toy}, db=tmp_path / "dask.sqlite",
                           scheduler=cluster.scheduler_address, **DETERMINISTIC)
    assert dask.settings["executor"]["kind"] == "dask"
    assert dask.run_id == local.run_id  # the executor is not part of a run's identity
    _same(_rows(tmp_path / "local.sqlite", local.run_id),
          _rows(tmp_path / "dask.sqlite", dask.run_id))
