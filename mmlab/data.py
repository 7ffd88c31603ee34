"""Course data: AV-Digits (image + speech + text) and easy-VQA (image + question), all offline.

AV-Digits pairs each 8×8 handwritten digit from scikit-learn's bundled ``load_digits`` (1,797 images, CC BY 4.0)
with a spoken clip of the same digit (espeak-ng, built by ``data/build_avdigits.py``) and a templated caption,
the way AV-MNIST pairs MNIST with spoken digits (Vielzeuf et al. 2018). Splits are deterministic: images are
split 60/20/20 stratified by label; train and val take clips from 6 voices (val: one speed/pitch setting per
voice and digit that train never hears, :func:`clip_splits`), test from 2 held-out voices. So val measures
*seen voices, unseen recordings* and test *unseen voices*.
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
    "clip_splits",
    "make_caption",
    "standardize",
    "load_easy_vqa",
    "EasyVQA",
]

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPLITS = ("train", "val", "test")
AUDIO_FORMATS = ("logmel", "mfcc_stats", "waveform")


def _find_data_dir() -> Path:
    """Where the shipped data live: ``mmlab/assets/`` inside the installed package (package data, so a wheel or
    a non-editable install finds them), unless ``MMLAB_DATA`` names another folder."""
    env = os.environ.get("MMLAB_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent / "assets"


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
            f"AV-Digits audio not found at {file}; set MMLAB_DATA to a folder holding avdigits_audio.npz "
            "or rebuild it with `python data/build_avdigits.py`"
        )
    with np.load(file) as z:
        return {k: z[k] for k in z.files}


def clip_splits(clips: dict[str, np.ndarray]) -> np.ndarray:
    """The split (``"train"``, ``"val"`` or ``"test"``) of every clip, shape ``(n_clips,)``.

    Test = the held-out voices (every recording of them). The training voices' recordings are split so that
    validation means *seen voices, unseen recordings*: each (voice, digit) has 4 speed/pitch settings, and
    setting ``(10·voice + digit) mod 4`` goes to val, the other 3 to train. Every setting is held out equally often,
    and no clip is in two splits.
    """
    settings = sorted(set(zip(clips["speed"].tolist(), clips["pitch"].tolist())))
    setting = np.array([settings.index(sp) for sp in zip(clips["speed"].tolist(), clips["pitch"].tolist())])
    test = np.isin(clips["voice"], clips["test_voices"])
    val = ~test & (setting == (10 * clips["voice"] + clips["digit"]) % len(settings))
    return np.where(test, "test", np.where(val, "val", "train"))


def _clip_wave(clips: dict[str, np.ndarray], i: int) -> np.ndarray:
    return clips["wave"][i, : clips["length"][i]].astype(np.float64) / 32768.0


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits as ``(images (1797, 8, 8) float64 in 0..16, target (1797,) int)``, the arrays
    ``sklearn.datasets.load_digits`` returns, read from the file it reads: importing scikit-learn takes about a
    second, which every process that loads AV-Digits (a lesson's kernel, each rank in lesson 8) would pay."""
    import gzip
    from importlib.util import find_spec

    spec = find_spec("sklearn")  # finds the package without importing it
    folders = (spec.submodule_search_locations or []) if spec is not None else []
    csv = Path(folders[0], "datasets", "data", "digits.csv.gz") if folders else None
    if csv is None or not csv.is_file():  # another scikit-learn layout: ask it (or fail with its ImportError)
        from sklearn.datasets import load_digits

        d = load_digits()
        return d.images, d.target
    with gzip.open(csv, "rt", encoding="utf-8") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)


@lru_cache(maxsize=1)
def _image_split_indices() -> dict[str, np.ndarray]:
    y = _digits()[1]
    rng = np.random.default_rng(0)
    parts: dict[str, list[int]] = {s: [] for s in SPLITS}
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_train, n_val = int(round(0.6 * len(idx))), int(round(0.2 * len(idx)))
        parts["train"] += idx[:n_train].tolist()
        parts["val"] += idx[n_train : n_train + n_val].tolist()
        parts["test"] += idx[n_train + n_val :].tolist()
    return {s: np.sort(np.array(v)) for s, v in parts.items()}


