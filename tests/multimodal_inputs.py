"""Test inputs shared by the deployment tests: one batch of image, audio-feature and text-feature tensors."""

from __future__ import annotations

import torch

DIMS = [64, 40, 12]  # flattened image, audio features, text features
MODALITIES = ("image", "audio", "text")


def mm_inputs(b: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``b`` items: images (b, 1, 8, 8) in [0, 1), audio features (b, 40), text features (b, 12); fixed seed."""
    g = torch.Generator().manual_seed(0)
    return torch.rand(b, 1, 8, 8, generator=g), torch.randn(b, 40, generator=g), torch.rand(b, 12, generator=g)


def multimodal_mlp():
    """The deployment lesson's model, small, seeded, in eval mode."""
    from mmlab.lessons.deployment import MultimodalMLP

    torch.manual_seed(0)
    return MultimodalMLP(DIMS, num_classes=10, width=32, depth=2, embed_dim=8, modalities=MODALITIES).eval()
