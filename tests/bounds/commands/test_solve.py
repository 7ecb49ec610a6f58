"""`pqbound solve`: JSON shape, solutions that recompute, clean errors with non-zero exit."""

import json

import numpy as np
import pytest
from problem_instances import random_hessian

from bounds.cli import main


@pytest.fixture()
def toy(tmp_path):
    rng = np.random.default_rng(0)
    H = random_hessian(rng, 8)
    W0 = rng.standard_normal((3, 8))
    path = tmp_path / "toy.npz"
    np.savez(path, H=H, W0=W0, layer="toy", chunk=0, input_start=0, input_stop=8, rows=24)
    return path, H, W0


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_quant_json_carries_recomputable_solutions(toy, capsys):
    path, H, W0 = toy
    code, out, _ = _run(capsys, "solve", "quant", path, "--bits", 3, "--method", "rtn", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["kind"] == "quant" and len(doc["channels"]) == 3
    total = 0.0
    for ch in doc["channels"]:
        w = np.array(ch["weights"])
        d = w - W0[ch["channel"]]
        assert np.isclose(ch["objective"], d @ H @ d, rtol=1e-12)
        assert ch["lower_bound"] is None and ch["status"] == "heuristic"
        assert all(-4 <= c <= 3 for c in ch["codes"])
        total += ch["objective"]
    assert np.isclose(doc["total"]["objective"], total)


def test_prune_json_one_channel(toy, capsys):
    path, H, W0 = toy
    code, out, _ = _run(capsys, "solve", "prune", path, "--density", 0.25,
                        "--method", "magnitude-refit", "--channel", 2, "--json")
    assert code == 0
    doc = json.loads(out)
    (ch,) = doc["channels"]
    assert ch["channel"] == 2 and sum(ch["mask"]) <= 2
    w = np.array(ch["weights"])
    assert np.all(w[~np.array(ch["mask"])] == 0)


def test_exact_prune_on_two_threads(toy, capsys):
    """``--option threads=2`` reaches the exact pruning search: the same certified optima as
    one thread; ``threads=0`` is a one-line error."""
    path, H, W0 = toy
    docs = []
    for threads in (1, 2):
        code, out, _ = _run(capsys, "solve", "prune", path, "--density", 0.5, "--json",
                            "--option", f"threads={threads}")
        assert code == 0
        docs.append(json.loads(out))
    for a, b in zip(docs[0]["channels"], docs[1]["channels"], strict=True):
        assert a["status"] == b["status"] == "optimal"
        assert np.isclose(a["objective"], b["objective"], rtol=1e-9, atol=1e-12)
        w = np.array(b["weights"])
        d = w - W0[b["channel"]]
        assert np.isclose(b["objective"], d @ H @ d, rtol=1e-9, atol=1e-12)
    code, _, err = _run(capsys, "solve", "prune", path, "--density", 0.5,
                        "--option", "threads=0")
    assert code == 2 and "threads must be an integer >= 1" in err


def test_human_output(toy, capsys):
    code, out, _ = _run(capsys, "solve", "quant", toy[0], "--method", "rtn", "--bits", 4)
    assert code == 0 and "total: error" in out


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--channel", "5"], "out of range"),
        (["--bits", "0"], "bits"),
        (["--scale", "-1"], "scale"),
        (["--method", "rtn", "--option", "nonsense"], "KEY=VALUE"),
    ],
)
def test_bad_input_exits_2(toy, capsys, argv, match):
    code, _, err = _run(capsys, "solve", "quant", toy[0], "--method", "rtn", *argv)
    assert code == 2 and match in err


def test_missing_and_malformed_files(tmp_path, capsys):
    code, _, err = _run(capsys, "solve", "quant", tmp_path / "nope.npz")
    assert code == 2 and "does not exist" in err
    bad = tmp_path / "bad.npz"
    np.savez(bad, H=np.array([[1.0, 0.0], [0.0, -2.0]]), W0=np.ones((1, 2)))
    code, _, err = _run(capsys, "solve", "prune", bad, "--density", 0.5)
    assert code == 2 and "semidefinite" in err


def test_prune_spec_errors(toy, capsys):
    code, _, err = _run(capsys, "solve", "prune", toy[0], "--nm", "2:3", "--method", "magnitude")
    assert code == 2 and "divide" in err
    code, _, err = _run(capsys, "solve", "prune", toy[0], "--density", 1.5)
    assert code == 2 and "density" in err


def test_unknown_option_is_a_clean_error(toy, capsys):
    code, _, err = _run(capsys, "solve", "quant", toy[0], "--method", "gptq",
                        "--option", "dampp=0.1")
    assert code == 2 and "no option dampp" in err and "damp" in err


@pytest.mark.parametrize(
    "kind, method, extra",
    [("quant", "gptq", ["--bits", "3"]), ("quant", "rtn", ["--bits", "4"]),
     ("prune", "sparsegpt", ["--density", "0.5"]), ("prune", "obs", ["--nm", "2:4"])],
)
def test_vectorised_layer_runs_equal_per_channel_solves(toy, kind, method, extra):
    """The CLI's whole-layer heuristic path gives what the registry gives channel by channel."""
    from bounds.channel_solve import PruneSpec, solve_prune_channels, solve_quant_channels
    from bounds.problem_file import load_problem
    from bounds.scale_choice import choose_scales
    from solvers.registry import solve

    lp = load_problem(toy[0])
    if kind == "quant":
        bits = int(extra[1])
        layer = solve_quant_channels(lp, bits=bits, method=method, channels=[2, 0])
        scales = choose_scales(lp, bits)
        single = [solve(lp.quant(c, scale=scales[c], bits=bits), method) for c in (2, 0)]
    else:
        spec = PruneSpec.from_options(density=0.5) if extra[0] == "--density" else \
            PruneSpec.from_options(nm="2:4")
        layer = solve_prune_channels(lp, spec, method=method, channels=[2, 0])
        single = [solve(lp.prune(c, **spec.keywords(lp.n)), method) for c in (2, 0)]
    assert [c for c, _ in layer] == [2, 0]
    for (_, a), b in zip(layer, single, strict=True):
        np.testing.assert_allclose(a.weights, b.weights, rtol=1e-9, atol=1e-12)
        assert a.objective == pytest.approx(b.objective, rel=1e-9, abs=1e-12)
