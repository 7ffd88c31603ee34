"""Lesson 0 (setup and tour): the data browser behind the lesson's widget, and the hook that picks the epoch on
validation data."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from matplotlib.figure import Figure
from torch import nn

from ..data import load_audio_clips, load_avdigits
from ..train import eval_mode
from ..viz import new_figure, plot_spectrogram

__all__ = ["avdigits_sample_figure", "KeepBest"]


def avdigits_sample_figure(
    index: int = 0, image_noise: float = 0.0, audio_noise: float = 0.0, text_noise: float = 0.0, split: str = "train"
) -> Figure:
    """Lesson 0's browser: one AV-Digits item (image, log-mel spectrogram, caption) at the given noise levels."""
    ds = load_avdigits(split, image_noise=image_noise, audio_noise=audio_noise, text_noise=text_noise)
    if not 0 <= index < len(ds):
        raise ValueError(f"index must be in [0, {len(ds)}), got {index}")
    item = ds[index]
    fig, (a1, a2) = new_figure(1, 2, size=(8.5, 3.2), width_ratios=[1, 2.2])
    a1.imshow(item["image"][0].clamp(0, 1).numpy(), cmap="gray_r")
    a1.set_title(f"image (8×8 px), label {int(item['label'])}")
    a1.set_xlabel("x (px)")
    a1.set_ylabel("y (px)")
    n = int(item["audio_len"])
    voice = load_audio_clips()["voice_names"][int(item["voice"])]
    plot_spectrogram(item["audio"][:n], ax=a2, title=f"speech, voice {voice}")
    fig.suptitle(f"{split}[{index}] — caption: “{item['text']}”")
    return fig


class KeepBest:
    """An ``after_epoch`` hook for :func:`mmlab.train.fit` that chooses the epoch on validation data.

    After every epoch it computes ``score(model)`` (higher is better, e.g. validation accuracy) in eval mode and
    without gradients, logs it as ``name``, and keeps a copy of the weights of the best epoch so far (the earliest
    one on ties). :meth:`restore` loads them back: the model returned is the one validation chose — early
    stopping without the stopping. The score must only ever see validation data; the test split is read once,
    after every choice.
    """

    def __init__(self, score: Callable[[nn.Module], float], name: str = "val_score"):
        if not callable(score):
            raise TypeError(f"score must be callable, got {type(score).__name__}")
        self.score, self.name = score, name
        self.scores: list[float] = []
        self.best_score, self.best_epoch = -math.inf, 0
        self._state: dict[str, torch.Tensor] | None = None

    def __call__(self, model: nn.Module, epoch: int) -> dict[str, float]:
        with eval_mode(model), torch.no_grad():
            s = float(self.score(model))
        if not math.isfinite(s):
            raise ValueError(f"score returned {s} at epoch {epoch + 1}")
        self.scores.append(s)
        if s > self.best_score:
            self.best_score, self.best_epoch = s, epoch + 1
            self._state = copy.deepcopy(model.state_dict())
        return {self.name: s}

    def restore(self, model: nn.Module) -> nn.Module:
        """Load the best epoch's weights into ``model`` (in place) and return it."""
        if self._state is None:
            raise RuntimeError("KeepBest never ran: pass it to fit(..., after_epoch=...)")
        model.load_state_dict(self._state)
        return model
