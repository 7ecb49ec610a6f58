"""A comparison run, start to end: :func:`run_compare`, the API behind ``pqbound compare``.

In order: resolve and check the settings (:mod:`bounds.compare.settings`); export the full-layer
problems (:func:`bounds.export.export_model`, unless given); plan the run and its tasks
(:mod:`bounds.compare.plan`); open the results store and register the run (its id hashes the
settings and the layers' problems); solve every task not already stored, in batches (a chunk's
tasks), writing each batch's rows as it arrives, in one transaction
(:mod:`bounds.compare.executors`: in-process, a process pool or Dask); derive the whole-channel
and scale-range rows from the stored ones (:mod:`bounds.compare.derive`); tabulate
the verdicts
(:mod:`bounds.compare.tables`) and, if asked, write the report (:mod:`bounds.compare.report`).
Re-running the same command resumes: rows already stored are not solved again.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from solvers.problem import LayerProblem, ProblemError

from ..protocols import get_protocol
from ..provenance import versions
from . import tables
from .derive import derived_rows
from .executors import make_executor
from .plan import make_plan
from .settings import DEFAULT_LAYERS, CompareConfig
from .store import ClaimKeeper, ResultStore, new_owner
from .tasks import Task, task_key

log = logging.getLogger(__name__)


@dataclass
class CompareSummary:
    """What :func:`run_compare` returns: counts, the per-layer tables, where things are."""

    run_id: str
    db: str
    settings: dict[str, Any]
    layers: list[dict[str, Any]]
    tasks: int
    reused: int
    solved: int
    errors: int
    seconds: float
    report: str | None = None
    notes: list[str] = field(default_factory=list)
    #: problems another run on the same store solved while this one ran (shared work)
    shared: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "db": self.db, "tasks": self.tasks, "reused": self.reused,
            "solved": self.solved, "errors": self.errors, "shared": self.shared,
            "seconds": self.seconds,
            "report": self.report, "notes": self.notes, "settings": self.settings,
            "layers": self.layers,
        }

    def text(self) -> str:
        """The per-layer verdicts as plain text for the terminal."""
        return tables.summary_text(self.layers, self.settings)



def export_layers(cfg: CompareConfig, model: Any, progress: bool, inputs: Any = None
                  ) -> dict[str, LayerProblem]:
    """Full-layer problems (no chunks) from the layer exporter."""
    from bounds.export import export_model

    layers = cfg.layers
    name = model if isinstance(model, str) else None
    if not layers:
        if name not in DEFAULT_LAYERS:
            raise ProblemError(
                f"no default layer set for model {model!r}: pass layers (--layer NAME)")
        layers = DEFAULT_LAYERS[name]
    proto = get_protocol(cfg.protocol)
    probs = export_model(model, layers=list(layers), samples=cfg.samples, opt_dim=None,
                         protocol=cfg.protocol, full_precision=proto.full_precision,
                         images=cfg.images, text=cfg.text, seed=cfg.seed,
                         batch_size=cfg.batch_size, progress=progress, inputs=inputs,
                         scale_bits=cfg.bits)
    out = {}
    for layer in layers:
        plist = probs[layer]
        if len(plist) != 1:
            raise ProblemError(f"exporter returned {len(plist)} chunks for {layer} with "
                               "opt_dim=None (expected the whole layer)")
        out[layer] = plist[0]
    return out



def run_compare(
    model: Any = "mobilenet_v2",
    *,
    config: CompareConfig | None = None,
    db: str | os.PathLike[str] = "pqbound-results.sqlite",
    report: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    problems: dict[str, LayerProblem] | None = None,
    inputs: Any = None,
    progress: bool = False,
    **settings: Any,
) -> CompareSummary:
    """Run (or resume) a comparison; return its :class:`CompareSummary`.

    Parameters
    ----------
    model : str or torch.nn.Module
        ``"mobilenet_v2"``, ``"minilm"`` or a module (with ``layers=`` given).
    config : CompareConfig, optional
        All settings; or pass them as keywords (``bits=(2, 4)``, ``channels=2``, …).
    db : path
        The SQLite results store (created if absent; resumed if it holds this run).
    report : path, optional
        Write the Markdown/HTML report with plots to this folder at the end.
    workers : int, optional
        Local processes (default ``os.cpu_count()``; 1 runs in this process).
    scheduler : str, optional
        ``tcp://host:port`` of a Dask scheduler instead of local processes.
    problems : dict, optional
        Full-layer :class:`LayerProblem` s by layer name, instead of exporting ``model``
        (hand-made problems, tests).
    inputs : tensor or iterable of batches, optional
        Calibration batches for a user ``nn.Module`` (see :func:`bounds.export.export_model`).
    progress : bool
        A tqdm bar on stderr.

    Examples
    --------
    >>> s = run_compare("mobilenet_v2", layers=["features.0.0"], bits=(4,),
    ...                 channels=1, db="r.sqlite")          # doctest: +SKIP
    >>> s.layers[0]["verdicts"]                                # doctest: +SKIP
    """
    t_start = time.perf_counter()
    if config is None:
        config = CompareConfig(model=model if isinstance(model, str) else type(model).__name__,
                               **settings)
    elif settings:
        raise TypeError("give either config= or keyword settings, not both")
    cfg = config.resolved()
    executor = make_executor(workers, scheduler)  # fail early on a bad scheduler
    try:
        store = ResultStore(db)
        try:
            if problems is None:
                problems = export_layers(cfg, model, progress, inputs)
            plan = make_plan(cfg, problems)
            tasks = plan.tasks()
            settings_d = dict(plan.settings)
            settings_d["layer_problems"] = plan.layer_records()
            settings_d["executor"] = {"kind": executor.name, "workers": executor.workers,
                                      "scheduler": scheduler}
            run_id = task_key(settings={k: v for k, v in settings_d.items()
                                        if k != "executor"})[:16]
            settings_d["run_id"] = run_id
            store.begin_run(run_id, settings_d, versions(), (t.key for t in tasks))
            done = store.done_keys([t.key for t in tasks])
            todo = [t for t in tasks if t.key not in done]
            log.info("run %s: %d tasks, %d already stored, %d to solve", run_id, len(tasks),
                     len(done), len(todo))
            solved, errors, others = _execute(executor, todo, store, run_id, progress,
                                              len(done))
            if others:
                log.info("run %s: %d problems were solved by another run on %s", run_id,
                         others, db)
            derived = [r for pl in plan.layers for r in derived_rows(pl, plan, store, run_id)]
            for row in derived:
                store.write(row)
            store.add_run_tasks(run_id, (r["task_key"] for r in derived))
            layer_tables = tables.layer_tables(_table_rows(store, run_id), settings_d)
            summary = CompareSummary(
                run_id=run_id, db=str(db), settings=settings_d, layers=layer_tables,
                tasks=len(tasks), reused=len(done), solved=solved, errors=errors, shared=others,
                seconds=time.perf_counter() - t_start,
                notes=[f"{pl.layer}: {pl.note}" for pl in plan.layers if pl.note])
            store.finish_run(run_id, {"tasks": len(tasks), "reused": len(done),
                                      "solved": solved, "errors": errors, "shared": others,
                                      "seconds": summary.seconds})
        finally:
            store.close()
    finally:
        executor.close()
    if report is not None:
        from .report import build_report

        summary.report = str(build_report(db, report, run_id=run_id))
    return summary


def _table_rows(store: ResultStore, run_id: str) -> list[dict[str, Any]]:
    """What :func:`tables.layer_tables` reads: its columns of every row of the run, and the
    scale-range rows whole (their ``info_json``): on a large run several times faster than
    reading every column."""
    rows = [r for r in store.rows(run_id, columns=tables.ROW_COLUMNS) if r["scope"] != "range"]
    return rows + store.rows(run_id, scope="range")


#: Most tasks in one batch (one shipment to a worker, one transaction in the store). A batch
#: holds the tasks of one chunk of one layer (all its sampled channels, bit widths and kinds,
#: which share ``H``), cut at this size: a few seconds of solving, so a killed run loses little
#: and the progress bar moves. On a layer with one ``H`` per chunk the exact pruning rows of a
#: batch at one budget form one family (:mod:`solvers.prune.batch`): 1024 tasks make families
#: of 128 channels at 4 bit widths, whose shared set-up (the log-det split, the heuristics'
#: masks, the box screen's probation) costs a quarter of what families of 32 pay — measured on
#: the classifier's chunks (paper protocol), 6.2 against 7.3 ms CPU per pruning problem.
BATCH_TASKS = 1024


def batches(tasks: list[Task], size: int = BATCH_TASKS) -> Iterator[list[Task]]:
    """Consecutive tasks of the same layer and chunk, at most ``size`` in a batch."""
    batch: list[Task] = []
    group = None
    for t in tasks:
        g = (t.layer, t.chunk)
        if batch and (g != group or len(batch) >= size):
            yield batch
            batch = []
        group = g
        batch.append(t)
    if batch:
        yield batch


def _execute(executor: Any, todo: list[Task], store: ResultStore, run_id: str,
             progress: bool, reused: int, *, poll: float = 1.0) -> tuple[int, int, int]:
    """Run ``todo`` in batches (:func:`batches`), writing each batch's rows as it arrives, in
    one transaction; return (solved, errors, by others).

    Each batch is claimed in the store (one transaction) just before it is handed to the
    executor (the executors pull batches lazily, a window at a time), so another run on the same
    store at the same time takes the tasks this one has not claimed: the two share the work,
    and none is solved twice. Tasks another live run holds are waited for (polling every
    ``poll`` seconds) and taken over if that run dies (see :mod:`bounds.compare.store`,
    claims). A run killed at any moment has stored every finished batch whole; resumed, it
    solves the others again.

    The kernels are loaded (compiled, on a cold cache, with its own message and bar) and the
    workers started before the solving bar appears, so its rate and ETA count solving only.
    """
    if todo:
        from .warm_up import COMPARE_GROUPS, FORMAT_GROUPS, warm_up_announced

        levels = any(t.kind == "levels" for t in todo)
        warm_up_announced(progress, groups=COMPARE_GROUPS + (FORMAT_GROUPS if levels else ()))
        executor.start()
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="solving", unit="problem", file=sys.stderr,
                   dynamic_ncols=True, postfix={"stored before": reused})
    solved = errors = others = 0
    owner = new_owner()
    remaining = list(todo)
    try:
        with ClaimKeeper(store.path, owner):
            while remaining:
                taken: list[Task] = []
                done_elsewhere: list[Task] = []
                gen = executor.execute_batches(_claimed(store, remaining, owner, run_id,
                                                        taken, done_elsewhere))
                try:
                    for rows in gen:
                        for row in rows:
                            row["run_id"] = run_id
                        store.write_many(rows)
                        solved += len(rows)
                        errors += sum(row["status"] == "error" for row in rows)
                        if bar is not None:
                            bar.update(len(rows))
                            if errors:
                                bar.set_postfix({"stored before": reused, "errors": errors})
                finally:
                    gen.close()
                others += len(done_elsewhere)
                if bar is not None and done_elsewhere:
                    bar.update(len(done_elsewhere))
                if taken:
                    log.info("waiting for %d problems another run is solving", len(taken))
                    time.sleep(poll)
                remaining = taken
    finally:
        if bar is not None:
            bar.close()
    return solved, errors, others


def _claimed(store: ResultStore, tasks: list[Task], owner: str, run_id: str,
             taken: list[Task], done: list[Task]) -> Iterator[list[Task]]:
    """Yield the batches of tasks this run claims; collect those another run holds or has
    stored."""
    for batch in batches(tasks):
        state = store.claim_many([t.key for t in batch], owner, run_id)
        mine = []
        for t in batch:
            s = state[t.key]
            if s == "mine":
                mine.append(t)
            elif s == "taken":
                taken.append(t)
            else:
                done.append(t)
        if mine:
            yield mine
