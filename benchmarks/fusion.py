"""Fusion cost: forward+backward latency and activation memory of each fusion vs width and number of modalities.

Everything is measured side by side in one run with ``mmlab.lessons.fusion.time_fusions`` (a wrapper around the
course's one timing helper, ``mmlab.deploy.compare_latency``): for each configuration every fusion is warmed up,
then timed in interleaved rounds (median of the rounds), so that a busy machine slows all of them alike; with one
torch thread on CPU the clock is the process's CPU time. Rows:

* ``concat``, ``late``, ``gated``, ``tensor`` (TFN), ``lowrank`` (LMF, rank 4) from ``mmlab.fusion``;
* ``lmf-reference``: the same LMF written the straightforward way (concatenate ones, one matmul per modality,
  elementwise product, sum over the rank), sharing ``lowrank``'s factors;
* ``article-einsum``: the article's "low-rank" recipe made runnable (project every modality to 32 dims,
  ``einsum('bi,bj,bk->bijk')``, flatten, a linear layer): the full tensor of the projections, 32^M values.

Memory is what autograd keeps for backward (``mmlab.fusion.saved_activation_bytes``); on CUDA the allocator's
peak is reported too. Configurations whose weight would exceed ``--max-params`` are skipped (and say so).

    OMP_NUM_THREADS=1 python benchmarks/fusion.py            # writes its section of benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, write_section  # noqa: E402

from mmlab import get_device  # noqa: E402
from mmlab.fusion import LowRankFusion, fusion_complexity, make_fusion, saved_activation_bytes  # noqa: E402
from mmlab.lessons.fusion import time_fusions  # noqa: E402

RANK, OUT, BATCH, ARTICLE_WIDTH = 4, 32, 64, 32


class ReferenceLMF(nn.Module):
    """LMF the straightforward way, with its own copy of a :class:`LowRankFusion`'s factors
    (``(d_m + 1, R, out)`` each, the paper's layout)."""

    def __init__(self, lmf: LowRankFusion):
        super().__init__()
        self.rank, self.out_dim = lmf.rank, lmf.out_dim
        self.factors = nn.ParameterList(nn.Parameter(f.detach().clone()) for f in lmf.factors())

    def forward(self, *zs: torch.Tensor) -> torch.Tensor:
        prod = None
        for z, w in zip(zs, self.factors):
            z1 = torch.cat([z, torch.ones(len(z), 1, device=z.device, dtype=z.dtype)], dim=-1)
            a = (z1 @ w.flatten(1)).view(len(z), self.rank, self.out_dim)
            prod = a if prod is None else prod * a
        return prod.sum(1)


class ArticleEinsum(nn.Module):
    """The article's recipe: per-modality ``Linear(d, 32)``, the einsum outer product, flatten, ``Linear``."""

    def __init__(self, dims: list[int], out_dim: int, width: int = ARTICLE_WIDTH):
        super().__init__()
        self.proj = nn.ModuleList(nn.Linear(d, width) for d in dims)
        self.out = nn.Linear(width ** len(dims), out_dim)
        letters = "ijklmnop"[: len(dims)]
        self.spec = ",".join(f"b{c}" for c in letters) + f"->b{letters}"

    def forward(self, *zs: torch.Tensor) -> torch.Tensor:
        t = torch.einsum(self.spec, *[p(z) for p, z in zip(self.proj, zs)])
        return self.out(t.flatten(1))


def build(name: str, dims: list[int], shared: dict) -> nn.Module:
    if name == "lmf-reference":
        return ReferenceLMF(shared["lowrank"])
    if name == "article-einsum":
        return ArticleEinsum(dims, OUT)
    module = make_fusion(name, dims, OUT, rank=RANK)
    shared[name] = module
    return module


def n_params(name: str, dims: list[int]) -> int:
    if name == "article-einsum":
        return sum(d * ARTICLE_WIDTH + ARTICLE_WIDTH for d in dims) + ARTICLE_WIDTH ** len(dims) * OUT + OUT
    kind = "lowrank" if name == "lmf-reference" else name
    return int(fusion_complexity(kind, dims, OUT, rank=RANK)["params"])


def measure(dims: list[int], names: list[str], device: torch.device, rounds: int, max_params: int) -> list[dict]:
    torch.manual_seed(0)
    zs = [torch.randn(BATCH, d, device=device).relu().requires_grad_() for d in dims]
    shared: dict = {}
    rows, modules = [], {}
    for name in names:
        p = n_params(name, dims)
        rows.append({"name": name, "params": p, "skipped": p > max_params})
        if not rows[-1]["skipped"]:
            modules[name] = build(name, dims, shared).to(device)
    seconds = time_fusions(modules, *zs, rounds=rounds, sample_s=5e-3)
    for row in rows:
        if row["skipped"]:
            continue
        module = modules[row["name"]]
        row["ms"] = 1e3 * seconds[row["name"]]
        row["saved"] = saved_activation_bytes(module, *zs)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            module(*zs).square().mean().backward()
            row["peak"] = torch.cuda.max_memory_allocated() - base
    return rows


def lmf_vs_reference(dims: list[int], device: torch.device, rounds: int) -> float:
    """Time of the reference LMF / time of ``mmlab``'s, same factors, timed side by side (> 1: mmlab faster)."""
    torch.manual_seed(0)
    zs = [torch.randn(BATCH, d, device=device).relu().requires_grad_() for d in dims]
    lmf = LowRankFusion(dims, OUT, RANK).to(device)
    t = time_fusions({"mmlab": lmf, "reference": ReferenceLMF(lmf).to(device)}, *zs, rounds=rounds, sample_s=5e-3)
    return t["reference"] / t["mmlab"]


def fmt_bytes(b: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if b < 1024 or unit == "GB":
            return f"{b:,.0f} {unit}" if unit == "B" else f"{b:,.1f} {unit}"
        b /= 1024
    return ""


def table(title: str, configs: list[tuple[str, list[int]]], names, device, rounds, max_params) -> tuple[str, list]:
    lines = [
        f"**{title}** (batch {BATCH}, out_dim {OUT}, LMF rank {RANK}; forward+backward, median of {rounds} rounds)",
        "",
        "| config | fusion | parameters | fwd+bwd (ms) | saved for backward"
        + (" | CUDA peak |" if device.type == "cuda" else " |"),
        "|---|---|---:|---:|---:|" + ("---:|" if device.type == "cuda" else ""),
    ]
    ratios = []
    for label, dims in configs:
        rows = measure(dims, names, device, rounds, max_params)
        by = {r["name"]: r for r in rows}
        if not by["lowrank"]["skipped"]:  # a dedicated side-by-side run of just these two, more rounds
            ratios.append((label, lmf_vs_reference(dims, device, 3 * rounds)))
        for r in rows:
            if r["skipped"]:
                need = fmt_bytes(4 * r["params"])
                cells = [label, r["name"], f"{r['params']:,}", f"skipped (weight alone {need})", "—"]
                cells += ["—"] if device.type == "cuda" else []
            else:
                cells = [label, r["name"], f"{r['params']:,}", f"{r['ms']:.2f}", fmt_bytes(r["saved"])]
                cells += [fmt_bytes(r["peak"])] if device.type == "cuda" else []
            lines.append("| " + " | ".join(cells) + " |")
        print(f"done {label}", flush=True)
    return "\n".join(lines), ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--max-params", type=int, default=20_000_000)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: mmlab.get_device())")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    device = get_device(args.device)
    names = ["concat", "late", "gated", "tensor", "lowrank", "lmf-reference", "article-einsum"]
    t_start = time.perf_counter()
    width_table, r1 = table(
        "Width sweep, 3 modalities",
        [(f"M=3, d={d}", [d] * 3) for d in (8, 16, 32, 64)],
        names,
        device,
        args.rounds,
        args.max_params,
    )
    modal_table, r2 = table(
        "Modality sweep, width 16",
        [(f"M={m}, d=16", [16] * m) for m in (2, 3, 4, 5)],
        names,
        device,
        args.rounds,
        args.max_params,
    )
    ratios = r1 + r2
    geo = math.exp(sum(math.log(r) for _, r in ratios) / len(ratios))
    ratio_line = ", ".join(f"{label}: {r:.2f}×" for label, r in ratios)
    if device.type == "cuda":
        clock_note = "times are wall time with a synchronize after each pass"
    elif torch.get_num_threads() == 1:
        clock_note = "times are the process's CPU time, which other jobs disturb far less than wall time"
    else:
        clock_note = "times are wall time, inflated by the other jobs"
    body = f"""## Fusion: latency and memory vs width and number of modalities

Command: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fusion.py` ({machine()}; device {device}; the machine was
shared with other jobs while measuring; {clock_note}; compare rows within a configuration, which were timed in
interleaved rounds). Total wall time {time.perf_counter() - t_start:.0f} s.

{width_table}

{modal_table}

**LowRankFusion vs the straightforward reference LMF** (time of reference / time of `mmlab`, same factors, same
settings, timed side by side in a separate run of just these two, {3 * args.rounds} rounds; > 1 means `mmlab` is
faster): {ratio_line}; geometric mean {geo:.2f}×, lowest {min(r for _, r in ratios):.2f}×. `mmlab` folds the appended 1
into a fused multiply-add (`addmm`) instead of concatenating a column of ones to every input.

Reading the tables: TFN's parameters and saved tensor grow as `Π(d_m + 1)`, so with 3 modalities they grow with
the cube of the width and with 16-d features they multiply by 17 per extra modality; LMF's grow as `Σ(d_m + 1)`.
The article's einsum keeps `32^M` values per sample whatever the input width: it *is* tensor fusion (on 32-d
projections, without the appended 1), not low-rank fusion.
"""
    print(body)
    if not args.no_write:
        write_section("fusion", body)


if __name__ == "__main__":
    main()
