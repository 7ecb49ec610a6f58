"""``pqbound solve quant|prune PROBLEM.npz``: solve one problem file's channels."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from solvers.problem import ProblemError
from solvers.registry import methods

from ..channel_solve import (
    LevelSpec,
    PruneSpec,
    parse_nm,
    parse_options,
    results_table,
    select_channels,
    solve_level_channels,
    solve_prune_channels,
    solve_quant_channels,
    summarize,
)
from ..problem_file import load_problem
from ..scale_choice import SCALE_METHODS, choose_scales


def _method_help(kind: str) -> str:
    return "; ".join(f"{m.name}: {m.summary}" for m in methods(kind))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "solve",
        help="solve a problem file (quantization or pruning)",
        description="Solve every channel (or one) of a problem file written by `pqbound export` "
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
                   help="at most round(D·n) nonzero weights per channel")
    s.add_argument("--nm", default=None, metavar="N:M",
                   help="at most N nonzero weights in each group of M consecutive inputs")
    q.set_defaults(func=run_quant)

    r = kinds.add_parser(
        "prune",
        help="pruning: min (w − w0)ᵀH(w − w0) with at most k nonzeros",
        description="Prune each channel. Methods: " + _method_help("prune"),
    )
    _common(r)
    g = r.add_mutually_exclusive_group(required=True)
    g.add_argument("--density", type=float, help="fraction of weights kept, k = round(d·n)")
    g.add_argument("--sparsity", type=float, help="fraction of weights removed (1 − density)")
    g.add_argument("--bits", type=int, help="equal compression to B-bit quantization: d = B/16")
    g.add_argument("--nm", metavar="N:M", help="semi-structured: at most N of each M inputs kept")
    r.add_argument("--box-factor", type=float, default=None,
                   help="the paper's box: kept weights within ±C·max|w0| (default: no box)")
    r.add_argument("--method", default="exact", metavar="METHOD",
                   choices=[m.name for m in methods("prune")],
                   help="one of: " + ", ".join(m.name for m in methods("prune")))
    r.set_defaults(func=run_prune)


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
    p.add_argument("problem", metavar="PROBLEM.npz", help="problem file")
    p.add_argument("--channel", type=int, default=None, help="solve only this channel")
    p.add_argument("--time-limit", type=positive_float, default=None, metavar="SEC",
                   help="per-channel time limit; the result keeps a valid bound")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="pass an option to the method, e.g. --option damp=0.01 "
                   "--option act_order=true (repeatable; see docs for each method's options)")
    p.add_argument("--json", action="store_true", help="print JSON (with the solutions)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run_quant(args: argparse.Namespace) -> int:
    problem = load_problem(args.problem)
    sparse = any(x is not None for x in (args.nonzeros, args.density, args.nm))
    if args.format is not None or "levels" in problem.meta or sparse:
        return _run_levels(args, problem, sparse)
    if args.group_size is not None:
        raise ProblemError("--group-size applies to --format only")
    bits = args.bits if args.bits is not None else int(problem.meta.get("bits", 4))
    chans = select_channels(problem, args.channel)
    results = solve_quant_channels(
        problem,
        bits=bits,
        method=args.method,
        scale=args.scale,
        scale_method=args.scale_method,
        per_channel=args.per_channel,
        channels=chans,
        time_limit=args.time_limit,
        options=parse_options(args.option),
        progress=_show_progress(args),
    )
    head = {"problem": args.problem, "kind": "quant", "method": args.method, "bits": bits}
    return _emit(args, head, results)


def _run_levels(args: argparse.Namespace, problem, sparse: bool) -> int:
    """``solve quant`` over levels: a format preset, the file's levels, or the grid + a limit."""
    if args.format is not None and (args.bits is not None or args.scale is not None
                                    or args.per_channel):
        raise ProblemError("--format builds its own levels: --bits, --scale and --per-channel "
                           "do not apply (per-channel scales: a -ch format, e.g. int4-ch)")
    if args.group_size is not None and args.format is None:
        raise ProblemError("--group-size applies to --format only")
    common = {"nonzeros": args.nonzeros, "density": args.density,
              "nm": parse_nm(args.nm) if args.nm else None}
    if args.format is not None:
        spec = LevelSpec(format=args.format, group_size=args.group_size,
                         scale_method=args.scale_method, **common)
    elif "levels" in problem.meta and args.bits is None and args.scale is None:
        spec = LevelSpec(levels=problem.meta["levels"], **common)
    elif "levels" in problem.meta:
        raise ProblemError(f"{args.problem} carries levels: --bits and --scale do not apply "
                           "(drop them, or use --format)")
    else:
        bits = args.bits if args.bits is not None else int(problem.meta.get("bits", 4))
        scales = choose_scales(problem, bits, scale=args.scale, method=args.scale_method,
                               per_channel=args.per_channel)
        spec = LevelSpec(grid_scales=scales, bits=bits, **common)
    chans = select_channels(problem, args.channel)
    results, desc = solve_level_channels(
        problem, spec, method=args.method, channels=chans, time_limit=args.time_limit,
        options=parse_options(args.option), progress=_show_progress(args))
    head = {"problem": args.problem, "kind": "quant", "method": args.method, **desc}
    return _emit(args, head, results)


def run_prune(args: argparse.Namespace) -> int:
    problem = load_problem(args.problem)
    spec = PruneSpec.from_options(
        density=args.density, sparsity=args.sparsity, bits=args.bits, nm=args.nm,
        box_factor=args.box_factor,
    )
    chans = select_channels(problem, args.channel)
    results = solve_prune_channels(
        problem, spec, method=args.method, channels=chans, time_limit=args.time_limit,
        options=parse_options(args.option), progress=_show_progress(args),
    )
    kw = spec.keywords(problem.n)
    head: dict[str, Any] = {"problem": args.problem, "kind": "prune", "method": args.method,
                            "k": kw.get("k"), "nm": kw.get("nm"), "box_factor": args.box_factor}
    return _emit(args, head, results)


def _show_progress(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _emit(args: argparse.Namespace, head: dict[str, Any], results: list) -> int:
    total = summarize(results)
    if args.json:
        doc = dict(head)
        doc["channels"] = [r.to_dict(channel=c) for c, r in results]
        doc["total"] = total
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(f"{head['kind']} {head['method']}  {args.problem}")
        print(results_table(results))
        lb = total["lower_bound"]
        print(
            f"total: error {total['objective']:.6g}"
            + ("" if lb is None else f", lower bound {lb:.6g}")
            + f", SQNR {_db(total['sqnr_db'])}"
            + ("" if lb is None else f" ({_ceiling(total['sqnr_upper_db'])})")
            + f", {total['seconds']:.2f} s, status {total['status']}"
        )
    return 0


def _ceiling(value: float | str | None) -> str:
    return "no bound" if value in (None, "inf") else f"≤ {_db(value)}"


def _db(value: float | str | None) -> str:
    if value is None:
        return "—"
    return f"{value} dB" if isinstance(value, str) else f"{value:.3f} dB"
