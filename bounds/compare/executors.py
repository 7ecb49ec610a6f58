"""Where tasks run: in this process, in a local process pool, or on a Dask cluster.

Every executor runs *batches* of tasks: ``execute_batches(batches) -> iterator of row lists``
yields each batch's rows (:func:`~bounds.compare.tasks.run_batch`, in the batch's order) as soon
as the batch finishes (in completion order), so the caller stores them at once, in one
transaction. A batch is one unit of shipping, solving and storing: a worker gets its tasks in
one message (an ``H`` shared by its tasks is pickled once), solves them with BLAS on one thread,
and returns their rows together. ``execute(tasks)`` is the same with one task per batch.
Interrupting the generator (``KeyboardInterrupt``, ``close()``) cancels what has not started;
rows already yielded are the caller's. Only a bounded window of batches is in flight at a time
(``2 × workers``), so memory stays flat on long runs.

Every executor first runs :func:`~bounds.compare.warm_up.warm_up` in each process that will
solve, so numba's compilation is never charged to a task's time limit.

* :class:`SerialExecutor`: ``workers = 1``; no subprocess (easy to debug, used by tests).
* :class:`PoolExecutor`: ``concurrent.futures.ProcessPoolExecutor`` with the ``spawn`` start
  method (safe after torch has started threads); children get ``OMP_NUM_THREADS=1`` and friends
  so N workers use N cores, not N². Workers end when the parent process dies, even by
  ``SIGKILL`` (:func:`die_with_parent`), so a killed run leaves no solver running.
* :class:`DaskExecutor`: ``distributed.Client(address)``; tasks are shipped with their data, rows
  come back to the client, which alone writes the store. Workers need pqbound installed (same
  version) to import :func:`bounds.compare.tasks.run_task`.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, wait
from typing import Any

from solvers.problem import ProblemError

from .tasks import Task, run_batch
from .warm_up import warm_up

log = logging.getLogger(__name__)

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def default_workers() -> int:
    """``os.cpu_count()`` (at least 1)."""
    return max(1, os.cpu_count() or 1)


class _Batches:
    """``execute(tasks)``: rows one task at a time, through ``execute_batches``."""

    def execute(self, tasks: Iterable[Task]) -> Iterator[dict[str, Any]]:
        gen = self.execute_batches([t] for t in tasks)
        try:
            for rows in gen:
                yield from rows
        finally:
            gen.close()


class SerialExecutor(_Batches):
    name = "serial"
    workers = 1

    def __init__(self) -> None:
        self._warm = False

    def start(self) -> None:
        """Warm up this process (once)."""
        if not self._warm:
            warm_up()
            self._warm = True

    def execute_batches(self, batches: Iterable[list[Task]]) -> Iterator[list[dict[str, Any]]]:
        self.start()
        for batch in batches:
            yield run_batch(batch)

    def close(self) -> None:
        pass


class PoolExecutor(_Batches):
    """A local process pool of ``workers`` processes."""

    name = "pool"

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ProblemError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._pool = None

    def _start(self) -> Any:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        saved = {v: os.environ.get(v) for v in _THREAD_VARS}
        for v in _THREAD_VARS:
            os.environ[v] = "1"
        try:
            pool = ProcessPoolExecutor(max_workers=self.workers,
                                       mp_context=mp.get_context("spawn"),
                                       initializer=_start_worker, initargs=(os.getpid(),))
            # Start the workers now, while the environment says one thread each.
            list(pool.map(_noop, range(self.workers)))
        finally:
            for v, old in saved.items():
                if old is None:
                    os.environ.pop(v, None)
                else:
                    os.environ[v] = old
        return pool

    def start(self) -> None:
        """Start the workers and wait until every one is warmed up (once)."""
        if self._pool is None:
            self._pool = self._start()

    def execute_batches(self, batches: Iterable[list[Task]]) -> Iterator[list[dict[str, Any]]]:
        self.start()
        pool = self._pool
        yield from _windowed(lambda b: pool.submit(run_batch, b), batches, 2 * self.workers,
                             lambda f: f.result(), _cancel_futures)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class DaskExecutor(_Batches):
    """Tasks on a Dask distributed cluster at ``address`` (``tcp://host:port``)."""

    name = "dask"

    def __init__(self, address: str) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise ProblemError(
                "--scheduler needs dask distributed: pip install 'pqbound[dask]'") from None
        try:
            self.client = Client(address, timeout="20s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ProblemError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        info = self.client.scheduler_info()
        self.workers = max(1, sum(w.get("nthreads", 1) for w in info["workers"].values()))
        self.address = address
        self._warm = False

    def start(self) -> None:
        """Warm up every worker (once)."""
        if self._warm:
            return
        self._warm = True
        try:
            self.client.run(warm_up)  # once on every worker
        except Exception as exc:  # noqa: BLE001 - a warm-up never fails the run
            log.warning("warm-up on the Dask workers failed: %s", exc)

    def execute_batches(self, batches: Iterable[list[Task]]) -> Iterator[list[dict[str, Any]]]:
        from distributed import as_completed

        it = iter(batches)
        window = 2 * self.workers
        self.start()

        def submit(b: list[Task]) -> Any:
            return self.client.submit(run_batch, b, pure=False,
                                      key=f"pqbound-{b[0].key[:24]}-{len(b)}")

        first = [submit(t) for t in itertools.islice(it, window)]
        ac = as_completed(first, loop=self.client.loop)
        try:
            for fut in ac:
                rows = fut.result()
                nxt = next(it, None)
                if nxt is not None:
                    ac.add(submit(nxt))
                yield rows
        finally:
            pending = list(ac.futures)
            for f in pending:
                f.cancel()

    def close(self) -> None:
        self.client.close()


def make_executor(workers: int | None = None, scheduler: str | None = None) -> Any:
    """The executor for ``--workers N`` / ``--scheduler ADDRESS``."""
    if scheduler:
        if workers not in (None, 0):
            raise ProblemError("give either --workers or --scheduler, not both")
        return DaskExecutor(scheduler)
    w = default_workers() if workers is None else int(workers)
    if w < 1:
        raise ProblemError(f"--workers must be >= 1, got {w}")
    return SerialExecutor() if w == 1 else PoolExecutor(w)


def _noop(i: int) -> int:
    return i


def _start_worker(parent: int) -> None:
    """A pool worker's initializer: end with ``parent``, then compile the kernels."""
    die_with_parent(parent)
    warm_up()


#: ``prctl`` option: the signal a process gets when its parent dies (linux/prctl.h).
_PR_SET_PDEATHSIG = 1
#: How often the watchdog thread checks the parent (seconds).
WATCH_INTERVAL = 0.5


def die_with_parent(parent: int) -> None:
    """End this process (``SIGKILL``) as soon as process ``parent`` is gone.

    Two mechanisms, because a worker may sit for minutes in a compiled kernel that holds the
    GIL: on Linux the kernel's ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, which needs no Python
    code to run (it fires when the *thread* that started this process ends: the pool is made,
    used and closed by one thread, :func:`run_compare`'s); and everywhere a daemon thread that
    checks ``os.getppid()`` every :data:`WATCH_INTERVAL` seconds and exits when this process
    has been handed to another parent. A worker has nothing to clean up: only the parent
    writes the store.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
                log.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        except (OSError, AttributeError) as exc:
            log.debug("prctl unavailable: %s", exc)
    if os.getppid() != parent:  # the parent died before the above took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_INTERVAL)
        os._exit(1)

    threading.Thread(target=watch, name="pqbound-parent-watch", daemon=True).start()


def _cancel_futures(futs: Iterable[Any]) -> None:
    for f in futs:
        f.cancel()


def _windowed(submit: Any, tasks: Iterable[Task], window: int, result: Any, cancel: Any,
              waiter: Any = None) -> Iterator[dict[str, Any]]:
    """Keep ``window`` tasks in flight; yield rows as they complete."""
    it = iter(tasks)
    pending: set = set()
    waiter = waiter or (lambda fs: wait(fs, return_when=FIRST_COMPLETED))
    try:
        for t in it:
            pending.add(submit(t))
            if len(pending) >= window:
                break
        while pending:
            done, pending = waiter(pending)
            pending = set(pending)
            for f in done:
                row = result(f)
                for t in it:
                    pending.add(submit(t))
                    if len(pending) >= window:
                        break
                yield row
    finally:
        if pending:
            cancel(pending)
