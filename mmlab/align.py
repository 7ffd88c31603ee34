"""Alignment across modalities: which frame of one stream goes with which frame (or token) of another.

* :class:`CrossModalAttention` — queries from one modality, keys and values from another, both projected to a
  shared width: ``softmax(Q Kᵀ/√d_h + mask) V``. It is the attention sub-layer of MulT's cross-modal block
  (Tsai et al. 2019) only, without its LayerNorms, residual connection, feed-forward layer or positional
  embeddings.
* :func:`dtw`, :func:`soft_dtw`, :func:`soft_alignment`, :func:`soft_dtw_divergence` — dynamic time warping
  (Sakoe & Chiba 1978) and its smooth relaxation (Cuturi & Blondel 2017) on any pairwise cost, computed one
  anti-diagonal at a time (every cell of a diagonal depends only on the two previous diagonals), batched, in
  torch, on any device; the divergence form of Blondel, Mensch & Vert (2021), non-negative under a condition on
  the cost that their log-augmented cost meets (``pairwise_cost(..., "log_augmented")``).
* :func:`info_nce`, :class:`FrameEncoder`, :class:`AlignmentSpace` — a shared frame/token space learned with a
  contrastive objective (InfoNCE, van den Oord et al. 2018), in which frames of different modalities become
  comparable.
* :func:`index_pairing`, :func:`proportional_pairing`, :func:`path_to_pairing`, :class:`AttentionAligner` — ways
  to pair each frame of one stream with a frame of the other; :func:`predict_tokens` pairs by any of
  :data:`ALIGN_METHODS`; :func:`alignment_accuracy` scores a pairing against the true tokens.
* :class:`GroundingAttention` — the same attention block over image patches: a word points at a place.

Lesson 1's figures, widget and experiment over seeds live in :mod:`mmlab.lessons.alignment`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_choice, check_tensor

__all__ = [
    "CrossModalAttention",
    "PAIRWISE_METRICS",
    "pairwise_cost",
    "dtw",
    "soft_dtw",
    "soft_alignment",
    "soft_dtw_divergence",
    "path_to_pairing",
    "index_pairing",
    "proportional_pairing",
    "alignment_accuracy",
    "info_nce",
    "FrameEncoder",
    "AlignmentSpace",
    "relative_position_features",
    "AttentionAligner",
    "segment_attention_loss",
    "ALIGN_METHODS",
    "predict_tokens",
    "GroundingAttention",
]

_BIG = 1e10  # stands for +inf inside the DP: finite, so that gradients never meet inf - inf


# --------------------------------------------------------------------------------------------------------------
# Cross-modal attention


class CrossModalAttention(nn.Module):
    """Multi-head attention whose queries come from one modality and keys/values from another.

    ``Q = x_q W_q``, ``K = x_c W_k``, ``V = x_c W_v`` (each to ``dim`` = ``heads · d_h``), per head
    ``A = softmax(Q Kᵀ / √d_h)`` with masked context positions at ``-inf``, output ``concat_h(A V) W_o``.

    This is only the attention sub-layer ``CM(Q_β, K_α, V_α)`` of MulT's cross-modal transformer block. The full
    block (Tsai et al. 2019) also adds positional embeddings to both inputs (after a temporal 1-D
    convolution), applies LayerNorm before the attention, adds a residual connection around it, follows it with
    a position-wise feed-forward layer (again with LayerNorm and a residual), and stacks several such layers.
    None of that is here: this module is order-blind (permuting the context positions leaves the output
    unchanged) and returns the attended values only.

    Inputs are batch first: ``query`` (B, Lq, query_dim) and ``context`` (B, Lc, context_dim); lengths and widths
    may differ. ``context_mask`` (B, Lc) is True at real positions (padding gets exactly zero weight);
    ``query_mask`` (B, Lq) zeroes the outputs and weights of padded queries. Returns ``(attended, weights)``:
    (B, Lq, dim) and (B, heads, Lq, Lc). Tsai et al., "Multimodal Transformer for Unaligned Multimodal Language
    Sequences", ACL 2019; Vaswani et al. 2017.
    """

    def __init__(self, query_dim: int, context_dim: int, dim: int, heads: int = 1, dropout: float = 0.0):
        super().__init__()
        for name, v in (("query_dim", query_dim), ("context_dim", context_dim), ("dim", dim), ("heads", heads)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if dim % heads:
            raise ValueError(f"dim must be divisible by heads, got dim={dim}, heads={heads}")
        self.query_dim, self.context_dim, self.dim, self.heads = query_dim, context_dim, dim, heads
        self.q = nn.Linear(query_dim, dim)
        self.k = nn.Linear(context_dim, dim)
        self.v = nn.Linear(context_dim, dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def logits(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Unmasked attention logits ``Q Kᵀ / √d_h``: (B, heads, Lq, Lc)."""
        b, lq, lc, h = query.shape[0], query.shape[1], context.shape[1], self.heads
        q = self.q(query).view(b, lq, h, -1).transpose(1, 2)
        k = self.k(context).view(b, lc, h, -1).transpose(1, 2)
        return q @ k.transpose(-1, -2) / math.sqrt(self.dim // h)

    def forward(
        self,
        query: torch.Tensor,
        context: torch.Tensor,
        context_mask: torch.Tensor | None = None,
        query_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        sizes: dict[str, int] = {}
        check_tensor("query", query, ("B", "Lq", self.query_dim), dtype="float", sizes=sizes)
        check_tensor("context", context, ("B", "Lc", self.context_dim), dtype="float", sizes=sizes)
        if context_mask is not None:
            check_tensor("context_mask", context_mask, ("B", "Lc"), dtype="bool", sizes=sizes)
            if not context_mask.any(-1).all():
                raise ValueError("context_mask must keep at least one position in every sample")
        if query_mask is not None:
            check_tensor("query_mask", query_mask, ("B", "Lq"), dtype="bool", sizes=sizes)
        logits = self.logits(query, context)
        if context_mask is not None:
            logits = logits.masked_fill(~context_mask[:, None, None, :], float("-inf"))
        weights = logits.softmax(-1)
        if query_mask is not None:
            weights = weights * query_mask[:, None, :, None].to(weights.dtype)
        b, lq = query.shape[:2]
        v = self.v(context).view(b, context.shape[1], self.heads, -1).transpose(1, 2)
        attended = self.out((self.dropout(weights) @ v).transpose(1, 2).reshape(b, lq, self.dim))
        if query_mask is not None:
            attended = attended * query_mask[..., None].to(attended.dtype)
        return attended, weights


# --------------------------------------------------------------------------------------------------------------
# Dynamic time warping


PAIRWISE_METRICS = ("sqeuclidean", "euclidean", "cosine", "log_augmented")


def pairwise_cost(x: torch.Tensor, y: torch.Tensor, metric: str = "sqeuclidean") -> torch.Tensor:
    """Cost matrix between two sequences of vectors: ``C[i, j] = c(x_i, y_j)``.

    ``x`` (N, D) or (B, N, D), ``y`` (M, D) or (B, M, D); returns (N, M) or (B, N, M). ``metric``:
    ``"sqeuclidean"`` ``‖x_i − y_j‖²``, ``"euclidean"`` ``‖x_i − y_j‖``, ``"cosine"`` ``1 − cos(x_i, y_j)``,
    ``"log_augmented"`` ``½‖x_i − y_j‖² + log(2 − exp(−½‖x_i − y_j‖²))`` — the cost for which
    ``k = exp(−c) = g / (2 − g)``, ``g = exp(−½‖x − y‖²)``, so that ``k / (1 + k) = g / 2`` is positive definite:
    Cuturi et al. (2007)'s condition for the global alignment kernel, hence for a non-negative soft-DTW divergence
    at ``γ = 1`` (see :func:`soft_dtw_divergence`). It is 0 on identical frames and grows like ``½‖x − y‖² + log 2``.
    """
    check_choice("metric", metric, PAIRWISE_METRICS)
    if x.dim() not in (2, 3):
        raise ValueError(f"x must have shape (N, D) or (B, N, D), got {tuple(x.shape)}")
    shape = ("B", None, "D") if x.dim() == 3 else (None, "D")
    sizes: dict[str, int] = {}
    check_tensor("x", x, shape, dtype="float", sizes=sizes)
    check_tensor("y", y, shape, dtype="float", sizes=sizes)
    if metric == "cosine":
        return 1.0 - F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).transpose(-1, -2)
    sq = (x * x).sum(-1)[..., :, None] + (y * y).sum(-1)[..., None, :] - 2 * x @ y.transpose(-1, -2)
    sq = sq.clamp_min(0.0)
    if metric == "log_augmented":
        half = 0.5 * sq
        return half + torch.log1p(-torch.expm1(-half))  # log(2 − e^{−a}) = log1p(−expm1(−a)), stable near 0
    return sq if metric == "sqeuclidean" else sq.sqrt()


def _lengths(name: str, mask: torch.Tensor | None, b: int, n: int, device: torch.device) -> torch.Tensor:
    if mask is None:
        return torch.full((b,), n, dtype=torch.long, device=device)
    check_tensor(name, mask, (b, n), dtype="bool")
    lengths = mask.sum(-1)
    prefix = torch.arange(n, device=mask.device)[None] < lengths[:, None]
    if not torch.equal(prefix, mask):
        raise ValueError(f"{name} must be True on a prefix of each row (left-aligned padding)")
    if (lengths < 1).any():
        raise ValueError(f"{name} must keep at least one position in every sample")
    return lengths.to(device)


def _prepare(
    cost: torch.Tensor, row_mask: torch.Tensor | None, col_mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    if cost.dim() not in (2, 3):
        raise ValueError(f"cost must have shape (N, M) or (B, N, M), got {tuple(cost.shape)}")
    check_tensor("cost", cost, None, dtype="float")
    single = cost.dim() == 2
    c = cost[None] if single else cost
    if single:
        row_mask = None if row_mask is None else row_mask[None]
        col_mask = None if col_mask is None else col_mask[None]
    b, n, m = c.shape
    if n == 0 or m == 0:
        raise ValueError(f"cost must have at least one row and one column, got {tuple(cost.shape)}")
    return c, _lengths("row_mask", row_mask, b, n, c.device), _lengths("col_mask", col_mask, b, m, c.device), single


def _wavefront(cost: torch.Tensor, gamma: float, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``R[n_b, m_b]`` of the (soft-)DTW recursion for a batch of cost matrices (B, N, M), in float32/64.

    ``R[i, j] = C[i, j] + min_γ(R[i−1, j−1], R[i−1, j], R[i, j−1])``, ``R[0, 0] = 0``, ``R[i, 0] = R[0, j] = ∞``.
    Cells with equal ``i + j`` (an anti-diagonal) are independent, so each diagonal is one batched tensor op;
    diagonal ``d`` is stored indexed by the row ``i`` (0..N). Padding beyond a sample's lengths never feeds into
    ``R[n_b, m_b]``, because cells only depend on cells above and to their left.
    """
    b, n, m = cost.shape
    c = cost if cost.dtype == torch.float64 else cost.float()
    i = torch.arange(n + 1, device=c.device)
    big = torch.full((b, 1), _BIG, dtype=c.dtype, device=c.device)
    prev2 = torch.cat([torch.zeros_like(big), big.expand(b, n)], 1)  # diagonal 0: R[0, 0] = 0
    prev1 = big.expand(b, n + 1)  # diagonal 1: R[0, 1] = R[1, 0] = ∞
    diagonals = [prev2, prev1]
    for d in range(2, n + m + 1):
        j = d - i
        valid = (i >= 1) & (j >= 1) & (j <= m)
        c_d = c[:, (i - 1).clamp(0, n - 1), (j - 1).clamp(0, m - 1)]  # (B, N+1): C at cells (i, d−i)
        diag = torch.cat([big, prev2[:, :-1]], 1)  # R[i−1, j−1]
        up = torch.cat([big, prev1[:, :-1]], 1)  # R[i−1, j]
        left = prev1  # R[i, j−1]
        options = torch.stack([diag, up, left])
        best = options.min(0).values if gamma == 0 else -gamma * torch.logsumexp(-options / gamma, 0)
        new = torch.where(valid, c_d + best, big)
        diagonals.append(new)
        prev2, prev1 = prev1, new
    table = torch.stack(diagonals, 1)  # (B, N+M+1, N+1)
    return table[torch.arange(b, device=c.device), rows + cols, rows]


def _check_gamma(gamma: float) -> float:
    if not (isinstance(gamma, (int, float)) and math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be a finite number > 0, got {gamma!r}")
    return float(gamma)


def dtw(
    cost: torch.Tensor, row_mask: torch.Tensor | None = None, col_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic time warping: the cheapest monotone, continuous path through a cost matrix, and its cost.

    ``DTW(C) = min_{A ∈ 𝒜(N, M)} ⟨A, C⟩``, where a path ``A`` starts at (0, 0), ends at (N−1, M−1) and moves by
    (1, 0), (0, 1) or (1, 1); solved by ``R[i, j] = C[i, j] + min(R[i−1, j−1], R[i−1, j], R[i, j−1])``
    (Sakoe & Chiba 1978). ``cost`` (N, M) or (B, N, M) may come from any pairwise cost; ``row_mask`` (B, N) and
    ``col_mask`` (B, M) mark real positions (left-aligned). Returns ``(value, path)``: the total cost, () or
    (B,), and a bool path matrix like ``cost`` (False outside each sample's lengths). The path is read off as
    the gradient of the value with respect to the cost, which is 1 exactly on the minimising path.
    """
    c, rows, cols, single = _prepare(cost, row_mask, col_mask)
    with torch.inference_mode(False), torch.enable_grad():  # clones: inference tensors cannot enter autograd
        leaf = c.detach().clone().requires_grad_(True)
        value = _wavefront(leaf, 0.0, rows.clone(), cols.clone())
        (grad,) = torch.autograd.grad(value.sum(), leaf)
    value, path = value.detach(), grad > 0.5
    return (value[0], path[0]) if single else (value, path)


def soft_dtw(
    cost: torch.Tensor,
    gamma: float = 1.0,
    row_mask: torch.Tensor | None = None,
    col_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Soft-DTW: DTW with the minimum replaced by a smooth minimum, differentiable in the cost.

    ``sdtw_γ(C) = −γ log Σ_{A ∈ 𝒜} exp(−⟨A, C⟩ / γ)`` via ``min_γ(a, b, c) = −γ log(e^{−a/γ} + e^{−b/γ} +
    e^{−c/γ})`` (Cuturi & Blondel, ICML 2017). ``sdtw_γ → DTW`` as ``γ → 0``; more precisely
    ``DTW − γ log|𝒜| ≤ sdtw_γ ≤ DTW``. It is *not* zero on identical inputs: for a cost that is 0 on the
    diagonal, DTW(x, x) = 0, so ``sdtw_γ(C(x, x)) ≤ 0``, strictly below 0 as soon as there is more than one path.
    Use :func:`soft_dtw_divergence` to compare sequences. Shapes as in :func:`dtw`; returns () or (B,).
    """
    gamma = _check_gamma(gamma)
    c, rows, cols, single = _prepare(cost, row_mask, col_mask)
    value = _wavefront(c, gamma, rows, cols)
    return value[0] if single else value


def soft_alignment(
    cost: torch.Tensor,
    gamma: float = 1.0,
    row_mask: torch.Tensor | None = None,
    col_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The expected alignment ``E_γ[A] = ∇_C sdtw_γ(C)``: the average of all paths, each weighted by
    ``exp(−⟨A, C⟩/γ)`` (Cuturi & Blondel 2017). Entries in [0, 1]; as ``γ → 0`` it becomes the DTW path."""
    gamma = _check_gamma(gamma)
    c, rows, cols, single = _prepare(cost, row_mask, col_mask)
    with torch.inference_mode(False), torch.enable_grad():
        leaf = c.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(_wavefront(leaf, gamma, rows.clone(), cols.clone()).sum(), leaf)
    return grad[0] if single else grad


def soft_dtw_divergence(
    x: torch.Tensor,
    y: torch.Tensor,
    gamma: float = 1.0,
    cost: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "sqeuclidean",
    x_mask: torch.Tensor | None = None,
    y_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Soft-DTW divergence ``D_γ(x, y) = sdtw_γ(C(x, y)) − ½ sdtw_γ(C(x, x)) − ½ sdtw_γ(C(y, y))``
    (Blondel, Mensch & Vert, "Differentiable divergences between time series", AISTATS 2021).

    ``cost`` is a metric of :func:`pairwise_cost` (``"sqeuclidean"``, the default, or ``"log_augmented"``, ...)
    or a function ``cost(a, b)`` returning the cost matrix. ``x`` (N, D) or (B, N, D), ``y`` (M, D) or (B, M, D);
    masks as in :func:`dtw`. Differentiable.

    ``D_γ(x, x) = 0`` for any cost. Non-negativity is *not* automatic: with the global alignment kernel
    ``K(x, y) = exp(−sdtw_γ(C(x, y))/γ) = Σ_A Π_{(i,j) ∈ A} k(x_i, y_j)``, ``k = exp(−c/γ)``, one has
    ``D_γ = −γ log(K(x, y) / √(K(x, x) K(y, y)))``, which is ≥ 0 whenever ``K`` is a positive-definite kernel
    (Cauchy–Schwarz). Cuturi et al. (2007, "A kernel for time series based on global alignments") show that
    ``K`` is positive definite when ``k / (1 + k)`` is; Blondel et al. use this to prove ``D_γ ≥ 0``. The
    ``"log_augmented"`` cost meets the condition at ``γ = 1`` (``k/(1+k) = ½ exp(−½‖x − y‖²)``; for another γ,
    the condition is on ``exp(−c/γ)``: use ``γ = 1`` and scale the inputs to set the bandwidth). For the squared
    Euclidean cost ``k`` is a Gaussian kernel, positive definite, but ``k/(1+k)`` need not be: the proof does not
    cover it (random checks find no negative value, which is evidence, not a guarantee).
    """
    gamma = _check_gamma(gamma)
    if isinstance(cost, str):
        check_choice("cost", cost, PAIRWISE_METRICS)
        metric = cost

        def cost_fn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return pairwise_cost(a, b, metric)
    elif callable(cost):
        cost_fn = cost
    else:
        raise TypeError(f"cost must be a metric name or a function (a, b) -> cost matrix, got {type(cost).__name__}")
    if x.dim() != y.dim() or x.dim() not in (2, 3) or x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"x and y must both have shape (N, D) / (M, D) or (B, N, D) / (B, M, D), got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    xy = soft_dtw(cost_fn(x, y), gamma, x_mask, y_mask)
    xx = soft_dtw(cost_fn(x, x), gamma, x_mask, x_mask)
    yy = soft_dtw(cost_fn(y, y), gamma, y_mask, y_mask)
    return xy - 0.5 * (xx + yy)


def path_to_pairing(path: torch.Tensor) -> torch.Tensor:
    """For each row of a path (or any alignment) matrix (B, N, M), the column it is paired with: the middle
    of the row's run of path cells, or of its largest entries for a soft alignment. -1 for empty rows."""
    check_tensor("path", path, ("B", "N", "M"))
    p = path.float()
    on = p >= p.amax(-1, keepdim=True).clamp_min(1e-12) * (1 - 1e-6)  # the row's path cells (or maxima)
    on &= p > 0
    m = p.shape[-1]
    cols = torch.arange(m, device=p.device)
    first = torch.where(on, cols, m).amin(-1)
    last = torch.where(on, cols, -1).amax(-1)
    return torch.where(on.any(-1), (first + last) // 2, -1)


def _masks_to_lengths(row_mask: torch.Tensor, col_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    check_tensor("row_mask", row_mask, ("B", None), dtype="bool")
    check_tensor("col_mask", col_mask, (row_mask.shape[0], None), dtype="bool")
    return row_mask.sum(-1), col_mask.sum(-1)


def index_pairing(row_mask: torch.Tensor, col_mask: torch.Tensor) -> torch.Tensor:
    """Naive pairing by index: row ``t`` goes with column ``min(t, M−1)``. Masks (B, N) and (B, M); -1 at
    padded rows. Right only when both streams run at the same rate and start together."""
    n, m = _masks_to_lengths(row_mask, col_mask)
    t = torch.arange(row_mask.shape[1], device=row_mask.device)[None]
    return torch.where(row_mask, torch.minimum(t, m[:, None] - 1), -1)


def proportional_pairing(row_mask: torch.Tensor, col_mask: torch.Tensor) -> torch.Tensor:
    """Naive pairing by relative position (resample one stream to the other's length): row ``t`` goes with
    column ``⌊(t + ½)·M/N⌋``. Right only when one stream is a uniformly stretched copy of the other."""
    n, m = _masks_to_lengths(row_mask, col_mask)
    t = torch.arange(row_mask.shape[1], device=row_mask.device)[None]
    s = ((t + 0.5) * m[:, None] / n[:, None].clamp_min(1)).long()
    return torch.where(row_mask, torch.minimum(s, m[:, None] - 1), -1)


def alignment_accuracy(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Share of frames assigned to the right token: ``Σ_t m_t·[pred_t = target_t] / Σ_t m_t``.

    ``pred`` and ``target`` are integer token indices of the same shape, e.g. (B, T); ``mask`` (same shape)
    selects real frames (default: ``target >= 0``). Frames are pooled over the batch, so long episodes weigh more.
    """
    check_tensor("pred", pred, None, dtype="int")
    check_tensor("target", target, tuple(pred.shape), dtype="int")
    mask = target >= 0 if mask is None else check_tensor("mask", mask, tuple(pred.shape), dtype="bool")
    total = int(mask.sum())
    if total == 0:
        raise ValueError("mask selects no frame")
    return float(((pred == target) & mask).sum()) / total


# --------------------------------------------------------------------------------------------------------------
# A shared frame/token space, learned contrastively


def info_nce(z: torch.Tensor, candidates: torch.Tensor, target: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """InfoNCE: ``−mean_i log( exp(s(z_i, c_{y_i})/τ) / Σ_j exp(s(z_i, c_j)/τ) )`` with cosine ``s``.

    ``z`` (N, D) anchors, ``candidates`` (C, D), ``target`` (N,) the index of each anchor's positive among the
    candidates; every other candidate is a negative (van den Oord et al. 2018, "Representation Learning with
    Contrastive Predictive Coding"). With the candidates a fixed vocabulary this is a cosine-softmax classifier;
    CLIP uses the other captions of the batch instead (lesson 7).
    """
    sizes: dict[str, int] = {}
    check_tensor("z", z, ("N", "D"), dtype="float", sizes=sizes)
    check_tensor("candidates", candidates, ("C", "D"), dtype="float", sizes=sizes)
    check_tensor("target", target, ("N",), dtype="int", sizes=sizes)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if target.numel() and (target.min() < 0 or target.max() >= candidates.shape[0]):
        raise ValueError(f"target must be in [0, {candidates.shape[0]}), got [{target.min()}, {target.max()}]")
    logits = F.normalize(z, dim=-1) @ F.normalize(candidates, dim=-1).T / temperature
    return F.cross_entropy(logits, target)


class FrameEncoder(nn.Module):
    """Per-frame embeddings of a sequence: ``LayerNorm → Conv1d(k = 2·context + 1) → ReLU → Conv1d(1) →
    ReLU → Conv1d(1)``, L2-normalised. Input ``(B, T, *frame_shape)`` with ``in_dim`` features per frame; ``mask``
    (B, T) True at real frames (padded frames are zeroed before the convolution, so they never leak into real
    ones, and their outputs are zero). Output (B, T, dim). ``context = 0`` embeds each frame on its own."""

    def __init__(self, in_dim: int, dim: int = 32, hidden: int = 64, context: int = 0):
        super().__init__()
        if in_dim < 1 or dim < 1 or hidden < 1 or context < 0:
            raise ValueError(
                f"need in_dim, dim, hidden >= 1 and context >= 0, got {in_dim}, {dim}, {hidden}, {context}"
            )
        self.in_dim, self.dim, self.context = in_dim, dim, context
        self.norm = nn.LayerNorm(in_dim)
        self.net = nn.Sequential(
            nn.Conv1d(in_dim, hidden, 2 * context + 1, padding=context),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, 1),
            nn.ReLU(),
            nn.Conv1d(hidden, dim, 1),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_tensor("x", x, None, dtype="float")
        if x.dim() < 3 or math.prod(x.shape[2:]) != self.in_dim:
            raise ValueError(
                f"x must have shape (B, T, ...) with {self.in_dim} features per frame, got {tuple(x.shape)}"
            )
        b, t = x.shape[:2]
        h = self.norm(x.reshape(b, t, self.in_dim))
        if mask is not None:
            check_tensor("mask", mask, (b, t), dtype="bool")
            h = h * mask[..., None].to(h.dtype)
        z = F.normalize(self.net(h.transpose(1, 2)).transpose(1, 2), dim=-1)
        return z if mask is None else z * mask[..., None].to(z.dtype)


class AlignmentSpace(nn.Module):
    """A shared space for speech frames, video frames and transcript tokens (the ten digit words).

    ``speech(frames, mask)`` and ``video(frames, mask)`` give unit vectors (B, T, dim) (speech frames see
    ``speech_context`` neighbours on each side, video frames only themselves); ``words`` (10, dim) are the unit
    embeddings of the digit words. Trained with :func:`info_nce` (temperature ``τ``) so that every frame lands
    next to the word of its token, which makes ``p(w | frame) = softmax_w(cos(z, e_w)/τ)``; :meth:`cost` then
    compares a speech frame with a video frame.
    """

    def __init__(
        self,
        dim: int = 32,
        n_mels: int = 32,
        image_pixels: int = 64,
        speech_context: int = 5,
        temperature: float = 0.1,
    ):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.dim, self.temperature = dim, float(temperature)
        self.speech_encoder = FrameEncoder(n_mels, dim, context=speech_context)
        self.video_encoder = FrameEncoder(image_pixels, dim, context=0)
        self.word_embedding = nn.Embedding(10, dim)

    def speech(self, frames: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Unit embeddings (B, T, dim) of speech frames (B, T, n_mels), time first; ``mask`` (B, T)."""
        return self.speech_encoder(frames, mask)

    def video(self, frames: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Unit embeddings (B, T, dim) of video frames (B, T, 1, 8, 8) (or any ``image_pixels`` per frame)."""
        return self.video_encoder(frames, mask)

    @property
    def words(self) -> torch.Tensor:
        """The ten digit words' unit embeddings ``e_w``: (10, dim)."""
        return F.normalize(self.word_embedding.weight, dim=-1)

    def word_logits(self, z: torch.Tensor) -> torch.Tensor:
        """``cos(z, e_w) / τ`` for the ten words: (..., 10); its softmax is ``p(w | frame)``."""
        return z @ self.words.T / self.temperature

    def cost(self, batch: dict[str, torch.Tensor], kind: str = "same_word") -> torch.Tensor:
        """Cost between every speech frame ``s`` and video frame ``t`` of each episode: (B, Ta, Tv).

        ``"same_word"``: ``−log Σ_w p(w | s) p(w | t)``, minus the log-probability that both frames show the same
        word; ``"cosine"``: ``1 − cos(z_s, z_t)``.
        """
        check_choice("kind", kind, ("same_word", "cosine"))
        za = self.speech(batch["speech"], batch["speech_mask"])
        zv = self.video(batch["video"], batch["video_mask"])
        if kind == "cosine":
            return pairwise_cost(za, zv, "cosine")
        pa, pv = self.word_logits(za).softmax(-1), self.word_logits(zv).softmax(-1)
        return -(pa @ pv.transpose(1, 2)).clamp_min(1e-12).log()


# --------------------------------------------------------------------------------------------------------------
# Attention as an aligner


def relative_position_features(mask: torch.Tensor, n_freq: int = 4) -> torch.Tensor:
    """``[sin(π k r_t), cos(π k r_t)]_{k=1..n_freq}`` of each frame's relative position ``r_t = t/(T−1)`` in its
    own sequence (``T`` = its real length): (B, T, 2·n_freq), zero at padding. Dot products of such features
    depend on ``r_q − r_c``, so attention can learn to prefer the same relative place."""
    check_tensor("mask", mask, ("B", "T"), dtype="bool")
    n = mask.sum(-1, keepdim=True).clamp_min(2).to(torch.float32)
    r = torch.arange(mask.shape[1], device=mask.device)[None].float() / (n - 1)
    k = torch.arange(1, n_freq + 1, device=mask.device).float()
    ang = math.pi * r[..., None] * k
    return torch.cat([ang.sin(), ang.cos()], -1) * mask[..., None].float()


class AttentionAligner(nn.Module):
    """Speech frames attend over video frames: :class:`CrossModalAttention` on the (frozen) shared-space
    embeddings, each concatenated with :func:`relative_position_features`. ``forward`` returns the head-averaged
    weights (B, Ta, Tv); a speech frame is aligned to the video frame it attends to most."""

    def __init__(self, space_dim: int = 32, dim: int = 32, heads: int = 2, n_freq: int = 4):
        super().__init__()
        self.n_freq = n_freq
        width = space_dim + 2 * n_freq
        self.attention = CrossModalAttention(width, width, dim, heads)

    def forward(
        self, query: torch.Tensor, query_mask: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor
    ) -> torch.Tensor:
        q = torch.cat([query, relative_position_features(query_mask, self.n_freq)], -1)
        c = torch.cat([context, relative_position_features(context_mask, self.n_freq)], -1)
        _, weights = self.attention(q, c, context_mask=context_mask, query_mask=query_mask)
        return weights.mean(1)


def segment_attention_loss(
    weights: torch.Tensor,
    query_token: torch.Tensor,
    context_token: torch.Tensor,
    query_mask: torch.Tensor | None = None,
    eps: float = 1e-6,
) -> torch.Tensor:
    """``−mean_t log Σ_{s: z_s = z_t} w[t, s]``: minus the log of the attention mass each query frame puts on
    the context frames of its own token. ``weights`` (B, Lq, Lc); tokens (B, Lq) and (B, Lc), -1 at padding;
    ``query_mask`` (B, Lq) picks the query frames that count (default: ``query_token >= 0``)."""
    sizes: dict[str, int] = {}
    check_tensor("weights", weights, ("B", "Lq", "Lc"), dtype="float", sizes=sizes)
    check_tensor("query_token", query_token, ("B", "Lq"), dtype="int", sizes=sizes)
    check_tensor("context_token", context_token, ("B", "Lc"), dtype="int", sizes=sizes)
    if query_mask is None:
        query_mask = query_token >= 0
    check_tensor("query_mask", query_mask, ("B", "Lq"), dtype="bool", sizes=sizes)
    same = (query_token[:, :, None] == context_token[:, None, :]) & (context_token[:, None, :] >= 0)
    mass = (weights * same.to(weights.dtype)).sum(-1)
    return -(mass[query_mask] + eps).log().mean()


ALIGN_METHODS = ("index", "proportional", "dtw_cosine", "dtw", "attention")


@torch.no_grad()
def predict_tokens(
    method: str,
    batch: dict[str, torch.Tensor],
    space: AlignmentSpace | None = None,
    aligner: AttentionAligner | None = None,
) -> torch.Tensor:
    """The transcript token each speech frame is aligned to, (B, Ta) (-1 at padding): each speech frame is
    paired with a video frame and takes that frame's token. Pairing by one of :data:`ALIGN_METHODS`: by index, by
    relative position, by DTW on the shared space's ``1 − cos`` cost (``"dtw_cosine"``) or on its same-word cost
    (``"dtw"``), or by the aligner's attention arg-max."""
    check_choice("method", method, ALIGN_METHODS)
    smask, vmask = batch["speech_mask"], batch["video_mask"]
    if method == "index":
        pairing = index_pairing(smask, vmask)
    elif method == "proportional":
        pairing = proportional_pairing(smask, vmask)
    else:
        if space is None:
            raise ValueError(f"method {method!r} needs the shared space (space=...)")
        if method in ("dtw", "dtw_cosine"):
            _, path = dtw(space.cost(batch, "cosine" if method == "dtw_cosine" else "same_word"), smask, vmask)
            pairing = path_to_pairing(path)
        else:
            if aligner is None:
                raise ValueError("method 'attention' needs a trained AttentionAligner (aligner=...)")
            za, zv = space.speech(batch["speech"], smask), space.video(batch["video"], vmask)
            pairing = aligner(za, smask, zv, vmask).argmax(-1)
    tokens = batch["video_token"].gather(1, pairing.clamp_min(0))
    return torch.where(smask, tokens, -1)


# --------------------------------------------------------------------------------------------------------------
# Grounding a word in an image


class GroundingAttention(nn.Module):
    """Spatial grounding by attention: the query word attends over image patches.

    A query digit ``q`` (B,) is embedded (``word_dim``), each patch (B, P, 1, 8, 8) is flattened to its 64 pixels,
    and :class:`CrossModalAttention` projects both to a shared width; the weights (B, P) say where the named
    digit is. Different widths on the two sides (word_dim vs 64) are the point of the input projections.
    """

    def __init__(self, word_dim: int = 32, dim: int = 32, patch_pixels: int = 64, vocab: int = 10):
        super().__init__()
        self.patch_pixels = patch_pixels
        self.word = nn.Embedding(vocab, word_dim)
        self.attention = CrossModalAttention(word_dim, patch_pixels, dim, heads=1)

    def forward(self, patches: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        check_tensor("patches", patches, None, dtype="float")
        if patches.dim() < 3 or math.prod(patches.shape[2:]) != self.patch_pixels:
            raise ValueError(
                f"patches must have shape (B, P, ...) with {self.patch_pixels} pixels, got {tuple(patches.shape)}"
            )
        check_tensor("query", query, (patches.shape[0],), dtype="int")
        _, weights = self.attention(self.word(query)[:, None], patches.flatten(2))
        return weights[:, 0, 0]
