"""``pqbound network --finetune STEPS``: the paper's third part at CPU scale.

For every size ``b`` of ``bits``:

1. the best post-training solution of each family — a ``pqbound network`` run
   (:func:`bounds.network.run.run_network`, results store shared, so finished layers resume)
   with the quantization method at ``b`` bits and with the pruning method at the equal-size
   density ``b/16``;
2. fine-tuning by distillation from the uncompressed model on the *calibration* batches (the
   held-out set is never trained on): LSQ QAT from the quantized network with steps starting
   at its per-channel MSE scales (:func:`layers.finetune.qat`), and gradual magnitude pruning
   from the pruned network (:func:`layers.finetune.gmp`: its mask at the target density is
   kept, so the cubic schedule is flat and GMP fine-tunes the surviving weights), for ``steps``
   Adam steps each, images resized to ``size``² (low resolution to fit two cores; MobileNetV2
   pools globally, so any size runs);
3. the end-to-end figures on the held-out set before and after, at the model's own resolution.

``DIR/finetune.json`` holds every figure; ``DIR/<family>-<b>bit/`` the post-training run's files
and ``finetuned_state_dict.pt`` (exactly the model's keys).
"""

from __future__ import annotations

import copy
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from solvers.problem import ProblemError

from ..export import _as_problem_error, check_writable
from ..provenance import versions
from .layer_solve import layer_scales
from .run import _write_json, prepare, run_network, select
from .settings import NetworkConfig

log = logging.getLogger(__name__)

#: Default post-training methods the fine-tuning starts from.
DEFAULT_METHODS = ("gptq", "sparsegpt")
#: Default fine-tuning image size (pixels).
DEFAULT_SIZE = 128


def resize_batches(batches: list, size: int | None) -> list:
    """Image batches (N×3×H×W tensors) resized to ``size``² (antialiased bilinear); other
    batches unchanged."""
    import torch
    import torch.nn.functional as F

    if size is None:
        return batches
    out = []
    for b in batches:
        if isinstance(b, torch.Tensor) and b.ndim == 4 and b.shape[-1] != size:
            b = F.interpolate(b, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=True)
        out.append(b)
    return out


def run_finetune(cfg: NetworkConfig, out: str | os.PathLike[str], *, steps: int,
                 bits: tuple[int, ...] | None = None,
                 methods: tuple[str, str] = DEFAULT_METHODS, size: int | None = DEFAULT_SIZE,
                 lr: float = 1e-4, db: str | os.PathLike[str] | None = None,
                 progress: bool = False) -> dict[str, Any]:
    """Post-training solution, then QAT / GMP, per size; returns ``DIR/finetune.json``."""
    from layers.finetune import gmp, mean_distill_loss, qat
    from layers.network.compress import save_state_dict, snapshot
    from layers.network.evaluate import compare_outputs, model_outputs

    t0 = time.perf_counter()
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise ProblemError(f"--finetune STEPS must be an integer >= 0, got {steps!r}")
    if size is not None and (int(size) != size or size < 32):
        raise ProblemError(f"--finetune-size must be an integer >= 32, got {size!r}")
    if not (lr > 0):
        raise ProblemError(f"--finetune-lr must be > 0, got {lr!r}")
    sizes = tuple(sorted(set(int(b) for b in (bits or (cfg.bits,)))))
    runs = []
    for b in sizes:
        q = replace(cfg, method=methods[0], bits=b, density=None, nm=None).checked()
        p = replace(cfg, method=methods[1], bits=b, density=None, nm=None).checked()
        if q.kind != "quant" or p.kind != "prune":
            raise ProblemError(f"--finetune-methods needs a quantization then a pruning method, "
                               f"got {methods[0]!r}, {methods[1]!r}")
        runs += [q, p]
    out = check_writable(out)
    prepared = prepare(runs[0])
    loaded, split, labels = prepared
    module = loaded.module
    specs = select(runs[0], module)
    original = snapshot(module)
    teacher = copy.deepcopy(module).eval()
    with _as_problem_error():
        kind, ref = model_outputs(module, split.heldout)
    train = resize_batches(list(split.calibration), size if split.kind == "image" else None)
    loss = "kl" if kind == "logits" else "mse"
    results = []
    for c in runs:
        module.load_state_dict(original)
        family = "quantization" if c.kind == "quant" else "pruning"
        sub = out / f"{c.kind}-{c.bits}bit"
        scales = ({s.name: layer_scales(s.weight_matrix(full_precision=c.full_precision),
                                        c.bits, c.scale) for s in specs}
                  if c.kind == "quant" else None)
        summary = run_network(c, sub, db=db if db is not None else out / "results.sqlite",
                              progress=progress, prepared=prepared, reference=(kind, ref))
        t1 = time.perf_counter()
        before_loss = mean_distill_loss(module, teacher, train, loss=loss)
        with _as_problem_error():
            if c.kind == "quant":
                res = qat(module, teacher, train, bits=c.bits, scales=scales, steps=steps,
                          lr=lr, loss=loss, seed=c.seed)
            else:
                res = gmp(module, teacher, train, density=c.target_density,
                          layers=[s.name for s in specs], steps=steps, lr=lr, loss=loss,
                          seed=c.seed)
            _, outputs = model_outputs(module, split.heldout)
        seconds = time.perf_counter() - t1
        after_loss = mean_distill_loss(module, teacher, train, loss=loss)
        after = compare_outputs(kind, ref, outputs, labels=labels, resamples=c.resamples,
                                seed=c.seed)
        save_state_dict(module, sub / "finetuned_state_dict.pt")
        results.append({
            "family": family, "method": c.method, "bits_per_weight": c.bits_per_weight,
            "compression": c.compression, "before": summary["metrics"], "after": after,
            "train_loss_before": before_loss, "train_loss_after": after_loss,
            "step_losses": [round(v, 6) for v in res.losses],
            "nonzeros": int(sum(int(v.sum()) for v in res.nonzeros.values())),
            "post_training_seconds": summary["seconds"], "finetune_seconds": round(seconds, 3),
            "folder": str(sub),
        })
        log.info("%s %s: fine-tuned %d steps in %.1f s", family, c.compression, steps, seconds)
    module.load_state_dict(original)
    doc = {"command": "network --finetune", "model": loaded.name, "weights": cfg.weights,
           "steps": steps, "size": size if split.kind == "image" else None, "lr": lr,
           "loss": loss, "methods": list(methods), "bits": list(sizes),
           "settings": cfg.as_dict(), "split": split.describe(), "outputs": kind,
           "runs": results, "seconds": round(time.perf_counter() - t0, 3),
           "versions": versions()}
    _write_json(Path(out) / "finetune.json", doc)
    return doc
