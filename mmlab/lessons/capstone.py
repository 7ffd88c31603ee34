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
every presence pattern.
"""

from __future__ import annotations

import copy
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
from ..deploy import batched_inference, compare_latency, model_size_bytes
from ..fusion import ConcatFusion, NormalizedFusion
from ..missing import MissingModalityClassifier, check_rates, expected_accuracy
from ..models import AudioCNN, MLPEncoder, masked_mean
from ..quality import InjectedNoise, filter_by_threshold, inject_noise, warmup_scores
from ..runtime import eval_mode, resolve_device, seeded
from ..stats import paired_bootstrap
from ..text import WordTokenizer
from ..train import History, fit, make_loader
from ..viz import new_figure
from .deployment import bag_of_words
from .missing import missing_rates_figure
from .pitfalls import FILTER_GRID

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
    "capstone_widget_figure",
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
    training items kept, and the accuracy of every presence pattern on val and on test."""

    fixes: frozenset[str]
    seed: int
    model: CapstoneClassifier
    history: History
    best_epoch: int
    kept: float
    val_patterns: dict[tuple[bool, ...], float]
    test_patterns: dict[tuple[bool, ...], float]


@torch.no_grad()
def pattern_accuracy(
    model: CapstoneClassifier, inputs: Sequence[torch.Tensor], labels: torch.Tensor
) -> dict[tuple[bool, ...], float]:
    """Accuracy for every presence pattern, like :func:`mmlab.missing.accuracy_by_pattern` (same numbers), but
    the encoders run once: a missing modality's embedding is replaced after encoding, so each pattern only
    re-runs the fill and the head (7 patterns for the price of ~1 pass)."""
    with eval_mode(model):
        device = next(model.parameters()).device
        feats = model.embed(*(x.to(device) for x in inputs))
        y = labels.to(device)
        out = {}
        for pattern in itertools.product((True, False), repeat=len(feats)):
            if any(pattern):
                present = torch.tensor(pattern, device=device).expand(len(y), -1)
                logits = model.head(torch.cat(model.complete(feats, present), dim=1))
                out[pattern] = float((logits.argmax(-1) == y).float().mean())
    return out


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
    ``log p(y|x) ≥ τ_ℓ`` (lesson 6's two detectors; thresholds from :data:`mmlab.lessons.pitfalls.FILTER_GRID`)."""
    inputs, labels = task.split("train")
    audio = inputs[1]
    summary = masked_mean(audio[..., :-1], audio[..., -1] > 0)
    scores = warmup_scores([inputs[0], summary], labels, epochs=8, seed=seed, progress=False)
    return filter_by_threshold(scores.agreement, threshold[0]) & filter_by_threshold(scores.loglik, threshold[1])


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
    check_choice("select_on", select_on, tuple(CONDITIONS))
    device = resolve_device(device)
    inputs, labels = task.split("train")
    keep = quality_keep(task, seed, threshold) if "quality" in fixes else torch.ones(len(labels), dtype=torch.bool)
    xs = [x[keep].to(device) for x in inputs]
    y = labels[keep].to(device)
    val_inputs, val_labels = task.split("val")
    best: dict = {"acc": -1.0}

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

    def keep_best(model: CapstoneClassifier, epoch: int) -> dict[str, float]:
        acc = condition_accuracy(pattern_accuracy(model, val_inputs, val_labels), select_on)
        if acc > best["acc"]:
            best.update(acc=acc, epoch=epoch + 1, state=copy.deepcopy(model.state_dict()))
        return {"val_acc": acc}

    with seeded(seed):
        model = build_pipeline(task, fixes).to(device)
        history = fit(
            model,
            make_loader(*xs, y, batch_size=64, shuffle=True, seed=seed),
            epochs=epochs,
            optimizer=torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4),
            compute_loss=compute_loss,
            after_backward=after_backward if "ogm" in fixes else None,
            after_epoch=keep_best,
            device=device,
            amp=False,
            progress=progress,
            desc=f"{'+'.join(sorted(fixes)) or 'naive'} seed {seed}",
        )
    model.load_state_dict(best["state"])
    model.eval()
    return CapstoneRun(
        fixes,
        seed,
        model,
        history,
        best["epoch"],
        float(keep.float().mean()),
        pattern_accuracy(model, val_inputs, val_labels),
        pattern_accuracy(model, *task.split("test")),
    )


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
    *,
    patterns: Mapping[str, Sequence[Mapping[tuple[bool, ...], float]]],
) -> Figure:
    """The lesson's widget: expected test accuracy (mean ± std over seeds) of every pipeline in ``patterns``
    (name → one pattern-accuracy dict per seed) at the given test-time missing rates — lesson 3's
    :func:`mmlab.lessons.missing.missing_rates_figure` for the three modalities; exact, so a slider retrains
    nothing."""
    return missing_rates_figure(patterns, [image_missing, audio_missing, text_missing], CAPSTONE_MODALITIES)


# -------------------------------------------------------------------------------------------------- deployment


def _stack_items(items: Sequence[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.stack(parts) for parts in zip(*items))


def serving_timings(
    models: Mapping[str, nn.Module],
    inputs: Sequence[torch.Tensor],
    *,
    batch_size: int = 256,
    repeats: int = 40,
    clock: str = "wall",
) -> dict[str, dict[str, float]]:
    """Latency of one request (batch 1: p50 and p95 over ``repeats`` single calls) and throughput when serving
    all of ``inputs`` through :func:`mmlab.deploy.batched_inference` in batches of ``batch_size`` (items per
    second, from the median of the batched runs), timed with :func:`mmlab.deploy.compare_latency` (warm-up,
    interleaved rounds). Models run on the CPU in eval mode under ``inference_mode``."""
    if not models:
        raise ValueError("models must name at least one model")
    items = list(zip(*(x.cpu() for x in inputs)))
    one = tuple(x[:1].cpu() for x in inputs)

    def single(model: nn.Module):
        def run() -> None:
            with torch.inference_mode():
                model(*one)

        return run

    def batched(model: nn.Module):
        return lambda: batched_inference(model, items, batch_size=batch_size, collate=_stack_items)

    for model in models.values():
        model.cpu().eval()
    lat = compare_latency({n: single(m) for n, m in models.items()}, warmup=5, repeats=repeats, clock=clock)
    thr = compare_latency({n: batched(m) for n, m in models.items()}, warmup=1, repeats=5, clock=clock)
    return {
        n: {
            "p50_ms": 1e3 * lat[n].p50,
            "p95_ms": 1e3 * lat[n].p95,
            "items_per_s": len(items) / thr[n].median,
            "size_kb": model_size_bytes(m) / 1024,
        }
        for n, m in models.items()
    }
