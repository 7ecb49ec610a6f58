"""The ``pqbound`` command line.

Each sub-command lives in its own module under :mod:`bounds.commands` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a function taking the parsed
arguments and returning the exit code. The CLI alone talks to the terminal; everything below it
logs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from solvers.problem import ProblemError

from . import commands
from .provenance import pqbound_version

DESCRIPTION = """\
pqbound: certified bounds and exact optima for pruning vs quantization of neural-network layers.

Typical flow: `pqbound layers` to see a model's layers, `pqbound export` to write per-chunk
quadratic problems (H = XᵀX), `pqbound solve quant|prune` on a problem file, or
`pqbound compare` to run the whole per-layer study into a results store and report.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pqbound",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-vv for debug)")
    parser.add_argument("--version", action="version", version=f"pqbound {pqbound_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ProblemError as exc:
        print(f"pqbound: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pqbound: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
