"""Device, seeding and mixed precision: the three things every lesson sets up first."""

from __future__ import annotations

import os
import random
from contextlib import nullcontext

import numpy as np
import torch

__all__ = ["get_device", "seed_everything", "autocast", "amp_dtype"]


def get_device(prefer: str | None = None) -> torch.device:
    """Pick the best available device: CUDA, then Apple MPS, then CPU.

    ``prefer`` (or the environment variable ``MMLAB_DEVICE``) forces one, e.g. ``"cpu"``.
    """
    choice = prefer or os.environ.get("MMLAB_DEVICE")
    if choice:
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices) and return a fresh ``torch.Generator`` seeded the same.

    Use the returned generator for data shuffling so that it does not depend on how many random numbers a
    model's initialisation consumed.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def amp_dtype(device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype ``mmlab`` uses on ``device``: bfloat16/float16 on CUDA, none (fp32) elsewhere.

    fp16 autocast on CPU is slow or unsupported for many ops, so the course never enables it there.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device | str, enabled: bool = True):
    """An autocast context for ``device`` when AMP is enabled and supported there, else a no-op context."""
    device = torch.device(device)
    dtype = amp_dtype(device)
    if not enabled or dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
