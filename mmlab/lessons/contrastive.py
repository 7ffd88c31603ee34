"""Lesson 7's experiments: a small CLIP-style model on AV-Digits and easy-VQA, its sweeps and its search widget.

The methods (the CLIP loss, the dual encoder, training, retrieval metrics, zero-shot classification) live in
:mod:`mmlab.contrastive`; this module holds what only the lesson needs: the easy-VQA caption recipe
(:func:`easy_vqa_attributes`, :func:`easy_vqa_pairs`), the check that a prompt or query is not a training
caption (:func:`seen_wordings`), the drivers behind its sweeps (:func:`train_seeds` for temperature and batch
size, returning :class:`SeedRun` rows; :func:`data_size_run` for frozen vs from-scratch text towers), the
summary and plot of a sweep (:func:`summarize`, :func:`per_seed`, :func:`sweep_figure`) and the search widget's
figure (:class:`Gallery`, :func:`retrieval_figure`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from ..contrastive import DualEncoder, FrozenTextTower, Inputs, similarity_logits, train_contrastive
from ..data import load_easy_vqa
from ..models import TextBagEncoder
from ..runtime import seeded
from ..text import WordTokenizer
from ..train import History
from ..viz import new_figure, plot_curves

__all__ = [
    "EASY_VQA_COLORS",
    "EASY_VQA_SHAPES",
    "EASY_VQA_CAPTION_TEMPLATES",
    "easy_vqa_attributes",
    "easy_vqa_pairs",
    "seen_wordings",
    "summarize",
    "per_seed",
    "SeedRun",
    "train_seeds",
    "scratch_text_tower",
    "data_size_run",
    "sweep_figure",
    "Gallery",
    "retrieval_figure",
]

EASY_VQA_COLORS = ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow")
EASY_VQA_SHAPES = ("circle", "rectangle", "triangle")
EASY_VQA_CAPTION_TEMPLATES = ("a {c} {s}", "a {s} that is {c}", "the picture shows a {c} {s}", "{c} {s}")

Metrics = dict[str, float]


def easy_vqa_attributes(ds) -> tuple[np.ndarray, np.ndarray]:
    """Colour and shape of every easy-VQA image, read off its questions and answers: ``(color, shape)``, each
    (n_images,) int arrays indexing ``EASY_VQA_COLORS`` ("red", "green", ...) and ``EASY_VQA_SHAPES`` ("circle",
    "rectangle", "triangle"); ``-1`` where the questions do not pin it down.

    "What color is the circle? → blue" names both; a yes/no question ("is there no red shape?" → "no") says
    that an attribute is present or absent; when all but one value are ruled out, the last one is it.
    """
    n = int(ds.image.shape[0])
    cands = [[set(range(len(EASY_VQA_COLORS))), set(range(len(EASY_VQA_SHAPES)))] for _ in range(n)]
    for q, a, i in zip(ds.question, ds.answer.tolist(), ds.image_id.tolist()):
        ans = ds.answers[a]
        words = q.rstrip("?").split()
        named = [
            (k, vocab.index(w))
            for k, vocab in enumerate((EASY_VQA_COLORS, EASY_VQA_SHAPES))
            for w in words
            if w in vocab
        ]
        if ans in ("yes", "no"):
            present = (ans == "yes") != ("not" in words or "no" in words)
            for k, v in named:
                cands[i][k] = cands[i][k] & {v} if present else cands[i][k] - {v}
        else:
            for k, vocab in enumerate((EASY_VQA_COLORS, EASY_VQA_SHAPES)):
                if ans in vocab:
                    cands[i][k] &= {vocab.index(ans)}
            for k, v in named:  # "what color is the circle?": the named attribute is present too
                cands[i][k] &= {v}
    color = np.array([next(iter(c[0])) if len(c[0]) == 1 else -1 for c in cands])
    shape = np.array([next(iter(c[1])) if len(c[1]) == 1 else -1 for c in cands])
    return color, shape


def easy_vqa_pairs(
    split: str,
    max_images: int | None,
    seed: int,
    *,
    image_size: int = 16,
    templates: Sequence[str] = EASY_VQA_CAPTION_TEMPLATES,
) -> tuple[torch.Tensor, list[str], torch.Tensor, torch.Tensor]:
    """Image–caption pairs from easy-VQA: ``(images (N, 3, s, s), captions, color (N,), shape (N,))``.

    Each image's colour and shape come from :func:`easy_vqa_attributes` (images whose questions leave either
    open are dropped); its caption is a template drawn uniformly by ``numpy.random.default_rng(seed)`` and
    filled in, e.g. "a blue circle". ``color`` / ``shape`` index ``EASY_VQA_COLORS`` / ``EASY_VQA_SHAPES``.
    """
    if isinstance(templates, str) or not templates:
        raise ValueError("templates must be a non-empty list of format strings with {c} and {s}")
    ds = load_easy_vqa(split, max_images=max_images, image_size=image_size)
    color, shape = easy_vqa_attributes(ds)
    keep = np.flatnonzero((color >= 0) & (shape >= 0))
    rng = np.random.default_rng(seed)
    captions = [
        templates[rng.integers(len(templates))].format(c=EASY_VQA_COLORS[color[i]], s=EASY_VQA_SHAPES[shape[i]])
        for i in keep
    ]
    return ds.image[keep], captions, torch.from_numpy(color[keep]), torch.from_numpy(shape[keep])


def _normalise_text(text: str) -> str:
    return " ".join(text.lower().split())


def seen_wordings(texts: Iterable[str] | Iterable[Iterable[str]], captions: Iterable[str]) -> list[str]:
    """The prompts or queries among ``texts`` that are training captions: equal to one of ``captions`` up to case
    and whitespace. ``texts`` may be a flat list of strings or a prompt set (one list of prompts per class).

    An empty result means every prompt is a wording the text side never saw in training (it may still be a
    close paraphrase: "the number 7" is not a caption, "a picture of the number 7" is)."""
    seen = {_normalise_text(c) for c in captions}
    flat = [t for item in texts for t in ([item] if isinstance(item, str) else item)]
    return [t for t in dict.fromkeys(flat) if _normalise_text(t) in seen]


def summarize(runs: Sequence[Mapping[str, float]], key: str) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; NaN for a single run) of ``runs[i][key]`` over runs."""
    if not runs:
        raise ValueError("runs must hold at least one run")
    vals = np.array([r[key] for r in runs], dtype=float)
    return float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else float("nan")


