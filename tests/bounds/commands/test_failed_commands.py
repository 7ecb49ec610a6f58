"""A failed command leaves no folder or store behind; written files follow the user's umask."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from bounds.cli import main
from bounds.compare.store import ResultStore
from bounds.files import cleanup_on_failure, file_mode, umask
from bounds.problem_file import save_problem
from solvers.problem import LayerProblem


def _fails(capsys, *argv) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


def _tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_export_with_a_bad_layer_leaves_no_folder(tmp_path, capsys):
    err = _fails(capsys, "export", "--model", "mobilenet_v2", "--layer", "nope",
                 "--out", tmp_path / "new" / "probs", "--quiet")
    assert "unknown layer 'nope'" in err
    assert _tree(tmp_path) == []


def test_export_into_an_existing_folder_keeps_it_and_adds_nothing(tmp_path, capsys):
    out = tmp_path / "probs"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    _fails(capsys, "export", "--model", "mobilenet_v2", "--layer", "nope", "--out", out,
           "--quiet")
    assert _tree(tmp_path) == ["probs", "probs/mine.txt"]


def test_report_of_a_missing_store_leaves_no_folder(tmp_path, capsys):
    err = _fails(capsys, "report", "--db", tmp_path / "nowhere" / "r.sqlite",
                 "--out", tmp_path / "rep" / "a")
    assert "does not exist" in err
    assert _tree(tmp_path) == []


def test_report_of_an_unknown_run_leaves_no_folder(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    with ResultStore(db) as st:
        st.begin_run("abc", {}, {}, [])
    before = _tree(tmp_path)
    err = _fails(capsys, "report", "--db", db, "--out", tmp_path / "rep", "--run", "zzz")
    assert "not found" in err
    # (SQLite itself may leave its -wal/-shm beside a WAL database opened read-only.)
    assert [p for p in _tree(tmp_path) if not p.endswith(("-wal", "-shm"))] == before


def test_compare_with_a_bad_layer_leaves_no_store_nor_report(tmp_path, capsys):
    err = _fails(capsys, "compare", "--layer", "nope", "--db", tmp_path / "d" / "r.sqlite",
                 "--report", tmp_path / "rep", "--quiet", "--workers", "1")
    assert "unknown layer 'nope'" in err
    assert _tree(tmp_path) == []


def test_a_store_with_rows_survives_a_failure(tmp_path):
    db = tmp_path / "d" / "r.sqlite"
    with pytest.raises(KeyboardInterrupt):
        with cleanup_on_failure(stores=[db]):
            with ResultStore(db) as st:
                st.write({"task_key": "k", "model": "m", "layer": "l", "channel": 0,
                          "scope": "chunk", "kind": "quant", "method": "rtn",
                          "compression": "4", "status": "optimal"})
            raise KeyboardInterrupt
    with ResultStore(db, readonly=True) as st:
        assert len(st.rows()) == 1  # kept: the run resumes from it
    db2 = tmp_path / "e" / "r.sqlite"
    with pytest.raises(RuntimeError):
        with cleanup_on_failure(stores=[db2]):
            ResultStore(db2).close()
            raise RuntimeError("export failed")
    assert not (tmp_path / "e").exists()


def test_success_keeps_everything(tmp_path):
    out = tmp_path / "a" / "b"
    with cleanup_on_failure(folders=[out], stores=[tmp_path / "s.sqlite"]):
        out.mkdir(parents=True)
        ResultStore(tmp_path / "s.sqlite").close()
    assert out.is_dir() and (tmp_path / "s.sqlite").exists()


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002, 0o077])
def test_problem_files_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        assert umask() == mask and file_mode() == 0o666 & ~mask
        lp = LayerProblem(np.eye(2), np.ones((1, 2)), {"layer": "x"})
        path = save_problem(tmp_path / "p.npz", lp)
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
