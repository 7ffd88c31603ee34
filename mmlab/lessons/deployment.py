"""Lesson 5 (deployment): the lesson's model and features, the pruning sweep and its widget figure.

* :class:`MultimodalMLP`: an all-Linear late-fusion network (every layer can be pruned, quantized and exported);
* its caption features are :func:`mmlab.text.bag_of_words` counts;
* :func:`pruning_sweep` / :class:`PruneSweep`: prune at several ratios with
  :func:`mmlab.deploy.prune_structured`, fine-tune every model (the unpruned one too, for a fair baseline) over
  several seeds, evaluate on val and test, time every model side by side with
  :func:`mmlab.deploy.compare_latency`; :func:`choose_prune_ratio` picks a ratio from the validation split only;
* :func:`student_runs` / :func:`choose_distillation`: the same small student trained on labels alone or
  distilled with each ``(T, λ)``, over seeds, and the setting chosen on validation;
* :func:`tradeoff_figure`: the lesson's widget (accuracy, speed-up and size against the prune ratio).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checks import check_tensor
from ..deploy import Timing, compare_latency, distill, model_size_bytes, prune_structured
from ..models import count_parameters, mlp
from ..runtime import seeded
from ..train import fit
from ..viz import new_figure

__all__ = [
    "MultimodalMLP",
    "PruneSweep",
    "pruning_sweep",
    "choose_prune_ratio",
    "StudentRuns",
    "student_runs",
    "choose_distillation",
    "tradeoff_figure",
]


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


# --------------------------------------------------------------------------------------------------------------
# The pruning sweep and the lesson's widget
# --------------------------------------------------------------------------------------------------------------


@dataclass
class PruneSweep:
    """Results of :func:`pruning_sweep`, one entry per ratio (``ratios[0]`` should be 0, the unpruned model).

    ``accuracy[split]`` is ``(n_ratios, n_seeds)`` after fine-tuning (every ratio, 0 included, fine-tuned alike);
    ``accuracy_no_finetune[split]`` is ``(n_ratios,)`` right after pruning (deterministic: no seed);
    ``timings[b][i]`` holds the samples of ratio ``i`` at batch size ``b`` (``latency[b]`` their medians, in
    seconds); ``models[i]`` is the first seed's fine-tuned model at ratio ``i`` (eval mode)."""

    ratios: list[float]
    seeds: list[int]
    accuracy: dict[str, np.ndarray]
    accuracy_no_finetune: dict[str, np.ndarray]
    params: list[int]
    size_bytes: list[int]
    timings: dict[int, list[Timing]]
    models: list[nn.Module]

    @property
    def latency(self) -> dict[int, list[float]]:
        return {b: [t.median for t in ts] for b, ts in self.timings.items()}

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
    evaluate: Callable[[nn.Module], Mapping[str, float]],
    make_inputs: Callable[[int], tuple[torch.Tensor, ...]],
    batch_sizes: Sequence[int] = (1, 16, 256),
    finetune: Callable[[nn.Module, int], Any] | None = None,
    seeds: Sequence[int] = (0,),
    criterion: str = "l1",
    calibration: Sequence[torch.Tensor] | None = None,
    repeats: int = 7,
    device: torch.device | str | None = None,
    clock: str = "wall",
    progress: bool = True,
) -> PruneSweep:
    """Prune ``model`` at each ratio with :func:`mmlab.deploy.prune_structured` (``criterion``: ``"l1"`` ranks
    units by ``‖W_j‖₁``, Li et al. 2017; ``"taylor"`` by ``‖a_j·∂f/∂a_j‖`` on ``calibration``, after
    Molchanov et al. 2017), record ``evaluate(pruned) -> {split: accuracy}`` right after pruning, then for each
    seed ``s`` fine-tune a fresh copy with ``finetune(copy, s)`` and evaluate it again. Ratio 0 (the unpruned
    model) is fine-tuned exactly like the others, so that every pruned model is compared with a baseline that
    got the same extra training. Also records parameters, checkpoint size, and the latency of
    ``model(*make_inputs(b))`` for every batch size ``b`` (the first seed's models, all timed side by side,
    interleaved, in eval mode under ``inference_mode``, by :func:`mmlab.deploy.compare_latency` with
    ``repeats``, ``device`` and ``clock``; timing does not depend on the weights' values)."""
    import copy

    from tqdm.auto import tqdm

    if not len(ratios) or not len(batch_sizes) or not len(seeds):
        raise ValueError("ratios, batch_sizes and seeds must be non-empty")
    models, params, sizes = [], [], []
    acc: dict[str, list[list[float]]] = {}
    acc0: dict[str, list[float]] = {}
    for r in tqdm(list(ratios), desc="prune + fine-tune", disable=not progress, leave=False):
        pruned = prune_structured(model, r, criterion=criterion, calibration=calibration)
        for split, a in evaluate(pruned).items():
            acc0.setdefault(split, []).append(float(a))
        rows: dict[str, list[float]] = {}
        first = None
        for seed in seeds:
            tuned = copy.deepcopy(pruned)
            if finetune is not None:
                finetune(tuned, seed)
            tuned.eval()
            for split, a in evaluate(tuned).items():
                rows.setdefault(split, []).append(float(a))
            first = tuned if first is None else first
        for split, row in rows.items():
            acc.setdefault(split, []).append(row)
        models.append(first)
        params.append(count_parameters(first))
        sizes.append(model_size_bytes(first))
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
    return PruneSweep(
        [float(r) for r in ratios],
        [int(s) for s in seeds],
        {k: np.array(v) for k, v in acc.items()},
        {k: np.array(v) for k, v in acc0.items()},
        params,
        sizes,
        {int(b): [timings[(i, b)] for i in range(len(models))] for b in batch_sizes},
        models,
    )


