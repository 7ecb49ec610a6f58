"""A solve worker in its own process: hard time-outs and crash isolation for every solve.

General solvers are C libraries; a time limit they overrun, or a crash inside them, must not take
the suite down. Each solve runs in one long-lived child process (started with ``spawn``, threads
pinned to one before numpy loads). The parent waits ``hard_timeout(time_limit)`` seconds for the
answer; past that it kills the child, records the solve as ``killed``, and starts a fresh child
(warming it up again). Timings are taken inside the child, around the method call alone.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
import traceback
from typing import Any

log = logging.getLogger(__name__)


def hard_timeout(time_limit: float | None) -> float:
    """How long the parent waits for one solve before killing the worker."""
    if time_limit is None:
        return 3600.0
    return max(3.0 * time_limit, time_limit + 5.0)


def _child(conn: Any) -> None:
    from .threads import pin_threads

    pin_threads(1)
    import warnings

    warnings.simplefilter("ignore")
    from solvers.problem import ProblemError

    from .extra_solvers import LicenceSizeError
    from .methods import MethodSpec

    cache: dict[tuple[str, str], Any] = {}
    conn.send("ready")
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        spec: MethodSpec = msg["spec"]
        key = (spec.kind, spec.name)
        try:
            if key not in cache:
                cache[key] = spec.load()
            fn = cache[key]
            opts = dict(spec.options)
            opts.update(msg.get("options") or {})
            t0 = time.perf_counter()
            res = fn(msg["problem"], time_limit=msg["time_limit"], **opts)
            wall = time.perf_counter() - t0
            conn.send({"ok": True, "result": res, "wall": wall})
        except LicenceSizeError as exc:
            conn.send({"ok": False, "licence": True, "error": str(exc), "wall": 0.0})
        except ProblemError as exc:  # the method does not apply to this problem
            conn.send({"ok": False, "not_applicable": True, "error": str(exc), "wall": 0.0})
        except Exception as exc:
            text = f"{type(exc).__name__}: {exc}"
            conn.send({"ok": False, "licence": _is_licence(text), "error": text,
                       "trace": traceback.format_exc(limit=3), "wall": 0.0})


def _is_licence(text: str) -> bool:
    """Size-limited licence refusals (Gurobi's pip licence, CPLEX / Xpress community)."""
    t = text.lower()
    return ("size-limited" in t or "too large" in t or "size limit" in t
            or "promotional version" in t or "community licen" in t)


def tiny_problems(kind: str) -> list[Any]:
    """The warm-up problems: n = 8, 3 bits / k = 3 with and without the paper's box (numba
    compiles the boxed and the unboxed pruning kernels separately, tens of seconds each on a
    cold cache)."""
    import numpy as np

    from solvers.problem import PruneProblem, QuantProblem

    rng = np.random.default_rng(12345)
    X = rng.standard_normal((24, 8))
    H = X.T @ X
    w0 = rng.standard_normal(8)
    if kind == "quant":
        return [QuantProblem(H, w0, scale=0.3, bits=3)]
    return [PruneProblem(H, w0, k=3, box_factor=2.0), PruneProblem(H, w0, k=3)]


class SolveWorker:
    """One child process that solves on request (see the module docstring)."""

    #: Seconds a fresh child may take to import its modules (generous: the machine may be busy).
    STARTUP_TIMEOUT = 300.0
    #: Time limit of a warm-up solve (first numba compilation may be slow).
    WARM_LIMIT = 30.0

    def __init__(self) -> None:
        self._ctx = mp.get_context("spawn")
        self._proc: Any = None
        self._conn: Any = None
        self._warmed: set[tuple[str, str]] = set()
        self.restarts = 0

    def start(self) -> None:
        """Start the child and wait until it has imported its modules."""
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_child, args=(child,), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        self._warmed = set()
        if not parent.poll(self.STARTUP_TIMEOUT) or parent.recv() != "ready":
            raise RuntimeError("the solve worker did not start")

    def warm(self, spec: Any) -> dict[str, Any]:
        """One tiny solve of ``spec`` in this child (imports, numba cache, licence check)."""
        if self._proc is None or not self._proc.is_alive():
            self.start()
        for problem in tiny_problems(spec.kind):
            answer = self._call(spec, problem, self.WARM_LIMIT, None)
            if self._proc is None:  # killed: the next solve restarts the child
                break
        self._warmed.add((spec.kind, spec.name))
        return answer

    def solve(self, spec: Any, problem: Any, time_limit: float | None,
              options: dict[str, Any] | None = None) -> dict[str, Any]:
        """``{"ok": True, "result": SolveResult, "wall": s}`` or an error / ``killed`` dict.

        A method not yet run in the current child is warmed up first (untimed), so a restart
        after a kill does not charge start-up costs to the next solve.
        """
        if self._proc is None or not self._proc.is_alive():
            self.start()
        if (spec.kind, spec.name) not in self._warmed:
            self.warm(spec)
            if self._proc is None:
                self.start()
        return self._call(spec, problem, time_limit, options)

    def _call(self, spec: Any, problem: Any, time_limit: float | None,
              options: dict[str, Any] | None) -> dict[str, Any]:
        self._conn.send({"spec": spec, "problem": problem, "time_limit": time_limit,
                         "options": options})
        limit = hard_timeout(time_limit)
        if self._conn.poll(limit):
            try:
                return self._conn.recv()
            except EOFError:
                pass
            self._kill()
            return {"ok": False, "killed": True, "error": "worker crashed", "wall": float("nan")}
        log.warning("%s %s overran its time limit by far (%.0f s): killing the worker",
                    spec.kind, spec.name, limit)
        self._kill()
        return {"ok": False, "killed": True,
                "error": f"killed after {limit:.0f} s (time limit {time_limit} s ignored)",
                "wall": limit}

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(5)
        self._proc = None
        self.restarts += 1

    def close(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            try:
                self._conn.send(None)
                self._proc.join(5)
            except (OSError, BrokenPipeError):
                pass
            if self._proc.is_alive():
                self._proc.kill()
        self._proc = None

    def __enter__(self) -> SolveWorker:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


#: Methods that must not share a process with the others: ortools and highspy (also loaded by
#: cvxpy) bundle different HiGHS builds, and whichever loads second fails with undefined symbols.
ISOLATED = {"cpsat": "ortools"}


class WorkerPool:
    """One :class:`SolveWorker` per isolation group, used one at a time (same interface).

    Solves still run strictly one after another, so timings stay side by side; a method listed
    in :data:`ISOLATED` just runs in its own child process.
    """

    def __init__(self) -> None:
        self._workers: dict[str, SolveWorker] = {}

    def _for(self, spec: Any) -> SolveWorker:
        group = ISOLATED.get(spec.name, "main")
        if group not in self._workers:
            w = SolveWorker()
            w.start()
            self._workers[group] = w
        return self._workers[group]

    @property
    def restarts(self) -> int:
        return sum(w.restarts for w in self._workers.values())

    def start(self) -> None:
        self._for(type("Main", (), {"name": "", "kind": ""})())

    def warm(self, spec: Any) -> dict[str, Any]:
        return self._for(spec).warm(spec)

    def solve(self, spec: Any, problem: Any, time_limit: float | None,
              options: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._for(spec).solve(spec, problem, time_limit, options)

    def close(self) -> None:
        for w in self._workers.values():
            w.close()
        self._workers.clear()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
