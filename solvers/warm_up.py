"""Compile (or load from numba's cache) every compiled solver path before any timed solve.

numba compiles a kernel on its first call in a process for each new argument-type signature, or
loads it from the on-disk cache (``cache=True``) when an earlier run compiled it. Either costs
time: on a cold cache (a fresh install) tens of seconds per kernel module, on a warm one tens of
milliseconds. A kernel met for the first time inside a timed solve charges that time to the
solve (and, while numba compiles, the solver's clock is not checked, so a time limit is overrun).

:func:`warm_up` runs tiny problems (``n = 6``) through every compiled path, group by group
(:data:`GROUPS`), untimed, so that the real solves afterwards find every signature they need
loaded:

* ``quant`` — the exact quantization search in every ordering (box-aware, V-BLAST, natural; 4
  and 8 bits), the LLL-reduced search, the search re-centred on the box relaxation (a box that
  binds), stopped on a limit (the open nodes' bound), the
  Lagrangian bound with and without dual-lattice cut rounds, the neighbourhood search.
* ``prune`` — the exact pruning search, unboxed and boxed (the paper's big-M box, and one that
  binds, so that the boxed refit runs), with the automatic two-phase schedule (Jacobi split
  without the perspective bound, then the log-det split with it) and every diagonal split by
  name, both branching rules, N:M patterns, the split re-optimised at the nodes
  (``resplit``); stopped on a node limit too.
* ``levels`` — the exact solver over level sets, plain, with a nonzero limit and with N:M.
* ``heuristics`` — the practical methods, per channel and vectorised over a layer.
* ``scales`` — the scale searches (per tensor and per channel).

Every solver group runs on a full-rank, a rank-deficient and a dead-input ``H``. ``every=False``
leaves out the paths only a named option selects, ``stopped=False`` those only a solve stopped
by a time or node limit takes (the open nodes' bound, the Lagrangian bound, its cut rounds, the
neighbourhood search; for quantization the 8-bit solves of a singular ``H``, which only a limit
ends): both for a quick ``pqbound solve`` without a limit, whose first ``seconds`` these loads
would otherwise not touch but whose wall time they would.

The problems are the same every time and the kernels are deterministic, so two warm-ups compile
the same signatures; :func:`count_compilations` counts numba's compilations (cache misses)
while it is active, which is how the tests prove that no compilation happens inside a solve.
Nothing here may fail a run: an error in one call is logged and the warm-up goes on.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

GROUP_TITLES: dict[str, str] = {
    "quant": "exact quantization",
    "prune": "exact pruning",
    "levels": "exact solving over levels",
    "heuristics": "practical methods",
    "scales": "scale search",
}
GROUPS: tuple[str, ...] = tuple(GROUP_TITLES)
_DONE: set[tuple[str, bool, bool]] = set()  # (group, every, stopped) warmed up in this process


def _tiny(kind: str = "full") -> tuple[np.ndarray, np.ndarray]:
    """A 6-input ``(H, w0)``: full rank, rank-deficient (rank 3) or with a dead input."""
    rng = np.random.default_rng(0)
    rows = 3 if kind == "rankdef" else 16
    X = np.cumsum(rng.standard_normal((rows, 6)), axis=1)
    if kind == "dead":
        X[:, 2] = 0.0
    return X.T @ X, np.linspace(-0.6, 0.7, 6)


def _quant_calls(every: bool, stopped: bool = True) -> Iterator[Callable[[], Any]]:
    from solvers.problem import QuantProblem
    from solvers.quant.exact import solve_exact
    from solvers.quant.neighbourhood import improve

    for kind in ("full", "rankdef", "dead"):
        H, w0 = _tiny(kind)
        for bits, scale in ((4, 0.1), (8, 0.006)):
            q = QuantProblem(H, w0, scale=scale, bits=bits)
            # 8 bits on a singular H takes ~10⁷ nodes to finish: bounded (its kernels are
            # the same as at 4 bits, where the search finishes)
            nl = 20_000 if kind != "full" and bits == 8 else None
            if nl is not None and not stopped:
                continue  # a node-limited (stopped) solve of the 4-bit kernels
            yield lambda q=q, nl=nl: solve_exact(q, node_limit=nl)
            # the LLL-reduced search; stopped at once, the open nodes' bound too
            rl = 2 if stopped else None
            yield lambda q=q, rl=rl: solve_exact(q, node_limit=rl, reduction=True)
            if every:
                for ordering in ("box", "vblast", "natural"):
                    yield lambda q=q, o=ordering, nl=nl: solve_exact(q, ordering=o,
                                                                     reduction=False,
                                                                     node_limit=nl)
    # a box that binds (clipped targets): the re-centred search, exhausted and stopped
    H, w0 = _tiny()
    qc = QuantProblem(H, w0, scale=0.05, bits=4)
    yield lambda: solve_exact(qc, recentre=True, reduction=False)
    if not stopped:
        return
    yield lambda: solve_exact(qc, node_limit=2, recentre=True, reduction=False)
    q = QuantProblem(H, w0, scale=0.1, bits=4)
    # a limit with time left: the Lagrangian bound (numpy, but it calls the search kernels)
    # and its dual-lattice cut rounds
    yield lambda: solve_exact(q, node_limit=2, time_limit=0.02, lagrangian=True,
                              neighbourhood=True, reduction=True)
    c = w0 / 0.1
    z = np.clip(np.rint(c), -8, 7).astype(np.int64)
    yield lambda: improve(H, c, -8, 7, z, time_limit=0.02, window=4, max_window=6,
                          max_windows=4, restarts=True)


def _prune_calls(every: bool, stopped: bool = True) -> Iterator[Callable[[], Any]]:
    from solvers.problem import PruneProblem
    from solvers.prune import exact

    for kind in ("full", "rankdef", "dead"):
        H, w0 = _tiny(kind)
        # no box; the paper's box (rarely binding); a box that binds (the boxed refit)
        for box in (None, 2.0, 0.3):
            for limit in ({"k": 3}, {"nm": (1, 2)}):
                p = PruneProblem(H, w0, box_factor=box, **limit)
                yield lambda p=p: _two_phase(exact, p)  # both phases of the default
                yield lambda p=p: exact.solve_exact(p, node_limit=1)
                if every:
                    yield lambda p=p: exact.solve_exact(p)
                    for diagonal in ("jacobi", "logdet", "eig", "none"):
                        yield lambda p=p, d=diagonal: exact.solve_exact(p, diagonal=d)
                        yield lambda p=p, d=diagonal: exact.solve_exact(p, diagonal=d,
                                                                        perspective=0)
                    yield lambda p=p: exact.solve_exact(p, branching="saliency",
                                                        incumbents=False)
                    # the split re-optimised at the nodes (``resplit``)
                    yield lambda p=p: exact.solve_exact(p, diagonal="logdet", resplit=1)


def _two_phase(exact: Any, p: Any) -> Any:
    """The ``auto`` schedule with its switch after 1 node, so that both phases run."""
    saved = getattr(exact, "AUTO_SWITCH_NODES", None)
    if saved is None:
        return exact.solve_exact(p)
    exact.AUTO_SWITCH_NODES = 1
    try:
        return exact.solve_exact(p)
    finally:
        exact.AUTO_SWITCH_NODES = saved


def _levels_calls(every: bool, stopped: bool = True) -> Iterator[Callable[[], Any]]:
    from solvers.levels.exact import ORDERINGS, solve_levels
    from solvers.problem import LevelProblem

    grid = 0.1 * np.arange(-8, 8, dtype=np.float64)
    uneven = np.array([-0.6, -0.3, -0.1, 0.0, 0.05, 0.2, 0.45, 0.9])
    for kind in ("full", "rankdef", "dead"):
        H, w0 = _tiny(kind)
        per_input = np.stack([uneven * (1 + 0.1 * j) for j in range(6)])
        for levels in (grid, uneven, per_input):
            for limit in ({}, {"k": 3}, {"nm": (1, 2)}):
                lp = LevelProblem(H, w0, levels=levels, **limit)
                yield lambda lp=lp: solve_levels(lp)
                yield lambda lp=lp: solve_levels(lp, node_limit=2, time_limit=0.01)
                if every:
                    for ordering in ORDERINGS:
                        yield lambda lp=lp, o=ordering: solve_levels(lp, ordering=o)


def _heuristic_calls(every: bool, stopped: bool = True) -> Iterator[Callable[[], Any]]:
    from solvers.heuristics.layer import (
        PRUNE_LAYER,
        QUANT_LAYER,
        prune_layer_results,
        quant_layer_results,
    )
    from solvers.problem import LayerProblem, PruneProblem, QuantProblem
    from solvers.registry import methods

    for kind in ("full", "rankdef", "dead"):
        H, w0 = _tiny(kind)
        q = QuantProblem(H, w0, scale=0.1, bits=4)
        p = PruneProblem(H, w0, k=3)
        pb = PruneProblem(H, w0, k=3, box_factor=0.3)
        pn = PruneProblem(H, w0, nm=(1, 2))
        for m in methods("quant"):
            if not m.certified:
                yield lambda m=m, q=q: m.load()(q)
        for m in methods("prune"):
            if not m.certified:
                for prob in (p, pb, pn):
                    yield lambda m=m, prob=prob: m.load()(prob)
        layer = LayerProblem(H, np.stack([w0, -w0]), {"layer": "warm-up"})
        for name in QUANT_LAYER:
            yield lambda name=name, layer=layer: quant_layer_results(
                layer, name, scale=np.array([0.1, 0.1]), bits=4)
        for name in PRUNE_LAYER:
            for limit in ({"k": 3}, {"nm": (1, 2)}):
                yield lambda name=name, lim=limit, layer=layer: prune_layer_results(layer, name,
                                                                                      **lim)


def _scale_calls(every: bool, stopped: bool = True) -> Iterator[Callable[[], Any]]:
    """The scale searches run before a solve, never inside one: ``every=False`` loads only the
    default rule (the per-tensor MSE scale), any other loads on its first use."""
    from solvers.scales import minmax_scale, mse_scale, scale_tables

    W = np.stack([np.linspace(-0.6, 0.7, 6), np.linspace(0.3, -0.2, 6)])
    for bits in (2, 4, 8) if every else (4,):
        yield lambda b=bits: mse_scale(W, b)
        if every:
            yield lambda b=bits: mse_scale(W, b, per_channel=True)
            yield lambda b=bits: minmax_scale(W, b, per_channel=True)
    if every:
        yield lambda: scale_tables(W)


_CALLS: dict[str, Callable[[bool, bool], Iterator[Callable[[], Any]]]] = {
    "quant": _quant_calls,
    "prune": _prune_calls,
    "levels": _levels_calls,
    "heuristics": _heuristic_calls,
    "scales": _scale_calls,
}


def warm_up(groups: Sequence[str] | None = None,
            on_group: Callable[[str | None, int, int], None] | None = None, *,
            every: bool = True, stopped: bool = True, force: bool = False) -> dict[str, float]:
    """Run every compiled path of ``groups`` (default: all of :data:`GROUPS`) on tiny problems.

    ``every=False`` runs only the paths the methods' default options can take (every phase of
    their automatic schedules included), not those that only a named option selects (another
    diagonal split, ordering or branching rule): quicker, for a one-off ``pqbound solve``.
    ``stopped=False`` leaves out the paths only a solve stopped by a time or node limit takes.
    A group already warmed up in this process (with at least these paths) is skipped (its
    kernels stay loaded), unless ``force``.

    ``on_group(name, i, total)`` is called before group ``i`` (0-based) of ``total``, and once
    more with ``(None, total, total)`` at the end (for progress bars). Returns the seconds
    spent per group. Never raises for a failing solve (logged at DEBUG).
    """
    names = list(GROUPS if groups is None else groups)
    unknown = [g for g in names if g not in _CALLS]
    if unknown:
        raise ValueError(f"unknown warm-up groups {unknown}; valid: {list(GROUPS)}")
    seconds: dict[str, float] = {}
    for i, name in enumerate(names):
        if on_group is not None:
            on_group(name, i, len(names))
        t0 = time.perf_counter()
        if not force and any((name, e, s) in _DONE for e in (True, every)
                             for s in (True, stopped)):
            seconds[name] = 0.0
            continue
        try:
            calls = list(_CALLS[name](every, stopped))
        except Exception as exc:  # noqa: BLE001 - a warm-up never fails a run
            log.debug("warm-up group %s failed to set up: %s", name, exc)
            calls = []
        for call in calls:
            try:
                call()
            except Exception as exc:  # noqa: BLE001
                log.debug("warm-up call in group %s failed: %s", name, exc)
        _DONE.add((name, every, stopped))
        seconds[name] = time.perf_counter() - t0
    if on_group is not None:
        on_group(None, len(names), len(names))
    return seconds


@contextlib.contextmanager
def count_compilations(on_compile: Callable[[str], None] | None = None
                       ) -> Iterator[list[str]]:
    """Within the block, list every numba compilation (``module.function(arg types)``).

    A compilation is a cache miss: numba's ``numba:compile`` event, fired only when a
    signature is neither loaded in the process nor found in the on-disk cache.
    ``on_compile(name)`` is called as each compilation starts.
    """
    from numba.core import event

    seen: list[str] = []

    class _Listener(event.Listener):
        def on_start(self, ev: Any) -> None:
            d = ev.data["dispatcher"]
            seen.append(f"{d.py_func.__module__}.{d.py_func.__qualname__}{ev.data['args']}")
            if on_compile is not None:
                on_compile(seen[-1])

        def on_end(self, ev: Any) -> None:
            pass

    listener = _Listener()
    event.register("numba:compile", listener)
    try:
        yield seen
    finally:
        event.unregister("numba:compile", listener)


def loaded_signatures() -> dict[str, int]:
    """Per compiled function of :mod:`solvers` imported so far (``module.name``), how many
    signatures are loaded in this process (compiled, or loaded from numba's cache).

    Unlike :func:`count_compilations`, this sees a warm cache too: a signature that is first
    loaded inside a solve (after its warm-up) is a path the warm-up missed, which on a cold
    cache would compile there.
    """
    import sys

    from numba.core.dispatcher import Dispatcher

    out: dict[str, int] = {}
    for mod_name, mod in list(sys.modules.items()):
        if mod is None or not (mod_name == "solvers" or mod_name.startswith("solvers.")):
            continue
        for name, obj in list(vars(mod).items()):
            if isinstance(obj, Dispatcher) and obj.py_func.__module__ == mod_name:
                out[f"{mod_name}.{name}"] = len(obj.overloads)
    return out


def new_signatures(before: dict[str, int]) -> list[str]:
    """The functions with more loaded signatures now than in ``before``
    (a :func:`loaded_signatures` snapshot; a function not in it counts as 0)."""
    return sorted(k for k, v in loaded_signatures().items() if v > before.get(k, 0))
