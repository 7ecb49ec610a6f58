"""Calibration data: built-in real photos or sentences, or the user's own images or text.

Images are float32 tensors (B, 3, size, size), RGB scaled to [0, 1] and normalised with the
model's own :class:`ImagePreprocessing` (:data:`IMAGENET` mean and standard deviation for
``mobilenet_v2`` and user modules; ``efficientnet_lite0`` was trained on ``(255·x − 127)/128``).

* **built-in** (default): the real colour photos that ship inside the scikit-image wheel
  (:data:`PHOTOS`; no download). Sample ``i`` is a random resized crop of photo ``i mod P``
  (area 35–100 %, aspect 3/4–4/3) resized to ``size`` with antialiasing, flipped horizontally
  with probability ½, drawn from ``numpy.random.default_rng([seed, i])``: a fixed seed gives the
  same crops, and 64 samples are the first 64 of 256.
* **a folder** (``images=DIR``, e.g. the ImageNet validation set): its .jpg/.jpeg/.png/.bmp/
  .webp/.tif files in sorted name order, each with the standard evaluation transform (shorter
  side resized to ``size·256/224``, centre crop ``size``), the paper's protocol with the first 64
  validation images. When more samples than files are asked for, later passes use seeded random
  crops and flips.

Text (for ``minilm`` and ``hf:`` folders): the built-in sentences in ``layers/data/sentences.txt``
or the non-empty lines of ``text=FILE``, tokenized by the model's own tokenizer (padding per
batch, truncation to ``max_length`` tokens); the padded positions are excluded from ``H`` by the
capture.

Saved inputs (any model, ``inputs=FILE``): a ``torch.save``'d tensor, tuple/list of tensors
(positional arguments) or dict of tensors (keyword arguments), a ``.npy`` array or a ``.npz``
archive (its arrays as keyword arguments), split along the first dimension into batches
(:func:`read_inputs`, :class:`InputBatches`). :func:`make_calibration` picks the source for a
model.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .errors import CalibrationError

log = logging.getLogger(__name__)

#: scikit-image's bundled colour photos (``stereo_motorcycle`` gives two views).
PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "stereo_motorcycle",
)
#: The built-in calibration sentences (package data).
SENTENCES_FILE = Path(__file__).resolve().parent / "data" / "sentences.txt"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ImagePreprocessing:
    """What an image model expects: ``size``² RGB inputs, ``(x − mean) / std`` for x in [0, 1]."""

    size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


#: torchvision's ImageNet convention (MobileNetV2, and the default for user modules).
IMAGENET = ImagePreprocessing()
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: Crop area fraction and aspect-ratio ranges of the random resized crops.
CROP_AREA = (0.35, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)


def builtin_photos() -> list[tuple[str, np.ndarray]]:
    """``(name, uint8 H×W×3 array)`` for every photo in :data:`PHOTOS` that loads offline."""
    import skimage.data

    out = []
    for name in PHOTOS:
        try:
            img = getattr(skimage.data, name)()
        except Exception as exc:  # noqa: BLE001 - optional data may be missing in a build
            log.warning("skimage photo %s unavailable: %s", name, exc)
            continue
        if name == "stereo_motorcycle":
            out += [(f"{name}_left", img[0]), (f"{name}_right", img[1])]
        else:
            out.append((name, img))
    if not out:
        raise CalibrationError("none of scikit-image's bundled photos could be loaded")
    return [(n, _rgb(a, n)) for n, a in out]


def _rgb(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise CalibrationError(f"image {name} has shape {a.shape}, expected H×W×3 (RGB)")
    a = a[:, :, :3]
    if a.dtype != np.uint8:
        a = np.clip(np.asarray(a, dtype=np.float64) * (255 if a.max() <= 1 else 1), 0, 255)
        a = a.astype(np.uint8)
    return a


def image_files(folder: str | Path) -> list[Path]:
    """The image files in ``folder`` (recursively), sorted by relative path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CalibrationError(f"image folder {str(folder)!r} does not exist or is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                   and p.is_file())
    if not files:
        raise CalibrationError(
            f"image folder {str(folder)!r} holds no images ({', '.join(IMAGE_SUFFIXES)})"
        )
    return files


def _load_file(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as exc:  # noqa: BLE001 - report any decoder failure by file
        raise CalibrationError(f"cannot read image {str(path)!r}: {exc}") from None


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    a = np.array(a, dtype=np.uint8, order="C")  # a writable copy
    return torch.from_numpy(a).permute(2, 0, 1).float().div_(255.0)


def _resize(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return F.interpolate(t[None], size=(h, w), mode="bilinear", align_corners=False,
                         antialias=True)[0]


def random_resized_crop(a: np.ndarray, size: int, rng: np.random.Generator) -> torch.Tensor:
    """A random crop (area fraction and aspect in the module's ranges) resized to size², maybe
    flipped; float32 (3, size, size) in [0, 1]."""
    H, W = a.shape[:2]
    for _ in range(20):
        area = H * W * rng.uniform(*CROP_AREA)
        ratio = math.exp(rng.uniform(math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])))
        w = int(round(math.sqrt(area * ratio)))
        h = int(round(math.sqrt(area / ratio)))
        if 0 < w <= W and 0 < h <= H:
            break
    else:
        h = w = min(H, W)
    top = int(rng.integers(0, H - h + 1))
    left = int(rng.integers(0, W - w + 1))
    t = _resize(_to_tensor(a[top : top + h, left : left + w]), size, size)
    if rng.random() < 0.5:
        t = t.flip(-1)
    return t.clamp_(0.0, 1.0)


def center_crop(a: np.ndarray, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size·256/224``, then crop the centre ``size``²."""
    H, W = a.shape[:2]
    short = int(round(size * 256 / 224))
    h, w = (short, max(short, int(round(W * short / H)))) if H <= W else (
        max(short, int(round(H * short / W))), short)
    t = _resize(_to_tensor(a), h, w)
    top, left = (h - size) // 2, (w - size) // 2
    return t[:, top : top + size, left : left + size].clamp_(0.0, 1.0)


def normalize(t: torch.Tensor, preprocessing: ImagePreprocessing = IMAGENET) -> torch.Tensor:
    """``(t − mean) / std`` per channel of (…, 3, H, W) tensors in [0, 1] (ImageNet's default)."""
    mean = torch.tensor(preprocessing.mean, dtype=t.dtype).view(3, 1, 1)
    std = torch.tensor(preprocessing.std, dtype=t.dtype).view(3, 1, 1)
    return (t - mean) / std


class ImageCalibration:
    """Re-iterable source of normalised image batches (see the module docstring)."""

    def __init__(self, samples: int = 64, *, batch_size: int = 16, seed: int = 0,
                 images: str | Path | None = None, size: int | None = None,
                 preprocessing: ImagePreprocessing = IMAGENET) -> None:
        if size is None:
            size = preprocessing.size
        if int(samples) != samples or samples < 1:
            raise CalibrationError(f"samples must be a positive integer, got {samples!r}")
        if int(batch_size) != batch_size or batch_size < 1:
            raise CalibrationError(f"batch_size must be a positive integer, got {batch_size!r}")
        if int(size) != size or size < 32:
            raise CalibrationError(f"image size must be an integer >= 32, got {size!r}")
        self.samples, self.batch_size, self.seed, self.size = (int(samples), int(batch_size),
                                                               int(seed), int(size))
        self.preprocessing = preprocessing
        if images is None:
            self._photos = builtin_photos()
            self._files = None
            self.source = "skimage-photos:" + ",".join(n for n, _ in self._photos)
        else:
            self._files = image_files(images)
            self._photos = None
            self.source = f"images:{Path(images).resolve()}"

    def sample(self, i: int) -> torch.Tensor:
        """Normalised sample ``i`` as float32 (3, size, size)."""
        rng = np.random.default_rng([self.seed, i])
        if self._photos is not None:
            _, a = self._photos[i % len(self._photos)]
            return normalize(random_resized_crop(a, self.size, rng), self.preprocessing)
        files = self._files
        a = _load_file(files[i % len(files)])
        if i < len(files):
            return normalize(center_crop(a, self.size), self.preprocessing)
        return normalize(random_resized_crop(a, self.size, rng), self.preprocessing)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for start in range(0, self.samples, self.batch_size):
            stop = min(start + self.batch_size, self.samples)
            yield torch.stack([self.sample(i) for i in range(start, stop)])

    def __len__(self) -> int:
        return -(-self.samples // self.batch_size)


def builtin_sentences() -> list[str]:
    """The built-in calibration sentences (``layers/data/sentences.txt``)."""
    return _lines(SENTENCES_FILE.read_text(encoding="utf-8"))


def _lines(text: str) -> list[str]:
    return [s.strip() for s in text.splitlines() if s.strip() and not s.lstrip().startswith("#")]


def read_sentences(path: str | Path) -> list[str]:
    """Non-empty lines of a UTF-8 text file (lines starting with ``#`` are skipped)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"cannot read text file {str(path)!r}: {exc}") from None
    lines = _lines(text)
    if not lines:
        raise CalibrationError(f"text file {str(path)!r} has no non-empty lines")
    return lines


class TextCalibration:
    """Re-iterable source of tokenized sentence batches (dicts of tensors)."""

    def __init__(self, tokenizer, samples: int = 64, *, batch_size: int = 16,
                 text: str | Path | None = None, max_length: int = 128) -> None:
        if int(samples) != samples or samples < 1:
            raise CalibrationError(f"samples must be a positive integer, got {samples!r}")
        if int(batch_size) != batch_size or batch_size < 1:
            raise CalibrationError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(max_length, bool) or int(max_length) != max_length or max_length < 1:
            raise CalibrationError(f"max_length (tokens per sequence) must be a positive "
                                   f"integer, got {max_length!r}")
        if getattr(tokenizer, "pad_token", "") is None and batch_size > 1:
            raise CalibrationError("the tokenizer has no padding token (nor an end-of-text or "
                                   "unknown token to pad with): use batch size 1")
        sentences = builtin_sentences() if text is None else read_sentences(text)
        self.source = "sentences:builtin" if text is None else f"text:{Path(text).resolve()}"
        if len(sentences) < samples:
            log.warning("only %d sentences available; using all of them (%d asked for)",
                        len(sentences), samples)
        self.sentences = sentences[: int(samples)]
        self.samples = len(self.sentences)
        self.tokenizer, self.batch_size = tokenizer, int(batch_size)
        self.max_length = int(max_length)

    def __iter__(self):
        for start in range(0, self.samples, self.batch_size):
            chunk = self.sentences[start : start + self.batch_size]
            enc = self.tokenizer(chunk, padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
            yield dict(enc)

    def __len__(self) -> int:
        return -(-self.samples // self.batch_size)


# ------------------------------------------------------------------------------ saved inputs

#: Suffixes :func:`read_inputs` reads with numpy; anything else goes through ``torch.load``.
NUMPY_SUFFIXES = (".npy", ".npz")


def read_inputs(path: str | os.PathLike[str]) -> Any:
    """Calibration inputs saved in a file: a tensor, a tuple of tensors or a dict of tensors.

    * ``.npy``: one array (→ a tensor: the model's single positional input);
    * ``.npz``: named arrays (→ keyword arguments, e.g. ``input_ids`` and ``attention_mask``);
    * anything else: ``torch.save`` of a tensor, a tuple/list of tensors (positional arguments)
      or a dict of name → tensor (keyword arguments), read with ``weights_only=True``.

    Every tensor needs the same first (sample) dimension.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CalibrationError(f"inputs file {str(path)!r} does not exist")
    try:
        if path.suffix == ".npy":
            obj: Any = torch.from_numpy(np.load(path, allow_pickle=False))
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                obj = {k: torch.from_numpy(z[k]) for k in z.files}
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - numpy and torch raise many types
        raise CalibrationError(
            f"cannot read inputs {str(path)!r} (a torch.save'd tensor, tuple or dict of "
            f"tensors, a .npy array or a .npz archive): {exc}") from None
    return _check_inputs(obj, repr(str(path)))


def _check_inputs(obj: Any, where: str) -> Any:
    where = f"calibration inputs {where}".rstrip()
    if isinstance(obj, torch.Tensor):
        tensors = [obj]
    elif isinstance(obj, (tuple, list)) and obj:
        obj, tensors = tuple(obj), list(obj)
    elif isinstance(obj, Mapping) and obj:
        obj = dict(obj)
        tensors = list(obj.values())
    else:
        raise CalibrationError(f"{where}: expected a tensor, a tuple of tensors or a "
                               f"dict of tensors, got {type(obj).__name__}")
    if not all(isinstance(t, torch.Tensor) and t.ndim > 0 for t in tensors):
        raise CalibrationError(f"{where}: every entry must be a tensor with a leading "
                               "sample dimension")
    sizes = {int(t.shape[0]) for t in tensors}
    if len(sizes) != 1 or 0 in sizes:
        raise CalibrationError(f"{where}: the tensors need one common, non-zero first "
                               f"(sample) dimension, got {sorted(sizes)}")
    if isinstance(obj, Mapping) and not all(isinstance(k, str) for k in obj):
        raise CalibrationError(f"{where}: dict keys must be argument names (strings)")
    return obj


class InputBatches:
    """Re-iterable batches of ``batch_size`` samples cut from saved inputs (see
    :func:`read_inputs`): tensors, tuples of tensors or dicts of tensors, as given."""

    def __init__(self, inputs: Any, batch_size: int = 16, *, source: str = "inputs") -> None:
        if int(batch_size) != batch_size or batch_size < 1:
            raise CalibrationError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.inputs = _check_inputs(inputs, "" if source == "inputs" else source)
        self.batch_size, self.source = int(batch_size), source
        first = (self.inputs if isinstance(self.inputs, torch.Tensor) else
                 next(iter(self.inputs.values())) if isinstance(self.inputs, dict) else
                 self.inputs[0])
        self.samples = int(first.shape[0])

    def __iter__(self) -> Iterator[Any]:
        x = self.inputs
        for i in range(0, self.samples, self.batch_size):
            sl = slice(i, i + self.batch_size)
            if isinstance(x, torch.Tensor):
                yield x[sl]
            elif isinstance(x, dict):
                yield {k: v[sl] for k, v in x.items()}
            else:
                yield tuple(v[sl] for v in x)

    def __len__(self) -> int:
        return -(-self.samples // self.batch_size)


# ------------------------------------------------------------------------------ the choice


def make_calibration(model: Any, *, samples: int = 64, batch_size: int = 16, seed: int = 0,
                     images: str | os.PathLike[str] | None = None,
                     text: str | os.PathLike[str] | None = None, inputs: Any = None,
                     max_length: int = 128) -> Iterable:
    """The calibration batches for ``model`` (a :class:`layers.models.LoadedModel`).

    At most one of ``images`` (a folder), ``text`` (a file of sentences) and ``inputs`` (a file
    path, a tensor or dict of tensors cut into batches, or any iterable of batches, e.g. a
    list) may be given; without
    any, an image model gets the built-in photos and a text model the built-in sentences, each
    preprocessed as the model expects, while a user module (no modality) needs one of them.
    The result has a ``source`` attribute (a readable label) and, except for a user iterable,
    ``samples``.
    """
    given = [n for n, v in (("images", images), ("text", text), ("inputs", inputs))
             if v is not None]
    if len(given) > 1:
        raise CalibrationError(f"give one calibration source, not {' and '.join(given)}")
    name, modality = model.name, model.modality
    if inputs is not None:
        if isinstance(inputs, (str, os.PathLike)):
            return InputBatches(read_inputs(inputs), batch_size,
                                source=f"inputs:{Path(inputs).resolve()}")
        if isinstance(inputs, (torch.Tensor, Mapping)):
            batches = InputBatches(inputs, batch_size)
            if modality == "image" and isinstance(inputs, torch.Tensor) and (
                    inputs.ndim != 4 or inputs.shape[1] != 3):
                raise CalibrationError(f"{name} takes images of shape (N, 3, H, W), got "
                                       f"{tuple(inputs.shape)}")
            return batches
        if isinstance(inputs, Iterable):
            return inputs
        raise CalibrationError(f"inputs must be a file, a tensor or an iterable of batches, "
                               f"got {type(inputs).__name__}")
    if modality == "image" and text is not None:
        raise CalibrationError(f"model {name!r} takes images; use images=DIR (--images), not "
                               "text")
    if modality == "text" and images is not None:
        raise CalibrationError(f"model {name!r} takes text; use text=FILE (--text), not images")
    if text is not None or (modality == "text" and images is None):
        if model.tokenizer is None:
            raise CalibrationError(
                f"model {name!r} has no tokenizer to turn text into inputs; give saved "
                f"inputs instead (--inputs FILE)")
        return TextCalibration(model.tokenizer, samples, batch_size=batch_size, text=text,
                               max_length=max_length)
    if images is not None or modality == "image":
        return ImageCalibration(samples, batch_size=batch_size, seed=seed, images=images,
                                preprocessing=model.image)
    raise CalibrationError(
        f"model {name!r} is a user module: give its calibration data (images=DIR / --images, "
        f"text=FILE / --text with a tokenizer, or inputs= / --inputs FILE)")
