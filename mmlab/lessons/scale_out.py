"""Lesson 8's drivers: launching ``torchrun`` from a notebook, the 2-rank equivalence check, sweeps, the widget.

The methods live in :mod:`mmlab.distributed` (process groups, DDP, sharding, gathered CLIP losses, checkpoints)
and :mod:`mmlab.train_distributed` (the entry point). This module holds what the lesson needs around them:

- :func:`launch` starts ``torchrun`` as a subprocess in its own process group, shows rank 0's ``PROGRESS``
  lines as a progress bar, and kills the whole group (launcher and ranks) if the cell is interrupted, raises or
  times out — no rank is left behind;
- :func:`equivalence_check` (run on every rank by ``python -m mmlab.lessons.scale_out OUT`` under torchrun)
  records DDP's and each gathered CLIP loss's gradients on 2 ranks; :func:`single_process_reference` computes
  the same in one process on the concatenated batch;
- :func:`sweep` trains with :func:`mmlab.train_distributed.train_simulated` over world sizes, gathering modes and
  seeds; :func:`scale_out_figure` is the widget's figure (negatives per sample and the val Recall@1 curve).
"""

from __future__ import annotations

import json
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn
from tqdm.auto import tqdm

from ..contrastive import DualEncoder, clip_loss
from ..distributed import GATHER_MODES
from ..runtime import eval_mode
from ..train_distributed import PROGRESS, AVDigitsPairs, Config, load_pairs, recall_at_1, train_simulated
from ..viz import new_figure

__all__ = [
    "launch",
    "group_alive",
    "equivalence_data",
    "ce_model",
    "Towers",
    "equivalence_check",
    "single_process_reference",
    "batch_clip_loss",
    "sweep",
    "negatives_per_sample",
    "scale_out_figure",
]


