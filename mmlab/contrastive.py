"""Contrastive pretraining of two towers into one embedding space (CLIP), zero-shot classification, retrieval.

CLIP (Radford et al. 2021) trains two encoders so that the embeddings of a matching pair are the nearest ones
within a batch. With L2-normalised embeddings ``I`` and ``T`` (B, D) and a learned scale ``s = exp(t)``, the
logits are ``S = s·I·Tᵀ`` and the loss is the symmetric cross-entropy with the diagonal as targets:

    L = ½ [CE(S, arange(B)) + CE(Sᵀ, arange(B))]

``t`` starts at ``ln(1/0.07)`` and is clamped at ``ln 100``. A loss stuck at ``ln B`` means no better than
guessing among the batch. The same objective with one tower locked is LiT (Zhai et al. 2022, "Locked-image
Tuning"), which locks a pretrained *image* tower; this module also lets you lock the *text* tower (here the
packaged all-MiniLM-L6-v2), the mirror image of LiT, because small image/audio encoders have no pretrained
weights to lock. Zero-shot classification embeds one prompt set per class and averages them (prompt
ensembling, Radford et al. 2021, §3.1.4); retrieval is scored with Recall@K and median rank.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn
from tqdm.auto import tqdm

from .checks import check_tensor
from .runtime import autocast, get_device
from .train import History

__all__ = [
    "INIT_LOGIT_SCALE",
    "MAX_LOGIT_SCALE",
    "similarity_logits",
    "clip_loss",
    "DualEncoder",
    "FrozenTextTower",
    "lit_text_tower",
    "train_contrastive",
    "embed",
    "retrieval_metrics",
    "retrieval_report",
    "fill_templates",
    "zero_shot_weights",
    "zero_shot_predict",
    "Gallery",
    "retrieval_figure",
    "easy_vqa_attributes",
    "EASY_VQA_COLORS",
    "EASY_VQA_SHAPES",
]

INIT_LOGIT_SCALE = math.log(1 / 0.07)  # CLIP's initial temperature τ = 0.07
MAX_LOGIT_SCALE = math.log(100.0)  # CLIP clamps the scale at 100 (τ ≥ 0.01)

Inputs = torch.Tensor | Sequence[torch.Tensor]


def _as_scale(logit_scale: float | torch.Tensor, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(logit_scale, dtype=torch.float32, device=device)
    if t.numel() != 1:
        raise ValueError(f"logit_scale must be a scalar (a float or a 0-d tensor), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"logit_scale must be finite, got {t.item()}")
    return t.reshape(())


def similarity_logits(
    a: torch.Tensor, b: torch.Tensor, logit_scale: float | torch.Tensor = INIT_LOGIT_SCALE
) -> torch.Tensor:
    """``S = exp(min(t, ln 100)) · â·b̂ᵀ`` for row-normalised ``â`` (N, D) and ``b̂`` (M, D): an (N, M) matrix.

    ``logit_scale`` is the log of the inverse temperature, ``t = ln(1/τ)``; the clamp stops gradients above
    ``ln 100`` exactly as CLIP's clipping of the parameter does.
    """
    sizes: dict[str, int] = {}
    check_tensor("a", a, (None, "D"), dtype="float", sizes=sizes)
    check_tensor("b", b, (None, "D"), dtype="float", sizes=sizes)
    t = _as_scale(logit_scale, a.device).clamp(max=MAX_LOGIT_SCALE)
    return t.exp() * (F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T)


def clip_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: float | torch.Tensor = INIT_LOGIT_SCALE
) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP, Radford et al. 2021): ``½[CE(S, arange B) + CE(Sᵀ, arange B)]``.

    ``image_emb`` and ``text_emb`` are (B, D); row ``i`` of each is a matching pair, every other row of the
    batch a negative. Embeddings are L2-normalised here; ``S = exp(min(t, ln 100))·ÎTᵀ`` with ``t =
    logit_scale``. When the embeddings carry no information (all logits equal) the loss is exactly ``ln B``.
    """
    sizes: dict[str, int] = {}
    check_tensor("image_emb", image_emb, ("B", "D"), dtype="float", sizes=sizes)
    check_tensor("text_emb", text_emb, ("B", "D"), dtype="float", sizes=sizes)
    logits = similarity_logits(image_emb, text_emb, logit_scale)
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def _call(module: nn.Module, x: Inputs) -> torch.Tensor:
    return module(*x) if isinstance(x, (tuple, list)) else module(x)


