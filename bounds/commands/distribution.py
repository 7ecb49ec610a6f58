"""``pqbound distribution``: analytic pruning vs quantization for a law; sweep; figures."""

from __future__ import annotations

import argparse
import json
import math
import sys

from solvers.problem import ProblemError

DESCRIPTION = """\
The paper's first study on distributions, computed by numerical integration (scipy quad over the
pieces between rounding thresholds; no sampling).

Quantization: symmetric uniform, b bits, scale s, Q(x) = s*clip(rint(x/s), zmin, zmax) on the
project's signed grid zmin = -2^(b-1), zmax = 2^(b-1)-1 (--grid narrow: +-(2^(b-1)-1)), with the
MSE-optimal s (600-point log grid of clipping points + Brent polish on the exact integral).
Pruning at equal compression from FP16: keep |x| > t with P(|X| > t) = b/16, error E[x^2; |x|<=t].
SNR = 10*log10(E[x^2] / MSE). Kurtosis is the excess (Fisher) kurtosis: normal 0, Laplace 3,
uniform -1.2, Student-t 6/(df-4) for df > 4 and infinite for df <= 4 (df <= 2: infinite variance,
so --truncate is required). --truncate X conditions the law on |x| <= X (X in the law's own units:
N(0,1), Laplace(0,1), U(-1,1), t(df) with scale 1), which gives heavy tails finite moments.
Reported scales and thresholds are in units of the law's standard deviation.

Modes:
  one law        pqbound distribution --dist t --df 5 [--truncate 20] [--bits 2 4 8] [--json]
  kurtosis sweep pqbound distribution --sweep [--quick] [--plot DIR] [--json]
                 (Student-t df 100..4.1, truncated normal, truncated t(3); the crossover kurtosis
                 where pruning starts to win; --plot writes DIR/kurtosis_sweep.png)
  figures        pqbound distribution --figures DIR
                 (DIR/figure1_normal.png: standard normal after INT4 and 75 % pruning, the
                 probability-weighted squared error, SNR vs compression; and the sweep figure)
See docs/distribution-study.md.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "distribution",
        help="analytic pruning vs quantization SNR for a distribution; kurtosis sweep; figures",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dist", choices=("normal", "laplace", "uniform", "t"), default=None,
                   help="the law (one-law mode)")
    p.add_argument("--df", type=float, default=None, help="Student-t degrees of freedom")
    p.add_argument("--truncate", type=float, default=None, metavar="X",
                   help="condition the law on |x| <= X (simulates bounded outliers)")
    p.add_argument("--bits", type=int, nargs="+", default=None, metavar="B",
                   help="bit widths 2..12 (default 2 3 4 5 6 7 8)")
    p.add_argument("--grid", choices=("signed", "narrow"), default="signed",
                   help="integer grid: signed [-2^(b-1), 2^(b-1)-1] (default, as solvers.grid "
                        "and the paper's code) or narrow [-(2^(b-1)-1), 2^(b-1)-1]")
    p.add_argument("--sweep", action="store_true", help="kurtosis sweep over the families")
    p.add_argument("--quick", action="store_true", help="with --sweep: a small set of laws")
    p.add_argument("--plot", metavar="DIR", default=None,
                   help="with --sweep: write DIR/kurtosis_sweep.png")
    p.add_argument("--figures", metavar="DIR", default=None,
                   help="write DIR/figure1_normal.png and DIR/kurtosis_sweep.png")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..distribution.analytic import DEFAULT_BITS

    bits = args.bits or list(DEFAULT_BITS)
    modes = sum([args.dist is not None, args.sweep, args.figures is not None])
    if modes != 1:
        raise ProblemError("choose exactly one of --dist NAME, --sweep or --figures DIR "
                           "(see pqbound distribution --help)")
    if args.dist is not None:
        extra = [o for o, v in (("--quick", args.quick), ("--plot", args.plot)) if v]
        if extra:
            raise ProblemError(f"{' and '.join(extra)} apply to --sweep, not to --dist")
        return _one(args, bits)
    if args.df is not None or args.truncate is not None:
        raise ProblemError("--df and --truncate apply to --dist only")
    return _sweep(args, bits)


def _one(args: argparse.Namespace, bits: list[int]) -> int:
    from ..distribution.analytic import analyse_distribution
    from ..distribution.densities import make_density

    d = make_density(args.dist, df=args.df, truncate=args.truncate)
    res = analyse_distribution(d, bits, args.grid)
    if args.json:
        json.dump(res.to_dict(), sys.stdout, indent=1, allow_nan=False)
        sys.stdout.write("\n")
        return 0
    k = d.kurtosis
    kt = "inf (" + d.kurtosis_note + ")" if math.isinf(k) else f"{k:.6g}"
    print(f"{d.label}: std {d.std:.6g}, E[x²] {d.second_moment:.6g}, excess kurtosis {kt}")
    print(f"grid: {args.grid}; scale, clip and threshold in units of the std")
    head = (f"{'bits':>4} {'quant SNR dB':>13} {'prune SNR dB':>13} {'Q − P dB':>9} "
            f"{'scale':>9} {'clip':>8} {'keep':>7} {'threshold':>10}")
    print(head)
    print("-" * len(head))
    for b, r in sorted(res.bits.items()):
        print(f"{b:>4} {r.quant_sqnr_db:>13.4f} {r.prune_sqnr_db:>13.4f} "
              f"{r.quant_sqnr_db - r.prune_sqnr_db:>9.3f} {r.scale:>9.5f} {r.clip:>8.4f} "
              f"{r.keep_fraction:>7.4f} {r.prune_threshold:>10.5f}")
    return 0


def _sweep(args: argparse.Namespace, bits: list[int]) -> int:
    from pathlib import Path

    from ..distribution.kurtosis_sweep import QUICK_FAMILIES, kurtosis_sweep

    progress = not args.quiet and sys.stderr.isatty()
    figures = args.figures is not None
    if figures:
        from ..distribution.figures import plot_figure1

        out = plot_figure1(Path(args.figures) / "figure1_normal.png", grid=args.grid)
        print(f"figure written to {out}", file=sys.stderr if args.json else sys.stdout)
    sweep = kurtosis_sweep(bits, QUICK_FAMILIES if args.quick else None, args.grid,
                           progress=progress)
    plot_dir = args.figures if figures else args.plot
    if args.json:
        json.dump(sweep.to_dict(), sys.stdout, indent=1, allow_nan=False)
        sys.stdout.write("\n")
    else:
        print(sweep.table())
    if plot_dir:
        from ..distribution.figures import plot_kurtosis_sweep

        out = plot_kurtosis_sweep(sweep, Path(plot_dir) / "kurtosis_sweep.png")
        print(f"figure written to {out}", file=sys.stderr if args.json else sys.stdout)
    return 0
