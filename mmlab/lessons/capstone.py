"""Lesson 9's experiments: one AV-Digits task with every problem of lessons 1–7 at once, the naive pipeline a
reader of the article would build, the fixed pipeline assembled from ``mmlab``'s modules, and its ablation.

The task (:func:`load_capstone_task`): image (noisy 8×8 pixels), audio (log-mel frames of variable length,
padded — the padding is part of the data), text (captions, half of them uninformative, as a bag of words);
training pairs with a known share of mismatched audio (:func:`mmlab.quality.inject_noise`) and wrong labels;
audio from six training voices is the dominant modality, test speech comes from two unseen voices; at test
time modalities go missing at stated rates (:data:`CONDITIONS`).

Every pipeline is a :class:`CapstoneClassifier` (a :class:`mmlab.missing.MissingModalityClassifier`) trained by
:func:`mmlab.train.fit`; the five fixes (:data:`FIXES`) switch modules of ``mmlab`` on: quality filtering
(:func:`mmlab.quality.warmup_scores`), masked pooling of the padded audio (:class:`mmlab.models.AudioCNN` with
lengths), per-modality normalisation before fusion (:class:`mmlab.fusion.NormalizedFusion`), modality dropout
with a learned missing token (:class:`mmlab.missing.ModalityDropout`, :class:`~mmlab.missing.MissingToken`)
and OGM gradient modulation (:func:`mmlab.balance.ogm_coefficients`, :func:`~mmlab.balance.modulate_gradients`).
Accuracy under a missing-rate condition is exact: :func:`mmlab.missing.expected_accuracy` over the accuracy of
every presence pattern. :func:`noisy_pattern_accuracy` scores a trained model again under extra test-time noise
(:data:`TEST_NOISE`, evaluation only) for the widget (:func:`capstone_widget_figure`). Deployment:
:func:`compress_pipeline` prunes (:func:`mmlab.deploy.prune_structured`) and distills
(:func:`mmlab.deploy.distill`) a trained pipeline, :class:`CachedTextPipeline` serves it with an LRU cache on
the caption encoder (:class:`mmlab.deploy.CachedEncoder`), :func:`serve` and :func:`serving_timings` run and time
it through :func:`mmlab.deploy.batched_inference` and :func:`mmlab.deploy.compare_latency`.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from ..balance import modality_scores, modulate_gradients, ogm_coefficients
from ..checks import check_choice
from ..data import load_avdigits
from ..deploy import CachedEncoder, batched_inference, compare_latency, distill, model_size_bytes, prune_structured
from ..fusion import ConcatFusion, NormalizedFusion
from ..missing import MissingModalityClassifier, check_rates, expected_accuracy, missing_rates_figure
from ..models import AudioCNN, MLPEncoder, masked_mean
from ..quality import FILTER_GRID, InjectedNoise, QualityScores, filter_by_threshold, inject_noise, warmup_scores
from ..runtime import eval_mode, resolve_device, seeded
from ..stats import paired_bootstrap
from ..text import WordTokenizer, bag_of_words
from ..train import History, fit, make_loader
from ..viz import new_figure

__all__ = [
    "CAPSTONE_MODALITIES",
    "TASK_KNOBS",
    "CONDITIONS",
    "FIXES",
    "FIX_LABELS",
    "CapstoneTask",
    "load_capstone_task",
    "SequenceAudioEncoder",
    "CapstoneClassifier",
    "build_pipeline",
    "CapstoneRun",
    "train_pipeline",
    "pattern_accuracy",
    "condition_accuracy",
    "cumulative_configs",
    "leave_one_out_configs",
    "pipeline_runs",
    "contribution_intervals",
    "contribution_figure",
    "TEST_NOISE",
    "add_test_noise",
    "noisy_pattern_accuracy",
    "interpolate_noise",
    "capstone_widget_figure",
    "PRUNE_PAIRS",
    "compress_pipeline",
    "CachedTextPipeline",
    "serve",
    "serving_timings",
    "per_seed",
    "quality_keep",
]

CAPSTONE_MODALITIES = ("image", "audio", "text")
"""The task's modalities, in the order of every input list and presence mask."""

TASK_KNOBS: dict[str, float] = {
    "image_noise": 0.5,  # std of Gaussian pixel noise (pixels in [0, 1]), every split
    "text_noise": 0.5,  # share of captions that do not name the digit, every split
    "mismatch": 0.2,  # share of training items whose audio comes from another class
    "label_noise": 0.2,  # share of training labels replaced by another class
}
"""The course's knobs as this task sets them (``load_avdigits`` and :func:`mmlab.quality.inject_noise`)."""

CONDITIONS: dict[str, tuple[float, float, float]] = {
    "complete": (0.0, 0.0, 0.0),
    "missing": (0.1, 0.3, 0.3),
    "shifted": (0.3, 0.7, 0.1),
}
"""Test conditions: per-modality missing rates (image, audio, text). ``"missing"`` is the rate the deployed
system expects (a camera frame lost now and then, a third of the users silent, a third without a caption);
``"shifted"`` a different pattern it was not tuned for (audio mostly gone, images lost more often)."""

