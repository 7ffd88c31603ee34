"""Lesson 3's experiments: an image + audio classifier that meets missing modalities at test time.

The lesson's data recipe (:func:`load_missing_data`: AV-Digits image pixels and audio MFCC statistics; train,
val = training voices with new recordings, test = unseen voices), its encoders (:func:`lesson_encoders`), its
selection criterion (:func:`robustness_score`), the driver that builds, trains, selects the epoch on val and
scores one model for one seed (:func:`train_missing_model`, on :func:`mmlab.missing.train_classifier`), and
the lesson's figure
(:func:`missing_curves_figure`; the widget draws :func:`mmlab.missing.missing_rates_figure`). The methods themselves
(presence masks, fills, ModDrop, reconstruction, evaluation) live in :mod:`mmlab.missing`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from ..checks import check_choice
from ..data import load_avdigits, standardize
from ..missing import (
    MissingModalityClassifier,
    accuracy_by_pattern,
    missing_rate_curve,
    robustness_auc,
    train_classifier,
)
from ..models import MLPEncoder
from ..runtime import seeded
from ..stats import sample_std
from ..train import History
from ..viz import new_figure, plot_curves

__all__ = [
    "MISSING_MODALITIES",
    "MissingData",
    "load_missing_data",
    "lesson_encoders",
    "robustness_score",
    "MissingRun",
    "train_missing_model",
    "missing_curves_figure",
]

MISSING_MODALITIES = ("image", "audio")
"""The lesson's two modalities, in the order of every input list and presence mask."""


