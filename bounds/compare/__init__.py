"""Per-layer comparison runs: quantization vs pruning, with certified bounds, stored and reported.

The Python API behind ``pqbound compare`` and ``pqbound report``::

    from bounds.compare import run_compare
    summary = run_compare("mobilenet_v2", layers=["features.0.0"], bits=(2, 4, 8),
                          channels=2, db="results.sqlite", report="pqbound-report")
    print(summary.text())

See docs/compare.md.
"""

from solvers.whole_channel import BlockSplit, allocate_budget, block_split

from .report import build_report
from .run import CompareSummary, run_compare
from .settings import DEFAULT_LAYERS, CompareConfig, parse_methods
from .store import ResultStore, StoreError

__all__ = [
    "DEFAULT_LAYERS",
    "BlockSplit",
    "CompareConfig",
    "CompareSummary",
    "ResultStore",
    "StoreError",
    "allocate_budget",
    "block_split",
    "build_report",
    "parse_methods",
    "run_compare",
]