def choose_prune_ratio(sweep: PruneSweep, *, split: str = "val", max_drop: float = 0.02) -> float:
    """The largest swept ratio whose fine-tuned accuracy on ``split`` stays within ``max_drop`` of the fine-tuned
    unpruned model's, on average over the seeds: ``max{r : mean_s(acc[r, s] − acc[0, s]) ≥ −max_drop}``.

    Meant for the validation split: the test split is read only after this choice."""
    if split not in sweep.accuracy:
        raise ValueError(f"split must be one of the evaluated splits {sorted(sweep.accuracy)}, got {split!r}")
    if sweep.ratios[0] != 0:
        raise ValueError(f"the sweep must start at ratio 0 (the fine-tuned baseline), got {sweep.ratios[0]}")
    acc = sweep.accuracy[split]
    drop = (acc - acc[0]).mean(axis=1)
    ok = [r for r, d in zip(sweep.ratios, drop) if d >= -max_drop]
    return max(ok)


Setting = tuple[float, float] | None  # (temperature T, λ) for distillation, None for labels alone


@dataclass
class StudentRuns:
    """Results of :func:`student_runs`: ``accuracy[setting][split]`` is ``(n_seeds,)``, one value per seed;
    ``setting`` is ``None`` (labels alone) or ``(T, λ)``; ``models[setting, seed]`` is that trained student (CPU,
    eval mode), to evaluate on another split later."""

    seeds: list[int]
    accuracy: dict[Setting, dict[str, np.ndarray]]
    models: dict[tuple[Setting, int], nn.Module]


