"""Lesson 0 (setup and tour): the data browser behind the lesson's widget."""

from __future__ import annotations

from matplotlib.figure import Figure

from ..data import load_audio_clips, load_avdigits
from ..viz import new_figure, plot_spectrogram

__all__ = ["avdigits_sample_figure"]


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
