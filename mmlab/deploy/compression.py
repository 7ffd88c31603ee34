"""Compression: make a trained model smaller, and count what it holds.

* **Structured pruning** (Li et al. 2017, "Pruning Filters for Efficient ConvNets"): rank a layer's output units
  (neurons, channels) by an importance score, keep the top ones and *rebuild* smaller layers, the next layer
  losing the matching inputs (:func:`prune_structured`, :func:`prunable_pairs`, scores from
  :func:`unit_importance`). Unlike ``torch.nn.utils.prune``, which only multiplies weights by a mask
  (:func:`prune_with_masks`, for contrast), this removes computation. Fine-tune afterwards.
  Li et al.'s score, the L1 norm of a unit's incoming weights, depends on the parametrisation: in a ReLU network,
  scaling unit ``j``'s incoming weights and bias by ``c > 0`` and its outgoing weights by ``1/c`` leaves the
  function unchanged (``relu(c·z) = c·relu(z)``) but multiplies its L1 score by ``c``. The data-driven
  ``"taylor"`` score (after Molchanov et al. 2017: activation × gradient of the outputs, on a calibration
  batch) does not move.
* **Counting**: :func:`count_nonzero_parameters`, :func:`sparsity`, and :func:`model_size_bytes` (the
  checkpoint you would ship).
* **Dynamic int8 quantization** (Jacob et al. 2018, :func:`quantize_int8`): Linear weights stored as int8,
  activations quantized on the fly. CPU only.
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..checks import check_choice, check_fraction
from ..train import eval_mode

__all__ = [
    "prunable_pairs",
    "prune_structured",
    "unit_importance",
    "prune_with_masks",
    "count_nonzero_parameters",
    "sparsity",
    "model_size_bytes",
    "quantize_int8",
]

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


CRITERIA = ("l1", "l2", "taylor")


def _importance(layer: nn.Module, criterion: str) -> torch.Tensor:
    w = layer.weight.detach().flatten(1)  # one row per output unit / channel
    return w.abs().sum(1) if criterion == "l1" else w.pow(2).sum(1).sqrt()


def _taylor_scores(model: nn.Module, pairs: Sequence[_Pair], calibration) -> dict[str, torch.Tensor]:
    """``s_j = mean_x ‖Σ_p a_{j,p}(x)·∂f(x)/∂a_{j,p}(x)‖₂`` for every producer, from one forward pass and one
    backward pass per output of the model ``f`` (logits, ``(B, C)``) over the calibration batch: ``a_j`` is what
    the consumer reads from unit ``j`` (after activation, pooling, norm), ``p`` runs over positions."""
    inputs = tuple(calibration) if isinstance(calibration, (tuple, list)) else (calibration,)
    if not inputs or not all(isinstance(x, torch.Tensor) for x in inputs):
        raise ValueError("calibration must be a tensor or a tuple of tensors: the model's inputs for one batch")
    seen: dict[str, torch.Tensor] = {}
    hooks = []
    for pair in pairs:

        def grab(module, args, name=pair.consumer):
            a = args[0]
            if not a.requires_grad:  # the first layer of a chain: start the graph here
                a = a.detach().requires_grad_()
            seen[name] = a
            return (a, *args[1:])

        hooks.append(model.get_submodule(pair.consumer).register_forward_pre_hook(grab))
    names = list(dict.fromkeys(p.consumer for p in pairs))
    units = {p.consumer: _out_units(model.get_submodule(p.producer)) for p in pairs}
    try:
        device = next(model.parameters()).device
        with torch.enable_grad(), eval_mode(model):
            out = model(*(x.to(device) for x in inputs))
            if out.dim() != 2:
                raise ValueError(f"the model must return (B, C) outputs for criterion='taylor', got {tuple(out.shape)}")
            missing = [n for n in names if n not in seen]
            if missing:
                raise ValueError(f"the calibration forward pass never reached {missing}")
            sq = {n: 0.0 for n in names}
            for k in range(out.shape[1]):  # items are independent in eval mode: ∂(Σ_x f_k(x))/∂a(x) = ∂f_k(x)/∂a(x)
                grads = torch.autograd.grad(out[:, k].sum(), [seen[n] for n in names], retain_graph=True)
                for n, g in zip(names, grads):
                    ag = (seen[n] * g).detach()
                    # Σ over positions p: (B, n_units, positions) → (B, n_units)
                    sq[n] = sq[n] + ag.reshape(ag.shape[0], units[n], -1).sum(2).pow(2)
    finally:
        for h in hooks:
            h.remove()
    return {pair.producer: sq[pair.consumer].sqrt().mean(0) for pair in pairs}


def _resolve_pairs(model: nn.Module, pairs: Sequence[tuple[str, str]] | None) -> list[_Pair]:
    if pairs is None:
        found = _find_pairs(model)
        if not found:
            raise ValueError(
                "model has no prunable pair: structured pruning needs an nn.Linear/nn.Conv1d/nn.Conv2d followed by "
                "another one inside an nn.Sequential (or pass pairs=[(producer_name, consumer_name), ...])"
            )
        return found
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
    return found


def unit_importance(
    model: nn.Module,
    criterion: str = "l1",
    *,
    calibration: torch.Tensor | Sequence[torch.Tensor] | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
) -> dict[str, torch.Tensor]:
    """Importance of every output unit of every producer layer, ``{producer name: scores (n_units,)}``.

    * ``"l1"``: ``s_j = ‖W_j‖₁``, the L1 norm of unit ``j``'s incoming weights (its filter; Li et al. 2017,
      "Pruning Filters for Efficient ConvNets"); ``"l2"``: ``‖W_j‖₂``.
    * ``"taylor"``: ``s_j = mean_x ‖Σ_p a_{j,p}(x)·∂f(x)/∂a_{j,p}(x)‖₂``, the first-order Taylor estimate of
      how much the model's outputs ``f(x)`` (logits, ``(B, C)``) move when unit ``j``'s activation ``a_j`` (as
      the next layer reads it, at every position ``p``) is set to zero, averaged over the ``calibration`` batch
      (the model's inputs: a tensor or a tuple of tensors; no labels). Molchanov et al. 2017 ("Pruning
      Convolutional Neural Networks for Resource Efficient Inference") expand the *loss* instead; on a model
      that fits its calibration data the loss gradient nearly vanishes and that score turns to noise, so we
      expand the outputs. One forward pass and ``C`` backward passes, in eval mode.

    Why offer the second: for positively homogeneous activations (ReLU: ``relu(c·z) = c·relu(z)`` for
    ``c > 0``), scaling unit ``j``'s incoming weights and bias by ``c`` and the next layer's weights on it by
    ``1/c`` leaves every output unchanged, yet multiplies ``‖W_j‖₁`` by ``c`` — so the L1 ranking, and what gets
    pruned, depends on the parametrisation, not on what the network computes. The Taylor score depends only on
    the function: ``a_j`` scales by ``c``, ``∂f/∂a_j`` by ``1/c``, and every other unit's activation and
    gradient stay as they were (tested for chained layers and for a scale absorbed by BatchNorm). Two
    simpler-looking fixes are *not* invariant: the mean ``|a_j|`` alone scales by ``c``, and ``|a_j|`` (or
    ``‖W_j‖``) times the norm of unit ``j``'s outgoing weights changes when a unit of the *next* layer is
    rescaled. Scores are computed on ``model`` as given (not after pruning other layers).
    """
    check_choice("criterion", criterion, CRITERIA)
    found = _resolve_pairs(model, pairs)
    if criterion == "taylor":
        if calibration is None:
            raise ValueError("criterion='taylor' needs calibration: the model's inputs for one batch")
        return _taylor_scores(model, found, calibration)
    return {p.producer: _importance(model.get_submodule(p.producer), criterion) for p in found}


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
    calibration: torch.Tensor | Sequence[torch.Tensor] | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
    inplace: bool = False,
) -> nn.Module:
    """Remove the ``ratio`` least important output units of every producer layer and rebuild smaller layers.

    For each ``(producer, consumer)`` pair (default: :func:`prunable_pairs`), unit ``j`` of the producer gets an
    importance score (:func:`unit_importance`): ``‖W_j‖₁`` (``criterion="l1"``, Li et al. 2017), ``‖W_j‖₂``
    (``"l2"``), where ``W_j`` is its row (filter) of weights, or the first-order estimate of how much the
    outputs move when it is removed (``"taylor"``, after Molchanov et al. 2017, on the ``calibration`` inputs;
    unlike the weight norms it does not change under a rescaling that leaves the function unchanged).
    The ``k = max(1, round((1 - ratio)·n))`` most important units are kept: the producer becomes a layer with
    ``k`` outputs (with its BatchNorm), and the consumer loses the matching inputs (all ``n/C`` inputs per
    channel after a ``Flatten``). Inputs and outputs of the model keep their shapes; parameters and FLOPs
    really shrink. ``ratio=0`` returns an identical copy. Returns a pruned copy of ``model`` (or ``model``
    itself with ``inplace=True``); fine-tune it afterwards.

    Weight-norm scores are taken pair by pair as the layers are rebuilt (a producer that is also the previous
    pair's consumer is scored without the inputs already removed: Li et al.'s "greedy" variant); Taylor scores
    all come from one forward and backward pass of the unpruned model.

    ``pairs`` may name layers anywhere in the model (``"encoder.conv1"``), for architectures that are not an
    ``nn.Sequential``; each must be an ``nn.Linear``, ``nn.Conv1d`` or ``nn.Conv2d`` (``groups=1``).
    """
    ratio = check_fraction("ratio", ratio, closed_right=False)
    check_choice("criterion", criterion, CRITERIA)
    found = _resolve_pairs(model, pairs)
    taylor = None
    if criterion == "taylor":
        if calibration is None:
            raise ValueError("criterion='taylor' needs calibration: the model's inputs for one batch")
        taylor = _taylor_scores(model, found, calibration)
    out = model if inplace else copy.deepcopy(model)
    for pair in found:
        producer = out.get_submodule(pair.producer)
        consumer = out.get_submodule(pair.consumer)
        n = _out_units(producer)
        per_unit = _in_units(consumer) // n  # > 1 after a Flatten of a conv feature map
        k = max(1, int(round((1.0 - ratio) * n)))
        scores = taylor[pair.producer] if taylor is not None else _importance(producer, criterion)
        keep = torch.topk(scores, k).indices.sort().values
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