FIXES = ("quality", "masks", "fusion", "missing", "ogm")
"""The five fixes, in the order the cumulative ablation adds them (see the lesson for why this order)."""

FIX_LABELS = {
    "quality": "quality filter",
    "masks": "padding masks",
    "fusion": "normalised fusion",
    "missing": "ModDrop + token",
    "ogm": "OGM (SGD)",
}

EMBED_DIM = 24
FRAME_POOL = 2


# ----------------------------------------------------------------------------------------------------- the task


@dataclass
class CapstoneTask:
    """AV-Digits with every problem at once, as float tensors (one per modality, in :data:`CAPSTONE_MODALITIES`
    order): image ``(N, 64)``, audio ``(N, T, 33)`` — 32 standardised log-mel bands plus a last channel that is 1
    at real frames and 0 at padding —, text ``(N, V)`` word counts. ``train_labels`` are the noisy labels;
    ``noise`` records which training items were corrupted (ground truth the pipelines never see).
    ``val`` = training voices, new recordings, clean; ``test`` = two unseen voices, clean."""

    inputs: dict[str, list[torch.Tensor]]
    labels: dict[str, torch.Tensor]
    noise: InjectedNoise
    vocab: list[str]
    knobs: dict[str, float] = field(default_factory=dict)
    num_classes: int = 10
    warmup_cache: dict[int, QualityScores] = field(default_factory=dict, repr=False)
    """The quality scorer's warm-up scores by seed (:func:`quality_keep`): they depend on the data and the seed
    only, so every pipeline of one seed reuses them instead of re-running the warm-up."""

    def split(self, name: str) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``(inputs, labels)`` of ``"train"``, ``"val"`` or ``"test"``."""
        check_choice("name", name, ("train", "val", "test"))
        return self.inputs[name], self.labels[name]

    def audio_lengths(self, name: str) -> torch.Tensor:
        """Real frames of each clip of split ``name``."""
        return self.split(name)[0][1][..., -1].sum(1)


def _pool_frames(audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average every ``FRAME_POOL`` consecutive 10 ms frames (20 ms frames: half the convolution work)."""
    n, t, d = audio.shape
    pad = (-t) % FRAME_POOL
    audio = torch.cat([audio, audio[:, -1:].expand(n, pad, d)], 1) if pad else audio
    return audio.reshape(n, -1, FRAME_POOL, d).mean(2), (lengths + FRAME_POOL - 1) // FRAME_POOL


