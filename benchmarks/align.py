"""Alignment speed: the batched wavefront DTW of ``mmlab.align`` against plain loops, and lesson 1's widget.

Rows, all on the same padded batch of cost matrices (lengths drawn in [length/2, length], like episodes):

* ``python loops`` — the textbook double loop over the table ``R`` (NumPy), one matrix at a time, value only;
* ``wavefront, one at a time`` — ``mmlab.align.dtw`` called on each matrix alone (value and path);
* ``wavefront, batched`` — one ``mmlab.align.dtw`` call on the whole padded batch with masks (value and path);
* ``widget frame`` — one frame of lesson 1's widget (``mmlab.lessons.alignment.alignment_figure`` with an
  untrained space, built and drawn to pixels).

Every row is checked against the loops first (same DTW values), then timed side by side with
``mmlab.deploy.timing.compare_latency`` (one warm-up call each, then interleaved rounds, medians) so that a busy
machine slows all rows alike; the speed-up column is ``paired_speedup`` (the median over rounds of the per-round
ratio). With one torch thread on the CPU the clock is the process's CPU time; otherwise wall time (with a CUDA
synchronize around each call on a GPU).

    OMP_NUM_THREADS=1 python benchmarks/align.py            # writes its section of benchmarks/RESULTS.md
    OMP_NUM_THREADS=1 python benchmarks/align.py --tiny     # smoke run on tiny sizes; prints only
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, write_section  # noqa: E402

from mmlab import get_device  # noqa: E402
from mmlab.align import AlignmentSpace, AttentionAligner, dtw  # noqa: E402
from mmlab.deploy.timing import compare_latency, paired_speedup  # noqa: E402
from mmlab.lessons.alignment import alignment_figure  # noqa: E402


def dtw_loops(c: np.ndarray) -> float:
    """``R[i, j] = C[i, j] + min(R[i−1, j−1], R[i−1, j], R[i, j−1])`` with two Python loops; returns ``R[N, M]``."""
    n, m = c.shape
    r = np.full((n + 1, m + 1), np.inf)
    r[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            r[i, j] = c[i - 1, j - 1] + min(r[i - 1, j - 1], r[i - 1, j], r[i, j - 1])
    return float(r[n, m])


def costs(batch: int, length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A padded batch of random cost matrices (B, L, L) and its row/column masks (True on a prefix)."""
    g = torch.Generator().manual_seed(seed)
    c = torch.rand(batch, length, length, generator=g)
    lo = max(1, length // 2)
    rows = torch.randint(lo, length + 1, (batch,), generator=g)
    cols = torch.randint(lo, length + 1, (batch,), generator=g)
    ar = torch.arange(length)
    return c, ar[None] < rows[:, None], ar[None] < cols[:, None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=40, help="cost matrices per batch (the lesson: 40 episodes)")
    parser.add_argument("--length", type=int, default=80, help="longest side of a matrix, in frames")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: mmlab.get_device())")
    parser.add_argument("--tiny", action="store_true", help="smoke run: 4 matrices of 12 frames, 2 rounds, no write")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    if args.tiny:
        args.batch, args.length, args.rounds, args.no_write = 4, 12, 2, True
    device = get_device(args.device)
    c, rm, cm = costs(args.batch, args.length)
    lengths = list(zip(rm.sum(1).tolist(), cm.sum(1).tolist()))
    crops = [c[b, :n, :m] for b, (n, m) in enumerate(lengths)]
    c_dev, rm_dev, cm_dev = c.to(device), rm.to(device), cm.to(device)
    crops_dev = [x.to(device) for x in crops]

    # correctness first: every implementation gives the loops' values
    ref = np.array([dtw_loops(x.numpy()) for x in crops])
    batched, _ = dtw(c_dev, rm_dev, cm_dev)
    one = torch.stack([dtw(x)[0] for x in crops_dev])
    assert np.allclose(batched.cpu().numpy(), ref, atol=1e-3) and np.allclose(one.cpu().numpy(), ref, atol=1e-3)

    torch.manual_seed(0)
    space, aligner = AlignmentSpace().to(device).eval(), AttentionAligner().to(device).eval()

    def widget() -> None:
        FigureCanvasAgg(alignment_figure(space, aligner, warp=0.6, noise=0.2, episode=1)).draw()

    fns = {
        "python loops": lambda: [dtw_loops(x.numpy()) for x in crops],
        "wavefront, one at a time": lambda: [dtw(x) for x in crops_dev],
        "wavefront, batched": lambda: dtw(c_dev, rm_dev, cm_dev),
        "widget frame": widget,
    }
    if device.type == "cuda":
        clock, clock_note = "wall", "wall time, synchronized around each call"
    elif torch.get_num_threads() == 1:
        clock, clock_note = "cpu", "the process's CPU time (one torch thread)"
    else:
        clock, clock_note = "wall", "wall time (several threads)"
    t0 = time.perf_counter()
    timings = compare_latency(fns, warmup=1, repeats=args.rounds, device=device, clock=clock)
    lines = [
        f"**DTW on {args.batch} cost matrices of up to {args.length}×{args.length} frames** (value and path; loops: "
        f"value only; median of {args.rounds} interleaved rounds; {clock_note})",
        "",
        "| implementation | per call (ms, median) | interquartile range (ms) | batched wavefront is × faster |",
        "|---|---:|---:|---:|",
    ]
    for name, t in timings.items():
        speedup = "—" if name == "widget frame" else f"{paired_speedup(timings, name, 'wavefront, batched'):.1f}"
        lines.append(f"| {name} | {1e3 * t.median:.1f} | {1e3 * t.iqr:.1f} | {speedup} |")
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        body = f"""## Alignment: batched wavefront DTW against loops; the lesson-1 widget

Command: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/align.py` ({machine()}; device {device}). Total wall time
{time.perf_counter() - t0:.0f} s. The widget row is one frame of the lesson's widget, drawn, not a DTW batch.

{table}
"""
        write_section("align", body)


if __name__ == "__main__":
    main()
