"""Parallel subtrees: the depth-first search of :mod:`solvers.prune.search` on several threads.

Each worker owns a node stack (:class:`~solvers.prune.kernels.NodeStack`) and a record of its
results (:class:`~solvers.prune.kernels.Best`) and runs the compiled chunk kernel
(:func:`~solvers.prune.kernels.dfs_chunk`, compiled without the GIL) on them in its own
thread, one chunk (~20 ms) after another. Before and after each chunk, under a lock,

* **the incumbent is exchanged**: a better incumbent of the worker becomes the shared one
  (:attr:`Workers.top`); a worse one is replaced by it, and the worker files its own
  incumbent's leaf bound with its closed subtrees, exactly as the serial search does when a
  better incumbent appears;
* **work is shared**: a worker whose stack is empty asks for work, and the next worker to end a
  chunk with two or more open nodes hands it the *bottom* node of its stack. A depth-first
  stack holds the unexplored siblings of the current path, shallowest at the bottom, so that
  node roots the largest subtree left. The search ends when every worker waits for work.

At the start, worker 0 alone expands the root until there is a node for every worker.
The calling thread meanwhile watches the limits and runs the local search on the shared
incumbent (:func:`solvers.prune.search.run_search`'s ``polish``), without stopping the workers.

Why the result is the serial one: every open node lies in exactly one stack and every closed
subtree was closed by exactly one worker, against an incumbent value at least the final one. So
the lower bound is, as in the serial search, the least of the closed subtrees' bounds, the
incumbents' leaf bounds and the open nodes' bounds, over all workers; and a search that
empties every stack has the optimum (within the fathoming tolerance). Which nodes are visited,
and so the node count, depends on the timing of the chunks; the certified optimum does not.

With one worker no thread is started: :meth:`Workers.step` runs the serial search's chunks.
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np

from . import kernels

#: chunk budgets (nodes) are tuned towards this range of seconds per chunk, within
#: :data:`CHUNK_BUDGETS`; several workers start at the least budget, so that the first
#: hand-off comes early (one worker: at 64, the serial search's start)
CHUNK_SECONDS = (0.01, 0.04)
CHUNK_BUDGETS = (8, 1 << 20)
#: with several workers, how long the calling thread waits per :meth:`Workers.step` before it
#: looks at the limits again
POLL_SECONDS = 0.005


class Workers:
    """The stacks and records of ``threads`` workers searching the tree of ``spec``
    (:class:`~solvers.prune.kernels.SearchSpec`); worker 0 starts with ``stack`` (``sp`` slots
    in use) and ``best``, the others empty with the same incumbent. ``chunk``: the chunk kernel
    (default :func:`~solvers.prune.kernels.dfs_chunk`).

    :attr:`top` is the shared incumbent (a :class:`~solvers.prune.kernels.Best` whose
    ``counters[2]`` counts the improvements made to it directly, by the caller's local
    search); change it only inside ``with workers.lock``. With one worker :meth:`step` runs
    one chunk on the calling thread (the serial search); with more, the first call starts the
    threads and each call waits a little (:data:`POLL_SECONDS`) for them.
    """

    def __init__(self, spec, stack, best, sp: int, threads: int, chunk=None):
        cap, n = stack.w.shape
        self.spec = spec
        self.chunk = kernels.dfs_chunk if chunk is None else chunk
        self.stacks = [stack] + [kernels.new_stack(n, cap) for _ in range(threads - 1)]
        fstate = np.array([best.fstate[0], math.inf, math.inf])
        self.bests = [best] + [
            kernels.Best(fstate.copy(), best.w.copy(), best.mask.copy(),
                         np.zeros_like(best.counters)) for _ in range(threads - 1)]
        self.top = kernels.Best(fstate.copy(), best.w.copy(), best.mask.copy(),
                                np.zeros_like(best.counters))
        self.sps = [int(sp)] + [0] * (threads - 1)
        self.budgets = [64 if threads == 1 else CHUNK_BUDGETS[0]] * threads
        self.nodes = 0  # nodes of the chunks that ended
        self.handoffs = 0  # nodes handed from one worker to another
        self.lock = threading.Lock()
        self._changed = threading.Condition(self.lock)
        self._inflight = [0] * threads  # budget of each running chunk
        self._waiting: set[int] = set()  # workers asking for work
        self._node_limit: int | None = None
        self._halt = False
        self._threads: list[threading.Thread] = []
        self._error: BaseException | None = None

    @property
    def open(self) -> int:
        """Open nodes over all stacks, running chunks' counted at their start (0: the search
        is complete)."""
        return sum(self.sps)

    def counter(self, i: int) -> int:
        """Counter ``i`` of :class:`~solvers.prune.kernels.Best` over the workers and
        :attr:`top` (read while chunks run: a snapshot)."""
        return int(sum(int(b.counters[i]) for b in self.bests) + self.top.counters[i])

    def step(self, node_limit: int | None = None) -> None:
        """Advance the search (see the class docstring). With ``node_limit``, the nodes of
        the chunks ended and running never exceed it."""
        self._node_limit = node_limit
        if len(self.stacks) == 1:
            b = self._budget(0)
            if self.sps[0] and b > 0:
                self._exchange(0)  # a better incumbent from the local search, before the chunk
                self._ended(0, *self._timed(0, b))
            return
        if not self._threads:
            self._ramp_up()
            self._threads = [threading.Thread(target=self._work, args=(i,), daemon=True,
                                              name=f"pqbound-prune-{i}")
                             for i in range(len(self.stacks))]
            for t in self._threads:
                t.start()
        with self._changed:
            if self.open and self._error is None:
                self._changed.wait(POLL_SECONDS)
        if self._error is not None:
            raise self._error

    def _ramp_up(self) -> None:
        """Before the threads start: worker 0 runs one node at a time until its stack holds a
        node for every worker (or the search ends), then hands one to each of the others."""
        while 0 < self.sps[0] < len(self.stacks) and self._budget(0) > 0:
            self._ended(0, *self._timed(0, 1))
        for j in range(1, len(self.stacks)):
            if self.sps[0] < 2:
                break
            self._move_bottom(0, j)

    def stop(self) -> None:
        """Let the running chunks end: afterwards every stack and record is at rest and
        :attr:`top` holds the best incumbent. Ends the threads."""
        with self._changed:
            self._halt = True
            self._changed.notify_all()
        for t in self._threads:
            t.join()
        for i in range(len(self.bests)):
            self._exchange(i)
        if self._error is not None:
            raise self._error

    def _work(self, i: int) -> None:
        """Thread body of worker ``i``: chunks until halted or every worker waits for work."""
        try:
            while True:
                with self._changed:
                    while not self._halt and (self.sps[i] == 0 or self._budget(i) == 0):
                        if self.sps[i] == 0:
                            self._waiting.add(i)
                            if len(self._waiting) == len(self.stacks):  # search complete
                                self._changed.notify_all()
                                return
                        self._changed.wait()
                    if self._halt:
                        return
                    self._waiting.discard(i)
                    self._exchange(i)
                    b = self._inflight[i] = self._budget(i)
                out = self._timed(i, b)
                with self._changed:
                    self._inflight[i] = 0
                    self._ended(i, *out)
                    self._give(i)
                    self._changed.notify_all()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the calling thread
            with self._changed:
                self._error = exc
                self._halt = True
                self._changed.notify_all()

    def _budget(self, i: int) -> int:
        if self._node_limit is None:
            return self.budgets[i]
        left = self._node_limit - self.nodes - sum(self._inflight)
        return max(0, min(self.budgets[i], left))

    def _timed(self, i: int, budget: int):
        t0 = time.perf_counter()
        sp, done = self.chunk(self.spec, self.stacks[i], self.bests[i], self.sps[i], budget)
        return sp, done, time.perf_counter() - t0

    def _ended(self, i: int, sp: int, done: int, seconds: float) -> None:
        """Worker ``i``'s chunk ended: its stack size, budget, and incumbent exchange."""
        self.sps[i] = int(sp)
        self.nodes += int(done)
        if seconds < CHUNK_SECONDS[0]:
            self.budgets[i] = min(self.budgets[i] * 2, CHUNK_BUDGETS[1])
        elif seconds > CHUNK_SECONDS[1]:
            self.budgets[i] = max(self.budgets[i] // 2, CHUNK_BUDGETS[0])
        self._exchange(i)

    def _exchange(self, i: int) -> None:
        """Worker ``i`` (at rest) and :attr:`top` end with the better incumbent of the two."""
        b, top = self.bests[i], self.top
        if b.fstate[0] < top.fstate[0]:
            top.fstate[0] = b.fstate[0]
            top.mask[:] = b.mask
            top.w[:] = b.w
        elif b.fstate[0] > top.fstate[0]:
            b.fstate[1] = min(b.fstate[1], b.fstate[2])  # its incumbent's leaf: now closed
            b.fstate[0] = top.fstate[0]
            b.fstate[2] = math.inf  # (the new incumbent's leaf bound stays with its finder)
            b.mask[:] = top.mask
            b.w[:] = top.w

    def _give(self, i: int) -> None:
        """Worker ``i`` (at rest) hands the bottom node of its stack to each worker waiting
        for work, while it keeps a node of its own."""
        for j in sorted(self._waiting):
            if self.sps[i] < 2:
                return
            self._move_bottom(i, j)
            self._waiting.discard(j)

    def _move_bottom(self, src: int, dst: int) -> None:
        """Slot 0 of stack ``src`` becomes the top of stack ``dst``; ``src`` shifts down."""
        k = self.sps[src]
        t = self.sps[dst]
        for a, b in zip(self.stacks[src], self.stacks[dst], strict=True):
            b[t] = a[0]
            a[:k - 1] = a[1:k]  # numpy copies overlapping slices correctly
        self.sps[src] = k - 1
        self.sps[dst] = t + 1
        self.handoffs += 1
