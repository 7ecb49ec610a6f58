"""The paper's complete study on MobileNetV2, or a stated fraction of it: time, CPU, proved share.

Runs ``pqbound compare --protocol paper --all-layers --all-chunks`` with the exact solvers only
(quantization and pruning, boxed, density ``b/16``) at 2, 3, 4 and 8 bits, through
:func:`bounds.compare.run_compare` (export, planning, the store, the executor: everything the
command does), on every live output channel (``--channels all``) or a seeded sample of
``--channels N`` per layer, and prints

* the export's wall and CPU time (calibration forward passes, every layer's ``H``), then the
  run's: wall time, this process's CPU (planning, claims, the store, tables) and the workers'
  CPU (``RUSAGE_CHILDREN``: the pool's processes, reaped at the end), problems per second of
  wall and CPU per problem;
* per bit width and kind: problems, share proved optimal, the rest's statuses, solve seconds
  (sum, and the slowest problem);
* the projection to the complete study (113,712 chunk-channel problems per bit width and
  kind), when a sample ran: :func:`projection` (weighted by each layer's size), the export's
  CPU added once.

The machine is shared: report CPU seconds beside wall time, and run it niced.

Usage::

    nice -n 10 python benchmarks/paper_study.py --channels 4 --db /tmp/study4.sqlite
    nice -n 10 python benchmarks/paper_study.py --channels all --db study.sqlite \\
        --report benchmarks/reports/paper_study      # the complete study (resumable)
    python benchmarks/paper_study.py --db study.sqlite --summary-only \\
        --summary benchmarks/reports/paper_study     # the figures of what the store holds

``--summary-only`` solves nothing: it reads the latest run's rows from ``--db`` (a run stopped
part-way included) and writes the summary, each layer and bit width with fewer stored rows
than planned marked *partial*.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import resource
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: chunk-channel problems per bit width and kind in the complete MobileNetV2 study
FULL_PROBLEMS = 113_712
#: What the study's figures read of a stored row (reading only these is several times faster
#: than every column on a large store).
ROW_COLUMNS = ("layer", "scope", "kind", "bits", "status", "objective", "lower_bound",
               "norm", "seconds")


def _cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, ch.ru_utime + ch.ru_stime


@contextlib.contextmanager
def _local_dask(workers: int):
    """A ``distributed.LocalCluster`` of ``workers`` processes with one thread each (BLAS on
    one thread too), on loopback; yields its address (``None`` for ``workers = 0``)."""
    if not workers:
        yield None
        return
    import os

    from distributed import LocalCluster

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def _exported(cfg, progress: bool, cache: str | None):
    """The exported full-layer problems of ``cfg`` (from ``cache`` when it holds them)."""
    import pickle

    from bounds.compare.run import export_layers

    if cache and Path(cache).exists():
        with open(cache, "rb") as f:
            problems = pickle.load(f)
        if set(problems) >= set(cfg.layers):
            return {name: problems[name] for name in cfg.layers}
    problems = export_layers(cfg.resolved(), "mobilenet_v2", progress)
    if cache:
        with open(cache, "wb") as f:
            pickle.dump(problems, f)
    return problems


def projection(rows: list[dict], records: dict, nbits: int, cpu_self: float,
               cpu_workers: float) -> float:
    """CPU seconds of the complete study, from a sample solved in this run: per layer and
    kind, the mean solve time of its sampled problems times its problem count in the complete
    study (every channel of every chunk), converted to worker CPU by the sample's ratio of
    worker CPU to summed solve time; plus this process's CPU per problem for every problem
    (planning, claims, the store). The layers differ by 10× in cost per problem and by 60× in
    size (the classifier alone is 35 % of the study), so the sample's plain mean would not
    do."""
    acc: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0])
    for r in rows:
        a = acc[(r["layer"], r["kind"])]
        a[0] += r["seconds"] or 0.0
        a[1] += 1
    solve = sum(a[0] for a in acc.values())
    if solve <= 0:
        return math.nan
    worker = parent = 0.0
    for (layer, _), (secs, count) in acc.items():
        rec = records[layer]
        size = rec["channels_total"] * rec["chunks"] * nbits
        worker += secs / count * size * cpu_workers / solve
        parent += size * cpu_self / len(rows)
    return worker + parent


def _db(num: float, den: float) -> float:
    """``10·log10(num/den)`` (``inf`` for a zero error or bound)."""
    return math.inf if den <= 0 else 10.0 * math.log10(num / den)


def layer_figures(rows: list[dict], layers: list[str], bits: list[int]) -> list[dict]:
    """Per layer and bit width, per kind: SQNR achieved (summed over the layer's chunk
    problems, as the paper) and its certified ceiling (from the summed lower bounds), the
    statuses; the verdict, *proved* when the winner's summed error is below the loser's
    summed lower bound."""
    acc: dict[tuple[str, int, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0, 0])
    for r in rows:
        a = acc[(r["layer"], r["bits"], r["kind"])]
        a[0] += r["norm"] or 0.0
        a[1] += r["objective"] or 0.0
        a[2] += r["lower_bound"] or 0.0
        a[3] += 1
        a[4] += r["status"] == "optimal"
    out = []
    for layer in layers:
        for b in bits:
            q, p = acc.get((layer, b, "quant")), acc.get((layer, b, "prune"))
            if not q or not p:
                continue
            win, lose = (q, p) if q[1] <= p[1] else (p, q)
            out.append({
                "layer": layer, "bits": b, "problems": q[3], "prune_problems": p[3],
                "quant_sqnr": _db(q[0], q[1]), "quant_ceiling": _db(q[0], q[2]),
                "prune_sqnr": _db(p[0], p[1]), "prune_ceiling": _db(p[0], p[2]),
                "quant_optimal": q[4], "prune_optimal": p[4],
                "winner": "quantization" if win is q else "pruning",
                "proved": win[1] < lose[2]})
    return out


def write_summary(folder: Path, rows: list[dict], layers: list[str], bits: list[int],
                  figures: dict, run_id: str, expected: dict[str, int] | None = None) -> None:
    """README.md, study.png and study.json of the study in ``folder``. ``expected``: the
    planned problems per layer, bit width and kind; a layer with fewer stored is marked
    partial (its figures sum the stored problems only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    per = layer_figures(rows, layers, bits)
    for f in per:
        want = (expected or {}).get(f["layer"])
        f["partial"] = want is not None and min(f["problems"], f["prune_problems"]) < want
        f["planned"] = want
    fig, axes = plt.subplots(len(bits), 1, figsize=(12, 2.4 * len(bits)), sharex=True)
    axes = list(np.atleast_1d(axes))
    x = {name: i for i, name in enumerate(layers)}
    for ax, b in zip(axes, bits, strict=True):
        fs = [f for f in per if f["bits"] == b]
        xs = [x[f["layer"]] for f in fs]
        for kind, colour in (("quant", "tab:blue"), ("prune", "tab:red")):
            ax.plot(xs, [f[f"{kind}_sqnr"] for f in fs], "o-", ms=3, lw=1, color=colour,
                    label=f"{'quantization' if kind == 'quant' else 'pruning'} (exact)")
            ax.plot(xs, [f[f"{kind}_ceiling"] for f in fs], "_", ms=7, color=colour)
        unproved = [f for f in fs if not f["proved"]]
        ax.plot([x[f["layer"]] for f in unproved], [f["quant_sqnr"] for f in unproved], "kx",
                ms=7, label="verdict not proved")
        ax.set_ylabel(f"{b} bit: SQNR dB")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8, ncol=3)
    axes[0].set_title("MobileNetV2, paper protocol: chunk problems summed per layer "
                      "(dash: certified ceiling)")
    axes[-1].set_xticks(range(len(layers)))
    axes[-1].set_xticklabels(layers, rotation=90, fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "study.png", dpi=90)
    plt.close(fig)
    (folder / "study.json").write_text(json.dumps({"run_id": run_id, "figures": figures,
                                                   "layers": per}, indent=1))
    lines = [f"# MobileNetV2, the paper's study: every layer, certified (run `{run_id}`)", "",
             f"{figures['problems']} chunk problems, {figures['channels']} channels per layer "
             f"(`benchmarks/paper_study.py`), bits {', '.join(map(str, bits))}; "
             f"{figures['proved']} proved optimal "
             f"({figures['proved'] / max(figures['problems'], 1):.4%}), every other with its "
             "certified lower bound.", ""]
    if figures.get("planned") and figures["planned"] > figures["problems"]:
        lines += [f"**Partial**: {figures['problems']} of the run's {figures['planned']} "
                  "planned problems were stored when it stopped; a layer marked *partial* sums "
                  "the problems stored (quantization / pruning counts given).", ""]
    lines += ["![per-layer SQNR](study.png)", "",
             "| layer | bits | problems | quant SQNR (≤ ceiling) | prune SQNR (≤ ceiling) | "
             "optimal q / p | winner | proved |", "|---|---|---|---|---|---|---|---|"]
    for f in per:
        count = (f"{f['problems']} / {f['prune_problems']} of {f['planned']} (*partial*)"
                 if f["partial"] else f"{f['problems']}")
        lines.append(
            f"| {f['layer']} | {f['bits']} | {count} | {f['quant_sqnr']:.2f} "
            f"(≤ {f['quant_ceiling']:.2f}) | {f['prune_sqnr']:.2f} (≤ {f['prune_ceiling']:.2f})"
            f" | {f['quant_optimal']} / {f['prune_optimal']} | {f['winner']} | "
            f"{'yes' if f['proved'] else '**no**'} |")
    missing = [name for name in layers if expected and name not in {f["layer"] for f in per}]
    if missing:
        lines += ["", f"Layers with no stored problem of both kinds yet ({len(missing)}): "
                  + ", ".join(missing) + "."]
    (folder / "README.md").write_text("\n".join(lines) + "\n")


