"""``pqbound network --allocate`` and ``--finetune`` on a tiny user network.

Allocation: the knapsack's optimum over the stored curves, within the budget, every network it
reports measured, resumed from the store. Fine-tuning: before/after figures per size and family,
the training loss falls, the fine-tuned networks on their grid / within their density, strict
state dicts."""

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
            "--resamples", "20", "--quiet", "--out", str(out), *extra]


def test_allocation_is_the_knapsack_optimum(tiny, tmp_path, capsys):
    out = tmp_path / "a"
    assert main(_args(tiny, out, "--method", "gptq", "--allocate", "--budget-bits", "3",
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
    assert main(_args(tiny, out, "--method", "gptq", "--allocate", "--budget-bits", "5",
                      "--allocate-bits", "2,4,8")) == 0
    doc2 = json.loads((out / "allocation.json").read_text())
    assert doc2["resumed_layers"] == ["conv", "fc"]
    assert doc2["curves"] == curves
    assert doc2["allocation"]["size_bits"] <= doc2["budget_bits"]
    assert "allocated within 5 bits" in capsys.readouterr().out


def test_allocation_with_certified_bounds(tiny, tmp_path):
    """--allocate-bounds quant:exact: every curve point holds the better of the two stored
    solutions and the exact solver's proved bound; the allocation's floor is the least summed
    bound within the budget (brute force), below every allocation's summed error."""
    out = tmp_path / "c"
    assert main(_args(tiny, out, "--method", "gptq", "--allocate", "--budget-bits", "3",
                      "--allocate-bits", "2,4", "--allocate-bounds", "quant:exact",
                      "--time-limit", "0.5")) == 0
    doc = json.loads((out / "allocation.json").read_text())
    assert doc["bounds_from"] == "quant:exact"
    with ResultStore(out / "results.sqlite", readonly=True) as st:
        rows = st.rows(scope="network")
    assert len(rows) == 8  # 2 layers x 2 sizes x 2 methods
    for c in doc["curves"]:
        for o in c["options"]:
            bits = int(o["label"].split()[0])
            mine = {r["method"]: r for r in rows
                    if r["layer"] == c["layer"] and r["bits"] == bits}
            assert set(mine) == {"gptq", "exact"}
            norm = mine["exact"]["norm"]
            best = min(mine["gptq"]["objective"], mine["exact"]["objective"])
            assert o["error"] == pytest.approx(best / norm, rel=1e-12)
            assert o["bound"] is not None
            assert o["bound"] == pytest.approx(
                min(mine["exact"]["lower_bound"] / norm, o["error"]), rel=1e-12)
            assert o["bound"] <= o["error"] * (1 + 1e-9)
    a, budget = doc["allocation"], doc["budget_bits"]
    floor = min(sum(o["bound"] for o in combo)
                for combo in itertools.product(*(c["options"] for c in doc["curves"]))
                if sum(o["size_bits"] for o in combo) <= budget)
    assert a["lower_bound"] == pytest.approx(floor, rel=1e-12)
    assert 0.0 < a["lower_bound"] <= a["summed_error"]
    for net in doc["networks"]:
        if net["bits_per_weight"] <= 3:
            assert net["summed_error"] >= a["lower_bound"] * (1 - 1e-9)


def test_allocate_bad_input(tiny, tmp_path, capsys):
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
    for extra, message in ((("--allocate-bounds", "obq"), "not a certified method"),
                           (("--allocate-bounds", "prune:exact"), "cannot bound"),
                           (("--allocate-bounds", "nope"), "unknown method")):
        assert main(_args(tiny, tmp_path / "b", "--method", "gptq", "--allocate",
                          "--budget-bits", "3", *extra)) == 2
        assert message in capsys.readouterr().err
    assert main(_args(tiny, tmp_path / "b", "--method", "gptq", "--allocate-bounds",
                      "quant:exact")) == 2
    assert "needs --allocate" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_finetune_both_families(tiny, tmp_path, capsys):
    out = tmp_path / "f"
    assert main(_args(tiny, out, "--finetune", "15", "--finetune-bits", "3",
                      "--finetune-methods", "rtn,magnitude", "--finetune-lr", "1e-3")) == 0
    doc = json.loads((out / "finetune.json").read_text())
    assert [(r["family"], r["compression"]) for r in doc["runs"]] == [
        ("quantization", "int3"), ("pruning", "d0.1875")]
    keys = set(torch.load(tiny[1]))
    for r in doc["runs"]:
        assert set(r["before"]) == set(r["after"])
        assert r["train_loss_after"] < r["train_loss_before"]
        assert len(r["step_losses"]) == 15
        sd = torch.load(out / f"{r['folder'].split('/')[-1]}" / "finetuned_state_dict.pt")
        assert set(sd) == keys
    q = torch.load(out / "quant-3bit" / "finetuned_state_dict.pt")
    for name in ("conv.weight", "fc.weight"):  # at most 2^3 levels per output channel
        w = q[name].reshape(q[name].shape[0], -1)
        assert max(len(torch.unique(row)) for row in w) <= 8
    p = torch.load(out / "prune-3bit" / "finetuned_state_dict.pt")
    k = round(0.1875 * 4)
    assert int((p["fc.weight"] != 0).sum(dim=1).max()) <= k
    assert "fine-tuned 15 steps" in capsys.readouterr().out


def test_finetune_bad_input(tiny, tmp_path, capsys):
    assert main(_args(tiny, tmp_path / "b", "--finetune", "-1")) == 2
    assert "STEPS" in capsys.readouterr().err
    assert main(_args(tiny, tmp_path / "b", "--finetune", "5", "--finetune-methods",
                      "magnitude,rtn")) == 2
    assert "quantization then a pruning" in capsys.readouterr().err
    assert main(_args(tiny, tmp_path / "b", "--finetune", "5", "--allocate")) == 2
    assert not (tmp_path / "b").exists()
