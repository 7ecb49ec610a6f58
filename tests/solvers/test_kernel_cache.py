"""Lean cached loads (:mod:`solvers.kernel_cache`) give the same results, without the registries.

Each case runs in fresh processes: one normal, one with :func:`lean_cached_loads` installed
first. The processes run every warm-up call of every group (:mod:`solvers.warm_up`, all paths)
and real ``n = 32`` solves of each solver family, and print their results; the two must agree
to the bit (status, objective, lower bound, nodes, weights). Calls under a time limit run too
but are not compared (their results depend on the clock).

The lean process must not have loaded numba's lowering registries while its kernels came from
the cache: ``numba.typed.dictimpl`` and ``numba.experimental.jitclass.base`` are imported by
numba's registry refresh (``CPUContext.load_additional_registries``) and by no pqbound kernel
(a cached kernel's environment may import the modules of what it calls, e.g.
``numba.np.arraymath``, so those are no witness). The normal process shows the witnesses are
loaded there.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from numba.core import caching

from solvers import kernel_cache

ROOT = Path(__file__).resolve().parents[2]
WITNESSES = ("numba.typed.dictimpl", "numba.experimental.jitclass.base")

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np

    lean, groups, every = sys.argv[1] == "lean", json.loads(sys.argv[2]), sys.argv[3] == "every"
    if lean:
        from solvers.kernel_cache import lean_cached_loads
        assert lean_cached_loads() and lean_cached_loads()
    from numba.core.dispatcher import Dispatcher
    import solvers.warm_up as wu

    def summary(x):
        if hasattr(x, "objective") and hasattr(x, "weights"):
            return {"status": str(x.status), "objective": x.objective,
                    "lower_bound": x.lower_bound, "nodes": x.nodes,
                    "weights": np.asarray(x.weights).tolist()}
        if isinstance(x, (list, tuple)):
            return [summary(v) for v in x]
        if isinstance(x, dict):
            return {str(k): summary(v) for k, v in x.items()}
        if isinstance(x, (np.ndarray, np.generic)):
            return x.tolist()
        return x if isinstance(x, (int, float, str, bool, type(None))) else repr(type(x))

    def timed(call):  # a keyword time_limit in the call: its result depends on the clock
        return any(isinstance(c, tuple) and "time_limit" in c for c in call.__code__.co_consts)

    def solves():
        from solvers.formats import build_levels
        from solvers.levels.exact import solve_levels
        from solvers.problem import LevelProblem, PruneProblem, QuantProblem
        from solvers.prune.exact import solve_exact as prune
        from solvers.quant.exact import solve_exact as quant

        rng = np.random.default_rng(5)
        X = rng.standard_normal((200, 32))
        X[:, 1:] += 0.6 * X[:, :-1]
        H, w0 = X.T @ X, 0.1 * rng.standard_normal(32)
        Xr = np.cumsum(rng.standard_normal((16, 32)), axis=1)  # rank 16
        yield quant(QuantProblem(H, w0, scale=0.03, bits=4))
        yield quant(QuantProblem(H, w0, scale=0.0005, bits=8))  # a binding box: re-centred
        yield quant(QuantProblem(Xr.T @ Xr, w0, scale=0.0008, bits=8), node_limit=3000)
        yield prune(PruneProblem(H, w0, k=8))
        yield prune(PruneProblem(H, w0, nm=(2, 4)))
        yield prune(PruneProblem(H, w0, k=12, box_factor=1.0))  # binds
        for fmt, limit in (("int4-asym-g16", {}), ("nf4-g16", {}), ("fp4-e2m1-g16", {"k": 16}),
                           ("int4", {"nm": (2, 4)})):  # the last stops on its node limit
            f = build_levels(w0, fmt)
            yield solve_levels(LevelProblem(H, w0, levels=f.levels(0), **limit),
                               node_limit=100_000)

    def record(call):
        try:
            result = summary(call())
        except Exception as exc:
            result = f"error {type(exc).__name__}: {exc}"
        results.append(None if timed(call) else result)

    def recording(calls_of):  # each warm-up call's result, as warm_up runs it
        return lambda *a: (lambda c=c: record(c) for c in calls_of(*a))

    results = []
    wu._CALLS = {group: recording(calls_of) for group, calls_of in wu._CALLS.items()}
    with wu.count_compilations() as compiled:
        wu.warm_up(groups, every=every)
        if sys.argv[4] == "solves":
            results += [summary(r) for r in solves()]
    hits = sum(sum(obj.stats.cache_hits.values()) for name, mod in list(sys.modules.items())
               if name.startswith("solvers") and mod is not None
               for obj in vars(mod).values() if isinstance(obj, Dispatcher))
    registries = [m for m in sys.argv[5:] if m in sys.modules]

    from numba import njit

    @njit
    def squares(n):  # compiled after the loads, with a typed dict (a registry they skipped)
        d = dict()
        for i in range(n):
            d[i] = i * i
        total = 0
        for v in d.values():
            total += v
        return total

    print(json.dumps({"results": results, "compiled": len(compiled), "hits": hits,
                      "registries": registries, "squares": squares(5),
                      "registries_after": [m for m in sys.argv[5:] if m in sys.modules]}))
""")


def _run(mode, groups, every=False, solves=True, cache_dir=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, mode, json.dumps(groups),
                           "every" if every else "-", "solves" if solves else "-", *WITNESSES],
                          env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize("every", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_lean_loads_match_normal_loads_on_a_warm_cache(every):
    # every=False: the paths `pqbound solve` warms up (the lean loads' one user); True: all
    groups = ["quant", "prune", "levels", "heuristics", "scales"]
    normal = _run("normal", groups, every)  # first: fills the cache where it is cold
    lean = _run("lean", groups, every)
    assert lean["compiled"] == 0 and lean["hits"] > 50  # every kernel came from the cache
    assert lean["registries"] == []
    assert normal["registries"] == list(WITNESSES)  # the witnesses do witness the refresh
    compared = [r for r in normal["results"] if r is not None]
    assert len(compared) > (300 if every else 100)
    assert not [r for r in compared if isinstance(r, str) and r.startswith("error")]
    assert lean["results"] == normal["results"]
    # a function compiled after the lean loads sees every registry
    assert lean["squares"] == 30 and lean["registries_after"] == list(WITNESSES)


def test_lean_loads_on_an_empty_cache_compile_as_usual(tmp_path):
    normal = _run("normal", ["quant"], solves=False)  # the default (warm) cache
    lean = _run("lean", ["quant"], solves=False, cache_dir=tmp_path)  # an empty one
    assert lean["compiled"] > 0 and lean["hits"] == 0
    assert lean["registries"] == list(WITNESSES)  # a compilation refreshes fully
    assert lean["results"] == normal["results"]


def test_numba_internals_not_as_expected_leave_numba_alone(monkeypatch):
    def load_overload(self, sig, target_context):  # a later numba with another step
        target_context.refresh()
        self.prepare()
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)

    monkeypatch.setattr(caching.Cache, "load_overload", load_overload)  # restored after
    assert kernel_cache.lean_cached_loads() is False
    assert caching.Cache.load_overload is load_overload


@pytest.mark.parametrize("missing", ["_load_overload", "_guard_against_spurious_io_errors"])
def test_a_missing_internal_leaves_numba_alone(monkeypatch, missing):
    original = caching.Cache.load_overload
    monkeypatch.setattr(caching.Cache, "load_overload", original)  # restored after
    monkeypatch.delattr(caching.Cache, missing)
    assert kernel_cache.lean_cached_loads() is False
    assert caching.Cache.load_overload is original
