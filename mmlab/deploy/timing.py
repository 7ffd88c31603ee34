"""Timing: the course's one way to measure how long code takes, on a noisy machine.

Warm up, then time every candidate side by side in interleaved rounds (each round in a rotated order, so that a
slow phase of a shared machine hits every candidate alike and no candidate always follows the same neighbour),
keep every sample, report medians (a busy machine adds long outliers), tail percentiles (p95, p99: a server is
judged on its slowest answers too) and speed-ups as paired ratios ``median_r(t_a,r / t_b,r)`` over the rounds.
:func:`compare_latency` is the one timing loop; :func:`measure_latency` times a single function with it;
:func:`paired_speedup` turns its samples into a speed-up; :class:`Timing` holds one candidate's samples and
its percentiles; :func:`sync` waits for a CUDA device (kernels run asynchronously, so a clock read without it
measures only the launch).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..checks import check_choice

__all__ = ["Timing", "sync", "measure_latency", "compare_latency", "paired_speedup"]


@dataclass
class Timing:
    """Times of repeated calls, in seconds (one entry per sample): ``median`` (= ``p50``), tail percentiles
    ``p95``/``p99`` (:meth:`percentile`) and the interquartile range ``iqr``.

    A sample of :func:`compare_latency` with ``number > 1`` is the *mean* of ``number`` back-to-back calls, which
    hides single slow calls: time with ``number=1`` when the tails are the question. A percentile of ``n``
    samples can only resolve tails of about ``1/n``: ``p99`` needs ``n ≳ 100`` (with fewer samples it is an
    interpolation between the largest ones).
    """

    times: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0 ≤ q ≤ 100) of the samples, linearly interpolated between order statistics:
        with sorted samples ``t_(0) ≤ … ≤ t_(n-1)`` and ``h = (n − 1)·q/100``, ``t_(⌊h⌋) + (h − ⌊h⌋)·(t_(⌊h⌋+1) −
        t_(⌊h⌋))`` (Hyndman & Fan 1996, definition 7; NumPy's default). ``percentile(50)`` is the median."""
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q <= 100:
            raise ValueError(f"q must be a number in [0, 100], got {q!r}")
        xs = sorted(self.times)
        if not xs:
            raise ValueError("no samples to take a percentile of")
        h = (len(xs) - 1) * q / 100
        lo = int(h)
        if lo + 1 >= len(xs):
            return xs[-1]
        return xs[lo] + (h - lo) * (xs[lo + 1] - xs[lo])

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p95(self) -> float:
        return self.percentile(95)

    @property
    def p99(self) -> float:
        return self.percentile(99)

    @property
    def iqr(self) -> float:
        if len(self.times) < 2:
            return 0.0
        q = statistics.quantiles(self.times, n=4)
        return q[2] - q[0]

    def __str__(self) -> str:
        ms = [1e3 * v for v in (self.median, self.p95, self.p99)]
        return f"{ms[0]:.3f} ms (p95 {ms[1]:.3f}, p99 {ms[2]:.3f} ms; n={len(self.times)})"


def sync(device: torch.device | str | None) -> None:
    """Wait until every queued kernel on ``device`` has finished, when it is a CUDA device (else nothing)."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def measure_latency(
    fn: Callable[[], Any],
    *,
    warmup: int = 3,
    repeats: int = 20,
    device: torch.device | str | None = None,
    clock: str = "wall",
    number: int | str = 1,
    sample_s: float = 2e-3,
) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeats`` timed samples of ``number`` calls each.

    ``clock="wall"`` (``time.perf_counter``) measures latency as a user feels it; ``"cpu"``
    (``time.process_time``, all threads of this process) measures the work done, which other processes on a
    shared machine barely disturb (with one thread it approaches the latency on an idle core). On CUDA pass
    ``device``: the GPU is synchronised before and after each sample, since kernels run asynchronously. Report
    the median, not the mean: a busy machine adds long outliers. See :func:`compare_latency` for ``number`` and
    ``sample_s``.
    """
    return compare_latency(
        {"fn": fn}, warmup=warmup, repeats=repeats, device=device, clock=clock, number=number, sample_s=sample_s
    )["fn"]


def compare_latency(
    fns: Mapping[Any, Callable[[], Any]],
    *,
    warmup: int = 2,
    repeats: int = 15,
    device: torch.device | str | None = None,
    clock: str = "wall",
    number: int | str = 1,
    sample_s: float = 2e-3,
) -> dict[Any, Timing]:
    """Time several functions side by side, interleaved: in round ``r`` each runs ``number`` times in a row
    (one sample: their mean time, ``t = (clock after − clock before) / number``), the functions taking turns in
    an order rotated by ``r``.

    Interleaving spreads any slow phase of a shared machine over every candidate, so ratios of medians (and
    :func:`paired_speedup`) stay meaningful when absolute times drift. ``number > 1`` times fast calls with
    warm caches, as when a server runs one model over and over (the first call after another model has run
    pays for reloading its weights into the CPU caches). ``number="auto"`` chooses it per function after the
    warm-up: ``clip(sample_s / t_1, 1, 100)`` calls, ``t_1`` the time of one call, so that each sample lasts
    about ``sample_s`` seconds (fast calls are timed in blocks, slow ones once). ``clock`` is ``"wall"`` or
    ``"cpu"`` (see :func:`measure_latency`; GPU time is wall-clock time). With ``device`` a CUDA device, the
    GPU is synchronised around every sample.
    """
    if not fns:
        raise ValueError("fns must name at least one function")
    if number != "auto" and (isinstance(number, bool) or not isinstance(number, int) or number < 1):
        raise ValueError(f"number must be a positive int or 'auto', got {number!r}")
    if not sample_s > 0:
        raise ValueError(f"sample_s must be > 0, got {sample_s!r}")
    check_choice("clock", clock, ("wall", "cpu"))
    now = time.perf_counter if clock == "wall" else time.process_time
    if not isinstance(repeats, int) or repeats < 1 or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got repeats={repeats!r}, warmup={warmup!r}")
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    sync(device)
    calls: dict[Any, int] = {}
    for name in names:
        if number == "auto":
            t0 = now()
            fns[name]()
            sync(device)
            calls[name] = max(1, min(100, int(sample_s / max(now() - t0, 1e-6))))
        else:
            calls[name] = number
    times: dict[Any, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for j in range(len(names)):
            name = names[(j + r) % len(names)]
            fn, k = fns[name], calls[name]
            sync(device)
            t0 = now()
            for _ in range(k):
                fn()
            sync(device)
            times[name].append((now() - t0) / k)
    return {n: Timing(times[n]) for n in names}


def paired_speedup(timings: Mapping[Any, Timing], baseline: Any, other: Any) -> float:
    """``median_r(t_baseline,r / t_other,r)`` over the rounds of :func:`compare_latency`: how many times faster
    ``other`` is than ``baseline``. Pairing calls of the same round cancels slow drifts of a shared machine."""
    a, b = timings[baseline].times, timings[other].times
    if len(a) != len(b):
        raise ValueError(f"timings have {len(a)} and {len(b)} repeats: measure them together with compare_latency")
    return statistics.median(x / y for x, y in zip(a, b))
