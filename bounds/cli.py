"""The ``pqbound`` command line.

Each sub-command lives in its own module under :mod:`bounds.commands` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a function taking the parsed
arguments and returning the exit code. The CLI alone talks to the terminal; everything below it
logs.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # the CLI's start: `load_seconds` counts the imports from here
CALL_STARTED: float | None = None  # the current call's start (see main)

import argparse  # noqa: E402
import importlib  # noqa: E402
import logging  # noqa: E402
import pkgutil  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402

from solvers.problem import ProblemError  # noqa: E402

from . import commands  # noqa: E402
from .provenance import pqbound_version  # noqa: E402

DESCRIPTION = """\
pqbound: certified bounds and exact optima for pruning vs quantization of neural-network layers.

Typical flow: `pqbound layers` to see a model's layers, `pqbound export` to write per-chunk
quadratic problems (H = XᵀX), `pqbound solve quant|prune` on a problem file, or
`pqbound compare` to run the whole per-layer study into a results store and report.
"""


class _Version(argparse.Action):
    """``--version``, looked up only when asked (reading package metadata costs ~0.1 s)."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        print(f"pqbound {pqbound_version()}")
        parser.exit()


def command_names() -> list[str]:
    """The sub-commands: the public modules of :mod:`bounds.commands`, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(commands.__path__)
                  if not m.name.startswith("_"))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every sub-command, or of ``only`` that one (each command module imports
    what it needs: ``solve`` loads neither torch nor matplotlib)."""
    parser = argparse.ArgumentParser(
        prog="pqbound",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-vv for debug)")
    parser.add_argument("--version", action=_Version, nargs=0,
                        help="show pqbound's version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in command_names():
        if only is not None and name != only:
            continue
        module = importlib.import_module(f"{commands.__name__}.{name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    global CALL_STARTED
    # the first call in a process pays the imports; later calls start now
    CALL_STARTED = STARTED if CALL_STARTED is None else time.perf_counter()
    as_program = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(argv)
    if as_program and command == "solve":
        _without_cffi()
        _lean_kernel_loads()
    parser = build_parser(command)
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


def _without_cffi() -> None:
    """Mark ``cffi`` as not installed in this process, before numba loads its first kernel.

    When ``cffi`` is importable, numba's first kernel load (in any process) imports it and
    builds a ``cffi.FFI()`` — pycparser's lexer and parser tables, ≈ 50 ms, a twentieth of a
    one-file ``pqbound solve`` — only to type cffi function pointers passed to compiled
    functions. ``pqbound solve`` reads problem files and runs pqbound's own kernels, none of
    which takes a cffi object, so the program (never a library import, never a call with an
    explicit ``argv``) skips it; numba then reports cffi support as absent. Nothing changes when
    ``cffi`` or numba's cffi support is already loaded.
    """
    if "cffi" not in sys.modules and "numba.core.typing.cffi_utils" not in sys.modules:
        sys.modules["cffi"] = None  # type: ignore[assignment]  # import cffi -> ImportError


def _lean_kernel_loads() -> None:
    """Load cached kernels without numba's registry refresh, in this process only.

    :func:`solvers.kernel_cache.lean_cached_loads`: before its first cached kernel load numba
    imports and installs every typing and lowering registry (0.2–0.45 s) that only compiling
    needs; ``pqbound solve`` loads its kernels with the NRT initialised alone. A process-wide
    change to numba, so the program makes it (never a library import, never a call with an
    explicit ``argv``); compiling, on a cold cache, still refreshes fully.
    """
    from solvers.kernel_cache import lean_cached_loads

    lean_cached_loads()


def _command_of(argv: list[str]) -> str | None:
    """The sub-command named in ``argv`` if it is a known one (else None: the full parser)."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in command_names() else None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