def _pack_audio(audio: torch.Tensor, lengths: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    valid = (torch.arange(audio.shape[1])[None] < lengths[:, None]).float()
    return torch.cat([(audio - mean) / std, valid[..., None]], dim=-1)


@lru_cache(maxsize=2)
def load_capstone_task(seed: int = 0) -> CapstoneTask:
    """Build the task with :data:`TASK_KNOBS` (deterministic for ``seed``).

    Audio: 20 ms log-mel frames (two 10 ms frames averaged), standardised with the mean and std of the *real*
    training frames only; padding, the log of silence in ``load_avdigits``, is standardised with them and then
    sits far below every real frame — the value a pipeline that ignores the mask averages in. Test clips come
    from two unseen voices, which also speak more slowly (longer clips: more real frames, less padding).
    The caption vocabulary is the training captions' (unknown words map to ``<unk>``). Mismatched pairs re-pair
    the *audio* with a clip of another class (:func:`mmlab.quality.inject_noise`), with the original label kept.
    """
    k = TASK_KNOBS
    raw = {
        s: load_avdigits(s, image_noise=k["image_noise"], text_noise=k["text_noise"], seed=seed)
        for s in ("train", "val", "test")
    }
    pooled = {s: _pool_frames(ds.audio, ds.audio_len) for s, ds in raw.items()}
    tr_audio, tr_len = pooled["train"]
    frames = tr_audio[torch.arange(tr_audio.shape[1])[None] < tr_len[:, None]]
    mean, std = frames.mean(0), frames.std(0) + 1e-6
    tok = WordTokenizer(raw["train"].text)
    noise = inject_noise(
        raw["train"].label, mismatch=k["mismatch"], label_noise=k["label_noise"], num_classes=10, seed=seed
    )
    inputs, labels = {}, {}
    for s, ds in raw.items():
        audio = _pack_audio(*pooled[s], mean, std)
        text = bag_of_words(tok(ds.text)[0], len(tok))
        image = ds.image.flatten(1)
        if s == "train":
            audio = noise.pair(audio)
            labels[s] = noise.labels
        else:
            labels[s] = ds.label
        inputs[s] = [image, audio, text]
    return CapstoneTask(inputs, labels, noise, list(tok.itos), dict(k))


# ---------------------------------------------------------------------------------------------------- the model


class SequenceAudioEncoder(nn.Module):
    """:class:`mmlab.models.AudioCNN` on packed audio ``(B, T, n_mels + 1)`` whose last channel marks real frames.

    ``masked=True`` passes the lengths ``Σ_t valid_t``: padded frames are zeroed before each convolution and left
    out of the mean, ``h = Σ_t m_t·f_t / Σ_t m_t``. ``masked=False`` is the tempting version: every frame of the
    padded batch, padding included, is convolved and averaged — so the embedding depends on how much padding a
    clip got, i.e. on its length.
    """

    def __init__(self, n_mels: int = 32, out_dim: int = EMBED_DIM, width: int = 24, masked: bool = True):
        super().__init__()
        self.cnn = AudioCNN(n_mels, out_dim, width)
        self.n_mels, self.out_dim, self.masked = n_mels, out_dim, bool(masked)

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        if packed.dim() != 3 or packed.shape[-1] != self.n_mels + 1:
            raise ValueError(f"packed must have shape (B, T, {self.n_mels + 1}), got {tuple(packed.shape)}")
        lengths = packed[..., -1].sum(1).round().long().clamp_min(1) if self.masked else None
        return self.cnn(packed[..., : self.n_mels], lengths)


class CapstoneClassifier(MissingModalityClassifier):
    """A :class:`mmlab.missing.MissingModalityClassifier` whose completed embeddings are optionally normalised
    per modality before the concatenation head, ``head([N(z̃_1); …; N(z̃_M)])`` with ``N`` the
    :class:`mmlab.fusion.NormalizedFusion` LayerNorm (Ba et al. 2016), so that no modality's scale — or a shift
    of it on unseen voices — dominates the head."""

    def __init__(self, encoders: Mapping[str, nn.Module], num_classes: int, *, normalize: bool = False, **kwargs):
        super().__init__(encoders, num_classes, **kwargs)
        dims = [int(e.out_dim) for e in encoders.values()]
        self.fusion = NormalizedFusion(ConcatFusion(dims)) if normalize else ConcatFusion(dims)

    def complete(self, features: Sequence[torch.Tensor], present: torch.Tensor) -> list[torch.Tensor]:
        zs = super().complete(features, present)
        if isinstance(self.fusion, NormalizedFusion):
            zs = [self.fusion.normalize(z) for z in zs]
        return zs


def build_pipeline(task: CapstoneTask, fixes: Iterable[str] = ()) -> CapstoneClassifier:
    """The model of a pipeline with ``fixes`` on (a subset of :data:`FIXES`): ``"masks"`` → masked audio pooling,
    ``"fusion"`` → normalised fusion, ``"missing"`` → ModDrop at the expected test rates
    (``CONDITIONS["missing"]``) and a learned missing token (else: zero fill, no dropout). ``"quality"`` and
    ``"ogm"`` change the training, not the model. Build it inside ``seeded(seed)``."""
    fixes = _check_fixes(fixes)
    vocab = task.inputs["train"][2].shape[1]
    encoders = {
        "image": MLPEncoder(64, EMBED_DIM, hidden=48),
        "audio": SequenceAudioEncoder(masked="masks" in fixes),
        "text": MLPEncoder(vocab, EMBED_DIM, hidden=24),
    }
    missing = "missing" in fixes
    return CapstoneClassifier(
        encoders,
        task.num_classes,
        normalize="fusion" in fixes,
        fill="token" if missing else "zero",
        train_rates=list(CONDITIONS["missing"]) if missing else None,
    )


def _check_fixes(fixes: Iterable[str]) -> frozenset[str]:
    if isinstance(fixes, str):
        raise TypeError(f"fixes must be a collection of fix names, got the string {fixes!r}")
    out = frozenset(fixes)
    unknown = sorted(out - set(FIXES))
    if unknown:
        raise ValueError(f"fixes must be a subset of {list(FIXES)}, got unknown {unknown}")
    return out


# ------------------------------------------------------------------------------------------------- the training


@dataclass
class CapstoneRun:
    """One trained pipeline (restored to the epoch chosen on val): its fixes, seed, kept epoch, the share of
    training items kept, the accuracy of every presence pattern on val and on test, and the quality filter's
    thresholds (used only with ``"quality"``)."""

    fixes: frozenset[str]
    seed: int
    model: CapstoneClassifier
    history: History
    best_epoch: int
    kept: float
    val_patterns: dict[tuple[bool, ...], float]
    test_patterns: dict[tuple[bool, ...], float]
    threshold: tuple[float, float] = FILTER_GRID[1]


def _patterns_from_features(
    model: CapstoneClassifier, feats: Sequence[torch.Tensor], y: torch.Tensor
) -> dict[tuple[bool, ...], float]:
    """Accuracy of every presence pattern from the embeddings of complete inputs (fill and head only).

    With a zero, mean or token fill and per-modality normalisation, a modality's completed embedding depends only
    on its own embedding and on whether it is present, so ``1 + M`` completions (everything present, then each
    modality missing alone) give the head's exact input for all ``2^M − 1`` patterns."""
    n, m = len(y), len(feats)
    everything = torch.ones(n, m, dtype=torch.bool, device=y.device)
    on = model.complete(feats, everything)
    off = []
    if model.fill != "reconstruct":
        for k in range(m if m > 1 else 0):
            alone = everything.clone()
            alone[:, k] = False
            off.append(model.complete(feats, alone)[k])
    out = {}
    for pattern in itertools.product((True, False), repeat=m):
        if any(pattern):
            if off:
                inputs = [on[k] if present else off[k] for k, present in enumerate(pattern)]
            else:  # a fill that mixes modalities: complete each pattern as it is
                inputs = model.complete(feats, torch.tensor(pattern, device=y.device).expand(n, -1))
            logits = model.head(torch.cat(inputs, dim=1))
            out[pattern] = float((logits.argmax(-1) == y).float().mean())
    return out


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters(), torch.empty(0)).device


