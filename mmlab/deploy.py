"""Deployment: make a trained multimodal model smaller and faster, and measure what it costs in accuracy.

* **Distillation** (Hinton, Vinyals & Dean 2015) trains a small student on a mix of the true labels and the
  teacher's softened predictions::

      L = (1 - λ)·CE(z_s, y) + λ·T²·KL(softmax(z_t / T) ‖ softmax(z_s / T))

  The ``T²`` factor keeps the soft term's gradient scale independent of the temperature ``T``; ``KL`` is averaged
  over the batch (``reduction='batchmean'``, the mathematically correct mean of per-sample KL divergences).
* **Structured pruning** (Li et al. 2017, "Pruning Filters for Efficient ConvNets"): rank a layer's output
  units (neurons, channels) by the norm of their weights, keep the top ones and *rebuild* smaller layers, the
  next layer losing the matching inputs. Unlike ``torch.nn.utils.prune``, which only multiplies weights by a
  mask, this removes computation. Fine-tune afterwards.
* **Dynamic int8 quantization** (Jacob et al. 2018): Linear weights stored as int8, activations quantized on
  the fly. CPU only.
* **ONNX export** with a parity check against PyTorch, run by ONNX Runtime (CPU).
* **Batched inference** with padding masks in ``eval()`` mode under ``inference_mode()``, and an **LRU
  embedding cache** keyed by content, with hit/miss statistics.
* **Latency measurement**: warm-up, interleaved repeats, medians and spread, speed-ups as ratios.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import io
import logging
import math
import statistics
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .checks import check_choice, check_fraction, check_tensor
from .runtime import get_device
from .train import ForwardFn, History, default_forward, fit

__all__ = [
    "distillation_loss",
    "distill",
    "MultimodalMLP",
    "bag_of_words",
    "prunable_pairs",
    "prune_structured",
    "prune_with_masks",
    "sparsity",
    "count_nonzero_parameters",
    "quantize_int8",
    "model_size_bytes",
    "export_onnx",
    "onnx_session",
    "onnx_run",
    "onnx_parity",
    "pad_sequences",
    "batched_inference",
    "content_key",
    "LRUCache",
    "CachedEncoder",
    "Timing",
    "measure_latency",
    "compare_latency",
    "paired_speedup",
    "PruneSweep",
    "pruning_sweep",
    "tradeoff_figure",
]


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor,
    *,
    temperature: float = 4.0,
    alpha: float = 0.5,
) -> torch.Tensor:
    """``(1-α)·CE(z_s, y) + α·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T))`` (Hinton et al. 2015), batch mean.

    ``alpha`` is λ, the weight of the teacher's soft targets; the teacher's logits are detached.
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
    """Train ``student`` with :func:`distillation_loss` against a frozen ``teacher`` (in eval mode).

    Takes the same keyword arguments as :func:`mmlab.train.fit` (``lr``, ``optimizer``, ``val_loader``, ...).
    Validation metrics are computed with plain cross-entropy on the student.
    """
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

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

    device = torch.device(fit_kwargs.pop("device", None) or get_device())
    teacher.to(device)
    return fit(
        student, train_loader, epochs=epochs, loss_fn=loss_fn, forward_fn=student_forward, device=device, **fit_kwargs
    )


# --------------------------------------------------------------------------------------------------------------
# The lesson's model: an all-Linear multimodal network (every layer can be pruned, quantized and exported)
# --------------------------------------------------------------------------------------------------------------