def per_seed(runs: Sequence[Mapping[str, float]], key: str) -> list[float]:
    """``[runs[i][key] for i in ...]``: one value per seed, in seed order (for :mod:`mmlab.stats`)."""
    return [float(r[key]) for r in runs]


@dataclass
class SeedRun:
    """One trained model of a sweep: its ``seed``, the ``model`` (kept, so that it can be scored on test once the
    last choice is made), its training ``history`` and ``metrics`` (``evaluate(model)`` on the selection split,
    plus ``"loss/lnB"``)."""

    seed: int
    model: DualEncoder
    history: History
    metrics: Metrics


def train_seeds(
    make_model: Callable[[], DualEncoder],
    x_a: Inputs,
    x_b: Inputs,
    evaluate: Callable[[DualEncoder], Metrics],
    *,
    seeds: Sequence[int],
    epochs: int,
    batch_size: int = 128,
    desc: str = "",
    progress: bool = False,
    loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> list[SeedRun]:
    """One run per seed: build ``make_model()`` and train it on the pairs ``(x_a, x_b)`` with
    :func:`~mmlab.contrastive.train_contrastive`, under :func:`mmlab.runtime.seeded` ``(seed)`` (the caller's
    random state is left as it was), then score it with ``evaluate`` — meant to see the validation split only,
    so that a setting can be chosen before any test number exists. Each :class:`SeedRun`'s ``metrics``:
    ``evaluate(model)`` plus ``"loss/lnB"``, the final epoch's training loss as a fraction of its chance level
    ``ln batch_size``; the model is kept for the test evaluation after the choice. ``loss_fn`` replaces the CLIP
    loss (as in :func:`~mmlab.contrastive.train_contrastive`)."""
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    runs = []
    for seed in seeds:
        with seeded(seed):
            model = make_model()
            h = train_contrastive(
                model,
                x_a,
                x_b,
                epochs=epochs,
                batch_size=batch_size,
                seed=seed,
                desc=f"{desc} seed {seed}",
                progress=progress,
                loss_fn=loss_fn,
            )
        runs.append(
            SeedRun(seed, model, h, {**evaluate(model), "loss/lnB": h["train_loss"][-1] / math.log(batch_size)})
        )
    return runs


def scratch_text_tower(
    texts: Sequence[str], out_dim: int = 64, max_len: int = 8
) -> tuple[TextBagEncoder, Callable[[Sequence[str]], torch.Tensor]]:
    """A text tower trained from scratch: a bag of word embeddings (:class:`~mmlab.models.TextBagEncoder`) over
    the vocabulary of ``texts`` only, and its ``texts → token ids (K, max_len)`` function (unknown words map to
    the tokenizer's unknown id)."""
    tok = WordTokenizer(texts)
    return TextBagEncoder(len(tok), out_dim), (lambda t: tok(t, max_len=max_len)[0])


def data_size_run(
    make_model: Callable[[nn.Module], DualEncoder],
    images: torch.Tensor,
    texts: Sequence[str],
    n: int,
    seed: int,
    *,
    evaluate: Callable[[DualEncoder, Callable[[Sequence[str]], torch.Tensor]], Metrics],
    text_tower: FrozenTextTower | None = None,
    batch_size: int = 128,
    steps: int = 240,
    desc: str = "",
) -> Metrics:
    """Train an image↔text model on ``n`` of the pairs ``(images[i], texts[i])`` and score it.

    The ``n`` pairs are the first ``n`` of a permutation drawn by a generator seeded ``100 + seed``. The text
    tower is ``text_tower`` (a frozen pretrained one, LiT-style) or, when it is ``None``, a
    :func:`scratch_text_tower` over the ``n`` captions. ``make_model(tower)`` builds the model under
    :func:`mmlab.runtime.seeded` ``(seed)``; it trains for ``steps // (n // b)`` epochs with batches of
    ``b = min(batch_size, n)``, so that every size gets about ``steps`` optimisation steps. Returns
    ``evaluate(model, texts → tower inputs)``.
    """
    if not 2 <= n <= len(images) or len(texts) != len(images):
        raise ValueError(f"n must be in [2, {len(images)}] and texts must match images, got n={n}, {len(texts)} texts")
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(100 + seed))[:n]
    chosen = [texts[i] for i in idx.tolist()]
    batch = min(batch_size, n)
    with seeded(seed):
        if text_tower is not None:
            tower, to_input = text_tower, text_tower.ids
        else:
            tower, to_input = scratch_text_tower(chosen)
        model = make_model(tower)
        train_contrastive(
            model,
            images[idx],
            to_input(chosen),
            epochs=max(1, steps // (n // batch)),
            batch_size=batch,
            seed=seed,
            desc=desc or f"n={n}",
            progress=False,
        )
    return evaluate(model, to_input)


def sweep_figure(
    xs: Sequence[float],
    runs: Mapping[float, Sequence[Mapping[str, float]]],
    name: str,
    xlabel: str,
    what: str,
    split: str = "val",
) -> tuple[Figure, np.ndarray]:
    """R@1 (image→text) on ``split`` and the final training loss / ln B against a swept setting ``xs`` (log x),
    mean ± standard deviation (ddof = 1) over the seeds in ``runs[x]`` (the ``metrics`` of :func:`train_seeds`)."""
    fig, axes = new_figure(1, 2, size=(10.5, 3.6))
    n = min(len(runs[x]) for x in xs)
    for ax, key, label in (
        (axes[0], "image→text R@1", f"{split} R@1 (fraction)"),
        (axes[1], "loss/lnB", "final training loss / ln B"),
    ):
        plot_curves(
            xs,
            {name: [summarize(runs[x], key)[0] for x in xs]},
            errors={name: [summarize(runs[x], key)[1] for x in xs]},
            logx=True,
            xlabel=xlabel,
            ylabel=label,
            title=f"{label.split(' (')[0]} vs {what}, {n} seeds",
            ax=ax,
        )
    axes[0].set_ylim(0.8, 1.0)
    return fig, axes


@dataclass
class Gallery:
    """Items to search for :func:`retrieval_figure`: their embeddings ``emb`` (N, D) in a model's shared space,
    a function ``embed_query(list[str]) -> (K, D)`` into that space, what to draw per item (``pictures``:
    images (N, C, H, W), or log-mel spectrograms (N, frames, mels), time first, with ``lengths`` valid
    frames) and ``labels``."""

    name: str
    emb: torch.Tensor
    embed_query: Callable[[list[str]], torch.Tensor]
    pictures: torch.Tensor
    labels: Sequence[str]
    lengths: torch.Tensor | None = None


def retrieval_figure(query: str, top_k: int = 5, temperature: float = 0.07, *, galleries: Sequence[Gallery]) -> Figure:
    """The lesson's search widget: the ``top_k`` items of each gallery for a text ``query``, with the cosine
    similarity and the retrieval probability ``softmax(cos/τ)`` over the whole gallery at ``temperature`` τ."""
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, got {type(query).__name__}")
    if not galleries:
        raise ValueError("galleries must hold at least one Gallery")
    if not 1 <= top_k <= min(len(g.emb) for g in galleries):
        raise ValueError(f"top_k must be in [1, {min(len(g.emb) for g in galleries)}], got {top_k}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    query = query.strip() or " "
    fig, axes = new_figure(len(galleries), top_k, size=(1.6 * top_k + 0.6, 2.1 * len(galleries) + 0.5), squeeze=False)
    for row, g in zip(axes, galleries):
        with torch.no_grad():
            q = g.embed_query([query]).float().cpu()
        cos = similarity_logits(q, g.emb.float().cpu(), 0.0)[0]
        prob = torch.softmax(cos / temperature, 0)
        top = cos.topk(top_k).indices
        for ax, i in zip(row, top.tolist()):
            pic = g.pictures[i].detach().cpu().float()
            if pic.dim() == 3 and pic.shape[0] in (1, 3):  # an image (C, H, W)
                pic = pic.permute(1, 2, 0)
                ax.imshow(pic.squeeze(-1).clamp(0, 1).numpy(), cmap="gray_r" if pic.shape[-1] == 1 else None)
            else:  # a log-mel spectrogram (frames, mels): time along x
                n = int(g.lengths[i]) if g.lengths is not None else pic.shape[0]
                ax.imshow(pic[:n].T.numpy(), origin="lower", aspect="auto", cmap="magma")
                ax.set_xlabel("time (frames)", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{g.labels[i]}\ncos {cos[i]:.2f} · p {prob[i]:.2f}", fontsize=8)
        row[0].set_ylabel(g.name, fontsize=9)
    fig.suptitle(f"top {top_k} for “{query.strip()}” (p = softmax(cos/τ) over each gallery, τ = {temperature:.2f})")
    return fig
