"""The slow tail of exact quantization, before and after the re-centred search, side by side.

The complete MobileNetV2 study (``benchmarks/paper_study.py --channels all``: n = 32 chunks,
2/3/4/8 bits, 10 s limit) left 104 chunk problems at its time limit, 101 of them at 8 bits, where
the scale clips weights so that the box binds; and a few proved ones took over 0.5 s. This
script solves such problems both ways in one run — ``recentre=False`` (before: the original and
the LLL-reduced searches only) and ``recentre="auto"`` (after: the search re-centred on the box
relaxation joins them, :mod:`solvers.quant.shifted_search`) — alternating per problem, so that a
change of machine load hits both alike, and prints per set the share proved optimal, the median
and total seconds (wall, the solver's ``seconds``) and CPU seconds. A third set of ordinary
problems (a random sample of the study's rows) checks that the common case did not get slower.

Problem sets are ``.npz`` files with ``H{i}``, ``w{i}`` arrays and a JSON ``meta`` list of dicts
(``layer``, ``chunk``, ``channel``, ``bits``, ``scale``, and the study's ``objective``,
``lower_bound``, ``seconds``, ``status``), as written by ``--build`` from the study's store and
its exported-layer cache (read-only)::

    python benchmarks/quant_tail.py --build /tmp/study2/full2.sqlite /tmp/study2/export2.pkl \\
        --out /tmp/quant8
    python benchmarks/quant_tail.py /tmp/quant8/tl.npz /tmp/quant8/slow.npz \\
        --ordinary /tmp/quant8/ordinary.npz --before-sample 20

``--before-sample K`` runs the "before" arm on K problems of each tail set only (it spends the
whole limit on most of them); the study's own stored figures for every problem are printed too.
``--new-only`` / ``--old-only`` run one arm.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUERIES = {
    "tl": "status != 'optimal'",
    "slow": "status = 'optimal' and seconds > 0.5",
    "medium": ("rowid in (select rowid from results where kind = 'quant' and scope = 'chunk' "
               "and seconds between 0.02 and 0.5 order by random() limit 300)"),
    "ordinary": ("rowid in (select rowid from results where kind = 'quant' and scope = 'chunk' "
                 "order by random() limit 500)"),
}


def build(store: str, cache: str, out: Path) -> None:
    """Rebuild the study's problems from its store and exported layers; check each
    time-limited one gives the stored incumbent's objective."""
    import pickle
    import sqlite3

    from solvers import QuantProblem

    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    with open(cache, "rb") as f:
        layers = pickle.load(f)
    out.mkdir(parents=True, exist_ok=True)
    cols = ("layer, chunk, channel, bits, scale, objective, lower_bound, seconds, nodes, "
            "input_start, input_stop, status, weights")
    for name, where in QUERIES.items():
        rows = db.execute(f"select {cols} from results where kind = 'quant' and "
                          f"scope = 'chunk' and {where}").fetchall()
        data, meta = {}, []
        for i, (layer, chunk, ch, bits, scale, obj, lb, sec, nodes, a, b, status,
                weights) in enumerate(rows):
            P = layers[layer]
            H = P.H[a:b, a:b] if P.shared_hessian else P.hessian(ch)[a:b, a:b]
            H, w = np.ascontiguousarray(H), np.ascontiguousarray(P.W0[ch, a:b])
            p = QuantProblem.unchecked(H, w, scale, bits)
            e = p.error(np.asarray(json.loads(weights), dtype=float))
            if abs(e - obj) > 1e-9 * abs(obj) + 1e-300:
                raise SystemExit(f"{layer} chunk {chunk} channel {ch}: rebuilt problem gives "
                                 f"{e!r}, the store {obj!r}")
            data[f"H{i}"], data[f"w{i}"] = H, w
            meta.append({"layer": layer, "chunk": chunk, "channel": ch, "bits": bits,
                         "scale": scale, "objective": obj, "lower_bound": lb, "seconds": sec,
                         "nodes": nodes, "status": status})
        np.savez(out / f"{name}.npz", meta=json.dumps(meta), **data)
        print(f"{out / (name + '.npz')}: {len(meta)} problems")


def load(path: str):
    d = np.load(path)
    meta = json.loads(str(d["meta"]))
    from solvers import QuantProblem

    return [(m, QuantProblem.unchecked(d[f"H{i}"], d[f"w{i}"], m["scale"], m["bits"]))
            for i, m in enumerate(meta)]


def solve_one(p, recentre, time_limit):
    from solvers.quant.exact import solve_exact

    c0 = time.process_time()
    r = solve_exact(p, time_limit=time_limit, recentre=recentre)
    return {"status": r.status.value, "seconds": r.seconds, "cpu": time.process_time() - c0,
            "objective": r.objective, "lower_bound": r.lower_bound, "nodes": r.nodes,
            "proved_by": r.info.get("proved_by")}


