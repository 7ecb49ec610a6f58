"""Scaling study of our exact solvers, and the anytime bound beyond exact reach.

* time and nodes against ``n`` (4 bits; 25 % density), against the bit width (2–8 bits at a
  fixed n) and against the density (12.5 / 25 / 50 % at a fixed n);
* for sizes beyond exact reach (whole layer widths), the relative gap of the anytime bound when
  stopped at each time limit in ``anytime_limits`` (10 s and 60 s by default).

All runs go through the same worker and row format as the comparison (``study`` tells them apart).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .families import Instance
from .methods import MethodSpec
from .runner import run_comparison
from .worker import SolveWorker, WorkerPool


def run_scaling(
    by_size: dict[str, Sequence[Instance]],
    ours: dict[str, MethodSpec],
    *,
    worker: SolveWorker | WorkerPool,
    time_limit: float,
    bits_list: Sequence[int] = (2, 3, 4, 6, 8),
    density_list: Sequence[float] = (0.125, 0.25, 0.5),
    fixed_n: str = "32",
    box_factor: float | None = None,
    seed: int = 0,
    progress: Any = None,
    high_bits: Sequence[MethodSpec] = (),
    on_row: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Rows for the ``scaling-n``, ``scaling-bits`` and ``scaling-density`` studies.

    ``high_bits`` methods (fpylll's unboxed CVP) join ours at 8 bits and more, where the box
    rarely binds; their rows are compared with ours like in the main comparison.
    """
    rows: list[dict] = []
    sizes = sorted(by_size, key=lambda s: float("inf") if s == "full" else float(s))
    for kind, spec in ours.items():
        for size in sizes:
            rows += run_comparison(by_size[size], [spec], kind=kind, time_limit=time_limit,
                                   bits=4, density=0.25, box_factor=box_factor, worker=worker,
                                   seed=seed, study="scaling-n", progress=progress,
                                   on_row=on_row)
        fixed = by_size.get(fixed_n, [])
        if kind == "quant":
            for b in bits_list:
                specs = [spec] + (list(high_bits) if b >= 8 else [])
                rows += run_comparison(fixed, specs, kind=kind, time_limit=time_limit, bits=b,
                                       worker=worker, seed=seed, study="scaling-bits",
                                       progress=progress, on_row=on_row)
        else:
            for d in density_list:
                rows += run_comparison(fixed, [spec], kind=kind, time_limit=time_limit,
                                       density=d, box_factor=box_factor, worker=worker,
                                       seed=seed, study="scaling-density", progress=progress,
                                       on_row=on_row)
    return rows


def run_anytime(
    instances: Sequence[Instance],
    ours: dict[str, MethodSpec],
    *,
    worker: SolveWorker | WorkerPool,
    limits: Sequence[float] = (10.0, 60.0),
    box_factor: float | None = None,
    seed: int = 0,
    progress: Any = None,
    on_row: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Rows of the ``anytime`` study: our exact solvers stopped at each limit."""
    rows: list[dict] = []
    for kind, spec in ours.items():
        for limit in limits:
            rows += run_comparison(instances, [spec], kind=kind, time_limit=limit, bits=4,
                                   density=0.25, box_factor=box_factor, worker=worker, seed=seed,
                                   study="anytime", progress=progress, on_row=on_row)
    return rows
