"""Models, loaded offline: built-in names, local Hugging Face folders, your own modules.

A *model reference* is one of

=======================  ==========================================================  ========
reference                what                                                        input
=======================  ==========================================================  ========
``mobilenet_v2``         torchvision's ImageNet MobileNetV2 (``--no-deps`` package)   image
``efficientnet_lite0``   EfficientNet-lite0, ImageNet (extra ``efficientnet``)       image
``minilm``               all-MiniLM-L6-v2 sentence encoder (extra ``minilm``)        text
``hf:PATH``              a local Hugging Face checkpoint folder                      text*
``module:factory``       ``factory()`` from an importable module                     yours
``path/file.py:factory`` ``factory()`` from a Python file                            yours
=======================  ==========================================================  ========

(*) a Hugging Face vision folder with image settings and no tokenizer takes images.
:func:`resolve_model` turns a reference into a :class:`LoadedModel`: the module in eval mode
plus what calibration it takes (modality, tokenizer, image preprocessing) and whether it is a
built-in. ``weights=`` (a state-dict file) is loaded strictly into any of them.

Example
-------
>>> from layers.models import MODEL_NAMES, resolve_model
>>> MODEL_NAMES
('mobilenet_v2', 'efficientnet_lite0', 'minilm')
>>> m = resolve_model("torch.nn:Identity")
>>> m.name, m.modality, m.builtin
('torch.nn:Identity', None, False)
>>> net = resolve_model("efficientnet_lite0").module    # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..calibration import IMAGENET, ImagePreprocessing
from ..errors import UnknownNameError


@dataclass(frozen=True)
class ModelSpec:
    """One built-in model: its loader, its calibration modality and a one-line summary."""

    name: str
    modality: str  # "image" or "text"
    summary: str
    loader: Callable
    weights: Callable
    image: ImagePreprocessing | None = None  # the input scaling an image model was trained on
    tokenizer: Callable | None = None  # loads the text model's tokenizer


def _mobilenet():
    from .mobilenet_v2 import load_mobilenet_v2

    return load_mobilenet_v2()


def _mobilenet_weights():
    from .mobilenet_v2 import load_state_dict

    return load_state_dict()


def _efficientnet():
    from .efficientnet_lite0 import load_efficientnet_lite0

    return load_efficientnet_lite0()


def _efficientnet_weights():
    from .efficientnet_lite0 import load_state_dict

    return load_state_dict()


def _minilm():
    from .minilm import load_minilm

    return load_minilm()


def _minilm_weights():
    from .minilm import load_state_dict

    return load_state_dict()


def _minilm_tokenizer():
    from .minilm import load_tokenizer

    return load_tokenizer()


def _lite_preprocessing() -> ImagePreprocessing:
    from .efficientnet_lite0 import IMAGE_SIZE, MEAN, STD

    return ImagePreprocessing(IMAGE_SIZE, MEAN, STD)


MODELS: dict[str, ModelSpec] = {
    "mobilenet_v2": ModelSpec("mobilenet_v2", "image",
                              "torchvision ImageNet MobileNetV2 (3.5M weights)",
                              _mobilenet, _mobilenet_weights, image=IMAGENET),
    "efficientnet_lite0": ModelSpec("efficientnet_lite0", "image",
                                    "EfficientNet-lite0, ImageNet (4.7M weights; ReLU6, no SE)",
                                    _efficientnet, _efficientnet_weights,
                                    image=_lite_preprocessing()),
    "minilm": ModelSpec("minilm", "text",
                        "all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, hidden 384)",
                        _minilm, _minilm_weights, tokenizer=_minilm_tokenizer),
}
#: The built-in names :func:`load_model` accepts.
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)
#: The other forms a reference can take (for help texts and error messages).
REFERENCE_FORMS = ("hf:PATH", "module:factory", "path/to/file.py:factory")


def model_spec(name: str) -> ModelSpec:
    """The registry entry; :class:`UnknownNameError` listing the valid names otherwise."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise _unknown(name) from None


def _unknown(name: Any) -> UnknownNameError:
    return UnknownNameError(f"unknown model {name!r}; valid models: {', '.join(MODEL_NAMES)}, "
                            f"or {', '.join(REFERENCE_FORMS)}")


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


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A resolved reference: the module and what calibration it takes.

    ``name`` is what results record (``hf:`` references with the absolute folder);
    ``modality`` is ``"image"``, ``"text"`` or ``None`` (a user module: calibration must be
    given); ``tokenizer`` the text model's (a user module's ``tokenizer`` attribute, if it
    has a callable one); ``image`` the preprocessing of image calibration (ImageNet's for
    user modules); ``builtin`` marks the registry's models (each layer runs once per forward pass).
    """

    module: nn.Module
    name: str
    modality: str | None = None
    tokenizer: Any = None
    image: ImagePreprocessing = IMAGENET
    builtin: bool = False
    weights: str | None = None


def resolve_model(reference: Any, *, weights: str | os.PathLike[str] | None = None
                  ) -> LoadedModel:
    """A :class:`LoadedModel` for a reference (see the module docstring) or an ``nn.Module``.

    ``weights`` is a state-dict file loaded into the module with ``strict=True``
    (:func:`layers.models.weights.load_weights_into`). Raises ``UnknownNameError`` (listing
    the valid names and forms), ``ModelLoadError`` or ``ModelNotAvailableError``.
    """
    loaded = _resolve(reference)
    if weights is not None:
        from .weights import load_weights_into, read_state_dict

        load_weights_into(loaded.module, read_state_dict(weights), source=str(weights))
        loaded = LoadedModel(loaded.module, loaded.name, loaded.modality, loaded.tokenizer,
                             loaded.image, loaded.builtin, str(weights))
    return loaded


def _resolve(reference: Any) -> LoadedModel:
    if isinstance(reference, LoadedModel):
        return reference
    if isinstance(reference, nn.Module):
        return LoadedModel(reference.eval(), type(reference).__name__)
    if isinstance(reference, os.PathLike):
        reference = os.fspath(reference)
    if not isinstance(reference, str):
        raise UnknownNameError(f"a model is a name, {', '.join(REFERENCE_FORMS)} or a "
                               f"torch.nn.Module, not a {type(reference).__name__}")
    if reference.startswith("hf:"):
        from .huggingface import load_hf_folder

        hf = load_hf_folder(reference[3:])
        return LoadedModel(hf.module, f"hf:{hf.path}", hf.modality, hf.tokenizer,
                           hf.image or IMAGENET)
    if reference in MODELS:
        spec = MODELS[reference]
        return LoadedModel(spec.loader(), spec.name, spec.modality,
                           spec.tokenizer() if spec.tokenizer else None,
                           spec.image or IMAGENET, builtin=True)
    if ":" in reference:
        from .factory import build_from_factory

        module = build_from_factory(reference)
        tokenizer = getattr(module, "tokenizer", None)
        return LoadedModel(module, reference, tokenizer=tokenizer if callable(tokenizer)
                           else None)
    raise _unknown(reference)


__all__ = ["MODELS", "MODEL_NAMES", "REFERENCE_FORMS", "LoadedModel", "ModelSpec", "load_model",
           "load_weights_only", "model_spec", "resolve_model"]
