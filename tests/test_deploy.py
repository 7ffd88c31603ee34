"""Tests of mmlab.deploy beyond distillation: pruning, quantization, ONNX, batching, caching, timing, widget."""

from __future__ import annotations

import io
import time
import warnings

import pytest
import torch
from torch import nn

from mmlab.deploy import (
    CachedEncoder,
    LRUCache,
    MultimodalMLP,
    Timing,
    bag_of_words,
    batched_inference,
    compare_latency,
    content_key,
    count_nonzero_parameters,
    export_onnx,
    measure_latency,
    model_size_bytes,
    onnx_parity,
    onnx_run,
    onnx_session,
    pad_sequences,
    paired_speedup,
    prunable_pairs,
    prune_structured,
    prune_with_masks,
    pruning_sweep,
    quantize_int8,
    sparsity,
    tradeoff_figure,
)
from mmlab.models import ImageCNN, MLPEncoder

DIMS = {"image": 64, "audio": 40, "text": 12}


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def mm_inputs(b: int = 5):
    g = torch.Generator().manual_seed(0)
    return torch.rand(b, 1, 8, 8, generator=g), torch.randn(b, 40, generator=g), torch.rand(b, 12, generator=g)


@pytest.fixture
def mm():
    torch.manual_seed(0)
    return MultimodalMLP(DIMS, num_classes=10, width=32, depth=2, embed_dim=8).eval()


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


def test_bag_of_words_counts_and_ignores_padding():
    ids = torch.tensor([[2, 3, 2, 0], [1, 0, 0, 0]])
    v = bag_of_words(ids, 5)
    assert v.tolist() == [[0, 0, 2, 1, 0], [0, 1, 0, 0, 0]]
    with pytest.raises(ValueError, match=r"ids must be in \[0, 3\)"):
        bag_of_words(ids, 3)


# ---- structured pruning ----------------------------------------------------------------------------------------


def test_pruned_model_is_smaller_with_same_output_shape(mm):
    pruned = prune_structured(mm, 0.5)
    assert n_params(pruned) < 0.5 * n_params(mm)
    x = mm_inputs(4)
    assert pruned(*x).shape == mm(*x).shape
    assert pruned.towers["image"][1].out_features == 16 and pruned.towers["image"][3].in_features == 16
    assert n_params(mm) == n_params(prune_structured(mm, 0.0, criterion="l2"))  # the original is untouched


def test_prune_ratio_zero_is_identity(mm):
    same = prune_structured(mm, 0.0)
    assert same is not mm
    x = mm_inputs(6)
    assert torch.equal(same(*x), mm(*x))
    assert n_params(same) == n_params(mm)


def test_pairs_found_in_sequentials(mm):
    pairs = prunable_pairs(mm)
    assert ("towers.image.1", "towers.image.3") in pairs and ("head.0", "head.2") in pairs
    assert not any(c.endswith(".5") and p.endswith(".5") for p, c in pairs)
    # the towers' last layers feed a concatenation outside any Sequential: their widths stay
    assert all(not p.endswith(".5") for p, _ in pairs)
    # pooling over a Linear layer's features mixes units: no pair; a LayerNorm stops the chain too
    assert prunable_pairs(nn.Sequential(nn.Linear(4, 8), nn.MaxPool1d(2), nn.Linear(4, 2))) == []
    assert prunable_pairs(nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))) == []
    assert prunable_pairs(nn.Sequential(nn.Conv1d(2, 4, 3), nn.MaxPool1d(2), nn.GELU(), nn.Conv1d(4, 2, 1))) == [
        ("0", "3")
    ]


@pytest.mark.parametrize("criterion", ["l1", "l2"])
def test_removing_dead_units_keeps_outputs_exactly(criterion):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 3)).eval()
    with torch.no_grad():
        net[0].weight[::2] = 0.0  # units 0, 2, 4, 6 are dead: relu(0) = 0
        net[0].bias[::2] = 0.0
        net[0].weight[1::2] += 0.1 * net[0].weight[1::2].sign()  # and the live ones clearly larger
    x = torch.randn(10, 6)
    pruned = prune_structured(net, 0.5, criterion=criterion)
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
    pruned = prune_structured(net, 0.5)
    assert pruned[0].out_channels == 2 and pruned[1].num_features == 2 and pruned[4].in_features == 2 * 64
    assert torch.allclose(pruned(x), net(x), atol=1e-5)


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
    assert (rows.towers["image"][1].weight.abs().sum(1) == 0).sum() == 16
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


