"""Tests of mmlab.fusion: the fusion methods, their closed-form costs and the measured saved activations."""

import io
import math

import pytest
import torch
from torch import nn

from mmlab.fusion import (
    FUSIONS,
    ConcatFusion,
    GatedFusion,
    LateFusion,
    LowRankFusion,
    NormalizedFusion,
    TensorFusion,
    fusion_complexity,
    make_fusion,
    saved_activation_bytes,
)
from mmlab.models import MLPEncoder, MultimodalClassifier, count_parameters

DIMS = {2: [3, 5], 3: [4, 2, 3], 4: [2, 3, 2, 4]}


def _features(dims, batch=6, grad=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, d, generator=g).requires_grad_(grad) for d in dims]


def _reference_lmf(features, factors):
    """Liu et al. 2018 written the straightforward way: append 1, one matmul per modality, product, sum."""
    prod = 1.0
    for z, w in zip(features, factors):
        z1 = torch.cat([z, torch.ones(len(z), 1)], dim=-1)
        prod = prod * torch.einsum("bd,drh->brh", z1, w)
    return prod.sum(1)


@pytest.mark.parametrize("m", [2, 3, 4])
@pytest.mark.parametrize("rank", [1, 2, 5])
def test_lowrank_equals_tensor_fusion_built_from_full_weight(m, rank):
    torch.manual_seed(m * 10 + rank)
    lmf = LowRankFusion(DIMS[m], 7, rank)
    tfn = TensorFusion.from_weight(lmf.full_weight().detach())
    zs = _features(DIMS[m])
    assert tfn.weight.shape == (7, *(d + 1 for d in DIMS[m]))
    torch.testing.assert_close(lmf(*zs), tfn(*zs), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lmf(*zs), _reference_lmf(zs, lmf.factors()), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("m", [2, 3, 4])
def test_parameter_counts_equal_closed_forms(m):
    dims, out, rank = DIMS[m], 6, 3
    assert count_parameters(TensorFusion(dims, out)) == out * math.prod(d + 1 for d in dims)
    assert count_parameters(LowRankFusion(dims, out, rank)) == rank * out * sum(d + 1 for d in dims)
    for kind in FUSIONS:
        module = make_fusion(kind, dims, out, rank=rank)
        assert count_parameters(module) == fusion_complexity(kind, dims, out, rank=rank)["params"], kind


@pytest.mark.parametrize("kind", FUSIONS)
@pytest.mark.parametrize("m", [2, 3])
def test_saved_activations_match_closed_form(kind, m):
    module = make_fusion(kind, DIMS[m], 8, rank=2)
    zs = _features(DIMS[m], batch=5, grad=True)
    expected = fusion_complexity(kind, DIMS[m], 8, rank=2, batch=5)["activation_bytes"]
    assert saved_activation_bytes(module, *zs) == expected


def test_tensor_fusion_memory_dominates_at_width():
    tfn = fusion_complexity("tensor", [32, 32, 32], 32)
    lmf = fusion_complexity("lowrank", [32, 32, 32], 32, rank=4)
    assert tfn["activations"] > 33**3 and tfn["params"] == 32 * 33**3
    assert tfn["params"] / lmf["params"] == pytest.approx(33**3 / (4 * 99)) and tfn["macs"] > 50 * lmf["macs"]


@pytest.mark.parametrize("kind", FUSIONS)
def test_gradients_reach_every_parameter_and_input(kind):
    torch.manual_seed(0)
    module = make_fusion(kind, DIMS[3], 4, rank=2)
    zs = _features(DIMS[3], grad=True)
    module(*zs).square().sum().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    for z in zs:
        assert z.grad is not None and z.grad.abs().sum() > 0


def test_lowrank_factors_are_registered_parameters():
    lmf = LowRankFusion([3, 4, 5], 6, 2)
    shapes = {n: tuple(p.shape) for n, p in lmf.named_parameters()}
    assert shapes == {
        "factor_weights.0": (3, 12),
        "factor_weights.1": (4, 12),
        "factor_weights.2": (5, 12),
        "factor_biases.0": (12,),
        "factor_biases.1": (12,),
        "factor_biases.2": (12,),
    }
    assert [tuple(f.shape) for f in lmf.factors()] == [(4, 2, 6), (5, 2, 6), (6, 2, 6)]
    f0 = lmf.factors()[0]
    torch.testing.assert_close(f0[-1].flatten(), lmf.factor_biases[0])  # the row for the appended 1


@pytest.mark.parametrize("kind", FUSIONS)
def test_state_dict_round_trip(kind):
    torch.manual_seed(1)
    a = make_fusion(kind, DIMS[2], 5, rank=3)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    torch.manual_seed(2)
    b = make_fusion(kind, DIMS[2], 5, rank=3)
    buf.seek(0)
    b.load_state_dict(torch.load(buf))
    zs = _features(DIMS[2])
    torch.testing.assert_close(a(*zs), b(*zs))


@pytest.mark.parametrize("kind", FUSIONS)
def test_output_shape_and_plugs_into_classifier(kind):
    fusion = make_fusion(kind, [8, 6], 5)
    assert fusion(*_features([8, 6], batch=3)).shape == (3, fusion.out_dim)
    model = MultimodalClassifier({"a": MLPEncoder(4, 8), "b": MLPEncoder(3, 6)}, num_classes=2, fusion=fusion)
    assert model(torch.randn(3, 4), torch.randn(3, 3)).shape == (3, 2)


def test_concat_without_projection_is_concatenation():
    zs = _features([2, 3])
    f = ConcatFusion([2, 3])
    assert f.out_dim == 5 and count_parameters(f) == 0
    torch.testing.assert_close(f(*zs), torch.cat(zs, -1))


def test_tensor_fusion_keeps_unimodal_terms_through_the_appended_one():
    z1, z2 = _features([3, 4], batch=2)
    t = TensorFusion([3, 4], 2).fused_tensor(z1, z2).view(2, 4, 5)
    torch.testing.assert_close(t[:, :3, -1], z1)  # [z1; 1] ⊗ [z2; 1] holds z1 itself ...
    torch.testing.assert_close(t[:, -1, :4], z2)  # ... and z2 itself ...
    torch.testing.assert_close(t[:, :3, :4], z1[:, :, None] * z2[:, None, :])  # ... and their products
    assert torch.all(t[:, -1, -1] == 1)


def test_late_fusion_is_mean_of_unimodal_heads_and_gates_sum_to_one():
    zs = _features([3, 4])
    late = LateFusion([3, 4], 2)
    torch.testing.assert_close(late(*zs), (late.heads[0](zs[0]) + late.heads[1](zs[1])) / 2)
    gated = GatedFusion([3, 4], 2)
    g = gated.gate(torch.cat(zs, -1)).view(-1, 2, 2).softmax(1)
    torch.testing.assert_close(g.sum(1), torch.ones(6, 2))


def _fit_xor(fusion: nn.Module, steps: int = 300) -> float:
    x = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]]).repeat(8, 1)
    y = (x[:, 0] != x[:, 1]).long()
    head = nn.Linear(fusion.out_dim, 2)
    opt = torch.optim.Adam([*fusion.parameters(), *head.parameters()], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(head(fusion(x[:, :1], x[:, 1:])), y)
        loss.backward()
        opt.step()
    return (head(fusion(x[:, :1], x[:, 1:])).argmax(1) == y).float().mean().item()


def test_additive_fusions_cannot_fit_xor_multiplicative_ones_can():
    torch.manual_seed(0)
    assert _fit_xor(ConcatFusion([1, 1], 4)) <= 0.75
    assert _fit_xor(LateFusion([1, 1], 4)) <= 0.75
    assert _fit_xor(TensorFusion([1, 1], 4)) == 1.0
    assert _fit_xor(LowRankFusion([1, 1], 4, rank=1)) == 1.0


@pytest.mark.parametrize("kind", FUSIONS)
def test_clear_errors_for_wrong_inputs(kind):
    f = make_fusion(kind, [3, 4], 5)
    with pytest.raises(ValueError, match="expected 2 feature tensors"):
        f(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"features\[1\] must have shape \(B, 4\)"):
        f(torch.randn(2, 3), torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"features\[1\] must have shape .*B=2"):
        f(torch.randn(2, 3), torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"features\[0\] must have shape"):
        f(torch.randn(2, 1, 3), torch.randn(2, 4))
    with pytest.raises(TypeError, match=r"features\[0\] must have dtype float"):
        f(torch.ones(2, 3, dtype=torch.long), torch.randn(2, 4))


def test_clear_errors_for_bad_construction():
    with pytest.raises(ValueError, match="input_dims"):
        TensorFusion([4], 3)
    with pytest.raises(ValueError, match="input_dims"):
        LowRankFusion([4, 0], 3, 2)
    with pytest.raises(ValueError, match="input_dims"):
        ConcatFusion(5)
    with pytest.raises(ValueError, match="rank"):
        LowRankFusion([4, 4], 3, 0)
    with pytest.raises(ValueError, match="out_dim"):
        LateFusion([4, 4], 0)
    with pytest.raises(ValueError, match="kind"):
        make_fusion("bilinear", [4, 4], 3)
    with pytest.raises(ValueError, match=r"weight must have shape \(out_dim, d_1 \+ 1"):
        TensorFusion.from_weight(torch.randn(3, 4))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fusions_on_cuda_match_cpu():
    for kind in FUSIONS:
        torch.manual_seed(0)
        cpu = make_fusion(kind, [8, 6, 4], 5)
        gpu = make_fusion(kind, [8, 6, 4], 5)
        gpu.load_state_dict(cpu.state_dict())
        gpu = gpu.to("cuda")
        zs = _features([8, 6, 4])
        torch.testing.assert_close(gpu(*[z.to("cuda") for z in zs]).cpu(), cpu(*zs), atol=1e-4, rtol=1e-4)
    lmf = LowRankFusion([8, 6], 5, 2).to("cuda")
    assert TensorFusion.from_weight(lmf.full_weight().detach()).weight.device.type == "cuda"


@pytest.mark.parametrize("norm", ["layer", "l2"])
def test_normalized_fusion_normalises_each_modality_before_fusing(norm):
    torch.manual_seed(0)
    inner = LowRankFusion([5, 6], 3, 2)
    fused = NormalizedFusion(inner, norm)
    assert fused.input_dims == (5, 6) and fused.out_dim == 3
    assert sum(p.numel() for p in fused.parameters()) == sum(p.numel() for p in inner.parameters())  # no affine
    z1, z2 = torch.randn(4, 5) * 7 + 3, torch.randn(4, 6) * 0.1
    if norm == "layer":
        n1 = (z1 - z1.mean(1, keepdim=True)) / torch.sqrt(z1.var(1, unbiased=False, keepdim=True) + 1e-5)
    else:
        n1 = z1 / z1.norm(dim=1, keepdim=True) * math.sqrt(5)
    torch.testing.assert_close(fused.normalize(z1), n1)
    torch.testing.assert_close(fused(z1, z2), inner(fused.normalize(z1), fused.normalize(z2)))
    # a per-sample rescaling of one modality (a "louder voice") no longer changes the output
    torch.testing.assert_close(fused(z1 * 5, z2), fused(z1, z2), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(inner(z1 * 5, z2), inner(z1, z2))


def test_normalized_fusion_errors():
    with pytest.raises(ValueError, match="norm"):
        NormalizedFusion(ConcatFusion([2, 3], 4), "batch")
    with pytest.raises(TypeError, match="input_dims"):
        NormalizedFusion(nn.Linear(2, 3))
    with pytest.raises(ValueError, match="feature tensors"):
        NormalizedFusion(ConcatFusion([2, 3], 4))(torch.randn(2, 2))
