"""Labels of a held-out image folder: both file formats, errors, and real top-1 through the CLI."""

import json

import numpy as np
import pytest
from PIL import Image
from tiny_models import write_user_module

from bounds.cli import main
from bounds.network.labels import read_labels
from solvers.problem import ProblemError


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        path = d / ("sub" if i % 2 else "") / f"im{i}.png"
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(path)
    return d


def test_both_formats(folder, tmp_path):
    from layers.calibration import image_files

    files = image_files(folder)
    named = tmp_path / "named.txt"
    named.write_text("".join(f"{f.relative_to(folder).as_posix()} {i}\n"
                             for i, f in enumerate(files)))
    assert read_labels(named, files[4:], root=folder) == [4, 5]
    plain = tmp_path / "plain.txt"
    plain.write_text("# one per file\n" + "".join(f"{i % 3}\n" for i in range(6)))
    assert read_labels(plain, files[3:], root=folder) == [0, 1, 2]
    plain.write_text("1\n2\n")
    with pytest.raises(ProblemError, match="2 labels for 6 images"):
        read_labels(plain, files, root=folder)
    named.write_text("im0.png x\n")
    with pytest.raises(ProblemError, match="must be integers"):
        read_labels(named, files, root=folder)


def test_real_top1_on_a_labelled_folder(folder, tmp_path):
    src, weights = write_user_module(tmp_path / "m")
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{i % 5}\n" for i in range(6)))
    out = tmp_path / "o"
    assert main(["network", "--model", f"{src}:build", "--weights", str(weights), "--images",
                 str(folder), "--labels", str(labels), "--samples", "3", "--heldout", "3",
                 "--method", "rtn", "--bits", "8", "--resamples", "50", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["split"]["heldout_samples"] == 3 and "first 3 calibrate" in s["split"]["how"]
    acc = s["metrics"]["top1_accuracy_original"]["value"]
    assert acc in (0.0, 1 / 3, 2 / 3, 1.0)
    assert "top1_accuracy" in s["metrics"]