def test_onnx_export_parity_any_batch(mm, tmp_path):
    pytest.importorskip("onnxruntime")
    path = export_onnx(mm, mm_inputs(2), tmp_path / "m.onnx", input_names=list(DIMS), output_name="logits")
    assert path.exists() and not (tmp_path / "m.onnx.data").exists()
    session = onnx_session(path)
    assert [i.name for i in session.get_inputs()] == list(DIMS)
    for b in (1, 7):
        assert onnx_parity(mm, session, *mm_inputs(b)) < 1e-4
    assert onnx_run(session, *mm_inputs(3)).shape == (3, 10)
    with pytest.raises(ValueError, match="takes 3 inputs"):
        onnx_run(session, *mm_inputs(3)[:2])
    with pytest.raises(ValueError, match="input_names"):
        export_onnx(mm, mm_inputs(2), tmp_path / "x.onnx", input_names=["a"])


# ---- batching --------------------------------------------------------------------------------------------------


def test_pad_sequences_and_errors():
    a, b = torch.ones(3, 2), 2 * torch.ones(1, 2)
    padded, mask = pad_sequences([a, b], pad_value=-1.0)
    assert padded.shape == (2, 3, 2) and mask.tolist() == [[True, True, True], [True, False, False]]
    assert torch.equal(padded[1, 1:], -torch.ones(2, 2))
    with pytest.raises(ValueError, match=r"seqs\[1\] has shape \(4, 3\) but seqs\[0\] has \(3, 2\).*\(L, 2\)"):
        pad_sequences([a, torch.ones(4, 3)])
    with pytest.raises(ValueError, match="seqs"):
        pad_sequences([a, torch.ones(4, 2, 1)])
    with pytest.raises(TypeError, match="dtype"):
        pad_sequences([a, torch.ones(2, 2, dtype=torch.int64)])
    with pytest.raises(ValueError, match="non-empty"):
        pad_sequences([])
    with pytest.raises(TypeError, match=r"seqs\[1\] must be a torch.Tensor"):
        pad_sequences([a, [1.0, 2.0]])


