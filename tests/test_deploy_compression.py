"""Tests of mmlab.deploy.compression: structured and mask pruning, counts, size, int8 quantization."""

from __future__ import annotations

import copy
import io
import warnings

import pytest
import torch
from multimodal_inputs import DIMS, mm_inputs, multimodal_mlp
from torch import nn

from mmlab.deploy import (
    count_nonzero_parameters,
    model_size_bytes,
    prunable_pairs,
    prune_structured,
    prune_with_masks,
    quantize_int8,
    sparsity,
    unit_importance,
)
from mmlab.lessons.deployment import MultimodalMLP
from mmlab.models import ImageCNN, MLPEncoder


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.fixture
def mm():
    return multimodal_mlp()


# ---- structured pruning ----------------------------------------------------------------------------------------


def test_pruned_model_is_smaller_with_same_output_shape(mm):
    pruned = prune_structured(mm, 0.5)
    assert n_params(pruned) < 0.5 * n_params(mm)
    x = mm_inputs(4)
    assert pruned(*x).shape == mm(*x).shape
    assert pruned.towers[0][1].out_features == 16 and pruned.towers[0][3].in_features == 16
    assert n_params(mm) == n_params(prune_structured(mm, 0.0, criterion="l2"))  # the original is untouched


def test_prune_ratio_zero_is_identity(mm):
    same = prune_structured(mm, 0.0)
    assert same is not mm
    x = mm_inputs(6)
    assert torch.equal(same(*x), mm(*x))
    assert n_params(same) == n_params(mm)


def test_pairs_found_in_sequentials(mm):
    pairs = prunable_pairs(mm)
    assert ("towers.0.1", "towers.0.3") in pairs and ("head.0", "head.2") in pairs
    assert not any(c.endswith(".5") and p.endswith(".5") for p, c in pairs)
    # the towers' last layers feed a concatenation outside any Sequential: their widths stay
    assert all(not p.endswith(".5") for p, _ in pairs)
    # pooling over a Linear layer's features mixes units: no pair; a LayerNorm stops the chain too
    assert prunable_pairs(nn.Sequential(nn.Linear(4, 8), nn.MaxPool1d(2), nn.Linear(4, 2))) == []
    assert prunable_pairs(nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))) == []
    assert prunable_pairs(nn.Sequential(nn.Conv1d(2, 4, 3), nn.MaxPool1d(2), nn.GELU(), nn.Conv1d(4, 2, 1))) == [
        ("0", "3")
    ]


@pytest.mark.parametrize("criterion", ["l1", "l2", "taylor"])
def test_removing_dead_units_keeps_outputs_exactly(criterion):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 3)).eval()
    with torch.no_grad():
        net[0].weight[::2] = 0.0  # units 0, 2, 4, 6 are dead: relu(0) = 0
        net[0].bias[::2] = 0.0
        net[0].weight[1::2] += 0.1 * net[0].weight[1::2].sign()  # and the live ones clearly larger
        net[0].bias[1::2] = 1.0  # (active on every input, so each has a non-zero Taylor score)
    x = torch.randn(10, 6)
    pruned = prune_structured(net, 0.5, criterion=criterion, calibration=x)
    assert pruned[0].out_features == 4 and pruned[3].in_features == 4
    assert torch.allclose(pruned(x), net(x), atol=1e-6)


def test_conv_batchnorm_flatten_pruning_keeps_outputs():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 5)
    ).eval()
    with torch.no_grad():
        net[0].weight[[1, 3]] = 0.0
        net[0].bias[[1, 3]] = 0.0
        net[1].running_mean[[1, 3]] = 0.0
        net[1].bias[[1, 3]] = 0.0  # dead channels output exactly 0 after BN and ReLU
    x = torch.randn(2, 1, 8, 8)
    assert prunable_pairs(net) == [("0", "4")]
    for criterion in ("l1", "taylor"):
        pruned = prune_structured(net, 0.5, criterion=criterion, calibration=x)
        assert pruned[0].out_channels == 2 and pruned[1].num_features == 2 and pruned[4].in_features == 2 * 64
        assert torch.allclose(pruned(x), net(x), atol=1e-5)


