"""Contrastive pretraining of two towers into one embedding space (CLIP), zero-shot classification, retrieval.

CLIP (Radford et al. 2021) trains two encoders so that the embeddings of a matching pair are the nearest ones
within a batch. With L2-normalised embeddings ``I`` and ``T`` (B, D) and a learned scale ``s = exp(t)``, the
logits are ``S = s·I·Tᵀ`` and the loss is the symmetric cross-entropy with the diagonal as targets:

    L = ½ [CE(S, arange(B)) + CE(Sᵀ, arange(B))]

``t`` starts at ``ln(1/0.07)``. Like CLIP, the forward pass uses ``exp(t)`` as it is, and the *parameter* is
clamped into ``[0, ln 100]`` after each optimizer step (:meth:`DualEncoder.clamp_logit_scale_`, called by
:func:`train_contrastive`; OpenCLIP's ``logit_scale.clamp_(0, math.log(100))``): clamping the forward value
instead would zero the gradient above ``ln 100``, and a ``t`` that got there could never come back. A loss
stuck at ``ln B`` means no better than guessing among the batch. The same objective with one tower locked is
LiT (Zhai et al. 2022, "Locked-image Tuning"), which locks a pretrained *image* tower; this module also lets you
lock the *text* tower (here the packaged all-MiniLM-L6-v2), the mirror image of LiT, because small image/audio
encoders have no pretrained weights to lock. Zero-shot classification embeds one prompt set per class and
averages them (prompt ensembling, Radford et al. 2021, §3.1.4); retrieval is scored with Recall@K and median
rank.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_tensor
from .train import History, fit, make_loader, predict

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
    """``S = exp(t) · â·b̂ᵀ`` for row-normalised ``â`` (N, D) and ``b̂`` (M, D): an (N, M) matrix.

    ``logit_scale`` is the log of the inverse temperature, ``t = ln(1/τ)``, used as it is: no clamp here, so the
    gradient with respect to ``t`` is never cut off. CLIP (Radford et al. 2021) bounds ``t ≤ ln 100`` by
    clamping the parameter after each optimizer step (:meth:`DualEncoder.clamp_logit_scale_`).
    """
    sizes: dict[str, int] = {}
    check_tensor("a", a, (None, "D"), dtype="float", sizes=sizes)
    check_tensor("b", b, (None, "D"), dtype="float", sizes=sizes)
    t = _as_scale(logit_scale, a.device)
    return t.exp() * (F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T)


def clip_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: float | torch.Tensor = INIT_LOGIT_SCALE
) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP, Radford et al. 2021): ``½[CE(S, arange B) + CE(Sᵀ, arange B)]``.

    ``image_emb`` and ``text_emb`` are (B, D); row ``i`` of each is a matching pair, every other row of the
    batch a negative. Embeddings are L2-normalised here; ``S = exp(t)·ÎTᵀ`` with ``t = logit_scale`` as it is
    (the bound ``t ≤ ln 100`` is kept by clamping the parameter after each step, not here). When the embeddings
    carry no information (all logits equal) the loss is exactly ``ln B``.
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
    with the learnable ``logit_scale`` (``t₀ = ln(1/temperature)``; :meth:`clamp_logit_scale_` keeps it in
    ``[0, ln 100]`` after each step, as CLIP does), or a fixed one when ``learn_temperature=False``. ``freeze_a`` /
    ``freeze_b`` lock a tower (its weights get no gradient; its head still trains), as LiT locks a pretrained
    tower (Zhai et al. 2022). Encoders must have an
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
        if learn_temperature and temperature > 1:
            raise ValueError(f"a learned temperature must start in [0.01, 1] (the clamp's range), got {temperature}")
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
        """``τ = 1 / exp(t)``, the temperature the forward pass uses."""
        return math.exp(-float(self.logit_scale.detach()))

    @torch.no_grad()
    def clamp_logit_scale_(self) -> DualEncoder:
        """Clamp the logit-scale parameter in place into ``[0, ln 100]`` (τ in ``[0.01, 1]``), as CLIP does after
        every optimizer step (OpenCLIP: ``logit_scale.clamp_(0, math.log(100))``). The forward pass never
        clamps, so the gradient with respect to ``t`` stays alive and a ``t`` pushed past the bound by one step
        is brought back by this call. A fixed temperature (a buffer) is left alone. Returns ``self``."""
        if isinstance(self.logit_scale, nn.Parameter):
            self.logit_scale.clamp_(0.0, MAX_LOGIT_SCALE)
        return self

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
        """Set this module's flag only: the locked encoder stays in eval mode, and is not walked at every call
        (a transformer has hundreds of submodules, and the training loop switches modes every epoch)."""
        if not isinstance(mode, bool):
            raise ValueError(f"mode must be a bool, got {mode!r}")
        self.training = mode
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


def _tensors(name: str, x: Inputs) -> list[torch.Tensor]:
    """The tensors of an input (a tensor, or a tuple/list of the arguments of a tower), checked to share N."""
    tensors = list(x) if isinstance(x, (tuple, list)) else [x]
    if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
        raise TypeError(f"{name} must be a tensor or a tuple of tensors")
    sizes = [len(t) for t in tensors]
    if len(set(sizes)) != 1:
        raise ValueError(f"the tensors of {name} must share their first dimension, got {sizes}")
    return tensors


def _to(x: Inputs, device: torch.device) -> Inputs:
    return tuple(t.to(device) for t in x) if isinstance(x, (tuple, list)) else x.to(device)


def _rebuild(parts: Sequence[torch.Tensor], like: Inputs) -> Inputs:
    """``parts`` in the form of ``like``: one tensor, or a tuple of them."""
    return tuple(parts) if isinstance(like, (tuple, list)) else parts[0]


def _clamp_after_step(model: nn.Module, batch: Sequence[torch.Tensor]) -> None:
    """:func:`mmlab.train.fit`'s ``after_step`` hook: CLIP's clamp of the logit-scale parameter."""
    clamp = getattr(model, "clamp_logit_scale_", None)
    if clamp is not None:
        clamp()


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
    logit_scale)``) by :func:`mmlab.train.fit` with AdamW (no weight decay on biases and on the temperature).

    Each epoch draws a new order from a generator seeded with ``seed`` (:func:`mmlab.train.make_loader`) and
    drops the last incomplete batch, so that every step has exactly ``batch_size`` candidates (chance loss
    ``ln batch_size``). ``x_a`` / ``x_b`` are a tensor or a tuple of a tower's arguments (e.g. audio and its
    lengths). After every optimizer step the learned logit scale is clamped into ``[0, ln 100]``
    (:meth:`DualEncoder.clamp_logit_scale_`, the ``after_step`` hook of :func:`~mmlab.train.fit`), as in CLIP.
    The towers run under AMP on CUDA; the loss is computed in float32. Returns the
    :class:`~mmlab.train.History`: per step ``history.steps_log["loss"]`` and ``["logit_scale"]`` (the ``t``
    used in that step's loss), per epoch ``history["train_loss"]`` and ``["logit_scale"]`` (epoch means).
    """
    parts_a, parts_b = _tensors("x_a", x_a), _tensors("x_b", x_b)
    n, n_b = len(parts_a[0]), len(parts_b[0])
    if n_b != n:
        raise ValueError(f"x_a and x_b must hold the same number of pairs, got {n} and {n_b}")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if not 2 <= batch_size <= n:
        raise ValueError(f"batch_size must be in [2, {n}] (the number of pairs), got {batch_size}")
    loss_fn = loss_fn or clip_loss
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() > 1]  # no weight decay on biases and on the temperature
    rest = [p for p in params if p.dim() <= 1]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=lr
    )
    loader = make_loader(*parts_a, *parts_b, batch_size=batch_size, shuffle=True, seed=seed, drop_last=True)
    k = len(parts_a)

    def compute_loss(model: DualEncoder, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor | float]:
        za, zb = model(_rebuild(batch[:k], x_a), _rebuild(batch[k:], x_b))
        with torch.autocast(za.device.type, enabled=False):  # the B×B logits and softmax in float32
            loss = loss_fn(za.float(), zb.float(), model.logit_scale)
        return {"loss": loss, "logit_scale": float(model.logit_scale.detach())}

    return fit(
        model,
        loader,
        epochs=epochs,
        optimizer=opt,
        compute_loss=compute_loss,
        after_step=_clamp_after_step,
        log_steps=True,
        device=device,
        amp=amp,
        progress=progress,
        desc=desc,
    )


def embed(fn: Callable[[Inputs], torch.Tensor], x: Inputs, batch_size: int = 1024) -> torch.Tensor:
    """``fn`` (e.g. ``model.embed_a``, which moves inputs to the model's device) applied to ``x`` (a tensor or
    a tuple of a tower's arguments) in batches of ``batch_size`` without gradients, by
    :func:`mmlab.train.predict`; a model owning ``fn`` is in eval mode for the call and restored after.
    Returns (N, D) float32 on the CPU."""
    parts = _tensors("x", x)
    owner = getattr(fn, "__self__", None)
    model = owner if isinstance(owner, nn.Module) else nn.Module()  # a plain function: no mode to switch
    return predict(model, parts, batch_size=batch_size, fn=lambda *xs: fn(_rebuild(xs, x)))


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
