"""The course's one training loop and its helpers: loaders, evaluation, prediction, history.

:func:`fit` is the loop every trainer in ``mmlab`` uses: progress bar, AMP on CUDA only, gradient clipping,
history, and checkpoints that resume to exactly the same result as an uninterrupted run. Lessons change what
happens inside a step through hooks, not by writing another loop:

- ``forward_fn(model, batch) -> (output, target)`` and ``loss_fn(output, target)``: the ordinary case
  (a batch is a tuple ``(*inputs, target)``; by default the loop calls ``model(*inputs)``);
- ``compute_loss(model, batch) -> loss`` or ``{"loss": loss, "name": scalar, ...}``: any objective
  (multi-task, contrastive, simulated missingness, auxiliary heads); extra scalars are logged per epoch, and
  entries whose key starts with ``_`` (features, targets) only ride along to ``after_backward``;
- ``after_backward(model, batch, result)``: gradient work between backward and step (OGM modulation,
  clipping schemes, GradNorm); ``result`` is the forward output, or the dict from ``compute_loss``;
- ``after_step(model, batch)`` and ``after_epoch(model, epoch) -> metrics``: bookkeeping around the step.

Loaders come from :func:`make_loader`, which indexes whole batches of in-memory tensors at once (any iterable
of batches, such as a ``torch.utils.data.DataLoader``, works as well).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .checks import check_tensor
from .runtime import amp_dtype, autocast, eval_mode, resolve_device

__all__ = [
    "History",
    "TensorLoader",
    "make_loader",
    "fit",
    "evaluate",
    "predict",
    "eval_mode",
    "accuracy",
    "to_device",
    "default_forward",
]

Batch = Sequence[torch.Tensor]
ForwardFn = Callable[[nn.Module, Batch], tuple[torch.Tensor, Any]]
LossResult = torch.Tensor | Mapping[str, torch.Tensor | float]
ComputeLossFn = Callable[[nn.Module, Batch], LossResult]
PROGRESS_DELAY_S = 1.0  # fit's progress bar shows once a run has lasted this long


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


class TensorLoader:
    """Mini-batches of in-memory tensors, one indexing operation per tensor per batch (``t[idx]``).

    Iterating yields tuples ``(t_1[idx], ..., t_k[idx])``. Each epoch (each ``iter``) draws a fresh order from
    ``generator`` only: nothing touches the global random state. Built by :func:`make_loader`.
    """

    def __init__(
        self,
        tensors: Sequence[torch.Tensor],
        batch_size: int,
        order: str,
        generator: torch.Generator,
        weights: torch.Tensor | None,
        num_samples: int,
        drop_last: bool,
    ):
        self.tensors, self.batch_size, self.order = tuple(tensors), batch_size, order
        self.generator, self.weights, self.num_samples, self.drop_last = generator, weights, num_samples, drop_last

    def _indices(self) -> torch.Tensor:
        n = self.tensors[0].shape[0]
        if self.order == "weighted":
            return torch.multinomial(self.weights, self.num_samples, replacement=True, generator=self.generator)
        if self.order == "shuffle":
            return torch.randperm(n, generator=self.generator)
        return torch.arange(n)

    def __len__(self) -> int:
        n = self.num_samples
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        idx = self._indices()
        for b in range(len(self)):
            sel = idx[b * self.batch_size : (b + 1) * self.batch_size]
            yield tuple(t[sel.to(t.device)] for t in self.tensors)


def make_loader(
    *tensors: torch.Tensor,
    batch_size: int = 64,
    shuffle: bool = False,
    seed: int = 0,
    generator: torch.Generator | None = None,
    weights: torch.Tensor | None = None,
    num_samples: int | None = None,
    drop_last: bool = False,
) -> TensorLoader:
    """The course's one loader: mini-batches of in-memory tensors that share their first dimension.

    Each batch is fetched with one indexing operation per tensor (``t[idx]``), much faster than a per-item
    ``DataLoader`` for the course's small models. Order: sequential, shuffled (``shuffle=True``: a new
    permutation each epoch), or ``num_samples`` (default N) draws with replacement with probability
    ``∝ weights`` (``weights`` (N,) ≥ 0). Randomness comes from ``generator``, or a new generator seeded with
    ``seed``, never from the global RNG; :func:`fit` saves its state in checkpoints. ``drop_last`` drops a
    final incomplete batch (e.g. so that every contrastive step sees the same number of negatives).
    """
    if not tensors:
        raise ValueError("make_loader needs at least one tensor")
    for i, t in enumerate(tensors):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"tensors[{i}] must be a torch.Tensor, got {type(t).__name__}")
    sizes = [t.shape[0] if t.dim() else None for t in tensors]
    if None in sizes or len(set(sizes)) != 1:
        raise ValueError(f"tensors must share their first dimension, got sizes {sizes}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    n = sizes[0]
    if n == 0:
        raise ValueError("tensors are empty (first dimension 0)")
    if generator is None:
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        generator = torch.Generator().manual_seed(seed)
    order, w = ("shuffle" if shuffle else "sequential"), None
    draws = n
    if weights is not None:
        check_tensor("weights", weights, (n,), dtype="float")
        if (weights < 0).any() or not weights.sum() > 0:
            raise ValueError("weights must be >= 0 with a positive sum")
        draws = n if num_samples is None else num_samples
        if not isinstance(draws, int) or draws < 1:
            raise ValueError(f"num_samples must be an int >= 1, got {num_samples!r}")
        order, w = "weighted", weights.detach().double().cpu()
    elif num_samples is not None:
        raise ValueError("num_samples only applies with weights")
    if drop_last and draws < batch_size:
        raise ValueError(f"drop_last=True with batch_size {batch_size} > {draws} samples leaves no batch")
    return TensorLoader(tensors, batch_size, order, generator, w, draws, drop_last)


def _loader_generator(loader) -> torch.Generator | None:
    return getattr(loader, "generator", None)


@dataclass
class History:
    """Metrics of a :func:`fit` run: one row per epoch (``history["train_loss"]``, ``"train_acc"``,
    ``"val_loss"``, ``"val_acc"``, plus whatever hooks log) and, separately, per-step values
    (``history.steps_log["loss"]``).

    ``epochs`` counts logged epoch rows; ``steps`` counts optimizer steps.
    """

    metrics: dict[str, list[float]] = field(default_factory=dict)
    steps_log: dict[str, list[float]] = field(default_factory=dict)
    epochs: int = 0
    steps: int = 0

    def log(self, **values: float) -> None:
        """Append one epoch row."""
        for k, v in values.items():
            self.metrics.setdefault(k, []).append(float(v))
        self.epochs += 1

    def log_step(self, **values: float) -> None:
        """Append one step's values."""
        for k, v in values.items():
            self.steps_log.setdefault(k, []).append(float(v))
        self.steps += 1

    def __getitem__(self, key: str) -> list[float]:
        if key in self.metrics:
            return self.metrics[key]
        if key in self.steps_log:
            return self.steps_log[key]
        raise KeyError(
            f"{key!r} was not logged; epoch metrics: {sorted(self.metrics)}, steps: {sorted(self.steps_log)}"
        )

    def __contains__(self, key: str) -> bool:
        return key in self.metrics or key in self.steps_log

    def last(self, key: str) -> float:
        return self[key][-1]

    def state_dict(self) -> dict:
        return {"metrics": self.metrics, "steps_log": self.steps_log, "epochs": self.epochs, "steps": self.steps}

    @classmethod
    def from_state_dict(cls, state: dict) -> History:
        return cls(dict(state["metrics"]), dict(state["steps_log"]), int(state["epochs"]), int(state["steps"]))