# ------------------------------------------------------------------------------------------------------- launching
def group_alive(pgid: int) -> bool:
    """True while any process of process group ``pgid`` exists (signal 0 probes without sending anything)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """SIGTERM to the whole group (torchrun forwards it to the ranks), then SIGKILL whatever is left."""
    if proc.poll() is None or group_alive(proc.pid):
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace_s
        while group_alive(proc.pid) and time.monotonic() < deadline:
            proc.poll()
            time.sleep(0.05)
        if group_alive(proc.pid):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    proc.wait()


def launch(
    config: Config | Mapping[str, Any],
    nproc: int = 2,
    *,
    module: str = "mmlab.train_distributed",
    args: Sequence[str] = (),
    timeout_s: float = 300.0,
    threads_per_rank: int = 1,
    progress: bool = True,
    on_progress: Callable[[dict], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    log: list[str] | None = None,
) -> dict[str, Any] | None:
    """Run ``torchrun --standalone --nproc-per-node nproc -m module --config JSON`` and return ``OUT/metrics.json``.

    The launcher runs in a new session (its own process group, ``start_new_session=True``), so that one
    ``killpg`` reaches it and every rank it started. Rank 0's ``PROGRESS {...}`` lines drive a progress bar and
    ``on_progress(row)``; all output lines are appended to ``log`` when given. If the cell is interrupted
    (``KeyboardInterrupt``), anything raises (also inside ``on_progress``) or ``timeout_s`` passes, the group is
    terminated before the exception propagates; ``on_start(pgid)`` receives the group's id (the launcher's
    pid). A failed run raises ``RuntimeError`` with the output's tail. ``config`` is a
    :class:`~mmlab.train_distributed.Config` or a mapping of its keys; with a ``module``
    other than the entry point, pass its arguments in ``args`` (then no metrics file is read: returns ``None``).
    Each rank gets ``OMP_NUM_THREADS=threads_per_rank`` (two torch processes spinning on 2 cores slow each other
    down many times over).
    """
    if not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be an int >= 1, got {nproc!r}")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    if not hasattr(os, "killpg"):
        raise RuntimeError("launch needs POSIX process groups (Linux, macOS, Colab)")
    cfg = config if isinstance(config, Config) else Config(**dict(config))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", module]
    is_entry = module == "mmlab.train_distributed"
    cmd += ["--config", json.dumps(cfg.__dict__)] if is_entry else list(args)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads_per_rank), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )
    lines: queue.Queue[str | None] = queue.Queue()
    if on_start is not None:
        try:
            on_start(proc.pid)
        except BaseException:
            _kill_group(proc)
            raise

    def pump() -> None:  # a thread reads the pipe, so the main loop can time out and react to interrupts
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    tail: list[str] = []
    bar = tqdm(total=cfg.epochs, desc=f"torchrun ×{nproc} ({cfg.gather})", disable=not progress or not is_entry)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"torchrun did not finish within {timeout_s:.0f} s") from None
                continue
            if line is None:
                break
            tail = (tail + [line])[-200:]
            if log is not None:
                log.append(line)
            if PROGRESS in line:  # (a progress bar on stderr may precede it on the same line)
                row = json.loads(line.split(PROGRESS, 1)[1])
                bar.update(row["epoch"] - bar.n)
                bar.set_postfix(loss=f"{row['loss']:.3f}", val_R1=f"{row['val_R@1']:.3f}")
                if on_progress is not None:
                    on_progress(row)
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        bar.close()
        if proc.poll() is None:
            _kill_group(proc)
    if rc != 0:
        raise RuntimeError(f"torchrun exited with {rc}; last output:\n" + "\n".join(tail))
    if not is_entry:
        return None
    return json.loads((Path(cfg.out) / "metrics.json").read_text())


# ---------------------------------------------------------------------------------------------------- equivalences
WORLD, LOCAL_B, DIM = 2, 4, 8


def equivalence_data(world: int = WORLD, local_batch: int = LOCAL_B):
    """Fixed data for the equivalence check: classification inputs ``x`` (N, 6) and labels ``y`` (N,), and image /
    text features ``xa`` (N, 6), ``xb`` (N, 5), ``N = world · local_batch``; rank ``r`` owns rows ``rB … (r+1)B−1``."""
    g = torch.Generator().manual_seed(2)
    n = world * local_batch
    return (
        torch.randn(n, 6, generator=g),
        torch.randint(0, 5, (n,), generator=g),
        torch.randn(n, 6, generator=g),
        torch.randn(n, 5, generator=g),
    )


def ce_model() -> nn.Module:
    """A small classifier (6 → 16 → 5), the same on every rank."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 5))


