"""Solve many problem files in one process (or a few): the engine behind ``pqbound solve``.

A call names problem files and folders (a folder stands for its ``*.npz`` files, sorted by name,
not recursive). Each file is solved on its own, channel by channel, exactly as a single
``pqbound solve`` of that file would (:mod:`bounds.channel_solve`), and gives one
:class:`FileOutcome`: the JSON object of the file (with its ``problem`` path) or, when the file
cannot be read or its settings do not apply to it, the error — a malformed file never stops the
others.

One-time costs are kept out of every solve's ``seconds``: the kernels the method needs are
loaded (or compiled, on a cold numba cache) by :func:`solvers.warm_up.warm_up` before the first
file, and the time that took is reported as ``load_seconds`` of the first file each process
solved (0 for the others), so that summing ``load_seconds`` over the outcomes gives the whole
one-time cost. (``pqbound solve`` adds its imports to the first line's.)

Examples
--------
>>> import numpy as np, tempfile, os
>>> d = tempfile.mkdtemp()
>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((40, 6))
>>> for i in range(2):
...     np.savez(os.path.join(d, f"p{i}.npz"), H=X.T @ X, W0=rng.standard_normal((2, 6)))
>>> outs = list(solve_many([d], SolveSettings("prune", keep=3)))
>>> [o.doc["k"] for o in outs], [o.error for o in outs]
([3, 3], [None, None])
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solvers.problem import ProblemError

log = logging.getLogger(__name__)

KINDS = ("quant", "prune")


@dataclass(frozen=True)
class SolveSettings:
    """Every setting of a ``pqbound solve`` call, the same for every file.

    ``kind`` is ``"quant"`` or ``"prune"``. Quantization: ``bits`` (default: the file's, else 4),
    ``scale`` or ``scale_method`` and ``per_channel``; over levels: ``format`` and
    ``group_size``, or the file's ``levels``; an optional nonzero limit ``nonzeros``,
    ``density`` or ``nm``. Pruning: exactly one of ``keep`` (kept weights ``k``), ``density``
    (``k = round(d·n)``, halves up), ``sparsity`` (``1 − d``), ``bits`` (``d = bits/16``) or
    ``nm`` (``"2:4"``), and ``box_factor``.
    """

    kind: str
    method: str = "exact"
    channel: int | None = None
    time_limit: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    bits: int | None = None
    scale: float | None = None
    scale_method: str = "mse"
    per_channel: bool = False
    format: str | None = None
    group_size: int | None = None
    nonzeros: int | None = None
    density: float | None = None
    sparsity: float | None = None
    keep: int | None = None
    nm: str | None = None
    box_factor: float | None = None

    def check(self) -> None:
        """Errors that do not depend on any file (raised once, before any solve)."""
        from solvers.registry import get_method, methods

        if self.kind not in KINDS:
            raise ProblemError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "quant":
            sparse = any(x is not None for x in (self.nonzeros, self.density, self.nm))
            if self.group_size is not None and self.format is None:
                raise ProblemError("--group-size applies to --format only")
            if self.format is not None and (self.bits is not None or self.scale is not None
                                            or self.per_channel):
                raise ProblemError("--format builds its own levels: --bits, --scale and "
                                   "--per-channel do not apply (per-channel scales: a -ch "
                                   "format, e.g. int4-ch)")
            if self.keep is not None or self.sparsity is not None:
                raise ProblemError("--keep and --sparsity apply to pruning (quantization: "
                                   "--nonzeros)")
            if self.format is not None or sparse:
                kinds = ["levels"]
            else:  # a file may carry levels: the method is a grid or a levels method
                kinds = [k for k in ("quant", "levels")
                         if self.method in {m.name for m in methods(k)}] or ["quant"]
            kind = kinds[0]
        else:
            given = [x is not None for x in (self.keep, self.density, self.sparsity, self.bits,
                                            self.nm)]
            if sum(given) != 1:
                raise ProblemError("give exactly one of --keep, --density, --sparsity, --bits "
                                   "or --nm")
            if self.keep is not None and self.keep < 0:
                raise ProblemError(f"--keep must be >= 0, got {self.keep}")
            kind = "prune"
        if self.channel is not None and self.channel < 0:
            raise ProblemError(f"channel must be >= 0, got {self.channel}")
        entry = get_method(kind, self.method)
        entry.check_options(self.options)


@dataclass
class FileOutcome:
    """One file's result: ``doc`` (the JSON object) or ``error`` (one line), and the table rows."""

    path: str
    doc: dict[str, Any] | None = None
    error: str | None = None
    results: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def find_problem_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The files named by ``paths``: files as given, folders as their ``*.npz`` files (sorted).

    A path that does not exist or a folder with no ``*.npz`` file is a :class:`ProblemError`
    (nothing is solved then). Repeats are dropped, the first kept.
    """
    if not paths:
        raise ProblemError("give at least one problem file or folder")
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.glob("*.npz") if f.is_file())
            if not found:
                raise ProblemError(f"folder {str(p)!r} holds no problem files (*.npz)")
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise ProblemError(f"problem file {str(p)!r} does not exist")
    seen: set[Path] = set()
    uniq = []
    for f in out:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            uniq.append(f)
    return uniq


def solve_file(path: str | os.PathLike[str], settings: SolveSettings,
               progress: bool = False) -> FileOutcome:
    """Solve one file's channels; a :class:`ProblemError` of the file becomes ``error``.

    BLAS runs on one thread meanwhile unless the user set a thread count
    (:func:`bounds.blas_threads.one_blas_thread`: small problems, time limits kept under load).
    """
    from .blas_threads import one_blas_thread

    try:
        with one_blas_thread():
            doc, results = _solve_file(str(path), settings, progress)
    except ProblemError as exc:
        msg = str(exc)
        return FileOutcome(str(path), error=msg if str(path) in msg else f"{path}: {msg}")
    return FileOutcome(str(path), doc=doc, results=results)


def _solve_file(path: str, s: SolveSettings, progress: bool) -> tuple[dict[str, Any], list]:
    from .channel_solve import (
        LevelSpec,
        PruneSpec,
        parse_nm,
        select_channels,
        solve_level_channels,
        solve_prune_channels,
        solve_quant_channels,
        summarize,
    )
    from .problem_file import load_problem
    from .scale_choice import choose_scales

    problem = load_problem(path)
    chans = select_channels(problem, s.channel)
    common = {"channels": chans, "time_limit": s.time_limit, "options": s.options,
              "progress": progress}
    head: dict[str, Any] = {"problem": path, "kind": s.kind, "method": s.method}
    if s.kind == "prune":
        spec = PruneSpec.from_options(density=s.density, sparsity=s.sparsity, bits=s.bits,
                                      nm=s.nm, box_factor=s.box_factor, keep=s.keep)
        kw = spec.keywords(problem.n)
        results = solve_prune_channels(problem, spec, method=s.method, **common)
        head.update({"k": kw.get("k"), "nm": kw.get("nm"), "box_factor": s.box_factor})
    else:
        sparse = any(x is not None for x in (s.nonzeros, s.density, s.nm))
        limit = {"nonzeros": s.nonzeros, "density": s.density,
                 "nm": parse_nm(s.nm) if s.nm else None}
        if s.format is not None:
            spec = LevelSpec(format=s.format, group_size=s.group_size,
                             scale_method=s.scale_method, **limit)
        elif "levels" in problem.meta:
            if s.bits is not None or s.scale is not None:
                raise ProblemError(f"{path} carries levels: --bits and --scale do not apply "
                                   "(drop them, or use --format)")
            spec = LevelSpec(levels=problem.meta["levels"], **limit)
        else:
            spec = None
        bits = s.bits if s.bits is not None else int(problem.meta.get("bits", 4))
        if spec is None and sparse:
            scales = choose_scales(problem, bits, scale=s.scale, method=s.scale_method,
                                   per_channel=s.per_channel)
            spec = LevelSpec(grid_scales=scales, bits=bits, **limit)
        if spec is None:
            results = solve_quant_channels(problem, bits=bits, method=s.method, scale=s.scale,
                                           scale_method=s.scale_method,
                                           per_channel=s.per_channel, **common)
            head["bits"] = bits
        else:
            results, desc = solve_level_channels(problem, spec, method=s.method, **common)
            head.update(desc)
    doc = dict(head)
    doc["channels"] = [r.to_dict(channel=c) for c, r in results]
    doc["total"] = summarize(results)
    return doc, results


def solve_many(
    paths: Iterable[str | os.PathLike[str]],
    settings: SolveSettings,
    *,
    workers: int = 1,
    progress: bool = False,
) -> Iterator[FileOutcome]:
    """Solve every problem file named by ``paths`` (files and folders) with ``settings``.

    Yields one :class:`FileOutcome` per file, in the order of the files; a file that cannot be
    read or solved gives an outcome with ``error`` and the others go on. ``workers > 1`` solves
    files in that many processes. Settings that fit no file (an unknown option, ``--keep``
    below 0, …) and paths that name nothing raise :class:`ProblemError` before any solve.

    Each outcome's ``doc`` is ``pqbound solve --json``'s object for the file plus
    ``load_seconds``: the one-time cost (kernel loading or compiling) paid before the first file
    of the process that solved it, 0 for the others (see the module doc). ``progress`` shows a
    bar over the files (over the channels when there is one file) on stderr.
    """
    files = find_problem_files(list(paths))
    settings.check()
    if workers < 1:
        raise ProblemError(f"--workers must be >= 1, got {workers}")
    workers = min(workers, len(files))
    if workers == 1:
        load = _prepare(settings, files)
        bar = _file_bar(len(files), progress)
        for f in files:
            out = solve_file(f, settings, progress=progress and len(files) == 1)
            if out.ok:  # the first file solved carries the one-time cost
                _set_load(out, load)
                load = 0.0
            if bar is not None:
                bar.update(1)
            yield out
        if bar is not None:
            bar.close()
        return
    yield from _solve_pool(files, settings, workers, progress)


def _prepare(settings: SolveSettings, files: Sequence[Path] = ()) -> float:
    """Load (or compile) the kernels ``settings`` needs; return the seconds it took."""
    from solvers.warm_up import warm_up

    from .blas_threads import one_blas_thread

    t0 = time.perf_counter()
    with one_blas_thread():
        # without options and limits only the default paths can run (a node limit is an option)
        warm_up(groups_for(settings, files), every=bool(settings.options),
                stopped=settings.time_limit is not None or bool(settings.options))
    return time.perf_counter() - t0


def groups_for(settings: SolveSettings, files: Sequence[Path] = ()) -> tuple[str, ...]:
    """The warm-up groups (:data:`solvers.warm_up.GROUPS`) solving ``files`` with ``settings``
    can use (the exact solvers' incumbents run the practical methods' kernels within them)."""
    if settings.kind == "prune":
        return ("prune",) if settings.method == "exact" else ("heuristics",)
    sparse = any(x is not None for x in (settings.nonzeros, settings.density, settings.nm))
    if settings.format is not None or sparse:
        return ("levels", "scales")
    groups = ["quant" if settings.method == "exact" else "heuristics"]
    if any(_has_levels(f) for f in files):
        groups.append("levels")
    if settings.scale is None:
        groups.append("scales")
    return tuple(groups)


def _has_levels(path: Path) -> bool:
    """Whether a problem file carries ``levels`` (False for a file numpy cannot open)."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            return "levels" in z.files
    except Exception:  # noqa: BLE001 - the solve reports unreadable files
        return False


def _set_load(out: FileOutcome, seconds: float) -> None:
    if out.doc is not None:
        out.doc["load_seconds"] = round(seconds, 6)


_WORKER_LOAD: list[float] = []


def _worker_init(settings: SolveSettings, files: list[Path]) -> None:
    _WORKER_LOAD.append(_prepare(settings, files))


def _worker_solve(path: str, settings: SolveSettings) -> FileOutcome:
    out = solve_file(path, settings)
    if out.ok:
        _set_load(out, _WORKER_LOAD.pop() if _WORKER_LOAD else 0.0)
    return out


def _solve_pool(files: list[Path], settings: SolveSettings, workers: int,
                progress: bool) -> Iterator[FileOutcome]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # fork is fast and shares what this process has loaded, but is unsafe once torch has
    # started its threads: then spawn (each worker loads its own kernels).
    method = "spawn" if "torch" in sys.modules or sys.platform != "linux" else "fork"
    bar = _file_bar(len(files), progress)
    with ProcessPoolExecutor(workers, mp_context=mp.get_context(method),
                             initializer=_worker_init, initargs=(settings, files)) as pool:
        futures = [pool.submit(_worker_solve, str(f), settings) for f in files]
        try:
            for fut in futures:
                out = fut.result()
                if bar is not None:
                    bar.update(1)
                yield out
        finally:
            for fut in futures:
                fut.cancel()
            if bar is not None:
                bar.close()


def _file_bar(total: int, progress: bool) -> Any:
    if not progress or total < 2:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="solving", unit="file", file=sys.stderr, leave=False)