@torch.inference_mode()
def pattern_accuracy(
    model: CapstoneClassifier, inputs: Sequence[torch.Tensor], labels: torch.Tensor
) -> dict[tuple[bool, ...], float]:
    """Accuracy for every presence pattern, like :func:`mmlab.missing.accuracy_by_pattern` (same numbers), but
    the encoders run once: a missing modality's embedding is replaced after encoding, so each pattern only
    re-runs the fill and the head (7 patterns for the price of ~1 pass)."""
    with eval_mode(model):
        device = _device_of(model)
        feats = model.embed(*(x.to(device) for x in inputs))
        return _patterns_from_features(model, feats, labels.to(device))


TEST_NOISE: dict[str, tuple[float, ...]] = {"image": (0.0, 0.5, 1.0), "audio": (0.0, 1.0, 2.0)}
"""Extra test-time noise levels the widget reads (evaluation only, no training): the std ``σ_i`` of Gaussian
noise added to the image pixels (on top of the task's own 0.5, pixels in [0, 1]) and ``σ_a`` added to the
standardised log-mel values of the real audio frames (1 = one training std of each band)."""


def add_test_noise(
    inputs: Sequence[torch.Tensor], image_noise: float = 0.0, audio_noise: float = 0.0, *, seed: int = 0
) -> list[torch.Tensor]:
    """``[x_img + σ_i·ε_i, x_audio + σ_a·m·ε_a, x_text]``: test inputs with extra Gaussian noise.

    Audio noise reaches real frames only (``m`` is the packed mask channel: padding stays padding, the mask is
    untouched). ``ε`` comes from a generator seeded with ``seed``, the same draws for every ``σ``: every model
    sees the same noisy inputs (a paired comparison) and accuracy moves smoothly with ``σ``."""
    for name, v in (("image_noise", image_noise), ("audio_noise", audio_noise)):
        if not (isinstance(v, (int, float)) and np.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    eps_i, eps_a = _noise_draws(inputs, seed)
    image, audio, text = inputs
    return [image + image_noise * eps_i, audio + audio_noise * eps_a, text]


def _noise_draws(inputs: Sequence[torch.Tensor], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Standard normal draws for the image and for the real audio frames (zero on padding and the mask)."""
    if len(inputs) != len(CAPSTONE_MODALITIES):
        raise ValueError(f"inputs must hold {len(CAPSTONE_MODALITIES)} tensors (image, audio, text), got {len(inputs)}")
    image, audio, _ = inputs
    gen = torch.Generator().manual_seed(seed)
    eps_i = torch.randn(image.shape, generator=gen).to(image)
    eps_a = torch.randn(audio.shape, generator=gen).to(audio) * audio[..., -1:]
    eps_a[..., -1] = 0.0
    return eps_i, eps_a


@torch.inference_mode()
def noisy_pattern_accuracy(
    model: CapstoneClassifier,
    inputs: Sequence[torch.Tensor],
    labels: torch.Tensor,
    *,
    image_levels: Sequence[float] = TEST_NOISE["image"],
    audio_levels: Sequence[float] = TEST_NOISE["audio"],
    seed: int = 0,
) -> dict[tuple[float, float], dict[tuple[bool, ...], float]]:
    """:func:`pattern_accuracy` at every ``(σ_i, σ_a)`` of the grid of extra test-time noise
    (:func:`add_test_noise`): ``{(σ_i, σ_a): {pattern: accuracy}}``. Each encoder runs once per level of its own
    modality's noise (the text encoder once), then each grid point only re-runs fill and head."""
    levels = {"image": [float(v) for v in image_levels], "audio": [float(v) for v in audio_levels]}
    for name, vals in levels.items():
        if not vals or sorted(set(vals)) != vals or vals[0] < 0:
            raise ValueError(f"{name}_levels must be distinct non-negative levels in increasing order, got {vals}")
    eps = _noise_draws(inputs, seed)
    with eval_mode(model):
        device = _device_of(model)
        y = labels.to(device)
        enc = model.encoders
        feats = {"text": enc["text"](inputs[2].to(device))}
        for k, m in enumerate(("image", "audio")):
            x, e = inputs[k].to(device), eps[k].to(device)
            feats[m] = [enc[m](x + s * e) for s in levels[m]]
        return {
            (si, sa): _patterns_from_features(model, [feats["image"][i], feats["audio"][j], feats["text"]], y)
            for i, si in enumerate(levels["image"])
            for j, sa in enumerate(levels["audio"])
        }


def _bracket(levels: Sequence[float], value: float, name: str) -> tuple[int, int, float]:
    """Indices of the two levels around ``value`` and the weight of the upper one (linear interpolation)."""
    if not (isinstance(value, (int, float)) and levels[0] <= value <= levels[-1]):
        raise ValueError(f"{name} must be within the measured levels [{levels[0]}, {levels[-1]}], got {value!r}")
    hi = min(int(np.searchsorted(levels, value, side="left")), len(levels) - 1)
    if levels[hi] == value or hi == 0:
        return hi, hi, 0.0
    lo = hi - 1
    return lo, hi, (value - levels[lo]) / (levels[hi] - levels[lo])


def interpolate_noise(
    grid: Mapping[tuple[float, float], Mapping[tuple[bool, ...], float]], image_noise: float, audio_noise: float
) -> dict[tuple[bool, ...], float]:
    """Pattern accuracies at ``(σ_i, σ_a)``, bilinear between the measured levels of ``grid``
    (:func:`noisy_pattern_accuracy`): ``acc = Σ w_i w_a acc(σ_i^k, σ_a^l)`` over the four surrounding points.
    Exact at the measured levels; in between, an interpolation, not a measurement."""
    si = sorted({k[0] for k in grid})
    sa = sorted({k[1] for k in grid})
    i0, i1, wi = _bracket(si, image_noise, "image_noise")
    a0, a1, wa = _bracket(sa, audio_noise, "audio_noise")
    corners = [(i0, a0, (1 - wi) * (1 - wa)), (i1, a0, wi * (1 - wa)), (i0, a1, (1 - wi) * wa), (i1, a1, wi * wa)]
    patterns = grid[si[0], sa[0]].keys()
    return {p: float(sum(w * grid[si[i], sa[a]][p] for i, a, w in corners)) for p in patterns}


def condition_accuracy(patterns: Mapping[tuple[bool, ...], float], condition: str | Sequence[float]) -> float:
    """Exact expected accuracy under a test condition (a name in :data:`CONDITIONS` or three missing rates):
    ``Σ_s P(s | rates)·acc(s)`` (:func:`mmlab.missing.expected_accuracy`)."""
    if isinstance(condition, str):
        check_choice("condition", condition, tuple(CONDITIONS))
        rates = CONDITIONS[condition]
    else:
        rates = check_rates(condition, len(CAPSTONE_MODALITIES), name="condition")
    return expected_accuracy(patterns, rates)


def quality_keep(task: CapstoneTask, seed: int, threshold: tuple[float, float]) -> torch.Tensor:
    """Training items kept by the quality filter: a short :func:`mmlab.quality.warmup_scores` run on image pixels
    and the masked mean of the audio frames (the pair that mismatches), then ``agreement ≥ τ_a`` and
    ``log p(y|x) ≥ τ_ℓ`` (lesson 6's two detectors; thresholds from :data:`mmlab.quality.FILTER_GRID`).
    The warm-up scores of each seed are computed once per task (``task.warmup_cache``) and reused: the same
    numbers, without re-training the scorer for every pipeline and threshold."""
    if seed not in task.warmup_cache:
        inputs, labels = task.split("train")
        audio = inputs[1]
        summary = masked_mean(audio[..., :-1], audio[..., -1] > 0)
        task.warmup_cache[seed] = warmup_scores([inputs[0], summary], labels, epochs=8, seed=seed, progress=False)
    scores = task.warmup_cache[seed]
    return filter_by_threshold(scores.agreement, threshold[0]) & filter_by_threshold(scores.loglik, threshold[1])


class _ValSelection:
    """The epoch chosen on val: an ``after_epoch`` hook that scores every presence pattern on val, keeps the
    weights of the first epoch with the best expected accuracy under ``select_on``, and finally restores them."""

    def __init__(self, task: CapstoneTask, select_on: str):
        self.task, self.select_on = task, check_choice("select_on", select_on, tuple(CONDITIONS))
        self.acc, self.epoch, self.state, self.patterns = -1.0, 0, None, {}

    def __call__(self, model: CapstoneClassifier, epoch: int) -> dict[str, float]:
        patterns = pattern_accuracy(model, *self.task.split("val"))
        acc = condition_accuracy(patterns, self.select_on)
        if acc > self.acc:
            self.acc, self.epoch, self.patterns = acc, epoch + 1, patterns
            self.state = copy.deepcopy(model.state_dict())
        return {"val_acc": acc}

    def run(self, model: CapstoneClassifier, history: History, base: CapstoneRun) -> CapstoneRun:
        """``base`` with the restored ``model`` (in eval mode), its history, kept epoch and val/test patterns."""
        model.load_state_dict(self.state)
        model.eval()
        test = pattern_accuracy(model, *self.task.split("test"))
        return dataclasses.replace(
            base, model=model, history=history, best_epoch=self.epoch, val_patterns=self.patterns, test_patterns=test
        )


def _sgd_options(model: nn.Module, lr: float, epochs: int, selection: _ValSelection, **options) -> dict:
    """:func:`mmlab.train.fit` options shared by training and distillation: SGD with momentum 0.9 and weight decay
    1e-4 at ``lr``, the val selection hook, no AMP."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    return dict(epochs=epochs, optimizer=optimizer, after_epoch=selection, amp=False, **options)


def _training_items(task: CapstoneTask, fixes: frozenset[str], seed: int, threshold: tuple[float, float]):
    """The training items a pipeline learns from (``"quality"``: those :func:`quality_keep` keeps) and the mask."""
    inputs, labels = task.split("train")
    keep = quality_keep(task, seed, threshold) if "quality" in fixes else torch.ones(len(labels), dtype=torch.bool)
    keep = keep.cpu()
    return [x[keep] for x in inputs], labels[keep], keep


def train_pipeline(
    task: CapstoneTask,
    fixes: Iterable[str] = (),
    *,
    seed: int = 0,
    epochs: int = 16,
    lr: float = 0.03,
    alpha: float = 0.5,
    threshold: tuple[float, float] = FILTER_GRID[1],
    select_on: str = "missing",
    device: torch.device | str | None = None,
    progress: bool = True,
) -> CapstoneRun:
    """Train one pipeline with :func:`mmlab.train.fit`: SGD (momentum 0.9, weight decay 1e-4, the optimizer under
    which lesson 4 showed gradient modulation matters), batch 64, cross-entropy, on the task's training split —
    all of it, or with ``"quality"`` only the items :func:`quality_keep` keeps. With ``"ogm"``, after each
    backward pass every modality ``m`` whose OGM score ``s_m`` leads the mean of the others' gets its encoder's
    gradients × ``k_m = 1 − tanh(α·s_m / s̄_{¬m})`` (:func:`mmlab.balance.ogm_coefficients`; Peng et al. 2022,
    extended from two modalities to three by comparing each with the others' mean).

    The epoch is chosen on val (training voices, new recordings): the first epoch with the best expected val
    accuracy under condition ``select_on``; its weights are kept. Then every presence pattern is scored on val
    and test. Initialisation, ModDrop draws and batch order follow ``seed``.
    """
    fixes = _check_fixes(fixes)
    selection = _ValSelection(task, select_on)
    device = resolve_device(device)
    xs, y, keep = _training_items(task, fixes, seed, threshold)

    def compute_loss(model: CapstoneClassifier, batch) -> dict[str, torch.Tensor]:
        *xb, yb = batch
        logits, _, completed, _ = model.forward_details(*xb)
        return {"loss": F.cross_entropy(logits, yb), "_completed": completed, "_target": yb}

    def after_backward(model: CapstoneClassifier, batch, result) -> None:
        s = modality_scores(result["_completed"], model.head, result["_target"]).clamp_min(1e-6)
        groups = {m: model.encoders[m].parameters() for m in model.modalities}
        coeffs = {}
        for i, m in enumerate(model.modalities):
            others = torch.cat([s[:i], s[i + 1 :]]).mean()
            coeffs[m] = ogm_coefficients(s[i], others, alpha)[0] if s[i] > others else 1.0
        modulate_gradients(groups, coeffs)

    with seeded(seed):
        model = build_pipeline(task, fixes).to(device)
        history = fit(
            model,
            make_loader(*(x.to(device) for x in xs), y.to(device), batch_size=64, shuffle=True, seed=seed),
            compute_loss=compute_loss,
            after_backward=after_backward if "ogm" in fixes else None,
            **_sgd_options(model, lr, epochs, selection, device=device, progress=progress),
            desc=f"{'+'.join(sorted(fixes)) or 'naive'} seed {seed}",
        )
    base = CapstoneRun(fixes, seed, model, history, 0, float(keep.float().mean()), {}, {}, tuple(threshold))
    return selection.run(model, history, base)


# ---------------------------------------------------------------------------------------------------- ablation


def cumulative_configs(order: Sequence[str] = FIXES) -> list[frozenset[str]]:
    """``[{}, {f_1}, {f_1, f_2}, …, all]``: the fixes added one by one in ``order``."""
    order = list(order)
    _check_fixes(order)
    return [frozenset(order[:i]) for i in range(len(order) + 1)]


def leave_one_out_configs(fixes: Sequence[str] = FIXES) -> dict[str, frozenset[str]]:
    """``{f: all − {f}}``: the full system without each fix."""
    full = _check_fixes(fixes)
    return {f: full - {f} for f in fixes}


def pipeline_runs(
    task: CapstoneTask, configs: Iterable[frozenset[str]], seeds: Sequence[int], cache: dict | None = None, **kwargs
) -> dict[frozenset[str], list[CapstoneRun]]:
    """Train every config for every seed (``kwargs`` to :func:`train_pipeline`), reusing runs already in
    ``cache`` (a dict keyed by ``(config, seed)``, filled in place), so that a config shared by the cumulative and
    the leave-one-out ablation is trained once."""
    cache = {} if cache is None else cache
    out: dict[frozenset[str], list[CapstoneRun]] = {}
    for config in configs:
        config = _check_fixes(config)
        for seed in seeds:
            if (config, seed) not in cache:
                cache[config, seed] = train_pipeline(task, config, seed=seed, progress=False, **kwargs)
        out[config] = [cache[config, seed] for seed in seeds]
    return out


def per_seed(runs: Sequence[CapstoneRun], condition: str | Sequence[float], split: str = "test") -> np.ndarray:
    """Accuracy of each run under ``condition`` on ``split`` (``"val"`` or ``"test"``), one value per seed."""
    check_choice("split", split, ("val", "test"))
    return np.array([condition_accuracy(getattr(r, f"{split}_patterns"), condition) for r in runs])


def contribution_intervals(
    runs: Mapping[frozenset[str], Sequence[CapstoneRun]],
    pairs: Mapping[str, tuple[frozenset, frozenset]],
    condition: str,
    split: str = "test",
) -> dict[str, object]:
    """Paired bootstrap interval (over seeds) of ``acc(with) − acc(without)`` for each named pair of configs."""
    return {
        name: paired_bootstrap(per_seed(runs[a], condition, split), per_seed(runs[b], condition, split))
        for name, (a, b) in pairs.items()
    }


def contribution_figure(
    cumulative: Mapping[str, object], leave_one_out: Mapping[str, object], condition: str = "missing"
) -> Figure:
    """Two panels of paired intervals (percentage points, 95% bootstrap over seeds): each fix's gain when added
    in the cumulative order, and the loss when it alone is removed from the full system."""
    fig, axes = new_figure(1, 2, size=(11, 3.6), sharey=True)
    for ax, (title, ivs) in zip(
        axes,
        (("added in order (cumulative)", cumulative), ("removed from the full system (leave-one-out)", leave_one_out)),
    ):
        names = list(ivs)
        y = np.arange(len(names))
        d = np.array([100 * ivs[n].diff for n in names])
        lo = np.array([100 * ivs[n].low for n in names])
        hi = np.array([100 * ivs[n].high for n in names])
        colors = ["tab:green" if a > 0 else "tab:red" if b < 0 else "tab:gray" for a, b in zip(lo, hi)]
        ax.barh(y, d, color=colors, alpha=0.8)
        ax.errorbar(d, y, xerr=[d - lo, hi - d], fmt="none", color="black", capsize=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, [FIX_LABELS.get(n, n) for n in names])
        ax.invert_yaxis()
        ax.set_xlabel(f"test accuracy gained by the fix (points, condition '{condition}')")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_ylabel("fix")
    fig.suptitle("Each fix's contribution: mean paired difference with its 95% interval over seeds")
    return fig


def capstone_widget_figure(
    image_missing: float = 0.1,
    audio_missing: float = 0.3,
    text_missing: float = 0.3,
    image_noise: float = 0.0,
    audio_noise: float = 0.0,
    *,
    patterns: Mapping[str, Sequence[Mapping[tuple[float, float], Mapping[tuple[bool, ...], float]]]],
) -> Figure:
    """The lesson's widget: expected test accuracy (mean ± std over seeds) of every pipeline in ``patterns``
    (name → one :func:`noisy_pattern_accuracy` grid per seed) at the given test-time missing rates and extra
    noise: ``E[acc] = Σ_s P(s | rates)·acc_σ(s)`` (:func:`mmlab.missing.missing_rates_figure`), with ``acc_σ``
    bilinear between the measured noise levels (:func:`interpolate_noise`). Nothing is retrained or re-run."""
    at = {
        name: [interpolate_noise(grid, image_noise, audio_noise) for grid in grids] for name, grids in patterns.items()
    }
    title = (
        f"extra test-time noise: image σ = {image_noise:.2f} (pixel units), audio σ = {audio_noise:.2f} (log-mel stds)"
    )
    return missing_rates_figure(at, [image_missing, audio_missing, text_missing], CAPSTONE_MODALITIES, title=title)


# -------------------------------------------------------------------------------------------------- deployment


PRUNE_PAIRS = (
    ("encoders.image.net.1", "encoders.image.net.3"),
    ("encoders.audio.cnn.conv1", "encoders.audio.cnn.conv2"),
    ("encoders.text.net.1", "encoders.text.net.3"),
)
"""The hidden widths :func:`compress_pipeline` prunes: each encoder's inner layer (the image MLP's 48 units, the
speech CNN's 24 channels between its two convolutions, the caption MLP's 24 units). Embeddings and head keep
their sizes, so fill, fusion and head work unchanged."""


def compress_pipeline(
    task: CapstoneTask,
    run: CapstoneRun,
    ratio: float,
    *,
    epochs: int = 4,
    device: torch.device | str | None = None,
    progress: bool = False,
    **distill_options: float,
) -> CapstoneRun:
    """Prune ``run``'s model and distill it back from the unpruned one: a deployable student.

    :func:`mmlab.deploy.prune_structured` removes the ``ratio`` least important units (L1 norm of their incoming
    weights, Li et al. 2017) of every pair in :data:`PRUNE_PAIRS` and rebuilds smaller layers; the student is
    then trained for ``epochs`` epochs with :func:`mmlab.deploy.distill` against the frozen unpruned model,
    ``(1−α)·CE + α·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T))`` (Hinton et al. 2015; ``distill_options``: its
    ``temperature`` T, default 4, and ``alpha`` α, default 0.5), on the run's own training items (after its
    quality filter), SGD with momentum at learning rate 0.01, ModDrop on in the student (the teacher sees every
    modality: the student learns to say from what is left what the teacher says from everything). The epoch
    with the best val accuracy under ``"missing"`` is kept. Returns a :class:`CapstoneRun` (same fixes and seed)
    whose model and patterns are the student's."""
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    selection = _ValSelection(task, "missing")
    device = resolve_device(device)
    xs, y, _ = _training_items(task, run.fixes, run.seed, run.threshold)
    student = prune_structured(run.model, ratio, pairs=PRUNE_PAIRS).to(device)
    with seeded(run.seed):
        history = distill(
            student,
            run.model,
            make_loader(*xs, y, batch_size=64, shuffle=True, seed=run.seed),
            **{"temperature": 4.0, "alpha": 0.5, **distill_options},
            **_sgd_options(student, 0.01, epochs, selection, device=device, progress=progress),
            desc=f"prune {ratio:.0%} + distill, seed {run.seed}",
        )
    return selection.run(student, history, run)


