"""Calibration and held-out data for a whole-network run, sharing no photo, sentence, file or
input row.

How each source is split (``samples`` calibration samples, ``heldout`` held-out samples):

* **built-in photos** (image models, the default): the photos bundled with scikit-image are
  split by photo. :data:`HELDOUT_PHOTOS` (chelsea the cat, the rocket, and both views of the
  stereo motorcycle, which show one scene) are used only for evaluation; the other five
  (astronaut, coffee, hubble_deep_field, immunohistochemistry, retina) only for calibration.
  Calibration sample ``i`` is a random resized crop of calibration photo ``i mod 5`` drawn from
  ``default_rng([seed, i])``; held-out sample ``j`` one of held-out photo ``j mod 4`` from
  ``default_rng([seed, HELDOUT_STREAM + j])`` (crop area 35–100 %, aspect 3/4–4/3, random
  flip: :func:`layers.calibration.random_resized_crop`). The held-out crops come from four
  scenes only, so they are correlated: a bootstrap over crops measures the spread over crops
  of these scenes, not over natural images.
* **an image folder** (``images=DIR``): its image files in sorted order; the first ``samples``
  files calibrate, the next ``heldout`` files are held out (both with the standard centre crop).
  ``labels`` of the held-out files then give a real top-1 accuracy.
* **sentences** (text models: built-in sentences or ``text=FILE``): sentence ``i`` (in file
  order) is held out when ``i mod 4 = 3``; the first ``samples`` of the others calibrate.
* **saved inputs** (``inputs=FILE``): the last quarter of the rows (at least one) is held out;
  the first ``samples`` of the others calibrate.

Every batch list is materialised once (a sequential run passes over the calibration data once
per layer).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..calibration import (
    IMAGENET,
    ImagePreprocessing,
    _load_file,
    builtin_photos,
    builtin_sentences,
    center_crop,
    image_files,
    normalize,
    random_resized_crop,
    read_inputs,
    read_sentences,
)
from ..errors import CalibrationError

#: Built-in photos used only for evaluation (the other photos only for calibration).
HELDOUT_PHOTOS = ("chelsea", "rocket", "stereo_motorcycle_left", "stereo_motorcycle_right")
#: Offset of the held-out crops' random streams (calibration crops use ``[seed, i]``).
HELDOUT_STREAM = 1_000_000
#: Sentence ``i`` is held out when ``i % TEXT_PERIOD == TEXT_PERIOD - 1``.
TEXT_PERIOD = 4


@dataclass(eq=False)
class Split:
    """Calibration and held-out batches, and how they were made."""

    kind: str  # "image", "text" or "inputs"
    calibration: list
    heldout: list
    calibration_samples: int
    heldout_samples: int
    how: str  # one sentence: how the split was made
    calibration_source: str
    heldout_files: list[Path] = field(default_factory=list)  # image folders: for labels

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "calibration_samples": self.calibration_samples,
                "heldout_samples": self.heldout_samples, "how": self.how,
                "calibration_source": self.calibration_source}


def make_split(model: Any, *, samples: int = 64, heldout: int = 64, seed: int = 0,
               batch_size: int = 16, images: str | os.PathLike[str] | None = None,
               text: str | os.PathLike[str] | None = None,
               inputs: str | os.PathLike[str] | None = None, max_length: int = 128) -> Split:
    """The :class:`Split` for ``model`` (a :class:`layers.models.LoadedModel`); see the module
    docstring. :class:`~layers.errors.CalibrationError` on bad or too little data."""
    for name, v in (("samples", samples), ("heldout", heldout), ("batch_size", batch_size)):
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise CalibrationError(f"{name} must be a positive integer, got {v!r}")
    given = [n for n, v in (("images", images), ("text", text), ("inputs", inputs))
             if v is not None]
    if len(given) > 1:
        raise CalibrationError(f"give one calibration source, not {' and '.join(given)}")
    if inputs is not None:
        return _inputs_split(inputs, samples, heldout, batch_size)
    modality = model.modality
    if text is not None or (modality == "text" and images is None):
        if model.tokenizer is None:
            raise CalibrationError(f"model {model.name!r} has no tokenizer: give saved inputs "
                                   "(--inputs FILE)")
        return _text_split(model.tokenizer, text, samples, heldout, batch_size, max_length)
    if images is not None:
        return _folder_split(images, samples, heldout, batch_size, model.image)
    if modality == "image":
        return _photo_split(samples, heldout, seed, batch_size, model.image)
    raise CalibrationError(f"model {model.name!r} is a user module: give its data (--images "
                           "DIR, --text FILE or --inputs FILE)")


def _batched(samples: list[torch.Tensor], batch_size: int) -> list[torch.Tensor]:
    return [torch.stack(samples[i:i + batch_size]) for i in range(0, len(samples), batch_size)]


def _photo_split(samples: int, heldout: int, seed: int, batch_size: int,
                 pre: ImagePreprocessing = IMAGENET) -> Split:
    photos = builtin_photos()
    held = [(n, a) for n, a in photos if n in HELDOUT_PHOTOS]
    cal = [(n, a) for n, a in photos if n not in HELDOUT_PHOTOS]
    if not held or not cal:
        raise CalibrationError("the built-in photos cannot be split into calibration and "
                               "held-out sets (photos missing from scikit-image)")

    def crop(a: np.ndarray, stream: int) -> torch.Tensor:
        rng = np.random.default_rng([int(seed), stream])
        return normalize(random_resized_crop(a, pre.size, rng), pre)

    c = [crop(cal[i % len(cal)][1], i) for i in range(samples)]
    h = [crop(held[j % len(held)][1], HELDOUT_STREAM + j) for j in range(heldout)]
    how = (f"built-in photos split by photo: calibration crops of {', '.join(n for n, _ in cal)}; "
           f"held-out crops of {', '.join(n for n, _ in held)} (seed {seed})")
    return Split("image", _batched(c, batch_size), _batched(h, batch_size), samples, heldout,
                 how, "skimage-photos:" + ",".join(n for n, _ in cal))


def _folder_split(folder, samples: int, heldout: int, batch_size: int,
                  pre: ImagePreprocessing) -> Split:
    files = image_files(folder)
    if len(files) <= samples:
        raise CalibrationError(f"image folder {str(folder)!r} has {len(files)} images: need more "
                               f"than --samples {samples} to hold some out for evaluation")
    cal_files, held_files = files[:samples], files[samples:samples + heldout]

    def load(p: Path) -> torch.Tensor:
        return normalize(center_crop(_load_file(p), pre.size), pre)

    how = (f"image folder {Path(folder).resolve()}: sorted files, the first {samples} "
           f"calibrate, the next {len(held_files)} are held out (centre crops)")
    return Split("image", _batched([load(p) for p in cal_files], batch_size),
                 _batched([load(p) for p in held_files], batch_size), samples,
                 len(held_files), how, f"images:{Path(folder).resolve()}", held_files)


def _text_split(tokenizer, text, samples: int, heldout: int, batch_size: int,
                max_length: int) -> Split:
    sentences = builtin_sentences() if text is None else read_sentences(text)
    held = [s for i, s in enumerate(sentences) if i % TEXT_PERIOD == TEXT_PERIOD - 1][:heldout]
    cal = [s for i, s in enumerate(sentences) if i % TEXT_PERIOD != TEXT_PERIOD - 1][:samples]
    if not held or not cal:
        raise CalibrationError(f"need at least {TEXT_PERIOD} sentences to hold some out, got "
                               f"{len(sentences)}")

    def batches(lines: list[str]) -> list[dict]:
        return [dict(tokenizer(lines[i:i + batch_size], padding=True, truncation=True,
                               max_length=max_length, return_tensors="pt"))
                for i in range(0, len(lines), batch_size)]

    source = "sentences:builtin" if text is None else f"text:{Path(text).resolve()}"
    how = (f"{source}: sentence i (file order) held out when i mod {TEXT_PERIOD} = "
           f"{TEXT_PERIOD - 1}; {len(cal)} others calibrate, {len(held)} held out")
    return Split("text", batches(cal), batches(held), len(cal), len(held), how, source)


def _inputs_split(path, samples: int, heldout: int, batch_size: int) -> Split:
    obj = read_inputs(path)
    first = (obj if isinstance(obj, torch.Tensor) else
             next(iter(obj.values())) if isinstance(obj, dict) else obj[0])
    N = int(first.shape[0])
    if N < 2:
        raise CalibrationError(f"inputs {str(path)!r} hold {N} row: need at least 2 (the last "
                               "quarter is held out)")
    n_held = max(1, N // 4)
    n_cal = min(samples, N - n_held)
    start = N - n_held

    def rows(a: int, b: int) -> list:
        out = []
        for i in range(a, b, batch_size):
            sl = slice(i, min(i + batch_size, b))
            if isinstance(obj, torch.Tensor):
                out.append(obj[sl])
            elif isinstance(obj, dict):
                out.append({k: v[sl] for k, v in obj.items()})
            else:
                out.append(tuple(v[sl] for v in obj))
        return out

    held_stop = min(N, start + heldout)
    how = (f"inputs {Path(path).resolve()}: rows 0..{n_cal - 1} calibrate, rows "
           f"{start}..{held_stop - 1} (the last quarter) are held out")
    return Split("inputs", rows(0, n_cal), rows(start, held_stop), n_cal, held_stop - start,
                 how, f"inputs:{Path(path).resolve()}")


def fingerprint(batches: list) -> str:
    """SHA-256 (16 hex digits) over the batches as the model receives them, sample by sample
    (:mod:`layers.capture`'s calibration fingerprint)."""
    import hashlib

    from ..capture import _hash_batch

    digest = hashlib.sha256()
    for b in batches:
        _hash_batch(digest, b)
    return "sha256:" + digest.hexdigest()[:16]
