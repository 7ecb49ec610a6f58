"""Parallel subtrees (``threads``): the same optimum and a valid bound, work really shared,
limits honoured, a worker's error raised on the calling thread."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from problem_instances import KINDS, brute_force_prune, random_hessian, random_prune_case

from solvers.problem import ProblemError, PruneProblem
from solvers.prune import kernels, parallel
from solvers.prune.exact import solve_exact
from solvers.prune.parallel import Workers
from solvers.result import Status

from .prune_reference import brute_force_boxed, check_contract


def _diffuse(seed, n, k):
    """Near-null directions spread over every input: long searches (docs/pruning.md)."""
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    lam = np.r_[np.geomspace(0.005, 0.08, n // 6), rng.uniform(0.2, 2.0, n - n // 6)]
    return PruneProblem((Q * lam) @ Q.T, rng.standard_normal(n), k=k)


@pytest.fixture
def one_node_chunks(monkeypatch):
    """Chunks of one node: the workers hand nodes over as often as they can."""
    monkeypatch.setattr(parallel, "CHUNK_BUDGETS", (1, 1))


@pytest.mark.parametrize("kind", KINDS)
def test_matches_enumeration(kind, one_node_chunks):
    """Unboxed, boxed and N:M problems with two and three threads (weak bounds and no
    heuristics: searches of tens of nodes, handed over one by one)."""
    rng = np.random.default_rng(900 + KINDS.index(kind))
    for t in range(10):
        p = random_prune_case(rng, kind, t)
        if t % 2:
            p = PruneProblem(random_hessian(rng, 12, kind), rng.standard_normal(12),
                             k=int(rng.integers(3, 9)))
        opt, _ = brute_force_prune(p)
        for threads in (2, 3):
            r = solve_exact(p, incumbents=False, diagonal="jacobi", perspective=0,
                            branching="saliency", threads=threads)
            check_contract(p, r, opt)
            assert r.objective <= opt + 1e-7 * max(p.norm, 1e-300)
            assert r.status in (Status.OPTIMAL, Status.GAP_LIMIT)
            assert r.info["threads"] == threads
        boxed = PruneProblem(p.H, p.w0, k=max(1, p.n // 3), box_factor=1.0)
        rb = solve_exact(boxed, incumbents=False, threads=2)
        check_contract(boxed, rb, brute_force_boxed(boxed)[0])


@pytest.mark.parametrize("kind", ["ill", "rankdef"])
def test_nodes_are_handed_over(kind, one_node_chunks):
    """Searches of 50–200 nodes (n = 12, weak bounds): the workers share them, and the
    optimum is enumeration's."""
    rng = np.random.default_rng(900)
    handoffs = 0
    for _ in range(6):
        p = PruneProblem(random_hessian(rng, 12, kind), rng.standard_normal(12),
                         k=int(rng.integers(3, 9)))
        opt, _ = brute_force_prune(p)
        r = solve_exact(p, incumbents=False, diagonal="jacobi", perspective=0,
                        branching="saliency", threads=2)
        check_contract(p, r, opt)
        handoffs += r.info["handoffs"]
    assert handoffs > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_optimum_as_the_serial_search_with_work_shared(seed):
    """n = 36 problems of a few thousand nodes: the workers hand nodes over, and the
    certified optimum is the serial search's."""
    p = _diffuse(seed, 36, 9)
    serial = solve_exact(p)
    par = solve_exact(p, threads=2)
    assert serial.status is Status.OPTIMAL and par.status is Status.OPTIMAL
    assert par.info["handoffs"] > 0
    tol = 1e-9 * p.norm
    assert abs(par.objective - serial.objective) <= tol + 1e-9 * serial.objective
    assert par.lower_bound <= serial.objective + tol
    assert np.isclose(p.error(par.weights), par.objective, rtol=1e-9, atol=tol)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(n=st.integers(2, 9), kind=st.sampled_from(KINDS), seed=st.integers(0, 2**31 - 1),
       threads=st.integers(2, 4), node_limit=st.sampled_from([1, 2, 5, 20, None]))
def test_lower_bound_never_above_the_optimum(n, kind, seed, threads, node_limit,
                                            one_node_chunks):
    rng = np.random.default_rng(seed)
    p = PruneProblem(random_hessian(rng, n, kind), rng.standard_normal(n),
                     k=int(rng.integers(0, n + 1)))
    opt, _ = brute_force_prune(p)
    r = solve_exact(p, diagonal="logdet", node_limit=node_limit, threads=threads,
                    incumbents=bool(seed % 2))
    check_contract(p, r, opt)
    assert r.lower_bound <= opt + 1e-9 * max(p.norm, 1e-300) + 1e-9 * opt
    if node_limit is not None:
        assert r.nodes <= node_limit


def test_node_limit_is_exact_and_the_bound_valid():
    p = _diffuse(3, 48, 12)
    ref = solve_exact(p, node_limit=3000)
    for threads in (2, 3):
        r = solve_exact(p, node_limit=3000, threads=threads, diagonal="logdet")
        assert r.status is Status.NODE_LIMIT
        assert r.nodes == 3000
        assert r.lower_bound <= min(r.objective, ref.objective)
        check_contract(p, r)


def test_time_limit_stops_every_thread():
    """A search that needs tens of seconds, stopped at 0.3 s: the status says so, and the
    process's CPU time (every thread's) stays within what two threads can spend in the limit
    plus the incumbents and one chunk each. CPU time never exceeds wall time per thread, so
    a busy machine cannot fail this."""
    p = _diffuse(0, 64, 16)
    solve_exact(p, node_limit=10, threads=2)  # kernels loaded (or compiled) outside the clock
    c0 = time.process_time()
    r = solve_exact(p, time_limit=0.3, threads=2)
    cpu = time.process_time() - c0
    assert r.status is Status.TIME_LIMIT and "time limit" in r.message
    assert cpu < 2 * (0.3 + 1.5)
    check_contract(p, r)


def test_a_worker_error_reaches_the_caller():
    p = _diffuse(0, 12, 4)
    stack = kernels.new_stack(p.n, 2 * p.n + 4)
    best = kernels.Best(np.array([1.0, np.inf, np.inf]), np.zeros(p.n), np.ones(p.n, bool),
                        np.zeros(4, dtype=np.int64))

    def broken(spec, stack, best, sp, budget):
        """Branches on the calling thread (the ramp-up), fails on a worker's thread."""
        if threading.current_thread() is threading.main_thread():
            return sp + 1, 1
        raise RuntimeError("kernel failed")

    workers = Workers(None, stack, best, 1, 2, chunk=broken)
    with pytest.raises(RuntimeError, match="kernel failed"):
        while workers.open:
            workers.step()
    with pytest.raises(RuntimeError, match="kernel failed"):
        workers.stop()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_threads(bad):
    p = PruneProblem(np.eye(3), np.ones(3), k=1)
    with pytest.raises(ProblemError, match="threads"):
        solve_exact(p, threads=bad)


def test_interrupt_stops_the_workers():
    """Ctrl-C during a threaded search: KeyboardInterrupt on the calling thread, and no worker
    thread left running (they stop at the end of their chunk). Python's SIGINT handler is
    installed for the test: a process started in the background ignores SIGINT, and then
    ``interrupt_main`` does nothing. The time limit only ends the test if that fails."""
    import _thread
    import signal

    p = _diffuse(0, 64, 16)  # tens of seconds of search
    solve_exact(p, node_limit=10, threads=2)  # kernels loaded before the timer starts
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            solve_exact(p, threads=2, time_limit=30)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert not [t for t in threading.enumerate() if t.name.startswith("pqbound-prune-")]
