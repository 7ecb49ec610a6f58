"""Fine-tuning by distillation on a tiny network: QAT stays on its grid, GMP reaches its density,
the loss goes down on a fixed batch (fixed seeds, no timing)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from layers.errors import CalibrationError
from layers.finetune import cubic_sparsity, distill_loss, gmp, qat


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = torch.relu(self.dw(torch.relu(self.conv(x))))
        return self.fc(x.mean(dim=(2, 3)))


def _setup(seed=0):
    torch.manual_seed(seed)
    teacher = Tiny().eval()
    batch = torch.randn(16, 3, 8, 8)
    return teacher, batch


def _rtn(model, bits):
    """Per-channel RTN in place; returns the scales (the 'post-training solution')."""
    qmax = 2 ** (bits - 1) - 1
    scales = {}
    for name in ("conv", "dw", "fc"):
        m = getattr(model, name)
        w = m.weight.detach().reshape(m.weight.shape[0], -1)
        s = w.abs().amax(dim=1) / qmax
        with torch.no_grad():
            z = torch.clamp(torch.round(w / s[:, None]), -qmax - 1, qmax)
            m.weight.copy_((z * s[:, None]).reshape(m.weight.shape))
        scales[name] = s
    return scales


def test_qat_stays_on_grid_and_reduces_loss():
    teacher, batch = _setup()
    student = copy.deepcopy(teacher)
    scales = _rtn(student, 3)
    keys = set(student.state_dict())
    with torch.no_grad():
        before = float(distill_loss(student(batch), teacher(batch)))
    res = qat(student, teacher, [batch], bits=3, scales=scales, steps=40, lr=3e-3)
    assert set(student.state_dict()) == keys  # parametrizations removed, same keys
    # the first loss is the post-training solution's (the latent starts on the grid)
    assert res.losses[0] == pytest.approx(before, rel=1e-5)
    with torch.no_grad():
        after = float(distill_loss(student(batch), teacher(batch)))
    assert after < 0.7 * before
    for name in ("conv", "dw", "fc"):
        m = getattr(student, name)
        w = m.weight.detach().reshape(m.weight.shape[0], -1)
        codes, step = res.codes[name], res.steps[name]
        assert codes.dtype == torch.int64
        assert int(codes.min()) >= -4 and int(codes.max()) <= 3
        assert torch.equal(w, codes.to(torch.float32) * step[:, None])
        z = w / step[:, None]
        assert torch.allclose(z, torch.round(z), atol=1e-4)
        assert bool(torch.all(step > 0))


def test_gmp_reaches_density_and_reduces_loss():
    teacher, batch = _setup(1)
    student = copy.deepcopy(teacher)
    keys = set(student.state_dict())
    res = gmp(student, teacher, [batch], density=0.25, steps=40, lr=3e-3, every=4)
    assert set(student.state_dict()) == keys
    for name, m in (("conv", student.conv), ("dw", student.dw), ("fc", student.fc)):
        w = m.weight.detach().reshape(m.weight.shape[0], -1)
        k = round(0.25 * w.shape[1])
        assert int((w != 0).sum(dim=1).max()) <= k
        assert torch.equal(res.nonzeros[name], (w != 0).sum(dim=1))
    # the loss falls after the ramp ends (the ramp itself raises it as weights go)
    ramp_end = int(0.75 * 40)
    assert res.losses[-1] < res.losses[ramp_end]
    # loss on the fixed batch: better than plain magnitude pruning of the teacher at that density
    plain = copy.deepcopy(teacher)
    for m in (plain.conv, plain.dw, plain.fc):
        w = m.weight.detach().reshape(m.weight.shape[0], -1)
        k = round(0.25 * w.shape[1])
        keep = torch.zeros_like(w)
        keep.scatter_(1, w.abs().argsort(dim=1, descending=True)[:, :k], 1.0)
        with torch.no_grad():
            m.weight.copy_((w * keep).reshape(m.weight.shape))
    with torch.no_grad():
        assert float(distill_loss(student(batch), teacher(batch))) < float(
            distill_loss(plain(batch), teacher(batch)))


def test_gmp_from_pruned_start_keeps_its_mask():
    teacher, batch = _setup(2)
    student = copy.deepcopy(teacher)
    with torch.no_grad():
        student.fc.weight[:, 4:] = 0.0  # a 'post-training' solution at density 0.5
    res = gmp(student, teacher, [batch], density=0.5, layers=["fc"], steps=10, lr=1e-3)
    assert bool(torch.all(student.fc.weight[:, 4:] == 0))
    assert torch.equal(res.nonzeros["fc"], torch.full((10,), 4))
    assert torch.equal(student.conv.weight, teacher.conv.weight)  # other layers untouched


def test_deterministic():
    teacher, batch = _setup(3)
    runs = []
    for _ in range(2):
        student = copy.deepcopy(teacher)
        runs.append(gmp(student, teacher, [batch], density=0.5, steps=6, lr=1e-3).losses)
    assert runs[0] == runs[1]


def test_cubic_schedule():
    vals = [cubic_sparsity(t, initial=0.0, final=0.8, ramp_steps=10) for t in range(12)]
    assert vals[0] == 0.0 and vals[10] == pytest.approx(0.8) and vals[11] == pytest.approx(0.8)
    assert all(a <= b for a, b in zip(vals, vals[1:], strict=False))


def test_bad_input():
    teacher, batch = _setup()
    student = copy.deepcopy(teacher)
    with pytest.raises(CalibrationError, match="density"):
        gmp(student, teacher, [batch], density=1.5)
    with pytest.raises(CalibrationError, match="bits"):
        qat(student, teacher, [batch], bits=1, scales={"fc": 0.1})
    with pytest.raises(CalibrationError, match="scale"):
        qat(copy.deepcopy(teacher), teacher, [batch], bits=4, scales={"fc": -1.0})
    with pytest.raises(CalibrationError, match="steps"):
        gmp(copy.deepcopy(teacher), teacher, [batch], density=0.5, steps=-1)
