"""The model and calibration options shared by ``layers``, ``export``, ``compare``, ``tensors``.

One place defines what ``--model`` accepts and how calibration data is chosen, so every command
says the same thing (and a new command adds them with one call).
"""

from __future__ import annotations

import argparse

from layers.models import MODELS

#: Tokens per calibration sentence unless --max-length says otherwise.
DEFAULT_MAX_LENGTH = 128
MODEL_HELP = (
    "a built-in model (" + ", ".join(MODELS) + "), hf:PATH (a local Hugging Face checkpoint "
    "folder: config.json + weights; nothing is downloaded), or your own nn.Module as "
    "module:factory or path/to/file.py:factory (factory() returns the module)"
)
MODEL_EPILOG = """\
models:
""" + "".join(f"  {m.name:<20}{m.summary}\n" for m in MODELS.values()) + """\
  hf:PATH             a local Hugging Face checkpoint folder (config.json + weights + tokenizer);
                      its Linear and GPT-2 Conv1D layers, named by module
  module:factory      your own nn.Module: factory() from an importable module, or
  file.py:factory     from a Python file; weights with --weights FILE
"""


def add_model_options(p: argparse.ArgumentParser, *, default: str | None = "mobilenet_v2",
                      calibration: bool = True) -> None:
    """``--model``, ``--weights`` and, with ``calibration``, ``--images`` / ``--text`` /
    ``--inputs`` (one of them) and ``--max-length``."""
    if default is None:
        p.add_argument("--model", required=True, metavar="MODEL", help=MODEL_HELP)
    else:
        p.add_argument("--model", default=default, metavar="MODEL",
                       help=f"{MODEL_HELP} (default: {default})")
    p.add_argument("--weights", metavar="FILE", default=None,
                   help="a state dict to load into the model first (strictly: every key, no "
                   "other): a torch.save'd state dict (also nested under 'state_dict' or "
                   "'model') or a .safetensors file")
    if not calibration:
        return
    c = p.add_mutually_exclusive_group()
    c.add_argument("--images", metavar="DIR", default=None,
                   help="folder of calibration images, e.g. ImageNet val (default for image "
                   "models: the photos bundled with scikit-image, random crops and flips)")
    c.add_argument("--text", metavar="FILE", default=None,
                   help="calibration sentences, one per line, through the model's tokenizer "
                   "(default for text models: built-in sentences)")
    c.add_argument("--inputs", metavar="FILE", default=None,
                   help="saved model inputs, cut along the first dimension into batches: a "
                   "torch.save'd tensor, tuple of tensors (positional arguments) or dict of "
                   "tensors (keyword arguments), a .npy array or a .npz archive (keyword "
                   "arguments); used whole (--samples does not apply)")
    p.add_argument("--max-length", type=int, default=DEFAULT_MAX_LENGTH, metavar="TOKENS",
                   help="tokens per calibration sentence; longer ones are truncated "
                   f"(default {DEFAULT_MAX_LENGTH})")