def _rescale_unit(net: nn.Module, producer: str, consumer: str, j: int, c: float) -> None:
    """Unit j of ``producer`` × c (weights and bias), the consumer's weights on it × 1/c: with ReLU between,
    relu(c·z) = c·relu(z) for c > 0, so the network computes exactly the same function."""
    p, q = net.get_submodule(producer), net.get_submodule(consumer)
    with torch.no_grad():
        p.weight[j] *= c
        p.bias[j] *= c
        q.weight[:, j] /= c


def test_l1_ranking_moves_under_a_function_preserving_rescaling_taylor_does_not():
    """Li et al.'s L1 score depends on the parametrisation; the Taylor score depends on the function."""
    net = multimodal_mlp()
    x = mm_inputs(64)
    before = {c: unit_importance(net, c, calibration=x) for c in ("l1", "taylor")}
    # the two least important units by L1 in a chained pair (towers.0.1 → towers.0.3 → towers.0.5)
    j = int(before["l1"]["towers.0.1"].argmin())
    i = int(before["l1"]["towers.0.3"].argmin())
    twin = copy.deepcopy(net)
    _rescale_unit(twin, "towers.0.1", "towers.0.3", j, 50.0)
    _rescale_unit(twin, "towers.0.3", "towers.0.5", i, 50.0)
    assert torch.allclose(twin(*x), net(*x), atol=1e-5)  # the same function
    after = {c: unit_importance(twin, c, calibration=x) for c in ("l1", "taylor")}
    assert after["l1"]["towers.0.1"][j] > before["l1"]["towers.0.1"].max()  # least important → most important
    for name, s in before["taylor"].items():
        assert (s > 0).float().mean() > 0.5, name  # not a degenerate all-zero score
        assert torch.allclose(after["taylor"][name], s, rtol=1e-3, atol=1e-6), name
    # so L1 keeps a different set of units (and a different pruned function); taylor prunes the same one
    l1 = prune_structured(net, 0.5), prune_structured(twin, 0.5)
    assert l1[0].towers[0][1].out_features == l1[1].towers[0][1].out_features == 16
    assert not torch.allclose(l1[0](*x), l1[1](*x), atol=1e-3)
    ct = (prune_structured(m, 0.5, criterion="taylor", calibration=x) for m in (net, twin))
    assert torch.allclose(next(ct)(*x), next(ct)(*x), atol=1e-5)


def test_taylor_is_invariant_when_batchnorm_absorbs_the_scale():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 16, 5))
    net[1].running_mean.normal_()
    net[1].running_var.uniform_(0.5, 2.0)
    net.eval()
    x = torch.randn(8, 1, 4, 4)
    twin = copy.deepcopy(net)
    with torch.no_grad():  # filter 2 × 10: BN's running statistics follow, the output does not change
        twin[0].weight[2] *= 10.0
        twin[0].bias[2] *= 10.0
        twin[1].running_mean[2] *= 10.0
        twin[1].running_var[2] = 100.0 * twin[1].running_var[2] + 99.0 * twin[1].eps  # (v+ε)·100 = v'+ε
    assert torch.allclose(twin(x), net(x), atol=1e-5)
    l1, l1_twin = unit_importance(net)["0"], unit_importance(twin)["0"]
    assert l1_twin[2] == pytest.approx(10 * float(l1[2]), rel=1e-5)
    s, s_twin = (unit_importance(m, "taylor", calibration=x)["0"] for m in (net, twin))
    assert torch.allclose(s, s_twin, rtol=1e-3, atol=1e-6)


def test_unit_importance_l1_is_the_row_norm_and_taylor_needs_data(mm):
    scores = unit_importance(mm)
    assert set(scores) == {p for p, _ in prunable_pairs(mm)}
    assert torch.equal(scores["head.0"], mm.head[0].weight.abs().sum(1))
    assert torch.allclose(unit_importance(mm, "l2")["head.0"], mm.head[0].weight.norm(dim=1))
    with pytest.raises(ValueError, match="calibration"):
        unit_importance(mm, "taylor")
    with pytest.raises(ValueError, match="calibration"):
        prune_structured(mm, 0.5, criterion="taylor")
    with pytest.raises(ValueError, match="calibration must be a tensor"):
        unit_importance(mm, "taylor", calibration=[1, 2])
    with pytest.raises(ValueError, match="criterion"):
        unit_importance(mm, "l0")


