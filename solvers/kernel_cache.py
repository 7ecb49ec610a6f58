"""Load compiled kernels from numba's on-disk cache without first loading numba's compiler tables.

What numba does. Before every load of a cached kernel signature (``cache=True``, a warm cache),
``numba.core.caching.Cache.load_overload`` calls ``target_context.refresh()``. On the CPU target
the first such call imports every lowering module numba has (``numba.cpython.*``,
``numba.np.arraymath`` / ``npyimpl`` / ``linalg``, the typed containers, jitclass, the
polynomial and random generators, third-party extensions) and installs their typing and
lowering registries, then refreshes the typing context: 0.2–0.45 s on this project's machine,
a third of a one-file ``pqbound solve``. Those registries are what *compiling* a function needs
(typing its calls, lowering them to LLVM IR). *Loading* one does not: the cache holds the
function's machine code, which numba links into its JIT engine and wraps; the only runtime it
calls is numba's NRT (memory management of arrays), which must be initialised first
(``rtsys.initialize(target_context)``, also a step of that refresh; it registers the ``NRT_*``
symbols and compiles the NRT's atomic helpers).

:func:`lean_cached_loads` replaces ``Cache.load_overload`` in the current process by the same
load with the refresh replaced by the NRT initialisation alone:
``rtsys.initialize(target_context)``, then, as numba does,
``with self._guard_against_spurious_io_errors(): return self._load_overload(sig, ctx)``.

Why it is safe.

* The NRT is initialised before any loaded code runs (numba's own call, idempotent).
* A cache miss returns ``None`` as before, and numba then compiles the signature; every
  compilation refreshes both contexts itself (``numba.core.compiler.CompilerBase.__init__``
  calls ``typingctx.refresh()`` and ``targetctx.refresh()``), so a compile after lean loads —
  a cold cache, a kernel changed since the cache was filled, a new signature, a user's own
  ``@njit`` function calling a loaded kernel — sees every registry, as in any numba process.
* Only the CPU target is affected: a load through any other target context (a subclass of
  ``CPUContext``, CUDA) takes numba's own path, refresh included.
* It is applied only when numba's internals are the ones described: ``Cache.load_overload``,
  ``Cache._load_overload``, ``Cache._guard_against_spurious_io_errors``,
  ``rtsys.initialize`` and ``numba.core.cpu.CPUContext`` exist, and the original
  ``load_overload`` takes ``(self, sig, target_context)`` and refers to exactly
  ``refresh``, ``_guard_against_spurious_io_errors`` and ``_load_overload`` (so a later numba
  that adds a step there is left alone). Otherwise nothing changes (said at DEBUG level).

Scope. A process-wide change to numba, so it is the program's choice, never a library's:
``pqbound solve`` (:func:`bounds.cli.main` run as the program) installs it before its warm-up;
no import of pqbound does, and neither does a call of ``main`` with an explicit ``argv`` nor the
workers of ``pqbound compare`` (their processes import the caller's main module and, under
Dask, belong to the user's cluster; the gain there is once per worker in a run of minutes).
What it leaves out of a process that only loads kernels: numba's third-party extensions
(entry points) are not loaded by a cached load — pqbound's kernels use none — and load with
the first compilation, as the registries do.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

#: the names the original ``Cache.load_overload`` refers to, and no others
_EXPECTED_NAMES = frozenset({"refresh", "_guard_against_spurious_io_errors", "_load_overload"})
_MARK = "_pqbound_lean_load"  # set on the installed replacement (idempotence)


def lean_cached_loads() -> bool:
    """Make numba load cached CPU kernels without the registry refresh, in this process.

    Returns True when the lean load is installed (now or by an earlier call), False when
    numba's internals are not as expected and nothing was changed. Never raises.
    """
    try:
        from numba.core import caching
        from numba.core.cpu import CPUContext
        from numba.core.runtime import rtsys
    except Exception as exc:  # noqa: BLE001 - an optimisation never fails a run
        log.debug("lean cached loads not installed: numba's modules differ (%s)", exc)
        return False
    cache = caching.Cache
    original = getattr(cache, "load_overload", None)
    if getattr(original, _MARK, False):
        return True
    problem = _unexpected(cache, original, rtsys)
    if problem:
        log.debug("lean cached loads not installed: %s; cached kernels load numba's way",
                  problem)
        return False
    initialize = rtsys.initialize

    def load_overload(self: Any, sig: Any, target_context: Any) -> Any:
        if type(target_context) is not CPUContext:
            return original(self, sig, target_context)
        initialize(target_context)
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)
        return None  # the guard swallowed an I/O error: compile instead, as numba does

    load_overload.__doc__ = original.__doc__
    setattr(load_overload, _MARK, True)
    cache.load_overload = load_overload
    log.debug("lean cached loads installed: cached kernels load without numba's refresh")
    return True


def _unexpected(cache: type, original: Any, rtsys: Any) -> str | None:
    """Why numba's cached load is not the one :func:`lean_cached_loads` replaces, or None."""
    for name in ("_load_overload", "_guard_against_spurious_io_errors"):
        if not callable(getattr(cache, name, None)):
            return f"Cache.{name} is missing"
    if not callable(getattr(rtsys, "initialize", None)):
        return "rtsys.initialize is missing"
    code = getattr(original, "__code__", None)
    if code is None:
        return "Cache.load_overload is not a plain function"
    if code.co_varnames[:code.co_argcount] != ("self", "sig", "target_context"):
        return f"Cache.load_overload takes {code.co_varnames[:code.co_argcount]}"
    if frozenset(code.co_names) != _EXPECTED_NAMES:
        return f"Cache.load_overload refers to {sorted(code.co_names)}"
    return None
