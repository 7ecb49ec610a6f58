"""Your own ``nn.Module``, named ``module:factory`` or ``path/to/file.py:factory``.

``module`` is an importable dotted module name (``mypkg.nets``), ``path/to/file.py`` a Python
file (imported under a private name, its folder not added to ``sys.path``). ``factory`` is a
name in it, dotted for nested attributes (``Net``, ``build_net``, ``zoo.small``), called with no
arguments; it must return an ``nn.Module`` (a class is a factory too). The module is put in eval
mode; weights come separately (``--weights FILE``, :mod:`layers.models.weights`).

Importing the file runs it: name only code you trust.

Example
-------
>>> from layers.models.factory import build_from_factory
>>> net = build_from_factory("torch.nn:Identity")
>>> type(net).__name__, net.training
('Identity', False)
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from torch import nn

from ..errors import ModelLoadError


def split_reference(reference: str) -> tuple[str, str]:
    """``(module or file, factory)``; :class:`ModelLoadError` for a malformed reference."""
    head, sep, tail = reference.rpartition(":")
    if not (sep and head and tail):
        raise ModelLoadError(f"{reference!r} is not of the form module:factory or "
                             "path/to/file.py:factory")
    return head, tail


def _import(where: str):
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where).expanduser()
        if not path.is_file():
            raise ModelLoadError(f"{where}: no such Python file")
        name = "pqbound_user_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ModelLoadError(f"{where}: cannot be imported as a Python file")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod  # dataclasses and pickling look the module up by name
        try:
            spec.loader.exec_module(mod)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise ModelLoadError(f"{where}: importing it failed: {type(exc).__name__}: "
                                 f"{exc}") from exc
        return mod
    try:
        return importlib.import_module(where)
    except ImportError as exc:
        raise ModelLoadError(f"cannot import module {where!r}: {exc}") from exc
    except Exception as exc:
        raise ModelLoadError(f"importing module {where!r} failed: {type(exc).__name__}: "
                             f"{exc}") from exc


def build_from_factory(reference: str) -> nn.Module:
    """Import, call the factory, check it returned an ``nn.Module``; eval mode."""
    where, name = split_reference(reference)
    obj = _import(where)
    for part in name.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n in dir(obj) if not n.startswith("_"))[:20]
            raise ModelLoadError(f"{reference}: {where} has no attribute {part!r} (it has: "
                                 f"{', '.join(public) or 'nothing public'})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelLoadError(f"{reference}: {name} is a {type(obj).__name__}, not a callable "
                             "factory")
    try:
        module = obj()
    except Exception as exc:
        raise ModelLoadError(f"{reference}: the factory cannot build the module: "
                             f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(module, nn.Module):
        raise ModelLoadError(f"{reference}: the factory returned a {type(module).__name__}, "
                             "not a torch.nn.Module")
    return module.eval()