class CachedTextPipeline(nn.Module):
    """A trained :class:`CapstoneClassifier` served with its caption encoder behind an LRU cache keyed by content
    (:class:`mmlab.deploy.CachedEncoder`, ``capacity`` entries): captions come from templates, so many requests
    carry the same bag of words, and a hit skips the encoder. ``forward(image, audio, text)`` computes
    ``model(image, audio, text)`` (every modality present) with the text embeddings from the cache.
    :meth:`clear_cache` empties it (and its hit counters)."""

    def __init__(self, model: CapstoneClassifier, capacity: int = 256):
        super().__init__()
        self.model, self.capacity = model, capacity
        self.clear_cache()

    def clear_cache(self) -> None:
        text_encoder = self.model.encoders["text"]
        self.text_cache = CachedEncoder(lambda rows: text_encoder(torch.stack(list(rows))), capacity=self.capacity)

    @property
    def hit_rate(self) -> float:
        """Hits over lookups since the last :meth:`clear_cache`."""
        return self.text_cache.hit_rate

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        model = self.model
        if len(inputs) != len(model.modalities):
            raise ValueError(
                f"expected {len(model.modalities)} inputs ({', '.join(model.modalities)}), got {len(inputs)}"
            )
        feats = [
            self.text_cache(list(x)) if m == "text" else model.encoders[m](x) for m, x in zip(model.modalities, inputs)
        ]
        present = torch.ones(len(inputs[0]), len(feats), dtype=torch.bool, device=inputs[0].device)
        return model.head(torch.cat(model.complete(feats, present), dim=1))


