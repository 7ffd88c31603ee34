"""Shared by every benchmark: the machine line with a calibration workload, and writing RESULTS.md sections.

Machines of the same kind differ in speed from day to day (the same lesson took 46 s one day and 88 s another).
Every benchmark therefore also times :func:`calibrate`, a fixed workload like the course's own (small MLP
training steps and matrix products in torch, on the benchmark's threads), and reports it beside its results,
so that a slower course can be told from a slower machine: divide a time by the calibration time.
"""

from __future__ import annotations

import platform
import re
import statistics
import time
from datetime import date
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
# The calibration workload's median time on the machine the course's time budgets are meant for (2 cores, idle,
# OMP_NUM_THREADS=2; 5 processes × 5 runs on 2026-12-03: 0.584–0.597 s); "reference seconds" = seconds ×
# REFERENCE_CALIBRATION_S / this run's calibration. Measured on a loaded machine it reads 0.8–1.0 s.
REFERENCE_CALIBRATION_S = 0.59


def _workload() -> float:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(256, 64, generator=gen), torch.randint(0, 10, (256,), generator=gen)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
            torch.nn.Linear(256, 10),
        )  # fmt: skip
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    a = torch.randn(384, 384, generator=gen)
    t0 = time.perf_counter()
    for _ in range(300):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for _ in range(60):
        a = torch.tanh(a @ a / 384)
    return time.perf_counter() - t0


_SAMPLES: list[float] = []  # every timing of the workload in this process


def sample_calibration(repeats: int = 2) -> None:
    """Time the workload ``repeats`` more times (after one warm-up run the first time): a long benchmark calls
    this between its parts, so that the calibration reflects the machine over the whole run, not one moment."""
    if not _SAMPLES:
        _workload()
    _SAMPLES.extend(_workload() for _ in range(repeats))


def calibrate() -> float:
    """Median wall time (s) of a fixed workload — 300 AdamW steps of a 64→256→256→10 MLP on a batch of 256,
    then 60 products of 384×384 matrices — on this process's torch threads, over every sample taken so far
    (at least 5)."""
    if len(_SAMPLES) < 5:
        sample_calibration(5 - len(_SAMPLES))
    return statistics.median(_SAMPLES)


def reference_seconds(seconds: float) -> float:
    """``seconds`` expressed on the reference machine: ``seconds × REFERENCE_CALIBRATION_S / calibrate()``."""
    return seconds * REFERENCE_CALIBRATION_S / calibrate()


def machine() -> str:
    """One line describing where a benchmark ran, with the calibration workload's time on it."""
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (
        f"{date.today()} · {platform.processor() or platform.machine()} · {torch.get_num_threads()} threads · "
        f"torch {torch.__version__} · {dev} · calibration workload {calibrate():.3f} s "
        f"(reference machine {REFERENCE_CALIBRATION_S:.3f} s)"
    )


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = (
        RESULTS.read_text()
        if RESULTS.exists()
        else "# Benchmark results\n\nEach section names the command that produced it.\n"
    )
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)
