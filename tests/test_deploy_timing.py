"""Tests of mmlab.deploy.timing, on a fake clock: what is timed, how often, in which order, and the arithmetic of
medians and paired speed-ups. No assertion here depends on how fast the machine is (speed lives in benchmarks/)."""

from __future__ import annotations

import pytest
import torch

import mmlab.deploy.timing as timing
from mmlab.deploy import Timing, compare_latency, measure_latency, paired_speedup, sync


class FakeClock:
    """Stands in for the ``time`` module inside mmlab.deploy.timing: two clocks that move only when told."""

    def __init__(self):
        self.wall = 0.0
        self.cpu = 0.0

    def perf_counter(self) -> float:
        return self.wall

    def process_time(self) -> float:
        return self.cpu

    def spend(self, wall: float, cpu: float | None = None):
        """A function that advances the wall clock by ``wall`` and the CPU clock by ``cpu`` (default: the same)."""

        def fn():
            self.wall += wall
            self.cpu += wall if cpu is None else cpu

        return fn


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(timing, "time", fake)
    return fake


def test_timing_median_iqr_and_text():
    t = Timing([0.004, 0.001, 0.003, 0.002, 0.100])
    assert t.median == 0.003
    assert t.iqr == pytest.approx(0.052 - 0.0015)  # statistics.quantiles, exclusive method
    assert Timing([0.5]).iqr == 0.0
    assert str(Timing([0.002, 0.002])) == "2.000 ms (p95 2.000, p99 2.000 ms; n=2)"


def test_percentiles_interpolate_like_numpy_and_p50_is_the_median():
    import numpy as np

    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 100, 101):
        xs = rng.exponential(size=n).tolist()
        t = Timing(xs)
        for q in (0, 10, 50, 95, 99, 100):
            assert t.percentile(q) == pytest.approx(np.percentile(xs, q)), (n, q)
        assert t.p50 == pytest.approx(t.median)
    t = Timing([float(i) for i in range(1, 101)])  # 1 … 100
    assert t.p95 == pytest.approx(95.05) and t.p99 == pytest.approx(99.01)
    for bad in (-1, 101, True, "99"):
        with pytest.raises(ValueError, match="q must be"):
            t.percentile(bad)
    with pytest.raises(ValueError, match="no samples"):
        Timing([]).percentile(50)


def test_tails_show_in_p99_not_in_the_median_and_blocks_hide_them(clock):
    calls = []

    def sometimes_slow():
        calls.append(1)
        clock.spend(0.050 if len(calls) % 50 == 0 else 0.001)()  # every 50th call takes 50× longer

    single = measure_latency(sometimes_slow, warmup=0, repeats=200, number=1)
    assert single.median == pytest.approx(0.001) and single.p95 == pytest.approx(0.001)
    assert single.p99 > 0.01  # 4 slow calls in 200: the 99th percentile sees them
    calls.clear()
    blocks = measure_latency(sometimes_slow, warmup=0, repeats=20, number=10)  # a sample = mean of 10 calls
    assert blocks.p99 < 0.01  # the slow call is averaged away inside its block


def test_compare_latency_records_each_sample_per_function(clock):
    t = compare_latency({"slow": clock.spend(0.004), "fast": clock.spend(0.0005)}, warmup=1, repeats=5)
    assert t["slow"].times == pytest.approx([0.004] * 5) and t["fast"].times == pytest.approx([0.0005] * 5)
    assert paired_speedup(t, "slow", "fast") == pytest.approx(8.0)


def test_compare_latency_rotates_the_order_and_counts_calls(clock):
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    compare_latency(fns, warmup=2, repeats=4, number=3)
    warm, timed = calls[:6], calls[6:]
    assert warm == ["a", "a", "b", "b", "c", "c"]
    rounds = [timed[i : i + 9 : 3] for i in range(0, 36, 9)]  # each round: 3 functions x 3 calls in a row
    assert rounds == [list("abc"), list("bca"), list("cab"), list("abc")]
    assert len(timed) == 4 * 3 * 3


def test_number_divides_the_sample_and_auto_fills_sample_s(clock):
    t = measure_latency(clock.spend(0.001), warmup=0, repeats=3, number=4)
    assert len(t.times) == 3 and t.median == pytest.approx(0.001)  # 4 calls per sample, mean per call
    calls = []

    def fn():
        calls.append(1)
        clock.spend(1e-4)()

    t = measure_latency(fn, warmup=1, repeats=2, number="auto", sample_s=2e-3)
    # 1 warm-up, 1 calibration call, then 2 samples of 2e-3 / 1e-4 = 20 calls each
    assert len(calls) == 1 + 1 + 2 * 20 and t.median == pytest.approx(1e-4)
    slow = measure_latency(clock.spend(1.0), warmup=0, repeats=1, number="auto")
    assert slow.median == pytest.approx(1.0)  # at least one call per sample


def test_cpu_clock_reads_process_time(clock):
    sleepy = clock.spend(0.004, cpu=0.0)  # waits without working
    busy = clock.spend(0.001, cpu=0.001)
    wall = compare_latency({"sleep": sleepy, "busy": busy}, warmup=0, repeats=3)
    cpu = compare_latency({"sleep": sleepy, "busy": busy}, warmup=0, repeats=3, clock="cpu")
    assert wall["sleep"].median > wall["busy"].median
    assert cpu["sleep"].median == 0.0 and cpu["busy"].median == pytest.approx(0.001)


def test_paired_speedup_is_the_median_of_per_round_ratios():
    t = {"base": Timing([2.0, 4.0, 9.0]), "new": Timing([1.0, 1.0, 3.0])}
    assert paired_speedup(t, "base", "new") == 3.0  # ratios 2, 4, 3; not 4 / 1 of the medians
    assert paired_speedup(t, "new", "base") == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="compare_latency"):
        paired_speedup({"a": Timing([1.0, 1.0]), "b": Timing([1.0])}, "a", "b")


def test_real_clock_smoke():
    t = measure_latency(lambda: None, warmup=1, repeats=3)
    assert isinstance(t, Timing) and len(t.times) == 3 and all(x >= 0 for x in t.times)


def test_argument_errors():
    noop = lambda: None  # noqa: E731
    with pytest.raises(ValueError, match="repeats"):
        compare_latency({"a": noop}, repeats=0)
    with pytest.raises(ValueError, match="repeats must be >= 1 and warmup >= 0"):
        compare_latency({"a": noop}, warmup=-1)
    with pytest.raises(ValueError, match="fns"):
        compare_latency({})
    with pytest.raises(ValueError, match="clock"):
        measure_latency(noop, clock="gpu")
    for bad in (0, 1.5, True, "fast"):
        with pytest.raises(ValueError, match="number"):
            measure_latency(noop, number=bad)
    with pytest.raises(ValueError, match="sample_s"):
        compare_latency({"a": noop}, sample_s=0)


def test_sync_is_a_no_op_off_cuda():
    sync(None)
    sync("cpu")
    sync(torch.device("cpu"))
