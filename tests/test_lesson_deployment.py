"""Tests of mmlab.lessons.deployment: the lesson's model and features, the pruning sweep and its widget."""

from __future__ import annotations

import io

import pytest
import torch
from multimodal_inputs import DIMS, mm_inputs, multimodal_mlp
from torch import nn

from mmlab.deploy import prunable_pairs
from mmlab.lessons.deployment import MultimodalMLP, bag_of_words, pruning_sweep, tradeoff_figure


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


def test_bag_of_words_counts_and_ignores_padding():
    ids = torch.tensor([[2, 3, 2, 0], [1, 0, 0, 0]])
    v = bag_of_words(ids, 5)
    assert v.tolist() == [[0, 0, 2, 1, 0], [0, 1, 0, 0, 0]]
    with pytest.raises(ValueError, match=r"ids must be in \[0, 3\)"):
        bag_of_words(ids, 3)


# ---- the sweep and the widget ----------------------------------------------------------------------------------


def test_pruning_sweep_and_tradeoff_figure(mm):
    tuned = []
    sweep = pruning_sweep(
        mm,
        [0.0, 0.5, 0.8],
        evaluate=lambda m: 0.5,
        finetune=lambda m: tuned.append(m),
        make_inputs=mm_inputs,
        batch_sizes=(1, 8),
        repeats=2,
        progress=False,
    )
    assert len(tuned) == 2  # ratio 0 is not fine-tuned
    assert sweep.accuracy == sweep.accuracy_no_finetune == [0.5, 0.5, 0.5] and sweep.ratios == [0.0, 0.5, 0.8]
    assert all(not m.training for m in tuned)  # every pruned model ends in eval mode, ready to time
    assert sweep.params[0] > sweep.params[1] > sweep.params[2]
    assert set(sweep.latency) == {1, 8} and all(len(v) == 3 for v in sweep.latency.values())
    assert sweep.index(0.51) == 1
    with pytest.raises(ValueError, match="prune_ratio"):
        sweep.index(0.3)

    def png(fig) -> bytes:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=40)
        return buf.getvalue()

    a, b = tradeoff_figure(sweep, 0.0, 8), tradeoff_figure(sweep, 0.5, 8)
    assert len(a.axes) == 3 and "prune 0%, batch 8" in a._suptitle.get_text()
    for ax in a.axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert png(a) != png(b)
    assert png(b) != png(tradeoff_figure(sweep, 0.5, 1))
    with pytest.raises(ValueError, match="batch_size must be one of"):
        tradeoff_figure(sweep, 0.5, 3)
