"""Any local Hugging Face ``transformers`` checkpoint folder, loaded offline.

``hf:PATH`` names a folder as ``save_pretrained`` writes it: ``config.json`` plus weights
(``model.safetensors``, ``pytorch_model.bin`` or a sharded ``*.index.json``), and usually the
tokenizer files. The model is built from the class named in the config's ``architectures``
(e.g. ``BertModel``, ``GPT2LMHeadModel``: layer names are then the checkpoint's own module
names, ``h.0.attn.c_attn`` or ``transformer.h.0.attn.c_attn``), or by ``AutoModel`` when the
config names none. Loading uses local files only (``local_files_only=True`` and
``HF_HUB_OFFLINE=1``): nothing is ever downloaded, and no code from the folder is run
(``trust_remote_code`` stays off). Weights that do not match the architecture (missing or
unexpected keys, wrong shapes) are an error, not a silently random layer.

Every ``nn.Linear`` and GPT-2 style ``Conv1D`` (weight ``(in, out)``, exported transposed as
``W0`` of shape ``(out, in)``) is exportable. Calibration is text through the folder's own
tokenizer (a causal LM without a padding token pads with its end-of-text token; padded
positions never enter ``H``), or images for vision models whose folder has a
``preprocessor_config.json`` with ``image_mean``/``image_std`` and no tokenizer.

Example
-------
>>> from layers.models.huggingface import load_hf_folder         # doctest: +SKIP
>>> hf = load_hf_folder("~/models/gpt2-tiny")                    # doctest: +SKIP
>>> hf.modality, type(hf.module).__name__                         # doctest: +SKIP
('text', 'GPT2LMHeadModel')
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..calibration import ImagePreprocessing
from ..errors import ModelLoadError, ModelNotAvailableError

INSTALL_COMMAND = "pip install transformers safetensors"
#: Weight files ``from_pretrained`` reads, in its order of preference.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json",
                    "spiece.model", "tokenizer.model")


@dataclass(frozen=True, eq=False)
class HFModel:
    """A loaded folder: the module (eval, float32, CPU), its tokenizer and input kind."""

    module: nn.Module
    path: Path
    architecture: str
    modality: str | None  # "text", "image" or None (neither a tokenizer nor image settings)
    tokenizer: Any = None
    image: ImagePreprocessing | None = None


def transformers_offline():
    """``transformers``, imported with downloads switched off; quiet loading."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import transformers
    except ImportError:
        raise ModelNotAvailableError(
            f"Hugging Face models need the transformers library; install it with: "
            f"{INSTALL_COMMAND} (or the optional extra pqbound[minilm])"
        ) from None
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    return transformers


def checkpoint_folder(path: str | os.PathLike[str]) -> Path:
    """``path`` resolved, checked to hold ``config.json`` and one of :data:`WEIGHT_FILES`."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ModelLoadError(
            f"hf:{path}: no such folder (expected a Hugging Face checkpoint folder with "
            f"config.json and {' or '.join(WEIGHT_FILES[::2])})"
        )
    folder = folder.resolve()
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"hf:{folder}: the folder has no config.json, so it is not a "
                             f"Hugging Face checkpoint")
    if not any((folder / f).is_file() for f in WEIGHT_FILES):
        raise ModelLoadError(f"hf:{folder}: config.json but no weights (none of "
                             f"{', '.join(WEIGHT_FILES)})")
    return folder


def _architecture(tf, folder: Path):
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"hf:{folder}: cannot read config.json: {exc}") from None
    names = config.get("architectures") or []
    if not names:
        return "AutoModel", tf.AutoModel
    cls = getattr(tf, names[0], None)
    if cls is None or not hasattr(cls, "from_pretrained"):
        raise ModelLoadError(
            f"hf:{folder}: architecture {names[0]!r} is not a class of transformers "
            f"{tf.__version__}, so it cannot be built (code from the folder is never run)"
        )
    return names[0], cls


def load_hf_folder(path: str | os.PathLike[str]) -> HFModel:
    """Build and load the checkpoint in ``path`` offline; see the module docstring.

    Raises :class:`ModelLoadError` for a folder without a checkpoint, an architecture that
    cannot be built, or weights that do not match it (the first missing and unexpected keys
    are named), and :class:`ModelNotAvailableError` when ``transformers`` is not installed.
    """
    folder = checkpoint_folder(path)
    tf = transformers_offline()
    arch, cls = _architecture(tf, folder)
    try:
        # mis-shaped weights are reported below with the others, not raised half-explained
        model, info = cls.from_pretrained(str(folder), local_files_only=True,
                                          output_loading_info=True,
                                          ignore_mismatched_sizes=True)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise ModelLoadError(f"hf:{folder}: {arch} cannot be built from this checkpoint: "
                             f"{_first_line(exc)}") from None
    problems = []
    for key, what in (("missing_keys", "missing"), ("unexpected_keys", "unexpected"),
                      ("mismatched_keys", "mis-shaped")):
        keys = sorted(_describe_key(k) for k in info.get(key) or ())
        if keys:
            problems.append(f"{len(keys)} {what} key{'s' if len(keys) > 1 else ''} (first: "
                            f"{', '.join(keys[:3])})")
    if problems or info.get("error_msgs"):
        raise ModelLoadError(
            f"hf:{folder}: the weights do not match {arch}: " + "; ".join(problems)
            + (f" {info['error_msgs'][0]}" if info.get("error_msgs") else "")
        )
    module = model.float().eval()
    tokenizer = _tokenizer(tf, folder)
    image = None if tokenizer is not None else _image_settings(folder)
    modality = "text" if tokenizer is not None else "image" if image is not None else None
    return HFModel(module, folder, arch, modality, tokenizer, image)


def _tokenizer(tf, folder: Path):
    if not any((folder / f).is_file() for f in _TOKENIZER_FILES):
        return None
    try:
        tok = tf.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"hf:{folder}: the tokenizer files cannot be loaded: "
                             f"{_first_line(exc)}") from None
    if tok.pad_token is None:  # causal LMs (GPT-2, OPT, …): pad with end-of-text, masked out
        fallback = tok.eos_token or tok.unk_token
        if fallback is not None:
            tok.pad_token = fallback
    return tok


def _image_settings(folder: Path) -> ImagePreprocessing | None:
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return None
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    mean, std = cfg.get("image_mean"), cfg.get("image_std")
    if not (isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) == 3):
        return None
    size = cfg.get("crop_size") or cfg.get("size") or 224
    if isinstance(size, dict):
        size = size.get("height") or size.get("shortest_edge") or 224
    return ImagePreprocessing(int(size), tuple(float(m) for m in mean),
                              tuple(float(s) for s in std))


def _describe_key(k) -> str:
    if isinstance(k, str):
        return k
    if len(k) == 3:  # (name, shape in the checkpoint, shape the architecture wants)
        return f"{k[0]} {tuple(k[1])} in the file vs {tuple(k[2])}"
    return str(k[0])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
