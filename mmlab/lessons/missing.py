"""Lesson 3's experiments: an image + audio classifier that meets missing modalities at test time.

The lesson's data recipe (:func:`load_missing_data`: AV-Digits image pixels and audio MFCC statistics), its
encoders (:func:`lesson_encoders`), the driver that builds, trains and scores one model for one seed
(:func:`train_missing_model`, on :func:`mmlab.missing.train_classifier`), and the lesson's figures
(:func:`missing_curves_figure`, and :func:`missing_rates_figure` behind the widget). The methods themselves
(presence masks, fills, ModDrop, reconstruction, evaluation) live in :mod:`mmlab.missing`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from ..data import load_avdigits, standardize
from ..missing import (
    MissingModalityClassifier,
    accuracy_by_pattern,
    check_rates,
    effective_rates,
    expected_accuracy,
    missing_rate_curve,
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
    "MissingRun",
    "train_missing_model",
    "missing_curves_figure",
    "missing_rates_figure",
]

MISSING_MODALITIES = ("image", "audio")
"""The lesson's two modalities, in the order of every input list and presence mask."""


@dataclass
class MissingData:
    """Two-modality AV-Digits as flat tensors, in the order of ``modalities``: image (N, 64) and audio (N, 40).

    image: the 8×8 digit flattened; audio: mean and std of 20 MFCCs over time, standardised with training
    statistics only. Test clips come from two voices never heard in training.
    """

    train_inputs: list[torch.Tensor]
    train_labels: torch.Tensor
    test_inputs: list[torch.Tensor]
    test_labels: torch.Tensor
    modalities: tuple[str, ...] = MISSING_MODALITIES
    num_classes: int = 10

    def select(self, modalities: Sequence[str]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``(train_inputs, test_inputs)`` restricted to ``modalities``, in that order."""
        unknown = [m for m in modalities if m not in self.modalities]
        if not modalities or unknown:
            raise ValueError(f"modalities must be a non-empty subset of {list(self.modalities)}, got {modalities}")
        idx = [self.modalities.index(m) for m in modalities]
        return [self.train_inputs[k] for k in idx], [self.test_inputs[k] for k in idx]


def load_missing_data() -> MissingData:
    """The lesson's data: AV-Digits ``train`` and ``test`` (unseen voices), image pixels and MFCC statistics."""
    train = load_avdigits("train", audio_format="mfcc_stats")
    test = load_avdigits("test", audio_format="mfcc_stats")
    audio_train, audio_test = standardize(train.audio, test.audio)  # statistics from the training split only
    return MissingData(
        train_inputs=[train.image.flatten(1), audio_train],
        train_labels=train.label,
        test_inputs=[test.image.flatten(1), audio_test],
        test_labels=test.label,
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


@dataclass
class MissingRun:
    """One trained model: the model (eval mode), its training :class:`~mmlab.train.History` and its test
    accuracy for every presence pattern (:func:`mmlab.missing.accuracy_by_pattern`)."""

    model: MissingModalityClassifier
    history: History
    pattern_acc: dict[tuple[bool, ...], float]


def train_missing_model(
    seed: int,
    data: MissingData,
    *,
    modalities: Sequence[str] | None = None,
    epochs: int = 30,
    device: torch.device | str | None = None,
    progress: bool = True,
    desc: str | None = None,
    **model_kwargs,
) -> MissingRun:
    """Build a :class:`~mmlab.missing.MissingModalityClassifier` on ``modalities`` (default: all), train it
    with :func:`~mmlab.missing.train_classifier` and score it on the test split for every presence pattern.

    Initialisation, ModDrop's masks and the batch order all follow ``seed`` (inside ``seeded(seed)``: the same
    numbers as after ``seed_everything(seed)``, and the caller's random state is left as it was).
    ``model_kwargs`` go to the classifier (``fill``, ``train_rates``, ``hidden``).
    """
    modalities = list(data.modalities if modalities is None else modalities)
    train_inputs, test_inputs = data.select(modalities)
    with seeded(seed):
        model = MissingModalityClassifier(lesson_encoders(modalities), data.num_classes, **model_kwargs)
        label = desc if desc is not None else (", ".join(f"{k}={v}" for k, v in model_kwargs.items()) or "full data")
        history = train_classifier(
            model,
            train_inputs,
            data.train_labels,
            epochs=epochs,
            seed=seed,
            device=device,
            progress=progress,
            desc=label,
        )
    return MissingRun(model, history, accuracy_by_pattern(model, test_inputs, data.test_labels))


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


def missing_rates_figure(
    pattern_accs: Mapping[str, Sequence[Mapping[tuple[bool, ...], float]]],
    rates: Sequence[float],
    modalities: Sequence[str] = MISSING_MODALITIES,
) -> Figure:
    """Expected test accuracy of each method at per-modality missing ``rates``: bars, mean ± std over seeds.

    ``pattern_accs`` maps a method's name to one :func:`~mmlab.missing.accuracy_by_pattern` result per seed;
    the expected accuracy is :func:`~mmlab.missing.expected_accuracy`, ``Σ_s P(s | rates)·acc(s)`` (exact, no
    sampling), so redrawing needs no model. Rates that are all 1 (nothing left to classify) give a figure that
    says so. The lesson's widget figure.
    """
    if len(rates) != len(modalities):
        raise ValueError(f"rates must have one rate per modality ({len(modalities)}), got {len(rates)}")
    fig, ax = new_figure(size=(7.0, 0.45 * len(pattern_accs) + 1.6))
    ax.set_xlim(0, 1)
    ax.set_xlabel("expected test accuracy (fraction)")
    if all(float(r) == 1.0 for r in rates):
        ax.set_title("every modality missing: nothing to classify")
        ax.set_yticks([])
        return fig
    rates = check_rates(rates, len(modalities))
    names = list(pattern_accs)
    acc = {k: np.array([expected_accuracy(p, rates) for p in pattern_accs[k]]) for k in names}
    y = np.arange(len(names))
    means = [acc[k].mean() for k in names]
    ax.barh(y, means, xerr=[_spread(acc[k]) for k in names], capsize=3, color="tab:blue", alpha=0.85)
    for i, v in enumerate(means):
        ax.annotate(f"{100 * v:.1f}%", (0.01, i), va="center", color="white", fontsize=8)
    ax.set_yticks(y, names)
    ax.set_ylabel("method")
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    asked = ", ".join(f"{m} {100 * r:.0f}%" for m, r in zip(modalities, rates))
    real = ", ".join(f"{m} {100 * r:.0f}%" for m, r in zip(modalities, effective_rates(rates)))
    ax.set_title(
        f"test-time missing rates set: {asked}\nrealised (no sample loses every modality): {real}", fontsize=10
    )
    return fig
