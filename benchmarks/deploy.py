"""Deployment benchmark (lesson 5): every way of shrinking the lesson's model, measured side by side in one run.

For the AV-Digits MultimodalMLP of lesson 5 (image + speech MFCC statistics + caption bag of words): val and
test accuracy over 5 seeds (each seed trains its own teacher and everything derived from it), with the paired
difference to the baseline fine-tuned for the same 5 extra epochs as the pruned models (95% bootstrap interval
over seeds); checkpoint size; latency at batch 1 (median, p95, p99 of single calls) and throughput at the best
batch size, for the baseline, a student trained alone and distilled (T, λ chosen on val), 50% masked pruning,
structured pruning at 30/50/70% (+ fine-tuning), dynamic int8, ONNX Runtime and torch.compile (compile time
reported separately). All variants (seed 0's models) are timed in the same interleaved rounds (warm-up, then
medians and percentiles), so ratios stay meaningful on a busy machine.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/deploy.py            # writes the "deploy" section of RESULTS.md
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/deploy.py --no-write  # print only
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/deploy.py --clock cpu  # CPU time: steadier on a shared machine
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, write_section  # noqa: E402

from mmlab.data import load_avdigits, standardize  # noqa: E402
from mmlab.deploy import (  # noqa: E402
    compare_latency,
    export_onnx,
    model_size_bytes,
    onnx_run,
    onnx_session,
    paired_speedup,
    prune_structured,
    prune_with_masks,
    quantize_int8,
)
from mmlab.lessons.deployment import MultimodalMLP, choose_distillation, student_runs  # noqa: E402
from mmlab.runtime import seeded  # noqa: E402
from mmlab.stats import format_spread, paired_bootstrap  # noqa: E402
from mmlab.text import WordTokenizer, bag_of_words  # noqa: E402
from mmlab.train import evaluate, fit, make_loader  # noqa: E402

BATCH_SIZES = (1, 16, 64, 256, 1024)
DISTILL_GRID = [(2.0, 0.5), (4.0, 0.5), (8.0, 0.5), (4.0, 0.9)]  # (T, λ), as in lesson 5
RATIOS = (0.3, 0.5, 0.7)
FAIR = "baseline + 5 epochs (fair reference)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true", help="print the table without writing RESULTS.md")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (it needs a C++ compiler)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--seeds", type=int, default=5, help="teachers trained (each with its variants)")
    ap.add_argument("--tail-calls", type=int, default=400, help="single batch-1 calls per variant for p95/p99")
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall-clock latency, or this process's CPU time (steadier on a machine shared with other jobs)",
    )
    args = ap.parse_args()
    t_start = time.perf_counter()

    knobs = dict(image_noise=0.4, text_noise=0.6, audio_format="mfcc_stats")
    train, val, test = (load_avdigits(split, **knobs) for split in ("train", "val", "test"))
    tok = WordTokenizer(train.text)
    a_train, a_val, a_test = standardize(train.audio, val.audio, test.audio)
    x_train = (train.image, a_train, bag_of_words(tok(train.text)[0], len(tok)))
    x_val = (val.image, a_val, bag_of_words(tok(val.text)[0], len(tok)))
    x_test = (test.image, a_test, bag_of_words(tok(test.text)[0], len(tok)))
    modalities = ("image", "audio", "text")
    input_dims = [64, 40, len(tok)]
    loaders = {
        "val": make_loader(*x_val, val.label, batch_size=512),
        "test": make_loader(*x_test, test.label, batch_size=512),
    }
    cpu = torch.device("cpu")
    seeds = list(range(args.seeds))

    def loader(seed: int):
        return make_loader(*x_train, train.label, batch_size=64, shuffle=True, seed=seed)

    def accuracies(model) -> dict[str, float]:
        return {k: evaluate(model, v, device=cpu)["accuracy"] for k, v in loaders.items()}

    def make_student():
        return MultimodalMLP(input_dims, 10, width=8, depth=1, embed_dim=8, modalities=modalities)

    # every seed: a teacher and every variant derived from it; accuracy[name][split] holds one value per seed
    accuracy: dict[str, dict[str, list[float]]] = {}
    teachers, variants = [], {}
    for seed in seeds:
        with seeded(seed):
            teacher = MultimodalMLP(input_dims, 10, width=256, depth=2, modalities=modalities)
        fit(teacher, loader(seed), epochs=20, lr=1e-3, device=cpu, progress=False)
        teacher.eval()
        teachers.append(teacher)
        here: dict[str, torch.nn.Module] = {"baseline (fp32)": teacher}
        for ratio in (0.0, *RATIOS):  # ratio 0: the baseline with the same extra fine-tuning
            pruned = prune_structured(teacher, ratio)
            fit(pruned, loader(1000 + seed), epochs=5, lr=1e-3, device=cpu, progress=False)
            here[FAIR if ratio == 0 else f"structured {ratio:.0%} + fine-tune"] = pruned.eval()
        here["masked 50% (nn.utils.prune)"] = prune_with_masks(teacher, 0.5).eval()
        int8 = quantize_int8(teacher)
        here[f"dynamic int8 ({int8.quantized_with})"] = int8
        for name, model in here.items():
            for split, a in accuracies(model).items():
                accuracy.setdefault(name, {}).setdefault(split, []).append(a)
        if seed == 0:
            variants = here

    # distillation: (T, λ) chosen on val (mean over seeds; student seed = teacher seed), then reported on test
    runs = {
        seed: student_runs(
            make_student,
            teachers[seed],
            loader,
            settings=[None, *DISTILL_GRID],
            seeds=[seed],
            evaluate=accuracies,
            epochs=20,
            lr=3e-3,
            device=cpu,
            progress=False,
        )
        for seed in seeds
    }
    merged = {st: {sp: np.concatenate([runs[s].accuracy[st][sp] for s in seeds]) for sp in ("val", "test")}
              for st in [None, *DISTILL_GRID]}  # fmt: skip
    chosen = choose_distillation(type(runs[0])(seeds, merged, {}), split="val")
    grid_note = ", ".join(
        f"T={t:g}/λ={lam:g}: {format_spread(merged[t, lam]['val'], 100, '%')}" for t, lam in DISTILL_GRID
    )
    student_alone, student_distilled = (
        "student alone (w=8)",
        f"distilled student (w=8, T={chosen[0]:g}, λ={chosen[1]:g})",
    )
    for name, st in ((student_alone, None), (student_distilled, chosen)):
        accuracy[name] = {sp: list(merged[st][sp]) for sp in ("val", "test")}
        variants[name] = runs[0].models[st, 0]
    order = ["baseline (fp32)", FAIR, student_alone, student_distilled, "masked 50% (nn.utils.prune)"]
    order += [f"structured {r:.0%} + fine-tune" for r in RATIOS] + [n for n in variants if n.startswith("dynamic")]
    variants = {n: variants[n] for n in order}
    teacher = teachers[0]

    # inputs for every batch size (the 360 test items tiled up to the largest batch)
    reps = -(-max(BATCH_SIZES) // len(test.label))
    big = tuple(x.repeat(reps, *([1] * (x.dim() - 1))) for x in x_test)
    inputs = {b: tuple(x[:b] for x in big) for b in BATCH_SIZES}

    calls: dict[str, dict[int, object]] = {}
    for name, model in variants.items():
        calls[name] = {b: (lambda m=model, x=inputs[b]: _infer(m, x)) for b in BATCH_SIZES}
    sizes = {name: model_size_bytes(m) for name, m in variants.items()}

    onnx_dir = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    path = export_onnx(teacher, inputs[16], onnx_dir / "teacher.onnx", input_names=list(modalities))
    onnx_export_s = time.perf_counter() - t0
    session = onnx_session(path)
    calls["ONNX Runtime (fp32)"] = {b: (lambda x=inputs[b]: onnx_run(session, *x)) for b in BATCH_SIZES}
    onnx_test = int((onnx_run(session, *x_test).argmax(-1) == test.label).sum()) / len(test.label)
    onnx_note = f"ONNX Runtime reproduces seed 0's baseline ({onnx_test:.1%} test accuracy, same file, fp32)"
    sizes["ONNX Runtime (fp32)"] = path.stat().st_size

    compile_note = "torch.compile: skipped (--no-compile)"
    if not args.no_compile:
        compiled = torch.compile(teacher, dynamic=False)
        t0 = time.perf_counter()
        _infer(compiled, inputs[1])  # the first call compiles
        first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for b in BATCH_SIZES[1:]:
            _infer(compiled, inputs[b])  # one specialised graph per batch size
        more_s = time.perf_counter() - t0
        calls["torch.compile (inductor)"] = {b: (lambda x=inputs[b]: _infer(compiled, x)) for b in BATCH_SIZES}
        sizes["torch.compile (inductor)"] = sizes["baseline (fp32)"]
        compile_note = (
            f"torch.compile: first call (compile, batch 1) {first_s:.1f} s; recompiling for the other "
            f"{len(BATCH_SIZES) - 1} batch sizes {more_s:.1f} s (wall clock, not in the latencies below)"
        )

    timings = {}
    for b in BATCH_SIZES:
        timings[b] = compare_latency(
            {name: fns[b] for name, fns in calls.items()},
            warmup=3,
            repeats=args.repeats * (2 if b == 1 else 1),
            clock=args.clock,
            number=max(1, 16 // b),  # back-to-back calls per sample for tiny batches: warm caches, finer clock
        )

    tails = compare_latency(
        {name: fns[1] for name, fns in calls.items()},
        warmup=5,
        repeats=args.tail_calls,
        clock=args.clock,
        number=1,  # every call timed on its own: a slow call is not averaged away
    )

    base = "baseline (fp32)"
    n = len(seeds)
    acc_rows = [
        f"| variant | val accuracy (n = {n}) | test accuracy (n = {n}) "
        "| test − fair reference, points (95% CI over seeds) | test − baseline as trained, points (95% CI) |",
        "|---|---|---|---|---|",
    ]

    def diff(name: str, ref: str) -> str:
        if name == ref:
            return "—"
        return paired_bootstrap(accuracy[name]["test"], accuracy[ref]["test"]).format(100).split(" (")[0]

    for name, acc in accuracy.items():
        acc_rows.append(
            f"| {name} | {format_spread(acc['val'], 100, '%')} | {format_spread(acc['test'], 100, '%')} | "
            f"{diff(name, FAIR)} | {diff(name, base)} |"
        )
    extra = paired_bootstrap(accuracy[FAIR]["test"], accuracy[base]["test"])
    extra_note = f"The 5 extra epochs moved the unpruned model's test accuracy by {extra.format(100, ' pts')}" + (
        ": a detectable change, so a pruned + fine-tuned model is compared with both baselines."
        if extra.excludes_zero()
        else ": no detectable change."
    )
    rows = [
        "| variant | size (kB) | batch 1 p50 (ms) | p95 (ms) | p99 (ms) | speed-up at batch 1 | best throughput "
        "(items/s) | at batch | speed-up at batch 256 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in calls:
        tput = {b: b / timings[b][name].median for b in BATCH_SIZES}
        best = max(tput, key=tput.get)
        p50, p95, p99 = (1e3 * tails[name].percentile(q) for q in (50, 95, 99))
        rows.append(
            f"| {name} | {sizes[name] / 1e3:,.0f} | {p50:.3f} | {p95:.3f} | {p99:.3f} | "
            f"{paired_speedup(timings[1], base, name):.2f}× | {tput[best]:,.0f} | {best} | "
            f"{paired_speedup(timings[256], base, name):.2f}× |"
        )
    table = "\n".join(rows)
    clock_note = (
        "Times are wall-clock, so they are inflated and noisy."
        if args.clock == "wall"
        else "Times are this process's CPU time (`--clock cpu`), which other jobs barely disturb; with one "
        "thread it approaches the latency on an idle core (and its tails are the model's own, not the waits a "
        "busy machine adds)."
    )
    body = f"""## Deployment (lesson 5)

