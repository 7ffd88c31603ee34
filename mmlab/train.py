"""A small, honest training loop: progress bar, AMP on CUDA only, gradient clipping, history, and checkpoints
that resume to exactly the same result as an uninterrupted run.

Convention: a batch is a tuple ``(*inputs, target)``; by default the loop calls ``model(*inputs)``. Pass
``forward_fn(model, batch) -> (output, target)`` for anything else.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from .checks import check_tensor
from .runtime import amp_dtype, autocast, get_device

__all__ = ["History", "make_loader", "fit", "evaluate", "predict", "accuracy", "to_device", "default_forward"]

Batch = Sequence[torch.Tensor]
ForwardFn = Callable[[nn.Module, Batch], tuple[torch.Tensor, torch.Tensor]]


def to_device(obj, device: torch.device):
    """Move tensors (also inside tuples, lists and dicts) to ``device``; other objects are returned as is."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


def default_forward(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """``model(*batch[:-1]), batch[-1]``."""
    return model(*batch[:-1]), batch[-1]


def accuracy(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Share of rows whose arg-max equals ``target``."""
    check_tensor("logits", logits, ("B", None))
    check_tensor("target", target, (logits.shape[0],), dtype="int")
    return (logits.argmax(-1) == target).float().mean().item()


def make_loader(*tensors: torch.Tensor, batch_size: int = 64, shuffle: bool = False, seed: int = 0) -> DataLoader:
    """A DataLoader over tensors sharing their first dimension; shuffling uses its own seeded generator.

    No worker processes (they fight over 2 CPU cores); the generator's state is saved in checkpoints.
    """
    if not tensors:
        raise ValueError("make_loader needs at least one tensor")
    n = {t.shape[0] for t in tensors}
    if len(n) != 1:
        raise ValueError(f"tensors must share their first dimension, got sizes {[t.shape[0] for t in tensors]}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=shuffle, generator=gen)


@dataclass
class History:
    """Per-epoch metrics: ``history["train_loss"]``, ``"train_acc"``, ``"val_loss"``, ``"val_acc"``."""

    metrics: dict[str, list[float]] = field(default_factory=dict)

    def log(self, **values: float) -> None:
        for k, v in values.items():
            self.metrics.setdefault(k, []).append(float(v))

    def __getitem__(self, key: str) -> list[float]:
        return self.metrics[key]

    def __contains__(self, key: str) -> bool:
        return key in self.metrics

    @property
    def epochs(self) -> int:
        return max((len(v) for v in self.metrics.values()), default=0)

    def last(self, key: str) -> float:
        return self.metrics[key][-1]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    *,
    loss_fn: Callable = F.cross_entropy,
    forward_fn: ForwardFn = default_forward,
    device: torch.device | None = None,
) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` over ``loader`` in eval mode (restores the previous mode)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, loss_sum, correct = 0, 0.0, 0
    for batch in loader:
        out, y = forward_fn(model, to_device(batch, device))
        loss_sum += float(loss_fn(out.float(), y)) * len(y)
        if out.dim() == 2 and not y.is_floating_point():
            correct += int((out.argmax(-1) == y).sum())
        total += len(y)
    model.train(was_training)
    if total == 0:
        raise ValueError("loader is empty")
    return {"loss": loss_sum / total, "accuracy": correct / total}


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, *, forward_fn: ForwardFn = default_forward) -> torch.Tensor:
    """Concatenated model outputs over ``loader`` in eval mode, on the CPU."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    outs = [forward_fn(model, to_device(b, device))[0].float().cpu() for b in loader]
    model.train(was_training)
    return torch.cat(outs)


def _rng_state(loader: DataLoader) -> dict:
    gen = getattr(loader, "generator", None)
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "loader": gen.get_state() if gen is not None else None,
    }


def _set_rng_state(state: dict, loader: DataLoader) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    gen = getattr(loader, "generator", None)
    if state["loader"] is not None and gen is not None:
        gen.set_state(state["loader"])


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    loss_fn: Callable = F.cross_entropy,
    val_loader: DataLoader | None = None,
    forward_fn: ForwardFn = default_forward,
    clip_grad_norm: float | None = None,
    after_backward: Callable[[nn.Module, Batch, torch.Tensor], None] | None = None,
    scheduler=None,
    device: torch.device | str | None = None,
    amp: bool = True,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    desc: str = "train",
) -> History:
    """Train ``model`` for ``epochs`` epochs and return its :class:`History`.

    Minimises ``loss_fn(output, target)`` with ``optimizer`` (AdamW at ``lr`` by default). AMP (autocast, and a
    gradient scaler for float16) is used on CUDA only when ``amp``; CPU always trains in float32.
    ``clip_grad_norm`` rescales gradients to that global L2 norm (Pascanu et al. 2013). ``after_backward``
    runs after each backward pass and before the step (e.g. gradient modulation). With ``checkpoint`` the
    model, optimizer, scheduler, history and every random state are saved after each epoch; ``resume=True``
    continues from that file, reproducing an uninterrupted run exactly.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if clip_grad_norm is not None and not clip_grad_norm > 0:
        raise ValueError(f"clip_grad_norm must be > 0 or None, got {clip_grad_norm}")
    device = torch.device(device) if device is not None else get_device()
    model.to(device)
    optimizer = optimizer or torch.optim.AdamW(model.parameters(), lr=lr)
    use_amp = amp and amp_dtype(device) is not None
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and amp_dtype(device) == torch.float16)
    history, start = History(), 0
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if resume:
        if ckpt is None or not ckpt.exists():
            raise FileNotFoundError(f"resume=True but checkpoint {ckpt} does not exist")
        state = torch.load(ckpt, map_location=device, weights_only=False)
        missing = {"model", "optimizer", "scheduler", "scaler", "history", "epoch", "rng"} - set(state)
        if missing:
            raise KeyError(f"checkpoint {ckpt} lacks {sorted(missing)}: it was not written by mmlab.train.fit")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        history = History(state["history"])
        start = state["epoch"]
        _set_rng_state(state["rng"], train_loader)

    bar = tqdm(range(start, epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        total, loss_sum, correct = 0, 0.0, 0
        for batch in train_loader:
            batch = to_device(batch, device)
            with autocast(device, enabled=use_amp):
                out, y = forward_fn(model, batch)
                loss = loss_fn(out, y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}; lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if after_backward is not None:
                after_backward(model, batch, out)
            if clip_grad_norm is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            y = y[0] if isinstance(y, (tuple, list)) else y  # extra targets (e.g. a teacher's logits) ride along
            n = len(y)
            total += n
            loss_sum += loss.item() * n
            if out.dim() == 2 and not y.is_floating_point():
                correct += int((out.argmax(-1) == y).sum())
        if scheduler is not None:
            scheduler.step()
        row = {"train_loss": loss_sum / total, "train_acc": correct / total}
        if val_loader is not None:
            ev = evaluate(model, val_loader, loss_fn=loss_fn, forward_fn=forward_fn, device=device)
            row.update(val_loss=ev["loss"], val_acc=ev["accuracy"])
        history.log(**row)
        bar.set_postfix({k: f"{v:.3f}" for k, v in row.items()})
        if ckpt is not None:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "scaler": scaler.state_dict(),
                    "history": history.metrics,
                    "epoch": epoch + 1,
                    "rng": _rng_state(train_loader),
                },
                ckpt,
            )
        if not math.isfinite(row["train_loss"]):
            break
    return history