@dataclass
class MissingData:
    """Two-modality AV-Digits as flat tensors, in the order of ``modalities``: image (N, 64) and audio (N, 40).

    image: the 8×8 digit flattened; audio: mean and std of 20 MFCCs over time, standardised with training
    statistics only. ``val`` holds new images and new recordings of the training voices (what the lesson
    chooses on); ``test`` new images and two voices never heard in training (what it reports). Without a val
    split (``val_inputs=None``) nothing can be chosen on val.
    """

    train_inputs: list[torch.Tensor]
    train_labels: torch.Tensor
    test_inputs: list[torch.Tensor]
    test_labels: torch.Tensor
    modalities: tuple[str, ...] = MISSING_MODALITIES
    num_classes: int = 10
    val_inputs: list[torch.Tensor] | None = None
    val_labels: torch.Tensor | None = None

    def _indices(self, modalities: Sequence[str]) -> list[int]:
        unknown = [m for m in modalities if m not in self.modalities]
        if not modalities or unknown:
            raise ValueError(f"modalities must be a non-empty subset of {list(self.modalities)}, got {modalities}")
        return [self.modalities.index(m) for m in modalities]

    def select(self, modalities: Sequence[str]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``(train_inputs, test_inputs)`` restricted to ``modalities``, in that order."""
        idx = self._indices(modalities)
        return [self.train_inputs[k] for k in idx], [self.test_inputs[k] for k in idx]

    def split(self, name: str, modalities: Sequence[str] | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``(inputs, labels)`` of split ``name`` (``"train"``, ``"val"`` or ``"test"``) for ``modalities``."""
        check_choice("name", name, ("train", "val", "test"))
        inputs, labels = getattr(self, f"{name}_inputs"), getattr(self, f"{name}_labels")
        if inputs is None or labels is None:
            raise ValueError(f"this MissingData has no {name!r} split")
        idx = self._indices(list(self.modalities) if modalities is None else list(modalities))
        return [inputs[k] for k in idx], labels


def load_missing_data() -> MissingData:
    """The lesson's data: AV-Digits ``train``, ``val`` (training voices, new recordings) and ``test`` (unseen
    voices), image pixels and MFCC statistics (audio standardised with the training split's statistics only)."""
    train, val, test = (load_avdigits(s, audio_format="mfcc_stats") for s in ("train", "val", "test"))
    audio_train, audio_val, audio_test = standardize(train.audio, val.audio, test.audio)
    return MissingData(
        train_inputs=[train.image.flatten(1), audio_train],
        train_labels=train.label,
        test_inputs=[test.image.flatten(1), audio_test],
        test_labels=test.label,
        val_inputs=[val.image.flatten(1), audio_val],
        val_labels=val.label,
    )


def lesson_encoders(modalities: Sequence[str] = MISSING_MODALITIES) -> dict[str, nn.Module]:
    """Fresh encoders for ``modalities``: a small MLP per modality (``MLPEncoder``, hidden 64), each to 32-d.

    Both encoders are always built, image first, then the requested ones are kept, so that a seed gives each
    encoder the same initialisation whether it is trained alone or with the other.
    """
    built = {"image": MLPEncoder(64, 32, hidden=64), "audio": MLPEncoder(40, 32, hidden=64)}
    unknown = [m for m in modalities if m not in built]
    if not modalities or unknown:
        raise ValueError(f"modalities must be a non-empty subset of {list(built)}, got {list(modalities)}")
    return {m: built[m] for m in modalities}


def robustness_score(pattern_acc: Mapping[tuple[bool, ...], float]) -> float:
    """The lesson's selection criterion: the robustness AUC averaged over the modalities.

    For each modality ``m``, :func:`~mmlab.missing.robustness_auc` of its straight line
    :func:`~mmlab.missing.missing_rate_curve` from rate 0 to 1 — which is just ``(acc(all) + acc(without m)) / 2``
    — then the mean over ``m``. For a one-modality model it is its accuracy.
    """
    num = len(next(iter(pattern_acc)))
    if num == 1:
        return float(pattern_acc[(True,)])
    rates = [0.0, 1.0]
    return float(np.mean([robustness_auc(rates, missing_rate_curve(pattern_acc, m, rates)) for m in range(num)]))


@dataclass
class MissingRun:
    """One trained model, restored to the epoch with the best validation :func:`robustness_score` (when the
    data have a val split): the model (eval mode), its training :class:`~mmlab.train.History` (with
    ``val_score`` per epoch), its test accuracy for every presence pattern
    (:func:`mmlab.missing.accuracy_by_pattern`), the same on val, and the kept epoch (1-based)."""

    model: MissingModalityClassifier
    history: History
    pattern_acc: dict[tuple[bool, ...], float]
    val_acc: dict[tuple[bool, ...], float] | None = None
    best_epoch: int | None = None


def train_missing_model(
    seed: int,
    data: MissingData,
    *,
    modalities: Sequence[str] | None = None,
    epochs: int = 30,
    recon_weight: float = 1.0,
    device: torch.device | str | None = None,
    progress: bool = True,
    desc: str | None = None,
    **model_kwargs,
) -> MissingRun:
    """Build a :class:`~mmlab.missing.MissingModalityClassifier` on ``modalities`` (default: all), train it
    with :func:`~mmlab.missing.train_classifier` (``recon_weight`` weighs the reconstruction loss of
    ``fill="reconstruct"``; 0 keeps the reconstructor, trained by the classification loss alone) and score it.

    When ``data`` has a val split the epoch is chosen on val: after each epoch the model's
    :func:`robustness_score` on val is computed and the weights of the best epoch (first on ties) are kept,
    ``ê = argmax_e score_val(θ_e)``; only then is the test split scored (``pattern_acc``). Without a val split
    the last epoch is kept. Initialisation, ModDrop's masks and the batch order all follow ``seed`` (inside
    ``seeded(seed)``: the same numbers as after ``seed_everything(seed)``, and the caller's random state is
    left as it was). ``model_kwargs`` go to the classifier (``fill``, ``train_rates``, ``hidden``).
    """
    modalities = list(data.modalities if modalities is None else modalities)
    train_inputs, test_inputs = data.select(modalities)
    has_val = data.val_inputs is not None and data.val_labels is not None
    best: dict = {"score": -1.0, "epoch": None, "state": None, "acc": None}

    def keep_best(model: nn.Module, epoch: int) -> dict[str, float]:
        val_inputs, val_labels = data.split("val", modalities)
        acc = accuracy_by_pattern(model, val_inputs, val_labels)
        score = robustness_score(acc)
        if score > best["score"]:
            best.update(score=score, epoch=epoch + 1, state=copy.deepcopy(model.state_dict()), acc=acc)
        return {"val_score": score}

    with seeded(seed):
        model = MissingModalityClassifier(lesson_encoders(modalities), data.num_classes, **model_kwargs)
        label = desc if desc is not None else (", ".join(f"{k}={v}" for k, v in model_kwargs.items()) or "full data")
        history = train_classifier(
            model,
            train_inputs,
            data.train_labels,
            epochs=epochs,
            recon_weight=recon_weight,
            seed=seed,
            device=device,
            progress=progress,
            desc=label,
            after_epoch=keep_best if has_val else None,
        )
    if has_val:
        model.load_state_dict(best["state"])
    test_acc = accuracy_by_pattern(model, test_inputs, data.test_labels)
    return MissingRun(model, history, test_acc, best["acc"], best["epoch"])


def _spread(values, axis: int = 0):
    """Error bars over seeds: :func:`mmlab.stats.sample_std` (ddof=1), drawn as 0 for a single seed."""
    return np.nan_to_num(sample_std(values, axis))


def missing_curves_figure(
    pattern_accs: Mapping[str, Sequence[Mapping[tuple[bool, ...], float]]],
    ceilings: Mapping[str, float],
    *,
    modalities: Sequence[str] = MISSING_MODALITIES,
    rates: Sequence[float] = tuple(np.linspace(0, 1, 11)),
    title: str = "Accuracy vs test-time missing rate",
) -> Figure:
    """Expected test accuracy against the missing rate of each of two modalities (one panel each), for every
    method in ``pattern_accs`` (mean ± std over seeds), with the other modality's accuracy alone dashed.

    ``pattern_accs`` maps a method to one :func:`~mmlab.missing.accuracy_by_pattern` result per seed; each
    curve is :func:`~mmlab.missing.missing_rate_curve`, ``(1 - r)·acc(all) + r·acc(without m)``.
    ``ceilings`` maps each modality to its accuracy alone (the level at rate 1 of the *other* modality).
    """
    if len(modalities) != 2:
        raise ValueError(f"modalities must name exactly two modalities, got {list(modalities)}")
    missing = [m for m in modalities if m not in ceilings]
    if missing:
        raise ValueError(f"ceilings must give an accuracy alone for {missing}")
    rates = np.asarray(rates, dtype=np.float64)
    fig, axes = new_figure(1, 2, size=(11, 3.8))
    for k, (ax, m) in enumerate(zip(axes, modalities)):
        curves = {n: np.array([missing_rate_curve(a, k, rates) for a in accs]) for n, accs in pattern_accs.items()}
        other = modalities[1 - k]
        plot_curves(
            rates,
            {n: c.mean(0) for n, c in curves.items()},
            errors={n: _spread(c) for n, c in curves.items()},
            xlabel=f"{m} missing rate at test time (fraction)",
            ylabel="test accuracy (fraction)",
            title=f"{m} goes missing",
            ax=ax,
        )
        ax.axhline(ceilings[other], ls="--", lw=1, color="black", label=f"{other} alone (ceiling at rate 1)")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8, loc="lower left")
    fig.suptitle(title)
    return fig
