"""``pqbound solve quant|prune PROBLEM…``: solve the channels of problem files (and folders).

The work is :func:`bounds.batch_solve.solve_many`'s; this module parses and prints. With
``--json`` each file gives one line of JSON (JSON Lines); a file that fails is reported on stderr
and the others go on; the exit code is 2 when any failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from solvers.registry import methods

from ..batch_solve import FileOutcome, SolveSettings
from ..channel_solve import parse_options, results_table
from ..scale_choice import SCALE_METHODS


def _method_help(kind: str) -> str:
    return "; ".join(f"{m.name}: {m.summary}" for m in methods(kind))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "solve",
        help="solve a problem file (quantization or pruning)",
        description="Solve every channel (or one) of problem files written by `pqbound export` "
        "or built with numpy (see docs/problem-file.md).",
    )
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)

    q = kinds.add_parser(
        "quant",
        help="quantization: min (s·z − w0)ᵀH(s·z − w0) over the signed b-bit grid, or over any "
             "format's levels, optionally with a nonzero limit",
        description="Quantize each channel. Methods: " + _method_help("quant")
        + ". Over levels (a file's `levels`, --format, or any grid with --nonzeros/--density/"
        "--nm) the methods are: " + _method_help("levels") + ". See docs/formats.md.",
    )
    _common(q)
    q.add_argument("--bits", type=int, default=None,
                   help="bit width 1..16 (default: the file's bits, else 4)")
    g = q.add_mutually_exclusive_group()
    g.add_argument("--scale", type=float, default=None, help="grid step s > 0")
    g.add_argument("--scale-method", choices=SCALE_METHODS, default="mse",
                   help="how to choose s when not given (default mse: MSE-optimal on weights)")
    q.add_argument("--per-channel", action="store_true",
                   help="one scale per output channel instead of one per tensor")
    q.add_argument("--method", default="exact", metavar="METHOD",
                   choices=sorted({m.name for m in methods("quant") + methods("levels")}),
                   help="grid: " + ", ".join(m.name for m in methods("quant"))
                   + "; levels: " + ", ".join(m.name for m in methods("levels")))
    f = q.add_argument_group(
        "formats and sparsity",
        "Solve over a number format's levels (every weight one of a sorted set, group-wise "
        "scales and zero points baked in) instead of the signed grid; a problem file with a "
        "`levels` array is solved over those levels. A nonzero limit applies to any of them.")
    f.add_argument("--format", default=None, metavar="NAME",
                   help="build the levels from W0 with a preset: int4, int4-asym-g128, fp8-e4m3, "
                        "fp4-e2m1 (MX), fp4-e2m1-nv, nf4, … (scale rule: --scale-method)")
    f.add_argument("--group-size", type=int, default=None, metavar="G",
                   help="one scale (and zero point) per G consecutive inputs; G must divide n")
    s = f.add_mutually_exclusive_group()
    s.add_argument("--nonzeros", type=int, default=None, metavar="K",
                   help="at most K nonzero weights per channel (zero must be a level)")
    s.add_argument("--density", type=float, default=None, metavar="D",
                   help="at most round(D·n) nonzero weights per channel (halves rounded up)")
    s.add_argument("--nm", default=None, metavar="N:M",
                   help="at most N nonzero weights in each group of M consecutive inputs")
    q.set_defaults(func=run)

    r = kinds.add_parser(
        "prune",
        help="pruning: min (w − w0)ᵀH(w − w0) with at most k nonzeros",
        description="Prune each channel. Methods: " + _method_help("prune"),
    )
    _common(r)
    g = r.add_mutually_exclusive_group(required=True)
    g.add_argument("--keep", type=int, metavar="K",
                   help="keep exactly K weights per channel (0 <= K <= n)")
    g.add_argument("--density", type=float,
                   help="fraction of weights kept: k = round(d·n) with halves rounded up "
                        "(k = floor(d·n + 0.5): d = 0.5 of n = 9 keeps 5)")
    g.add_argument("--sparsity", type=float, help="fraction of weights removed (1 − density)")
    g.add_argument("--bits", type=int, help="equal compression to B-bit quantization: d = B/16")
    g.add_argument("--nm", metavar="N:M", help="semi-structured: at most N of each M inputs kept")
    r.add_argument("--box-factor", type=float, default=None,
                   help="the paper's box: kept weights within ±C·max|w0| (default: no box)")
    r.add_argument("--method", default="exact", metavar="METHOD",
                   choices=[m.name for m in methods("prune")],
                   help="one of: " + ", ".join(m.name for m in methods("prune")))
    r.set_defaults(func=run)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("problem", metavar="PROBLEM", nargs="+",
                   help="problem files (.npz) and folders of them (every *.npz in the folder)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="solve files in N processes (default 1)")
    p.add_argument("--channel", type=int, default=None, help="solve only this channel")
    p.add_argument("--time-limit", type=positive_float, default=None, metavar="SEC",
                   help="per-channel time limit; the result keeps a valid bound")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="pass an option to the method, e.g. --option damp=0.01 "
                   "--option act_order=true (repeatable; see docs for each method's options)")
    p.add_argument("--json", action="store_true",
                   help="print JSON Lines: one object per file (with its solutions, its "
                        "`problem` path and `load_seconds`, the one-time cost of loading the "
                        "kernels, kept out of every `seconds`)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar (shown on a terminal only)")


def _settings(args: argparse.Namespace) -> SolveSettings:
    common = {"method": args.method, "channel": args.channel, "time_limit": args.time_limit,
              "options": parse_options(args.option)}
    if args.kind == "prune":
        return SolveSettings("prune", density=args.density, sparsity=args.sparsity,
                             bits=args.bits, nm=args.nm, keep=args.keep,
                             box_factor=args.box_factor, **common)
    return SolveSettings("quant", bits=args.bits, scale=args.scale,
                         scale_method=args.scale_method, per_channel=args.per_channel,
                         format=args.format, group_size=args.group_size, nonzeros=args.nonzeros,
                         density=args.density, nm=args.nm, **common)


def run(args: argparse.Namespace) -> int:
    """Solve every file; print each result as it comes, each failed file on stderr."""
    from ..batch_solve import solve_many

    settings = _settings(args)
    progress = not args.quiet and sys.stderr.isatty()
    imports = import_seconds()
    failed = count = 0
    for out in solve_many(args.problem, settings, workers=args.workers, progress=progress):
        count += 1
        if out.error is not None:
            failed += 1
            print(f"pqbound: error: {out.error}", file=sys.stderr)
            continue
        out.doc["load_seconds"] = round(out.doc["load_seconds"] + imports, 6)
        imports = 0.0
        _emit(args, out)
    if failed:
        if count > 1:  # one file: its own error line says it all
            print(f"pqbound: {failed} of {count} problem files failed", file=sys.stderr)
        return 2
    return 0


def import_seconds() -> float:
    """Seconds from the start of this ``pqbound`` call to now (0 when not run by the CLI).

    The first call in a process starts when ``bounds.cli`` was imported (so the imports count),
    later calls when their ``main`` began.
    """
    cli = sys.modules.get("bounds.cli")
    t0 = getattr(cli, "CALL_STARTED", None)
    return 0.0 if t0 is None else time.perf_counter() - t0


def _emit(args: argparse.Namespace, out: FileOutcome) -> None:
    doc = out.doc
    if args.json:
        sys.stdout.write(json.dumps(doc) + "\n")
        sys.stdout.flush()
        return
    total = doc["total"]
    print(f"{doc['kind']} {doc['method']}  {out.path}")
    print(results_table(out.results))
    lb = total["lower_bound"]
    print(
        f"total: error {total['objective']:.6g}"
        + ("" if lb is None else f", lower bound {lb:.6g}")
        + f", SQNR {_db(total['sqnr_db'])}"
        + ("" if lb is None else f" ({_ceiling(total['sqnr_upper_db'])})")
        + f", {total['seconds']:.2f} s, status {total['status']}"
        + f" (+ {doc['load_seconds']:.2f} s loading)"
    )


def _ceiling(value: float | str | None) -> str:
    return "no bound" if value in (None, "inf") else f"≤ {_db(value)}"


def _db(value: float | str | None) -> str:
    if value is None:
        return "—"
    return f"{value} dB" if isinstance(value, str) else f"{value:.3f} dB"
