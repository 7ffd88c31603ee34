"""Small encoders for each modality and a multimodal classifier that combines them.

Every encoder maps one modality to a feature vector ``(B, out_dim)``; ``MultimodalClassifier`` runs one encoder
per modality and a fusion module (concatenation by default; see ``mmlab.fusion`` for others) and a linear head.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .checks import check_tensor

__all__ = [
    "mlp",
    "MLPEncoder",
    "ImageCNN",
    "AudioCNN",
    "TextBagEncoder",
    "MultimodalClassifier",
    "masked_mean",
    "count_parameters",
]


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None, dim: int = 1) -> torch.Tensor:
    """Mean of ``x`` over ``dim`` counting only positions where ``mask`` is True: ``Σ m·x / max(Σ m, 1)``."""
    if mask is None:
        return x.mean(dim)
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(dim) / m.sum(dim).clamp_min(1.0)


def mlp(
    in_dim: int,
    hidden: int | Sequence[int],
    out_dim: int,
    *,
    activation: type[nn.Module] = nn.ReLU,
    dropout: float = 0.0,
    final_activation: bool = False,
    flatten: bool = False,
) -> nn.Sequential:
    """The course's one MLP builder: ``Linear(in→h₁) – act – [Dropout] – … – Linear(h_k→out) [– act]``.

    ``hidden`` is one width or a sequence of widths (empty: a single ``Linear``). ``dropout`` > 0 adds a
    ``Dropout`` after each hidden activation; ``final_activation`` adds ``activation`` after the last layer
    (an encoder whose features are non-negative); ``flatten`` starts with ``nn.Flatten()`` for ``(B, *)``
    input. A multilayer perceptron (Rumelhart, Hinton & Williams 1986).
    """
    widths = [hidden] if isinstance(hidden, int) else list(hidden)
    for name, v in [("in_dim", in_dim), ("out_dim", out_dim), *((f"hidden[{i}]", w) for i, w in enumerate(widths))]:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    layers: list[nn.Module] = [nn.Flatten()] if flatten else []
    dims = [in_dim, *widths]
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), activation()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(dims[-1], out_dim))
    if final_activation:
        layers.append(activation())
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """``Linear(in→hidden) – ReLU – Linear(hidden→out) – ReLU`` on flattened input ``(B, *)`` with ``in_dim``
    features."""

    def __init__(self, in_dim: int, out_dim: int = 64, hidden: int = 128, dropout: float = 0.0):
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.net = mlp(in_dim, hidden, out_dim, dropout=dropout, final_activation=True, flatten=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, ("B", None) if x.dim() == 2 else None, dtype="float")
        if x[0].numel() != self.in_dim:
            raise ValueError(f"x must have {self.in_dim} features per sample, got shape {tuple(x.shape)}")
        return self.net(x)


class ImageCNN(nn.Module):
    """A small CNN for ``(B, C, H, W)`` images: two 3×3 conv blocks, global average pooling, a linear layer."""

    def __init__(self, out_dim: int = 64, in_channels: int = 1, width: int = 32):
        super().__init__()
        self.in_channels, self.out_dim = in_channels, out_dim
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(2 * width, out_dim),
            nn.ReLU(),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        check_tensor("image", image, ("B", self.in_channels, None, None), dtype="float")
        return self.net(image)


class AudioCNN(nn.Module):
    """1-D convolutions over time on log-mel frames ``(B, T, n_mels)`` (time first, as every audio sequence in
    the course), then a mean over the valid frames.

    ``lengths`` (B,) gives each clip's valid frames; padded frames do not enter the mean.
    """

    def __init__(self, n_mels: int = 32, out_dim: int = 64, width: int = 64):
        super().__init__()
        self.n_mels, self.out_dim = n_mels, out_dim
        self.conv1 = nn.Conv1d(n_mels, width, 5, padding=2)
        self.conv2 = nn.Conv1d(width, width, 5, padding=2)
        self.proj = nn.Sequential(nn.Linear(width, out_dim), nn.ReLU())

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        check_tensor("audio", audio, ("B", "T", self.n_mels), dtype="float")
        mask = None
        if lengths is not None:
            check_tensor("lengths", lengths, (audio.shape[0],), dtype="int")
            mask = torch.arange(audio.shape[1], device=audio.device)[None] < lengths[:, None]
        audio = audio.transpose(1, 2)  # (B, n_mels, T) for Conv1d
        # zero padded frames before each convolution so that they never leak into valid ones
        keep = mask[:, None].to(audio.dtype) if mask is not None else 1.0
        h = torch.relu(self.conv1(audio * keep))
        h = torch.relu(self.conv2(h * keep)).transpose(1, 2)  # (B, T, width)
        return self.proj(masked_mean(h, mask))


class TextBagEncoder(nn.Module):
    """Mean of word embeddings over real tokens (a bag of words), then a linear layer: ids ``(B, L)``."""

    def __init__(self, vocab_size: int, out_dim: int = 64, emb_dim: int = 64):
        super().__init__()
        self.vocab_size, self.out_dim = vocab_size, out_dim
        self.emb = nn.Embedding(vocab_size, emb_dim, padding_idx=0)
        self.proj = nn.Sequential(nn.Linear(emb_dim, out_dim), nn.ReLU())

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_tensor("ids", ids, ("B", "L"), dtype="int")
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"ids must be in [0, {self.vocab_size}), got range [{ids.min()}, {ids.max()}]")
        mask = ids != 0 if mask is None else check_tensor("mask", mask, tuple(ids.shape), dtype="bool")
        return self.proj(masked_mean(self.emb(ids), mask))


class _Concat(nn.Module):
    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        return torch.cat(features, dim=-1)


class MultimodalClassifier(nn.Module):
    """``head(fusion(enc_1(x_1), ..., enc_M(x_M)))``; default fusion is concatenation.

    ``encoders`` maps modality names to encoders with an ``out_dim`` attribute. ``forward`` takes one input per
    modality, positionally in the order of ``encoders`` (a tuple input is unpacked into that encoder).
    """

    def __init__(
        self,
        encoders: Mapping[str, nn.Module],
        num_classes: int,
        fusion: nn.Module | None = None,
        fused_dim: int | None = None,
    ):
        super().__init__()
        if len(encoders) < 1:
            raise ValueError("encoders must name at least one modality")
        self.modalities = list(encoders)
        self.encoders = nn.ModuleDict(encoders)
        self.fusion = fusion if fusion is not None else _Concat()
        if fused_dim is None:
            if fusion is not None and hasattr(fusion, "out_dim"):
                fused_dim = fusion.out_dim
            else:
                fused_dim = sum(e.out_dim for e in encoders.values())
        self.head = nn.Linear(fused_dim, num_classes)

    def features(self, *inputs) -> list[torch.Tensor]:
        if len(inputs) != len(self.modalities):
            raise ValueError(
                f"expected {len(self.modalities)} inputs ({', '.join(self.modalities)}), got {len(inputs)}"
            )
        return [
            self.encoders[m](*x) if isinstance(x, (tuple, list)) else self.encoders[m](x)
            for m, x in zip(self.modalities, inputs)
        ]

    def forward(self, *inputs) -> torch.Tensor:
        return self.head(self.fusion(*self.features(*inputs)))
