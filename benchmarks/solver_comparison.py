#!/usr/bin/env python
"""Solver comparison suite: our exact solvers against general MIQP solvers, side by side.

Runs every selected solver on the same instances (real MobileNetV2 / MiniLM layer chunks and
synthetic families, generated from a seed and cached as problem files), one after another in one
single-threaded worker, interleaved per instance, and writes a report (Markdown, PNG plots, raw
rows as CSV, a JSON summary) to ``--out``. See docs/benchmarks.md.

Examples
--------
The quick report (about 10 minutes on 2 busy cores)::

    python benchmarks/solver_comparison.py --quick --out benchmarks/reports/latest

Only quantization at n = 32 on two families, exact vs SCIP and CP-SAT, 30 s limit::

    python benchmarks/solver_comparison.py --kinds quant --sizes 32 \\
        --families mbv2-expand synth-cond1e4 --solvers exact scip cpsat --time-limit 30 \\
        --no-scaling --no-anytime --out /tmp/bench
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.suite.threads import pin_threads  # noqa: E402  (before numpy loads)

pin_threads(1)

import argparse  # noqa: E402
import logging  # noqa: E402
import shlex  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

from benchmarks.suite import families as fam  # noqa: E402
from benchmarks.suite.machine import load_average, machine_info  # noqa: E402
from benchmarks.suite.methods import (  # noqa: E402
    DEFAULT_SOLVERS,
    FULL_EXTRA,
    OURS,
    known,
    resolve,
)
from benchmarks.suite.report import write_report  # noqa: E402
from benchmarks.suite.runner import run_comparison, warm_up  # noqa: E402
from benchmarks.suite.scaling import run_anytime, run_scaling  # noqa: E402
from benchmarks.suite.worker import WorkerPool  # noqa: E402

log = logging.getLogger("solver_comparison")

QUICK = {
    "families": ["mbv2-expand", "mbv2-project", "mbv2-depthwise", "mbv2-conv3x3",
                 "synth-cond1e4", "synth-rank50"],
    "sizes": ["16", "32", "full"],
    "count": 2,
    "time_limit": 1.0,
    "samples": 8,
    "full_max": 27,
    "scaling_sizes": ["16", "32", "64"],
    "scaling_count": 2,
    "scaling_time_limit": 2.0,
    "bits_list": [2, 4, 8],
    "anytime_limits": [1.0, 3.0],
    "anytime_sizes": ["full"],
    "anytime_families": ["mbv2-project"],
    "throughput_sample": 0.0005,
    "throughput_time_limit": 1.0,
}
FULL = {
    "families": [f for f in fam.ALL_FAMILIES],
    "sizes": [str(s) for s in fam.SIZES] + ["full"],
    "count": 8,
    "time_limit": 60.0,
    "samples": 64,
    "full_max": 128,
    "scaling_sizes": ["16", "32", "48", "64", "96", "128"],
    "scaling_count": 8,
    "scaling_time_limit": 60.0,
    "bits_list": [2, 3, 4, 5, 6, 8],
    "anytime_limits": [10.0, 60.0],
    "anytime_sizes": ["full"],
    "anytime_families": ["mbv2-project", "mbv2-classifier"],
    "throughput_sample": 0.05,
    "throughput_time_limit": 10.0,
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="solver_comparison.py",
        description=__doc__.split("Examples")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true",
                   help="small instance set and short limits (about 10 min on 2 busy cores); "
                   "the report says so")
    p.add_argument("--families", nargs="+", metavar="FAMILY", choices=fam.ALL_FAMILIES,
                   help="instance families (default: quick or full set): "
                   + ", ".join(fam.ALL_FAMILIES))
    p.add_argument("--solvers", nargs="+", metavar="SOLVER",
                   help="methods to run (each kind runs the names it knows; `exact` is always "
                   "added, ratios need it). Quant: " + ", ".join(known("quant"))
                   + ". Prune: " + ", ".join(known("prune")))
    p.add_argument("--kinds", nargs="+", choices=["quant", "prune"], default=["quant", "prune"],
                   help="which problems to compare (default both)")
    p.add_argument("--time-limit", type=float, metavar="SEC",
                   help="per-solve time limit of the comparison (quick 1 s, full 60 s)")
    p.add_argument("--sizes", nargs="+", metavar="N",
                   help="chunk sizes n, or `full` for whole layer width (quick 16 32 full)")
    p.add_argument("--count", type=int, help="instances per family and size (quick 2, full 8)")
    p.add_argument("--bits", type=int, default=4, help="quantization bit width (default 4)")
    p.add_argument("--density", type=float, default=0.25,
                   help="pruning density, kept share (default 0.25 = 4/16, equal to 4 bits)")
    p.add_argument("--box-factor", default="2",
                   help="pruning box ±C·max|w0| given to every solver, so the general solvers' "
                   "big-M model and ours solve the same problem (default 2, the paper's); "
                   "`none` for the unboxed problem (then the general solvers use 2·max|w0| as "
                   "big-M and differ from ours by design)")
    p.add_argument("--samples", type=int, help="calibration samples for real layers")
    p.add_argument("--seed", type=int, default=0, help="seed of instance picks and order")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "reports" / "latest",
                   help="report folder (instances cached in OUT/instances)")
    p.add_argument("--no-scaling", action="store_true", help="skip the scaling study")
    p.add_argument("--no-anytime", action="store_true", help="skip the anytime-gap study")
    p.add_argument("--throughput", action=argparse.BooleanOptionalAction, default=None,
                   help="whole-model MobileNetV2 throughput on --workers processes "
                   "(default: on when the model is installed)")
    p.add_argument("--throughput-sample", type=float,
                   help="share of each layer's problems solved for the throughput "
                   "(quick 0.0005, full 0.05; 1 = every problem)")
    p.add_argument("--workers", type=int, default=2, help="processes for the throughput (2)")
    p.add_argument("--report-only", action="store_true",
                   help="rebuild OUT's report from its rows.csv and summary.json, solving nothing")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    warnings.simplefilter("ignore")
    if args.report_only:
        from benchmarks.suite.report import rerender

        print(f"report: {rerender(args.out)}", file=sys.stderr)
        return 0
    cfg = dict(QUICK if args.quick else FULL)
    families = args.families or cfg["families"]
    sizes = args.sizes or cfg["sizes"]
    count = args.count or cfg["count"]
    time_limit = args.time_limit or cfg["time_limit"]
    samples = args.samples or cfg["samples"]
    box = None if str(args.box_factor).lower() == "none" else float(args.box_factor)
    out: Path = args.out
    cache = out / "instances"
    out.mkdir(parents=True, exist_ok=True)
    (out / ".gitignore").write_text("instances/\n*.partial.csv\n")
    notes: list[str] = []
    if args.quick:
        notes.append(f"Quick mode: {count} instances per family and size, {time_limit:g} s per "
                     f"solve, {samples} calibration samples; anytime limits "
                     f"{'/'.join(f'{t:g}' for t in cfg['anytime_limits'])} s instead of 10/60 s; "
                     "run without --quick for the full study.")

    t_start = time.perf_counter()
    info = machine_info(ROOT)
    command = "python benchmarks/solver_comparison.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    settings = {
        "quick": args.quick, "families": families, "sizes": sizes, "count": count,
        "time_limit": time_limit, "bits": args.bits, "density": args.density,
        "box_factor": box, "samples": samples, "seed": args.seed, "command": command,
        "anytime_limits": cfg["anytime_limits"],
    }

    rows: list[dict] = []
    throughput = None
    worker = WorkerPool()
    try:
        print(f"building instances in {cache} …", file=sys.stderr)
        instances = fam.build_instances(families, sizes, count, args.seed, cache,
                                        samples=samples, full_max=cfg["full_max"], notes=notes)
        print(f"{len(instances)} instances", file=sys.stderr)
        specs = {}
        for kind in args.kinds:
            names = list(args.solvers or DEFAULT_SOLVERS[kind]
                         + (() if args.quick else FULL_EXTRA[kind]))
            names = [OURS] + [n for n in names if n in known(kind) and n != OURS]
            specs[kind] = resolve(kind, names, notes)
            if not specs[kind] or specs[kind][0].name != OURS:
                notes.append(f"{kind}: our exact solver is not available, so no ratios")
        if any(s.name == "cpsat" for v in specs.values() for s in v):
            notes.append("CP-SAT runs in its own worker process: ortools and highspy (which "
                         "cvxpy loads too) bundle different HiGHS builds that cannot be loaded "
                         "into one process. Solves still run one at a time.")
        worker.start()
        warm = {}
        for kind in args.kinds:
            warm.update(warm_up(worker, specs[kind]))
        notes.append("Warm-up solve per method (imports, numba cache, licence check): "
                     + ", ".join(f"{k} {v:.2f} s" for k, v in warm.items()))
        bar = _bar(len(instances) * len(args.kinds), "comparison")
        for kind in args.kinds:
            run_comparison(instances, specs[kind], kind=kind, time_limit=time_limit,
                           bits=args.bits, density=args.density, box_factor=box,
                           worker=worker, seed=args.seed, progress=bar, on_row=rows.append)
            _partial(out, rows)
        bar.close()
        ours = {k: s[0] for k, s in specs.items() if s and s[0].name == OURS}
        if not args.no_scaling and ours:
            _scaling(args, cfg, ours, worker, samples, notes, cache, rows.append)
            _partial(out, rows)
        if not args.no_anytime and ours:
            _anytime(args, cfg, ours, worker, samples, notes, cache, rows.append)
            _partial(out, rows)
        want_tp = args.throughput if args.throughput is not None else fam.mobilenet_available()
        if want_tp:
            throughput = _throughput(args, cfg, samples, notes)
    except KeyboardInterrupt:
        notes.append("**Interrupted**: the report holds the rows finished before the interrupt.")
        print("interrupted: writing the report of what finished", file=sys.stderr)
    finally:
        worker.close()
    if worker.restarts:
        notes.append(f"The solve worker was killed and restarted {worker.restarts} time(s) "
                     "after a solver overran its time limit by far or crashed (rows `killed`).")
    info["load_end"] = load_average()
    settings["wall_seconds"] = time.perf_counter() - t_start
    md = write_report(out, rows=rows, info=info, settings=settings, notes=notes,
                      throughput=throughput)
    (out / "rows.partial.csv").unlink(missing_ok=True)
    print(f"report: {md}  ({settings['wall_seconds']:.0f} s)", file=sys.stderr)
    return 0


def _bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="inst", file=sys.stderr, leave=False)


def _partial(out: Path, rows: list[dict]) -> None:
    from benchmarks.suite.report import write_rows_csv

    write_rows_csv(rows, out / "rows.partial.csv")


def _scaling_instances(fams, sizes, count, seed, cache, samples, full_max, notes):
    return fam.build_instances(fams, sizes, count, seed, cache, samples=samples,
                               full_max=full_max, notes=notes)


def _scaling(args, cfg, ours, worker, samples, notes, cache, sink) -> list[dict]:
    fams = ["mbv2-expand"] if fam.mobilenet_available() else ["synth-cond1e4"]
    by_size = {}
    for size in cfg["scaling_sizes"]:
        by_size[size] = _scaling_instances(fams, [size], cfg["scaling_count"], args.seed + 1,
                                           cache, samples, cfg["full_max"], notes)
    n = sum(len(v) for v in by_size.values())
    nb = len(by_size.get("32", []))
    total = len(ours) * n + nb * (len(cfg["bits_list"]) + 3)
    bar = _bar(total, "scaling")
    try:
        high = resolve("quant", ["fpylll-cvp"], []) if "quant" in ours else []
        if args.solvers and "fpylll-cvp" not in args.solvers:
            high = []
        return run_scaling(by_size, ours, worker=worker, time_limit=cfg["scaling_time_limit"],
                           bits_list=cfg["bits_list"], box_factor=None, seed=args.seed,
                           progress=bar, high_bits=high, on_row=sink)
    finally:
        bar.close()


def _anytime(args, cfg, ours, worker, samples, notes, cache, sink) -> list[dict]:
    if fam.mobilenet_available():
        insts = fam.build_instances(cfg["anytime_families"], cfg["anytime_sizes"], 1,
                                    args.seed + 2, cache, samples=samples, full_max=1280,
                                    notes=notes)
    else:
        insts = fam.build_instances(["synth-cond1e4"], ["256"], 1, args.seed + 2, cache)
    bar = _bar(len(insts) * len(ours) * len(cfg["anytime_limits"]), "anytime")
    try:
        return run_anytime(insts, ours, worker=worker, limits=cfg["anytime_limits"],
                           box_factor=None, seed=args.seed, progress=bar, on_row=sink)
    finally:
        bar.close()


def _throughput(args, cfg, samples, notes) -> dict:
    from benchmarks.suite.throughput import run_throughput

    def factory(total: int, desc: str):
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="prob", file=sys.stderr, leave=False)

    try:
        return run_throughput(samples=samples, seed=args.seed,
                              sample=args.throughput_sample or cfg["throughput_sample"],
                              workers=args.workers, time_limit=cfg["throughput_time_limit"],
                              progress_factory=factory)
    except ImportError as exc:
        notes.append(f"Throughput skipped: {exc}")
        return {"error": str(exc)}


if __name__ == "__main__":
    raise SystemExit(main())
