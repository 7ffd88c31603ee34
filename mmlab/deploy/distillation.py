"""Knowledge distillation (Hinton, Vinyals & Dean 2015): a small student trained on the true labels and on a
big teacher's softened predictions::

    L = (1 - λ)·CE(z_s, y) + λ·T²·KL(softmax(z_t / T) ‖ softmax(z_s / T))

Why ``T²``: the soft term's gradient with respect to the student's logits is
``(softmax(z_s/T) − softmax(z_t/T))/T``, which for large ``T`` (zero-mean logits) approaches
``(z_s − z_t)/(C·T²)``: it shrinks as ``1/T²`` (Hinton et al. 2015, §2.1). Multiplying by ``T²`` makes the soft
term's gradient scale independent of ``T``, so changing the temperature does not silently reweight the two terms;
it does not put the soft term at the scale of the hard one — ``λ`` sets that balance. ``KL`` is averaged over the
batch (``reduction='batchmean'``, the mathematically correct mean of per-sample KL divergences).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ..checks import check_fraction, check_tensor
from ..runtime import resolve_device
from ..train import ForwardFn, History, default_forward, eval_mode, fit

__all__ = ["distillation_loss", "distill"]


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor,
    *,
    temperature: float = 4.0,
    alpha: float = 0.5,
) -> torch.Tensor:
    """``(1-α)·CE(z_s, y) + α·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T))`` (Hinton et al. 2015), batch mean.

    ``alpha`` is λ, the weight of the teacher's soft targets; the teacher's logits are detached. The ``T²``
    factor keeps the soft gradient's scale independent of ``T`` (it shrinks as ``1/T²`` without it).
    """
    sizes: dict[str, int] = {}
    check_tensor("student_logits", student_logits, ("B", "C"), dtype="float", sizes=sizes)
    check_tensor("teacher_logits", teacher_logits, ("B", "C"), dtype="float", sizes=sizes)
    check_tensor("target", target, ("B",), dtype="int", sizes=sizes)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    check_fraction("alpha", alpha)
    t = float(temperature)
    soft = F.kl_div(
        F.log_softmax(student_logits / t, dim=-1),
        F.log_softmax(teacher_logits.detach() / t, dim=-1),
        reduction="batchmean",
        log_target=True,
    )
    hard = F.cross_entropy(student_logits, target)
    return (1 - alpha) * hard + alpha * t * t * soft


def distill(
    student: nn.Module,
    teacher: nn.Module,
    train_loader: DataLoader,
    *,
    epochs: int,
    temperature: float = 4.0,
    alpha: float = 0.5,
    forward_fn: ForwardFn = default_forward,
    **fit_kwargs,
) -> History:
    """Train ``student`` with :func:`distillation_loss` against a frozen ``teacher``, with :func:`mmlab.train.fit`.

    The teacher runs without gradients, in eval mode, on the training device; afterwards it is left as it was
    found: its mode, each parameter's ``requires_grad`` and its device are restored. Takes the same keyword
    arguments as
    :func:`mmlab.train.fit` (``lr``, ``optimizer``, ``val_loader``, ``device``, ...). Validation metrics are
    computed with plain cross-entropy on the student.
    """

    def student_forward(model: nn.Module, batch) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        out, y = forward_fn(model, batch)
        if not model.training:
            return out, y
        with torch.no_grad():
            t_out, _ = forward_fn(teacher, batch)
        return out, (y, t_out)

    def loss_fn(out: torch.Tensor, target) -> torch.Tensor:
        if isinstance(target, tuple):
            y, t_out = target
            return distillation_loss(out, t_out.to(out.dtype), y, temperature=temperature, alpha=alpha)
        return F.cross_entropy(out, target)

    device = resolve_device(fit_kwargs.pop("device", None))
    params = list(teacher.parameters())
    flags = [p.requires_grad for p in params]
    home = params[0].device if params else None
    try:
        for p in params:
            p.requires_grad_(False)
        teacher.to(device)
        with eval_mode(teacher):
            return fit(
                student,
                train_loader,
                epochs=epochs,
                loss_fn=loss_fn,
                forward_fn=student_forward,
                device=device,
                **fit_kwargs,
            )
    finally:
        if home is not None:
            teacher.to(home)
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
