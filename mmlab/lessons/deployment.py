"""Lesson 5 (deployment): the lesson's model and features, the pruning sweep and its widget figure.

* :class:`MultimodalMLP`: an all-Linear late-fusion network (every layer can be pruned, quantized and exported);
* :func:`bag_of_words`: the caption features it reads;
* :func:`pruning_sweep` / :class:`PruneSweep`: prune at several ratios with
  :func:`mmlab.deploy.prune_structured`, fine-tune, time every model side by side with
  :func:`mmlab.deploy.compare_latency`;
* :func:`tradeoff_figure`: the lesson's widget (accuracy, speed-up and size against the prune ratio).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checks import check_tensor
from ..deploy import compare_latency, model_size_bytes, prune_structured
from ..models import count_parameters, mlp
from ..viz import new_figure

__all__ = ["MultimodalMLP", "bag_of_words", "PruneSweep", "pruning_sweep", "tradeoff_figure"]


class MultimodalMLP(nn.Module):
    """Late-fusion MLP: one tower per modality, concatenated, then a fusion head.

    ``z_m = f_m(x_m)`` with ``f_m = Linear(d_m→w) – ReLU – [Linear(w→w) – ReLU]×(depth-1) – Linear(w→e) – ReLU``,
    and ``logits = Linear(w→C)(ReLU(Linear(M·e→w)([z_1; …; z_M])))`` (late fusion by concatenation of learned
    embeddings, e.g. Ngiam et al. 2011). Every layer is an ``nn.Linear`` inside an ``nn.Sequential`` built by
    :func:`mmlab.models.mlp`, so :func:`mmlab.deploy.prune_structured` can shrink each hidden width,
    :func:`mmlab.deploy.quantize_int8` covers the whole network, and the forward pass has no data-dependent
    branch (it exports to ONNX).

    ``input_dims`` holds the feature count of each modality, in modality order; ``modalities`` optionally names
    them (for error messages; default ``input_0``, ``input_1``, ...). ``forward`` takes one tensor per
    modality, in that order, each ``(B, d_m)`` or ``(B, *)`` with ``d_m`` features per sample (e.g. an image
    ``(B, 1, 8, 8)``). ``towers[m]`` is modality ``m``'s tower.
    """

    def __init__(
        self,
        input_dims: Sequence[int],
        num_classes: int,
        width: int = 256,
        depth: int = 2,
        embed_dim: int = 64,
        *,
        modalities: Sequence[str] | None = None,
    ):
        super().__init__()
        if isinstance(input_dims, (str, dict)) or not isinstance(input_dims, Sequence) or not input_dims:
            raise ValueError(
                f"input_dims must be a non-empty sequence of feature counts, one per modality, got {input_dims!r}"
            )
        for i, d in enumerate(input_dims):
            if isinstance(d, bool) or not isinstance(d, int) or d < 1:
                raise ValueError(f"input_dims[{i}] must be a positive int, got {d!r}")
        for name, value in (("num_classes", num_classes), ("width", width), ("depth", depth), ("embed_dim", embed_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        names = [f"input_{m}" for m in range(len(input_dims))] if modalities is None else list(modalities)
        if len(names) != len(input_dims):
            raise ValueError(f"modalities must name {len(input_dims)} modalities like input_dims, got {names!r}")
        self.input_dims = tuple(input_dims)
        self.modalities = names
        self.num_classes = num_classes
        self.towers = nn.ModuleList(
            mlp(d, [width] * depth, embed_dim, final_activation=True, flatten=True) for d in self.input_dims
        )
        self.head = mlp(embed_dim * len(self.input_dims), width, num_classes)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if len(inputs) != len(self.input_dims):
            raise ValueError(
                f"expected {len(self.input_dims)} inputs ({', '.join(self.modalities)}), got {len(inputs)}"
            )
        sizes: dict[str, int] = {}
        feats = []
        for name, d, tower, x in zip(self.modalities, self.input_dims, self.towers, inputs):
            # shape checks only (no value checks), so that the forward pass stays export-friendly
            check_tensor(name, x, ("B", *([None] * (x.dim() - 1))), dtype="float", finite=False, sizes=sizes)
            if x.dim() < 2 or math.prod(x.shape[1:]) != d:
                raise ValueError(
                    f"{name} must have shape (B, {d}) (or (B, *) with as many features), got {tuple(x.shape)}"
                )
            feats.append(tower(x))
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
    clock: str = "wall",
    progress: bool = True,
) -> PruneSweep:
    """Prune ``model`` at each ratio with :func:`mmlab.deploy.prune_structured` (units ranked by ``‖W_j‖₁``,
    Li et al. 2017), then record accuracy before and after ``finetune(pruned)`` (``evaluate(model) ->
    accuracy``), parameters, checkpoint size, and the median latency of ``model(*make_inputs(b))`` for every
    batch size ``b`` (all models timed side by side, interleaved, in eval mode under ``inference_mode``, by
    :func:`mmlab.deploy.compare_latency` with ``repeats``, ``device`` and ``clock``)."""
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
        params.append(count_parameters(pruned))
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
        clock=clock,
    )
    latency = {int(b): [timings[(i, b)].median for i in range(len(models))] for b in batch_sizes}
    return PruneSweep([float(r) for r in ratios], acc, acc0, params, sizes, latency)


def tradeoff_figure(sweep: PruneSweep, prune_ratio: float = 0.5, batch_size: int | None = None):
    """The lesson's widget: accuracy, speed-up and size against the prune ratio, the chosen setting marked.

    ``speed-up(r) = latency(0) / latency(r)`` at ``batch_size`` items per call; sizes are checkpoint bytes.
    """

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
