"""Which solve methods the suite runs, where they come from, and how to pin them to one thread.

A method is either in the project's registry (``solvers.registry``: ours, the general-solver
adapters, the heuristics) or one of the optional extras of :mod:`benchmarks.suite.extra_solvers`.
A method whose module is not installed, or has not landed in this tree, is *skipped with a note*:
the report lists it rather than failing.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from solvers.registry import get_method, methods

from .extra_solvers import EXTRA_METHODS

#: What ``--solvers`` selects by default, per kind: ours first, then the general solvers.
#: (fpylll's unboxed CVP joins the 8-bit rows of the scaling study, where it means something.)
DEFAULT_SOLVERS = {
    "quant": ("exact", "sdp", "scip", "highs", "cpsat", "gurobi", "cplex", "xpress",
              "gptq", "rtn"),
    "prune": ("exact", "scip", "highs", "gurobi", "cplex", "xpress", "abess", "obs"),
}
#: Added to the defaults outside ``--quick`` (slower or redundant at quick-mode budgets).
FULL_EXTRA = {
    "quant": ("scip-cvxpy", "obq"),
    "prune": ("magnitude-refit", "sparsegpt"),
}
#: Our certified solver: every ratio is taken against it and every "optimal" checked against it.
OURS = "exact"

#: Keyword options that single-thread a method, by the name its function accepts.
THREAD_KEYWORDS = ("threads", "num_threads", "workers", "num_workers")


@dataclass(frozen=True)
class MethodSpec:
    """One runnable method of one kind."""

    kind: str
    name: str
    source: str  # "registry" or "extra"
    certified: bool
    summary: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name

    def load(self) -> Callable[..., Any]:
        if self.source == "extra":
            return EXTRA_METHODS[(self.kind, self.name)].fn
        return get_method(self.kind, self.name).load()


def known(kind: str) -> list[str]:
    names = [m.name for m in methods(kind)]
    names += [name for (k, name) in EXTRA_METHODS if k == kind and name not in names]
    return names


def thread_options(fn: Callable[..., Any]) -> dict[str, Any]:
    """``{keyword: 1}`` for the first thread keyword ``fn`` accepts explicitly, else ``{}``."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    for kw in THREAD_KEYWORDS:
        if kw in params:
            return {kw: 1}
    return {}


def resolve(kind: str, names: Sequence[str], notes: list[str]) -> list[MethodSpec]:
    """The runnable methods among ``names``; the others get a line in ``notes``.

    ``OURS`` is always put first (the ratios need it) when it loads.
    """
    out: list[MethodSpec] = []
    for name in dict.fromkeys(names):
        try:
            spec = _resolve_one(kind, name)
        except _Skip as why:
            notes.append(f"{kind} `{name}` skipped: {why}")
            continue
        out.append(spec)
    out.sort(key=lambda s: s.name != OURS)
    return out


class _Skip(Exception):
    pass


def _resolve_one(kind: str, name: str) -> MethodSpec:
    if (kind, name) in EXTRA_METHODS:
        m = EXTRA_METHODS[(kind, name)]
        if not m.available():
            raise _Skip(f"`{m.module}` is not installed (optional `benchmarks` extra)")
        return MethodSpec(kind, name, "extra", m.certified, m.summary)
    try:
        m = get_method(kind, name)
    except Exception as exc:
        raise _Skip(str(exc)) from None
    if not m.available():
        raise _Skip(f"needs {', '.join(m.requires)}, not installed")
    try:
        fn = m.load()
    except Exception as exc:  # a module that has not landed yet: say so, go on
        raise _Skip(f"not available in this tree ({type(exc).__name__}: {exc})") from None
    return MethodSpec(kind, name, "registry", m.certified, m.summary, thread_options(fn))
