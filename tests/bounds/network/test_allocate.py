"""``pqbound network --allocate`` on a tiny user network: the allocation is the knapsack's
optimum over the stored curves, within the budget, and every network it reports is measured."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from tiny_models import write_user_module

from bounds.cli import main
from bounds.compare.store import ResultStore


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    src, weights = write_user_module(folder)
    torch.manual_seed(0)
    inputs = folder / "inputs.pt"
    torch.save(torch.randn(48, 3, 8, 8), inputs)
    return f"{src}:build", weights, inputs


def _args(tiny, out, *extra):
    model, weights, inputs = tiny
    return ["network", "--model", model, "--weights", str(weights), "--inputs", str(inputs),
            "--method", "gptq", "--resamples", "20", "--quiet", "--out", str(out), *extra]


def test_allocation_is_the_knapsack_optimum(tiny, tmp_path, capsys):
    out = tmp_path / "a"
    assert main(_args(tiny, out, "--allocate", "--budget-bits", "3",
                      "--allocate-bits", "2,4,8")) == 0
    doc = json.loads((out / "allocation.json").read_text())
    assert doc["options_bits"] == [2, 4, 8]
    curves = doc["curves"]
    assert [c["layer"] for c in curves] == ["conv", "fc"]
    budget = doc["budget_bits"]
    assert budget == math.floor(3 * doc["weights_total"])
    # brute force over the stored curves
    best = min((sum(o["error"] for o in combo), combo)
               for combo in itertools.product(*(c["options"] for c in curves))
               if sum(o["size_bits"] for o in combo) <= budget)
    a = doc["allocation"]
    assert a["summed_error"] == pytest.approx(best[0], rel=1e-12)
    assert a["size_bits"] <= budget
    assert list(a["layers"].values()) == [o["label"] for o in best[1]]
    names = [n["name"] for n in doc["networks"]]
    assert names == ["uniform 2 bits", "uniform 4 bits", "uniform 8 bits",
                     "heuristic (Hessian trace)", "allocated"]
    for net in doc["networks"]:
        assert 0.0 <= net["metrics"]["top1_agreement"]["value"] <= 1.0
    # errors fall with bits; gptq proves nothing: the trivial bound
    for c in curves:
        errs = [o["error"] for o in c["options"]]
        assert errs[0] >= errs[1] >= errs[2]
        assert all(o["bound"] is None for o in c["options"])
    assert a["lower_bound"] == 0.0
    # the allocated network is saved and loads strictly
    sd = torch.load(out / "state_dict.pt")
    assert set(sd) == set(torch.load(tiny[1]))
    # one store row per (layer, size), reused by a second run
    with ResultStore(out / "results.sqlite", readonly=True) as st:
        assert len(st.rows(scope="network")) == 6
    assert main(_args(tiny, out, "--allocate", "--budget-bits", "5",
                      "--allocate-bits", "2,4,8")) == 0
    doc2 = json.loads((out / "allocation.json").read_text())
    assert doc2["resumed_layers"] == ["conv", "fc"]
    assert doc2["curves"] == curves
    assert doc2["allocation"]["size_bits"] <= doc2["budget_bits"]
    assert "allocated within 5 bits" in capsys.readouterr().out


def test_bad_input(tiny, tmp_path, capsys):
    assert main(_args(tiny, tmp_path / "b", "--allocate")) == 2
    assert "--budget-bits" in capsys.readouterr().err
    assert main(_args(tiny, tmp_path / "b", "--allocate", "--budget-bits", "1",
                      "--allocate-bits", "2,4")) == 2
    assert "infeasible" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()  # checked before any work
    assert main(_args(tiny, tmp_path / "b", "--budget-bits", "3")) == 2
    assert "needs --allocate" in capsys.readouterr().err
    assert main(_args(tiny, tmp_path / "b", "--allocate", "--budget-bits", "3",
                      "--allocate-bits", "2,x")) == 2
    assert "comma-separated" in capsys.readouterr().err
