"""Lesson 6 (pitfalls): the depth study's model and trainer, the data-quality experiment and the lesson's widget.

**Model size.** :class:`FusionStack` is the recipe "fuse the features, then stack more layers": concatenate the
modalities' feature vectors and apply ``depth`` hidden layers of ``width`` units. :func:`train_on_features`
trains any such model on in-memory feature tensors with :func:`mmlab.train.fit`.

**Data quality.** :func:`run_quality` injects noise into AV-Digits (:func:`load_quality_data`), scores every item
with :func:`mmlab.quality.warmup_scores`, then trains and tests by each of :data:`QUALITY_METHODS`.
:func:`quality_widget_figure` is the lesson's widget (cached per setting). The methods themselves live in
:mod:`mmlab.quality`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from ..checks import check_fraction, check_tensor
from ..data import load_avdigits, standardize
from ..models import mlp
from ..quality import (
    InjectedNoise,
    QualityScores,
    filter_by_threshold,
    filter_report,
    inject_noise,
    soft_weights,
    warmup_scores,
    weighted_cross_entropy,
)
from ..runtime import seeded
from ..train import History, accuracy, fit, make_loader, predict
from ..viz import new_figure

__all__ = [
    "FusionStack",
    "train_on_features",
    "QualityData",
    "load_quality_data",
    "labeled_split",
    "train_and_test",
    "QUALITY_METHODS",
    "QualityRun",
    "run_quality",
    "score_histogram",
    "quality_widget_figure",
]


# --------------------------------------------------------------------------------------------------------------
# Model size: the "stack more layers" recipe
# --------------------------------------------------------------------------------------------------------------


class _PreNormResidual(nn.Module):
    """``h + W'' ReLU(W' LayerNorm(h))``: the pre-norm residual block of Transformers (He et al. 2016)."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.ff = mlp(width, width, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.ff(self.norm(h))


class FusionStack(nn.Module):
    """Concatenate the modalities' features, then stack ``depth`` hidden layers of ``width`` units.

    ``h_0 = [x_1; …; x_M]``, ``h_1 = ReLU(W_1 h_0)`` and, for ``l = 2…depth``, either the plain stack
    ``h_l = ReLU(W_l h_{l-1})`` (an :func:`mmlab.models.mlp`) or, with ``residual=True``, a pre-norm residual block
    ``h_l = h_{l-1} + W_l'' ReLU(W_l' LayerNorm(h_{l-1}))`` (He et al. 2016; the block Transformers use);
    ``logits = W_out h_depth``. ``forward(*features)`` takes one ``(B, d_m)`` tensor per modality.
    """

    def __init__(
        self, input_dims: Sequence[int], num_classes: int, width: int = 64, depth: int = 1, residual: bool = False
    ):
        super().__init__()
        if isinstance(input_dims, int) or not len(input_dims):
            raise ValueError(f"input_dims must be a non-empty sequence of ints, got {input_dims!r}")
        for name, value in [("num_classes", num_classes), ("width", width), ("depth", depth)] + [
            (f"input_dims[{i}]", d) for i, d in enumerate(input_dims)
        ]:
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.input_dims, self.num_classes = [int(d) for d in input_dims], num_classes
        self.width, self.depth, self.residual = width, depth, residual
        if residual:  # Linear–ReLU, depth−1 residual blocks, Linear head (same initialisation order as by hand)
            self.net = nn.Sequential(
                mlp(sum(self.input_dims), [], width, final_activation=True),
                *[_PreNormResidual(width) for _ in range(depth - 1)],
                nn.Linear(width, num_classes),
            )
        else:
            self.net = mlp(sum(self.input_dims), [width] * depth, num_classes)

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        if len(features) != len(self.input_dims):
            raise ValueError(f"expected {len(self.input_dims)} feature tensors, got {len(features)}")
        sizes: dict[str, int] = {}
        for i, (x, d) in enumerate(zip(features, self.input_dims)):
            check_tensor(f"features[{i}]", x, ("B", d), dtype="float", sizes=sizes)
        return self.net(torch.cat(features, dim=-1))


def train_on_features(
    model: nn.Module,
    features: Sequence[torch.Tensor],
    labels: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 3e-3,
    weight_decay: float = 0.0,
    loss_weights: torch.Tensor | None = None,
    sampler_weights: torch.Tensor | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    desc: str = "train",
) -> History:
    """Train ``model(*features)`` on ``labels`` with :func:`mmlab.train.fit` (AdamW, cross-entropy, progress bar).

    Batches come from :func:`mmlab.train.make_loader`, shuffled with ``seed``. ``sampler_weights`` (N,) instead
    draw N items per epoch with replacement, item ``i`` with probability ``w_i / Σ_j w_j`` (score-weighted
    sampling); ``loss_weights`` (N,) weight each item's loss (:func:`mmlab.quality.weighted_cross_entropy`).
    """
    if isinstance(features, torch.Tensor):
        features = [features]
    check_tensor("labels", labels, (None,), dtype="int")
    for i, x in enumerate(features):
        check_tensor(f"features[{i}]", x, (len(labels), *([None] * (x.dim() - 1))))
    if loss_weights is not None and sampler_weights is not None:
        raise ValueError("pass loss_weights or sampler_weights, not both")
    tensors = [*features, labels]
    if loss_weights is not None:
        check_tensor("loss_weights", loss_weights, (len(labels),), dtype="float")
        tensors.append(loss_weights)
    if sampler_weights is not None:
        check_tensor("sampler_weights", sampler_weights, (len(labels),), dtype="float")
    loader = make_loader(
        *tensors, batch_size=batch_size, shuffle=sampler_weights is None, weights=sampler_weights, seed=seed
    )
    n_feat = len(features)

    def forward(model: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        out = model(*batch[:n_feat])
        return (out, (batch[n_feat], batch[n_feat + 1])) if loss_weights is not None else (out, batch[n_feat])

    def loss_fn(out: torch.Tensor, target) -> torch.Tensor:
        if isinstance(target, tuple):
            return weighted_cross_entropy(out, *target)
        return F.cross_entropy(out, target)

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    return fit(
        model,
        loader,
        epochs=epochs,
        optimizer=opt,
        loss_fn=loss_fn,
        forward_fn=forward,
        device=device,
        progress=progress,
        desc=desc,
    )


# --------------------------------------------------------------------------------------------------------------
# The data-quality experiment: data, one run
# --------------------------------------------------------------------------------------------------------------


@dataclass
class QualityData:
    """AV-Digits as flat features for the data-quality experiments: images (N, 64) and standardised MFCC
    statistics (N, 40), train and test (test speakers are unseen)."""

    image: torch.Tensor
    audio: torch.Tensor
    label: torch.Tensor
    test_image: torch.Tensor
    test_audio: torch.Tensor
    test_label: torch.Tensor

    @property
    def input_dims(self) -> list[int]:
        return [self.image.shape[1], self.audio.shape[1]]


@lru_cache(maxsize=4)
def load_quality_data(image_noise: float = 0.6) -> QualityData:
    """Image + speech features of AV-Digits with ``image_noise`` pixel noise (so that both modalities matter)."""
    train = load_avdigits("train", audio_format="mfcc_stats", image_noise=image_noise)
    test = load_avdigits("test", audio_format="mfcc_stats", image_noise=image_noise)
    audio, test_audio = standardize(train.audio, test.audio)
    return QualityData(train.image.flatten(1), audio, train.label, test.image.flatten(1), test_audio, test.label)


def labeled_split(labels: torch.Tensor, per_class: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of ``per_class`` random items of each class (the labelled set) and of all the others (sorted)."""
    check_tensor("labels", labels, (None,), dtype="int")
    if not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"per_class must be a positive int, got {per_class!r}")
    y = labels.cpu().numpy()
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < per_class:
            raise ValueError(f"class {c} has only {len(idx)} items, fewer than per_class={per_class}")
        chosen.append(rng.choice(idx, per_class, replace=False))
    lab = np.sort(np.concatenate(chosen))
    rest = np.setdiff1d(np.arange(len(y)), lab)
    return torch.from_numpy(lab), torch.from_numpy(rest)


def train_and_test(
    data: QualityData,
    image: torch.Tensor,
    audio: torch.Tensor,
    labels: torch.Tensor,
    *,
    seed: int = 0,
    sampler_weights: torch.Tensor | None = None,
    epochs: int = 40,
    width: int = 128,
    device: torch.device | str | None = None,
    progress: bool = False,
    desc: str = "train",
) -> float:
    """Train a one-hidden-layer :class:`FusionStack` on ``(image, audio, labels)`` and return its accuracy on the
    clean test split of ``data``. Trained long enough (40 epochs) to memorise what it is given, as models in
    practice are. ``seed`` fixes the initialisation (without touching the caller's global random state) and the
    batch order."""
    with seeded(seed):
        model = FusionStack(data.input_dims, int(data.label.max()) + 1, width=width)
    train_on_features(
        model,
        [image, audio],
        labels,
        epochs=epochs,
        sampler_weights=sampler_weights,
        seed=seed,
        device=device,
        progress=progress,
        desc=desc,
    )
    return accuracy(predict(model, [data.test_image, data.test_audio]), data.test_label.cpu())


@dataclass
class QualityRun:
    """One noise setting and seed: the injected noise, the warm-up scores, the keep mask, the filter's report
    and the test accuracy of each training method (``"dirty"``, ``"filtered"``, ``"weighted"``, ...)."""

    noise: InjectedNoise
    scores: QualityScores
    keep: torch.Tensor
    report: dict[str, float]
    accuracy: dict[str, float]


QUALITY_METHODS = ("clean", "dirty", "filtered", "weighted", "oracle")
"""The ways :func:`run_quality` can train on the noisy data (see its docstring)."""


def run_quality(
    data: QualityData,
    *,
    mismatch: float,
    label_noise: float,
    seed: int = 0,
    agreement_threshold: float = 0.5,
    loglik_threshold: float = -math.log(10),
    temperature: tuple[float, float] = (0.1, 0.5),
    methods: Sequence[str] = ("dirty", "filtered", "weighted", "oracle"),
    warmup_epochs: int = 8,
    epochs: int = 40,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> QualityRun:
    """Inject noise, score every item with a warm-up model, then train by each method and test on clean data.

    ``dirty``: all items as they are; ``filtered``: only items with ``agreement ≥ agreement_threshold`` and
    ``loglik ≥ loglik_threshold``; ``weighted``: all items, drawn with probability ``∝ w_i`` where
    ``w_i = σ((a_i − τ_a)/T_a)·σ((ℓ_i − τ_ℓ)/T_ℓ)`` and ``temperature = (T_a, T_ℓ)``; ``oracle``: only the truly
    clean items; ``clean``: the data before any noise was injected. ``warmup_epochs`` and ``epochs`` are the
    scorer's and each classifier's training lengths.
    """
    unknown = set(methods) - set(QUALITY_METHODS)
    if unknown:
        raise ValueError(f"methods must be among {list(QUALITY_METHODS)}, got {sorted(unknown)}")
    num_classes = int(data.label.max()) + 1
    noise = inject_noise(data.label, mismatch=mismatch, label_noise=label_noise, num_classes=num_classes, seed=seed)
    image, audio, y = data.image, noise.pair(data.audio), noise.labels
    scores = warmup_scores(
        [image, audio], y, epochs=warmup_epochs, num_classes=num_classes, seed=seed, device=device, progress=progress
    )
    keep = filter_by_threshold(scores.agreement, agreement_threshold) & filter_by_threshold(
        scores.loglik, loglik_threshold
    )
    weights = soft_weights(scores.agreement, agreement_threshold, temperature[0]) * soft_weights(
        scores.loglik, loglik_threshold, temperature[1]
    )
    subsets = {
        "clean": (image, data.audio, data.label, None),
        "dirty": (image, audio, y, None),
        "filtered": (image[keep], audio[keep], y[keep], None),
        "weighted": (image, audio, y, weights),
        "oracle": (image[~noise.noisy], audio[~noise.noisy], y[~noise.noisy], None),
    }
    accuracy = {
        m: train_and_test(
            data,
            *subsets[m][:3],
            sampler_weights=subsets[m][3],
            seed=seed,
            epochs=epochs,
            device=device,
            progress=progress,
            desc=m,
        )
        for m in methods
    }
    return QualityRun(noise, scores, keep, filter_report(keep, noise.noisy), accuracy)


# --------------------------------------------------------------------------------------------------------------
# Plots and the widget
# --------------------------------------------------------------------------------------------------------------


def score_histogram(
    scores: torch.Tensor,
    groups: dict[str, torch.Tensor],
    *,
    threshold: float | None = None,
    xlabel: str,
    title: str,
    bins: int = 30,
    logy: bool = False,
    ax=None,
) -> Figure:
    """Histograms of ``scores`` for each named group (bool masks), with an optional dashed threshold line."""
    check_tensor("scores", scores, (None,), dtype="float")
    if ax is None:
        _, ax = new_figure(size=(5.2, 3.4))
    s = scores.detach().cpu().numpy()
    edges = np.histogram_bin_edges(s, bins=bins)
    for name, mask in groups.items():
        check_tensor(f"groups[{name!r}]", mask, (len(s),), dtype="bool")
        ax.hist(s[mask.cpu().numpy()], bins=edges, alpha=0.55, label=f"{name} ({int(mask.sum())})")
    if threshold is not None and math.isfinite(threshold):
        ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.2f}")
    ax.set(xlabel=xlabel, ylabel="items (count)", title=title)
    if logy:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    return ax.figure


@lru_cache(maxsize=64)
def _cached_scores(
    mismatch: float, label_noise: float, seed: int, image_noise: float, warmup_epochs: int
) -> tuple[InjectedNoise, QualityScores]:
    data = load_quality_data(image_noise)
    noise = inject_noise(data.label, mismatch=mismatch, label_noise=label_noise, num_classes=10, seed=seed)
    scores = warmup_scores(
        [data.image, noise.pair(data.audio)], noise.labels, epochs=warmup_epochs, seed=seed, progress=False
    )
    return noise, scores


@lru_cache(maxsize=256)
def _cached_accuracy(
    mismatch: float,
    label_noise: float,
    seed: int,
    image_noise: float,
    warmup_epochs: int,
    epochs: int,
    which: str,
    thresholds: tuple[float, float] | tuple[()],
) -> float:
    data = load_quality_data(image_noise)
    noise, scores = _cached_scores(mismatch, label_noise, seed, image_noise, warmup_epochs)
    audio, y = noise.pair(data.audio), noise.labels
    if which == "dirty":
        keep = torch.ones(len(y), dtype=torch.bool)
    elif which == "oracle":
        keep = ~noise.noisy
    else:
        ta, tl = thresholds
        keep = filter_by_threshold(scores.agreement, ta) & filter_by_threshold(scores.loglik, tl)
    if keep.sum() < 10:
        return float("nan")
    return train_and_test(data, data.image[keep], audio[keep], y[keep], seed=seed, epochs=epochs)


def quality_widget_figure(
    agreement_threshold: float = 0.5,
    loglik_threshold: float = -2.3,
    mismatch: float = 0.3,
    label_noise: float = 0.2,
    seed: int = 0,
    image_noise: float = 0.6,
    warmup_epochs: int = 8,
    epochs: int = 40,
) -> Figure:
    """Lesson 6's widget: noise rates and the two filter thresholds in; score histograms split by the injected
    ground truth, the kept data's precision and recall, and the test accuracy of training on dirty, filtered and
    truly clean (oracle) data out. Results are cached per setting, so moving a slider back is instant.
    ``warmup_epochs`` and ``epochs`` (scorer and classifiers) are fixed in the lesson; tests make them small."""
    check_fraction("mismatch", mismatch)
    check_fraction("label_noise", label_noise)
    mismatch, label_noise = round(float(mismatch), 3), round(float(label_noise), 3)
    ta, tl = round(float(agreement_threshold), 3), round(float(loglik_threshold), 3)
    setting = (mismatch, label_noise, seed, image_noise, warmup_epochs)
    noise, scores = _cached_scores(*setting)
    keep = filter_by_threshold(scores.agreement, ta) & filter_by_threshold(scores.loglik, tl)
    rep = filter_report(keep, noise.noisy)
    acc = {
        "dirty": _cached_accuracy(*setting, epochs, "dirty", ()),
        "filtered": _cached_accuracy(*setting, epochs, "filtered", (ta, tl)),
        "oracle": _cached_accuracy(*setting, epochs, "oracle", ()),
    }
    fig, (a1, a2, a3) = new_figure(1, 3, size=(13, 3.6), width_ratios=[1.2, 1.2, 1])
    score_histogram(
        scores.agreement,
        {"intact pairs": ~noise.mismatched, "mismatched pairs": noise.mismatched},
        threshold=ta,
        xlabel="agreement cos(p_image, p_audio)",
        title="cross-modal agreement",
        ax=a1,
    )
    score_histogram(
        scores.loglik.clamp_min(-12),
        {"right labels": ~noise.wrong_label, "wrong labels": noise.wrong_label},
        threshold=tl,
        xlabel="small-loss score log p(y|x) (nats)",
        title="small-loss score",
        logy=True,
        ax=a2,
    )
    bars = {
        "kept\nprecision": rep["kept_precision"],
        "kept\nrecall": rep["kept_recall"],
        "acc.\ndirty": acc["dirty"],
        "acc.\nfiltered": acc["filtered"],
        "acc.\noracle": acc["oracle"],
    }
    colors = ["tab:blue", "tab:blue", "tab:red", "tab:green", "tab:gray"]
    heights = [0.0 if math.isnan(v) else v for v in bars.values()]
    a3.bar(list(bars), heights, color=colors, alpha=0.8)
    for i, v in enumerate(bars.values()):
        a3.annotate("n/a" if math.isnan(v) else f"{v:.2f}", (i, 0 if math.isnan(v) else v), ha="center", va="bottom")
    a3.set(ylim=(0, 1.08), ylabel="fraction", title="kept data · test accuracy")
    a3.tick_params(axis="x", labelsize=8)
    fig.suptitle(
        f"{100 * mismatch:.0f}% mismatched pairs, {100 * label_noise:.0f}% wrong labels: the filter keeps "
        f"{100 * rep['kept']:.0f}% of the training data (seed {seed})"
    )
    return fig