def _audio_features(wave: np.ndarray, fmt: str, sr: int, n_frames: int) -> tuple[np.ndarray, int]:
    """Features padded to ``n_frames`` and the number of real frames (the last, partly padded STFT frame of
    the clip counts as real: it holds the end of the word)."""
    if fmt == "logmel":
        lm = log_mel(wave, sr)
        n = min(lm.shape[0], n_frames)
        out = np.full((n_frames, lm.shape[1]), np.log(1e-6), dtype=np.float32)
        out[:n] = lm[:n]
        return out, n
    if fmt == "mfcc_stats":
        m = mfcc(wave, sr)
        return np.concatenate([m.mean(0), m.std(0)]).astype(np.float32), 1
    n = min(len(wave), n_frames)
    out = np.zeros(n_frames, dtype=np.float32)
    out[:n] = wave[:n_frames]
    return out, n


@dataclass
class AVDigits(Dataset):
    """One split of AV-Digits as tensors; ``ds[i]`` is a dict with ``image``, ``audio``, ``audio_len``,
    ``text``, ``label``, ``voice`` and ``index``.

    Attributes: ``image`` (N, 1, 8, 8) float in [0, 1] plus noise; ``audio`` (N, T, 32) log-mel frames,
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

    cached_images, cached_labels = _split_digit_images(split)
    images, labels = cached_images[:, None].copy(), cached_labels.copy()  # the tensors must not share the cache

    # one independent random stream per purpose, so that turning one knob never changes another modality
    split_id = SPLITS.index(split)
    pair_rng, image_rng, audio_rng, text_rng = (np.random.default_rng([seed, split_id, k]) for k in range(4))
    if image_noise > 0:
        images = images + image_rng.normal(0, image_noise, images.shape).astype(np.float32)

    clips = load_audio_clips()
    pool = clip_splits(clips) == split
    chosen = np.empty(len(labels), dtype=np.int64)
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
    cache: dict[int, tuple[np.ndarray, int]] = {}
    for c in chosen:
        wave = _clip_wave(clips, c)
        if audio_noise > 0:
            rms = np.sqrt(np.mean(wave**2))
            wave = wave + audio_rng.normal(0, audio_noise * rms, wave.shape)
            feat, n = _audio_features(wave, audio_format, sr, n_frames)
        else:
            if c not in cache:
                cache[c] = _audio_features(wave, audio_format, sr, n_frames)
            feat, n = cache[c]
        feats.append(feat)
        lens.append(n)

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


# ---------------------------------------------------------------------------------------------------------------
# Lesson 1: aligned-sequence episodes (video, speech, transcript) and spatial-grounding canvases.

__all__ += [
    "AlignmentEpisode",
    "make_alignment_episode",
    "make_alignment_episodes",
    "collate_episodes",
    "GroundingCanvases",
    "make_grounding_canvases",
]

_PAUSE_MAX_S = 0.4  # longest pause after a word at warp 1
_OFFSET_MAX_S = 0.5  # longest leading silence of the speech at warp 1
# At warp w a word's duration is multiplied by _SPEECH_STRETCH ** (w·u) and a digit's hold by _VIDEO_STRETCH ** (w·u),
# u = a uniform draw in [-1, 1] plus a drift ramp of up to ±_DRIFT, so |u| ≤ 2: at warp 1 a word lasts 1/2.25 to
# 2.25 times its natural duration and a digit is held 1/16 to 16 times its word's natural duration (extremes are
# rare: the ends of the string at the largest drift).
_SPEECH_STRETCH = 1.5
_VIDEO_STRETCH = 4.0
_DRIFT = 1.0  # at warp 1 the tempo drifts by up to this many "stretch units" from the first to the last token


@lru_cache(maxsize=3)
def _split_digit_images(split: str) -> tuple[np.ndarray, np.ndarray]:
    digit_images, digit_labels = _digits()
    idx = _image_split_indices()[split]
    return (digit_images[idx] / 16.0).astype(np.float32), digit_labels[idx].astype(np.int64)


@dataclass
class AlignmentEpisode:
    """One digit string seen twice, out of step: as a "video" and as speech, with its transcript.

    ``digits`` (K,) the transcript's digits (``words`` gives "three", ...); ``video`` (Tv, 1, 8, 8) frames, each
    digit's image held for several frames; ``speech`` (Ta, n_mels) log-mel frames of the spoken string;
    ``video_token`` (Tv,) and ``speech_token`` (Ta,) the index ``k`` of the transcript token each frame belongs
    to (the ground-truth alignment: a pause or the leading silence belongs to the word before it, or to the
    first word); ``speech_voiced`` (Ta,) True where a word is being said; ``clips`` (K,) the index of each
    word's clip in :func:`load_audio_clips`. Both streams have ``frame_ms`` frames; at ``warp = 0`` they have
    the same length and the same token at every index.
    """

    digits: torch.Tensor
    video: torch.Tensor
    speech: torch.Tensor
    video_token: torch.Tensor
    speech_token: torch.Tensor
    speech_voiced: torch.Tensor
    warp: float
    frame_ms: int
    clips: torch.Tensor

    @property
    def words(self) -> list[str]:
        return [DIGIT_WORDS[d] for d in self.digits.tolist()]

    @property
    def transcript(self) -> str:
        return " ".join(self.words)


def make_alignment_episode(
    split: str = "train",
    *,
    warp: float = 0.5,
    n_digits: tuple[int, int] = (3, 6),
    image_noise: float = 0.0,
    audio_noise: float = 0.0,
    frame_ms: int = 40,
    seed: int = 0,
    index: int = 0,
) -> AlignmentEpisode:
    """Episode ``index`` of the stream ``seed``: a digit string as video, speech and transcript.

    The string has ``n_digits[0]..n_digits[1]`` digits, no digit twice in a row. Speech: each word is a random
    AV-Digits clip of the split's voices (test: the 2 held-out voices), as log-mel frames (32 bands) averaged
    over ``frame_ms``. Video: one random image of the split per digit, held for several frames.

    Warp ``w`` in [0, 1] moves the streams apart, independently. Word ``k`` (of ``K``) is played
    ``1.5^(w·(u_k + g·r_k))`` times as long (faster speech is also higher, like a tape) and followed by a
    pause of ``U(0, w·0.4)`` s, after a leading silence of ``U(0, w·0.5)`` s; digit ``k`` is held
    ``4^(w·(u'_k + g'·r_k))`` times its word's natural duration. Here ``u, u', g, g' ~ U(-1, 1)`` and
    ``r_k = 2k/(K−1) − 1`` runs from −1 to 1, so ``g`` and ``g'`` make the pace drift along the string. At
    ``w = 0`` both streams give each token its word's natural duration (rounded up to whole frames), so index
    ``t`` of one is index ``t`` of the other. All random draws are made whatever ``w`` is, so the same
    ``seed``/``index`` gives the same string, clips and images at every warp. ``image_noise`` is the pixel-noise
    std (fresh every frame); ``audio_noise`` the white-noise std relative to the speech RMS (1/SNR).
    """
    check_choice("split", split, SPLITS)
    check_fraction("warp", warp)
    lo, hi = (int(v) for v in n_digits)
    if not 1 <= lo <= hi:
        raise ValueError(f"n_digits must be (min, max) with 1 <= min <= max, got {n_digits}")
    for name, value in (("image_noise", image_noise), ("audio_noise", audio_noise)):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    if frame_ms < 10 or frame_ms % 10:
        raise ValueError(f"frame_ms must be a positive multiple of 10, got {frame_ms}")
    if not isinstance(seed, (int, np.integer)) or seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative ints, got {seed!r}, {index!r}")

    split_id = SPLITS.index(split)
    rng, image_rng, audio_rng = (np.random.default_rng([seed, split_id, index, k]) for k in range(3))
    clips = load_audio_clips()
    sr = int(clips["sample_rate"])
    hop = sr * frame_ms // 1000
    pool = clip_splits(clips) == split
    images, labels = _split_digit_images(split)

    # the string, its clips and images, and every random stretch, drawn in a fixed order
    k_len = int(rng.integers(lo, hi + 1))
    digits = [int(rng.integers(10))]
    for _ in range(k_len - 1):
        digits.append(int((digits[-1] + rng.integers(1, 10)) % 10))
    clip_ids = [int(rng.choice(np.flatnonzero(pool & (clips["digit"] == d)))) for d in digits]
    image_ids = [int(rng.choice(np.flatnonzero(labels == d))) for d in digits]
    u_speech, u_video = rng.uniform(-1, 1, k_len), rng.uniform(-1, 1, k_len)
    ramp = np.linspace(-1, 1, k_len) if k_len > 1 else np.zeros(1)
    u_speech = u_speech + _DRIFT * rng.uniform(-1, 1) * ramp  # a tempo that drifts along the string
    u_video = u_video + _DRIFT * rng.uniform(-1, 1) * ramp
    pauses = rng.uniform(0, 1, k_len) * warp * _PAUSE_MAX_S * sr
    offset_frames = int(np.ceil(rng.uniform(0, 1) * warp * _OFFSET_MAX_S * sr / hop))

    pieces, speech_token, voiced, video_hold = (
        [np.zeros(offset_frames * hop)],
        [0] * offset_frames,
        [False] * offset_frames,
        [],
    )
    for k, c in enumerate(clip_ids):
        wave = _clip_wave(clips, c)
        natural = int(np.ceil(len(wave) / hop))
        n = max(2, int(round(len(wave) * _SPEECH_STRETCH ** (warp * u_speech[k]))))
        wave = np.interp(np.linspace(0, len(wave) - 1, n), np.arange(len(wave)), wave)
        frames = int(np.ceil((n + pauses[k]) / hop))
        pieces.append(np.pad(wave, (0, frames * hop - n)))
        speech_token += [k] * frames
        voiced += [(f + 0.5) * hop < n for f in range(frames)]
        video_hold.append(max(1, int(round(natural * _VIDEO_STRETCH ** (warp * u_video[k])))))
    wave = np.concatenate(pieces)
    if audio_noise > 0:
        rms = np.sqrt(np.mean(np.concatenate(pieces[1:]) ** 2))  # pauses dilute it a little; fine for a knob
        wave = wave + audio_rng.normal(0, audio_noise * rms, wave.shape)
    n_frames = len(speech_token)
    pool_k = frame_ms // 10
    # shift by (n_fft - hop) / 2 so that 10 ms frame f is centred on samples [80 f, 80 f + 80)
    lm = log_mel(np.pad(wave, (88, 256)), sr, n_mels=32, n_fft=256, hop=80)[: n_frames * pool_k]
    speech = lm.reshape(n_frames, pool_k, lm.shape[1]).mean(1)

    video_token = np.repeat(np.arange(k_len), video_hold)
    video = images[np.array(image_ids)[video_token]][:, None]
    if image_noise > 0:
        video = video + image_rng.normal(0, image_noise, video.shape).astype(np.float32)
    return AlignmentEpisode(
        digits=torch.tensor(digits, dtype=torch.long),
        video=torch.from_numpy(np.ascontiguousarray(video, dtype=np.float32)),
        speech=torch.from_numpy(np.ascontiguousarray(speech, dtype=np.float32)),
        video_token=torch.from_numpy(video_token.astype(np.int64)),
        speech_token=torch.tensor(speech_token, dtype=torch.long),
        speech_voiced=torch.tensor(voiced, dtype=torch.bool),
        warp=float(warp),
        frame_ms=int(frame_ms),
        clips=torch.tensor(clip_ids, dtype=torch.long),
    )


def make_alignment_episodes(n: int, split: str = "train", *, seed: int = 0, **kwargs) -> list[AlignmentEpisode]:
    """Episodes ``0..n-1`` of stream ``seed``; ``kwargs`` go to :func:`make_alignment_episode`.

    ``warp`` may also be a sequence of ``n`` values (one per episode), e.g. to train on a mix of warps.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    warp = kwargs.pop("warp", 0.5)
    warps = np.broadcast_to(np.asarray(warp, dtype=np.float64), (n,)) if np.ndim(warp) == 0 else np.asarray(warp)
    if warps.shape != (n,):
        raise ValueError(f"warp must be a number or a sequence of n={n} values, got shape {warps.shape}")
    return [make_alignment_episode(split, warp=float(warps[i]), seed=seed, index=i, **kwargs) for i in range(n)]


