"""`pqbound solve quant` over levels: problem-file levels, --format, nonzero limits, bad input."""

import json
import re

import numpy as np
import pytest
from problem_instances import random_hessian

from bounds.cli import main
from solvers import LevelProblem
from solvers.formats import build_levels, storage_bits


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(0)
    H = random_hessian(rng, 8, "corr")
    W0 = 0.1 * rng.standard_normal((2, 8))
    toy = tmp_path / "toy.npz"
    np.savez(toy, H=H, W0=W0, layer="toy", chunk=0, input_start=0, input_stop=8, rows=32)
    shared = tmp_path / "shared.npz"
    np.savez(shared, H=H, W0=W0, levels=np.array([-0.2, -0.1, 0.0, 0.05, 0.1, 0.2]))
    table = np.sort(np.r_[[np.r_[0.0, 0.1 * (j + 1), -0.1 * (j + 1)] for j in range(8)]], axis=1)
    per = tmp_path / "per.npz"
    np.savez(per, H=H, W0=W0, levels=table)
    return {"toy": toy, "shared": shared, "per": per, "H": H, "W0": W0, "table": table}


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _check_doc(doc, H, W0, levels_of, k=None):
    assert doc["kind"] == "quant"
    for ch in doc["channels"]:
        c = ch["channel"]
        p = LevelProblem(H, W0[c], levels=levels_of(c), k=k)
        w = p.check_weights(ch["weights"])
        assert ch["objective"] == pytest.approx(p.error(w), rel=1e-12)
        assert ch["lower_bound"] <= ch["objective"] and ch["status"] == "optimal"
        for key in ("weights", "lower_bound", "objective", "status", "seconds"):
            assert key in ch


def test_file_levels_shared_and_per_input(files, capsys):
    code, out, _ = _run(capsys, "solve", "quant", files["shared"], "--json")
    assert code == 0
    doc = json.loads(out)
    _check_doc(doc, files["H"], files["W0"], lambda c: [-0.2, -0.1, 0.0, 0.05, 0.1, 0.2])
    code, out, _ = _run(capsys, "solve", "quant", files["per"], "--nonzeros", 3, "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["k"] == 3 and doc["levels_shape"] == [8, 3]
    _check_doc(doc, files["H"], files["W0"], lambda c: files["table"], k=3)


@pytest.mark.parametrize("fmt", ["int4-asym-g4", "fp4-e2m1-g4", "nf4-g8", "fp8-e4m3"])
def test_format_presets(files, capsys, fmt):
    code, out, _ = _run(capsys, "solve", "quant", files["toy"], "--format", fmt, "--json",
                        "--scale-method", "minmax")
    assert code == 0
    doc = json.loads(out)
    f = build_levels(files["W0"], fmt, scale_method="minmax")
    assert doc["format"] == f.spec.name and doc["bits_per_weight"] == f.bits_per_weight
    _check_doc(doc, files["H"], files["W0"], f.levels)


def test_grid_with_sparsity_and_nm(files, capsys):
    code, out, _ = _run(capsys, "solve", "quant", files["toy"], "--bits", 3, "--scale", 0.05,
                        "--density", 0.5, "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["k"] == 4 and doc["bits"] == 3
    _check_doc(doc, files["H"], files["W0"], lambda c: 0.05 * np.arange(-4, 4), k=4)
    code, out, _ = _run(capsys, "solve", "quant", files["toy"], "--format", "int3+2:4",
                        "--json", "--channel", 1)
    doc = json.loads(out)
    assert code == 0 and doc["nm"] == [2, 4] and doc["k"] == 4
    w = np.array(doc["channels"][0]["weights"]).reshape(-1, 4)
    assert np.all(np.count_nonzero(w, axis=1) <= 2)


def test_format_size_counts_the_sparsity_metadata(files, capsys):
    """``bits_per_weight`` of a sparse format solve is :func:`storage_bits` with the positions
    (as ``compare --formats`` counts it), the dense size beside it."""
    from bounds.compare.formats import plan_formats
    from bounds.problem_file import load_problem

    C, n = files["W0"].shape
    for argv, want in [(["--format", "int3", "--nm", "2:4"], storage_bits("int3+2:4", n, C)),
                       (["--format", "int3+2:4"], storage_bits("int3+2:4", n, C)),
                       (["--format", "int3", "--nonzeros", "3"], storage_bits("int3", n, C, k=3))]:
        code, out, _ = _run(capsys, "solve", "quant", files["toy"], *argv, "--json",
                            "--channel", 0)
        assert code == 0
        doc = json.loads(out)
        assert doc["bits_per_weight"] == pytest.approx(want.total, rel=1e-15)
        assert doc["storage"]["positions"] == want.positions > 0
        assert doc["dense_bits_per_weight"] == pytest.approx(storage_bits("int3", n, C).total)
        assert doc["bits_per_weight"] < doc["dense_bits_per_weight"] + 1
    _, record, _ = plan_formats(load_problem(files["toy"]), ["int3+2:4"], scale_method="mse",
                                accounting="hardware")
    assert record["int3+2:4"]["bits_per_weight"] == storage_bits("int3+2:4", n, C).total


@pytest.mark.parametrize("argv,match", [
    (["--format", "int4-sym"], "unknown format .int4-sym.; valid"),
    (["--format", "int4-asym", "--group-size", "3"], "group size 3 does not divide"),
    (["--format", "int4", "--bits", "4"], "--bits, --scale and --per-channel do not"),
    (["--nonzeros", "9"], r"k must be an integer in \[0, n = 8\]"),
    (["--nonzeros", "-1"], r"k must be an integer in \[0, n = 8\]"),
    (["--nm", "2:3"], "M to divide n = 8"),
    (["--group-size", "4"], "--group-size applies to --format only"),
    (["--format", "fp4-e2m1-g4", "--method", "adaround"],
     "unknown levels method 'adaround'; valid"),
    (["--format", "int4+2:4", "--nonzeros", "3"], "has its own 2:4 pattern"),
])
def test_bad_input_exits_2_and_writes_nothing(files, capsys, argv, match):
    code, out, err = _run(capsys, "solve", "quant", files["toy"], *argv, "--json")
    assert code == 2 and out == ""
    assert re.search(match, err), err


def test_bad_levels_in_file(tmp_path, capsys, files):
    for levels, match in [([0.1, 0.0], "not sorted"), ([0.0, 0.0], "repeated"),
                          ([np.nan, 1.0], "NaN"), (np.zeros((3, 2)), r"\(n, L\) = \(8, L\)"),
                          (np.zeros(0), "empty")]:
        path = tmp_path / "bad.npz"
        np.savez(path, H=files["H"], W0=files["W0"], levels=np.asarray(levels))
        code, out, err = _run(capsys, "solve", "quant", path, "--json")
        assert code == 2 and out == "" and "bad.npz" in err
        assert re.search(match, err), err
    path = tmp_path / "nozero.npz"
    np.savez(path, H=files["H"], W0=files["W0"], levels=np.array([-0.1, 0.1]))
    code, out, err = _run(capsys, "solve", "quant", path, "--nonzeros", 2)
    assert code == 2 and out == "" and "needs zero as a level" in err
    code, out, err = _run(capsys, "solve", "quant", path, "--bits", 4)
    assert code == 2 and "carries levels" in err
