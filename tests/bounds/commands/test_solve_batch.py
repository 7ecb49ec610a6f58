"""`pqbound solve` over many files: JSON Lines, folders, --keep, --workers, clean errors."""

import json

import numpy as np
import pytest
from problem_instances import random_hessian

from bounds.batch_solve import SolveSettings, find_problem_files, solve_many
from bounds.cli import main
from solvers.problem import ProblemError, PruneProblem
from solvers.registry import solve


def _write(path, seed, n=8, channels=2):
    rng = np.random.default_rng(seed)
    H = random_hessian(rng, n)
    W0 = rng.standard_normal((channels, n))
    np.savez(path, H=H, W0=W0, layer=f"toy{seed}")
    return H, W0


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "probs"
    d.mkdir()
    data = {}
    for i in range(3):
        data[f"p{i}.npz"] = _write(d / f"p{i}.npz", i)
    (d / "notes.txt").write_text("not a problem")
    return d, data


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _lines(out):
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_folder_gives_one_json_line_per_file_in_order(folder, capsys):
    d, data = folder
    code, out, err = _run(capsys, "solve", "prune", d, "--keep", 3, "--json")
    assert code == 0, err
    docs = _lines(out)
    assert [doc["problem"] for doc in docs] == [str(d / f"p{i}.npz") for i in range(3)]
    for doc in docs:
        H, W0 = data[doc["problem"].rsplit("/", 1)[1]]
        assert doc["k"] == 3 and doc["load_seconds"] >= 0
        for ch in doc["channels"]:
            w = np.array(ch["weights"])
            assert np.count_nonzero(w) <= 3
            e = w - W0[ch["channel"]]
            assert ch["objective"] == pytest.approx(e @ H @ e, rel=1e-9, abs=1e-12)
            # the exact optimum, checked against the registry's solve of the same problem
            ref = solve(PruneProblem(H, W0[ch["channel"]], k=3), "exact")
            assert ch["objective"] == pytest.approx(ref.objective, rel=1e-9, abs=1e-12)
            assert ch["lower_bound"] <= ch["objective"] * (1 + 1e-9) + 1e-12
    # the one-time cost is counted once (the first line), never inside `seconds`
    assert all(doc["load_seconds"] == 0 for doc in docs[1:])


def test_files_and_folders_mix_and_repeats_are_dropped(folder, capsys):
    d, _ = folder
    code, out, _ = _run(capsys, "solve", "quant", d / "p1.npz", d, "--method", "rtn",
                        "--bits", 3, "--json")
    assert code == 0
    assert [doc["problem"] for doc in _lines(out)] == [
        str(d / "p1.npz"), str(d / "p0.npz"), str(d / "p2.npz")]


def test_workers_give_the_same_results(folder):
    d, _ = folder
    s = SolveSettings("prune", method="exact", density=0.5)
    one = list(solve_many([d], s))
    two = list(solve_many([d], s, workers=2))
    assert [o.path for o in one] == [o.path for o in two]
    for a, b in zip(one, two, strict=True):
        assert a.ok and b.ok
        assert [c["objective"] for c in a.doc["channels"]] == \
            pytest.approx([c["objective"] for c in b.doc["channels"]], rel=1e-12)


def test_keep_equals_the_density_it_stands_for(folder, capsys):
    d, _ = folder
    _, a, _ = _run(capsys, "solve", "prune", d / "p0.npz", "--keep", 4, "--json",
                   "--method", "obs")
    _, b, _ = _run(capsys, "solve", "prune", d / "p0.npz", "--density", 0.5, "--json",
                   "--method", "obs")
    da, db = _lines(a)[0], _lines(b)[0]
    assert da["k"] == db["k"] == 4
    assert [c["weights"] for c in da["channels"]] == [c["weights"] for c in db["channels"]]


def test_density_rounds_halves_up(tmp_path, capsys):
    _write(tmp_path / "n9.npz", 0, n=9, channels=1)
    _, out, _ = _run(capsys, "solve", "prune", tmp_path / "n9.npz", "--density", 0.5,
                     "--method", "magnitude", "--json")
    assert _lines(out)[0]["k"] == 5  # round(4.5) -> 5, not banker's 4


def test_a_malformed_file_is_reported_and_the_others_solved(folder, capsys):
    d, _ = folder
    (d / "p1b.npz").write_text("this is not an npz file")
    code, out, err = _run(capsys, "solve", "prune", d, "--density", 0.5, "--method",
                          "magnitude", "--json")
    assert code == 2
    assert [doc["problem"] for doc in _lines(out)] == [
        str(d / f) for f in ("p0.npz", "p1.npz", "p2.npz")]
    assert "p1b.npz" in err and "1 of 4 problem files failed" in err
    assert "Traceback" not in err


def test_keep_out_of_range(folder, capsys):
    d, _ = folder
    code, out, err = _run(capsys, "solve", "prune", d / "p0.npz", "--keep", 9, "--json")
    assert code == 2 and out == ""
    assert "keep 9 is out of range for n = 8 inputs (0..8)" in err
    code, out, err = _run(capsys, "solve", "prune", d / "p0.npz", "--keep", -1)
    assert code == 2 and out == "" and "--keep must be >= 0" in err


def test_a_folder_without_problem_files(tmp_path, capsys):
    (tmp_path / "readme.txt").write_text("nothing here")
    code, out, err = _run(capsys, "solve", "quant", tmp_path, "--method", "rtn")
    assert code == 2 and out == ""
    assert "holds no problem files (*.npz)" in err
    with pytest.raises(ProblemError, match="holds no problem files"):
        find_problem_files([tmp_path])


def test_settings_errors_come_before_any_solve(folder, capsys):
    d, _ = folder
    code, out, err = _run(capsys, "solve", "prune", d, "--density", 0.5, "--method",
                          "magnitude", "--workers", 0)
    assert code == 2 and out == "" and "--workers must be >= 1" in err
    code, out, err = _run(capsys, "solve", "quant", d, "--method", "gptq", "--option", "x=1")
    assert code == 2 and out == "" and "no option x" in err


def test_solve_loads_neither_torch_nor_plotting(folder):
    """`pqbound solve` imports only what it needs (no torch, matplotlib or bounds.compare)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    d, _ = folder
    root = Path(__file__).resolve().parents[3]
    code = ("import sys, io, contextlib\n"
            "from bounds.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    rc = main(['solve', 'prune', {str(d)!r}, '--keep', '2', '--json'])\n"
            "print(rc, sorted(m for m in ('torch', 'matplotlib', 'bounds.compare', 'layers')\n"
            "                 if m in sys.modules))\n")
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["0", "[]"]


def test_version_is_looked_up_when_asked(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("pqbound ")
