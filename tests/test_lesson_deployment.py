"""Tests of mmlab.lessons.deployment: the lesson's model and features, the pruning sweep and its widget."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from multimodal_inputs import DIMS, mm_inputs, multimodal_mlp
from torch import nn

from mmlab.deploy import prunable_pairs
from mmlab.lessons.deployment import (
    MultimodalMLP,
    PruneSweep,
    StudentRuns,
    choose_distillation,
    choose_prune_ratio,
    pruning_sweep,
    student_runs,
    tradeoff_figure,
)
from mmlab.train import make_loader


@pytest.fixture
def mm():
    return multimodal_mlp()


# ---- the lesson's model ----------------------------------------------------------------------------------------


def test_multimodal_mlp_shapes_and_errors(mm):
    assert mm(*mm_inputs(3)).shape == (3, 10)
    with pytest.raises(ValueError, match="expected 3 inputs"):
        mm(*mm_inputs(3)[:2])
    x = list(mm_inputs(3))
    x[1] = torch.randn(3, 39)
    with pytest.raises(ValueError, match=r"audio must have shape \(B, 40\)"):
        mm(*x)
    x = list(mm_inputs(3))
    x[2] = torch.rand(4, 12)
    with pytest.raises(ValueError, match="B=3"):
        mm(*x)
    with pytest.raises(ValueError, match="width"):
        MultimodalMLP(DIMS, 10, width=0)


def test_multimodal_mlp_takes_input_dims_in_modality_order():
    torch.manual_seed(0)
    model = MultimodalMLP([4, 6], num_classes=3, width=8, depth=3, embed_dim=5)
    assert model.input_dims == (4, 6) and model.modalities == ["input_0", "input_1"]
    assert [t[1].in_features for t in model.towers] == [4, 6]  # towers[m] reads modality m
    assert sum(isinstance(layer, nn.Linear) for layer in model.towers[0]) == 4  # depth 3 hidden layers + output
    assert model.head[0].in_features == 2 * 5 and model.head[-1].out_features == 3
    with pytest.raises(ValueError, match=r"input_1 must have shape \(B, 6\)"):
        model(torch.randn(2, 4), torch.randn(2, 4))
    with pytest.raises(ValueError, match="input_dims must be a non-empty sequence"):
        MultimodalMLP({"image": 64, "audio": 40}, 10)  # a mapping is not a modality order
    with pytest.raises(ValueError, match="input_dims must be a non-empty sequence"):
        MultimodalMLP([], 10)
    with pytest.raises(ValueError, match=r"input_dims\[1\] must be a positive int"):
        MultimodalMLP([4, 0], 10)
    with pytest.raises(ValueError, match="modalities must name 2 modalities"):
        MultimodalMLP([4, 6], 10, modalities=["image"])


def test_multimodal_mlp_is_prunable_everywhere_but_at_its_interfaces(mm):
    pairs = prunable_pairs(mm)
    assert ("towers.0.1", "towers.0.3") in pairs and ("head.0", "head.2") in pairs
    assert len(pairs) == 3 * 2 + 1  # two hidden widths per tower, one in the head


# ---- the sweep and the widget ----------------------------------------------------------------------------------


def test_pruning_sweep_fine_tunes_the_baseline_too_and_the_figure(mm):
    tuned = []
    sweep = pruning_sweep(
        mm,
        [0.0, 0.5, 0.8],
        evaluate=lambda m: {"val": 0.9, "test": 0.5},
        finetune=lambda m, seed: tuned.append((m, seed)),
        seeds=(0, 1),
        make_inputs=mm_inputs,
        batch_sizes=(1, 8),
        repeats=2,
        progress=False,
    )
    assert len(tuned) == 3 * 2 and [s for _, s in tuned] == [0, 1] * 3  # ratio 0 is fine-tuned like the others
    assert len({id(m) for m, _ in tuned}) == 6  # each seed fine-tunes its own copy
    assert sweep.accuracy["val"].shape == sweep.accuracy["test"].shape == (3, 2)
    assert sweep.accuracy_no_finetune["test"].tolist() == [0.5, 0.5, 0.5] and sweep.ratios == [0.0, 0.5, 0.8]
    assert all(not m.training for m in sweep.models) and sweep.models[0] is tuned[0][0]
    assert sweep.params[0] > sweep.params[1] > sweep.params[2]
    assert set(sweep.timings) == {1, 8} and all(len(v) == 3 for v in sweep.latency.values())
    assert sweep.latency[8][1] == sweep.timings[8][1].median
    assert sweep.index(0.51) == 1
    with pytest.raises(ValueError, match="prune_ratio"):
        sweep.index(0.3)

    def png(fig) -> bytes:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=40)
        return buf.getvalue()

    a, b = tradeoff_figure(sweep, 0.0, 8), tradeoff_figure(sweep, 0.5, 8)
    assert len(a.axes) == 3 and "prune 0%, batch 8: test accuracy" in a._suptitle.get_text()
    for ax in a.axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert "val" in tradeoff_figure(sweep, 0.5, 8, split="val").axes[0].get_ylabel()
    assert png(a) != png(b)
    assert png(b) != png(tradeoff_figure(sweep, 0.5, 1))
    with pytest.raises(ValueError, match="batch_size must be one of"):
        tradeoff_figure(sweep, 0.5, 3)
    with pytest.raises(ValueError, match="split must be one of"):
        tradeoff_figure(sweep, 0.5, 8, split="train")


def _sweep(val: list[list[float]]) -> PruneSweep:
    acc = np.array(val)
    return PruneSweep([0.0, 0.3, 0.6, 0.9][: len(acc)], [0, 1], {"val": acc}, {"val": acc[:, 0]}, [], [], {}, [])


def test_choose_prune_ratio_reads_only_the_chosen_split():
    # mean drops vs the fine-tuned baseline: 0, -1, -2.5 (too much), -0.5 points -> the largest allowed ratio is 0.9
    sweep = _sweep([[0.90, 0.92], [0.89, 0.91], [0.88, 0.89], [0.90, 0.91]])
    assert choose_prune_ratio(sweep, max_drop=0.02) == 0.9
    sweep = _sweep([[0.90, 0.92], [0.89, 0.91], [0.88, 0.89], [0.80, 0.81]])
    assert choose_prune_ratio(sweep, max_drop=0.02) == 0.3
    assert choose_prune_ratio(sweep, max_drop=0.03) == 0.6
    assert choose_prune_ratio(sweep, max_drop=0.0) == 0.0
    with pytest.raises(ValueError, match="split must be one of"):
        choose_prune_ratio(sweep, split="test")


def test_student_runs_pair_settings_by_seed_and_choose_on_val():
    torch.manual_seed(0)
    x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
    teacher = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    inits = []

    def make_student():
        m = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))
        inits.append(m[0].weight.detach().clone())
        return m

    runs = student_runs(
        make_student,
        teacher,
        lambda seed: make_loader(x, y, batch_size=16, shuffle=True, seed=seed),
        settings=[None, (2.0, 0.5)],
        seeds=[0, 1],
        evaluate=lambda m: {"val": float((m(x).argmax(1) == y).float().mean())},
        epochs=1,
        lr=1e-2,
        device="cpu",
        progress=False,
    )
    assert torch.equal(inits[0], inits[2]) and torch.equal(inits[1], inits[3])  # same init per seed, any setting
    assert not torch.equal(inits[0], inits[1])
    assert runs.accuracy[None]["val"].shape == runs.accuracy[2.0, 0.5]["val"].shape == (2,)
    assert set(runs.models) == {(None, 0), (None, 1), ((2.0, 0.5), 0), ((2.0, 0.5), 1)}
    assert not any(m.training for m in runs.models.values())
    assert choose_distillation(runs) == (2.0, 0.5)  # the only distillation setting
    fake = StudentRuns(
        [0, 1],
        {
            None: {"val": np.array([0.99, 0.99])},
            (2.0, 0.5): {"val": np.array([0.90, 0.92]), "test": np.array([0.9, 0.9])},
            (4.0, 0.5): {"val": np.array([0.93, 0.91]), "test": np.array([0.1, 0.1])},
        },
        {},
    )
    assert choose_distillation(fake) == (4.0, 0.5)  # labels alone is not a distillation setting; test is ignored
    with pytest.raises(ValueError, match="split 'train'"):
        choose_distillation(fake, split="train")
