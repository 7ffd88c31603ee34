"""Numbers over seeds, the way every lesson reports them: spreads with ddof = 1, paired bootstrap intervals for
the difference of two methods, per-seed sign counts, and one format for all of them.

A claim that method A beats method B rests on a paired interval whose lower bound clears a stated margin, or on
a sign count with a margin — never on two bare means (Efron & Tibshirani 1993, *An Introduction to the
Bootstrap*, ch. 13 and 16; Bouthillier et al. 2021, "Accounting for variance in machine learning benchmarks").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Spread", "spread", "sample_std", "PairedInterval", "paired_bootstrap", "sign_count", "format_spread"]


def _as_array(name: str, values: Sequence[float] | np.ndarray, *, min_size: int = 1) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one value per seed (or item), shape (n,), got shape {arr.shape}")
    if arr.size < min_size:
        raise ValueError(f"{name} needs at least {min_size} values, got {arr.size}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def sample_std(values: Sequence[float] | np.ndarray, axis: int = 0) -> np.ndarray | float:
    """Sample standard deviation ``sqrt(Σ (x - x̄)² / (n - 1))`` along ``axis`` (ddof = 1, Bessel's correction);
    NaN where there is a single value (a spread cannot be measured from one seed)."""
    arr = np.asarray(values, dtype=float)
    if arr.shape[axis] < 2:
        out = np.full(np.delete(np.array(arr.shape), axis), np.nan)
        return float(out) if out.ndim == 0 else out
    out = arr.std(axis=axis, ddof=1)
    return float(out) if np.ndim(out) == 0 else out


@dataclass(frozen=True)
class Spread:
    """Mean, sample std (ddof = 1), min, max and count of one metric over seeds."""

    mean: float
    std: float
    min: float
    max: float
    n: int

    def format(self, scale: float = 1.0, unit: str = "", digits: int = 1) -> str:
        """``"mean ± std unit (min–max, n = …)"``, values multiplied by ``scale`` (e.g. 100 for percent)."""
        f = f"{{:.{digits}f}}"
        std = "n/a" if np.isnan(self.std) else f.format(self.std * scale)
        return (
            f"{f.format(self.mean * scale)} ± {std}{unit} "
            f"({f.format(self.min * scale)}–{f.format(self.max * scale)}, n = {self.n})"
        )


def spread(values: Sequence[float] | np.ndarray) -> Spread:
    """The :class:`Spread` of per-seed values ``values`` (n,)."""
    arr = _as_array("values", values)
    return Spread(float(arr.mean()), float(sample_std(arr)), float(arr.min()), float(arr.max()), int(arr.size))


def format_spread(values: Sequence[float] | np.ndarray, scale: float = 1.0, unit: str = "", digits: int = 1) -> str:
    """``spread(values).format(scale, unit, digits)``: the one way lessons print a metric over seeds."""
    return spread(values).format(scale, unit, digits)


@dataclass(frozen=True)
class PairedInterval:
    """Mean paired difference ``a - b`` with a bootstrap confidence interval ``[low, high]``."""

    diff: float
    low: float
    high: float
    confidence: float
    n: int

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def format(self, scale: float = 1.0, unit: str = "", digits: int = 1) -> str:
        """``"+diff [low, high] unit (95% paired bootstrap CI, n = …)"``, values multiplied by ``scale``."""
        f = f"{{:+.{digits}f}}"
        return (
            f"{f.format(self.diff * scale)} [{f.format(self.low * scale)}, {f.format(self.high * scale)}]"
            f"{unit} ({100 * self.confidence:.0f}% paired bootstrap CI, n = {self.n})"
        )


def paired_bootstrap(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    seed: int = 0,
) -> PairedInterval:
    """Percentile bootstrap interval for the mean of the paired differences ``d_i = a_i - b_i``.

    ``a`` and ``b`` hold one value per unit (seed, or test item) measured for both methods on the same unit. The
    ``n`` differences are resampled with replacement ``n_boot`` times; the interval is the
    ``(1 ± confidence) / 2`` quantiles of the resampled means (Efron & Tibshirani 1993, §13.3). With few seeds
    the interval is optimistic (it cannot be wider than the differences' range): state the number of seeds.
    """
    da, db = _as_array("a", a, min_size=2), _as_array("b", b, min_size=2)
    if da.shape != db.shape:
        raise ValueError(f"a and b must be paired (same shape), got {da.shape} and {db.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 100:
        raise ValueError(f"n_boot must be >= 100, got {n_boot}")
    d = da - db
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(1)
    lo, hi = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return PairedInterval(float(d.mean()), float(lo), float(hi), confidence, int(d.size))


def sign_count(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, margin: float = 0.0) -> int:
    """Number of paired units where ``a_i - b_i > margin`` (a per-seed sign count with a stated margin)."""
    da, db = _as_array("a", a), _as_array("b", b)
    if da.shape != db.shape:
        raise ValueError(f"a and b must be paired (same shape), got {da.shape} and {db.shape}")
    return int(((da - db) > margin).sum())