`{_command()}` — {machine()}.

**Accuracy over {n} seeds** (mean ± std, ddof = 1, min–max). Each seed trains its own teacher (20 epochs) and
derives every variant from it; the pruned models *and the fair reference* (the unpruned model) get the same 5
extra epochs (lr 1e-3). Val = seen voices, unseen recordings (359 items); test = unseen voices (360 items). The
last two columns are the paired differences on test to the fair reference and to the baseline as trained, with
95% bootstrap intervals over seeds (an interval that contains 0 shows no detectable difference).
Distillation (T, λ) was chosen on val from {len(DISTILL_GRID)} settings ({grid_note})
→ T = {chosen[0]:g}, λ = {chosen[1]:g}; the students use the teacher's seed. No ordering is claimed that these
intervals do not support.

{chr(10).join(acc_rows)}

{extra_note} {onnx_note}; torch.compile computes the same function as the baseline.

**Latency and size** (seed 0's models). **The machine was shared with other jobs while this ran.** {clock_note}
Batch-1 p50/p95/p99: {args.tail_calls} single calls per variant, interleaved, after 5 warm-up calls (p99 of
{args.tail_calls} calls rests on its {max(1, args.tail_calls // 100)} slowest). The speed-ups are paired ratios
(median over interleaved rounds of baseline time / variant time, {args.repeats} rounds, {2 * args.repeats} at
batch 1, after 3 warm-up calls each; a round times 16 back-to-back calls at batch 1, 1 from batch 16 on).
Size is the `torch.save(state_dict)` checkpoint (the ONNX file for ONNX Runtime); throughput is items/s at the
best of batch sizes {", ".join(map(str, BATCH_SIZES))}.

{table}

ONNX export (dynamo): {onnx_export_s:.1f} s. {compile_note}. Total run {time.perf_counter() - t_start:.0f} s.
Masked pruning keeps every dense multiply and doubles the checkpoint; structured pruning removes the work.
int8 and ONNX Runtime run on the CPU only.
"""
    print(body)
    if not args.no_write:
        write_section("deploy", body)
        print("written to benchmarks/RESULTS.md")


def _infer(model, x):
    with torch.inference_mode():
        return model(*x)


def _command() -> str:
    threads = os.environ.get("OMP_NUM_THREADS")
    env = f"OMP_NUM_THREADS={threads} " if threads else ""
    return f"{env}.venv/bin/python benchmarks/deploy.py" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")


if __name__ == "__main__":
    main()