def _stack_items(items: Sequence[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.stack(parts) for parts in zip(*items))


def serve(model: nn.Module, inputs: Sequence[torch.Tensor], *, batch_size: int = 64) -> torch.Tensor:
    """Logits ``(N, classes)`` for the ``N`` requests of ``inputs`` (one tensor per modality, every modality
    present), served by :func:`mmlab.deploy.batched_inference` in batches of ``batch_size`` (``eval()``,
    ``inference_mode()``), in the order of ``inputs``; on the model's device, returned on the CPU."""
    items = list(zip(*inputs))
    if not items:
        raise ValueError("inputs must hold at least one request")
    return batched_inference(model, items, batch_size=batch_size, collate=_stack_items)


def serving_timings(
    models: Mapping[str, nn.Module],
    inputs: Sequence[torch.Tensor],
    *,
    batch_size: int = 64,
    repeats: int = 40,
    clock: str = "wall",
) -> dict[str, dict[str, float]]:
    """Latency of one request (batch 1: p50 and p95 over ``repeats`` single calls, the requests cycling through
    the items of ``inputs`` in the same order for every model) and throughput when serving all of ``inputs``
    through :func:`mmlab.deploy.batched_inference` in batches of ``batch_size`` (items per second, from the
    median of the batched runs), timed side by side with :func:`mmlab.deploy.compare_latency` (warm-up,
    interleaved rounds). A :class:`CachedTextPipeline` starts each batched run, and the single calls, with an
    empty cache. Models run on the CPU in eval mode under ``inference_mode``; ``size_kb`` is the checkpoint
    (:func:`mmlab.deploy.model_size_bytes`, of the wrapped model for a cached pipeline)."""
    if not models:
        raise ValueError("models must name at least one model")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    cpu_inputs = [x.cpu() for x in inputs]
    items = list(zip(*cpu_inputs))

    def single(model: nn.Module):
        order = itertools.cycle(range(len(items)))

        def run() -> None:
            i = next(order)
            with torch.inference_mode():
                model(*(x[i : i + 1] for x in cpu_inputs))

        return run

    def batched(model: nn.Module):
        def run() -> None:
            if isinstance(model, CachedTextPipeline):
                model.clear_cache()
            batched_inference(model, items, batch_size=batch_size, collate=_stack_items)

        return run

    for model in models.values():
        model.cpu().eval()
        if isinstance(model, CachedTextPipeline):
            model.clear_cache()
    lat = compare_latency({n: single(m) for n, m in models.items()}, warmup=5, repeats=repeats, clock=clock)
    thr = compare_latency({n: batched(m) for n, m in models.items()}, warmup=1, repeats=5, clock=clock)
    return {
        n: {
            "p50_ms": 1e3 * lat[n].p50,
            "p95_ms": 1e3 * lat[n].p95,
            "items_per_s": len(items) / thr[n].median,
            "size_kb": model_size_bytes(m.model if isinstance(m, CachedTextPipeline) else m) / 1024,
        }
        for n, m in models.items()
    }
