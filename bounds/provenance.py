"""Provenance: the versions of everything that can change a number, in one place.

Every stored result names the code that made it: result rows carry ``method_version``
(``"pqbound 0.1.0; pyscipopt 5.1.0"``), a comparison run and an export's ``export.json`` carry
:func:`versions`, and the task keys of the results store include :func:`pqbound_version` (so a
new version never reuses an old row).

Examples
--------
>>> v = versions()
>>> {"python", "platform", "pqbound", "numpy"} <= set(v)
True
>>> module_version("no_such_module_here")
'?'
"""

from __future__ import annotations

import platform
from functools import cache

#: Distributions whose versions are recorded with every run and export (when installed).
DISTRIBUTIONS = ("numpy", "scipy", "numba", "torch", "scikit-image", "transformers", "cvxpy",
                 "PySCIPOpt", "highspy", "ortools", "gurobipy", "dask", "distributed")
#: Import name → distribution name, where they differ.
_DISTRIBUTION_OF = {"pyscipopt": "PySCIPOpt", "skimage": "scikit-image"}


@cache
def pqbound_version() -> str:
    """pqbound's installed version, ``"unknown"`` when it is run from a source tree only."""
    return dist_version("pqbound") or "unknown"


@cache
def dist_version(dist: str) -> str | None:
    """The installed version of distribution ``dist``, ``None`` when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def module_version(module: str) -> str:
    """The version of the distribution that provides the importable ``module``, ``"?"`` if
    unknown."""
    return dist_version(_DISTRIBUTION_OF.get(module, module)) or "?"


def method_version(kind: str, method: str) -> str:
    """``pqbound <version>`` plus the backing library's version for general-solver adapters
    (``"pqbound 0.1.0; pyscipopt 5.1.0"``)."""
    from solvers.registry import get_method

    m = get_method(kind, method)
    return "; ".join([f"pqbound {pqbound_version()}",
                      *(f"{mod} {module_version(mod)}" for mod in m.requires)])


def versions() -> dict[str, str]:
    """Python, the platform, pqbound and every installed one of :data:`DISTRIBUTIONS`."""
    out = {"python": platform.python_version(), "platform": platform.platform(),
           "pqbound": pqbound_version()}
    for dist in DISTRIBUTIONS:
        v = dist_version(dist)
        if v is not None:
            out[dist] = v
    return out