def collate_episodes(episodes: list[AlignmentEpisode]) -> dict[str, torch.Tensor]:
    """Pad episodes into a batch (a dict of tensors, batch first).

    ``video`` (B, Tv, 1, 8, 8) and ``speech`` (B, Ta, n_mels) zero-padded, with ``video_mask`` / ``speech_mask``
    True at real frames; ``video_token`` / ``speech_token`` (token index, -1 at padding); ``video_digit`` /
    ``speech_digit`` (the digit of each frame's token, -1 at padding); ``speech_voiced`` (False at pauses and
    padding); ``digits`` (B, K) padded with 0 and
    ``token_mask`` True at real tokens.
    """
    if not episodes:
        raise ValueError("episodes must be a non-empty list")
    b = len(episodes)
    tv, ta, k = (max(len(getattr(e, f)) for e in episodes) for f in ("video", "speech", "digits"))
    out = {
        "video": torch.zeros(b, tv, *episodes[0].video.shape[1:]),
        "speech": torch.zeros(b, ta, episodes[0].speech.shape[1]),
        "video_token": torch.full((b, tv), -1, dtype=torch.long),
        "speech_token": torch.full((b, ta), -1, dtype=torch.long),
        "video_digit": torch.full((b, tv), -1, dtype=torch.long),
        "speech_digit": torch.full((b, ta), -1, dtype=torch.long),
        "digits": torch.zeros(b, k, dtype=torch.long),
        "speech_voiced": torch.zeros(b, ta, dtype=torch.bool),
    }
    for i, e in enumerate(episodes):
        nv, na, nk = len(e.video), len(e.speech), len(e.digits)
        out["video"][i, :nv] = e.video
        out["speech"][i, :na] = e.speech
        out["video_token"][i, :nv] = e.video_token
        out["speech_token"][i, :na] = e.speech_token
        out["video_digit"][i, :nv] = e.digits[e.video_token]
        out["speech_digit"][i, :na] = e.digits[e.speech_token]
        out["digits"][i, :nk] = e.digits
        out["speech_voiced"][i, :na] = e.speech_voiced
    out["video_mask"] = out["video_token"] >= 0
    out["speech_mask"] = out["speech_token"] >= 0
    out["token_mask"] = torch.arange(k)[None] < torch.tensor([len(e.digits) for e in episodes])[:, None]
    return out