def _model_device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    if p is None:
        b = next(iter(model.buffers()), None)
        return b.device if b is not None else torch.device("cpu")
    return p.device


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    *,
    loss_fn: Callable = F.cross_entropy,
    forward_fn: ForwardFn = default_forward,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` over ``loader`` in eval mode (restores the previous mode)."""
    device = torch.device(device) if device is not None else _model_device(model)
    total, loss_sum, correct = 0, 0.0, 0
    with eval_mode(model):
        for batch in loader:
            out, y = forward_fn(model, to_device(batch, device))
            loss_sum += float(loss_fn(out.float(), y)) * len(out)
            y0 = y[0] if isinstance(y, (tuple, list)) else y
            if out.dim() == 2 and not y0.is_floating_point():
                correct += int((out.argmax(-1) == y0).sum())
            total += len(out)
    if total == 0:
        raise ValueError("loader is empty")
    return {"loss": loss_sum / total, "accuracy": correct / total}


@torch.no_grad()
def predict(
    model: nn.Module,
    data: Iterable | torch.Tensor | Sequence[torch.Tensor],
    *,
    batch_size: int = 1024,
    fn: Callable[..., torch.Tensor] | None = None,
    forward_fn: ForwardFn | None = None,
) -> torch.Tensor:
    """Model outputs over ``data`` in eval mode without gradients, concatenated on the CPU in float32.

    ``data`` is a loader of ``(*inputs, target)`` batches (outputs of ``forward_fn``, default
    :func:`default_forward`) or one tensor / a sequence of input tensors, run in batches of ``batch_size``
    through ``fn(*inputs)`` (default ``model(*inputs)``). The model's previous mode is restored.
    """
    device = _model_device(model)
    outs = []
    with eval_mode(model):
        if isinstance(data, (DataLoader, TensorLoader)):
            fwd = forward_fn or default_forward
            outs = [fwd(model, to_device(b, device))[0].float().cpu() for b in data]
        else:
            inputs = [data] if isinstance(data, torch.Tensor) else list(data)
            if not inputs:
                raise ValueError("data must hold at least one input tensor")
            n = inputs[0].shape[0]
            for i, x in enumerate(inputs):
                if x.shape[0] != n:
                    raise ValueError(f"data[{i}] must have {n} rows like data[0], got shape {tuple(x.shape)}")
            call = fn or model
            for i in range(0, n, batch_size):
                outs.append(call(*(x[i : i + batch_size].to(device) for x in inputs)).float().cpu())
    if not outs:
        raise ValueError("data is empty")
    return torch.cat(outs)


def _rng_state(loader: Iterable) -> dict:
    gen = _loader_generator(loader)
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "loader": gen.get_state() if gen is not None else None,
    }


def _set_rng_state(state: dict, loader: Iterable) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    gen = _loader_generator(loader)
    if state["loader"] is not None and gen is not None:
        gen.set_state(state["loader"])


def _scalar(name: str, v) -> float:
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            raise ValueError(f"compute_loss must return scalars; {name!r} has shape {tuple(v.shape)}")
        return float(v.detach())
    return float(v)


def fit(
    model: nn.Module,
    train_loader: Iterable,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    loss_fn: Callable = F.cross_entropy,
    val_loader: Iterable | None = None,
    forward_fn: ForwardFn = default_forward,
    compute_loss: ComputeLossFn | None = None,
    clip_grad_norm: float | None = None,
    after_backward: Callable[[nn.Module, Batch, Any], None] | None = None,
    after_step: Callable[[nn.Module, Batch], None] | None = None,
    after_epoch: Callable[[nn.Module, int], Mapping[str, float] | None] | None = None,
    log_steps: bool = False,
    scheduler=None,
    device: torch.device | str | None = None,
    amp: bool = True,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    desc: str = "train",
) -> History:
    """Train ``model`` for ``epochs`` epochs with mini-batch gradient descent and return its :class:`History`.

    Each step minimises ``loss_fn(*forward_fn(model, batch))`` — or, with ``compute_loss``, whatever that
    returns — with ``optimizer`` (AdamW at ``lr`` by default): ``θ ← step(θ, ∇_θ L)``. AMP (autocast, and a
    gradient scaler for float16) is used on CUDA only when ``amp``; CPU always trains in float32.
    ``clip_grad_norm`` rescales gradients to that global L2 norm (Pascanu et al. 2013). Hooks:
    ``after_backward(model, batch, result)`` runs after backward (gradients unscaled) and before clipping and
    the step; ``after_step(model, batch)`` after the step; ``after_epoch(model, epoch)`` may return metrics to
    log in that epoch's row. ``log_steps`` records each step's loss (and ``compute_loss``'s scalars) in
    ``history.steps_log``. With ``checkpoint`` the model, optimizer, scheduler, history and every random state
    are saved after each epoch; ``resume=True`` continues from that file, reproducing an uninterrupted run
    exactly. With ``progress`` a tqdm bar (a widget in Jupyter) shows the epochs once the run has lasted
    ``PROGRESS_DELAY_S`` seconds; it disappears when the run ends.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if clip_grad_norm is not None and not clip_grad_norm > 0:
        raise ValueError(f"clip_grad_norm must be > 0 or None, got {clip_grad_norm}")
    device = resolve_device(device)
    model.to(device)
    optimizer = optimizer or torch.optim.AdamW(model.parameters(), lr=lr)
    params = [p for g in optimizer.param_groups for p in g["params"]]
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
        history = History.from_state_dict(state["history"])
        start = state["epoch"]
        _set_rng_state(state["rng"], train_loader)

    # The bar appears once a run has lasted PROGRESS_DELAY_S (a shorter run would only flash) and redraws at
    # tqdm's own pace: in JupyterLab each bar is a widget the browser must build and each forced redraw a render,
    # and on 2 cores that rendering competed with training (measured: benchmarks/RESULTS.md, "The CI run").
    bar = tqdm(range(start, epochs), desc=desc, disable=not progress, leave=False, delay=PROGRESS_DELAY_S)
    for epoch in bar:
        model.train()
        total, loss_sum, correct, counted = 0, 0.0, 0, 0
        extra: dict[str, float] = {}
        for batch in train_loader:
            batch = to_device(batch, device)
            with autocast(device, enabled=use_amp):
                if compute_loss is None:
                    out, y = forward_fn(model, batch)
                    loss = loss_fn(out, y)
                    result, scalars = out, {}
                else:
                    result = compute_loss(model, batch)
                    if isinstance(result, Mapping):
                        if "loss" not in result:
                            raise KeyError("compute_loss must return a loss tensor or a dict with a 'loss' key")
                        loss = result["loss"]
                        scalars = {k: _scalar(k, v) for k, v in result.items() if k != "loss" and k[:1] != "_"}
                    else:
                        loss, scalars = result, {}
                    out = y = None
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise ValueError(f"the loss must be a scalar tensor, got {type(loss).__name__}")
            loss_value = loss.item()  # one read of the loss per step (on a GPU each read waits for the device)
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"loss became {loss_value} at epoch {epoch + 1}; lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if scaler.is_enabled() and (after_backward is not None or clip_grad_norm is not None):
                scaler.unscale_(optimizer)
            if after_backward is not None:
                after_backward(model, batch, result)
            if clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(params, clip_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            if after_step is not None:
                after_step(model, batch)
            n = len(batch[0]) if isinstance(batch, (tuple, list)) else 1
            total += n
            loss_sum += loss_value * n
            for k, v in scalars.items():
                extra[k] = extra.get(k, 0.0) + v * n
            if log_steps:
                history.log_step(loss=loss_value, **scalars)
            if out is not None:
                y0 = y[0] if isinstance(y, (tuple, list)) else y  # extra targets (e.g. a teacher's logits) ride along
                if out.dim() == 2 and isinstance(y0, torch.Tensor) and not y0.is_floating_point():
                    correct += int((out.argmax(-1) == y0).sum())
                    counted += len(y0)
        if total == 0:
            raise ValueError("train_loader is empty")
        if scheduler is not None:
            scheduler.step()
        row = {"train_loss": loss_sum / total, **{k: v / total for k, v in extra.items()}}
        if counted:
            row["train_acc"] = correct / counted
        if val_loader is not None:
            ev = evaluate(model, val_loader, loss_fn=loss_fn, forward_fn=forward_fn, device=device)
            row.update(val_loss=ev["loss"], val_acc=ev["accuracy"])
        if after_epoch is not None:
            row.update(after_epoch(model, epoch) or {})
        history.log(**row)
        bar.set_postfix({k: f"{v:.3f}" for k, v in list(row.items())[:4]}, refresh=False)
        if ckpt is not None:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "scaler": scaler.state_dict(),
                    "history": history.state_dict(),
                    "epoch": epoch + 1,
                    "rng": _rng_state(train_loader),
                },
                ckpt,
            )
        if not math.isfinite(row["train_loss"]):
            break
    return history