def student_runs(
    make_student: Callable[[], nn.Module],
    teacher: nn.Module,
    make_loader: Callable[[int], Any],
    *,
    settings: Sequence[Setting],
    seeds: Sequence[int],
    evaluate: Callable[[nn.Module], Mapping[str, float]],
    epochs: int,
    lr: float,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> StudentRuns:
    """Train the same student for every setting and seed: ``None`` → cross-entropy on the labels
    (:func:`mmlab.train.fit`), ``(T, λ)`` → :func:`mmlab.deploy.distill` with temperature ``T`` and soft-target
    weight ``λ`` (Hinton et al. 2015). For seed ``s`` every setting starts from the same initialisation
    (``make_student()`` under :func:`mmlab.runtime.seeded` ``(s)``) and sees the same batches
    (``make_loader(s)``), so differences between settings are paired by seed. Each student is moved to the CPU
    and evaluated with ``evaluate(student) -> {split: accuracy}``."""
    from tqdm.auto import tqdm

    if not len(settings) or not len(seeds):
        raise ValueError("settings and seeds must be non-empty")
    acc: dict[Setting, dict[str, list[float]]] = {s: {} for s in settings}
    models: dict[tuple[Setting, int], nn.Module] = {}
    jobs = [(st, seed) for st in settings for seed in seeds]
    for setting, seed in tqdm(jobs, desc="students", disable=not progress, leave=False):
        with seeded(seed):
            student = make_student()
        kw = dict(epochs=epochs, lr=lr, device=device, progress=False)
        if setting is None:
            fit(student, make_loader(seed), **kw)
        else:
            t, lam = setting
            distill(student, teacher, make_loader(seed), temperature=t, alpha=lam, **kw)
        student = student.cpu().eval()
        for split, a in evaluate(student).items():
            acc[setting].setdefault(split, []).append(float(a))
        models[setting, seed] = student
    return StudentRuns(
        [int(s) for s in seeds], {st: {k: np.array(v) for k, v in d.items()} for st, d in acc.items()}, models
    )


def choose_distillation(runs: StudentRuns, *, split: str = "val") -> tuple[float, float]:
    """The distillation setting ``(T, λ)`` with the highest mean accuracy on ``split`` over the seeds (ties: the
    first in the order run). Meant for the validation split: test is read only after this choice."""
    options = [st for st in runs.accuracy if st is not None]
    if not options:
        raise ValueError("runs holds no distillation setting (only labels alone)")
    if any(split not in runs.accuracy[st] for st in options):
        raise ValueError(f"split {split!r} was not evaluated")
    means = [runs.accuracy[st][split].mean() for st in options]
    return options[int(np.argmax(means))]


def tradeoff_figure(sweep: PruneSweep, prune_ratio: float = 0.5, batch_size: int | None = None, *, split: str = "test"):
    """The lesson's widget: accuracy on ``split`` (mean ± sample std over the fine-tuning seeds, ddof = 1),
    speed-up and size against the prune ratio, the chosen setting marked.

    ``speed-up(r) = median latency(0) / median latency(r)`` at ``batch_size`` items per call; sizes are
    checkpoint bytes; the dotted line is the unpruned model fine-tuned like the pruned ones.
    """
    from ..stats import sample_std

    i = sweep.index(prune_ratio)
    sizes = sorted(sweep.latency)
    batch_size = sizes[-1] if batch_size is None else int(batch_size)
    if batch_size not in sweep.latency:
        raise ValueError(f"batch_size must be one of the measured sizes {sizes}, got {batch_size}")
    if split not in sweep.accuracy:
        raise ValueError(f"split must be one of the evaluated splits {sorted(sweep.accuracy)}, got {split!r}")
    r = np.array(sweep.ratios)
    lat = np.array(sweep.latency[batch_size])
    speed = lat[0] / lat
    kb = np.array(sweep.size_bytes) / 1e3
    acc = sweep.accuracy[split]
    mean = acc.mean(axis=1)
    std = sample_std(acc, axis=1) if acc.shape[1] > 1 else np.zeros(len(r))
    fig, (a1, a2, a3) = new_figure(1, 3, size=(13, 3.6))
    a1.plot(r, sweep.accuracy_no_finetune[split], "o--", color="tab:red", label="pruned, no fine-tuning")
    a1.errorbar(r, mean, yerr=std, fmt="o-", color="tab:green", capsize=3, label=f"+ fine-tuned ({acc.shape[1]} seeds)")
    a1.axhline(mean[0], ls=":", color="gray", lw=1, label="unpruned, fine-tuned alike")
    a1.set(
        xlabel="prune ratio (share of hidden units removed)",
        ylabel=f"{split} accuracy (fraction)",
        title=f"accuracy ({split} split)",
        ylim=(0, 1),
    )
    a1.legend(fontsize=8, loc="lower left")
    a2.plot(r, speed, "o-", color="tab:blue")
    a2.axhline(1.0, ls=":", color="gray", lw=1)
    a2.set(
        xlabel="prune ratio (share of hidden units removed)",
        ylabel="speed-up (× vs unpruned, medians)",
        title=f"speed at batch {batch_size} ({1e3 * lat[0]:.2f} ms unpruned)",
    )
    a3.bar(r, kb, width=0.06, color="tab:purple", alpha=0.7)
    a3.set(xlabel="prune ratio (share of hidden units removed)", ylabel="checkpoint size (kB)", title="size on disk")
    for ax, y in ((a1, mean[i]), (a2, speed[i]), (a3, kb[i])):
        ax.axvline(r[i], color="black", lw=1, alpha=0.6)
        ax.plot([r[i]], [y], "*", ms=14, color="gold", mec="black", zorder=5)
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"prune {r[i]:.0%}, batch {batch_size}: {split} accuracy {mean[i]:.1%} "
        f"({100 * (mean[i] - mean[0]):+.1f} points vs the fine-tuned unpruned model) · {speed[i]:.1f}× faster · "
        f"{kb[0] / kb[i]:.1f}× smaller"
    )
    return fig