class DualEncoder(nn.Module):
    """Two towers, each followed by a linear projection head into a shared ``embed_dim``-d space (CLIP).

    ``z_a = normalize(W_a·enc_a(x_a))``, ``z_b = normalize(W_b·enc_b(x_b))``; the loss is :func:`clip_loss`
    with the learnable ``logit_scale`` (``t₀ = ln(1/temperature)``, clamped at ``ln 100``), or a fixed one
    when ``learn_temperature=False``. ``freeze_a`` / ``freeze_b`` lock a tower (its weights get no gradient;
    its head still trains), as LiT locks a pretrained tower (Zhai et al. 2022). Encoders must have an
    ``out_dim`` attribute, or pass ``a_dim`` / ``b_dim``.
    """

    def __init__(
        self,
        encoder_a: nn.Module,
        encoder_b: nn.Module,
        embed_dim: int = 32,
        *,
        a_dim: int | None = None,
        b_dim: int | None = None,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        freeze_a: bool = False,
        freeze_b: bool = False,
    ):
        super().__init__()
        if not 0.01 <= temperature:
            raise ValueError(f"temperature must be >= 0.01 (CLIP's clamp), got {temperature}")
        if embed_dim < 1:
            raise ValueError(f"embed_dim must be >= 1, got {embed_dim}")
        a_dim = a_dim if a_dim is not None else getattr(encoder_a, "out_dim", None)
        b_dim = b_dim if b_dim is not None else getattr(encoder_b, "out_dim", None)
        if a_dim is None or b_dim is None:
            raise ValueError("each encoder needs an out_dim attribute, or pass a_dim / b_dim")
        self.encoder_a, self.encoder_b = encoder_a, encoder_b
        self.head_a, self.head_b = nn.Linear(a_dim, embed_dim), nn.Linear(b_dim, embed_dim)
        self.embed_dim = embed_dim
        t0 = torch.tensor(math.log(1.0 / temperature))
        if learn_temperature:
            self.logit_scale = nn.Parameter(t0)
        else:
            self.register_buffer("logit_scale", t0)
        for enc, frozen in ((encoder_a, freeze_a), (encoder_b, freeze_b)):
            if frozen:
                enc.requires_grad_(False)
        self.frozen = (freeze_a, freeze_b)

    def train(self, mode: bool = True) -> DualEncoder:
        super().train(mode)
        for enc, frozen in zip((self.encoder_a, self.encoder_b), self.frozen):
            if frozen:
                enc.eval()  # a locked tower also keeps dropout / batch-norm statistics fixed
        return self

    @property
    def temperature(self) -> float:
        """``τ = 1 / exp(min(t, ln 100))``."""
        return math.exp(-min(float(self.logit_scale.detach()), MAX_LOGIT_SCALE))

    def embed_a(self, x: Inputs) -> torch.Tensor:
        """Normalised embeddings (B, embed_dim) of tower a's inputs (a tensor, or a tuple of its arguments),
        moved to the model's device first."""
        return F.normalize(self.head_a(_call(self.encoder_a, _to(x, self.head_a.weight.device))).float(), dim=-1)

    def embed_b(self, x: Inputs) -> torch.Tensor:
        """Normalised embeddings (B, embed_dim) of tower b's inputs."""
        return F.normalize(self.head_b(_call(self.encoder_b, _to(x, self.head_b.weight.device))).float(), dim=-1)

    def forward(self, x_a: Inputs, x_b: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embed_a(x_a), self.embed_b(x_b)

    def loss(self, x_a: Inputs, x_b: Inputs) -> torch.Tensor:
        """:func:`clip_loss` of a batch of matching pairs."""
        za, zb = self(x_a, x_b)
        return clip_loss(za, zb, self.logit_scale)


class FrozenTextTower(nn.Module):
    """A locked pretrained text encoder whose embeddings are computed once per distinct text and looked up.

    Running a frozen tower inside the training loop would recompute the same vectors every step; because it
    is frozen, ``forward(ids)`` returning ``table[ids]`` (K, dim) is exactly the same function, at no cost.
    :meth:`ids` maps strings to row ids, encoding texts it has not seen (e.g. a typed query) on the fly.
    """

    def __init__(self, encoder: nn.Module, texts: Sequence[str]):
        super().__init__()
        if isinstance(texts, str) or not len(texts):
            raise ValueError("texts must be a non-empty list of strings")
        self.encoder = encoder.requires_grad_(False).eval()
        self.source = getattr(encoder, "source", type(encoder).__name__)
        distinct = list(dict.fromkeys(texts))
        self.index = {t: i for i, t in enumerate(distinct)}
        self.register_buffer("table", self._encode(distinct))
        self.out_dim = int(self.table.shape[1])

    @torch.inference_mode()
    def _encode(self, texts: list[str]) -> torch.Tensor:
        enc = self.encoder.encode(texts) if hasattr(self.encoder, "encode") else self.encoder(texts)
        return enc.float().clone()

    def train(self, mode: bool = True) -> FrozenTextTower:
        super().train(mode)
        self.encoder.eval()
        return self

    def ids(self, texts: Sequence[str]) -> torch.Tensor:
        """Row ids (K,) of ``texts`` in the table; unseen texts are encoded and appended first."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, got a single str (wrap it in a list)")
        new = [t for t in dict.fromkeys(texts) if t not in self.index]
        if new:
            rows = self._encode(new).to(self.table.device)
            for t in new:
                self.index[t] = len(self.index)
            self.table = torch.cat([self.table, rows])
        return torch.tensor([self.index[t] for t in texts], dtype=torch.long, device=self.table.device)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        check_tensor("ids", ids, ("K",), dtype="int")
        if ids.numel() and (ids.min() < 0 or ids.max() >= len(self.table)):
            raise ValueError(f"ids must be in [0, {len(self.table)}), got range [{ids.min()}, {ids.max()}]")
        return self.table[ids]


def lit_text_tower(
    texts: Sequence[str], name: str | None = "sentence-transformers/all-MiniLM-L6-v2", verbose: bool = True
) -> FrozenTextTower:
    """A :class:`FrozenTextTower` over ``texts`` from :func:`mmlab.text.load_text_encoder` (hub model by id when
    online, the packaged all-MiniLM-L6-v2 offline; it prints which one it loaded)."""
    from .text import load_text_encoder

    return FrozenTextTower(load_text_encoder(name, verbose=verbose), texts)


def _take(x: Inputs, idx: torch.Tensor) -> Inputs:
    return tuple(t[idx] for t in x) if isinstance(x, (tuple, list)) else x[idx]


def _to(x: Inputs, device: torch.device) -> Inputs:
    return tuple(t.to(device) for t in x) if isinstance(x, (tuple, list)) else x.to(device)


def _batch_size(name: str, x: Inputs) -> int:
    tensors = list(x) if isinstance(x, (tuple, list)) else [x]
    if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
        raise TypeError(f"{name} must be a tensor or a tuple of tensors")
    sizes = {len(t) for t in tensors}
    if len(sizes) != 1:
        raise ValueError(f"the tensors of {name} must share their first dimension, got {[len(t) for t in tensors]}")
    return sizes.pop()


def train_contrastive(
    model: DualEncoder,
    x_a: Inputs,
    x_b: Inputs,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    device: torch.device | str | None = None,
    amp: bool = True,
    progress: bool = True,
    desc: str = "contrastive",
) -> History:
    """Train ``model`` on matching pairs ``(x_a[i], x_b[i])`` with :func:`clip_loss` (or ``loss_fn(z_a, z_b,
    logit_scale)``) and AdamW; returns a :class:`~mmlab.train.History`.

    Batches are drawn without replacement by a generator seeded with ``seed``; the last incomplete batch is
    dropped so that every step has exactly ``batch_size`` candidates (chance loss ``ln batch_size``). History
    keys: ``"loss"`` and ``"logit_scale"`` per step, ``"epoch_loss"`` per epoch.
    """
    n = _batch_size("x_a", x_a)
    if _batch_size("x_b", x_b) != n:
        raise ValueError(f"x_a and x_b must hold the same number of pairs, got {n} and {_batch_size('x_b', x_b)}")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if not 2 <= batch_size <= n:
        raise ValueError(f"batch_size must be in [2, {n}] (the number of pairs), got {batch_size}")
    device = torch.device(device) if device is not None else get_device()
    model.to(device).train()
    loss_fn = loss_fn or clip_loss
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() > 1]  # no weight decay on biases and on the temperature
    rest = [p for p in params if p.dim() <= 1]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=lr
    )
    gen = torch.Generator().manual_seed(seed)
    history = History()
    steps = n // batch_size
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for s in range(steps):
            idx = order[s * batch_size : (s + 1) * batch_size]
            a, b = _to(_take(x_a, idx), device), _to(_take(x_b, idx), device)
            with autocast(device, enabled=amp):
                za, zb = model(a, b)
            loss = loss_fn(za.float(), zb.float(), model.logit_scale)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()}; lower the learning rate")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
            history.log(loss=loss.item(), logit_scale=float(model.logit_scale.detach()))
        history.log(epoch_loss=total / steps)
        bar.set_postfix(loss=f"{total / steps:.3f}", tau=f"{model.temperature:.3f}")
    return history


@torch.no_grad()
def embed(fn: Callable[[Inputs], torch.Tensor], x: Inputs, batch_size: int = 1024) -> torch.Tensor:
    """``fn`` (e.g. ``model.embed_a``, which moves inputs to the model's device) applied to ``x`` in batches
    without gradients; a model owning ``fn`` is put in eval mode for the call and restored after. Returns
    (N, D) on the CPU."""
    n = _batch_size("x", x)
    model = getattr(fn, "__self__", None)
    was_training = isinstance(model, nn.Module) and model.training
    if isinstance(model, nn.Module):
        model.eval()
    try:
        out = [fn(_take(x, torch.arange(i, min(i + batch_size, n)))).float().cpu() for i in range(0, n, batch_size)]
    finally:
        if was_training:
            model.train()
    return torch.cat(out)


def retrieval_metrics(
    sim: torch.Tensor, relevant: torch.Tensor | None = None, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """Recall@K and median rank of queries (rows) against a gallery (columns) from a similarity matrix (Q, G).

    ``relevant`` (Q, G) bool marks the right answers of each query (default: the diagonal, Q = G, one answer
    each). A query's rank is ``1 + #{wrong items scoring ≥ its best right item}`` (ties count against it, so a
    model that scores everything alike gets no credit). ``R@K`` is the share of queries with rank ≤ K; ``MdR``
    the median rank (1 is best).
    """
    check_tensor("sim", sim, ("Q", "G"), dtype="float")
    q, g = sim.shape
    if relevant is None:
        if q != g:
            raise ValueError(f"sim must be square (Q = G) when relevant is not given, got {tuple(sim.shape)}")
        relevant = torch.eye(q, dtype=torch.bool, device=sim.device)
    check_tensor("relevant", relevant, (q, g), dtype="bool")
    if not relevant.any(1).all():
        raise ValueError("every query (row of relevant) needs at least one relevant gallery item")
    best = sim.masked_fill(~relevant, float("-inf")).max(1, keepdim=True).values
    rank = 1 + ((sim >= best) & ~relevant).sum(1)
    out = {f"R@{k}": (rank <= k).float().mean().item() for k in ks}
    out["MdR"] = float(rank.float().median())
    return out


def retrieval_report(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    labels_a: torch.Tensor | None = None,
    labels_b: torch.Tensor | None = None,
    names: tuple[str, str] = ("image", "text"),
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """Retrieval both ways between embeddings ``z_a`` (N, D) and ``z_b`` (M, D): keys like ``"image→text R@1"``.

    Without labels the pairs are ``(z_a[i], z_b[i])``. With ``labels_a`` (N,) and ``labels_b`` (M,), any item
    with the query's label counts as right (class-level retrieval, the honest choice when captions are
    templates that cannot single out one image).
    """
    sim = similarity_logits(z_a, z_b, 0.0)
    if (labels_a is None) != (labels_b is None):
        raise ValueError("pass both labels_a and labels_b, or neither")
    if labels_a is None:
        rel = None
    else:
        check_tensor("labels_a", labels_a, (len(z_a),))
        check_tensor("labels_b", labels_b, (len(z_b),))
        rel = labels_a.reshape(-1, 1).cpu() == labels_b.reshape(1, -1).cpu()
    sim = sim.cpu()
    fwd = retrieval_metrics(sim, rel, ks)
    bwd = retrieval_metrics(sim.T, None if rel is None else rel.T, ks)
    a, b = names
    return {**{f"{a}→{b} {k}": v for k, v in fwd.items()}, **{f"{b}→{a} {k}": v for k, v in bwd.items()}}


def fill_templates(templates: Sequence[str], fields: Sequence[Mapping[str, object]]) -> list[list[str]]:
    """One prompt list per class: ``[[t.format(**fields[c]) for t in templates] for c in classes]``."""
    if isinstance(templates, str) or not templates:
        raise ValueError("templates must be a non-empty list of format strings")
    return [[t.format(**f) for t in templates] for f in fields]


@torch.no_grad()
def zero_shot_weights(embed_text: Callable[[list[str]], torch.Tensor], class_prompts: Sequence[Sequence[str]]):
    """Class embeddings (C, D) by prompt ensembling (Radford et al. 2021): ``w_c = normalize(Σ_k ẑ(p_ck))`` where
    ``ẑ`` is the normalised text embedding of prompt ``k`` of class ``c``."""
    if not class_prompts or any(isinstance(p, str) or not p for p in class_prompts):
        raise ValueError("class_prompts must be a list (one per class) of non-empty lists of prompts")
    rows = [F.normalize(embed_text(list(p)).float(), dim=-1).mean(0) for p in class_prompts]
    return F.normalize(torch.stack(rows), dim=-1)


def zero_shot_predict(z: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``argmax_c ẑ·w_c`` for embeddings ``z`` (N, D) and class embeddings ``weights`` (C, D): (N,) class ids."""
    return similarity_logits(z, weights.to(z.device), 0.0).argmax(1)


