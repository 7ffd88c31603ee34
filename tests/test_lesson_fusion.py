"""Tests of mmlab.lessons.fusion: the lesson's tasks, its timing wrapper and its widget figure."""

import io

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

import mmlab.lessons.fusion as lesson
from mmlab.deploy import Timing
from mmlab.fusion import LowRankFusion, NormalizedFusion, TensorFusion
from mmlab.lessons.fusion import (
    build_fusion_classifier,
    embedding_shift,
    fusion_accuracy,
    fusion_task,
    fusion_tradeoff_figure,
    time_fusions,
    train_fusion_model,
)


def test_fusion_task_parity_is_an_interaction():
    data = fusion_task("train", task="parity", pairs_per_image=2)
    a, b, y = data["digit_image"], data["digit_audio"], data["label"]
    assert data["image"].shape == (len(y), 64) and data["audio"].shape == (len(y), 40)
    assert torch.equal(y, (a + b) % 2)
    assert abs(y.float().mean().item() - 0.5) < 0.05
    # neither modality's digit predicts the label: P(y=1 | a) ~ 0.5 for every digit a
    for d in range(10):
        assert abs(y[a == d].float().mean().item() - 0.5) < 0.12
    assert data["audio"].mean(0).abs().max() < 0.1  # standardised with train statistics
    assert (data["audio"].std(0) - 1).abs().max() < 0.1
    assert torch.equal(fusion_task("train", task="parity", pairs_per_image=2)["label"], y)  # deterministic


def test_fusion_task_digit_pairs_same_digit():
    data = fusion_task("test", task="digit", pairs_per_image=2)
    assert torch.equal(data["label"], data["digit_image"]) and torch.equal(data["label"], data["digit_audio"])
    with pytest.raises(ValueError, match="task"):
        fusion_task("train", task="sum")
    with pytest.raises(ValueError, match="pairs_per_image"):
        fusion_task("train", pairs_per_image=0)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    return buf.getvalue()


def test_tradeoff_widget_figure_changes_with_rank():
    acc = {1: [0.8, 0.85], 2: [0.86, 0.84], 4: [0.87, 0.83]}
    f1 = fusion_tradeoff_figure(1, 64, accuracy=acc, tensor_accuracy=[0.84, 0.86])
    f2 = fusion_tradeoff_figure(4, 64, accuracy=acc, tensor_accuracy=[0.84, 0.86])
    assert isinstance(f1, Figure) and len(f1.axes) == 3
    assert _png(f1) != _png(f2)
    assert len(fusion_tradeoff_figure(3, 16, num_modalities=3).axes) == 2
    with pytest.raises(ValueError, match="rank"):
        fusion_tradeoff_figure(0)
    with pytest.raises(ValueError, match="num_modalities"):
        fusion_tradeoff_figure(2, 8, num_modalities=1)


def test_tradeoff_figure_has_titles_and_labels():
    fig = fusion_tradeoff_figure(2, 16, accuracy={1: [0.8, 0.9], 2: [0.85]}, tensor_accuracy=[0.8, 0.82])
    assert fig._suptitle is not None and "2 modalities" in fig._suptitle.get_text()
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert "R=2: 85.0%" in fig.axes[2].get_title()  # a single seed: no spread, still drawn


def test_numpy_ints_accepted_by_widget():
    assert isinstance(fusion_tradeoff_figure(np.int64(2), np.int64(8)), Figure)


def _features(dims, batch=4):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(batch, d, generator=g).requires_grad_() for d in dims]


def test_time_fusions_runs_forward_backward_of_every_module():
    dims = [3, 4, 2]
    modules = {"tensor": TensorFusion(dims, 5), "lowrank": LowRankFusion(dims, 5, 2)}
    zs = _features(dims)
    t = time_fusions(modules, *zs, rounds=2, sample_s=1e-4)
    assert set(t) == {"tensor", "lowrank"} and all(v > 0 for v in t.values())
    for module in modules.values():  # the timed pass is a real forward + backward
        assert all(p.grad is not None for p in module.parameters())
    with pytest.raises(ValueError, match="modules"):
        time_fusions({}, *zs)
    with pytest.raises(ValueError, match="features"):
        time_fusions(modules)