class Towers(nn.Module):
    """The smallest CLIP model: two linear towers into ``DIM`` dimensions and a learned logit scale."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.a, self.b = nn.Linear(6, DIM), nn.Linear(5, DIM)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, xa: torch.Tensor, xb: torch.Tensor):
        return self.a(xa), self.b(xb), self.logit_scale


def _grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.grad.detach().clone() for k, p in model.named_parameters()}


def equivalence_check(out: str | Path) -> None:
    """Run on every rank under torchrun: one DDP step of :func:`ce_model` on this rank's shard, the gradients of
    :class:`Towers` under each gathering mode, and the FSDP-sharded :func:`ce_model`'s step; rank 0 writes
    ``{"ce": grads, "clip_<mode>": (loss, grads), "fsdp": {"grads", "values_per_rank"}}`` to ``OUT/ranks.pt``
    (the loss averaged over ranks; FSDP's gradients gathered whole)."""
    import torch.distributed as dist

    from ..distributed import (
        cleanup,
        distributed_clip_loss,
        full_tensors,
        init_distributed,
        local_parameter_count,
        reduce_metrics,
        wrap_ddp,
        wrap_fsdp,
    )

    env = init_distributed(timeout_s=30)
    try:
        x, y, xa, xb = equivalence_data(env.world_size)
        mine = slice(env.rank * LOCAL_B, (env.rank + 1) * LOCAL_B)
        model = wrap_ddp(ce_model(), env)
        F.cross_entropy(model(x[mine]), y[mine]).backward()
        res: dict[str, Any] = {"world_size": env.world_size, "ce": _grads(model.module)}
        towers = wrap_ddp(Towers(), env)
        for mode in GATHER_MODES:
            towers.zero_grad()
            za, zb, t = towers(xa[mine], xb[mine])
            loss = distributed_clip_loss(za, zb, t, mode)
            loss.backward()
            res[f"clip_{mode}"] = (reduce_metrics({"loss": loss.item()})["loss"], _grads(towers.module))
        # FSDP: the same step with parameters sharded; gradients come back as shards, gathered whole to compare
        sharded = wrap_fsdp(ce_model(), env)
        F.cross_entropy(sharded(x[mine]), y[mine]).backward()
        counts: list[Any] = [None] * env.world_size
        dist.all_gather_object(counts, local_parameter_count(sharded))
        grads = full_tensors({k: p.grad for k, p in sharded.named_parameters()})
        res["fsdp"] = {"grads": {k: g.detach().clone() for k, g in grads.items()}, "values_per_rank": counts}
        if env.is_main:
            Path(out).mkdir(parents=True, exist_ok=True)
            torch.save(res, Path(out) / "ranks.pt")
    finally:
        cleanup()


def single_process_reference(world: int = WORLD) -> dict[str, Any]:
    """The same quantities as :func:`equivalence_check` in one process on the whole batch: ``"ce"`` gradients,
    ``"clip"`` (loss, gradients) and ``"clip_per_shard"``, the mean of the CLIP losses of each shard alone."""
    x, y, xa, xb = equivalence_data(world)
    model = ce_model()
    F.cross_entropy(model(x), y).backward()
    towers = Towers()
    za, zb, t = towers(xa, xb)
    loss = clip_loss(za, zb, t)
    loss.backward()
    with torch.no_grad():
        shards = [slice(r * LOCAL_B, (r + 1) * LOCAL_B) for r in range(world)]
        per_shard = float(np.mean([clip_loss(za[s], zb[s], t).item() for s in shards]))
    return {"ce": _grads(model), "clip": (loss.item(), _grads(towers)), "clip_per_shard": per_shard}


# ---------------------------------------------------------------------------------------------------------- sweeps
def negatives_per_sample(global_batch: int, world_size: int, gathered: bool) -> int:
    """Candidates a sample is contrasted with, besides its own pair: ``B_global − 1`` gathered, else
    ``B_global / W − 1``."""
    if world_size < 1 or global_batch % world_size:
        raise ValueError(f"world_size must be >= 1 and divide global_batch {global_batch}, got {world_size}")
    return (global_batch if gathered else global_batch // world_size) - 1


@torch.no_grad()
def batch_clip_loss(model: DualEncoder, data: AVDigitsPairs, batch: int) -> float:
    """The CLIP loss at batch size ``batch`` (the global batch: the objective a gathered run minimises) over
    ``data`` in its stored order, incomplete last batch dropped, at the model's own temperature."""
    n = len(data.images) // batch
    if n < 1:
        raise ValueError(f"batch {batch} exceeds the {len(data.images)} pairs")
    with eval_mode(model):
        losses = [
            clip_loss(
                *model(data.images[i * batch : (i + 1) * batch], data.tokens[i * batch : (i + 1) * batch]),
                model.logit_scale,
            ).item()
            for i in range(n)
        ]
    return float(np.mean(losses))


def sweep(
    cfg: Config,
    world_sizes: Sequence[int],
    seeds: Sequence[int],
    gather: str = "none",
    *,
    progress: bool = True,
) -> dict[int, list[list[dict]]]:
    """``{W: [rows of seed s for s in seeds]}``: :func:`~mmlab.train_distributed.train_simulated` runs (one process
    standing in for ``W`` ranks exactly) with ``gather`` and ``cfg``'s other settings; each run's rows are
    per epoch, with ``val_R@1``, ``loss`` and, in the last row, ``test_R@1`` and ``val_clip_loss``
    (:func:`batch_clip_loss` at the global batch)."""
    if gather not in GATHER_MODES:
        raise ValueError(f"gather must be one of {list(GATHER_MODES)}, got {gather!r}")
    if not world_sizes or not seeds:
        raise ValueError("world_sizes and seeds must be non-empty")
    pairs, tok = load_pairs()
    out: dict[int, list[list[dict]]] = {}
    bar = tqdm(total=len(world_sizes) * len(seeds), desc=f"simulated ranks ({gather})", disable=not progress)
    for w in world_sizes:
        out[w] = []
        for s in seeds:
            model, rows = train_simulated(replace(cfg, seed=s, gather=gather), w, pairs=pairs, vocab_size=len(tok))
            rows[-1]["test_R@1"] = recall_at_1(model, pairs["test"])
            rows[-1]["val_clip_loss"] = batch_clip_loss(model, pairs["val"], cfg.global_batch)
            out[w].append(rows)
            bar.update()
    bar.close()
    return out


def scale_out_figure(
    world_size: int = 2,
    gathered: bool = False,
    *,
    curves: Mapping[tuple[int, bool], Sequence[Sequence[float]]],
    global_batch: int,
) -> Figure:
    """The lesson's widget: for ``world_size`` ranks with or without gathering, left the negatives per sample
    against ``W`` (both strategies, the chosen point marked), right the val Recall@1 per epoch of that setting
    (mean ± std over seeds) with the gathered (= single-process) curve for reference. ``curves[(W, gathered)]``
    holds one list of per-epoch val R@1 per seed; a gathered run is the same for every ``W``, so
    ``curves[(1, True)]`` stands for all of them when ``(W, True)`` is missing."""
    key = (world_size, gathered) if (world_size, gathered) in curves else (1, True) if gathered else None
    if key is None or key not in curves:
        raise ValueError(f"no curves for world_size={world_size}, gathered={gathered}; have {sorted(curves)}")
    ws = sorted({w for w, _ in curves} | {world_size})
    fig, (ax1, ax2) = new_figure(1, 2, size=(10, 3.6))
    for g, style in ((True, "o-"), (False, "s--")):
        negs = [negatives_per_sample(global_batch, w, g) for w in ws]
        ax1.plot(ws, negs, style, label="gathered" if g else "per rank")
    ax1.plot([world_size], [negatives_per_sample(global_batch, world_size, gathered)], "r*", ms=16, label="chosen")
    ax1.set(xscale="log", yscale="log", xlabel="world size W (processes)", ylabel="negatives per sample")
    ax1.set_xticks(ws, [str(w) for w in ws])
    ax1.set_title(f"global batch {global_batch}")
    ax1.legend(fontsize=8)

    def band(ax, runs, label, style):
        arr = np.asarray(runs, dtype=float)
        ep = np.arange(1, arr.shape[1] + 1)
        m = arr.mean(0)
        s = arr.std(0, ddof=1) if len(arr) > 1 else np.zeros_like(m)
        ax.plot(ep, m, style, label=label)
        ax.fill_between(ep, m - s, m + s, alpha=0.2)

    band(ax2, curves[(1, True)], "gathered (any W) = 1 process", "k-")
    if not gathered:
        band(ax2, curves[key], f"per-rank loss, W = {world_size}", "r--")
    n = len(curves[key])
    ax2.set(xlabel="epoch", ylabel="val Recall@1 (image→text)", title=f"mean ± std over {n} seeds")
    ax2.legend(fontsize=8, loc="lower right")
    return fig


if __name__ == "__main__":  # torchrun -m mmlab.lessons.scale_out OUT: the equivalence check on every rank
    if len(sys.argv) != 2:
        sys.exit("usage: torchrun --nproc-per-node 2 -m mmlab.lessons.scale_out OUT_DIR")
    equivalence_check(sys.argv[1])