def test_pruning_course_encoders():
    torch.manual_seed(0)
    for enc, x in ((ImageCNN(16, width=8), torch.rand(3, 1, 8, 8)), (MLPEncoder(64, 16, hidden=32), torch.rand(3, 64))):
        pruned = prune_structured(enc.eval(), 0.5)
        assert n_params(pruned) < n_params(enc)
        assert pruned(x).shape == enc(x).shape


def test_explicit_pairs_outside_sequential():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 10), nn.Linear(10, 2)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))

    m = Two()
    with pytest.raises(ValueError, match="no prunable pair"):
        prune_structured(m, 0.5)
    pruned = prune_structured(m, 0.3, pairs=[("a", "b")])
    assert pruned.a.out_features == 7 and pruned.b.in_features == 7
    assert pruned(torch.randn(3, 4)).shape == (3, 2)


def test_pruning_errors(mm):
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"ratio must be in \[0, 1\)"):
            prune_structured(mm, bad)
    with pytest.raises(ValueError, match="criterion"):
        prune_structured(mm, 0.5, criterion="l3")

    class WithAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
            self.out = nn.Linear(8, 2)

    with pytest.raises(TypeError, match="'attn' is a MultiheadAttention"):
        prune_structured(WithAttention(), 0.5, pairs=[("attn", "out")])
    grouped = nn.Sequential(nn.Conv1d(4, 4, 3, groups=2), nn.Conv1d(4, 2, 1))
    with pytest.raises(TypeError, match="groups=1"):
        prune_structured(grouped, 0.5, pairs=[("0", "1")])
    with pytest.raises(ValueError, match="not a multiple"):
        prune_structured(nn.Sequential(nn.Linear(3, 4), nn.Linear(6, 2)), 0.5, pairs=[("0", "1")])


def test_masks_change_nothing_but_the_zeros(mm):
    masked = prune_with_masks(mm, 0.5)
    assert n_params(masked) == n_params(mm)
    assert 0.45 < sparsity(masked) < 0.55 and sparsity(mm) == 0.0
    assert count_nonzero_parameters(masked) < 0.55 * n_params(mm)
    assert model_size_bytes(masked) > 1.8 * model_size_bytes(mm)  # weight_orig + weight_mask
    rows = prune_with_masks(mm, 0.5, structured=True)
    assert (rows.towers[0][1].weight.abs().sum(1) == 0).sum() == 16
    with pytest.raises(ValueError, match="ratio"):
        prune_with_masks(mm, 1.0)


# ---- quantization, size, ONNX ----------------------------------------------------------------------------------


def test_quantize_int8_smaller_close_and_quiet():
    torch.manual_seed(0)
    mm = MultimodalMLP(DIMS, num_classes=10, width=128, depth=2).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation warning may leak out
        q = quantize_int8(mm, backend="torch.ao")
    assert q.quantized_with == "torch.ao"
    x = mm_inputs(16)
    ref = mm(*x)
    assert (q(*x) - ref).abs().max() < 0.05 * ref.abs().max()
    assert model_size_bytes(q) < 0.4 * model_size_bytes(mm)
    assert isinstance(mm.head[0], nn.Linear)  # the original is untouched
    with pytest.raises(ValueError, match="backend"):
        quantize_int8(mm, backend="tensorrt")
    with pytest.raises(ValueError, match="no nn.Linear"):
        quantize_int8(nn.Sequential(nn.ReLU()))


def test_quantize_int8_torchao_backend(mm):
    pytest.importorskip("torchao")
    q = quantize_int8(mm, backend="torchao")
    x = mm_inputs(16)
    assert q.quantized_with == "torchao"
    assert (q(*x) - mm(*x)).abs().max() < 0.05 * mm(*x).abs().max()


def test_model_size_bytes_matches_torch_save(mm):
    buf = io.BytesIO()
    torch.save(mm.state_dict(), buf)
    assert model_size_bytes(mm) == len(buf.getvalue())
