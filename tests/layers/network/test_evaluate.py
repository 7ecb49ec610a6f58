"""layers.network.evaluate and data: the figures against hand computations; the split."""

import numpy as np
import pytest
import torch

from layers.calibration import ImagePreprocessing
from layers.network import data
from layers.network.evaluate import classifier_metrics, compare_outputs, embedding_metrics


def test_classifier_figures_by_hand():
    z = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]])
    zh = np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 2.0]])
    out = classifier_metrics(z, zh, labels=[0, 1], resamples=200)
    assert out["top1_agreement"]["value"] == 0.5
    p = np.exp(z[0]) / np.exp(z[0]).sum()
    q = np.exp(zh[0]) / np.exp(zh[0]).sum()
    assert np.isclose(out["kl"]["value"], (p * np.log(p / q)).sum() / 2)
    assert np.isclose(out["logit_sqnr_db"]["value"], 10 * np.log10(10.0 / 2.0))
    assert out["top1_accuracy_original"]["value"] == 0.5 and out["top1_accuracy"]["value"] == 0
    assert "top5_agreement" not in out  # only 3 classes
    lo, hi = out["top1_agreement"]["ci95"]
    assert 0.0 <= lo <= 0.5 <= hi <= 1.0


def test_top5_and_interval_cover_the_value():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((200, 10))
    zh = z + 0.8 * rng.standard_normal((200, 10))
    out = classifier_metrics(z, zh, resamples=300)
    top = z.argmax(1)
    want = np.mean([t in np.argsort(-r)[:5] for t, r in zip(top, zh, strict=True)])
    assert out["top5_agreement"]["value"] == want
    for key in ("top1_agreement", "kl", "logit_sqnr_db"):
        lo, hi = out[key]["ci95"]
        assert lo <= out[key]["value"] <= hi and lo < hi


def test_embedding_figures():
    rng = np.random.default_rng(2)
    e = rng.standard_normal((12, 5))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    same = embedding_metrics(e, e, resamples=50)
    assert np.isclose(same["cosine"]["value"], 1.0)
    assert np.isclose(same["pairwise_spearman"]["value"], 1.0)
    noisy = e + 0.5 * rng.standard_normal(e.shape)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    out = embedding_metrics(e, noisy, resamples=50)
    assert np.isclose(out["cosine"]["value"], np.mean((e * noisy).sum(1)))
    assert out["pairwise_spearman"]["value"] < 1.0
    # as a run calls it: labels apply to classifiers only
    again = compare_outputs("embedding", e, noisy, labels=None, resamples=50, seed=0)
    assert again["cosine"] == out["cosine"]


def test_photo_split_shares_no_photo(monkeypatch):
    names = ["astronaut", "chelsea", "coffee", "rocket"]
    photos = [(n, np.full((40, 40, 3), 10 * i, dtype=np.uint8)) for i, n in enumerate(names)]
    monkeypatch.setattr(data, "builtin_photos", lambda: photos)
    s = data._photo_split(5, 3, 0, 2, ImagePreprocessing(size=32))
    cal = torch.cat(s.calibration)
    held = torch.cat(s.heldout)
    assert cal.shape == (5, 3, 32, 32) and held.shape == (3, 3, 32, 32)
    # constant photos: the pixel value says which photo a crop came from
    level = ImagePreprocessing(size=32)
    def photo(t):
        return int(round(float(t[0, 0, 0]) * level.std[0] * 255 + level.mean[0] * 255)) // 10
    assert {photo(t) for t in cal} == {0, 2}  # astronaut, coffee
    assert {photo(t) for t in held} == {1, 3}  # chelsea, rocket


def test_text_split_holds_out_every_fourth_sentence(monkeypatch):
    lines = [f"s{i}" for i in range(10)]
    monkeypatch.setattr(data, "builtin_sentences", lambda: lines)
    seen = []

    def tok(batch, **kw):
        seen.append(list(batch))
        return {"input_ids": torch.zeros(len(batch), 2, dtype=torch.long)}

    s = data._text_split(tok, None, 100, 100, 50, 8)
    assert seen == [[f"s{i}" for i in (0, 1, 2, 4, 5, 6, 8, 9)], ["s3", "s7"]]
    assert s.calibration_samples == 8 and s.heldout_samples == 2


def test_inputs_split_holds_out_the_last_quarter(tmp_path):
    path = tmp_path / "x.pt"
    torch.save(torch.arange(12.0)[:, None], path)
    s = data._inputs_split(path, 100, 100, 4)
    assert torch.cat(s.calibration).flatten().tolist() == list(range(9))
    assert torch.cat(s.heldout).flatten().tolist() == [9.0, 10.0, 11.0]
    with pytest.raises(Exception, match="at least 2"):
        torch.save(torch.zeros(1, 3), path)
        data._inputs_split(path, 4, 4, 4)
