"""Lesson 6 (pitfalls): the depth study's model and trainer, the data-quality experiment and the lesson's widget.

**Model size.** :class:`FusionStack` is the recipe "fuse the features, then stack more layers": concatenate the
modalities' feature vectors and apply ``depth`` hidden layers of ``width`` units. :func:`train_on_features`
trains any such model on in-memory feature tensors with :func:`mmlab.train.fit`; :func:`tune_on_val` chooses its
learning rate and epoch on validation data (:class:`EarlyStopping`), so that every depth gets the same fair search.

**Data quality.** :func:`run_quality` injects noise into AV-Digits (:func:`load_quality_data`), scores every item
with :func:`mmlab.quality.warmup_scores`, trains by each of :data:`QUALITY_METHODS`, chooses the filter's
thresholds on the clean validation split (among :data:`mmlab.quality.FILTER_GRID`) and only then tests.
:func:`quality_widget_figure` is the lesson's widget (cached per setting). The methods themselves live in
:mod:`mmlab.quality`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
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
    FILTER_GRID,
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
    "StopTraining",
    "EarlyStopping",
    "TunedRun",
    "tune_on_val",
    "train_classifier",
    "split_accuracy",
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
    after_epoch: Callable[[nn.Module, int], dict[str, float] | None] | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    desc: str = "train",
) -> History:
    """Train ``model(*features)`` on ``labels`` with :func:`mmlab.train.fit` (AdamW, cross-entropy, progress bar).

    Batches come from :func:`mmlab.train.make_loader`, shuffled with ``seed``. ``sampler_weights`` (N,) instead
    draw N items per epoch with replacement, item ``i`` with probability ``w_i / Σ_j w_j`` (score-weighted
    sampling); ``loss_weights`` (N,) weight each item's loss (:func:`mmlab.quality.weighted_cross_entropy`).
    ``after_epoch`` is passed to :func:`~mmlab.train.fit` (e.g. an :class:`EarlyStopping` on validation data).
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
        after_epoch=after_epoch,
        device=device,
        progress=progress,
        desc=desc,
    )


class StopTraining(Exception):
    """Raised by :class:`EarlyStopping` from :func:`mmlab.train.fit`'s ``after_epoch`` hook to end training."""


class EarlyStopping:
    """Early stopping on validation accuracy, as an ``after_epoch`` hook for :func:`mmlab.train.fit`.

    After every epoch ``e`` it measures ``acc_val(e)`` on ``(features, labels)``, keeps a copy of the weights of
    the best epoch ``e* = argmax_e acc_val(e)`` (the first one on ties) and raises :class:`StopTraining` once
    ``patience`` epochs have passed without a new best (Prechelt 1998, "Early stopping — but when?").
    :meth:`run` trains, catches the stop and loads the best weights: the number of epochs becomes a choice made
    on validation data. (``fit`` has no stop signal; this hook ends it with an exception.)
    """

    def __init__(self, features: Sequence[torch.Tensor], labels: torch.Tensor, *, patience: int):
        if isinstance(features, torch.Tensor):
            features = [features]
        check_tensor("labels", labels, (None,), dtype="int")
        for i, x in enumerate(features):
            check_tensor(f"features[{i}]", x, (len(labels), *([None] * (x.dim() - 1))))
        if not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be a positive int, got {patience!r}")
        self.features, self.labels, self.patience = list(features), labels.cpu(), patience
        self.val_acc: list[float] = []
        self.best_acc, self.best_epoch = -math.inf, 0
        self._best_state: dict[str, torch.Tensor] | None = None

    def __call__(self, model: nn.Module, epoch: int) -> dict[str, float]:
        acc = accuracy(predict(model, self.features), self.labels)
        self.val_acc.append(acc)
        if acc > self.best_acc:
            self.best_acc, self.best_epoch = acc, len(self.val_acc)
            self._best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif len(self.val_acc) - self.best_epoch >= self.patience:
            raise StopTraining
        return {"val_acc": acc}

    def run(self, model: nn.Module, train: Callable[[Callable[[nn.Module, int], dict[str, float]]], object]) -> None:
        """``train(after_epoch)`` (which must pass ``after_epoch=self`` on to ``fit``), then restore the best
        epoch's weights into ``model``."""
        try:
            train(self)
        except StopTraining:
            pass
        if self._best_state is None:
            raise RuntimeError("EarlyStopping never ran: pass it to fit as after_epoch")
        model.load_state_dict(self._best_state)

    @property
    def epochs_run(self) -> int:
        return len(self.val_acc)


@dataclass
class TunedRun:
    """The model :func:`tune_on_val` chose and how: its hyper-parameters, the chosen epoch, its validation
    accuracy, its training accuracy at that epoch, and the validation accuracy of every grid point."""

    model: nn.Module
    params: dict[str, float]
    epoch: int
    val_acc: float
    train_acc: float
    grid: list[tuple[dict[str, float], int, float]]


