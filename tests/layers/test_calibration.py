"""Calibration data: seeded, normalised, right shapes; user folders and text files."""

import numpy as np
import pytest
import torch

from layers.calibration import (
    IMAGENET_MEAN,
    ImageCalibration,
    builtin_photos,
    builtin_sentences,
    read_sentences,
)
from layers.errors import CalibrationError


def test_builtin_photos_load_offline():
    names = [n for n, _ in builtin_photos()]
    assert {"astronaut", "chelsea", "coffee", "rocket"} <= set(names)
    assert all(a.ndim == 3 and a.shape[2] == 3 and a.dtype == np.uint8
               for _, a in builtin_photos())


def test_image_batches_are_seeded_and_normalised():
    cal = ImageCalibration(5, batch_size=2, seed=3)
    batches = list(cal)
    assert [tuple(b.shape) for b in batches] == [(2, 3, 224, 224)] * 2 + [(1, 3, 224, 224)]
    again = torch.cat(list(ImageCalibration(5, batch_size=5, seed=3)))
    assert torch.equal(torch.cat(batches), again)
    other = torch.cat(list(ImageCalibration(5, batch_size=5, seed=4)))
    assert not torch.equal(again, other)
    # a prefix: 3 samples are the first 3 of 5
    assert torch.equal(torch.cat(list(ImageCalibration(3, seed=3))), again[:3])
    lo = (0 - np.array(IMAGENET_MEAN)) / 0.229 - 0.1
    assert again.min() >= lo.min() and again.max() <= (1 - 0.406) / 0.225 + 1e-5


def test_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i, size in enumerate([(300, 200), (180, 260)]):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(
            tmp_path / f"im{i}.png")
    Image.fromarray(rng.integers(0, 255, (100, 120), dtype=np.uint8)).save(tmp_path / "g.jpg")
    (tmp_path / "notes.txt").write_text("ignored")
    cal = ImageCalibration(5, batch_size=4, images=tmp_path, size=64)
    x = torch.cat(list(cal))
    assert x.shape == (5, 3, 64, 64) and torch.isfinite(x).all()
    assert cal.source.startswith("images:")


def test_bad_sizes():
    with pytest.raises(CalibrationError, match="samples must be a positive integer"):
        ImageCalibration(0)
    with pytest.raises(CalibrationError, match="image size must be"):
        ImageCalibration(1, size=8)


def test_sentences(tmp_path):
    s = builtin_sentences()
    assert len(s) >= 64 and all(line and not line.startswith("#") for line in s)
    f = tmp_path / "t.txt"
    f.write_text("# comment\nfirst line\n\n second \n", encoding="utf-8")
    assert read_sentences(f) == ["first line", "second"]
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(CalibrationError, match="no non-empty lines"):
        read_sentences(tmp_path / "empty.txt")
    with pytest.raises(CalibrationError, match="cannot read text file"):
        read_sentences(tmp_path / "missing.txt")


def test_fingerprint_separates_calibration_sets():
    from bounds.export import export_model

    net = torch.nn.Linear(3, 2)
    a = export_model(net, inputs=torch.ones(4, 3))[""][0].meta["calibration"]
    b = export_model(net, inputs=torch.ones(4, 3))[""][0].meta["calibration"]
    c = export_model(net, inputs=2 * torch.ones(4, 3))[""][0].meta["calibration"]
    assert a == b != c
