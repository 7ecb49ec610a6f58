"""Load (or, on a cold numba cache, compile) the solvers' kernels before any timed solve.

The warm-up itself is :func:`solvers.warm_up.warm_up`: tiny problems through every compiled
path, untimed, so that no compilation is charged to a task's time limit (on a cold cache the
kernels take minutes to compile; inside a task that time would turn short limits into time-outs
that say nothing about the problem). Here:

* :func:`warm_up` — what every executor runs in each process that will solve (the pool's
  initializer, Dask's ``client.run``): the groups a comparison uses, quietly.
* :func:`warm_up_announced` — what :func:`~bounds.compare.run.run_compare` runs first in its own
  process: the same groups, and as soon as numba starts compiling (a fresh install, or kernels
  changed since the cache was filled) it says so on stderr, ``compiling solver kernels (first
  run only)``, with a bar over the kernel groups. The workers started afterwards then load the
  kernels from the filled cache in seconds, and the solving bar (and its ETA) starts only then.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

log = logging.getLogger(__name__)

COMPARE_GROUPS = ("quant", "prune", "heuristics")
#: with ``--formats`` (tasks of kind ``levels``) the main process also warms the level solver;
#: a serial run solves in that process, pool workers then load its kernels from the filled cache
FORMAT_GROUPS = ("levels",)
MESSAGE = "compiling solver kernels (first run only)"


def warm_up() -> None:
    """Run every compiled path of a comparison's methods on tiny problems (never raises)."""
    from solvers.warm_up import warm_up as run

    run(COMPARE_GROUPS)


def warm_up_announced(progress: bool = True, stream: TextIO | None = None, *,
                      groups: tuple[str, ...] = COMPARE_GROUPS) -> dict[str, Any]:
    """:func:`warm_up`, announcing compilation on ``stream`` (stderr) when it happens.

    Nothing is printed when every kernel loads from the cache, or when ``progress`` is false.
    Returns ``{"seconds": …, "compiled": number of kernel signatures compiled, "groups": …}``.
    """
    from solvers.warm_up import GROUP_TITLES, count_compilations
    from solvers.warm_up import warm_up as run

    stream = sys.stderr if stream is None else stream
    state: dict[str, Any] = {"bar": None, "group": None, "index": 0}

    def on_group(name: str | None, i: int, total: int) -> None:
        bar = state["bar"]
        if bar is not None:
            bar.update(i - bar.n)
            if name is not None:
                bar.set_description(f"compiling: {GROUP_TITLES[name]}")
        state.update(group=name, index=i, total=total)

    def on_compile(_: str) -> None:
        if state["bar"] is not None or not progress:
            return
        from tqdm import tqdm

        print(f"pqbound: {MESSAGE}", file=stream, flush=True)
        bar = tqdm(total=state["total"], initial=state["index"], unit="group", file=stream,
                   dynamic_ncols=True, leave=True)
        if state["group"] is not None:
            bar.set_description(f"compiling: {GROUP_TITLES[state['group']]}")
        state["bar"] = bar

    t0 = time.perf_counter()
    try:
        with count_compilations(on_compile) as compiled:
            groups = run(groups, on_group=on_group)
    finally:
        if state["bar"] is not None:
            state["bar"].close()
    seconds = time.perf_counter() - t0
    if compiled:
        log.info("compiled %d kernel signatures in %.1f s", len(compiled), seconds)
    return {"seconds": seconds, "compiled": len(compiled), "groups": groups}
