"""Tests of mmlab.deploy.distillation: the distillation loss and the distill trainer."""

import pytest
import torch
from torch import nn

from mmlab.deploy import distill, distillation_loss
from mmlab.runtime import seeded
from mmlab.train import evaluate, fit, make_loader


@pytest.mark.parametrize("t", [1.0, 2.0, 8.0])
def test_distillation_loss_zero_soft_term_when_student_equals_teacher(t):
    z = torch.randn(6, 5)
    y = torch.randint(0, 5, (6,))
    assert distillation_loss(z, z, y, temperature=t, alpha=1.0).abs().item() < 1e-6
    ce = nn.functional.cross_entropy(z, y)
    assert torch.allclose(distillation_loss(z, z, y, temperature=t, alpha=0.3), 0.7 * ce)


def test_distillation_loss_matches_formula():
    zs, zt, y, t = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), 3.0
    p_t = torch.softmax(zt / t, -1)
    kl = (p_t * (p_t.log() - torch.log_softmax(zs / t, -1))).sum(-1).mean()
    ref = 0.4 * nn.functional.cross_entropy(zs, y) + 0.6 * t * t * kl
    assert torch.allclose(distillation_loss(zs, zt, y, temperature=t, alpha=0.6), ref, atol=1e-6)


def test_t_squared_makes_the_soft_gradient_independent_of_t_not_equal_to_the_hard_one():
    """Hinton et al. 2015, §2.1: ∂KL/∂z_s = (softmax(z_s/T) − softmax(z_t/T))/T ≈ (z_s − z_t)/(N·T²) for large T
    (zero-mean logits): the soft gradient shrinks as 1/T², and the T² factor undoes exactly that."""
    g = torch.Generator().manual_seed(0)
    zs, zt = torch.randn(8, 10, generator=g), torch.randn(8, 10, generator=g)
    zs, zt = zs - zs.mean(1, keepdim=True), zt - zt.mean(1, keepdim=True)
    y = torch.randint(0, 10, (8,), generator=g)

    def soft_grad_norm(t: float) -> float:
        z = zs.clone().requires_grad_()
        distillation_loss(z, zt, y, temperature=t, alpha=1.0).backward()  # λ·T²·KL only
        return float(z.grad.norm())

    norms = {t: soft_grad_norm(t) for t in (10.0, 20.0, 40.0, 80.0)}
    for t in (20.0, 40.0, 80.0):  # with T²: the same scale at every large T
        assert norms[t] == pytest.approx(norms[10.0], rel=0.05), norms
        assert norms[t] / t**2 == pytest.approx(norms[10.0] / 100.0 * (10.0 / t) ** 2, rel=0.05)  # without: 1/T²
    limit = float(((zs - zt) / 10).norm() / 8)  # (z_s − z_t)/N per item, batch mean: the high-T limit
    assert norms[80.0] == pytest.approx(limit, rel=0.02)
    hard = zs.clone().requires_grad_()
    distillation_loss(hard, zt, y, temperature=10.0, alpha=0.0).backward()
    assert not float(hard.grad.norm()) == pytest.approx(norms[10.0], rel=0.5)  # T² does not equalise the terms


def test_distillation_loss_errors():
    with pytest.raises(ValueError, match="teacher_logits must have shape"):
        distillation_loss(torch.randn(4, 3), torch.randn(4, 5), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(torch.randn(4, 3), torch.randn(4, 3), torch.zeros(4, dtype=torch.long), temperature=0)
    with pytest.raises(ValueError, match="alpha"):
        distillation_loss(torch.randn(4, 3), torch.randn(4, 3), torch.zeros(4, dtype=torch.long), alpha=1.5)


def test_distill_trains_student_toward_teacher():
    with seeded(0):
        x = torch.randn(512, 8)
        y = (x[:, :2].sum(1) > 0).long()
        teacher = nn.Sequential(nn.Linear(8, 64), nn.Dropout(0.1), nn.ReLU(), nn.Linear(64, 2))
        fit(teacher, make_loader(x, y, batch_size=64, shuffle=True), epochs=10, lr=1e-2, progress=False, device="cpu")
        student = nn.Linear(8, 2)
    teacher.train()
    teacher[0].bias.requires_grad_(False)  # a teacher partly frozen by its owner
    flags = [p.requires_grad for p in teacher.parameters()]
    hist = distill(
        student,
        teacher,
        make_loader(x, y, batch_size=64, shuffle=True),
        epochs=10,
        lr=1e-2,
        val_loader=make_loader(x, y, batch_size=256),
        progress=False,
        device="cpu",
    )
    assert hist.last("val_acc") > 0.9
    assert evaluate(student, make_loader(x, y))["accuracy"] > 0.9
    # left as it was found: each parameter's requires_grad, its device and its mode (it ran in eval mode)
    assert [p.requires_grad for p in teacher.parameters()] == flags == [True, False, True, True]
    assert all(p.device.type == "cpu" for p in teacher.parameters())
    assert teacher.training


def test_distill_uses_the_teachers_soft_targets():
    """With alpha=1 the student learns only from the teacher: it copies a teacher that is wrong on purpose."""
    with seeded(0):
        x = torch.randn(256, 4)
        y = (x[:, 0] > 0).long()
        teacher = nn.Linear(4, 2)
        with torch.no_grad():
            teacher.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [-1.0, 0, 0, 0]]) * 5)  # predicts 1 - y
            teacher.bias.zero_()
        student = nn.Linear(4, 2)
    distill(
        student, teacher, make_loader(x, y, batch_size=64), epochs=30, lr=5e-2, alpha=1.0, progress=False, device="cpu"
    )
    assert evaluate(student, make_loader(x, 1 - y))["accuracy"] > 0.95


def _student_after_distill(alpha: float) -> float:
    """Hard labels are coin flips; only the teacher's logits carry the rule ``y = [x_0 + x_1 > 0]``."""
    with seeded(1):
        x = torch.randn(512, 6)
        rule = (x[:, 0] + x[:, 1] > 0).long()
        noise = torch.randint(0, 2, (512,))  # the labels distill is given: independent of x
        assert abs((noise == rule).float().mean().item() - 0.5) < 0.06  # they say nothing about the rule
        teacher = nn.Linear(6, 2)
        with torch.no_grad():  # a teacher that knows the rule exactly
            teacher.weight.copy_(torch.tensor([[-1.0, -1, 0, 0, 0, 0], [1.0, 1, 0, 0, 0, 0]]) * 2)
            teacher.bias.zero_()
        student = nn.Linear(6, 2)
        distill(
            student,
            teacher,
            make_loader(x, noise, batch_size=64, shuffle=True),
            epochs=15,
            lr=5e-2,
            alpha=alpha,
            progress=False,
            device="cpu",
        )
    with seeded(2):
        x_test = torch.randn(1000, 6)
    return evaluate(student, make_loader(x_test, (x_test[:, 0] + x_test[:, 1] > 0).long()))["accuracy"]


def test_distill_learns_what_only_the_teacher_knows():
    """With the soft term the student learns the teacher's rule; without it (alpha=0) it cannot: a regression
    that dropped or zeroed the soft term in ``distill`` fails here."""
    assert _student_after_distill(0.7) > 0.9
    assert _student_after_distill(0.0) < 0.7
