"""Data quality for multimodal pairs: inject noise with a known ground truth, score every item, filter or
down-weight.

Web-scale multimodal data sets are dirty: some pairs do not belong together and some labels are wrong. This
module injects both kinds of noise with a known ground truth (:func:`inject_noise`) and scores every training
item with a short warm-up model (:class:`PairScorer`, :func:`warmup_scores`):

* cross-modal **agreement** ``a_i = cos(e_1(x_i), e_2(x_i))`` between the two modalities' embeddings, the idea of
  CLIPScore (Hessel et al. 2021) and of LAION's filter, which keeps a web pair when the cosine of its CLIP
  image and text embeddings is at least 0.28–0.3 (Schuhmann et al. 2021, 2022);
* the **small-loss** criterion ``log p(y_i | x_i)``: networks fit clean, consistent examples before they memorise
  noisy ones (Arpit et al. 2017), so after a short warm-up the items with the largest loss are the likely
  mislabelled ones (Han et al. 2018, Co-teaching);

and then filters (:func:`filter_by_threshold`, :func:`filter_by_keep_fraction`) or down-weights them
(:func:`soft_weights`: draw items ``∝ w_i`` with ``mmlab.train.make_loader(..., weights=w)``, or weight each
item's loss with :func:`weighted_cross_entropy`). :func:`auroc`, :func:`precision_recall_curve` (scikit-learn's,
with the course's input checks) and :func:`filter_report` measure the detectors against the injected ground truth.

Lesson 6's experiment (its data, model, runs and widget) lives in :mod:`mmlab.lessons.pitfalls`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn import metrics
from torch import nn

from .checks import check_fraction, check_tensor
from .models import mlp
from .runtime import resolve_device, seeded
from .train import fit, make_loader, predict

__all__ = [
    "InjectedNoise",
    "inject_noise",
    "agreement_scores",
    "small_loss_scores",
    "auroc",
    "precision_recall_curve",
    "filter_by_threshold",
    "FILTER_GRID",
    "filter_by_keep_fraction",
    "filter_report",
    "soft_weights",
    "weighted_cross_entropy",
    "PairScorer",
    "QualityScores",
    "warmup_scores",
]


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

    ``AUROC = P(s_clean > s_noisy) + ½·P(s_clean = s_noisy)`` over random clean/noisy pairs (the Mann–Whitney
    U statistic divided by ``n_clean·n_noisy``; Hanley & McNeil 1982). 0.5 is chance, 1.0 a perfect separation.
    Computed by scikit-learn's ``roc_auc_score`` with the clean items as the positive class.
    """
    s, bad = _check_scores_and_truth(scores, noisy)
    n_bad, n_good = int(bad.sum()), int((~bad).sum())
    if n_bad == 0 or n_good == 0:
        raise ValueError(f"noisy must contain both clean and noisy items, got {n_good} clean and {n_bad} noisy")
    return float(metrics.roc_auc_score(~bad, s))


def precision_recall_curve(scores: torch.Tensor, noisy: torch.Tensor) -> dict[str, np.ndarray]:
    """Precision and recall of flagging every item with ``s_i ≤ threshold`` as noisy, for each distinct score.

    ``precision = #noisy among flagged / #flagged``, ``recall = #noisy among flagged / #noisy``. Returns a dict of
    three arrays ordered by increasing ``threshold`` (so recall rises to 1). Computed by scikit-learn's
    ``precision_recall_curve`` on ``-scores`` with the noisy items as the positive class.
    """
    s, bad = _check_scores_and_truth(scores, noisy)
    if not bad.any():
        raise ValueError("noisy must contain at least one noisy item")
    precision, recall, thresholds = metrics.precision_recall_curve(bad, -s)
    # scikit-learn orders by increasing threshold on -s and appends the point (precision 1, recall 0)
    return {"threshold": -thresholds[::-1], "precision": precision[-2::-1], "recall": recall[-2::-1]}