_QUERY_TEMPLATES = ("where is the {w}?", "the {w}", "find the {d}", "point at the {w}", "which one is {w}?")


@dataclass
class GroundingCanvases:
    """Canvases with several digits at random places, and a query naming one of them.

    ``canvas`` (N, 1, G·8, G·8) in [0, 1] plus noise; ``digits`` (N, n) the distinct digits on each canvas;
    ``cells`` (N, n) the grid cell (row-major, ``r·G + c``) holding each; ``query`` (N,) the digit named by
    ``text`` (N query strings); ``target_cell`` (N,) where it is; ``target_center`` (N, 2) its centre (row, col)
    in pixels. :meth:`patches` cuts canvases into the G×G cells, each a (1, 8, 8) patch.
    """

    canvas: torch.Tensor
    digits: torch.Tensor
    cells: torch.Tensor
    query: torch.Tensor
    text: list[str]
    target_cell: torch.Tensor
    target_center: torch.Tensor
    grid: int

    def __len__(self) -> int:
        return len(self.query)

    def patches(self) -> torch.Tensor:
        """(N, G·G, 1, 8, 8): the canvas cut into 8×8 patches, row-major."""
        n, g = len(self), self.grid
        x = self.canvas.reshape(n, 1, g, 8, g, 8).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(n, g * g, 1, 8, 8)


