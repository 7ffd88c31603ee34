"""Tests of mmlab.deploy.serving: padding, batched inference, content keys, the LRU cache, the cached encoder."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmlab.deploy import CachedEncoder, LRUCache, batched_inference, content_key, pad_sequences

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
