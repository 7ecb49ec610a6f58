"""Weights from a file into a module: read a state dict, load it strictly, say what differs.

A weights file is a ``torch.save``'d state dict (read with ``weights_only=True``: tensors and
plain containers only, never arbitrary pickled objects), possibly wrapped as
``{"state_dict": …}``, ``{"model_state_dict": …}`` or ``{"model": …}`` (as training scripts
save checkpoints), or a ``.safetensors`` file. Loading is strict: every key of the module must
be in the file and nothing else, with the same shapes; otherwise :class:`ModelLoadError` names
the counts and the first missing, unexpected and mis-shaped keys.

Example
-------
>>> import torch
>>> from layers.models.weights import load_weights_into
>>> net = torch.nn.Linear(3, 2)
>>> load_weights_into(net, {"weight": torch.zeros(2, 3)}, source="demo")
Traceback (most recent call last):
...
layers.errors.ModelLoadError: weights demo do not match the module: 1 missing key (first: bias)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelLoadError

#: Keys under which training scripts commonly nest the state dict.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
#: How many keys of each kind an error message names.
SHOWN = 3


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state dict stored in ``path`` (see the module docstring)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelLoadError(f"weights file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ModelLoadError(f"reading {path.name} needs the safetensors package "
                                 "(pip install safetensors)") from None
        try:
            return dict(load_file(str(path)))
        except Exception as exc:  # noqa: BLE001 - any decoder failure, by file
            raise ModelLoadError(f"cannot read weights {str(path)!r}: {exc}") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors come in many types
        raise ModelLoadError(
            f"cannot read weights {str(path)!r} as a state dict (torch.load with "
            f"weights_only=True): {str(exc).splitlines()[0] if str(exc) else exc!r}"
        ) from None
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise ModelLoadError(f"weights {str(path)!r} hold a {type(obj).__name__}, not a state "
                             "dict of name → tensor")
    return dict(obj)


def load_weights_into(module: nn.Module, state: Mapping[str, torch.Tensor], *,
                      source: str = "state dict") -> None:
    """``module.load_state_dict(state, strict=True)``, with a short, exact error message."""
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelLoadError(f"weights {source}: {len(bad)} entries are not tensors (first: "
                             f"{', '.join(map(str, bad[:SHOWN]))})")
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    parts = [_count(missing, "missing key"), _count(unexpected, "unexpected key"),
             _count(shapes, "shape mismatch", "file vs module")]
    parts = [p for p in parts if p]
    if parts:
        raise ModelLoadError(f"weights {source} do not match the module: " + "; ".join(parts))
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # dtype or other trouble the checks above did not see
        raise ModelLoadError(f"weights {source} do not load into the module: "
                             f"{str(exc).splitlines()[0]}") from None


def _count(keys: list[str], what: str, note: str = "") -> str:
    if not keys:
        return ""
    plural = "s" if len(keys) > 1 and not what.endswith("mismatch") else ""
    plural = "es" if len(keys) > 1 and what.endswith("mismatch") else plural
    head = f"{len(keys)} {what}{plural}"
    shown = ", ".join(keys[:SHOWN]) + (", …" if len(keys) > SHOWN else "")
    return f"{head} (first{' ' + note if note else ''}: {shown})"