def make_grounding_canvases(
    n: int,
    split: str = "train",
    *,
    grid: int = 4,
    n_digits: int = 3,
    jitter: int = 0,
    image_noise: float = 0.0,
    seed: int = 0,
) -> GroundingCanvases:
    """``n`` canvases of ``grid``×``grid`` cells of 8×8 px, each with ``n_digits`` distinct digits of the split
    in distinct random cells, shifted by up to ``jitter`` px (0..3, so a digit may straddle patches but its
    centre stays in its cell), and a query naming one of them ("where is the seven?")."""
    check_choice("split", split, SPLITS)
    if n < 1 or grid < 1 or not 1 <= n_digits <= min(10, grid * grid):
        raise ValueError(f"need n >= 1, grid >= 1 and 1 <= n_digits <= min(10, grid²), got {n}, {grid}, {n_digits}")
    if not 0 <= jitter <= 3:
        raise ValueError(f"jitter must be in 0..3 px, got {jitter}")
    if not np.isfinite(image_noise) or image_noise < 0:
        raise ValueError(f"image_noise must be a finite number >= 0, got {image_noise}")
    split_id = SPLITS.index(split)
    rng, noise_rng = (np.random.default_rng([seed, split_id, 1000 + k]) for k in range(2))
    images, labels = _split_digit_images(split)
    size = grid * 8
    canvas = np.zeros((n, 1, size, size), dtype=np.float32)
    digits = np.zeros((n, n_digits), dtype=np.int64)
    cells = np.zeros((n, n_digits), dtype=np.int64)
    query, target, center, texts = [], [], [], []
    for i in range(n):
        digits[i] = rng.choice(10, n_digits, replace=False)
        cells[i] = rng.choice(grid * grid, n_digits, replace=False)
        centers = []
        for d, cell in zip(digits[i], cells[i]):
            img = images[rng.choice(np.flatnonzero(labels == d))]
            dy, dx = np.floor(rng.random(2) * (2 * jitter + 1)).astype(int) - jitter  # same draws for any jitter
            y0 = int(np.clip(8 * (cell // grid) + dy, 0, size - 8))
            x0 = int(np.clip(8 * (cell % grid) + dx, 0, size - 8))
            region = canvas[i, 0, y0 : y0 + 8, x0 : x0 + 8]
            np.maximum(region, img, out=region)
            centers.append((y0 + 4.0, x0 + 4.0))
        j = int(rng.integers(n_digits))
        query.append(digits[i, j])
        target.append(cells[i, j])
        center.append(centers[j])
        template = _QUERY_TEMPLATES[rng.integers(len(_QUERY_TEMPLATES))]
        texts.append(template.format(w=DIGIT_WORDS[digits[i, j]], d=digits[i, j]))
    if image_noise > 0:
        canvas = canvas + noise_rng.normal(0, image_noise, canvas.shape).astype(np.float32)
    return GroundingCanvases(
        canvas=torch.from_numpy(canvas),
        digits=torch.from_numpy(digits),
        cells=torch.from_numpy(cells),
        query=torch.tensor(query, dtype=torch.long),
        text=texts,
        target_cell=torch.tensor(target, dtype=torch.long),
        target_center=torch.tensor(center, dtype=torch.float32),
        grid=grid,
    )
