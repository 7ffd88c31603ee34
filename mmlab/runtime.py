"""Device, seeding, mixed precision and train/eval mode: what every lesson and module sets up first."""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import numpy as np
import torch

MIN_TORCH = "2.6"  # the oldest torch the course's code supports; pyproject.toml's floor (a test keeps them equal)

__all__ = [
    "require_torch",
    "MIN_TORCH",
    "eval_mode",
    "get_device",
    "resolve_device",
    "seed_everything",
    "seeded",
    "autocast",
    "amp_dtype",
]


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


def _version_tuple(version: str) -> tuple[int, int]:
    major, minor = (re.findall(r"\d+", version) + ["0", "0"])[:2]
    return int(major), int(minor)


def require_torch(feature: str, minimum: str = MIN_TORCH) -> None:
    """Raise a clear ``RuntimeError`` when the installed torch is older than ``minimum`` (``"2.6"``), naming the
    ``feature`` that needs it (e.g. the dynamo ONNX exporter with ``external_data``, which arrived in 2.6)."""
    if _version_tuple(torch.__version__) < _version_tuple(minimum):
        raise RuntimeError(f"{feature} needs torch >= {minimum}, found {torch.__version__}; upgrade torch")


def resolve_device(device: torch.device | str | None = None) -> torch.device:
    """``device`` as a ``torch.device``, or :func:`get_device`'s choice when it is ``None``: the one place where
    ``mmlab`` falls back to a default device."""
    if device is None:
        return get_device()
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"device must be a torch.device, a device string such as 'cpu' or None, got {device!r}"
        ) from err


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


@contextmanager
def seeded(seed: int) -> Iterator[torch.Generator]:
    """Run a block with Python, NumPy and torch (CPU and CUDA) seeded with ``seed``, then put every global random
    state back as it was: library code uses this to make a model's initialisation reproducible without
    reseeding the caller's random state. Yields a fresh ``torch.Generator`` seeded the same (for shuffling).

    Inside the block the random streams equal those after :func:`seed_everything` ``(seed)``.
    """
    seed = _check_seed(seed)
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield seed_everything(seed)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices) and return a fresh ``torch.Generator`` seeded the same.

    Use the returned generator for data shuffling so that it does not depend on how many random numbers a
    model's initialisation consumed.
    """
    seed = _check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@contextmanager
def eval_mode(*modules: torch.nn.Module | None) -> Iterator[None]:
    """Put ``modules`` in eval mode for the block and restore each one's previous mode afterwards, also when
    the block raises. ``None`` entries are skipped. Gradients are not switched off: combine with
    ``torch.no_grad()`` or ``torch.inference_mode()`` as needed."""
    mods = [m for m in modules if m is not None]
    for i, m in enumerate(mods):
        if not isinstance(m, torch.nn.Module):
            raise TypeError(f"eval_mode takes nn.Module arguments, got {type(m).__name__} at position {i}")
    # every submodule's flag, since a submodule may have been left in another mode than its parent on purpose
    saved = [(sub, sub.training) for m in mods for sub in m.modules()]
    try:
        for m in mods:
            m.eval()
        yield
    finally:
        for sub, was in saved:
            sub.training = was


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
