"""Input validation shared by every `mmlab` module.

Bad input gets a clear error that names the argument and the expected shape; nothing broadcasts silently.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["check_tensor", "check_same_batch", "check_fraction", "check_choice"]


def _fmt_shape(shape: Sequence[int | str | None]) -> str:
    return "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"


def check_tensor(
    name: str,
    x: object,
    shape: Sequence[int | str | None] | None = None,
    *,
    ndim: int | None = None,
    dtype: torch.dtype | str | None = None,
    finite: bool = True,
    sizes: dict[str, int] | None = None,
) -> torch.Tensor:
    """Check that ``x`` is a tensor of the expected shape and return it.

    ``shape`` entries are an int (that exact size), ``None`` (any size) or a string (a named size: the first
    use binds it in ``sizes`` and later uses must agree). ``dtype`` may be a torch dtype, ``"float"``,
    ``"int"`` or ``"bool"``. ``finite`` rejects NaN and inf in floating tensors.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if shape is not None:
        ndim = len(shape)
    if ndim is not None and x.dim() != ndim:
        want = _fmt_shape(shape) if shape is not None else f"{ndim} dimensions"
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    if shape is not None:
        sizes = {} if sizes is None else sizes
        for i, (want, got) in enumerate(zip(shape, x.shape)):
            if want is None:
                continue
            if isinstance(want, str):
                bound = sizes.setdefault(want, got)
                if bound != got:
                    raise ValueError(
                        f"{name} must have shape {_fmt_shape(shape)} with {want}={bound}, got {tuple(x.shape)}"
                    )
            elif want != got:
                raise ValueError(f"{name} must have shape {_fmt_shape(shape)}, got {tuple(x.shape)} (dim {i})")
    if dtype is not None:
        ok = (
            {
                "float": x.is_floating_point(),
                "int": not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool,
                "bool": x.dtype == torch.bool,
            }.get(dtype, x.dtype == dtype)
            if isinstance(dtype, str)
            else x.dtype == dtype
        )
        if not ok:
            raise TypeError(f"{name} must have dtype {dtype}, got {x.dtype}")
    if finite and x.is_floating_point() and x.numel() and not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


def check_same_batch(**tensors: torch.Tensor) -> int:
    """Check that all tensors share their first (batch) dimension and return it."""
    sizes = {k: v.shape[0] for k, v in tensors.items()}
    if len(set(sizes.values())) > 1:
        detail = ", ".join(f"{k}={n}" for k, n in sizes.items())
        raise ValueError(f"batch sizes differ: {detail}")
    return next(iter(sizes.values()))


def check_fraction(name: str, value: float, *, closed_right: bool = True) -> float:
    """Check ``0 <= value <= 1`` (or ``< 1`` when ``closed_right`` is False)."""
    v = float(value)
    ok = 0.0 <= v <= 1.0 if closed_right else 0.0 <= v < 1.0
    if not ok:
        rng = "[0, 1]" if closed_right else "[0, 1)"
        raise ValueError(f"{name} must be in {rng}, got {value}")
    return v


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value
