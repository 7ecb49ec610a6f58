"""Malformed problem files: one clear line on stderr, exit 2, no traceback, never pickle advice."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bounds.cli import main

ROOT = Path(__file__).resolve().parents[3]


def _text(path):
    path.write_text("H = [[1, 0], [0, 1]]\n")


def _zero_bytes(path):
    path.write_bytes(b"")


def _empty_npz(path):
    np.savez(path)


def _string_h(path):
    np.savez(path, H=np.array([["a", "b"], ["c", "d"]]), W0=np.ones((1, 2)))


def _string_w0(path):
    np.savez(path, H=np.eye(2), W0=np.array([["1", "x"]]))


def _complex_h(path):
    np.savez(path, H=np.eye(2) * (1 + 1j), W0=np.ones((1, 2)))


def _bool_h(path):
    np.savez(path, H=np.eye(2, dtype=bool), W0=np.ones((1, 2)))


def _object_h(path):
    np.savez(path, H=np.array([1.0, "x", None], dtype=object), W0=np.ones((1, 2)))


def _single_npy(path):
    with open(path, "wb") as fh:
        np.save(fh, np.eye(2))


def _truncated(path):
    np.savez(path, H=np.eye(4), W0=np.ones((1, 4)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _foreign_zip(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("H.npy", b"not an array")
        z.writestr("W0.npy", b"nor this")


def _string_scale(path):
    np.savez(path, H=np.eye(2), W0=np.ones((1, 2)), scale=np.array("big"))


def _chunk_array(path):
    np.savez(path, H=np.eye(2), W0=np.ones((1, 2)), chunk=np.array([0, 1]))


def _string_bits(path):
    np.savez(path, H=np.eye(2), W0=np.ones((1, 2)), bits=np.array("4b"))


def _meta_list(path):
    np.savez(path, H=np.eye(2), W0=np.ones((1, 2)), meta_json=np.array("[1, 2]"))


def _nan_h(path):
    np.savez(path, H=np.array([[1.0, np.nan], [np.nan, 1.0]]), W0=np.ones((1, 2)))


CASES = {
    "text renamed .npz": (_text, "not an .npz file"),
    "zero bytes": (_zero_bytes, "is empty"),
    "empty npz": (_empty_npz, "holds no arrays"),
    "string H": (_string_h, "'H' must hold numbers"),
    "string W0": (_string_w0, "'W0' must hold numbers"),
    "complex H": (_complex_h, "'H' must hold numbers"),
    "boolean H": (_bool_h, "'H' must hold numbers"),
    "object H": (_object_h, "holds Python objects"),
    "single npy": (_single_npy, "single .npy array"),
    "truncated": (_truncated, "damaged or truncated"),
    "foreign zip": (_foreign_zip, "not a numpy array"),
    "string scale": (_string_scale, "'scale' must hold numbers"),
    "chunk array": (_chunk_array, "'chunk' must be a single value"),
    "string bits": (_string_bits, "'bits' must hold an integer"),
    "meta_json list": (_meta_list, "meta_json must be a JSON object"),
    "nan in H": (_nan_h, "finite"),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kind", ["quant", "prune"])
def test_bad_file_is_one_clear_line(tmp_path, capsys, case, kind):
    make, expected = CASES[case]
    path = tmp_path / "p.npz"
    make(path)
    argv = ["solve", kind, str(path), "--quiet"] + (["--bits", "4"] if kind == "prune" else [])
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pqbound: error: ") and str(path) in lines[0]
    assert expected in lines[0], lines[0]
    assert "pickle" not in err and "Traceback" not in err


@pytest.mark.parametrize("case", ["text renamed .npz", "string H", "empty npz"])
def test_bad_file_through_python_m_bounds(tmp_path, case):
    make, expected = CASES[case]
    path = tmp_path / "p.npz"
    make(path)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "bounds", "solve", "quant", str(path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and expected in proc.stderr
    assert "Traceback" not in proc.stderr and "pickle" not in proc.stderr