def filter_by_threshold(scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Keep mask ``s_i ≥ threshold`` (N,) bool; ``threshold = -inf`` keeps everything."""
    check_tensor("scores", scores, (None,), dtype="float")
    if math.isnan(threshold):
        raise ValueError("threshold must be a number (or ±inf), got nan")
    return scores >= threshold


FILTER_GRID = ((0.5, math.log(0.1)), (0.7, math.log(0.25)), (0.85, math.log(0.5)), (0.95, math.log(0.75)))
"""Candidate ``(τ_a, τ_ℓ)`` thresholds for a two-detector filter, from loose to strict: keep an item when its
cross-modal agreement ``a_i ≥ τ_a`` and its ``log p(y_i | x_i) ≥ τ_ℓ`` (:func:`filter_by_threshold` on each of
:class:`QualityScores`' two scores; ``τ_ℓ = ln 0.1 … ln 0.75``). Choose among them on clean validation data,
never on test."""


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


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Quality-weighted loss of a batch: ``L = Σ_i w_i·CE(z_i, y_i) / Σ_i w_i`` (``weights`` ≥ 0, e.g.
    :func:`soft_weights`). Constant weights give the plain mean cross-entropy; a zero weight drops an item."""
    sizes: dict[str, int] = {}
    check_tensor("logits", logits, ("B", None), dtype="float", sizes=sizes)
    check_tensor("labels", labels, ("B",), dtype="int", sizes=sizes)
    check_tensor("weights", weights, ("B",), dtype="float", sizes=sizes)
    if (weights < 0).any():
        raise ValueError("weights must be non-negative")
    ce = F.cross_entropy(logits, labels, reduction="none")
    return (weights * ce).sum() / weights.sum().clamp_min(1e-12)


# --------------------------------------------------------------------------------------------------------------
# The warm-up scorer
# --------------------------------------------------------------------------------------------------------------


class PairScorer(nn.Module):
    """Two unimodal towers with a shared classification layer, for scoring pairs after a short warm-up.

    ``e_m = f_m(x_m)`` (``Linear – ReLU – Linear``, :func:`mmlab.models.mlp`), ``z_m = W e_m`` with one ``W`` for
    both modalities, trained with ``CE(z_1, y) + CE(z_2, y)``: each modality must predict the label on its own, so
    neither can lean on the other, and both land in one shared space. ``forward(x_1, x_2) -> (z_1, z_2)``.
    """

    def __init__(self, input_dims: Sequence[int], num_classes: int, width: int = 64, embed_dim: int = 32):
        super().__init__()
        if isinstance(input_dims, int) or len(input_dims) != 2:
            raise ValueError(f"input_dims must give two modalities' feature counts, got {input_dims!r}")
        self.input_dims, self.embed_dim, self.num_classes = [int(d) for d in input_dims], embed_dim, num_classes
        self.towers = nn.ModuleList(mlp(d, width, embed_dim) for d in self.input_dims)
        self.head = nn.Linear(embed_dim, num_classes)

    def embed(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two towers' embeddings ``(e_1, e_2)``, each ``(B, embed_dim)``."""
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

    Short on purpose: the scores are read before the network starts to memorise the noisy items (Arpit et al.
    2017). ``seed`` fixes the initialisation (inside :func:`mmlab.runtime.seeded`, so the caller's global random
    state is left as it was) and the shuffling (:func:`mmlab.train.make_loader`). ``features`` are the two
    modalities, ``(N, d_1)`` and ``(N, d_2)``; ``labels`` ``(N,)`` the (possibly wrong) labels.
    """
    if isinstance(features, torch.Tensor) or len(features) != 2:
        raise ValueError("features must be two tensors (one per modality)")
    labels = _check_labels("labels", labels)
    sizes = {"N": len(labels)}
    for i, x in enumerate(features):
        check_tensor(f"features[{i}]", x, ("N", None), dtype="float", sizes=sizes)
    num_classes = num_classes or int(labels.max()) + 1
    device = resolve_device(device)
    with seeded(seed):
        scorer = PairScorer([features[0].shape[1], features[1].shape[1]], num_classes, width=width)

    def forward(model: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
        z1, z2 = model(batch[0], batch[1])
        return torch.cat([z1, z2]), torch.cat([batch[2], batch[2]])  # CE(z_1, y) + CE(z_2, y), averaged

    loader = make_loader(*features, labels, batch_size=batch_size, shuffle=True, seed=seed)
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

    def outputs(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        e1, e2 = scorer.embed(x1, x2)
        return torch.cat([e1, e2, scorer.head(e1), scorer.head(e2)], dim=-1)

    d, c = scorer.embed_dim, num_classes
    e1, e2, z1, z2 = predict(scorer, features, fn=outputs, batch_size=4096).split([d, d, c, c], dim=-1)
    return QualityScores(
        agreement=agreement_scores(z1.softmax(-1), z2.softmax(-1)),
        loglik=small_loss_scores(z1 + z2, labels.cpu()),
        embedding_agreement=agreement_scores(e1, e2),
    )
