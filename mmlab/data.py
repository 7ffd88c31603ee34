"""Course data: AV-Digits (image + speech + text) and easy-VQA (image + question), all offline.

AV-Digits pairs each 8×8 handwritten digit from scikit-learn's bundled ``load_digits`` (1,797 images, CC BY 4.0)
with a spoken clip of the same digit (espeak-ng, built by ``data/build_avdigits.py``) and a templated caption,
the way AV-MNIST pairs MNIST with spoken digits (Vielzeuf et al. 2018). Splits are deterministic: images are
split 60/20/20 stratified by label; train and val take clips from 6 voices, test from 2 held-out voices, so the
audio modality has to generalise to unseen speakers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .audio import log_mel, mfcc
from .checks import check_choice, check_fraction

__all__ = [
    "DATA_DIR",
    "DIGIT_WORDS",
    "AVDigits",
    "load_avdigits",
    "load_audio_clips",
    "make_caption",
    "standardize",
    "load_easy_vqa",
    "EasyVQA",
]

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPLITS = ("train", "val", "test")
AUDIO_FORMATS = ("logmel", "mfcc_stats", "waveform")


def _find_data_dir() -> Path:
    env = os.environ.get("MMLAB_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "data"


DATA_DIR = _find_data_dir()

_TEMPLATES = (
    "a handwritten {w}",
    "the digit {d}",
    "number {w}",
    "a scanned {w}",
    "{w}",
    "a picture of the number {d}",
    "someone wrote a {w}",
    "digit: {d}",
    "the numeral {w}",
    "a small {w} written by hand",
)
_MISSPELLINGS = {
    "zero": ("zer0", "zeero"),
    "one": ("won", "onee"),
    "two": ("tow", "twoo"),
    "three": ("thre", "tree"),
    "four": ("fuor", "for"),
    "five": ("fiv", "fife"),
    "six": ("sixx", "sicks"),
    "seven": ("sevn", "seveen"),
    "eight": ("eigth", "ate"),
    "nine": ("nien", "nine9"),
}
_UNINFORMATIVE = ("a handwritten digit", "some number", "a scanned numeral", "a digit written by hand", "a number")


def make_caption(label: int, rng: np.random.Generator, text_noise: float = 0.0, misspell: float = 0.15) -> str:
    """A caption for digit ``label``: a random template, sometimes misspelled; with probability ``text_noise``
    an uninformative caption that does not name the digit."""
    if not 0 <= int(label) <= 9:
        raise ValueError(f"label must be in 0..9, got {label}")
    template = _TEMPLATES[rng.integers(len(_TEMPLATES))]
    word = DIGIT_WORDS[label]
    if rng.random() < misspell:
        word = _MISSPELLINGS[word][rng.integers(2)]
    caption = template.format(w=word, d=label)
    if rng.random() < text_noise:
        caption = _UNINFORMATIVE[rng.integers(len(_UNINFORMATIVE))]
    return caption


@lru_cache(maxsize=1)
def load_audio_clips(path: str | None = None) -> dict[str, np.ndarray]:
    """The raw espeak-ng clips: ``wave`` (int16, zero-padded), ``length``, ``digit``, ``voice``, ``speed``,
    ``pitch``, ``voice_names``, ``test_voices`` and ``sample_rate`` (8000)."""
    file = Path(path) if path else DATA_DIR / "avdigits_audio.npz"
    if not file.exists():
        raise FileNotFoundError(
            f"AV-Digits audio not found at {file}; set MMLAB_DATA to the course's data/ folder "
            "or rebuild it with `python data/build_avdigits.py`"
        )
    with np.load(file) as z:
        return {k: z[k] for k in z.files}


def _clip_wave(clips: dict[str, np.ndarray], i: int) -> np.ndarray:
    return clips["wave"][i, : clips["length"][i]].astype(np.float64) / 32768.0


@lru_cache(maxsize=1)
def _image_split_indices() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    y = load_digits().target
    rng = np.random.default_rng(0)
    parts: dict[str, list[int]] = {s: [] for s in SPLITS}
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_train, n_val = int(round(0.6 * len(idx))), int(round(0.2 * len(idx)))
        parts["train"] += idx[:n_train].tolist()
        parts["val"] += idx[n_train : n_train + n_val].tolist()
        parts["test"] += idx[n_train + n_val :].tolist()
    return {s: np.sort(np.array(v)) for s, v in parts.items()}


def _audio_features(wave: np.ndarray, fmt: str, sr: int, n_frames: int) -> np.ndarray:
    if fmt == "logmel":
        lm = log_mel(wave, sr)
        out = np.full((lm.shape[0], n_frames), np.log(1e-6), dtype=np.float32)
        out[:, : min(lm.shape[1], n_frames)] = lm[:, :n_frames]
        return out
    if fmt == "mfcc_stats":
        m = mfcc(wave, sr)
        return np.concatenate([m.mean(1), m.std(1)]).astype(np.float32)
    out = np.zeros(n_frames, dtype=np.float32)
    out[: min(len(wave), n_frames)] = wave[:n_frames]
    return out


@dataclass
class AVDigits(Dataset):
    """One split of AV-Digits as tensors; ``ds[i]`` is a dict with ``image``, ``audio``, ``audio_len``,
    ``text``, ``label``, ``voice`` and ``index``.

    Attributes: ``image`` (N, 1, 8, 8) float in [0, 1] plus noise; ``audio`` (N, 32, T) log-mel frames,
    (N, 40) MFCC mean+std, or (N, samples) waveform at 8 kHz, per ``audio_format``; ``audio_len`` (N,) valid
    frames (or samples; 1 for ``mfcc_stats``); ``text`` list of N captions; ``label`` (N,) int64;
    ``voice`` (N,) espeak voice id of the paired clip; ``clip`` (N,) index into :func:`load_audio_clips`.
    """

    split: str
    audio_format: str
    image: torch.Tensor
    audio: torch.Tensor
    audio_len: torch.Tensor
    text: list[str]
    label: torch.Tensor
    voice: torch.Tensor
    clip: torch.Tensor
    noise: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i: int) -> dict:
        return {
            "image": self.image[i],
            "audio": self.audio[i],
            "audio_len": self.audio_len[i],
            "text": self.text[i],
            "label": self.label[i],
            "voice": self.voice[i],
            "index": i,
        }

    def subset(self, idx: np.ndarray | torch.Tensor | list[int]) -> AVDigits:
        """A new AVDigits holding only the items at ``idx``."""
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        return AVDigits(
            self.split,
            self.audio_format,
            self.image[idx],
            self.audio[idx],
            self.audio_len[idx],
            [self.text[i] for i in idx.tolist()],
            self.label[idx],
            self.voice[idx],
            self.clip[idx],
            dict(self.noise),
        )


def load_avdigits(
    split: str = "train",
    *,
    audio_format: str = "logmel",
    image_noise: float = 0.0,
    audio_noise: float = 0.0,
    text_noise: float = 0.0,
    seed: int = 0,
) -> AVDigits:
    """Load one split (``"train"``, ``"val"``, ``"test"``) of AV-Digits.

    Noise knobs set each modality's difficulty, deterministically for a given ``seed``:
    ``image_noise`` is the std of Gaussian noise added to pixels in [0, 1] (drawn once per sample);
    ``audio_noise`` the std of white noise added to the waveform relative to the clip's RMS (1/SNR);
    ``text_noise`` the probability that a caption is replaced by one that does not name the digit.
    ``seed`` also picks which clip and caption pair with each image.
    """
    check_choice("split", split, SPLITS)
    check_choice("audio_format", audio_format, AUDIO_FORMATS)
    if not np.isfinite(image_noise) or image_noise < 0:
        raise ValueError(f"image_noise must be a finite number >= 0, got {image_noise}")
    if not np.isfinite(audio_noise) or audio_noise < 0:
        raise ValueError(f"audio_noise must be a finite number >= 0, got {audio_noise}")
    check_fraction("text_noise", text_noise)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")

    from sklearn.datasets import load_digits

    digits = load_digits()
    idx = _image_split_indices()[split]
    labels = digits.target[idx].astype(np.int64)
    images = (digits.images[idx] / 16.0).astype(np.float32)[:, None]

    # one independent random stream per purpose, so that turning one knob never changes another modality
    split_id = SPLITS.index(split)
    pair_rng, image_rng, audio_rng, text_rng = (np.random.default_rng([seed, split_id, k]) for k in range(4))
    if image_noise > 0:
        images = images + image_rng.normal(0, image_noise, images.shape).astype(np.float32)

    clips = load_audio_clips()
    test_voice = np.isin(clips["voice"], clips["test_voices"])
    pool = test_voice if split == "test" else ~test_voice
    chosen = np.empty(len(idx), dtype=np.int64)
    for c in range(10):
        cand = np.flatnonzero(pool & (clips["digit"] == c))
        where = np.flatnonzero(labels == c)
        chosen[where] = pair_rng.choice(cand, size=len(where))

    sr = int(clips["sample_rate"])
    hop = 80
    n_frames = {
        "logmel": int(clips["length"].max()) // hop + 1,
        "mfcc_stats": 1,
        "waveform": int(clips["length"].max()),
    }[audio_format]
    feats, lens = [], []
    cache: dict[int, np.ndarray] = {}
    for c in chosen:
        wave = _clip_wave(clips, c)
        if audio_noise > 0:
            rms = np.sqrt(np.mean(wave**2))
            wave = wave + audio_rng.normal(0, audio_noise * rms, wave.shape)
            feats.append(_audio_features(wave, audio_format, sr, n_frames))
        else:
            if c not in cache:
                cache[c] = _audio_features(wave, audio_format, sr, n_frames)
            feats.append(cache[c])
        n = len(wave)
        lens.append(
            {"logmel": min(max(1, (max(n, 256) - 256) // hop + 1), n_frames), "mfcc_stats": 1, "waveform": n}[
                audio_format
            ]
        )

    texts = [make_caption(int(y), text_rng, text_noise) for y in labels]
    return AVDigits(
        split=split,
        audio_format=audio_format,
        image=torch.from_numpy(images),
        audio=torch.from_numpy(np.stack(feats)),
        audio_len=torch.tensor(lens, dtype=torch.long),
        text=texts,
        label=torch.from_numpy(labels),
        voice=torch.from_numpy(clips["voice"][chosen]),
        clip=torch.from_numpy(chosen),
        noise={"image": float(image_noise), "audio": float(audio_noise), "text": float(text_noise)},
    )


def standardize(train: torch.Tensor, *others: torch.Tensor, dim: int = 0, eps: float = 1e-6):
    """Standardise ``train`` and ``others`` with the mean and std of ``train`` along ``dim``.

    ``(x - mean_train) / (std_train + eps)``: statistics come from training data only, never from test data.
    Returns a tuple ``(train_std, *others_std)``.
    """
    mean = train.mean(dim, keepdim=True)
    std = train.std(dim, keepdim=True)
    out = [(train - mean) / (std + eps)]
    for i, x in enumerate(others):
        if x.shape[1:] != train.shape[1:]:
            raise ValueError(
                f"others[{i}] must have shape (*, {', '.join(map(str, train.shape[1:]))}), got {tuple(x.shape)}"
            )
        out.append((x - mean) / (std + eps))
    return tuple(out)


@dataclass
class EasyVQA(Dataset):
    """easy-VQA (Victor Zhou, MIT licence): synthetic shape images with questions and answers.

    ``image`` (N, 3, S, S) float in [0, 1]; ``question`` list of str; ``answer`` (N,) int64 index into
    ``answers``; ``image_id`` (N,) index of the image each question is about.
    """

    image: torch.Tensor
    question: list[str]
    answer: torch.Tensor
    image_id: torch.Tensor
    answers: list[str]

    def __len__(self) -> int:
        return len(self.answer)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.image[self.image_id[i]], "question": self.question[i], "answer": self.answer[i]}


def load_easy_vqa(split: str = "train", *, max_images: int | None = None, image_size: int = 32) -> EasyVQA:
    """Load easy-VQA from the ``easy-vqa`` package (installed with the course; no download).

    Images are resized to ``image_size`` (64 → 32 by default, box filter); ``max_images`` keeps only the first
    images and the questions about them.
    """
    check_choice("split", split, ("train", "test"))
    if image_size < 4:
        raise ValueError(f"image_size must be >= 4, got {image_size}")
    try:
        import easy_vqa
    except ImportError as e:  # pragma: no cover - exercised only without the course extra
        raise ImportError("easy-VQA needs the `easy-vqa` package: pip install easy-vqa") from e
    from PIL import Image

    questions, answers, image_ids = (
        easy_vqa.get_train_questions() if split == "train" else easy_vqa.get_test_questions()
    )
    paths = easy_vqa.get_train_image_paths() if split == "train" else easy_vqa.get_test_image_paths()
    n_img = len(paths) if max_images is None else min(int(max_images), len(paths))
    imgs = np.stack(
        [
            np.asarray(Image.open(paths[i]).convert("RGB").resize((image_size, image_size), Image.BOX))
            for i in range(n_img)
        ]
    )
    all_answers = list(easy_vqa.get_answers())
    keep = [j for j, k in enumerate(image_ids) if k < n_img]
    return EasyVQA(
        image=torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0,
        question=[questions[j] for j in keep],
        answer=torch.tensor([all_answers.index(answers[j]) for j in keep], dtype=torch.long),
        image_id=torch.tensor([image_ids[j] for j in keep], dtype=torch.long),
        answers=all_answers,
    )