def test_time_fusions_delegates_to_the_one_timing_helper(monkeypatch):
    seen = {}

    def fake_compare_latency(fns, **kwargs):
        seen.update(kwargs, names=list(fns), threads=torch.get_num_threads())
        for fn in fns.values():
            fn()
        return {name: Timing([3.0, 1.0, 2.0]) for name in fns}

    monkeypatch.setattr(lesson, "compare_latency", fake_compare_latency)
    threads_before = torch.get_num_threads()
    dims = [2, 2]
    t = time_fusions({"a": TensorFusion(dims, 3), "b": LowRankFusion(dims, 3, 1)}, *_features(dims), rounds=3)
    assert t == {"a": 2.0, "b": 2.0}  # the median of each module's samples
    assert seen["names"] == ["a", "b"] and seen["repeats"] == 3 and seen["number"] == "auto"
    # on a CPU: one thread and the CPU-time clock while timing, the caller's thread count restored afterwards
    assert seen["clock"] == "cpu" and seen["threads"] == 1 and seen["device"] == torch.device("cpu")
    assert torch.get_num_threads() == threads_before


def _tiny_task(n: int = 96, seed: int = 0, shift: float = 0.0) -> dict[str, torch.Tensor]:
    """A 2-class stand-in with the lesson's shapes; the label is written in the first pixel and MFCC."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    image = torch.randn(n, 64, generator=g)
    audio = torch.randn(n, 40, generator=g) + shift
    image[:, 0] += 3 * (2 * y - 1)
    audio[:, 0] += 3 * (2 * y - 1)
    return {"image": image, "audio": audio, "label": y}


def test_build_fusion_classifier_shapes_and_normalisation():
    torch.manual_seed(0)
    model = build_fusion_classifier("lowrank", 10, rank=3, normalize="layer")
    assert isinstance(model.fusion, NormalizedFusion) and isinstance(model.fusion.fusion, LowRankFusion)
    assert model.fusion.fusion.rank == 3
    assert model(torch.randn(5, 64), torch.randn(5, 40)).shape == (5, 10)
    assert not isinstance(build_fusion_classifier("tensor", 2).fusion, NormalizedFusion)
    torch.manual_seed(1)
    a = build_fusion_classifier("concat", 2)
    torch.manual_seed(1)
    b = build_fusion_classifier("tensor", 2)
    for pa, pb in zip(a.encoders.parameters(), b.encoders.parameters()):  # same encoders whatever the fusion
        assert torch.equal(pa, pb)


def test_train_fusion_model_keeps_the_best_val_epoch_and_never_reads_test():
    data = {"train": _tiny_task(seed=0), "val": _tiny_task(seed=1)}
    run = train_fusion_model("concat", data, seed=0, epochs=4, progress=False)
    assert len(run.val_curve) == 4 and 1 <= run.best_epoch <= 4
    assert run.val_acc == max(run.val_curve) and run.val_curve.index(run.val_acc) == run.best_epoch - 1
    assert abs(fusion_accuracy(run.model, data["val"]) - run.val_acc) < 1e-6  # the model is the kept epoch
    assert run.val_acc > 0.9 and run.train_acc > 0.9
    again = train_fusion_model("concat", data, seed=0, epochs=4, progress=False)
    assert again.val_curve == run.val_curve  # seeded
    with pytest.raises(KeyError, match="val"):
        train_fusion_model("concat", {"train": data["train"]}, seed=0, epochs=1, progress=False)
    with pytest.raises(KeyError, match="label"):
        fusion_accuracy(run.model, {"image": data["val"]["image"], "audio": data["val"]["audio"]})


def test_embedding_shift_is_zero_on_the_same_split_and_grows_with_a_shift():
    torch.manual_seed(0)
    model = build_fusion_classifier("concat", 2)
    ref = _tiny_task(400, seed=2)
    assert embedding_shift(model, ref, ref) == pytest.approx(0.0, abs=1e-9)
    small = embedding_shift(model, ref, _tiny_task(400, seed=3))
    big = embedding_shift(model, ref, _tiny_task(400, seed=3, shift=2.0))
    assert small < big
    assert embedding_shift(model, ref, _tiny_task(400, seed=3, shift=2.0), where="image") < big
    assert embedding_shift(model, ref, ref, where="fused") == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="where"):
        embedding_shift(model, ref, ref, where="text")
