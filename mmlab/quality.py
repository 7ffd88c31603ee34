"""Lesson 6's two pitfalls: stacking layers on small data, and training on dirty multimodal pairs.

**Model size.** :class:`FusionStack` is the recipe "fuse the features, then stack more layers": concatenate the
modalities' feature vectors and apply ``depth`` hidden layers of ``width`` units. The light alternative is one
hidden layer, distilled from a bigger teacher with :func:`mmlab.deploy.distill`.

**Data quality.** Web-scale multimodal data sets are dirty: some pairs do not belong together and some labels
are wrong. This module injects both kinds of noise with a known ground truth (:func:`inject_noise`), scores every
training item with a short warm-up model (:class:`PairScorer`, :func:`warmup_scores`):

* cross-modal **agreement** ``a_i = cos(e_1(x_i), e_2(x_i))`` between the two modalities' embeddings, the idea of
  CLIPScore (Hessel et al. 2021) and of LAION's filter, which keeps a web pair when the cosine of its CLIP
  image and text embeddings is at least 0.28–0.3 (Schuhmann et al. 2021, 2022);
* the **small-loss** criterion ``log p(y_i | x_i)``: networks fit clean, consistent examples before they memorise
  noisy ones (Arpit et al. 2017), so after a short warm-up the items with the largest loss are the likely
  mislabelled ones (Han et al. 2018, Co-teaching);

and then filters (:func:`filter_by_threshold`, :func:`filter_by_keep_fraction`) or down-weights them
(:func:`soft_weights`, :func:`weighted_sampler`). :func:`auroc`, :func:`precision_recall_curve` and
:func:`filter_report` measure the detectors against the injected ground truth.
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
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
    WeightedRandomSampler,
)

from .checks import check_fraction, check_tensor
from .runtime import get_device
from .train import History, fit, to_device

__all__ = [
    "FusionStack",
    "InjectedNoise",
    "inject_noise",
    "agreement_scores",
    "small_loss_scores",
    "auroc",
    "precision_recall_curve",
    "filter_by_threshold",
    "filter_by_keep_fraction",
    "filter_report",
    "soft_weights",
    "weighted_sampler",
    "tensor_loader",
    "train_classifier",
    "predict_logits",
    "classifier_accuracy",
    "PairScorer",
    "QualityScores",
    "warmup_scores",
    "QualityData",
    "load_quality_data",
    "labeled_split",
    "train_and_test",
    "QualityRun",
    "run_quality",
    "score_histogram",
    "quality_widget_figure",
]


# --------------------------------------------------------------------------------------------------------------
# Model size: the "stack more layers" recipe
# --------------------------------------------------------------------------------------------------------------


class FusionStack(nn.Module):
    """Concatenate the modalities' features, then stack ``depth`` hidden layers of ``width`` units.

    ``h_0 = [x_1; …; x_M]``, ``h_1 = ReLU(W_1 h_0)`` and, for ``l = 2…depth``, either the plain stack
    ``h_l = ReLU(W_l h_{l-1})`` or, with ``residual=True``, a pre-norm residual block
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
        self.inp = nn.Linear(sum(self.input_dims), width)
        if residual:
            block = lambda: nn.Sequential(
                nn.LayerNorm(width), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width)
            )
        else:
            block = lambda: nn.Sequential(nn.Linear(width, width), nn.ReLU())
        self.blocks = nn.ModuleList([block() for _ in range(depth - 1)])
        self.head = nn.Linear(width, num_classes)

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        if len(features) != len(self.input_dims):
            raise ValueError(f"expected {len(self.input_dims)} feature tensors, got {len(features)}")
        sizes: dict[str, int] = {}
        for i, (x, d) in enumerate(zip(features, self.input_dims)):
            check_tensor(f"features[{i}]", x, ("B", d), dtype="float", sizes=sizes)
        h = torch.relu(self.inp(torch.cat(features, dim=-1)))
        for block in self.blocks:
            h = h + block(h) if self.residual else block(h)
        return self.head(h)


