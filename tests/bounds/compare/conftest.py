"""Small layer problems for the comparison pipeline (no torch needed)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

# ``tests/`` is first on sys.path (pyproject's pythonpath) and holds a folder ``tests/solvers``
# without ``__init__.py``; with the editable install's finder placed after the path finder, that
# folder can shadow the real ``solvers`` package as a namespace package, which then hides its
# sub-packages (``solvers.heuristics.rtn`` …). Put the project root on the path and, if the
# namespace already won, re-import the real package (regular submodules keep their identity).
_ROOT = Path(__file__).resolve().parents[3]
if str(_ROOT) not in sys.path:
    sys.path.append(str(_ROOT))
if getattr(sys.modules.get("solvers"), "__file__", "") is None:
    for _name in [k for k in sys.modules if k.split(".")[0] == "solvers"
                  and getattr(sys.modules[k], "__file__", None) is None]:
        del sys.modules[_name]
    importlib.import_module("solvers")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from solvers.problem import LayerProblem  # noqa: E402


def toy_layer(seed: int = 0, n: int = 12, channels: int = 3, rows: int = 80,
              corr: float = 0.5) -> LayerProblem:
    """A conv-like layer: neighbouring inputs correlated, like pixels of a patch."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, n))
    X[:, 1:] += corr * X[:, :-1]
    W0 = rng.standard_normal((channels, n)) * 0.1
    return LayerProblem(X.T @ X, W0, {"layer": "toy", "rows": rows,
                                      "calibration": f"toy-seed{seed}"})


FAST = dict(bits=(2, 4), opt_dim=4, channels=2, max_chunks=None, time_limit=30.0,
            quant_methods=("exact", "rtn", "gptq"),
            prune_methods=("exact", "magnitude", "obs", "sparsegpt"))


@pytest.fixture
def toy():
    return toy_layer()


@pytest.fixture
def fast():
    """Settings of a quick run (a copy: tests may change it)."""
    return dict(FAST)


@pytest.fixture
def make_toy():
    return toy_layer
