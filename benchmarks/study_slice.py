"""A slice of the paper's MobileNetV2 study, solved by two source trees side by side: CPU per
problem per (layer, kind, bit width), the same answers, and the complete study projected.

The slice: ``--chunks`` chunks × ``--channels`` output channels of each ``--layer`` (default:
the classifier, whose 32×32 chunk ``H`` from 64 images are ill-conditioned, and two 1×1
convolutions as the no-regression check), bits 2, 3, 4, 8, quantization and pruning exact,
boxed pruning at density ``b/16`` (the paper protocol, through :mod:`bounds.compare.plan`:
the tasks, scales and budgets the study solves). The export is read from ``--cache`` (the
pickle ``benchmarks/paper_study.py --cache`` writes), so no torch work is timed.

Each side runs in its own process (``PYTHONPATH`` = its tree; BLAS and OpenMP on one thread
by environment, as the study's pool workers), warmed up first (:func:`solvers.warm_up.warm_up`:
no compilation is timed), then solves the slice batch by batch exactly as a pool worker does
(:func:`bounds.compare.run.batches`, then what :func:`bounds.compare.tasks.run_batch` does:
the batch's shared-``H`` set-up, then each task), measuring the CPU (``time.process_time``) of
each task and of the set-up, which is shared among the pruning rows it serves (what the study's
worker CPU pays; shipping to a worker and the client's store are not in it).
The sides alternate (``before, after, before, after, …`` for ``--repeats``) and the least CPU
of each (layer, kind, bits) is kept: the machine is shared.

Usage::

    git archive 4f29fd4 | tar -x -C /tmp/base      # the tree to compare against
    nice -n 10 python benchmarks/study_slice.py --cache /tmp/study2/export2.pkl \\
        --base /tmp/base --report benchmarks/reports/study_slice

``--projection``: the complete study's CPU from its measured figures (worker CPU per problem
on the classifier and on the other layers, the client's CPU) scaled by this slice's ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_LAYERS = ["classifier.1", "features.17.conv.2", "features.9.conv.0.0"]
#: the complete study as measured (benchmarks/reports/paper_study_complete): problems and
#: worker CPU per problem on the classifier and on the other 52 layers, the client's CPU
STUDY = {"classifier.1": (320_000, 6.8e-3), "other": (589_424, 2.77e-3), "client": 310.0}
_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
            "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def solve_slice(cache: str, layers: list[str], channels: int, chunks: int,
                bits: list[int], time_limit: float) -> dict:
    """In this process: plan the slice, warm up, solve it batch by batch; per row its identity,
    answer and CPU share (see the module docstring)."""
    import pickle

    from bounds.blas_threads import one_blas_thread
    from bounds.compare import CompareConfig
    from bounds.compare.plan import make_plan
    from bounds.compare.run import batches
    from bounds.compare.tasks import _shared_hessians, run_task
    from solvers.warm_up import warm_up

    with open(cache, "rb") as f:
        exported = pickle.load(f)
    cfg = CompareConfig(model="mobilenet_v2", protocol="paper", layers=layers,
                        bits=tuple(bits), channels=channels, max_chunks=chunks,
                        quant_methods=("exact",), prune_methods=("exact",), whole_layer=False,
                        time_limit=time_limit).resolved()
    c0 = time.process_time()
    tasks = make_plan(cfg, {name: exported[name] for name in layers}).tasks()
    plan_cpu = time.process_time() - c0
    warm_up()
    rows = []
    for batch in batches(tasks):
        with one_blas_thread():  # what run_batch does, with a clock around each part
            c = time.process_time()
            extras = _shared_hessians(batch)
            setup = time.process_time() - c
            out = []
            for i, t in enumerate(batch):
                c = time.process_time()
                r = run_task(t, extras.get(i))
                out.append((r, time.process_time() - c, i in extras))
        shared = sum(x[2] for x in out) or 1
        for r, cpu, fam in out:
            rows.append({"layer": r["layer"], "chunk": r["chunk"], "channel": r["channel"],
                         "kind": r["kind"], "bits": r["bits"], "status": r["status"],
                         "objective": r["objective"], "lower_bound": r["lower_bound"],
                         "nodes": r["nodes"], "cpu": cpu + (setup / shared if fam else 0.0)})
    return {"plan_cpu": plan_cpu, "rows": rows}


def _run_side(tree: Path, args) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), **{v: "1" for v in _THREADS})
    cmd = [sys.executable, str(ROOT / "benchmarks" / "study_slice.py"), "--child",
           "--cache", args.cache, "--channels", str(args.channels), "--chunks",
           str(args.chunks), "--time-limit", str(args.time_limit), "--bits",
           *map(str, args.bits), *[x for name in args.layers for x in ("--layer", name)]]
    out = subprocess.run(cmd, env=env, cwd=tree, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _groups(rows: list[dict]) -> dict[tuple[str, str, int], list[dict]]:
    g: dict[tuple[str, str, int], list[dict]] = defaultdict(list)
    for r in rows:
        g[(r["layer"], r["kind"], r["bits"])].append(r)
    return g


def compare_answers(before: list[dict], after: list[dict], rtol: float = 1e-9) -> list[str]:
    """Rows whose status differs, or whose objective differs by more than ``rtol`` relative
    (with the other side's lower bound above this side's objective: a contradiction)."""
    key = ("layer", "chunk", "channel", "kind", "bits")
    b = {tuple(r[k] for k in key): r for r in before}
    bad = []
    for r in after:
        o = b[tuple(r[k] for k in key)]
        scale = max(abs(o["objective"] or 0.0), 1e-300)
        if r["status"] != o["status"] or abs(r["objective"] - o["objective"]) > rtol * scale:
            bad.append(f"{r['layer']} chunk {r['chunk']} ch {r['channel']} {r['kind']} "
                       f"{r['bits']} bit: {o['status']} {o['objective']!r} -> {r['status']} "
                       f"{r['objective']!r}")
        for x, y in ((o, r), (r, o)):
            if x["lower_bound"] is not None and x["lower_bound"] > y["objective"] * (1 + rtol):
                bad.append(f"{r['layer']} chunk {r['chunk']} ch {r['channel']}: a lower bound "
                           "above the other side's objective")
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", required=True, help="the exported layers (paper_study --cache)")
    ap.add_argument("--layer", action="append", dest="layers")
    ap.add_argument("--channels", type=int, default=100)
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4, 8])
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--base", help="the source tree to compare against (before)")
    ap.add_argument("--after", default=str(ROOT),
                    help="the source tree measured as after (default: this one)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--report", help="write README.md and slice.json here")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.layers = args.layers or DEFAULT_LAYERS
    if args.child:
        sys.path.insert(0, os.getcwd())
        print(json.dumps(solve_slice(args.cache, args.layers, args.channels, args.chunks,
                                     args.bits, args.time_limit)))
        return 0
    after = Path(args.after).resolve()
    sides = {"before": Path(args.base).resolve(), "after": after} if args.base else {"after": after}
    best: dict[str, dict] = {}
    runs: dict[str, list[dict]] = {s: [] for s in sides}
    load = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        for side, tree in sides.items():
            res = _run_side(tree, args)
            runs[side].append(res)
            load.append(os.getloadavg()[0])
            g = {k: sum(r["cpu"] for r in rs) / len(rs) for k, rs in _groups(res["rows"]).items()}
            prev = best.setdefault(side, {"groups": g, "rows": res["rows"]})["groups"]
            for k, v in g.items():
                prev[k] = min(prev[k], v)
    lines = [f"slice: {', '.join(args.layers)}; {args.chunks} chunks x {args.channels} channels; "
             f"bits {args.bits}; repeats {args.repeats}; load (1 min) "
             f"{min(load):.1f}-{max(load):.1f}", "",
             "| layer | kind | bits | problems | " + " | ".join(f"{s} ms CPU" for s in sides)
             + (" | after / before |" if "before" in sides else " |"),
             "|---|---|---|---|" + "---|" * (len(sides) + ("before" in sides))]
    after_rows = best["after"]["rows"]
    counts = {k: len(v) for k, v in _groups(after_rows).items()}
    for k in sorted(best["after"]["groups"]):
        vals = [best[s]["groups"][k] for s in sides]
        cells = " | ".join(f"{1e3 * v:.2f}" for v in vals)
        ratio = f" | {vals[1] / vals[0]:.2f} |" if len(vals) == 2 else " |"
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | {counts[k]} | {cells}{ratio}")
    summary = {"settings": {k: getattr(args, k) for k in ("layers", "channels", "chunks", "bits",
                                                           "time_limit", "repeats")},
               "load": load, "groups": {}}
    per_side = {}
    for s in sides:
        cls = [v for k, v in best[s]["groups"].items() if k[0] == "classifier.1"]
        oth = [v for k, v in best[s]["groups"].items() if k[0] != "classifier.1"]
        per_side[s] = (sum(cls) / max(len(cls), 1), sum(oth) / max(len(oth), 1))
        summary["groups"][s] = {"|".join(map(str, k)): v for k, v in best[s]["groups"].items()}
        lines.append("")
        lines.append(f"{s}: classifier {1e3 * per_side[s][0]:.2f} ms per problem, the other "
                     f"layers {1e3 * per_side[s][1]:.2f} ms (means over kind and bits); "
                     f"planning {min(r['plan_cpu'] for r in runs[s]):.2f} s CPU")
    if "before" in sides:
        bad = compare_answers(best["before"]["rows"], after_rows)
        summary["differences"] = bad
        lines.append("")
        lines.append(f"answers: {len(after_rows)} problems, {len(bad)} with another status or "
                     "objective (relative 1e-9)" + (": " + "; ".join(bad[:5]) if bad else ""))
        rc = per_side["after"][0] / per_side["before"][0]
        ro = per_side["after"][1] / per_side["before"][1]
        (nc, pc), (no, po) = STUDY["classifier.1"], STUDY["other"]
        total = nc * pc * rc + no * po * ro + STUDY["client"]
        summary["projection_cpu_seconds"] = total
        lines.append(f"projection: the complete study measured {nc * pc:.0f} + {no * po:.0f} "
                     f"worker CPU s (classifier + other layers) + {STUDY['client']:.0f} client; "
                     f"scaled by these ratios ({rc:.2f}, {ro:.2f}): {total:.0f} CPU s, "
                     f"{total / 120:.1f} min on two cores")
    print("\n".join(lines))
    if args.report:
        folder = Path(args.report)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "slice.json").write_text(json.dumps(summary, indent=1))
        (folder / "table.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