# --------------------------------------------------------------------------------------------------------------
# Noise with a known ground truth
# --------------------------------------------------------------------------------------------------------------


def _check_labels(name: str, labels: torch.Tensor) -> torch.Tensor:
    check_tensor(name, labels, (None,), dtype="int")
    if labels.numel() and labels.min() < 0:
        raise ValueError(f"{name} must be non-negative class indices, got min {int(labels.min())}")
    return labels


@dataclass
class InjectedNoise:
    """The result of :func:`inject_noise`: noisy labels and a record of every change.

    ``partner`` (N,): item ``i``'s second modality is taken from item ``partner[i]`` (``i`` itself when the pair
    is intact); ``labels`` (N,) the possibly corrupted labels; ``clean_labels`` (N,) the originals;
    ``mismatched`` and ``wrong_label`` (N,) bool masks of the changed items.
    """

    partner: torch.Tensor
    labels: torch.Tensor
    clean_labels: torch.Tensor
    mismatched: torch.Tensor
    wrong_label: torch.Tensor

    @property
    def noisy(self) -> torch.Tensor:
        """Items with a mismatched pair, a wrong label, or both."""
        return self.mismatched | self.wrong_label

    def __len__(self) -> int:
        return len(self.labels)

    def pair(self, x: torch.Tensor) -> torch.Tensor:
        """The second modality re-paired as injected: ``x[partner]`` for ``x`` of shape ``(N, *)``."""
        check_tensor("x", x, (len(self), *([None] * (x.dim() - 1))), finite=False)
        return x[self.partner.to(x.device)]


def inject_noise(
    labels: torch.Tensor,
    *,
    mismatch: float = 0.0,
    label_noise: float = 0.0,
    num_classes: int | None = None,
    seed: int = 0,
) -> InjectedNoise:
    """Corrupt exactly ``round(mismatch·N)`` pairs and ``round(label_noise·N)`` labels, recording which.

    A *mismatched* pair keeps its first modality and its label but gets its second modality from a random item
    of a different class (``partner``), as when two lists are joined wrongly or a web caption describes another
    image. A *wrong label* is replaced by a uniformly drawn different class (symmetric label noise). The two sets
    are drawn independently, so an item can carry both. Counts use Python's ``round`` (half to even).
    Deterministic for a given ``seed``.
    """
    labels = _check_labels("labels", labels)
    check_fraction("mismatch", mismatch)
    check_fraction("label_noise", label_noise)
    y = labels.detach().cpu().numpy().astype(np.int64)
    n = len(y)
    num_classes = int(y.max()) + 1 if num_classes is None and n else (num_classes or 1)
    if n and y.max() >= num_classes:
        raise ValueError(f"labels must be < num_classes={num_classes}, got max {int(y.max())}")
    rng = np.random.default_rng(seed)
    n_mis, n_wrong = int(round(mismatch * n)), int(round(label_noise * n))
    partner = np.arange(n)
    mismatched = np.zeros(n, dtype=bool)
    if n_mis:
        if len(np.unique(y)) < 2:
            raise ValueError("mismatch > 0 needs labels of at least two classes (a partner of another class)")
        mismatched[rng.choice(n, n_mis, replace=False)] = True
        for i in np.flatnonzero(mismatched):
            others = np.flatnonzero(y != y[i])
            partner[i] = others[rng.integers(len(others))]
    wrong = np.zeros(n, dtype=bool)
    noisy_y = y.copy()
    if n_wrong:
        if num_classes < 2:
            raise ValueError("label_noise > 0 needs num_classes >= 2")
        wrong[rng.choice(n, n_wrong, replace=False)] = True
        shift = rng.integers(1, num_classes, size=n_wrong)  # never 0: the new class always differs
        noisy_y[wrong] = (y[wrong] + shift) % num_classes
    device = labels.device
    return InjectedNoise(
        partner=torch.from_numpy(partner).to(device),
        labels=torch.from_numpy(noisy_y).to(device),
        clean_labels=labels.clone(),
        mismatched=torch.from_numpy(mismatched).to(device),
        wrong_label=torch.from_numpy(wrong).to(device),
    )


