"""Fusion: how the features of several modalities become one vector, and what each way costs.

Every fusion module takes one feature tensor per modality, ``forward(z_1, ..., z_M)`` with ``z_m`` of shape
``(B, d_m)``, returns ``(B, out_dim)`` and exposes ``out_dim``, so it plugs into
``mmlab.models.MultimodalClassifier(encoders, num_classes, fusion=...)``.

* :class:`ConcatFusion` and :class:`LateFusion` are *additive*: the output is a sum of one term per modality,
  so a linear read-out of it can never model an interaction between modalities (an XOR).
* :class:`GatedFusion` (Arevalo et al. 2017) lets one modality's features gate another's: a weak, learned
  multiplicative interaction.
* :class:`TensorFusion` (Zadeh et al. 2017) takes the outer product of ``[z_m; 1]``: every unimodal, bimodal, ...,
  M-modal product term, at a cost of ``Π(d_m + 1)`` values per sample.
* :class:`LowRankFusion` (Liu et al. 2018) computes the same kind of output with a rank-``r`` weight, without ever
  forming the tensor: ``r·out_dim·Σ(d_m + 1)`` parameters instead of ``out_dim·Π(d_m + 1)``.

:class:`NormalizedFusion` normalises each modality's features (LayerNorm or L2) before any of them, so that no
modality's scale (or a shift of it on new data) dominates the products.

:func:`fusion_complexity` gives parameters, multiply-adds and activation sizes in closed form;
:func:`saved_activation_bytes` measures what a module really keeps for its backward pass. Timing uses the
course's one timing helper, :func:`mmlab.deploy.compare_latency`. Lesson 2's task, timing wrapper and widget
live in :mod:`mmlab.lessons.fusion`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_choice, check_tensor

__all__ = [
    "ConcatFusion",
    "LateFusion",
    "GatedFusion",
    "TensorFusion",
    "LowRankFusion",
    "NormalizedFusion",
    "FUSIONS",
    "make_fusion",
    "fusion_complexity",
    "saved_activation_bytes",
]

FUSIONS = ("concat", "late", "gated", "tensor", "lowrank")


def _check_dims(input_dims: Sequence[int], min_modalities: int = 1) -> tuple[int, ...]:
    dims = tuple(input_dims) if isinstance(input_dims, (list, tuple)) else None
    if dims is None or len(dims) < min_modalities or not all(isinstance(d, int) and d >= 1 for d in dims):
        raise ValueError(
            f"input_dims must be a list of at least {min_modalities} positive ints (one width per modality), "
            f"got {input_dims!r}"
        )
    return dims


def _check_out_dim(out_dim: int) -> int:
    if not isinstance(out_dim, int) or out_dim < 1:
        raise ValueError(f"out_dim must be a positive int, got {out_dim!r}")
    return out_dim


def _check_features(features: Sequence[torch.Tensor], dims: tuple[int, ...]) -> list[torch.Tensor]:
    if len(features) != len(dims):
        raise ValueError(
            f"expected {len(dims)} feature tensors (one per modality, widths {list(dims)}), got {len(features)}"
        )
    sizes: dict[str, int] = {}
    # shapes and dtypes only: a NaN scan would cost a pass and a device sync per call (fit checks the loss)
    return [
        check_tensor(f"features[{m}]", z, ("B", d), dtype="float", finite=False, sizes=sizes)
        for m, (z, d) in enumerate(zip(features, dims))
    ]


class ConcatFusion(nn.Module):
    """Early fusion by concatenation: ``h = [z_1; ...; z_M]``, or ``h = W[z_1; ...; z_M] + b`` with ``out_dim``.

    Either way ``h`` is a sum of one term per modality (``W[z_1; z_2] = W_1 z_1 + W_2 z_2``), so a linear head on
    it is additive across modalities and cannot represent an interaction such as XOR. (A hidden layer *after*
    the concatenation can learn one; that is what deeper "early fusion" networks do.)
    """

    def __init__(self, input_dims: Sequence[int], out_dim: int | None = None):
        super().__init__()
        self.input_dims = _check_dims(input_dims)
        self.proj = None if out_dim is None else nn.Linear(sum(self.input_dims), _check_out_dim(out_dim))
        self.out_dim = sum(self.input_dims) if out_dim is None else out_dim

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        h = torch.cat(_check_features(features, self.input_dims), dim=-1)
        return h if self.proj is None else self.proj(h)


class LateFusion(nn.Module):
    """Decision-level (late) fusion: ``h = (1/M) Σ_m (W_m z_m + b_m)``.

    With ``out_dim`` equal to the number of classes, each ``W_m z_m + b_m`` is one modality's own classifier and
    their logits are averaged (as in ensembles of unimodal models, e.g. Simonyan & Zisserman 2014's two-stream
    networks). Additive across modalities, like concatenation.
    """

    def __init__(self, input_dims: Sequence[int], out_dim: int):
        super().__init__()
        self.input_dims = _check_dims(input_dims)
        self.out_dim = _check_out_dim(out_dim)
        self.heads = nn.ModuleList(nn.Linear(d, out_dim) for d in self.input_dims)

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        zs = _check_features(features, self.input_dims)
        return torch.stack([head(z) for head, z in zip(self.heads, zs)]).mean(0)


class GatedFusion(nn.Module):
    """Gated multimodal unit (GMU; Arevalo et al., 2017), for any number of modalities.

    ``h_m = tanh(W_m z_m + b_m)``, gates ``g = softmax_m(U [z_1; ...; z_M] + c)`` (per output unit, over the
    modalities; for M = 2 this is the paper's ``σ``-gate ``g·h_1 + (1-g)·h_2``), and ``h = Σ_m g_m ⊙ h_m``.
    The gate of one modality depends on all of them, so this is a (weak) multiplicative interaction.
    """

    def __init__(self, input_dims: Sequence[int], out_dim: int):
        super().__init__()
        self.input_dims = _check_dims(input_dims)
        self.out_dim = _check_out_dim(out_dim)
        self.proj = nn.ModuleList(nn.Linear(d, out_dim) for d in self.input_dims)
        self.gate = nn.Linear(sum(self.input_dims), len(self.input_dims) * out_dim)

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        zs = _check_features(features, self.input_dims)
        h = torch.stack([torch.tanh(p(z)) for p, z in zip(self.proj, zs)], dim=1)  # (B, M, out)
        g = self.gate(torch.cat(zs, dim=-1)).view(-1, len(zs), self.out_dim).softmax(dim=1)
        return (g * h).sum(1)


def _with_one(z: torch.Tensor) -> torch.Tensor:
    return torch.cat([z, z.new_ones(z.shape[0], 1)], dim=-1)


class TensorFusion(nn.Module):
    """Tensor fusion (TFN; Zadeh et al., EMNLP 2017): ``h = W · vec([z_1; 1] ⊗ [z_2; 1] ⊗ ... ⊗ [z_M; 1])``.

    The appended 1 puts every lower-order term in the tensor: its slices hold ``z_m`` itself (unimodal terms),
    every pairwise product ``z_m ⊗ z_n`` (bimodal), ..., and the constant 1 (so no separate bias is needed).
    ``weight`` has shape ``(out_dim, d_1 + 1, ..., d_M + 1)``: ``out_dim·Π(d_m + 1)`` parameters, and each
    sample's tensor holds ``Π(d_m + 1)`` values, which is the method's cost.
    """

    def __init__(self, input_dims: Sequence[int], out_dim: int):
        super().__init__()
        self.input_dims = _check_dims(input_dims, 2)
        self.out_dim = _check_out_dim(out_dim)
        shape = (out_dim, *(d + 1 for d in self.input_dims))
        fan_in = math.prod(shape[1:])
        self.weight = nn.Parameter(torch.empty(shape).uniform_(-1, 1) / math.sqrt(fan_in))

    @classmethod
    def from_weight(cls, weight: torch.Tensor) -> TensorFusion:
        """A TensorFusion whose weight is ``weight`` ``(out_dim, d_1 + 1, ..., d_M + 1)``, e.g.
        :meth:`LowRankFusion.full_weight`."""
        check_tensor("weight", weight, dtype="float")
        if weight.dim() < 3 or min(weight.shape[1:]) < 2:
            raise ValueError(
                f"weight must have shape (out_dim, d_1 + 1, ..., d_M + 1) with M >= 2, got {tuple(weight.shape)}"
            )
        module = cls([s - 1 for s in weight.shape[1:]], weight.shape[0])
        with torch.no_grad():
            module.weight.copy_(weight)
        return module.to(weight.device)

    def fused_tensor(self, *features: torch.Tensor) -> torch.Tensor:
        """``vec([z_1; 1] ⊗ ... ⊗ [z_M; 1])`` per sample: ``(B, Π(d_m + 1))``, row-major (last modality fastest)."""
        zs = _check_features(features, self.input_dims)
        t = _with_one(zs[0])
        for z in zs[1:]:
            t = (t.unsqueeze(-1) * _with_one(z).unsqueeze(1)).flatten(1)
        return t

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        return self.fused_tensor(*features) @ self.weight.flatten(1).t()


class LowRankFusion(nn.Module):
    """Low-rank multimodal fusion (LMF; Liu et al., ACL 2018): ``h = Σ_{r=1..R} ⊙_m (W_m^(r) [z_m; 1])``.

    Each modality has R factors ``W_m^(r)`` of shape ``(out_dim, d_m + 1)``. The output equals
    :class:`TensorFusion` with the rank-R weight ``W[k] = Σ_r W_1^(r)[k] ⊗ ... ⊗ W_M^(r)[k]`` for each output
    unit ``k`` (:meth:`full_weight` builds it), but the ``Π(d_m + 1)`` tensor is never formed: one matmul per
    modality, an elementwise product, a sum over the rank. Parameters: ``R·out_dim·Σ(d_m + 1)``, no others (the
    official code adds per-rank weights and a bias, both redundant with the factors and the appended 1).

    Storage, for speed: the factors' columns for ``z_m`` are ``factor_weights[m]`` ``(d_m, R·out_dim)`` and
    their column for the appended 1 is ``factor_biases[m]`` ``(R·out_dim,)``, so that ``[z; 1] W = z W' + b``
    is a single fused multiply-add with no column of ones concatenated; :meth:`factors` reassembles them as
    ``(d_m + 1, R, out_dim)`` tensors (``factors()[m][:, r].T`` is ``W_m^(r)``).
    """

    def __init__(self, input_dims: Sequence[int], out_dim: int, rank: int):
        super().__init__()
        self.input_dims = _check_dims(input_dims, 2)
        self.out_dim = _check_out_dim(out_dim)
        if not isinstance(rank, int) or rank < 1:
            raise ValueError(f"rank must be a positive int, got {rank!r}")
        self.rank = rank
        # each modality's term a_m = [z; 1] W_m starts with roughly unit variance per unit; the first is scaled
        # by 1/sqrt(R) so that the sum over the rank does not grow with R
        stds = [1 / math.sqrt((d + 1) * (rank if m == 0 else 1)) for m, d in enumerate(self.input_dims)]
        self.factor_weights = nn.ParameterList(
            nn.Parameter(torch.randn(d, rank * out_dim) * s) for d, s in zip(self.input_dims, stds)
        )
        self.factor_biases = nn.ParameterList(nn.Parameter(torch.randn(rank * out_dim) * s) for s in stds)

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        zs = _check_features(features, self.input_dims)
        prod = None
        for z, w, b in zip(zs, self.factor_weights, self.factor_biases):
            a = torch.addmm(b, z, w)  # [z; 1] @ [w; b]: (B, R·out)
            prod = a if prod is None else prod * a
        return prod.view(-1, self.rank, self.out_dim).sum(1)

    def factors(self) -> list[torch.Tensor]:
        """The factors as the paper writes them, one ``(d_m + 1, R, out_dim)`` tensor per modality (the last
        row multiplies the appended 1); differentiable."""
        return [
            torch.cat([w, b[None]]).view(-1, self.rank, self.out_dim)
            for w, b in zip(self.factor_weights, self.factor_biases)
        ]

    def full_weight(self) -> torch.Tensor:
        """The equivalent :class:`TensorFusion` weight ``(out_dim, d_1 + 1, ..., d_M + 1)``:
        ``W[k] = Σ_r W_1^(r)[k] ⊗ ... ⊗ W_M^(r)[k]`` (forms the full tensor: for checks and small widths)."""
        letters = "abcdefgijlmnopqstuvwxyz"  # r is the rank index, k the output index
        if len(self.input_dims) > len(letters):
            raise ValueError(f"full_weight supports at most {len(letters)} modalities")
        idx = letters[: len(self.input_dims)]
        spec = ",".join(f"{i}rk" for i in idx) + f"->k{idx}"
        return torch.einsum(spec, *self.factors())


NORMS = ("layer", "l2")


class NormalizedFusion(nn.Module):
    """Normalise each modality's features, then fuse: ``h = fusion(N(z_1), ..., N(z_M))``.

    ``norm="layer"``: ``N(z) = (z - mean(z)) / sqrt(var(z) + ε)`` over the feature axis (LayerNorm without its
    affine parameters, Ba, Kiros & Hinton 2016: a fusion layer's own weights absorb a per-feature scale and
    shift). ``norm="l2"``: ``N(z) = √d · z / ‖z‖`` (unit length, rescaled so that entries keep unit size).
    Either way each modality enters the fusion at a fixed scale per sample, so in a multiplicative fusion
    (TFN, LMF) a modality whose features grow or shrink on new data cannot scale every product term with it.
    ``fusion`` must expose ``input_dims`` and ``out_dim`` (every module of :func:`make_fusion` does).
    """

    def __init__(self, fusion: nn.Module, norm: str = "layer", eps: float = 1e-5):
        super().__init__()
        if not hasattr(fusion, "input_dims") or not hasattr(fusion, "out_dim"):
            raise TypeError(f"fusion must expose input_dims and out_dim, got {type(fusion).__name__}")
        self.norm = check_choice("norm", norm, NORMS)
        self.fusion, self.eps = fusion, float(eps)
        self.input_dims, self.out_dim = tuple(fusion.input_dims), fusion.out_dim

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """``N(z)`` row by row, ``(B, d) -> (B, d)``."""
        if self.norm == "layer":
            return F.layer_norm(z, z.shape[-1:], eps=self.eps)
        return F.normalize(z, dim=-1, eps=self.eps) * math.sqrt(z.shape[-1])

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        zs = _check_features(features, self.input_dims)
        return self.fusion(*(self.normalize(z) for z in zs))

    def extra_repr(self) -> str:
        return f"norm={self.norm!r}"


def make_fusion(kind: str, input_dims: Sequence[int], out_dim: int, rank: int = 4) -> nn.Module:
    """A fusion module by name: ``"concat"`` (with a linear projection to ``out_dim``), ``"late"``,
    ``"gated"``, ``"tensor"`` or ``"lowrank"`` (with ``rank``)."""
    check_choice("kind", kind, FUSIONS)
    if kind == "concat":
        return ConcatFusion(input_dims, out_dim)
    if kind == "late":
        return LateFusion(input_dims, out_dim)
    if kind == "gated":
        return GatedFusion(input_dims, out_dim)
    if kind == "tensor":
        return TensorFusion(input_dims, out_dim)
    return LowRankFusion(input_dims, out_dim, rank)


def fusion_complexity(
    kind: str, input_dims: Sequence[int], out_dim: int, rank: int = 4, batch: int = 1, bytes_per_value: int = 4
) -> dict[str, float]:
    """Closed-form cost of one fusion layer at widths ``input_dims`` (as built by :func:`make_fusion`).

    Returns ``params``; ``macs``, the multiply-adds of one forward pass per sample (matmuls and elementwise
    products; activation functions and softmax not counted); ``activations``, the values per sample that
    autograd keeps for the backward pass (the input features and parameters not counted; what
    :func:`saved_activation_bytes` measures when the features require grad); and
    ``activation_bytes = activations · batch · bytes_per_value``. With ``D_m = d_m + 1`` and prefix products
    ``P_k = D_1···D_k``: TFN has ``out·P_M`` parameters and keeps ``Σ_k P_k + Σ_{m≥2} D_m`` values (the fused
    tensor ``P_M`` dominates); LMF has ``R·out·Σ D_m`` parameters and keeps ``2(M-1)·R·out`` values.
    """
    check_choice("kind", kind, FUSIONS)
    dims = _check_dims(input_dims, 2 if kind in ("tensor", "lowrank") else 1)
    out = _check_out_dim(out_dim)
    if kind == "lowrank" and (not isinstance(rank, int) or rank < 1):
        raise ValueError(f"rank must be a positive int, got {rank!r}")
    M, S, D = len(dims), sum(dims), [d + 1 for d in dims]
    if kind == "concat":
        params, macs, acts = out * S + out, out * S, S
    elif kind == "late":
        params, macs, acts = out * S + M * out, out * S, 0
    elif kind == "gated":
        params = out * S + M * out + S * M * out + M * out
        macs = out * S + S * M * out + M * out
        acts = S + 3 * M * out
    elif kind == "tensor":
        prefix = [math.prod(D[: k + 1]) for k in range(M)]
        params = out * prefix[-1]
        macs = out * prefix[-1] + sum(prefix[1:])
        acts = sum(prefix) + sum(D[1:])
    else:
        params = rank * out * sum(D)
        macs = rank * out * sum(D) + M * rank * out  # M-1 products and the sum over the rank
        acts = 2 * (M - 1) * rank * out
    return {
        "params": float(params),
        "macs": float(macs),
        "activations": float(acts),
        "activation_bytes": float(acts) * batch * bytes_per_value,
    }


def saved_activation_bytes(module: nn.Module, *inputs: torch.Tensor) -> int:
    """Bytes of the tensors that autograd saves for the backward pass of ``module(*inputs)`` (measured).

    Uses ``torch.autograd.graph.saved_tensors_hooks``; tensors are counted once each (by storage), parameters
    and the inputs themselves are not counted. Works on any device; on CUDA
    ``torch.cuda.max_memory_allocated`` gives the allocator's peak as well.
    """
    skip = {p.untyped_storage().data_ptr() for p in module.parameters()}
    skip |= {x.untyped_storage().data_ptr() for x in inputs if isinstance(x, torch.Tensor)}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in skip:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(*inputs)
    return int(sum(seen.values()))
