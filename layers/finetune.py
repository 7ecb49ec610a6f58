"""Fine-tuning at CPU scale: distillation-driven QAT (LSQ) and gradual magnitude pruning.

The paper's third part (Kuzmin et al. 2023, §5) fine-tunes whole compressed networks: quantization
with a learned step size against gradual magnitude pruning. Here both run as **knowledge
distillation** from the uncompressed model (the *teacher*) on unlabelled calibration batches, so no
labels are needed::

    loss = T² · KL(softmax(t/T) ‖ softmax(s/T))          (``loss="kl"``, logits; Hinton et al.)
    loss = ‖s − t‖² / ‖t‖²                                (``loss="mse"``, e.g. embeddings)

averaged over the batch, with ``t`` and ``s`` the teacher's and the student's outputs. Only the
compressed layers' weights (and, for QAT, their steps) are trained; every other parameter is
frozen and the student stays in ``eval`` mode (batch-norm statistics and dropout fixed), so a run
is deterministic for a given seed and batch order. Adam with a cosine-decayed learning rate.

* :func:`qat` — LSQ (Esser et al. 2020): each chosen layer's weight becomes
  ``ŵ = s_c · clamp(⌊w/s_c⌉, q_min, q_max)`` with a learned step ``s_c`` per output channel,
  rounding passed straight through (its gradient taken as 1) and the step's gradient scaled by
  ``1/√(n_c·q_max)``. The latent weights start at the student's current weights and the steps at
  the given post-training scales, so step 0 *is* the post-training solution when that solution
  lies on the given grid (start from the best post-training result: RTN, GPTQ, the exact solver).
  Export writes ``s_c·z`` with integer codes ``z`` in range (:attr:`FinetuneResult.codes`).
* :func:`gmp` — gradual magnitude pruning (Zhu & Gupta 2017) to density ``d`` per output channel
  (``k = round(d·n)`` kept weights, pqbound's pruning convention): every ``every`` steps during the
  first ``ramp`` fraction of the steps the channel keeps its ``k_t`` largest-magnitude surviving
  weights, with the cubic schedule ``sparsity_t = s_f + (s_i − s_f)·(1 − t/t_ramp)³``, ``s_i`` the
  sparsity the student starts with; pruned weights stay zero. Started from a post-training pruned
  solution at the target density (``s_i = s_f``) the schedule is flat and GMP is masked
  fine-tuning of that solution; started dense, it is the paper's GMP.

Both return a :class:`FinetuneResult` and leave the student with plain weights (parametrizations
removed), so ``student.state_dict()`` has exactly the original keys.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from .errors import CalibrationError
from .export import resolve_layers
from .unfold import LayerSpec

log = logging.getLogger(__name__)

LOSSES = ("kl", "mse")


@dataclass
class FinetuneResult:
    """What a fine-tuning run did.

    Attributes
    ----------
    losses : the distillation loss at every step (before that step's update).
    layers : the fine-tuned layers' names.
    codes : QAT only: per layer the integer codes (``channels × n``, int64).
    steps : QAT only: per layer the learned steps (``channels``).
    nonzeros : per layer the nonzeros per channel after export.
    """

    losses: list[float]
    layers: list[str]
    codes: dict[str, torch.Tensor] = field(default_factory=dict)
    steps: dict[str, torch.Tensor] = field(default_factory=dict)
    nonzeros: dict[str, torch.Tensor] = field(default_factory=dict)


# ------------------------------------------------------------------------- parametrizations


def _rows(w: torch.Tensor, spec: LayerSpec) -> torch.Tensor:
    """The weight as (channels, n), a view in the layer's own layout."""
    return (w.t() if spec.kind == "transformer_conv1d" else w).reshape(spec.channels, spec.n)


def _unrows(r: torch.Tensor, spec: LayerSpec) -> torch.Tensor:
    if spec.kind == "transformer_conv1d":
        return r.reshape(spec.weight_shape[::-1]).t()
    return r.reshape(spec.weight_shape)


class LSQ(nn.Module):
    """``w ↦ s_c·clamp(⌊w/s_c⌉, q_min, q_max)`` with straight-through rounding (LSQ)."""

    def __init__(self, spec: LayerSpec, bits: int, step: torch.Tensor) -> None:
        super().__init__()
        self.spec = spec
        self.qmin, self.qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        self.step = nn.Parameter(step.detach().clone().reshape(spec.channels, 1))
        self.grad_scale = 1.0 / math.sqrt(spec.n * max(self.qmax, 1))

    def codes(self, w: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.round(_rows(w, self.spec) / self.step), self.qmin, self.qmax)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        g = self.grad_scale
        s = (self.step - self.step * g).detach() + self.step * g  # value s, gradient scaled by g
        z = torch.clamp(_rows(w, self.spec) / s, self.qmin, self.qmax)
        z = z + (torch.round(z) - z).detach()  # straight-through rounding
        return _unrows(z * s, self.spec)


class Mask(nn.Module):
    """``w ↦ w ⊙ m`` with a fixed 0/1 mask (updated between steps by :func:`gmp`)."""

    def __init__(self, spec: LayerSpec, mask: torch.Tensor) -> None:
        super().__init__()
        self.spec = spec
        self.register_buffer("mask", mask.to(torch.float32).reshape(spec.channels, spec.n))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return _unrows(_rows(w, self.spec) * self.mask, self.spec)


# ------------------------------------------------------------------------------ distillation


def distill_loss(student_out: torch.Tensor, teacher_out: torch.Tensor, *, loss: str = "kl",
                 temperature: float = 1.0) -> torch.Tensor:
    """The distillation loss (see the module docstring), averaged over the batch."""
    s = student_out.reshape(student_out.shape[0], -1)
    t = teacher_out.reshape(teacher_out.shape[0], -1).detach()
    if loss == "kl":
        T = temperature
        return F.kl_div(F.log_softmax(s / T, dim=1), F.log_softmax(t / T, dim=1),
                        log_target=True, reduction="batchmean") * T * T
    return (((s - t) ** 2).sum(dim=1) / (t ** 2).sum(dim=1).clamp_min(1e-30)).mean()


def mean_distill_loss(student: nn.Module, teacher: nn.Module, batches: Iterable, *,
                      loss: str = "kl", temperature: float = 1.0,
                      output: Callable[[Any], torch.Tensor] | None = None) -> float:
    """The mean of :func:`distill_loss` over ``batches`` (no update, no gradients)."""
    out = output or _default_output
    with torch.no_grad():
        vals = [float(distill_loss(out(_call(student, b)), out(_call(teacher, b)), loss=loss,
                                   temperature=temperature)) for b in batches]
    return sum(vals) / len(vals) if vals else float("nan")


def _call(model: nn.Module, batch: Any) -> torch.Tensor:
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def _check(steps: int, lr: float, loss: str, temperature: float) -> None:
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise CalibrationError(f"steps must be an integer >= 0, got {steps!r}")
    if not (math.isfinite(lr) and lr > 0):
        raise CalibrationError(f"learning rate must be > 0, got {lr!r}")
    if loss not in LOSSES:
        raise CalibrationError(f"loss must be one of {LOSSES}, got {loss!r}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise CalibrationError(f"temperature must be > 0, got {temperature!r}")


def distill(student: nn.Module, teacher: nn.Module, batches: Iterable, *, steps: int,
            params: Sequence[nn.Parameter], lr: float = 1e-4, loss: str = "kl",
            temperature: float = 1.0,
            output: Callable[[Any], torch.Tensor] | None = None,
            before_step: Callable[[int], None] | None = None) -> list[float]:
    """Train ``params`` of ``student`` for ``steps`` Adam steps to match ``teacher``'s outputs.

    ``batches`` is cycled (re-iterated) as needed; ``output`` maps a model's return value to
    the tensor compared (default: the value itself, or its first element for tuples and its
    ``logits`` / ``last_hidden_state`` attribute). ``before_step(t)`` runs before step ``t``
    (GMP's mask updates). Returns the loss at every step, before that step's update.
    """
    _check(steps, lr, loss, temperature)
    out = output or _default_output
    teacher.eval()
    student.eval()
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: 0.5 * (1 + math.cos(math.pi * t / max(steps, 1))))
    losses: list[float] = []
    source = itertools.cycle(batches) if steps else iter(())
    for t in range(steps):
        batch = next(source)
        if before_step is not None:
            before_step(t)
        with torch.no_grad():
            target = out(_call(teacher, batch))
        value = distill_loss(out(_call(student, batch)), target, loss=loss,
                             temperature=temperature)
        if not torch.isfinite(value):
            raise CalibrationError(f"distillation loss became {float(value.detach())} at step {t}; "
                                   "lower the learning rate")
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        sched.step()
        losses.append(float(value.detach()))
        if t % 25 == 0 or t == steps - 1:
            log.info("fine-tune step %d/%d: loss %.4g", t + 1, steps, losses[-1])
    return losses


def _default_output(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    for attr in ("logits", "last_hidden_state"):
        if getattr(value, attr, None) is not None:
            return getattr(value, attr)
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    raise CalibrationError(f"cannot read a tensor from the model's output ({type(value)}); "
                           "pass output=")


def _prepare(student: nn.Module, layers: Sequence[str] | None) -> list[LayerSpec]:
    specs = resolve_layers(student, layers)
    for p in student.parameters():
        p.requires_grad_(False)
    for s in specs:
        if parametrize.is_parametrized(s.module, "weight"):
            raise CalibrationError(f"layer {s.name!r} is already parametrized")
    return specs


# ------------------------------------------------------------------------------------- QAT


def qat(student: nn.Module, teacher: nn.Module, batches: Iterable, *, bits: int,
        scales: Mapping[str, Any], steps: int = 100, lr: float = 1e-4, loss: str = "kl",
        temperature: float = 1.0, output: Callable[[Any], torch.Tensor] | None = None,
        seed: int = 0) -> FinetuneResult:
    """LSQ quantization-aware training of the layers in ``scales`` by distillation.

    Parameters
    ----------
    student : the model holding the post-training quantized weights (changed in place).
    teacher : the uncompressed model.
    batches : unlabelled inputs (cycled).
    bits : signed symmetric grid ``{−2^(b−1), …, 2^(b−1)−1}``.
    scales : layer name → its post-training scale (a scalar or one per output channel): the
        steps' initial values.
    steps, lr, loss, temperature, output : see :func:`distill`.
    seed : ``torch.manual_seed`` before training.

    Returns
    -------
    FinetuneResult with the codes and learned steps; the student's weights are then exactly
    ``steps[c]·codes[c]`` (float32) in every fine-tuned layer.
    """
    if isinstance(bits, bool) or int(bits) != bits or not 2 <= bits <= 16:
        raise CalibrationError(f"bits must be an integer in 2..16, got {bits!r}")
    torch.manual_seed(seed)
    specs = _prepare(student, list(scales))
    params: list[nn.Parameter] = []
    quantizers = {}
    for s in specs:
        step = torch.as_tensor(scales[s.name], dtype=torch.float32).reshape(-1)
        if step.numel() == 1:
            step = step.expand(s.channels)
        if step.shape != (s.channels,) or not bool(torch.all(step > 0)):
            raise CalibrationError(f"layer {s.name!r}: scale must be positive, a scalar or "
                                   f"one per channel ({s.channels})")
        q = LSQ(s, int(bits), step)
        parametrize.register_parametrization(s.module, "weight", q)
        latent = s.module.parametrizations.weight.original
        latent.requires_grad_(True)
        params += [latent, q.step]
        quantizers[s.name] = (s, q)
    losses: list[float] = []
    try:
        losses = distill(student, teacher, batches, steps=steps, params=params, lr=lr,
                         loss=loss, temperature=temperature, output=output)
    finally:
        result = FinetuneResult(losses=[], layers=[s.name for s in specs])
        for name, (s, q) in quantizers.items():
            with torch.no_grad():
                q.step.clamp_(min=torch.finfo(torch.float32).tiny)
                codes = q.codes(s.module.parametrizations.weight.original)
                step = q.step.detach().reshape(-1).clone()
            parametrize.remove_parametrizations(s.module, "weight", leave_parametrized=False)
            with torch.no_grad():
                s.module.weight.copy_(_unrows(codes * step[:, None], s))
            s.module.weight.requires_grad_(False)
            result.codes[name] = codes.to(torch.int64)
            result.steps[name] = step
            result.nonzeros[name] = (codes != 0).sum(dim=1)
    result.losses = losses
    return result


# ------------------------------------------------------------------------------------- GMP


def cubic_sparsity(t: int, *, initial: float, final: float, ramp_steps: int) -> float:
    """Zhu & Gupta's schedule: ``final + (initial − final)·(1 − t/ramp_steps)³`` (t clipped).

    >>> cubic_sparsity(0, initial=0.0, final=0.75, ramp_steps=10)
    0.0
    >>> cubic_sparsity(10, initial=0.0, final=0.75, ramp_steps=10)
    0.75
    """
    if ramp_steps <= 0:
        return final
    frac = min(max(t / ramp_steps, 0.0), 1.0)
    return final + (initial - final) * (1.0 - frac) ** 3


def gmp(student: nn.Module, teacher: nn.Module, batches: Iterable, *, density: float,
        layers: Sequence[str] | None = None, steps: int = 100, ramp: float = 0.75,
        every: int = 5, lr: float = 1e-4, loss: str = "kl", temperature: float = 1.0,
        output: Callable[[Any], torch.Tensor] | None = None, seed: int = 0) -> FinetuneResult:
    """Gradual magnitude pruning to ``density`` per output channel, trained by distillation.

    Parameters
    ----------
    student : the model to prune (dense, or a post-training pruned solution), changed in place.
    teacher : the uncompressed model.
    batches : unlabelled inputs (cycled).
    density : final kept fraction per channel, ``k = round(density·n)`` (in [0, 1]).
    layers : the layers to prune (default: every Linear / Conv / Conv1D layer).
    steps : training steps; the mask is updated every ``every`` steps during the first
        ``ramp·steps`` steps (and reaches ``k`` at the end of the ramp at the latest).
    lr, loss, temperature, output, seed : see :func:`distill` and :func:`qat`.

    Returns
    -------
    FinetuneResult; every pruned channel then has at most ``k`` nonzeros.
    """
    if not (isinstance(density, (int, float)) and 0.0 <= density <= 1.0):
        raise CalibrationError(f"density must be in [0, 1], got {density!r}")
    if not 0.0 <= ramp <= 1.0:
        raise CalibrationError(f"ramp must be in [0, 1], got {ramp!r}")
    if int(every) != every or every < 1:
        raise CalibrationError(f"every must be a positive integer, got {every!r}")
    torch.manual_seed(seed)
    specs = _prepare(student, layers)
    masks: list[tuple[LayerSpec, Mask, int, float]] = []
    params: list[nn.Parameter] = []
    for s in specs:
        w = _rows(s.module.weight.detach(), s)
        start_sparsity = float((w == 0).float().mean())
        m = Mask(s, w != 0)
        parametrize.register_parametrization(s.module, "weight", m)
        latent = s.module.parametrizations.weight.original
        latent.requires_grad_(True)
        params.append(latent)
        masks.append((s, m, int(round(density * s.n)), start_sparsity))
    ramp_steps = int(math.floor(ramp * steps))

    def update(t: int) -> None:
        if t % every and t != ramp_steps:
            return
        if t > ramp_steps:
            return
        for s, m, k, s0 in masks:
            final = 1.0 - k / s.n
            keep = s.n - int(round(cubic_sparsity(t, initial=min(s0, final), final=final,
                                                  ramp_steps=ramp_steps) * s.n))
            keep = max(keep, k) if t < ramp_steps else k
            _prune_to(s, m, keep)

    losses: list[float] = []
    try:
        losses = distill(student, teacher, batches, steps=steps, params=params, lr=lr,
                         loss=loss, temperature=temperature, output=output,
                         before_step=update)
    finally:
        result = FinetuneResult(losses=[], layers=[s.name for s in specs])
        for s, m, k, _ in masks:
            _prune_to(s, m, k)  # the final density whatever the schedule reached (steps = 0)
            parametrize.remove_parametrizations(s.module, "weight", leave_parametrized=True)
            s.module.weight.requires_grad_(False)
            result.nonzeros[s.name] = (_rows(s.module.weight.detach(), s) != 0).sum(dim=1)
    result.losses = losses
    return result


def _prune_to(spec: LayerSpec, m: Mask, keep: int) -> None:
    """Keep at most ``keep`` surviving weights per channel, the largest in magnitude."""
    with torch.no_grad():
        w = _rows(spec.module.parametrizations.weight.original, spec).abs() * m.mask
        if keep >= spec.n:
            return
        if keep <= 0:
            m.mask.zero_()
            return
        # ties broken by position (stable sort), so the mask is deterministic
        order = torch.argsort(w, dim=1, descending=True, stable=True)
        new = torch.zeros_like(m.mask)
        new.scatter_(1, order[:, :keep], 1.0)
        m.mask.mul_(new)