@dataclass
class Gallery:
    """Items to search for :func:`retrieval_figure`: their embeddings ``emb`` (N, D) in a model's shared space,
    a function ``embed_query(list[str]) -> (K, D)`` into that space, what to draw per item (``pictures``:
    images (N, C, H, W) or spectrograms (N, mels, frames) with ``lengths`` valid frames) and ``labels``."""

    name: str
    emb: torch.Tensor
    embed_query: Callable[[list[str]], torch.Tensor]
    pictures: torch.Tensor
    labels: Sequence[str]
    lengths: torch.Tensor | None = None


def retrieval_figure(query: str, top_k: int = 5, temperature: float = 0.07, *, galleries: Sequence[Gallery]) -> Figure:
    """The lesson's search widget: the ``top_k`` items of each gallery for a text ``query``, with the cosine
    similarity and the retrieval probability ``softmax(cos/τ)`` over the whole gallery at ``temperature`` τ."""
    from .viz import new_figure

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
            if pic.dim() == 3 and pic.shape[0] in (1, 3):  # an image
                pic = pic.permute(1, 2, 0)
                ax.imshow(pic.squeeze(-1).clamp(0, 1).numpy(), cmap="gray_r" if pic.shape[-1] == 1 else None)
            else:  # a spectrogram
                n = int(g.lengths[i]) if g.lengths is not None else pic.shape[-1]
                ax.imshow(pic[:, :n].numpy(), origin="lower", aspect="auto", cmap="magma")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{g.labels[i]}\ncos {cos[i]:.2f} · p {prob[i]:.2f}", fontsize=8)
        row[0].set_ylabel(g.name, fontsize=9)
    fig.suptitle(f"top {top_k} for “{query.strip()}” (p = softmax(cos/τ) over each gallery, τ = {temperature:.2f})")
    return fig


EASY_VQA_COLORS = ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow")
EASY_VQA_SHAPES = ("circle", "rectangle", "triangle")


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