def tune_on_val(
    make_model: Callable[[], nn.Module],
    train: Callable[..., object],
    val_features: Sequence[torch.Tensor],
    val_labels: torch.Tensor,
    *,
    grid: Sequence[dict[str, float]],
    patience: int,
    seed: int = 0,
    train_features: Sequence[torch.Tensor] | None = None,
    train_labels: torch.Tensor | None = None,
) -> TunedRun:
    """Choose hyper-parameters and the epoch on validation data only.

    For each point ``θ`` of ``grid`` (e.g. ``{"lr": 1e-3}``): build ``make_model()`` (initialised inside
    :func:`mmlab.runtime.seeded` with ``seed``, the same initial weights for every ``θ``), train it with
    ``train(model, after_epoch=stopper, **θ)`` under :class:`EarlyStopping`, keep the best epoch. Return the
    ``(θ, epoch)`` with the highest validation accuracy (the first in grid order on ties). No test data is seen.
    """
    if not len(grid):
        raise ValueError("grid must hold at least one setting")
    best: TunedRun | None = None
    seen = []
    for point in grid:
        with seeded(seed):
            model = make_model()
        stopper = EarlyStopping(val_features, val_labels, patience=patience)
        stopper.run(model, lambda hook, model=model, point=point: train(model, after_epoch=hook, **point))
        seen.append((dict(point), stopper.best_epoch, stopper.best_acc))
        if best is None or stopper.best_acc > best.val_acc:
            train_acc = (
                accuracy(predict(model, list(train_features)), train_labels.cpu())
                if train_features is not None and train_labels is not None
                else float("nan")
            )
            best = TunedRun(model, dict(point), stopper.best_epoch, stopper.best_acc, train_acc, seen)
    best.grid = seen
    return best


# --------------------------------------------------------------------------------------------------------------
# The data-quality experiment: data, one run
# --------------------------------------------------------------------------------------------------------------


@dataclass
class QualityData:
    """AV-Digits as flat features for the data-quality experiments: images (N, 64) and standardised MFCC
    statistics (N, 40) of the train, val (seen voices, unseen recordings and images) and test (unseen voices)
    splits. Choices are made on val, results reported on test."""

    image: torch.Tensor
    audio: torch.Tensor
    label: torch.Tensor
    val_image: torch.Tensor
    val_audio: torch.Tensor
    val_label: torch.Tensor
    test_image: torch.Tensor
    test_audio: torch.Tensor
    test_label: torch.Tensor

    @property
    def input_dims(self) -> list[int]:
        return [self.image.shape[1], self.audio.shape[1]]

    @property
    def val(self) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``([val_image, val_audio], val_label)``."""
        return [self.val_image, self.val_audio], self.val_label

    @property
    def test(self) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``([test_image, test_audio], test_label)``."""
        return [self.test_image, self.test_audio], self.test_label


@lru_cache(maxsize=4)
def load_quality_data(image_noise: float = 0.6) -> QualityData:
    """Image + speech features of AV-Digits with ``image_noise`` pixel noise (so that both modalities matter);
    MFCC statistics standardised with the training split's mean and std."""
    splits = [load_avdigits(s, audio_format="mfcc_stats", image_noise=image_noise) for s in ("train", "val", "test")]
    audio = standardize(*[d.audio for d in splits])
    return QualityData(*[t for d, a in zip(splits, audio) for t in (d.image.flatten(1), a, d.label)])


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


def train_classifier(
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
) -> nn.Module:
    """Train a one-hidden-layer :class:`FusionStack` on ``(image, audio, labels)`` for a fixed ``epochs`` (long
    enough to memorise what it is given, as models in practice are) and return it. ``seed`` fixes the
    initialisation (without touching the caller's global random state) and the batch order."""
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
    return model


def split_accuracy(model: nn.Module, data: QualityData, split: str) -> float:
    """Accuracy of ``model`` on the clean ``"val"`` or ``"test"`` split of ``data``."""
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    features, labels = getattr(data, split)
    return accuracy(predict(model, features), labels.cpu())


@dataclass
class QualityRun:
    """One noise setting and seed: the injected noise, the warm-up scores, the chosen filter's keep mask and
    report, the validation accuracy of every candidate, the choices made on validation and, after them, the test
    accuracy of each training method (``"dirty"``, ``"filtered"``, ``"weighted"``, ...)."""

    noise: InjectedNoise
    scores: QualityScores
    keep: torch.Tensor
    report: dict[str, float]
    val_candidates: dict[str, list[float]]
    chosen: dict[str, tuple[float, float]]
    val_accuracy: dict[str, float]
    accuracy: dict[str, float]


QUALITY_METHODS = ("clean", "dirty", "filtered", "weighted", "oracle")
"""The ways :func:`run_quality` can train on the noisy data (see its docstring)."""