class MaskedMean(nn.Module):
    """A sequence model whose output must not depend on padding: a Linear, a masked mean, dropout."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3, 4)
        self.drop = nn.Dropout(0.5)

    def forward(self, x, mask):
        m = mask.unsqueeze(-1).float()
        return self.drop((self.proj(x) * m).sum(1) / m.sum(1))


def test_batched_inference_equals_one_by_one_and_restores_order():
    torch.manual_seed(0)
    model = MaskedMean().train()
    seqs = [torch.randn(n, 3) for n in (5, 1, 3, 7, 2, 2, 6)]
    ref = torch.cat([model.eval()(s[None], torch.ones(1, len(s), dtype=torch.bool)) for s in seqs])
    model.train()
    for sort in (True, False):
        for bs in (1, 3, 7):
            out = batched_inference(model, seqs, batch_size=bs, sort_by_length=sort, collate=pad_sequences)
            assert torch.allclose(out, ref, atol=1e-6)
    assert model.training  # mode restored
    same = batched_inference(nn.Linear(3, 2), [torch.randn(3) for _ in range(5)], batch_size=2)
    assert same.shape == (5, 2)
    texts = batched_inference(lambda xs: torch.tensor([[float(len(t))] for t in xs]), ["a", "abc", "ab"], batch_size=2)
    assert texts.flatten().tolist() == [1.0, 3.0, 2.0]
    with pytest.raises(ValueError, match="batch_size"):
        batched_inference(model, seqs, batch_size=0)
    with pytest.raises(ValueError, match="inconsistent|seqs\\[1\\]"):
        batched_inference(model, [torch.randn(2, 3), torch.randn(2, 4)], batch_size=2, sort_by_length=False)


# ---- caching ---------------------------------------------------------------------------------------------------


def test_content_key_depends_on_content_only():
    x = torch.arange(6.0).reshape(2, 3)
    assert content_key(x) == content_key(x.clone())
    assert content_key(x) != content_key(x.to(torch.float64))
    assert content_key(x) != content_key(x.reshape(3, 2))
    before = content_key(x)
    x[0, 0] = 100.0
    assert content_key(x) != before
    assert content_key("a cat") == content_key("a cat") != content_key("a dog")
    assert content_key((1, "a")) == content_key([1, "a"])
    assert content_key(torch.tensor(1.0, dtype=torch.bfloat16)) != content_key(torch.tensor(2.0, dtype=torch.bfloat16))
    with pytest.raises(TypeError, match="content_key supports"):
        content_key({"a": 1})


def test_lru_cache_capacity_eviction_and_stats():
    c = LRUCache(2)
    c.put("a", 1)
    c.put("b", 2)
    assert c.get("a") == 1  # a is now most recent
    c.put("c", 3)  # evicts b, the least recently used
    assert "b" not in c and "a" in c and len(c) == 2
    assert c.get("b") is None
    assert (c.hits, c.misses, c.evictions) == (1, 1, 1) and c.hit_rate == 0.5
    for i in range(100):
        c.put(i, i)
    assert len(c) == 2
    with pytest.raises(ValueError, match="capacity"):
        LRUCache(0)


def test_cached_encoder_never_mixes_contents_and_respects_capacity():
    calls = []

    def encode(items):
        calls.append(len(items))
        return torch.stack([x.sum(0, keepdim=True).repeat(2) for x in items])

    enc = CachedEncoder(encode, capacity=3)
    xs = [torch.full((2,), float(i)) for i in range(5)]
    out = enc([xs[0], xs[1], xs[0].clone()])
    assert calls == [2]  # the equal copy is encoded once
    assert torch.equal(out, encode([xs[0], xs[1], xs[0]]))
    out[0] += 99  # editing a returned tensor must not change the cache
    assert torch.equal(enc([xs[0]]), encode([xs[0]]))
    y = xs[1].clone()
    enc([y])
    y.add_(1)  # an in-place edit makes new content: a miss, the right answer
    assert torch.equal(enc([y]), encode([y]))
    for x in xs:
        enc([x])
        assert len(enc.cache) <= 3
    for batch in ([xs[4], xs[2]], [xs[3], xs[0], xs[3]]):
        assert torch.equal(enc(batch), encode(batch))
    assert 0 < enc.hit_rate < 1
    with pytest.raises(ValueError, match="fn\\(items\\) must have shape"):
        CachedEncoder(lambda items: torch.zeros(1, 2))([xs[0], xs[1]])


# ---- timing ----------------------------------------------------------------------------------------------------


def test_latency_helpers():
    t = measure_latency(lambda: None, warmup=1, repeats=5)
    assert isinstance(t, Timing) and len(t.times) == 5 and t.median >= 0 and "ms" in str(t)
    tm = compare_latency({"slow": lambda: time.sleep(0.004), "fast": lambda: None}, warmup=0, repeats=5)
    assert paired_speedup(tm, "slow", "fast") > 5
    assert tm["slow"].median > 0.003
    with pytest.raises(ValueError, match="repeats"):
        compare_latency({"a": lambda: None}, repeats=0)
    # CPU time ignores sleeping; a busy loop costs CPU time
    busy = lambda: sum(range(200_000))
    tc = compare_latency({"sleep": lambda: time.sleep(0.004), "busy": busy}, warmup=0, repeats=3, clock="cpu")
    assert tc["sleep"].median < tc["busy"].median
    with pytest.raises(ValueError, match="clock"):
        measure_latency(lambda: None, clock="gpu")
    calls = []
    tn = measure_latency(lambda: calls.append(1), warmup=2, repeats=3, number=4)
    assert len(calls) == 2 + 3 * 4 and len(tn.times) == 3
    with pytest.raises(ValueError, match="number"):
        measure_latency(lambda: None, number=0)
    with pytest.raises(ValueError, match="compare_latency"):
        paired_speedup({"a": Timing([1.0, 1.0]), "b": Timing([1.0])}, "a", "b")


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
    assert sweep.params[0] > sweep.params[1] > sweep.params[2]
    assert set(sweep.latency) == {1, 8} and all(len(v) == 3 for v in sweep.latency.values())
    assert sweep.index(0.51) == 1
    with pytest.raises(ValueError, match="prune_ratio"):
        sweep.index(0.3)

    def png(fig) -> bytes:
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()

    a, b = tradeoff_figure(sweep, 0.0, 8), tradeoff_figure(sweep, 0.5, 8)
    assert a.axes[0].get_title() and a.axes[0].get_xlabel() and a.axes[0].get_ylabel()
    assert png(a) != png(b)
    assert png(b) != png(tradeoff_figure(sweep, 0.5, 1))
    with pytest.raises(ValueError, match="batch_size must be one of"):
        tradeoff_figure(sweep, 0.5, 3)