def summary(rows: list[dict]) -> str:
    if not rows:
        return "-"
    sec = np.array([r["seconds"] for r in rows])
    cpu = np.array([r["cpu"] for r in rows]) if "cpu" in rows[0] else sec
    proved = sum(r["status"] == "optimal" for r in rows)
    return (f"proved {proved}/{len(rows)} ({100.0 * proved / len(rows):.1f} %), "
            f"median {np.median(sec) * 1e3:.1f} ms, total {sec.sum():.1f} s "
            f"(CPU median {np.median(cpu) * 1e3:.1f} ms, total {cpu.sum():.1f} s)")


def run_set(path: str, arms: list[str], time_limit: float, before_sample: int | None,
            seed: int) -> dict:
    probs = load(path)
    before_idx = set(range(len(probs)))
    if before_sample is not None and before_sample < len(probs):
        rng = np.random.default_rng(seed)
        before_idx = set(rng.choice(len(probs), before_sample, replace=False).tolist())
    out = {"before": [], "after": [], "after_on_before_sample": [], "stored": [],
           "stored_on_before_sample": []}
    worse = 0
    for i, (m, p) in enumerate(probs):
        stored = {"status": m["status"], "seconds": m["seconds"]}
        out["stored"].append(stored)
        res = {}
        # alternate the order of the arms from problem to problem
        order = arms if i % 2 == 0 else arms[::-1]
        for arm in order:
            if arm == "before" and i not in before_idx:
                continue
            res[arm] = solve_one(p, False if arm == "before" else "auto", time_limit)
        for arm, r in res.items():
            out[arm].append(r)
            # every result is a bound pair of the same problem: they must be consistent
            if r["lower_bound"] > m["objective"] * (1 + 1e-9):
                raise SystemExit(f"{path} #{i}: lower bound {r['lower_bound']} above the "
                                 f"study's objective {m['objective']}")
        if "before" in res and "after" in res:
            out["after_on_before_sample"].append(res["after"])
            out["stored_on_before_sample"].append(stored)
            b, a = res["before"], res["after"]
            if a["lower_bound"] > b["objective"] * (1 + 1e-9) or \
                    b["lower_bound"] > a["objective"] * (1 + 1e-9):
                raise SystemExit(f"{path} #{i}: the arms' bounds contradict: {b} {a}")
            worse += a["objective"] > b["objective"] * (1 + 1e-9) and a["status"] != "optimal"
    out["after_worse_incumbent"] = worse
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sets", nargs="*", help="tail problem sets (.npz)")
    ap.add_argument("--ordinary", help="a sample of ordinary problems (.npz)")
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--before-sample", type=int, default=None,
                    help="run the 'before' arm on this many problems of each tail set")
    ap.add_argument("--seed", type=int, default=0)
    arm = ap.add_mutually_exclusive_group()
    arm.add_argument("--new-only", action="store_true", help="only recentre='auto'")
    arm.add_argument("--old-only", action="store_true", help="only recentre=False")
    ap.add_argument("--build", nargs=2, metavar=("STORE", "CACHE"),
                    help="rebuild the sets from the study's store and export cache")
    ap.add_argument("--out", type=Path, default=Path("/tmp/quant8"))
    args = ap.parse_args(argv)
    if args.build:
        build(args.build[0], args.build[1], args.out)
        return 0
    if not args.sets and not args.ordinary:
        ap.error("give problem sets (.npz) or --build")
    arms = ["after"] if args.new_only else ["before"] if args.old_only else ["before", "after"]

    from solvers.warm_up import warm_up

    t = time.perf_counter()
    warm_up(["quant"])
    print(f"# warm: solvers.warm_up(['quant']) ran first ({time.perf_counter() - t:.1f} s); "
          f"load average at start {os.getloadavg()}; {os.cpu_count()} cores")
    print(f"# command: python benchmarks/quant_tail.py {' '.join(argv or sys.argv[1:])}")
    print(f"# time limit {args.time_limit:g} s per solve, one process, arms alternated")
    for path in args.sets:
        res = run_set(path, arms, args.time_limit, args.before_sample, args.seed)
        print(f"\n## {path} ({len(res['stored'])} problems)")
        print(f"  study (stored)    : {summary(res['stored'])}")
        if "after" in arms:
            print(f"  after  (recentre) : {summary(res['after'])}")
        if "before" in arms:
            n = len(res["before"])
            print(f"  before, {n} problems: {summary(res['before'])}")
            if "after" in arms:
                print(f"  after,  same {n}  : {summary(res['after_on_before_sample'])}")
            print(f"  study,  same {n}  : {summary(res['stored_on_before_sample'])}")
        by = {}
        for r in res["after"]:
            by[r["proved_by"]] = by.get(r["proved_by"], 0) + 1
        if by:
            print(f"  after: proved by {by}")
    if args.ordinary:
        res = run_set(args.ordinary, arms, args.time_limit, None, args.seed)
        print(f"\n## ordinary: {args.ordinary} ({len(res['stored'])} problems)")
        for arm in arms:
            print(f"  {arm:6s}: {summary(res[arm])}")
        if len(arms) == 2:
            b = np.array([r["cpu"] for r in res["before"]])
            a = np.array([r["cpu"] for r in res["after"]])
            print(f"  CPU median after/before: {np.median(a) / np.median(b):.3f}; "
                  f"per-problem ratio median {np.median(a / b):.3f}")
    print(f"\n# load average at end {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