def run_quality(
    data: QualityData,
    *,
    mismatch: float,
    label_noise: float,
    seed: int = 0,
    thresholds: Sequence[tuple[float, float]] = FILTER_GRID,
    temperature: tuple[float, float] = (0.1, 0.5),
    methods: Sequence[str] = ("dirty", "filtered", "weighted", "oracle"),
    warmup_epochs: int = 8,
    epochs: int = 40,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> QualityRun:
    """Inject noise into the training split, score every item with a warm-up model, train by each method, choose
    the thresholds on the clean validation split, then — only then — test on the clean test split.

    ``dirty``: all items as they are; ``filtered``: only items with ``agreement ≥ τ_a`` and ``loglik ≥ τ_ℓ``;
    ``weighted``: all items, drawn with probability ``∝ w_i`` where ``w_i = σ((a_i − τ_a)/T_a)·σ((ℓ_i − τ_ℓ)/T_ℓ)``
    and ``temperature = (T_a, T_ℓ)``; ``oracle``: only the truly clean items; ``clean``: the data before any noise
    was injected. For ``filtered`` and ``weighted`` one model is trained per ``(τ_a, τ_ℓ)`` in ``thresholds`` and
    the one with the highest validation accuracy (the first on ties) is kept. Validation and test data are never
    corrupted: they stand for a small hand-checked set and for the clean data the model will serve.
    ``warmup_epochs`` and ``epochs`` are the scorer's and each classifier's training lengths.
    """
    unknown = set(methods) - set(QUALITY_METHODS)
    if unknown:
        raise ValueError(f"methods must be among {list(QUALITY_METHODS)}, got {sorted(unknown)}")
    if not len(thresholds):
        raise ValueError("thresholds must hold at least one (agreement, loglik) pair")
    num_classes = int(data.label.max()) + 1
    noise = inject_noise(data.label, mismatch=mismatch, label_noise=label_noise, num_classes=num_classes, seed=seed)
    image, audio, y = data.image, noise.pair(data.audio), noise.labels
    scores = warmup_scores(
        [image, audio], y, epochs=warmup_epochs, num_classes=num_classes, seed=seed, device=device, progress=progress
    )

    def keep_mask(ta: float, tl: float) -> torch.Tensor:
        return filter_by_threshold(scores.agreement, ta) & filter_by_threshold(scores.loglik, tl)

    def weights(ta: float, tl: float) -> torch.Tensor:
        return soft_weights(scores.agreement, ta, temperature[0]) * soft_weights(scores.loglik, tl, temperature[1])

    fixed = {
        "clean": (image, data.audio, data.label, None),
        "dirty": (image, audio, y, None),
        "oracle": (image[~noise.noisy], audio[~noise.noisy], y[~noise.noisy], None),
    }
    train = lambda m, x1, x2, t, w: train_classifier(  # noqa: E731
        data, x1, x2, t, sampler_weights=w, seed=seed, epochs=epochs, device=device, progress=progress, desc=m
    )
    models: dict[str, nn.Module] = {}
    val_candidates: dict[str, list[float]] = {}
    chosen: dict[str, tuple[float, float]] = {}
    for m in methods:
        if m in fixed:
            models[m] = train(m, *fixed[m])
            continue
        candidates = []
        for ta, tl in thresholds:
            if m == "filtered":
                keep = keep_mask(ta, tl)
                candidates.append(train(m, image[keep], audio[keep], y[keep], None))
            else:
                candidates.append(train(m, image, audio, y, weights(ta, tl)))
        val_candidates[m] = [split_accuracy(c, data, "val") for c in candidates]
        best = int(np.argmax(val_candidates[m]))  # the choice sees validation accuracy only
        chosen[m], models[m] = tuple(thresholds[best]), candidates[best]
    val_accuracy = {m: split_accuracy(model, data, "val") for m, model in models.items()}
    keep = keep_mask(*chosen.get("filtered", thresholds[0]))
    # every choice is made: now, and only now, the test split
    test_accuracy = {m: split_accuracy(model, data, "test") for m, model in models.items()}
    return QualityRun(
        noise, scores, keep, filter_report(keep, noise.noisy), val_candidates, chosen, val_accuracy, test_accuracy
    )


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
    model = train_classifier(data, data.image[keep], audio[keep], y[keep], seed=seed, epochs=epochs)
    return split_accuracy(model, data, "val")  # the widget explores choices, so it shows validation accuracy


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
    ground truth, the kept data's precision and recall, and the *validation* accuracy of training on dirty,
    filtered and truly clean (oracle) data out (thresholds are choices: they are explored on val, never on
    test). Results are cached per setting, so moving a slider back is instant.
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
        "val acc.\ndirty": acc["dirty"],
        "val acc.\nfiltered": acc["filtered"],
        "val acc.\noracle": acc["oracle"],
    }
    colors = ["tab:blue", "tab:blue", "tab:red", "tab:green", "tab:gray"]
    heights = [0.0 if math.isnan(v) else v for v in bars.values()]
    a3.bar(list(bars), heights, color=colors, alpha=0.8)
    for i, v in enumerate(bars.values()):
        a3.annotate("n/a" if math.isnan(v) else f"{v:.2f}", (i, 0 if math.isnan(v) else v), ha="center", va="bottom")
    a3.set(ylim=(0, 1.08), ylabel="fraction", title="kept data · validation accuracy")
    a3.tick_params(axis="x", labelsize=8)
    fig.suptitle(
        f"{100 * mismatch:.0f}% mismatched pairs, {100 * label_noise:.0f}% wrong labels: the filter keeps "
        f"{100 * rep['kept']:.0f}% of the training data (seed {seed})"
    )
    return fig