class MultimodalMLP(nn.Module):
    """Late-fusion MLP: one tower per modality, concatenated, then a fusion head.

    ``z_m = f_m(x_m)`` with ``f_m = Linear(d_m→w) – ReLU – [Linear(w→w) – ReLU]×(depth-1) – Linear(w→e) – ReLU``,
    and ``logits = Linear(w→C)(ReLU(Linear(M·e→w)([z_1; …; z_M])))``. Every layer is an ``nn.Linear`` inside an
    ``nn.Sequential``, so :func:`prune_structured` can shrink each hidden width, :func:`quantize_int8` covers
    the whole network, and the forward pass has no data-dependent branch (it exports to ONNX).

    ``input_dims`` maps modality names to feature counts; ``forward`` takes one tensor per modality, in that
    order, each ``(B, d_m)`` or ``(B, *)`` with ``d_m`` features per sample (e.g. an image ``(B, 1, 8, 8)``).
    """

    def __init__(
        self, input_dims: Mapping[str, int], num_classes: int, width: int = 256, depth: int = 2, embed_dim: int = 64
    ):
        super().__init__()
        if not input_dims:
            raise ValueError("input_dims must name at least one modality")
        for name, value in (("num_classes", num_classes), ("width", width), ("depth", depth), ("embed_dim", embed_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.modalities = list(input_dims)
        self.input_dims = dict(input_dims)
        self.num_classes = num_classes

        def tower(d: int) -> nn.Sequential:
            layers: list[nn.Module] = [nn.Flatten(), nn.Linear(d, width), nn.ReLU()]
            for _ in range(depth - 1):
                layers += [nn.Linear(width, width), nn.ReLU()]
            return nn.Sequential(*layers, nn.Linear(width, embed_dim), nn.ReLU())

        self.towers = nn.ModuleDict({m: tower(d) for m, d in input_dims.items()})
        self.head = nn.Sequential(
            nn.Linear(embed_dim * len(input_dims), width), nn.ReLU(), nn.Linear(width, num_classes)
        )

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if len(inputs) != len(self.modalities):
            raise ValueError(
                f"expected {len(self.modalities)} inputs ({', '.join(self.modalities)}), got {len(inputs)}"
            )
        sizes: dict[str, int] = {}
        feats = []
        for m, x in zip(self.modalities, inputs):
            # shape checks only (no value checks), so that the forward pass stays export-friendly
            check_tensor(m, x, ("B", *([None] * (x.dim() - 1))), dtype="float", finite=False, sizes=sizes)
            if x.dim() < 2 or math.prod(x.shape[1:]) != self.input_dims[m]:
                raise ValueError(
                    f"{m} must have shape (B, {self.input_dims[m]}) (or (B, *) with as many features)"
                    f", got {tuple(x.shape)}"
                )
            feats.append(self.towers[m](x))
        return self.head(torch.cat(feats, dim=-1))


def bag_of_words(ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Word counts ``v[b, w] = Σ_t [ids[b, t] = w]`` for token ids ``(B, L)``; id 0 (padding) is not counted."""
    check_tensor("ids", ids, ("B", "L"), dtype="int")
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"ids must be in [0, {vocab_size}), got range [{int(ids.min())}, {int(ids.max())}]")
    counts = torch.zeros(ids.shape[0], vocab_size, device=ids.device)
    counts.scatter_add_(1, ids, torch.ones_like(ids, dtype=counts.dtype))
    counts[:, 0] = 0.0
    return counts


# --------------------------------------------------------------------------------------------------------------
# Structured pruning: physically remove units/channels
# --------------------------------------------------------------------------------------------------------------

_PRODUCERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
_ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Dropout, nn.Identity)
_POOLS = (  # act on each channel of a conv feature map separately
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass(frozen=True)
class _Pair:
    producer: str
    consumer: str
    norms: tuple[str, ...] = ()


def _out_units(layer: nn.Module) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def _in_units(layer: nn.Module) -> int:
    return layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels


def _supported(layer: nn.Module) -> bool:
    return isinstance(layer, _PRODUCERS) and getattr(layer, "groups", 1) == 1


def _find_pairs(model: nn.Module) -> list[_Pair]:
    pairs: list[_Pair] = []
    for prefix, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        current: tuple[str, nn.Module] | None = None
        norms: list[str] = []
        flattened = False
        for name, child in seq.named_children():
            full = f"{prefix}.{name}" if prefix else name
            if _supported(child):
                if current is not None:
                    p_name, p = current
                    # conv → conv of the same kind, linear → linear, or conv → Flatten → linear
                    same_kind = isinstance(child, nn.Linear) if flattened else type(child) is type(p)
                    fits = _in_units(child) % _out_units(p) == 0 if flattened else _in_units(child) == _out_units(p)
                    if same_kind and fits:
                        pairs.append(_Pair(p_name, full, tuple(norms)))
                current, norms, flattened = (full, child), [], False
            elif isinstance(child, _NORMS) and current is not None and child.num_features == _out_units(current[1]):
                norms.append(full)
            elif isinstance(child, nn.Flatten) and current is not None and not isinstance(current[1], nn.Linear):
                flattened = True
            elif isinstance(child, _ELEMENTWISE) or (
                isinstance(child, _POOLS) and current is not None and not isinstance(current[1], nn.Linear)
            ):
                continue
            else:  # anything else (attention, normalisation over other axes, a nested block): stop the chain
                current, norms, flattened = None, [], False
    return pairs


def prunable_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """The ``(producer, consumer)`` layer pairs that :func:`prune_structured` shrinks by default.

    A pair is a ``Linear``/``Conv1d``/``Conv2d`` followed, inside the same ``nn.Sequential``, by another one
    that reads its outputs, with only element-wise modules (activations, dropout, pooling), matching
    BatchNorms or a ``Flatten`` (conv → linear) between them. Pruning only the width *between* the two keeps
    the model's inputs and outputs unchanged.
    """
    return [(p.producer, p.consumer) for p in _find_pairs(model)]


def _importance(layer: nn.Module, criterion: str) -> torch.Tensor:
    w = layer.weight.detach().flatten(1)  # one row per output unit / channel
    return w.abs().sum(1) if criterion == "l1" else w.pow(2).sum(1).sqrt()


def _rebuild(layer: nn.Module, out_idx: torch.Tensor | None = None, in_idx: torch.Tensor | None = None) -> nn.Module:
    w = layer.weight.detach()
    if out_idx is not None:
        w = w[out_idx]
    if in_idx is not None:
        w = w[:, in_idx]
    bias = layer.bias.detach() if layer.bias is not None else None
    if bias is not None and out_idx is not None:
        bias = bias[out_idx]
    kw = {"device": w.device, "dtype": w.dtype, "bias": bias is not None}
    if isinstance(layer, nn.Linear):
        new = nn.Linear(w.shape[1], w.shape[0], **kw)
    else:
        new = type(layer)(
            w.shape[1],
            w.shape[0],
            layer.kernel_size,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            padding_mode=layer.padding_mode,
            **kw,
        )
    with torch.no_grad():
        new.weight.copy_(w)
        if bias is not None:
            new.bias.copy_(bias)
    new.train(layer.training)
    return new


def _rebuild_norm(bn: nn.Module, idx: torch.Tensor) -> nn.Module:
    new = type(bn)(
        len(idx),
        eps=bn.eps,
        momentum=bn.momentum,
        affine=bn.affine,
        track_running_stats=bn.track_running_stats,
        device=idx.device,
    )
    with torch.no_grad():
        if bn.affine:
            new.weight.copy_(bn.weight[idx])
            new.bias.copy_(bn.bias[idx])
        if bn.track_running_stats:
            new.running_mean.copy_(bn.running_mean[idx])
            new.running_var.copy_(bn.running_var[idx])
            new.num_batches_tracked.copy_(bn.num_batches_tracked)
    new.train(bn.training)
    return new


def prune_structured(
    model: nn.Module,
    ratio: float,
    *,
    criterion: str = "l1",
    pairs: Sequence[tuple[str, str]] | None = None,
    inplace: bool = False,
) -> nn.Module:
    """Remove the ``ratio`` least important output units of every producer layer and rebuild smaller layers.

    For each ``(producer, consumer)`` pair (default: :func:`prunable_pairs`), unit ``j`` of the producer has
    importance ``‖W_j‖₁`` (``criterion="l1"``, Li et al. 2017) or ``‖W_j‖₂`` (``"l2"``), where ``W_j`` is its
    row (filter) of weights. The ``k = max(1, round((1 - ratio)·n))`` most important units are kept: the
    producer becomes a layer with ``k`` outputs (with its BatchNorm), and the consumer loses the matching
    inputs (all ``n/C`` inputs per channel after a ``Flatten``). Inputs and outputs of the model keep their
    shapes; parameters and FLOPs really shrink. ``ratio=0`` returns an identical copy. Returns a pruned copy
    of ``model`` (or ``model`` itself with ``inplace=True``); fine-tune it afterwards.

    ``pairs`` may name layers anywhere in the model (``"encoder.conv1"``), for architectures that are not an
    ``nn.Sequential``; each must be an ``nn.Linear``, ``nn.Conv1d`` or ``nn.Conv2d`` (``groups=1``).
    """
    ratio = check_fraction("ratio", ratio, closed_right=False)
    check_choice("criterion", criterion, ("l1", "l2"))
    if pairs is None:
        found = _find_pairs(model)
        if not found:
            raise ValueError(
                "model has no prunable pair: structured pruning needs an nn.Linear/nn.Conv1d/nn.Conv2d followed by "
                "another one inside an nn.Sequential (or pass pairs=[(producer_name, consumer_name), ...])"
            )
    else:
        found = []
        for producer, consumer in pairs:
            for name in (producer, consumer):
                layer = model.get_submodule(name)
                if not _supported(layer):
                    raise TypeError(
                        f"layer {name!r} is a {type(layer).__name__}; structured pruning supports nn.Linear, "
                        "nn.Conv1d and nn.Conv2d (groups=1)"
                    )
            p, c = model.get_submodule(producer), model.get_submodule(consumer)
            if _in_units(c) % _out_units(p):
                raise ValueError(
                    f"{consumer!r} has {_in_units(c)} inputs, not a multiple of the {_out_units(p)} outputs of "
                    f"{producer!r}: it does not read {producer!r}'s outputs"
                )
            found.append(_Pair(producer, consumer))
    out = model if inplace else copy.deepcopy(model)
    for pair in found:
        producer = out.get_submodule(pair.producer)
        consumer = out.get_submodule(pair.consumer)
        n = _out_units(producer)
        per_unit = _in_units(consumer) // n  # > 1 after a Flatten of a conv feature map
        k = max(1, int(round((1.0 - ratio) * n)))
        keep = torch.topk(_importance(producer, criterion), k).indices.sort().values
        cols = (keep[:, None] * per_unit + torch.arange(per_unit, device=keep.device)).flatten()
        out.set_submodule(pair.producer, _rebuild(producer, out_idx=keep))
        out.set_submodule(pair.consumer, _rebuild(consumer, in_idx=cols))
        for norm in pair.norms:
            out.set_submodule(norm, _rebuild_norm(out.get_submodule(norm), keep))
    return out


def prune_with_masks(model: nn.Module, ratio: float, *, structured: bool = False) -> nn.Module:
    """What ``torch.nn.utils.prune`` does, for contrast: a copy whose Linear/Conv weights are multiplied by 0/1
    masks (``weight = weight_orig ⊙ mask``, recomputed by a hook before every forward).

    ``structured=False``: the ``ratio`` smallest-magnitude weights of each layer (``l1_unstructured``);
    ``True``: whole output rows by L1 norm (``ln_structured``, n=1, dim=0). Shapes, parameter counts and FLOPs
    do not change, and the state dict grows (``weight_orig`` plus ``weight_mask``).
    """
    from torch.nn.utils import prune

    ratio = check_fraction("ratio", ratio, closed_right=False)
    out = copy.deepcopy(model)
    for module in out.modules():
        if isinstance(module, _PRODUCERS):
            if structured:
                prune.ln_structured(module, "weight", amount=ratio, n=1, dim=0)
            else:
                prune.l1_unstructured(module, "weight", amount=ratio)
    return out


def count_nonzero_parameters(model: nn.Module) -> int:
    """Number of non-zero weights the model computes with (masked weights count as zero)."""
    total = 0
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if name.endswith("_orig") and hasattr(module, name[: -len("_orig")]):
                p = getattr(module, name[: -len("_orig")])  # the masked weight actually used
            total += int((p != 0).sum())
    return total


def sparsity(model: nn.Module) -> float:
    """Share of zero entries among the weights the model computes with (``1 - nonzero / total``)."""
    total = sum(
        getattr(m, n[: -len("_orig")]).numel() if n.endswith("_orig") else p.numel()
        for m in model.modules()
        for n, p in m.named_parameters(recurse=False)
    )
    return 1.0 - count_nonzero_parameters(model) / max(total, 1)


# --------------------------------------------------------------------------------------------------------------
# Size on disk and dynamic int8 quantization
# --------------------------------------------------------------------------------------------------------------


def model_size_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: the size of the checkpoint you would ship."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def _has_torchao() -> bool:
    try:
        import torchao.quantization  # noqa: F401
    except Exception:
        return False
    return True


def quantize_int8(model: nn.Module, *, backend: str = "auto") -> nn.Module:
    """A CPU copy of ``model`` with dynamic int8 quantization of every ``nn.Linear`` (Jacob et al. 2018).

    Weights are stored as int8 with a scale, ``W ≈ s_W·W_q``; at run time each batch of activations gets its
    own scale, ``x ≈ s_x·x_q``, and ``y = s_x·s_W·(x_q·W_qᵀ) + b`` runs as an int8 matrix product. Only
    Linear layers change; no calibration data is needed. The result runs on the CPU only.

    ``backend``: ``"torchao"`` (the maintained API, ``torchao.quantization.quantize_`` with
    ``Int8DynamicActivationInt8WeightConfig``; needs the ``torchao`` package), ``"torch.ao"``
    (``torch.ao.quantization.quantize_dynamic``, built into torch but deprecated: its deprecation warnings are
    silenced here, deliberately and only for this call) or ``"auto"`` (torchao when installed, else torch.ao).
    The chosen backend is stored on the result as ``quantized_with``.
    """
    check_choice("backend", backend, ("auto", "torchao", "torch.ao"))
    if backend == "auto":
        backend = "torchao" if _has_torchao() else "torch.ao"
    q = copy.deepcopy(model).cpu().eval()
    if not any(isinstance(m, nn.Linear) for m in q.modules()):
        raise ValueError("model has no nn.Linear layer to quantize")
    if backend == "torchao":
        if not _has_torchao():
            raise ImportError("backend='torchao' needs the torchao package (pip install torchao)")
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        quantize_(q, Int8DynamicActivationInt8WeightConfig())
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*(deprecated|will be removed).*")
            q = torch.ao.quantization.quantize_dynamic(q, {nn.Linear}, dtype=torch.qint8)
    q.quantized_with = backend
    return q


# --------------------------------------------------------------------------------------------------------------
# ONNX export and ONNX Runtime
# --------------------------------------------------------------------------------------------------------------


def export_onnx(
    model: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    path: str | Path,
    *,
    input_names: Sequence[str] | None = None,
    output_name: str = "output",
    dynamic_batch: bool = True,
) -> Path:
    """Export ``model`` (a CPU copy in eval mode) to ONNX at ``path`` with ``torch.onnx.export(dynamo=True)``.

    The exporter traces the model with ``torch.export`` (so the forward pass must not branch on tensor
    values) and needs the ``onnx`` and ``onnxscript`` packages. With ``dynamic_batch`` the first dimension
    of every input is symbolic, so one file serves any batch size. The weights are stored inside the file
    (no ``.data`` side file). Returns the path.
    """
    inputs = tuple(example_inputs)
    for i, x in enumerate(inputs):
        check_tensor(f"example_inputs[{i}]", x, ndim=x.dim() if isinstance(x, torch.Tensor) else None)
    names = list(input_names) if input_names is not None else [f"input_{i}" for i in range(len(inputs))]
    if len(names) != len(inputs):
        raise ValueError(f"input_names has {len(names)} names for {len(inputs)} example_inputs")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cpu_model = copy.deepcopy(model).cpu().eval()
    cpu_inputs = tuple(x.detach().cpu() for x in inputs)
    dynamic_shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1)
        dynamic_shapes = tuple({0: batch} for _ in inputs)
        params = list(inspect.signature(cpu_model.forward).parameters.values())
        if params and params[0].kind is params[0].VAR_POSITIONAL:  # forward(*inputs): one entry for the tuple
            dynamic_shapes = (dynamic_shapes,)
    onnx_logger = logging.getLogger("torch.onnx")
    level = onnx_logger.level
    onnx_logger.setLevel(logging.ERROR)  # e.g. "torchvision is not installed", irrelevant here
    try:
        with warnings.catch_warnings():
            for category in (UserWarning, DeprecationWarning, FutureWarning):
                warnings.filterwarnings("ignore", category=category)
            torch.onnx.export(
                cpu_model,
                cpu_inputs,
                str(path),
                dynamo=True,
                input_names=names,
                output_names=[output_name],
                dynamic_shapes=dynamic_shapes,
                external_data=False,  # one self-contained file (fine below ONNX's 2 GB limit)
                verbose=False,
            )
    finally:
        onnx_logger.setLevel(level)
    return path


def onnx_session(path: str | Path, *, threads: int | None = None):
    """An ``onnxruntime.InferenceSession`` on the CPU for the ONNX file at ``path``.

    ``threads`` sets ONNX Runtime's intra-op threads (default: torch's, so that the comparison is fair).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or torch.get_num_threads())
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def onnx_run(session, *inputs: torch.Tensor) -> torch.Tensor:
    """Run an ONNX Runtime ``session`` on tensors (moved to the CPU) and return its first output as a tensor."""
    names = [i.name for i in session.get_inputs()]
    if len(names) != len(inputs):
        raise ValueError(f"the ONNX model takes {len(names)} inputs ({', '.join(names)}), got {len(inputs)}")
    feed = {n: x.detach().cpu().numpy() for n, x in zip(names, inputs)}
    return torch.from_numpy(session.run(None, feed)[0])


@torch.inference_mode()
def onnx_parity(model: nn.Module, session, *inputs: torch.Tensor) -> float:
    """``max |f_torch(x) - f_onnx(x)|``: the largest absolute difference between PyTorch and ONNX Runtime."""
    was_training = model.training
    model.eval()
    ref = model(*inputs).float().cpu()
    model.train(was_training)
    got = onnx_run(session, *inputs)
    if got.shape != ref.shape:
        raise ValueError(f"ONNX output has shape {tuple(got.shape)}, PyTorch {tuple(ref.shape)}")
    return float((got - ref).abs().max())


# --------------------------------------------------------------------------------------------------------------
# Batched inference with padding masks
# --------------------------------------------------------------------------------------------------------------


def pad_sequences(seqs: Sequence[torch.Tensor], pad_value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack variable-length items ``(L_i, *F)`` into ``padded (B, L_max, *F)`` and ``mask (B, L_max)``.

    ``mask[b, t]`` is True at real positions (``t < L_b``) and False at padding, which holds ``pad_value``.
    Every item must share the trailing shape ``F`` and dtype; nothing is broadcast.
    """
    if isinstance(seqs, torch.Tensor) or not len(seqs):
        raise ValueError("seqs must be a non-empty list of tensors shaped (L, *F)")
    first = seqs[0]
    check_tensor("seqs[0]", first, finite=False)
    if first.dim() < 1:
        raise ValueError("seqs[0] must have shape (L, *F), got a 0-d tensor")
    for i, s in enumerate(seqs):
        check_tensor(f"seqs[{i}]", s, finite=False)
        if s.dim() != first.dim() or s.shape[1:] != first.shape[1:]:
            want = ", ".join(["L", *map(str, first.shape[1:])])
            raise ValueError(
                f"seqs[{i}] has shape {tuple(s.shape)} but seqs[0] has {tuple(first.shape)}: every item must be "
                f"({want})"
            )
        if s.dtype != first.dtype:
            raise TypeError(f"seqs[{i}] has dtype {s.dtype} but seqs[0] has {first.dtype}")
    lengths = torch.tensor([len(s) for s in seqs], device=first.device)
    padded = first.new_full((len(seqs), int(lengths.max()), *first.shape[1:]), pad_value)
    for i, s in enumerate(seqs):
        padded[i, : len(s)] = s
    mask = torch.arange(padded.shape[1], device=first.device)[None] < lengths[:, None]
    return padded, mask


def _default_collate(items: Sequence[Any]):
    if all(isinstance(x, torch.Tensor) for x in items):
        if all(x.shape == items[0].shape for x in items):
            return torch.stack(list(items))
        return pad_sequences(items)
    return list(items)


@torch.inference_mode()
def batched_inference(
    model: Callable,
    items: Sequence[Any],
    *,
    batch_size: int = 64,
    collate: Callable[[Sequence[Any]], Any] | None = None,
    sort_by_length: bool = True,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Run ``model`` over ``items`` in batches, in ``eval()`` mode under ``torch.inference_mode()``.

    ``collate(batch_items)`` builds the model's input; a tuple is passed as ``model(*args)``, a dict as
    ``model(**kwargs)``, anything else as ``model(x)``. The default stacks tensors of one shape (fixed-size
    features), pads tensors of different lengths into ``(padded, mask)`` with :func:`pad_sequences`, and
    passes other items (e.g. strings) as a list; for a sequence model pass ``collate=pad_sequences`` so that
    it always gets a mask, even when a batch happens to hold equal lengths. With ``sort_by_length`` items are
    batched in order of length (less padding to compute) and the outputs are put back in the input order.
    Returns the concatenated outputs on the CPU.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(items, (str, torch.Tensor)) or not len(items):
        raise ValueError("items must be a non-empty sequence (a list of samples)")
    collate = collate or _default_collate
    module = model if isinstance(model, nn.Module) else None
    if device is None and module is not None:
        device = next(module.parameters(), torch.empty(0)).device
    was_training = module.training if module is not None else False
    if module is not None:
        module.eval()
    order = list(range(len(items)))
    if sort_by_length:
        order.sort(key=lambda i: len(items[i]) if hasattr(items[i], "__len__") else 0)
    outs = []
    try:
        for start in range(0, len(order), batch_size):
            x = collate([items[i] for i in order[start : start + batch_size]])
            if device is not None:
                from .train import to_device

                x = to_device(x, torch.device(device))
            y = model(*x) if isinstance(x, tuple) else model(**x) if isinstance(x, dict) else model(x)
            outs.append(y.detach().float().cpu())
    finally:
        if module is not None:
            module.train(was_training)
    out = torch.cat(outs)
    restored = torch.empty_like(out)
    restored[torch.tensor(order)] = out
    return restored


# --------------------------------------------------------------------------------------------------------------
# Caching: an LRU cache keyed by content
# --------------------------------------------------------------------------------------------------------------


def content_key(x: Any) -> Hashable:
    """A hashable key that depends on an item's content, never on its identity.

    Tensors and arrays: ``(dtype, shape, BLAKE2b-128 digest of the bytes)`` (so equal content gives equal keys
    and an in-place edit gives a new key); str, bytes, int (e.g. a sample id) and None: themselves; tuples and
    lists: the tuple of their items' keys. A tensor's own ``hash`` is its ``id()``: never use a tensor as a key.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu().contiguous().reshape(-1)
        digest = hashlib.blake2b(t.view(torch.uint8).numpy().tobytes(), digest_size=16).hexdigest()
        return ("tensor", str(x.dtype), tuple(x.shape), digest)
    if isinstance(x, np.ndarray):
        return content_key(torch.from_numpy(np.ascontiguousarray(x)))
    if isinstance(x, (str, bytes, int, float, bool)) or x is None:
        return (type(x).__name__, x)
    if isinstance(x, (tuple, list)):
        return ("seq", tuple(content_key(v) for v in x))
    raise TypeError(f"content_key supports tensors, arrays, str, bytes, numbers and tuples, got {type(x).__name__}")


@dataclass
class LRUCache:
    """A bounded mapping that evicts the least recently used entry when full (``capacity`` entries at most).

    Counts ``hits``, ``misses`` and ``evictions``; ``hit_rate = hits / (hits + misses)``.
    """

    capacity: int
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    _data: OrderedDict = field(default_factory=OrderedDict, repr=False)

    def __post_init__(self):
        if not isinstance(self.capacity, int) or self.capacity < 1:
            raise ValueError(f"capacity must be a positive int, got {self.capacity!r}")

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value stored under ``key`` (and mark it recently used), or ``default``; counts a hit or a miss."""
        if key in self._data:
            self._data.move_to_end(key)
            self.hits += 1
            return self._data[key]
        self.misses += 1
        return default

    def put(self, key: Hashable, value: Any) -> None:
        """Store ``value`` under ``key``, evicting the least recently used entry if the cache is full."""
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)
            self.evictions += 1

    def __contains__(self, key: Hashable) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    @property
    def hit_rate(self) -> float:
        n = self.hits + self.misses
        return self.hits / n if n else 0.0

    def clear(self) -> None:
        """Forget every entry and reset the counters."""
        self._data.clear()
        self.hits = self.misses = self.evictions = 0


class CachedEncoder:
    """Wrap a batch encoder ``fn(list_of_items) -> (B, D)`` with an :class:`LRUCache` keyed by ``key_fn(item)``
    (default :func:`content_key`; pass e.g. a sample-id function instead).

    A call looks every item up, encodes only the distinct misses, in one batch, stores their rows and returns
    ``(B, D)`` in the order of the items. Stored rows are detached copies, so editing a returned tensor never
    changes the cache.
    """

    def __init__(self, fn: Callable[[list], torch.Tensor], capacity: int = 1024, key_fn: Callable = content_key):
        self.fn = fn
        self.key_fn = key_fn
        self.cache = LRUCache(capacity)

    def __call__(self, items: Sequence[Any]) -> torch.Tensor:
        if isinstance(items, (str, torch.Tensor)) or not len(items):
            raise ValueError("items must be a non-empty sequence (a list of samples)")
        keys = [self.key_fn(x) for x in items]
        rows: list[torch.Tensor | None] = [self.cache.get(k) for k in keys]
        todo: dict[Hashable, int] = {}
        for i, (k, r) in enumerate(zip(keys, rows)):
            if r is None and k not in todo:
                todo[k] = i
        if todo:
            with torch.inference_mode():
                new = self.fn([items[i] for i in todo.values()])
            check_tensor("fn(items)", new, (len(todo), *([None] * (new.dim() - 1))), finite=False)
            fresh = {k: new[j].detach().clone() for j, k in enumerate(todo)}
            for k, v in fresh.items():
                self.cache.put(k, v)
            rows = [fresh[k] if r is None else r for k, r in zip(keys, rows)]
        return torch.stack(rows)

    @property
    def hit_rate(self) -> float:
        return self.cache.hit_rate


# --------------------------------------------------------------------------------------------------------------
# Latency measurement
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Timing:
    """Wall-clock times of repeated calls, in seconds; ``median`` and the interquartile range ``iqr``."""

    times: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def iqr(self) -> float:
        if len(self.times) < 2:
            return 0.0
        q = statistics.quantiles(self.times, n=4)
        return q[2] - q[0]

    def __str__(self) -> str:
        return f"{1e3 * self.median:.3f} ms (IQR {1e3 * self.iqr:.3f} ms, n={len(self.times)})"


def _sync(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def measure_latency(
    fn: Callable[[], Any],
    *,
    warmup: int = 3,
    repeats: int = 20,
    device: torch.device | str | None = None,
    clock: str = "wall",
    number: int = 1,
) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeats`` timed samples of ``number`` calls each.

    ``clock="wall"`` (``time.perf_counter``) measures latency as a user feels it; ``"cpu"``
    (``time.process_time``, all threads of this process) measures the work done, which other processes on a
    shared machine barely disturb (with one thread it approaches the latency on an idle core). On CUDA pass
    ``device``: the GPU is synchronised before and after each call, since kernels run asynchronously. Report
    the median, not the mean: a busy machine adds long outliers.
    """
    return compare_latency({"fn": fn}, warmup=warmup, repeats=repeats, device=device, clock=clock, number=number)["fn"]


def compare_latency(
    fns: Mapping[Any, Callable[[], Any]],
    *,
    warmup: int = 2,
    repeats: int = 15,
    device: torch.device | str | None = None,
    clock: str = "wall",
    number: int = 1,
) -> dict[Any, Timing]:
    """Time several functions side by side, interleaved: in round ``r`` each runs ``number`` times in a row
    (one sample: their mean time), the functions taking turns in a rotated order.

    Interleaving spreads any slow phase of a shared machine over every candidate, so ratios of medians (and
    :func:`paired_speedup`) stay meaningful when absolute times drift. ``number > 1`` times fast calls with
    warm caches, as when a server runs one model over and over (the first call after another model has run
    pays for reloading its weights into the CPU caches). ``clock`` is ``"wall"`` or ``"cpu"`` (see
    :func:`measure_latency`; GPU time is wall-clock time).
    """
    if not fns:
        raise ValueError("fns must name at least one function")
    if not isinstance(number, int) or number < 1:
        raise ValueError(f"number must be a positive int, got {number!r}")
    check_choice("clock", clock, ("wall", "cpu"))
    now = time.perf_counter if clock == "wall" else time.process_time
    if not isinstance(repeats, int) or repeats < 1 or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got repeats={repeats!r}, warmup={warmup!r}")
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    _sync(device)
    times: dict[Any, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for j in range(len(names)):
            name = names[(j + r) % len(names)]
            fn = fns[name]
            _sync(device)
            t0 = now()
            for _ in range(number):
                fn()
            _sync(device)
            times[name].append((now() - t0) / number)
    return {n: Timing(times[n]) for n in names}


def paired_speedup(timings: Mapping[Any, Timing], baseline: Any, other: Any) -> float:
    """``median_r(t_baseline,r / t_other,r)`` over the rounds of :func:`compare_latency`: how many times faster
    ``other`` is than ``baseline``. Pairing calls of the same round cancels slow drifts of a shared machine."""
    a, b = timings[baseline].times, timings[other].times
    if len(a) != len(b):
        raise ValueError(f"timings have {len(a)} and {len(b)} repeats: measure them together with compare_latency")
    return statistics.median(x / y for x, y in zip(a, b))


# --------------------------------------------------------------------------------------------------------------
# The pruning sweep and the lesson's widget
# --------------------------------------------------------------------------------------------------------------


@dataclass
class PruneSweep:
    """Results of :func:`pruning_sweep`, one entry per ratio; ``latency[b]`` holds median seconds per batch of
    ``b`` items (``ratios[0]`` should be 0, the unpruned model)."""

    ratios: list[float]
    accuracy: list[float]
    accuracy_no_finetune: list[float]
    params: list[int]
    size_bytes: list[int]
    latency: dict[int, list[float]]

    def index(self, ratio: float) -> int:
        """Position of the sweep ratio nearest to ``ratio`` (which must lie within 0.05 of one)."""
        i = int(np.argmin([abs(r - ratio) for r in self.ratios]))
        if abs(self.ratios[i] - ratio) > 0.05:
            raise ValueError(f"prune_ratio must be one of the swept ratios {self.ratios}, got {ratio}")
        return i


def pruning_sweep(
    model: nn.Module,
    ratios: Sequence[float],
    *,
    evaluate: Callable[[nn.Module], float],
    make_inputs: Callable[[int], tuple[torch.Tensor, ...]],
    batch_sizes: Sequence[int] = (1, 16, 256),
    finetune: Callable[[nn.Module], Any] | None = None,
    criterion: str = "l1",
    repeats: int = 7,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> PruneSweep:
    """Prune ``model`` at each ratio with :func:`prune_structured`, then record accuracy before and after
    ``finetune(pruned)`` (``evaluate(model) -> accuracy``), parameters, checkpoint size, and the median latency
    of ``model(*make_inputs(b))`` for every batch size ``b`` (all models timed side by side, interleaved, in
    eval mode under ``inference_mode``)."""
    from tqdm.auto import tqdm

    if not len(ratios) or not len(batch_sizes):
        raise ValueError("ratios and batch_sizes must be non-empty")
    models, acc, acc0, params, sizes = [], [], [], [], []
    for r in tqdm(list(ratios), desc="prune + fine-tune", disable=not progress, leave=False):
        pruned = prune_structured(model, r, criterion=criterion)
        acc0.append(float(evaluate(pruned)))
        if finetune is not None and r > 0:
            finetune(pruned)
        acc.append(float(evaluate(pruned)))
        pruned.eval()
        models.append(pruned)
        params.append(sum(p.numel() for p in pruned.parameters()))
        sizes.append(model_size_bytes(pruned))
    inputs = {b: make_inputs(b) for b in batch_sizes}

    def call(m: nn.Module, x: tuple) -> Callable[[], Any]:
        def run():
            with torch.inference_mode():
                return m(*x)

        return run

    timings = compare_latency(
        {(i, b): call(m, inputs[b]) for i, m in enumerate(models) for b in batch_sizes},
        repeats=repeats,
        device=device,
    )
    latency = {int(b): [timings[(i, b)].median for i in range(len(models))] for b in batch_sizes}
    return PruneSweep([float(r) for r in ratios], acc, acc0, params, sizes, latency)


def tradeoff_figure(sweep: PruneSweep, prune_ratio: float = 0.5, batch_size: int | None = None):
    """The lesson's widget: accuracy, speed-up and size against the prune ratio, the chosen setting marked.

    ``speed-up(r) = latency(0) / latency(r)`` at ``batch_size`` items per call; sizes are checkpoint bytes.
    """
    from .viz import new_figure

    i = sweep.index(prune_ratio)
    sizes = sorted(sweep.latency)
    batch_size = sizes[-1] if batch_size is None else int(batch_size)
    if batch_size not in sweep.latency:
        raise ValueError(f"batch_size must be one of the measured sizes {sizes}, got {batch_size}")
    r = np.array(sweep.ratios)
    lat = np.array(sweep.latency[batch_size])
    speed = lat[0] / lat
    kb = np.array(sweep.size_bytes) / 1e3
    fig, (a1, a2, a3) = new_figure(1, 3, size=(13, 3.6))
    a1.plot(r, sweep.accuracy_no_finetune, "o--", color="tab:red", label="pruned, no fine-tuning")
    a1.plot(r, sweep.accuracy, "o-", color="tab:green", label="pruned + fine-tuned")
    a1.axhline(sweep.accuracy[0], ls=":", color="gray", lw=1, label="unpruned")
    a1.set(
        xlabel="prune ratio (share of hidden units removed)",
        ylabel="test accuracy (fraction)",
        title="accuracy",
        ylim=(0, 1),
    )
    a1.legend(fontsize=8, loc="lower left")
    a2.plot(r, speed, "o-", color="tab:blue")
    a2.axhline(1.0, ls=":", color="gray", lw=1)
    a2.set(
        xlabel="prune ratio (share of hidden units removed)",
        ylabel="speed-up (× vs unpruned)",
        title=f"speed at batch {batch_size} ({1e3 * lat[0]:.2f} ms unpruned)",
    )
    a3.bar(r, kb, width=0.06, color="tab:purple", alpha=0.7)
    a3.set(xlabel="prune ratio (share of hidden units removed)", ylabel="checkpoint size (kB)", title="size on disk")
    for ax, y in ((a1, sweep.accuracy[i]), (a2, speed[i]), (a3, kb[i])):
        ax.axvline(r[i], color="black", lw=1, alpha=0.6)
        ax.plot([r[i]], [y], "*", ms=14, color="gold", mec="black", zorder=5)
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"prune {r[i]:.0%}, batch {batch_size}: accuracy {sweep.accuracy[i]:.1%} "
        f"({100 * (sweep.accuracy[i] - sweep.accuracy[0]):+.1f} points) · {speed[i]:.1f}× faster · "
        f"{kb[0] / kb[i]:.1f}× smaller"
    )
    return fig
