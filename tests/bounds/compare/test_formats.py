"""``pqbound compare --formats``: formats side by side at equal bits per weight."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bounds.cli import main
from bounds.compare.formats import canonical_formats, family, methods_for
from bounds.compare.run import run_compare
from bounds.compare.settings import CompareConfig
from bounds.compare.store import ResultStore
from solvers.formats import build_levels, parse_format, storage_bits

FORMATS = ("int4", "int4-asym-g4", "fp4-e2m1-g8", "nf4-g8", "int4+2:4", "int3-ch", "int4-g5")
SMALL = dict(bits=(4,), opt_dim=8, channels=1, max_chunks=None, time_limit=20.0,
             quant_methods=("rtn",), prune_methods=("magnitude",), whole_layer=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from .conftest import toy_layer

    d = tmp_path_factory.mktemp("fmt")
    layer = toy_layer(seed=3, n=16)
    s = run_compare("toy", problems={"toy": layer}, db=str(d / "r.sqlite"), workers=1,
                    report=str(d / "rep"), formats=FORMATS, **SMALL)
    return s, d, layer


def test_rows_bounds_and_sizes(run):
    s, d, layer = run
    assert s.errors == 0
    with ResultStore(d / "r.sqlite", readonly=True) as st:
        rows = [r for r in st.rows(s.run_id, solutions=True) if r["kind"] == "levels"]
    names = canonical_formats(FORMATS[:-1])  # int4-g5: 5 does not divide n = 16
    assert {r["compression"] for r in rows} == {"fmt:" + n for n in names}
    assert "int4-g5 skipped" in s.layers[0]["note"]
    by = {}
    for r in rows:
        by.setdefault((r["compression"], r["chunk"], r["channel"]), {})[r["method"]] = r
    for (comp, chunk, ch), ms in by.items():
        spec = parse_format(comp[4:])
        assert set(ms) == {"exact", *methods_for(spec, ("rtn", "gptq", "wanda", "prune-gptq",
                                                        "sparsegpt"))}
        # the chunk's levels are the whole layer's, sliced: every weight is one of them
        f = build_levels(layer.W0, spec)
        lv = np.broadcast_to(f.levels(ch), (layer.n, f.codebook.size))[8 * chunk:8 * chunk + 8]
        lb = ms["exact"]["lower_bound"]
        for r in ms.values():
            w = np.asarray(r["weights"])
            assert np.all(np.any(lv == w[:, None], axis=1)), (comp, r["method"])
            if spec.nm is not None:
                assert np.all(np.count_nonzero(w.reshape(-1, 4), axis=1) <= 2)
            assert r["objective"] >= lb * (1 - 1e-9) - 1e-15, (comp, r["method"])
    lines = s.layers[0]["formats"]
    assert [ln["format"] for ln in lines] == sorted(
        names, key=lambda n: (storage_bits(n, 16, 3).total, n))
    for ln in lines:
        assert ln["bits_per_weight"] == pytest.approx(storage_bits(ln["format"], 16, 3).total)
        f = ln["figures"]
        assert f["problems"] == 2 and f["lower_bound"] <= f["best_error"]
        assert f["methods"]["exact"]["complete"]
    assert "[formats, chunk problems]" in s.text()


def test_report_has_the_frontier(run):
    s, d, _ = run
    md = (d / "rep" / "report.md").read_text()
    assert "Number formats at equal size" in md and "formats-toy.png" in md
    assert (d / "rep" / "formats-toy.png").stat().st_size > 0
    assert "int4-tensor+2:4 | INT sym +2:4 | 3.333" in md  # 2 + 16/48 + 1 (2:4 indices)


def test_resume_solves_nothing(run, tmp_path):
    s, d, layer = run
    again = run_compare("toy", problems={"toy": layer}, db=str(d / "r.sqlite"), workers=1,
                        formats=FORMATS, **SMALL)
    assert again.run_id == s.run_id and again.solved == 0 and again.reused == again.tasks


def test_settings_without_formats_unchanged():
    d = CompareConfig().resolved().settings()
    assert not any(k.startswith("format") for k in d)
    cfg = CompareConfig(formats=("nf4", "int4-asym-g128")).resolved()
    assert cfg.formats == ("nf4-g64", "int4-asym-g128")
    assert "exact" in cfg.format_methods


def test_family_and_methods():
    assert family(parse_format("fp4-e2m1-nv")) == "FP NV"
    assert methods_for(parse_format("int4"), ("exact", "gptq", "wanda")) == ["exact", "gptq"]
    assert methods_for(parse_format("int4+2:4"), ("exact", "gptq", "wanda")) == ["exact",
                                                                                  "wanda"]


@pytest.mark.parametrize("argv, match", [
    (["--formats", "int4", "int5-foo"], "unknown format 'int5-foo'; valid: int{b}"),
    (["--formats", "int4", "--format-methods", "bogus"], "unknown format method bogus; valid"),
    (["--formats", "fp4-e2m1-ch-mx"], "MX / NV scales are per group"),
    (["--format-methods", "rtn"], "format methods were given without formats"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, argv, match):
    db, rep = tmp_path / "r.sqlite", tmp_path / "rep"
    code = main(["compare", "--db", str(db), "--report", str(rep), "--bits", "4", *argv])
    assert code == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1
    assert not db.exists() and not rep.exists()


def test_cli_json_has_formats(tmp_path, capsys, monkeypatch):
    """The CLI end to end on a hand-made layer (no model export)."""
    import bounds.compare.run as run_mod

    from .conftest import toy_layer

    monkeypatch.setattr(run_mod, "export_layers",
                        lambda cfg, model, progress, inputs: {"toy": toy_layer(n=8)})
    code = main(["compare", "--layer", "toy", "--db", str(tmp_path / "r.sqlite"), "--bits", "4",
                 "--opt-dim", "8", "--channels", "1", "--methods", "rtn", "prune:magnitude",
                 "--no-whole-layer", "--workers", "1", "--json", "--formats", "int4-ch+2:4",
                 "nf4-g8", "--format-methods", "exact", "rtn", "sparsegpt",
                 "--format-accounting", "entropy"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    lines = out["layers"][0]["formats"]
    assert [ln["format"] for ln in lines] == ["int4-ch+2:4", "nf4-g8"]
    assert lines[0]["storage"]["accounting"] == "entropy"
    assert set(lines[0]["figures"]["methods"]) == {"exact", "rtn", "sparsegpt"}
    assert set(lines[1]["figures"]["methods"]) == {"exact", "rtn"}


def test_tiny_model_end_to_end(tmp_path, capsys):
    """A real export: the conv layer (n = 27) of tests/tiny_models.py's user module."""
    import sys
    from pathlib import Path

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tiny_models import write_user_module

    src, weights = write_user_module(tmp_path / "user")
    x = tmp_path / "x.pt"
    torch.save(torch.randn(4, 3, 6, 6), x)
    rep = tmp_path / "rep"
    code = main(["compare", "--model", f"{src}:build", "--weights", str(weights), "--inputs",
                 str(x), "--layer", "conv", "--bits", "4", "--opt-dim", "9", "--channels", "2",
                 "--chunks", "2", "--workers", "1", "--no-whole-layer", "--methods", "rtn",
                 "magnitude", "--db", str(tmp_path / "r.sqlite"), "--report", str(rep),
                 "--json", "--formats", "int4-asym-ch", "nf4-g9", "int4-ch+1:3", "fp4-e2m1"])
    assert code == 0, capsys.readouterr().err
    out = json.loads(capsys.readouterr().out)
    e = out["layers"][0]
    assert "fp4-e2m1-g32-mx skipped" in e["note"]  # 32 does not divide n = 27
    lines = {ln["format"]: ln for ln in e["formats"]}
    assert set(lines) == {"int4-asym-ch", "nf4-g9", "int4-ch+1:3"}
    for ln in lines.values():
        f = ln["figures"]
        assert f["problems"] == 4 and f["methods"]["exact"]["complete"]
        assert f["lower_bound"] <= f["best_error"]
        for m, mf in f["methods"].items():
            assert mf["complete"] and mf["error"] >= f["lower_bound"] * (1 - 1e-9), m
    assert (rep / "formats-conv.png").exists()


def test_levels_kernels_warmed_only_with_formats(tmp_path, monkeypatch):
    import bounds.compare.warm_up as wu

    from .conftest import toy_layer

    seen = []
    monkeypatch.setattr(wu, "warm_up_announced",
                        lambda progress=True, stream=None, *, groups=wu.COMPARE_GROUPS:
                        seen.append(groups))
    for i, formats in enumerate([(), ("int4-ch",)]):
        run_compare("toy", problems={"toy": toy_layer(n=8)}, db=str(tmp_path / f"{i}.sqlite"),
                    workers=1, formats=formats, **dict(SMALL, time_limit=5.0))
    assert "levels" not in seen[0] and "levels" in seen[1]