def print_groups(rows: list[dict], out: dict) -> int:
    """Per bit width and kind: problems, share proved optimal, the other statuses, solve
    seconds; the total proved share. Returns the rows proved optimal."""
    by: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for r in rows:
        by[(r["bits"], r["kind"])].append(r)
    proved = 0
    for (bits, kind), rs in sorted(by.items()):
        st = Counter(r["status"] for r in rs)
        secs = [r["seconds"] or 0.0 for r in rs]
        proved += st["optimal"]
        print(f"  {bits} bit {kind:5s}: {len(rs):7d} problems, {st['optimal'] / len(rs):.4%} "
              f"optimal, other {dict((k, v) for k, v in st.items() if k != 'optimal')}, "
              f"solve {sum(secs):.1f} s, slowest {max(secs):.2f} s")
        out["groups"][f"{bits}bit {kind}"] = {
            "problems": len(rs), "statuses": dict(st), "solve_seconds": sum(secs),
            "slowest": max(secs)}
    if rows:
        print(f"proved optimal: {proved}/{len(rows)} = {proved / len(rows):.4%}; every other "
              "carries its certified lower bound")
    return proved


def summary_only(args) -> int:
    """``--summary-only``: the summary of the latest run in ``--db``, from its stored rows."""
    from bounds.compare.store import ResultStore

    with ResultStore(args.db, readonly=True) as st:
        run = st.run()
        rows = st.rows(run["run_id"], columns=ROW_COLUMNS, scope="chunk")
    settings = run["settings"]
    records = settings["layer_problems"]
    layers = [name for name in settings["layers"] if name in records]
    bits = list(settings["bits"])
    expected = {name: len(rec["channels"]) * len(rec["chunk_ids"])
                for name, rec in records.items()}
    out = {"layers": len(layers), "channels": settings.get("channels") or "all", "bits": bits,
           "problems": len(rows), "planned": sum(expected.values()) * len(bits) * 2,
           "run_state": run["summary"] or "stopped before its end (no run summary)",
           "groups": {}}
    print(f"run {run['run_id']}: {len(rows)} of {out['planned']} planned problems stored")
    out["proved"] = print_groups(rows, out)
    write_summary(Path(args.summary), rows, layers, bits, out, run["run_id"], expected)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--channels", default="all",
                    help="output channels per layer: 'all' or a seeded sample of N")
    ap.add_argument("--layer", action="append", dest="layers",
                    help="a layer (repeatable; default: all 53)")
    ap.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4, 8])
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--scheduler", default=None, help="a Dask scheduler instead of a pool")
    ap.add_argument("--local-dask", type=int, default=0, metavar="N",
                    help="start a Dask cluster of N local worker processes (one thread each) "
                    "and run on it (its workers' CPU is then not in RUSAGE_CHILDREN: the "
                    "CPU per problem is not printed)")
    ap.add_argument("--db", default="paper-study.sqlite")
    ap.add_argument("--report", default=None, help="write the compare report here")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument("--summary", default=None,
                    help="write the study's summary here: README.md (per layer and bit width: "
                    "SQNR achieved and certified ceiling of both kinds, the verdict and whether "
                    "it is proved), study.png (the per-layer figure), study.json")
    ap.add_argument("--summary-only", action="store_true",
                    help="solve nothing: write --summary from the rows the latest run in --db "
                    "stored (a stopped run's too; its unfinished layers marked partial)")
    ap.add_argument("--cache", default=None,
                    help="pickle of the exported layers: read if present, else written "
                    "(the export then costs nothing on a second run; same settings only)")
    args = ap.parse_args(argv)
    if args.summary_only:
        if not args.summary:
            ap.error("--summary-only needs --summary DIR")
        return summary_only(args)

    from bounds.compare import CompareConfig, run_compare
    from bounds.compare.store import ResultStore
    from bounds.export import list_layers

    layers = args.layers or [info.name for info in list_layers("mobilenet_v2")]
    channels = None if args.channels == "all" else int(args.channels)
    cfg = CompareConfig(
        model="mobilenet_v2", protocol="paper", layers=layers, bits=tuple(args.bits),
        channels=channels, max_chunks=None, quant_methods=("exact",), prune_methods=("exact",),
        whole_layer=False, time_limit=args.time_limit)
    progress = sys.stderr.isatty()
    t0, (c0, _) = time.perf_counter(), _cpu()
    problems = _exported(cfg, progress, args.cache)
    t1, (c1, k0) = time.perf_counter(), _cpu()
    with _local_dask(args.local_dask) as address:
        scheduler = address or args.scheduler
        s = run_compare("mobilenet_v2", config=cfg, db=args.db, report=args.report,
                        progress=progress, problems=problems,
                        workers=None if scheduler else args.workers, scheduler=scheduler)
    wall, export_wall, export_cpu = time.perf_counter() - t1, t1 - t0, c1 - c0
    c2, k1 = _cpu()
    cpu_self, cpu_workers = c2 - c1, k1 - k0
    with ResultStore(args.db, readonly=True) as st:
        rows = st.rows(s.run_id, columns=ROW_COLUMNS, scope="chunk")
    out = {"layers": len(layers), "channels": args.channels, "bits": args.bits,
           "problems": len(rows), "solved_now": s.solved, "from_store": s.reused,
           "export_wall": export_wall, "export_cpu": export_cpu,
           "wall_seconds": wall, "cpu_self": cpu_self, "cpu_workers": cpu_workers,
           "groups": {}}
    print(f"{len(layers)} layers, channels {args.channels}, bits {args.bits}: {len(rows)} "
          f"problems ({s.solved} solved now, {s.reused} from the store)")
    print(f"export (calibration, H of every layer): {export_wall:.1f} s wall, "
          f"{export_cpu:.1f} s CPU")
    print(f"the run (plan, store, solves, tables{', report' if args.report else ''}): "
          f"wall {wall:.1f} s; CPU {cpu_self:.1f} s here + {cpu_workers:.1f} s in workers")
    if s.solved and not args.local_dask:
        cpu = cpu_self + cpu_workers
        print(f"{s.solved / wall:.1f} problems/s of wall; {1e3 * cpu / s.solved:.2f} ms CPU "
              f"per problem")
    proved = print_groups(rows, out)
    full = FULL_PROBLEMS * len(args.bits) * 2
    if s.solved == len(rows) and len(rows) < full and not args.local_dask:
        total = projection(rows, s.settings["layer_problems"], len(args.bits), cpu_self,
                           cpu_workers) + export_cpu
        print(f"projection to the complete study ({full} problems): {total:.0f} CPU s, "
              f"{total / 2 / 60:.1f} min on two cores")
        out["projected_cpu_seconds"] = total
    out["proved"] = proved
    if args.summary:
        write_summary(Path(args.summary), rows, layers, args.bits, out, s.run_id)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