# --------------------------------------------------------------------------------------------------------------
# Quality scores and how well they detect the noise
# --------------------------------------------------------------------------------------------------------------


def agreement_scores(emb_a: torch.Tensor, emb_b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Cross-modal agreement ``a_i = ⟨e_a,i, e_b,i⟩ / (‖e_a,i‖·‖e_b,i‖)``, the cosine of each item's two embeddings.

    CLIPScore (Hessel et al. 2021) is ``2.5·max(a_i, 0)`` with CLIP embeddings; LAION-400M kept web pairs with
    ``a_i ≥ 0.3`` (Schuhmann et al. 2021). Returns ``(N,)``; higher means the two modalities agree.
    """
    sizes: dict[str, int] = {}
    check_tensor("emb_a", emb_a, ("N", "D"), dtype="float", sizes=sizes)
    check_tensor("emb_b", emb_b, ("N", "D"), dtype="float", sizes=sizes)
    return F.cosine_similarity(emb_a.float(), emb_b.float(), dim=-1, eps=eps)


def small_loss_scores(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The small-loss criterion as a score: ``log p(y_i | x_i) = -CE(z_i, y_i)`` (Han et al. 2018). ``(N,)``.

    Higher means the warm-up model finds the given label likely; ``-ln C`` is what a uniform guess over ``C``
    classes would give, a natural threshold.
    """
    check_tensor("logits", logits, ("N", None), dtype="float")
    check_tensor("labels", labels, (logits.shape[0],), dtype="int")
    return -F.cross_entropy(logits.float(), labels.to(logits.device), reduction="none")


def _check_scores_and_truth(scores: torch.Tensor, noisy: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    check_tensor("scores", scores, (None,), dtype="float")
    check_tensor("noisy", noisy, (scores.shape[0],), dtype="bool")
    return scores.detach().cpu().double().numpy(), noisy.detach().cpu().numpy()


def auroc(scores: torch.Tensor, noisy: torch.Tensor) -> float:
    """Area under the ROC curve for telling clean items (high score) from noisy ones (low score).

    ``AUROC = P(s_clean > s_noisy) + ½·P(s_clean = s_noisy)`` over random clean/noisy pairs, computed from ranks
    (the Mann–Whitney U statistic divided by ``n_clean·n_noisy``). 0.5 is chance, 1.0 a perfect separation.
    """
    s, bad = _check_scores_and_truth(scores, noisy)
    n_bad, n_good = int(bad.sum()), int((~bad).sum())
    if n_bad == 0 or n_good == 0:
        raise ValueError(f"noisy must contain both clean and noisy items, got {n_good} clean and {n_bad} noisy")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    # average ranks over ties
    start = 0
    while start < len(s):
        stop = start
        while stop + 1 < len(s) and sorted_s[stop + 1] == sorted_s[start]:
            stop += 1
        ranks[order[start : stop + 1]] = (start + stop) / 2 + 1
        start = stop + 1
    u = ranks[~bad].sum() - n_good * (n_good + 1) / 2
    return float(u / (n_good * n_bad))


def precision_recall_curve(scores: torch.Tensor, noisy: torch.Tensor) -> dict[str, np.ndarray]:
    """Precision and recall of flagging the ``k`` lowest-scoring items as noisy, for ``k = 1…N``.

    ``precision_k = #noisy among flagged / k``, ``recall_k = #noisy among flagged / #noisy``; ``threshold_k`` is
    the k-th lowest score (flag ``s ≤ threshold_k``). Returns a dict of three ``(N,)`` arrays.
    """
    s, bad = _check_scores_and_truth(scores, noisy)
    if not bad.any():
        raise ValueError("noisy must contain at least one noisy item")
    order = np.argsort(s, kind="mergesort")
    hits = np.cumsum(bad[order])
    k = np.arange(1, len(s) + 1)
    return {"threshold": s[order], "precision": hits / k, "recall": hits / bad.sum()}


def filter_by_threshold(scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Keep mask ``s_i ≥ threshold`` (N,) bool; ``threshold = -inf`` keeps everything."""
    check_tensor("scores", scores, (None,), dtype="float")
    if math.isnan(threshold):
        raise ValueError("threshold must be a number (or ±inf), got nan")
    return scores >= threshold


def filter_by_keep_fraction(scores: torch.Tensor, keep: float) -> torch.Tensor:
    """Keep mask for the ``round(keep·N)`` highest-scoring items (ties broken by position)."""
    check_tensor("scores", scores, (None,), dtype="float")
    check_fraction("keep", keep)
    n_keep = int(round(keep * len(scores)))
    order = torch.from_numpy(np.argsort(-scores.detach().cpu().double().numpy(), kind="mergesort").copy())
    mask = torch.zeros(len(scores), dtype=torch.bool)
    mask[order[:n_keep]] = True
    return mask.to(scores.device)


def filter_report(keep: torch.Tensor, noisy: torch.Tensor) -> dict[str, float]:
    """How a filter did against the ground truth.

    ``kept_precision``: share of kept items that are clean; ``kept_recall``: share of clean items kept;
    ``noise_precision``: share of removed items that are noisy; ``noise_recall``: share of noisy items removed;
    ``kept``: share of all items kept. A ratio with an empty denominator is reported as ``nan``.
    """
    check_tensor("keep", keep, (None,), dtype="bool")
    check_tensor("noisy", noisy, (keep.shape[0],), dtype="bool")
    keep, noisy = keep.cpu(), noisy.cpu()
    ratio = lambda a, b: float(a) / float(b) if b else float("nan")
    clean = ~noisy
    return {
        "kept_precision": ratio((keep & clean).sum(), keep.sum()),
        "kept_recall": ratio((keep & clean).sum(), clean.sum()),
        "noise_precision": ratio((~keep & noisy).sum(), (~keep).sum()),
        "noise_recall": ratio((~keep & noisy).sum(), noisy.sum()),
        "kept": ratio(keep.sum(), len(keep)),
    }


def soft_weights(scores: torch.Tensor, threshold: float, temperature: float) -> torch.Tensor:
    """A soft filter: ``w_i = σ((s_i − τ) / T)`` in (0, 1); ``T → 0`` gives the hard filter ``s_i ≥ τ``."""
    check_tensor("scores", scores, (None,), dtype="float")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return torch.sigmoid((scores - threshold) / temperature)


def _check_weights(weights: torch.Tensor, n: int | None = None) -> torch.Tensor:
    check_tensor("weights", weights, (n,), dtype="float")
    if len(weights) and (weights < 0).any():
        raise ValueError("weights must be non-negative")
    if not len(weights) or weights.sum() <= 0:
        raise ValueError("weights must have a positive sum")
    return weights


def weighted_sampler(weights: torch.Tensor, num_samples: int | None = None, seed: int = 0) -> WeightedRandomSampler:
    """A seeded ``WeightedRandomSampler``: draws item ``i`` with probability ``w_i / Σ_j w_j``, with replacement.

    ``num_samples`` defaults to ``N`` (one epoch's worth of draws).
    """
    weights = _check_weights(weights)
    n = len(weights) if num_samples is None else int(num_samples)
    if n < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    gen = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(weights.detach().double().cpu(), n, replacement=True, generator=gen)


def tensor_loader(
    *tensors: torch.Tensor,
    batch_size: int = 128,
    shuffle: bool = True,
    weights: torch.Tensor | None = None,
    seed: int = 0,
) -> DataLoader:
    """A DataLoader over tensors that indexes each whole batch at once (``t[idx]``), not item by item.

    Much faster than a per-item ``TensorDataset`` loader for small models. ``weights`` switches to
    :func:`weighted_sampler` (``N`` draws per epoch with replacement); otherwise shuffled or sequential order.
    """
    if not tensors:
        raise ValueError("tensor_loader needs at least one tensor")
    n = tensors[0].shape[0]
    for i, t in enumerate(tensors):
        if t.shape[0] != n:
            raise ValueError(f"tensors[{i}] must have {n} rows like tensors[0], got shape {tuple(t.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ds = TensorDataset(*tensors)
    if weights is not None:
        sampler = weighted_sampler(_check_weights(weights, n), seed=seed)
    elif shuffle:
        sampler = RandomSampler(ds, generator=torch.Generator().manual_seed(seed))
    else:
        sampler = SequentialSampler(ds)
    batches = BatchSampler(sampler, batch_size, drop_last=False)
    return DataLoader(ds, sampler=batches, batch_size=None, collate_fn=lambda b: b)


def train_classifier(
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
    """Train ``model(*features)`` on ``labels`` with :func:`mmlab.train.fit` (AdamW, progress bar).

    ``loss_weights`` (N,) weight each item's loss: ``L = Σ_i w_i·CE_i / Σ_i w_i`` over a batch.
    ``sampler_weights`` (N,) instead draw items with probability ``∝ w_i`` (:func:`weighted_sampler`).
    """
    if isinstance(features, torch.Tensor):
        features = [features]
    labels = _check_labels("labels", labels)
    for i, x in enumerate(features):
        check_tensor(f"features[{i}]", x, (len(labels), *([None] * (x.dim() - 1))))
    if loss_weights is not None and sampler_weights is not None:
        raise ValueError("pass loss_weights or sampler_weights, not both")
    tensors = [*features, labels]
    if loss_weights is not None:
        tensors.append(_check_weights(loss_weights, len(labels)))
    loader = tensor_loader(*tensors, batch_size=batch_size, weights=sampler_weights, seed=seed)
    n_feat = len(features)

    def forward(model: nn.Module, batch):
        out = model(*batch[:n_feat])
        return (out, (batch[n_feat], batch[n_feat + 1])) if loss_weights is not None else (out, batch[n_feat])

    def loss_fn(out: torch.Tensor, target) -> torch.Tensor:
        if isinstance(target, tuple):
            y, w = target
            return (w * F.cross_entropy(out, y, reduction="none")).sum() / w.sum().clamp_min(1e-12)
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


@torch.inference_mode()
def predict_logits(model: nn.Module, features: Sequence[torch.Tensor]) -> torch.Tensor:
    """``model(*features)`` in eval mode on the model's device (restores the previous mode); logits on the CPU."""
    if isinstance(features, torch.Tensor):
        features = [features]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = model(*to_device(list(features), device))
    model.train(was_training)
    return out.float().cpu()


def classifier_accuracy(model: nn.Module, features: Sequence[torch.Tensor], labels: torch.Tensor) -> float:
    """Accuracy of ``model(*features)`` against ``labels``: share of rows whose arg-max is the label."""
    out = predict_logits(model, features)
    check_tensor("labels", labels, (out.shape[0],), dtype="int")
    return (out.argmax(-1) == labels.cpu()).float().mean().item()


# --------------------------------------------------------------------------------------------------------------
# The warm-up scorer
# --------------------------------------------------------------------------------------------------------------


class PairScorer(nn.Module):
    """Two unimodal towers with a shared classification layer, for scoring pairs after a short warm-up.

    ``e_m = f_m(x_m)`` (``Linear – ReLU – Linear``), ``z_m = W e_m`` with one ``W`` for both modalities, trained
    with ``CE(z_1, y) + CE(z_2, y)``: each modality must predict the label on its own, so neither can lean on the
    other, and both land in one shared space. ``forward(x_1, x_2) -> (z_1, z_2)``.
    """

    def __init__(self, input_dims: Sequence[int], num_classes: int, width: int = 64, embed_dim: int = 32):
        super().__init__()
        if isinstance(input_dims, int) or len(input_dims) != 2:
            raise ValueError(f"input_dims must give two modalities' feature counts, got {input_dims!r}")
        self.input_dims = [int(d) for d in input_dims]
        self.towers = nn.ModuleList(
            nn.Sequential(nn.Linear(d, width), nn.ReLU(), nn.Linear(width, embed_dim)) for d in self.input_dims
        )
        self.head = nn.Linear(embed_dim, num_classes)

    def embed(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sizes: dict[str, int] = {}
        check_tensor("x1", x1, ("B", self.input_dims[0]), dtype="float", sizes=sizes)
        check_tensor("x2", x2, ("B", self.input_dims[1]), dtype="float", sizes=sizes)
        return self.towers[0](x1), self.towers[1](x2)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e1, e2 = self.embed(x1, x2)
        return self.head(e1), self.head(e2)


@dataclass
class QualityScores:
    """Per-item scores from :func:`warmup_scores` (higher = cleaner), each ``(N,)`` on the CPU.

    ``agreement``: cosine of the two towers' class-probability vectors ``cos(softmax z_1, softmax z_2)`` in
    [0, 1]; ``loglik``: small-loss score ``log softmax(z_1 + z_2)[y]``; ``embedding_agreement``: cosine of the
    towers' embeddings ``cos(e_1, e_2)``.
    """

    agreement: torch.Tensor
    loglik: torch.Tensor
    embedding_agreement: torch.Tensor


def warmup_scores(
    features: Sequence[torch.Tensor],
    labels: torch.Tensor,
    *,
    epochs: int = 8,
    batch_size: int = 64,
    lr: float = 3e-3,
    width: int = 64,
    num_classes: int | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> QualityScores:
    """Train a :class:`PairScorer` briefly on the (dirty) training data and score every item with it.

    Short on purpose: the scores are read before the network starts to memorise the noisy items.
    """
    if len(features) != 2:
        raise ValueError(f"features must be two tensors (one per modality), got {len(features)}")
    labels = _check_labels("labels", labels)
    num_classes = num_classes or int(labels.max()) + 1
    device = torch.device(device) if device is not None else get_device()
    torch.manual_seed(seed)
    scorer = PairScorer([features[0].shape[1], features[1].shape[1]], num_classes, width=width)

    def forward(model, batch):
        z1, z2 = model(batch[0], batch[1])
        return torch.cat([z1, z2]), torch.cat([batch[2], batch[2]])  # CE(z_1, y) + CE(z_2, y), averaged

    loader = tensor_loader(*features, labels, batch_size=batch_size, seed=seed)
    opt = torch.optim.AdamW(scorer.parameters(), lr=lr)
    fit(
        scorer,
        loader,
        epochs=epochs,
        optimizer=opt,
        forward_fn=forward,
        device=device,
        progress=progress,
        desc="warm-up",
    )
    scorer.eval()
    with torch.inference_mode():
        x1, x2 = (f.to(device) for f in features)
        e1, e2 = scorer.embed(x1, x2)
        z1, z2 = scorer.head(e1), scorer.head(e2)
        return QualityScores(
            agreement=agreement_scores(z1.softmax(-1), z2.softmax(-1)).cpu(),
            loglik=small_loss_scores(z1 + z2, labels.to(device)).cpu(),
            embedding_agreement=agreement_scores(e1, e2).cpu(),
        )


# --------------------------------------------------------------------------------------------------------------
# The lesson's experiment: data, one run, plots, widget
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
    from .data import load_avdigits, standardize

    train = load_avdigits("train", audio_format="mfcc_stats", image_noise=image_noise)
    test = load_avdigits("test", audio_format="mfcc_stats", image_noise=image_noise)
    audio, test_audio = standardize(train.audio, test.audio)
    return QualityData(train.image.flatten(1), audio, train.label, test.image.flatten(1), test_audio, test.label)


def labeled_split(labels: torch.Tensor, per_class: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of ``per_class`` random items of each class (the labelled set) and of all the others (sorted)."""
    labels = _check_labels("labels", labels)
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
    practice are."""
    torch.manual_seed(seed)
    model = FusionStack(data.input_dims, 10, width=width)
    train_classifier(
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
    return classifier_accuracy(model, [data.test_image, data.test_audio], data.test_label)


@dataclass
class QualityRun:
    """One noise setting and seed: the injected noise, the warm-up scores, the keep mask, the filter's report
    and the test accuracy of each training method (``"dirty"``, ``"filtered"``, ``"weighted"``, ...)."""

    noise: InjectedNoise
    scores: QualityScores
    keep: torch.Tensor
    report: dict[str, float]
    accuracy: dict[str, float]


METHODS = ("clean", "dirty", "filtered", "weighted", "oracle")


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
    device: torch.device | str | None = None,
    progress: bool = False,
) -> QualityRun:
    """Inject noise, score every item with a warm-up model, then train by each method and test on clean data.

    ``dirty``: all items as they are; ``filtered``: only items with ``agreement ≥ agreement_threshold`` and
    ``loglik ≥ loglik_threshold``; ``weighted``: all items, drawn with probability ``∝ w_i`` where
    ``w_i = σ((a_i − τ_a)/T_a)·σ((ℓ_i − τ_ℓ)/T_ℓ)`` and ``temperature = (T_a, T_ℓ)``; ``oracle``: only the truly
    clean items; ``clean``: the data before any noise was injected.
    """
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"methods must be among {list(METHODS)}, got {sorted(unknown)}")
    noise = inject_noise(data.label, mismatch=mismatch, label_noise=label_noise, num_classes=10, seed=seed)
    image, audio, y = data.image, noise.pair(data.audio), noise.labels
    scores = warmup_scores([image, audio], y, seed=seed, device=device, progress=progress)
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
            data, *subsets[m][:3], sampler_weights=subsets[m][3], seed=seed, device=device, progress=progress, desc=m
        )
        for m in methods
    }
    return QualityRun(noise, scores, keep, filter_report(keep, noise.noisy), accuracy)


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
    from .viz import new_figure

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
def _cached_scores(mismatch: float, label_noise: float, seed: int, image_noise: float):
    data = load_quality_data(image_noise)
    noise = inject_noise(data.label, mismatch=mismatch, label_noise=label_noise, num_classes=10, seed=seed)
    scores = warmup_scores([data.image, noise.pair(data.audio)], noise.labels, seed=seed, progress=False)
    return noise, scores


@lru_cache(maxsize=256)
def _cached_accuracy(mismatch: float, label_noise: float, seed: int, image_noise: float, which: str, key: tuple):
    data = load_quality_data(image_noise)
    noise, scores = _cached_scores(mismatch, label_noise, seed, image_noise)
    audio, y = noise.pair(data.audio), noise.labels
    if which == "dirty":
        keep = torch.ones(len(y), dtype=torch.bool)
    elif which == "oracle":
        keep = ~noise.noisy
    else:
        ta, tl = key
        keep = filter_by_threshold(scores.agreement, ta) & filter_by_threshold(scores.loglik, tl)
    if keep.sum() < 10:
        return float("nan")
    return train_and_test(data, data.image[keep], audio[keep], y[keep], seed=seed)


def quality_widget_figure(
    agreement_threshold: float = 0.5,
    loglik_threshold: float = -2.3,
    mismatch: float = 0.3,
    label_noise: float = 0.2,
    seed: int = 0,
    image_noise: float = 0.6,
) -> Figure:
    """Lesson 6's widget: noise rates and the two filter thresholds in; score histograms split by the injected
    ground truth, the kept data's precision and recall, and the test accuracy of training on dirty, filtered and
    truly clean (oracle) data out. Results are cached per setting, so moving a slider back is instant."""
    from .viz import new_figure

    check_fraction("mismatch", mismatch)
    check_fraction("label_noise", label_noise)
    mismatch, label_noise = round(float(mismatch), 3), round(float(label_noise), 3)
    ta, tl = round(float(agreement_threshold), 3), round(float(loglik_threshold), 3)
    noise, scores = _cached_scores(mismatch, label_noise, seed, image_noise)
    keep = filter_by_threshold(scores.agreement, ta) & filter_by_threshold(scores.loglik, tl)
    rep = filter_report(keep, noise.noisy)
    acc = {
        "dirty": _cached_accuracy(mismatch, label_noise, seed, image_noise, "dirty", ()),
        "filtered": _cached_accuracy(mismatch, label_noise, seed, image_noise, "filtered", (ta, tl)),
        "oracle": _cached_accuracy(mismatch, label_noise, seed, image_noise, "oracle", ()),
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
