"""``pqbound report``: rebuild a comparison report (Markdown, HTML, plots, CSV/JSON)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="rebuild the report of a `pqbound compare` run from its results store",
        description="Write report.md, report.html, the per-layer figures, gaps.png, times.png, "
        "rows.csv and rows.json for one run of a results store (default: the latest run). "
        "Works during or after an interrupted run (missing figures show as —).",
    )
    p.add_argument("--db", default="pqbound-results.sqlite", metavar="FILE",
                   help="the results store (default pqbound-results.sqlite)")
    p.add_argument("--out", default="pqbound-report", metavar="DIR",
                   help="output folder (default pqbound-report)")
    p.add_argument("--run", default=None, metavar="ID", help="run id or unique prefix")
    p.add_argument("--list", action="store_true", help="list the runs in the store and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..compare.report import build_report
    from ..compare.store import ResultStore
    from ..files import cleanup_on_failure

    if args.list:
        with ResultStore(args.db, readonly=True) as st:
            for r in st.runs():
                s = r["settings"]
                summ = r["summary"] or {}
                print(f"{r['run_id']}  {r['updated']}  {s.get('model')} "
                      f"protocol={s.get('protocol')} layers={len(s.get('layer_problems', {}))} "
                      f"bits={s.get('bits')} "
                      + (f"tasks={summ.get('tasks')}" if summ else "(unfinished)"))
        return 0
    with cleanup_on_failure(folders=[args.out]):  # no empty report folder on failure
        path = build_report(args.db, args.out, run_id=args.run)
    print(f"report: {path}")
    return 0
