"""End-to-end figures of a compressed network against the original, with bootstrap intervals.

Outputs are compared sample by sample on held-out data (:mod:`layers.network.data`).

* **Classifiers** (the model returns logits ``z`` of shape (samples, K)), with ``p = softmax(z)``
  of the original and ``q`` of the compressed network:

  - top-1 agreement: the share of samples whose argmax is the same;
  - top-5 agreement: the share whose original top-1 class is among the compressed network's
    five highest (``K >= 5``);
  - KL divergence ``KL(p ‖ q) = Σ_k p_k (log p_k − log q_k)`` (nats), the mean over samples;
  - logit SQNR ``10·log10(Σ‖z‖² / Σ‖z − ẑ‖²)`` (sums over samples), in dB;
  - with labels: top-1 accuracy of both networks.

* **Sentence encoders** (a Hugging Face output with ``last_hidden_state``): the sentence
  embedding is the mean of the last hidden states over real tokens (the attention mask), as
  all-MiniLM-L6-v2's sentence-transformers pipeline computes it, normalised to unit length;

  - cosine similarity of each sentence's embedding to the original's, the mean;
  - the Spearman rank correlation between the original's and the compressed network's
    pairwise cosine similarities over all sentence pairs.

**Bootstrap** (every figure): ``resamples`` draws of the held-out samples with replacement
(``numpy.random.default_rng(seed)``); a figure is recomputed on each draw (ratios of sums and
rank correlations as a whole, not averaged), and the 95 % interval is the 2.5 and 97.5
percentiles. It measures the spread over the held-out samples only (the data's own
correlations, e.g. crops of the same photo, are not modelled).

Example
-------
>>> import numpy as np
>>> z = np.random.default_rng(0).standard_normal((50, 10))
>>> out = classifier_metrics(z, z, resamples=100)
>>> out["top1_agreement"]["value"], out["kl"]["value"]
(1.0, 0.0)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

#: Default number of bootstrap resamples.
RESAMPLES = 1000


def model_outputs(model: nn.Module, batches: Iterable) -> tuple[str, np.ndarray]:
    """``("logits", (samples, K))`` or ``("embedding", (samples, d) unit rows)`` of ``model``
    over ``batches`` (float64), in eval mode without gradients."""
    kinds, rows = set(), []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                if isinstance(batch, torch.Tensor):
                    out = model(batch)
                elif isinstance(batch, Mapping):
                    out = model(**batch)
                else:
                    out = model(*batch)
                kind, arr = _read_output(out, batch)
                kinds.add(kind)
                rows.append(arr)
    finally:
        model.train(was_training)
    if len(kinds) != 1:
        raise ValueError(f"the model's outputs changed kind between batches: {sorted(kinds)}")
    return kinds.pop(), np.concatenate(rows, axis=0)


def _read_output(out: Any, batch: Any) -> tuple[str, np.ndarray]:
    hidden = getattr(out, "last_hidden_state", None)
    if hidden is None and isinstance(out, Mapping):
        hidden = out.get("last_hidden_state")
    if hidden is not None:
        mask = batch.get("attention_mask") if isinstance(batch, Mapping) else None
        h = hidden.to(torch.float64)
        m = (torch.ones(h.shape[:2], dtype=torch.float64) if mask is None
             else mask.to(torch.float64))
        e = (h * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp_min(1.0)
        e = e / e.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return "embedding", e.numpy()
    if isinstance(out, (tuple, list)) and out:
        out = out[0]
    logits = getattr(out, "logits", out)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"end-to-end metrics need logits of shape (samples, classes) or a "
                         f"last_hidden_state, got {shape}")
    return "logits", logits.detach().to(torch.float64).numpy()


# ------------------------------------------------------------------------------ the figures


def _ci(stat, n: int, resamples: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    vals = np.array([stat(rng.integers(0, n, n)) for _ in range(int(resamples))])
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return float(lo), float(hi)


def _figure(stat, n: int, resamples: int, seed: int) -> dict[str, Any]:
    value = float(stat(np.arange(n)))
    lo, hi = _ci(stat, n, resamples, seed) if resamples > 0 else (float("nan"),) * 2
    return {"value": value, "ci95": [lo, hi]}


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _sqnr(signal: np.ndarray, noise: np.ndarray) -> float:
    if noise <= 0:
        return float("inf")
    return float(10.0 * np.log10(signal / noise))


def classifier_statistics(reference: np.ndarray, compressed: np.ndarray, *,
                          labels: Sequence[int] | None = None) -> dict[str, Any]:
    """Each classifier figure (module docstring) as a function of the sample indices."""
    z, zh = np.asarray(reference, dtype=float), np.asarray(compressed, dtype=float)
    if z.shape != zh.shape or z.ndim != 2:
        raise ValueError(f"logits of shapes {z.shape} and {zh.shape}: need equal (samples, K)")
    n, K = z.shape
    top = z.argmax(1)
    agree1 = (zh.argmax(1) == top).astype(float)
    lp, lq = _log_softmax(z), _log_softmax(zh)
    kl = np.maximum(0.0, (np.exp(lp) * (lp - lq)).sum(1))
    sig, err = (z ** 2).sum(1), ((z - zh) ** 2).sum(1)
    out = {
        "top1_agreement": lambda i: agree1[i].mean(),
        "kl": lambda i: kl[i].mean(),
        "logit_sqnr_db": lambda i: _sqnr(sig[i].sum(), err[i].sum()),
    }
    if K >= 5:
        top5 = np.argsort(-zh, axis=1)[:, :5]
        agree5 = (top5 == top[:, None]).any(1).astype(float)
        out["top5_agreement"] = lambda i: agree5[i].mean()
    if labels is not None:
        y = np.asarray(labels, dtype=np.int64)
        if y.shape != (n,):
            raise ValueError(f"{y.shape[0]} labels for {n} samples")
        ok0, ok1 = (top == y).astype(float), (zh.argmax(1) == y).astype(float)
        out["top1_accuracy_original"] = lambda i: ok0[i].mean()
        out["top1_accuracy"] = lambda i: ok1[i].mean()
    return out


def embedding_statistics(reference: np.ndarray, compressed: np.ndarray) -> dict[str, Any]:
    """Each sentence-encoder figure (module docstring) as a function of the sample indices."""
    from scipy.stats import spearmanr

    e, eh = np.asarray(reference, dtype=float), np.asarray(compressed, dtype=float)
    if e.shape != eh.shape or e.ndim != 2:
        raise ValueError(f"embeddings of shapes {e.shape} and {eh.shape}: need equal (n, d)")
    cos = (e * eh).sum(1)
    S, Sh = e @ e.T, eh @ eh.T

    def rank_corr(idx: np.ndarray) -> float:
        a, b = np.triu_indices(len(idx), 1)
        keep = idx[a] != idx[b]  # a sentence drawn twice is not a pair
        if keep.sum() < 3:
            return float("nan")
        x, y = S[idx[a], idx[b]][keep], Sh[idx[a], idx[b]][keep]
        return float(spearmanr(x, y).statistic)

    return {"cosine": lambda i: cos[i].mean(), "pairwise_spearman": rank_corr}


def statistics(kind: str, reference: np.ndarray, compressed: np.ndarray, *,
               labels: Sequence[int] | None = None) -> dict[str, Any]:
    """:func:`classifier_statistics` for ``"logits"``, :func:`embedding_statistics` else."""
    if kind == "logits":
        return classifier_statistics(reference, compressed, labels=labels)
    return embedding_statistics(reference, compressed)


def classifier_metrics(reference: np.ndarray, compressed: np.ndarray, *,
                       labels: Sequence[int] | None = None, resamples: int = RESAMPLES,
                       seed: int = 0) -> dict[str, Any]:
    """The classifier figures (module docstring) of logits ``compressed`` against
    ``reference`` (both (samples, K)), each ``{"value", "ci95"}``."""
    return compare_outputs("logits", reference, compressed, labels=labels,
                           resamples=resamples, seed=seed)


def embedding_metrics(reference: np.ndarray, compressed: np.ndarray, *,
                      resamples: int = RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """The sentence-encoder figures (module docstring) of unit embeddings (samples, d)."""
    return compare_outputs("embedding", reference, compressed, resamples=resamples, seed=seed)


def paired_difference(stat_a, stat_b, n: int, *, resamples: int = RESAMPLES,
                      seed: int = 0) -> dict[str, Any]:
    """``stat_a − stat_b`` on the same samples, with a paired bootstrap interval (both figures
    recomputed on each common resample): the confidence of a verdict between two networks."""
    return _figure(lambda i: stat_a(i) - stat_b(i), n, resamples, seed)


def compare_outputs(kind: str, reference: np.ndarray, compressed: np.ndarray, **kw: Any
                    ) -> dict[str, Any]:
    """Every figure of :func:`statistics` as ``{"value", "ci95"}``, plus ``samples``
    (``labels`` only for logits; ``resamples`` and ``seed`` of the bootstrap)."""
    resamples, seed = kw.pop("resamples", RESAMPLES), kw.pop("seed", 0)
    labels = kw.pop("labels", None)
    labels = labels if kind == "logits" else None
    if kw:
        raise TypeError(f"unexpected options {sorted(kw)}")
    stats = statistics(kind, reference, compressed, labels=labels)
    n = int(np.asarray(reference).shape[0])
    out: dict[str, Any] = {k: _figure(f, n, resamples, seed) for k, f in stats.items()}
    out["samples"] = n
    return out
