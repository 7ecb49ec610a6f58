"""Calibration data: built-in real photos or sentences, or the user's own images or text.

Images (for ``mobilenet_v2`` and other ImageNet models) are float32 tensors (B, 3, size, size),
RGB scaled to [0, 1] and normalised with the ImageNet mean and standard deviation.

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

Text (for ``minilm``): the built-in sentences in ``layers/data/sentences.txt`` or the non-empty
lines of ``text=FILE``, tokenized by the model's own tokenizer (padding per batch, truncation to
``max_length`` tokens); the padded positions are excluded from ``H`` by the capture.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path

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


def normalize(t: torch.Tensor) -> torch.Tensor:
    """ImageNet normalisation of (…, 3, H, W) tensors in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (t - mean) / std


class ImageCalibration:
    """Re-iterable source of normalised image batches (see the module docstring)."""

    def __init__(self, samples: int = 64, *, batch_size: int = 16, seed: int = 0,
                 images: str | Path | None = None, size: int = 224) -> None:
        if int(samples) != samples or samples < 1:
            raise CalibrationError(f"samples must be a positive integer, got {samples!r}")
        if int(batch_size) != batch_size or batch_size < 1:
            raise CalibrationError(f"batch_size must be a positive integer, got {batch_size!r}")
        if int(size) != size or size < 32:
            raise CalibrationError(f"image size must be an integer >= 32, got {size!r}")
        self.samples, self.batch_size, self.seed, self.size = (int(samples), int(batch_size),
                                                               int(seed), int(size))
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
            return normalize(random_resized_crop(a, self.size, rng))
        files = self._files
        a = _load_file(files[i % len(files)])
        if i < len(files):
            return normalize(center_crop(a, self.size))
        return normalize(random_resized_crop(a, self.size, rng))

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
        sentences = builtin_sentences() if text is None else read_sentences(text)
        self.source = "sentences:builtin" if text is None else f"text:{Path(text).resolve()}"
        if len(sentences) < samples:
            log.warning("only %d sentences available; using all of them (%d asked for)",
                        len(sentences), samples)
        self.sentences = sentences[: int(samples)]
        self.samples = len(self.sentences)
        self.tokenizer, self.batch_size, self.max_length = tokenizer, int(batch_size), max_length

    def __iter__(self):
        for start in range(0, self.samples, self.batch_size):
            chunk = self.sentences[start : start + self.batch_size]
            enc = self.tokenizer(chunk, padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
            yield dict(enc)

    def __len__(self) -> int:
        return -(-self.samples // self.batch_size)
