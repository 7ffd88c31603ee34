"""Deployment benchmark (lesson 5): every way of shrinking the lesson's model, measured side by side in one run.

For the AV-Digits MultimodalMLP of lesson 5 (image + speech MFCC statistics + caption bag of words): test
accuracy, checkpoint size, median latency at batch 1 and throughput at the best batch size, for the baseline,
a distilled student, 50% masked pruning, structured pruning at 30/50/70% (+ fine-tuning), dynamic int8, ONNX
Runtime and torch.compile (compile time reported separately). All variants are timed in the same interleaved
rounds (warm-up, then medians), so ratios stay meaningful on a busy machine.

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

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, write_section  # noqa: E402

from mmlab import seed_everything  # noqa: E402
from mmlab.data import load_avdigits, standardize  # noqa: E402
from mmlab.deploy import (  # noqa: E402
    compare_latency,
    distill,
    export_onnx,
    model_size_bytes,
    onnx_run,
    onnx_session,
    paired_speedup,
    prune_structured,
    prune_with_masks,
    quantize_int8,
)
from mmlab.lessons.deployment import MultimodalMLP, bag_of_words  # noqa: E402
from mmlab.text import WordTokenizer  # noqa: E402
from mmlab.train import evaluate, fit, make_loader  # noqa: E402

BATCH_SIZES = (1, 16, 64, 256, 1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true", help="print the table without writing RESULTS.md")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (it needs a C++ compiler)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall-clock latency, or this process's CPU time (steadier on a machine shared with other jobs)",
    )
    args = ap.parse_args()
    t_start = time.perf_counter()

    knobs = dict(image_noise=0.4, text_noise=0.6, audio_format="mfcc_stats")
    train, test = load_avdigits("train", **knobs), load_avdigits("test", **knobs)
    tok = WordTokenizer(train.text)
    a_train, a_test = standardize(train.audio, test.audio)
    x_train = (train.image, a_train, bag_of_words(tok(train.text)[0], len(tok)))
    x_test = (test.image, a_test, bag_of_words(tok(test.text)[0], len(tok)))
    modalities = ("image", "audio", "text")
    input_dims = [64, 40, len(tok)]
    test_loader = make_loader(*x_test, test.label, batch_size=512)
    cpu = torch.device("cpu")

    def loader(seed: int):
        return make_loader(*x_train, train.label, batch_size=64, shuffle=True, seed=seed)

    def accuracy(model) -> float:
        return evaluate(model, test_loader, device=cpu)["accuracy"]

    seed_everything(0)
    teacher = MultimodalMLP(input_dims, 10, width=256, depth=2, modalities=modalities)
    fit(teacher, loader(0), epochs=20, lr=1e-3, device=cpu, progress=False)
    teacher.eval()

    variants: dict[str, torch.nn.Module] = {"baseline (fp32)": teacher}
    seed_everything(0)
    student = MultimodalMLP(input_dims, 10, width=8, depth=1, embed_dim=8, modalities=modalities)
    distill(student, teacher, loader(0), epochs=20, lr=3e-3, temperature=4.0, alpha=0.9, device=cpu, progress=False)
    variants["distilled student (w=8)"] = student.eval()
    variants["masked 50% (nn.utils.prune)"] = prune_with_masks(teacher, 0.5).eval()
    for ratio in (0.3, 0.5, 0.7):
        pruned = prune_structured(teacher, ratio)
        seed_everything(1)
        fit(pruned, loader(1), epochs=5, lr=1e-3, device=cpu, progress=False)
        variants[f"structured {ratio:.0%} + fine-tune"] = pruned.eval()
    int8 = quantize_int8(teacher)
    variants[f"dynamic int8 ({int8.quantized_with})"] = int8

    # inputs for every batch size (the 360 test items tiled up to the largest batch)
    reps = -(-max(BATCH_SIZES) // len(test.label))
    big = tuple(x.repeat(reps, *([1] * (x.dim() - 1))) for x in x_test)
    inputs = {b: tuple(x[:b] for x in big) for b in BATCH_SIZES}

    calls: dict[str, dict[int, object]] = {}
    for name, model in variants.items():
        calls[name] = {b: (lambda m=model, x=inputs[b]: _infer(m, x)) for b in BATCH_SIZES}
    accs = {name: accuracy(m) for name, m in variants.items()}
    sizes = {name: model_size_bytes(m) for name, m in variants.items()}

    onnx_dir = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    path = export_onnx(teacher, inputs[16], onnx_dir / "teacher.onnx", input_names=list(modalities))
    onnx_export_s = time.perf_counter() - t0
    session = onnx_session(path)
    calls["ONNX Runtime (fp32)"] = {b: (lambda x=inputs[b]: onnx_run(session, *x)) for b in BATCH_SIZES}
    accs["ONNX Runtime (fp32)"] = int((onnx_run(session, *x_test).argmax(-1) == test.label).sum()) / len(test.label)
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
        accs["torch.compile (inductor)"] = accs["baseline (fp32)"]
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

    base = "baseline (fp32)"
    rows = [
        "| variant | test accuracy | size (kB) | batch 1 latency (ms) | speed-up at batch 1 | best throughput "
        "(items/s) | at batch | speed-up at batch 256 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in calls:
        tput = {b: b / timings[b][name].median for b in BATCH_SIZES}
        best = max(tput, key=tput.get)
        rows.append(
            f"| {name} | {accs[name]:.1%} | {sizes[name] / 1e3:,.0f} | {1e3 * timings[1][name].median:.3f} | "
            f"{paired_speedup(timings[1], base, name):.2f}× | {tput[best]:,.0f} | {best} | "
            f"{paired_speedup(timings[256], base, name):.2f}× |"
        )
    table = "\n".join(rows)
    clock_note = (
        "Times are wall-clock, so they are inflated and noisy."
        if args.clock == "wall"
        else "Times are this process's CPU time (`--clock cpu`), which other jobs barely disturb; with one "
        "thread it approaches the latency on an idle core."
    )
    body = f"""## Deployment (lesson 5)

`{_command()}` — {machine()}.
**The machine was shared with other jobs while this ran.** {clock_note} The speed-ups are paired ratios
(median over interleaved rounds of baseline time / variant time, {args.repeats} rounds, {2 * args.repeats} at
batch 1, after 3 warm-up calls each; a round times 16 back-to-back calls at batch 1, 1 from batch 16 on).
Accuracy on the 360 AV-Digits test items (held-out voices); size is the `torch.save(state_dict)` checkpoint
(the ONNX file for ONNX Runtime); throughput is items/s at the best of batch sizes {", ".join(map(str, BATCH_SIZES))}.

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
