"""Skip markers for tests that need an optional model package (the ``all`` extra has them)."""

import pytest


def _loads(check) -> bool:
    try:
        check()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not usable here"
        return False


def _minilm():
    from layers.models.huggingface import transformers_offline
    from layers.models.minilm import model_dir

    model_dir()
    transformers_offline()


def _efficientnet():
    from layers.models.efficientnet_lite0 import checkpoint_path

    checkpoint_path()


def _transformers():
    from layers.models.huggingface import transformers_offline

    transformers_offline()


needs_minilm = pytest.mark.skipif(not _loads(_minilm),
                                  reason="optional MiniLM extra not installed")
needs_efficientnet = pytest.mark.skipif(not _loads(_efficientnet),
                                        reason="optional EfficientNet-lite0 extra not installed")
needs_transformers = pytest.mark.skipif(not _loads(_transformers),
                                        reason="transformers not installed")
