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
  kind) from the measured CPU per problem (the export's cost added once), when a fraction
  ran.

The machine is shared: report CPU seconds beside wall time, and run it niced.

Usage::

    nice -n 10 python benchmarks/paper_study.py --channels 4 --db /tmp/study4.sqlite
    nice -n 10 python benchmarks/paper_study.py --channels all --db study.sqlite \\
        --report benchmarks/reports/paper_study      # the complete study (resumable)
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: chunk-channel problems per bit width and kind in the complete MobileNetV2 study
FULL_PROBLEMS = 113_712


def _cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, ch.ru_utime + ch.ru_stime


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
    ap.add_argument("--db", default="paper-study.sqlite")
    ap.add_argument("--report", default=None, help="write the compare report here")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)

    from bounds.compare import CompareConfig, run_compare
    from bounds.compare.run import export_layers
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
    problems = export_layers(cfg.resolved(), "mobilenet_v2", progress)
    t1, (c1, k0) = time.perf_counter(), _cpu()
    s = run_compare("mobilenet_v2", config=cfg, db=args.db, report=args.report,
                    progress=progress, problems=problems,
                    workers=None if args.scheduler else args.workers, scheduler=args.scheduler)
    wall, export_wall, export_cpu = time.perf_counter() - t1, t1 - t0, c1 - c0
    c2, k1 = _cpu()
    cpu_self, cpu_workers = c2 - c1, k1 - k0
    with ResultStore(args.db, readonly=True) as st:
        rows = [r for r in st.rows(s.run_id) if r["scope"] == "chunk"]
    by: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for r in rows:
        by[(r["bits"], r["kind"])].append(r)
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
    if s.solved:
        cpu = cpu_self + cpu_workers
        print(f"{s.solved / wall:.1f} problems/s of wall; {1e3 * cpu / s.solved:.2f} ms CPU "
              f"per problem")
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
    full = FULL_PROBLEMS * len(args.bits) * 2
    if s.solved and len(rows) < full:
        per = (cpu_self + cpu_workers) / s.solved
        total = per * full + export_cpu
        print(f"projection to the complete study ({full} problems): {total:.0f} CPU s, "
              f"{total / 2 / 60:.1f} min on two cores")
        out["projected_cpu_seconds"] = total
    out["proved"] = proved
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
