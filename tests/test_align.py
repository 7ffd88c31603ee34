"""mmlab.align: cross-modal attention, DTW / soft-DTW, the pairings and the metric, the shared space, grounding.

Lesson 1's figures and experiment are tested in test_lesson_alignment.py."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmlab.align import (
    ALIGN_METHODS,
    PAIRWISE_METRICS,
    AlignmentSpace,
    AttentionAligner,
    CrossModalAttention,
    FrameEncoder,
    GroundingAttention,
    alignment_accuracy,
    dtw,
    index_pairing,
    info_nce,
    pairwise_cost,
    path_to_pairing,
    predict_tokens,
    proportional_pairing,
    relative_position_features,
    segment_attention_loss,
    soft_alignment,
    soft_dtw,
    soft_dtw_divergence,
)
from mmlab.data import collate_episodes, make_alignment_episodes, make_grounding_canvases

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _prefix_mask(lengths, n):
    return torch.arange(n)[None] < torch.tensor(lengths)[:, None]


# ---------------------------------------------------------------------------------------------------------------
# CrossModalAttention


def test_cross_modal_attention_shapes_and_normalisation():
    torch.manual_seed(0)
    cma = CrossModalAttention(query_dim=24, context_dim=40, dim=16, heads=4)
    q, c = torch.randn(3, 5, 24), torch.randn(3, 9, 40)
    out, w = cma(q, c)
    assert out.shape == (3, 5, 16) and w.shape == (3, 4, 5, 9)
    assert torch.allclose(w.sum(-1), torch.ones(3, 4, 5)) and (w >= 0).all()


def test_cross_modal_attention_masks():
    torch.manual_seed(0)
    cma = CrossModalAttention(8, 6, 12, heads=3)
    q, c = torch.randn(2, 4, 8), torch.randn(2, 7, 6)
    cmask = _prefix_mask([7, 3], 7)
    qmask = _prefix_mask([4, 2], 4)
    out, w = cma(q, c, context_mask=cmask, query_mask=qmask)
    assert (w[1, :, :, 3:] == 0).all(), "padded keys get exactly zero weight"
    assert (w[1, :, 2:] == 0).all() and (out[1, 2:] == 0).all(), "padded queries are zeroed"
    assert torch.allclose(w[1, :, :2].sum(-1), torch.ones(3, 2))
    # what sits in the padding changes nothing
    c2 = c.clone()
    c2[1, 3:] = 1e3 * torch.randn(4, 6)
    assert torch.allclose(cma(q, c2, context_mask=cmask, query_mask=qmask)[0], out, atol=1e-6)
    # sample 1 alone, unpadded, gives the same result: no cross-talk across the batch
    alone, _ = cma(q[1:, :2], c[1:, :3])
    assert torch.allclose(alone[0], out[1, :2], atol=1e-5)


def test_cross_modal_attention_no_batch_mixing():
    torch.manual_seed(0)
    cma = CrossModalAttention(8, 8, 8, heads=2)
    q, c = torch.randn(4, 5, 8), torch.randn(4, 5, 8)
    out = cma(q, c)[0]
    c[2] += 5
    out2 = cma(q, c)[0]
    assert torch.equal(out[[0, 1, 3]], out2[[0, 1, 3]]) and not torch.allclose(out[2], out2[2])


def test_cross_modal_attention_is_only_the_attention_sublayer():
    # no positional embeddings: permuting the context positions (and its mask) leaves the output unchanged;
    # no residual: a zero value projection gives a zero output whatever the query
    torch.manual_seed(1)
    cma = CrossModalAttention(6, 5, 8, heads=2)
    q, c = torch.randn(2, 4, 6), torch.randn(2, 7, 5)
    mask = _prefix_mask([7, 5], 7)
    perm = torch.tensor([3, 0, 6, 1, 5, 2, 4])
    out, w = cma(q, c, context_mask=mask)
    out_p, w_p = cma(q, c[:, perm], context_mask=mask[:, perm])
    assert torch.allclose(out, out_p, atol=1e-6) and torch.allclose(w[..., perm], w_p, atol=1e-6)
    assert not any(isinstance(m, (torch.nn.LayerNorm, torch.nn.Embedding)) for m in cma.modules())
    with torch.no_grad():
        cma.v.weight.zero_(), cma.v.bias.zero_(), cma.out.bias.zero_()
    assert cma(q, c, context_mask=mask)[0].abs().max() == 0


@pytest.mark.parametrize(
    "query,context,kwargs,match",
    [
        ((2, 4, 9), (2, 5, 6), {}, "query"),  # wrong query width
        ((2, 4, 8), (2, 5, 7), {}, "context"),  # wrong context width
        ((2, 4, 8), (3, 5, 6), {}, "context"),  # batch sizes differ
        ((2, 4, 8), (2, 5, 6), {"context_mask": torch.ones(2, 4, dtype=torch.bool)}, "context_mask"),
        ((2, 4, 8), (2, 5, 6), {"context_mask": torch.ones(2, 5)}, "context_mask"),  # not bool
        ((2, 4, 8), (2, 5, 6), {"context_mask": torch.zeros(2, 5, dtype=torch.bool)}, "at least one"),
        ((2, 4, 8), (2, 5, 6), {"query_mask": torch.ones(2, 5, dtype=torch.bool)}, "query_mask"),
        ((4, 8), (5, 6), {}, "query"),  # unbatched
    ],
)
def test_cross_modal_attention_clear_errors(query, context, kwargs, match):
    cma = CrossModalAttention(8, 6, 12, heads=2)
    with pytest.raises((ValueError, TypeError), match=match):
        cma(torch.randn(*query), torch.randn(*context), **kwargs)


def test_cross_modal_attention_bad_construction():
    with pytest.raises(ValueError, match="divisible"):
        CrossModalAttention(8, 8, 10, heads=3)
    with pytest.raises(ValueError, match="query_dim"):
        CrossModalAttention(0, 8, 8)


def _mha_copy(cma: CrossModalAttention, identity_query: bool) -> torch.nn.MultiheadAttention:
    """An nn.MultiheadAttention computing the same function as ``cma``, on copied weights.

    ``nn.MultiheadAttention`` takes queries of width ``dim``; with ``identity_query`` its query projection is the
    identity and the caller feeds it ``cma.q(query)`` (for ``query_dim != dim``)."""
    mha = torch.nn.MultiheadAttention(
        cma.dim, cma.heads, batch_first=True, kdim=cma.context_dim, vdim=cma.context_dim
    ).eval()
    assert not mha._qkv_same_embed_dim, "separate q/k/v projection weights expected (context_dim != dim)"
    with torch.no_grad():
        if identity_query:
            mha.q_proj_weight.copy_(torch.eye(cma.dim))
            q_bias = torch.zeros(cma.dim)
        else:
            mha.q_proj_weight.copy_(cma.q.weight)
            q_bias = cma.q.bias
        mha.k_proj_weight.copy_(cma.k.weight)
        mha.v_proj_weight.copy_(cma.v.weight)
        mha.in_proj_bias.copy_(torch.cat([q_bias, cma.k.bias, cma.v.bias]))
        mha.out_proj.weight.copy_(cma.out.weight)
        mha.out_proj.bias.copy_(cma.out.bias)
    return mha


@pytest.mark.parametrize("query_dim,context_dim,dim,heads", [(12, 6, 12, 3), (8, 6, 12, 3), (5, 7, 4, 1), (9, 5, 8, 4)])
def test_cross_modal_attention_matches_torch_multihead_attention(query_dim, context_dim, dim, heads):
    torch.manual_seed(query_dim + heads)
    cma = CrossModalAttention(query_dim, context_dim, dim, heads=heads).eval()
    identity_query = query_dim != dim
    mha = _mha_copy(cma, identity_query)
    q, c = torch.randn(3, 4, query_dim), torch.randn(3, 7, context_dim)
    cmask, qmask = _prefix_mask([7, 3, 1], 7), _prefix_mask([4, 2, 4], 4)
    with torch.no_grad():
        q_in = cma.q(q) if identity_query else q
        for mask in (None, cmask):
            kpm = None if mask is None else ~mask  # nn.MultiheadAttention: True = ignore
            out, w = cma(q, c, context_mask=mask)
            ref_out, ref_w = mha(q_in, c, c, key_padding_mask=kpm, need_weights=True, average_attn_weights=False)
            ref_avg = mha(q_in, c, c, key_padding_mask=kpm, need_weights=True, average_attn_weights=True)[1]
            assert torch.allclose(out, ref_out, atol=1e-5), f"outputs differ (mask={mask is not None})"
            assert torch.allclose(w, ref_w, atol=1e-5), "per-head weights differ"
            assert torch.allclose(w.mean(1), ref_avg, atol=1e-5), "head-averaged weights differ"
        # the query mask only zeroes padded queries' outputs and weights
        out_q, w_q = cma(q, c, context_mask=cmask, query_mask=qmask)
        assert torch.allclose(out_q, ref_out * qmask[..., None], atol=1e-5)
        assert torch.allclose(w_q, ref_w * qmask[:, None, :, None], atol=1e-5)
        # the comparison can fail: the mask changes the result, and so does the head split
        unmasked = mha(q_in, c, c, need_weights=False)[0]
        assert not torch.allclose(unmasked[1:], ref_out[1:], atol=1e-3), "the context mask must matter here"
        if heads > 1:
            one_head = torch.nn.MultiheadAttention(dim, 1, batch_first=True, kdim=context_dim, vdim=context_dim)
            one_head.load_state_dict(mha.state_dict())
            other = one_head.eval()(q_in, c, c, key_padding_mask=~cmask, need_weights=False)[0]
            assert not torch.allclose(other, ref_out, atol=1e-3), "the head split must matter here"


# ---------------------------------------------------------------------------------------------------------------
# DTW and soft-DTW


def _dtw_loops(c: np.ndarray) -> float:
    n, m = c.shape
    r = np.full((n + 1, m + 1), np.inf)
    r[0, 0] = 0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            r[i, j] = c[i - 1, j - 1] + min(r[i - 1, j - 1], r[i - 1, j], r[i, j - 1])
    return r[n, m]


def _check_path(path: torch.Tensor, n: int, m: int):
    cells = path.nonzero().tolist()
    assert cells[0] == [0, 0] and cells[-1] == [n - 1, m - 1], "endpoints"
    for (i0, j0), (i1, j1) in zip(cells, cells[1:]):
        assert (i1 - i0, j1 - j0) in ((1, 0), (0, 1), (1, 1)), "monotone and continuous"
    assert len(cells) >= max(n, m) and len(cells) <= n + m - 1
    assert not path[n:].any() and not path[:, m:].any()


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (6, 1), (5, 5), (7, 12), (13, 4)])
def test_dtw_matches_loops_and_path_is_valid(shape):
    c = torch.rand(*shape, generator=_gen(sum(shape)))
    value, path = dtw(c)
    assert value.shape == () and path.shape == shape and path.dtype == torch.bool
    assert abs(value.item() - _dtw_loops(c.numpy())) < 1e-5
    assert abs((c * path).sum().item() - value.item()) < 1e-5, "the path's cost is the DTW value"
    _check_path(path, *shape)


def test_dtw_batched_with_masks_equals_unbatched():
    c = torch.rand(3, 9, 11, generator=_gen(1))
    rows, cols = [9, 4, 6], [11, 7, 2]
    c_pad = c.clone()
    for b in range(3):  # junk in the padding must not matter
        c_pad[b, rows[b] :] = 50.0
        c_pad[b, :, cols[b] :] = 50.0
    value, path = dtw(c_pad, _prefix_mask(rows, 9), _prefix_mask(cols, 11))
    for b in range(3):
        v1, p1 = dtw(c[b, : rows[b], : cols[b]])
        assert torch.isclose(value[b], v1) and torch.equal(path[b, : rows[b], : cols[b]], p1)
        _check_path(path[b], rows[b], cols[b])


def test_dtw_hand_made_and_under_inference_mode():
    c = torch.tensor([[0.0, 1, 1], [1, 0, 1], [1, 1, 0]])
    value, path = dtw(c)
    assert value.item() == 0 and torch.equal(path, torch.eye(3, dtype=torch.bool))
    stretched = torch.tensor([[0.0, 0, 1], [1, 1, 0]])  # row 0 matches columns 0-1
    assert torch.equal(dtw(stretched)[1], torch.tensor([[True, True, False], [False, False, True]]))
    with torch.inference_mode():
        v2, p2 = dtw(c.clone())
        e2 = soft_alignment(c.clone(), 0.1)
    assert v2.item() == 0 and torch.equal(p2, path) and e2.shape == (3, 3)


def test_dtw_clear_errors():
    with pytest.raises(ValueError, match="cost"):
        dtw(torch.rand(2, 3, 4, 5))
    with pytest.raises(ValueError, match="NaN"):
        dtw(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match="row_mask"):
        dtw(torch.rand(2, 3, 4), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="prefix"):
        dtw(torch.rand(1, 3, 4), torch.tensor([[True, False, True]]))
    with pytest.raises(ValueError, match="at least one"):
        dtw(torch.rand(1, 3, 4), None, torch.zeros(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="gamma"):
        soft_dtw(torch.rand(3, 4), gamma=0.0)


def _log_n_paths(n, m):
    return math.log(sum(math.comb(n - 1, k) * math.comb(m - 1, k) * 2**k for k in range(min(n, m))))


@pytest.mark.parametrize("gamma", [1.0, 0.1, 0.01, 1e-3])
def test_soft_dtw_bounds_and_limit(gamma):
    c = torch.rand(8, 10, generator=_gen(3), dtype=torch.float64)
    hard = dtw(c)[0].item()
    soft = soft_dtw(c, gamma).item()
    assert -1e-9 <= hard - soft <= gamma * _log_n_paths(8, 10) + 1e-9
    if gamma <= 1e-3:
        assert abs(hard - soft) < 0.05


def test_soft_alignment_is_gradient_and_tends_to_path():
    c = torch.rand(6, 9, generator=_gen(4), dtype=torch.float64, requires_grad=True)
    soft_dtw(c, 0.5).backward()
    e = soft_alignment(c.detach(), 0.5)
    assert torch.allclose(c.grad, e) and (e >= 0).all() and (e <= 1 + 1e-9).all()
    _, path = dtw(c.detach())
    assert torch.allclose(soft_alignment(c.detach(), 1e-4), path.double(), atol=1e-3)


def test_soft_dtw_batched_masks_and_float32():
    c = torch.rand(2, 5, 7, generator=_gen(5))
    rows, cols = _prefix_mask([5, 3], 5), _prefix_mask([7, 4], 7)
    v = soft_dtw(c, 0.3, rows, cols)
    assert torch.isclose(v[1], soft_dtw(c[1, :3, :4], 0.3)) and v.dtype == torch.float32


def test_soft_dtw_divergence():
    x = torch.randn(2, 7, 3, generator=_gen(6))
    y = torch.randn(2, 9, 3, generator=_gen(7))
    assert torch.allclose(soft_dtw_divergence(x, x, 1.0), torch.zeros(2), atol=1e-4)
    assert (soft_sx := soft_dtw(pairwise_cost(x, x), 1.0)).lt(0).all(), "raw soft-DTW is not 0 on x, x"
    del soft_sx
    d_xy, d_yx = soft_dtw_divergence(x, y, 1.0), soft_dtw_divergence(y, x, 1.0)
    assert (d_xy > 0).all() and torch.allclose(d_xy, d_yx, atol=1e-4)
    # masks: a padded batch gives the per-sample values
    xm = _prefix_mask([7, 4], 7)
    d = soft_dtw_divergence(x, y, 0.5, x_mask=xm)
    assert torch.isclose(d[1], soft_dtw_divergence(x[1, :4], y[1], 0.5), atol=1e-4)
    with pytest.raises(ValueError, match="x and y"):
        soft_dtw_divergence(x, torch.randn(2, 9, 4), 1.0)


def test_log_augmented_cost():
    x, y = torch.randn(2, 4, 3, generator=_gen(30)), torch.randn(2, 6, 3, generator=_gen(31))
    d2 = torch.cdist(x, y) ** 2
    want = 0.5 * d2 + torch.log(2 - torch.exp(-0.5 * d2))
    got = pairwise_cost(x, y, "log_augmented")
    assert torch.allclose(got, want, atol=1e-5) and (got >= 0).all()
    assert torch.allclose(pairwise_cost(x, x, "log_augmented").diagonal(dim1=-2, dim2=-1), torch.zeros(2, 4), atol=1e-5)
    # k = exp(-c) and k / (1 + k) = exp(-d²/2) / 2 (Cuturi et al. 2007's condition): check on the numbers
    k = torch.exp(-got)
    assert torch.allclose(k / (1 + k), 0.5 * torch.exp(-0.5 * d2), atol=1e-6)
    assert "log_augmented" in PAIRWISE_METRICS


def test_soft_dtw_divergence_log_augmented_is_non_negative():
    # D_1 >= 0 is proved for this cost at gamma = 1 (Blondel, Mensch & Vert 2021): random pairs of any lengths,
    # and pairs built to be close (a sequence and a slightly perturbed, re-timed copy of it)
    g = _gen(40)
    values = []
    for _ in range(20):
        n, m, d = (int(v) for v in torch.randint(1, 7, (3,), generator=g))
        scale = float(torch.rand(1, generator=g)) * 3
        x = scale * torch.randn(n, d, generator=g, dtype=torch.float64)
        y = scale * torch.randn(m, d, generator=g, dtype=torch.float64)
        close = torch.repeat_interleave(x, 2, 0) + 0.05 * torch.randn(2 * n, d, generator=g, dtype=torch.float64)
        for other in (y, close):
            values.append(soft_dtw_divergence(x, other, 1.0, cost="log_augmented").item())
        assert abs(soft_dtw_divergence(x, x, 1.0, cost="log_augmented").item()) < 1e-10
    assert min(values) >= -1e-10 and max(values) > 0.1
    # batched, masked, and the cost given as a function agree with the name
    x, y = torch.randn(2, 5, 3, generator=g), torch.randn(2, 4, 3, generator=g)
    by_name = soft_dtw_divergence(x, y, 1.0, cost="log_augmented", x_mask=_prefix_mask([5, 3], 5))
    by_fn = soft_dtw_divergence(
        x, y, 1.0, cost=lambda a, b: pairwise_cost(a, b, "log_augmented"), x_mask=_prefix_mask([5, 3], 5)
    )
    assert torch.allclose(by_name, by_fn) and (by_name >= 0).all()
    assert torch.isclose(by_name[1], soft_dtw_divergence(x[1, :3], y[1], 1.0, cost="log_augmented"), atol=1e-5)
    assert not torch.allclose(by_name, soft_dtw_divergence(x, y, 1.0, x_mask=_prefix_mask([5, 3], 5)))
    with pytest.raises(ValueError, match="cost"):
        soft_dtw_divergence(x, y, 1.0, cost="manhattan")
    with pytest.raises(TypeError, match="cost"):
        soft_dtw_divergence(x, y, 1.0, cost=3)


def _softmin(values, gamma: float) -> float:
    z = -np.asarray(values, dtype=np.float64) / gamma
    top = z.max()
    if top == -np.inf:
        return np.inf
    return -gamma * (top + math.log(np.exp(z - top).sum()))


def _soft_dtw_loops(c: np.ndarray, gamma: float) -> tuple[float, np.ndarray]:
    """Soft-DTW by the plain double loop of Cuturi & Blondel (2017), Algorithm 1: value and the table R."""
    n, m = c.shape
    r = np.full((n + 1, m + 1), np.inf)
    r[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            r[i, j] = c[i - 1, j - 1] + _softmin([r[i - 1, j - 1], r[i - 1, j], r[i, j - 1]], gamma)
    return r[n, m], r


def _soft_alignment_loops(c: np.ndarray, gamma: float) -> np.ndarray:
    """E = ∂sdtw/∂C by the backward recursion of Cuturi & Blondel (2017), Algorithm 2, in plain loops."""
    n, m = c.shape
    _, r_fwd = _soft_dtw_loops(c, gamma)
    r = np.full((n + 2, m + 2), -np.inf)
    r[1 : n + 1, 1 : m + 1] = r_fwd[1:, 1:]
    r[n + 1, m + 1] = r_fwd[n, m]
    d = np.zeros((n + 2, m + 2))
    d[1 : n + 1, 1 : m + 1] = c
    e = np.zeros((n + 2, m + 2))
    e[n + 1, m + 1] = 1.0
    for j in range(m, 0, -1):
        for i in range(n, 0, -1):
            a = math.exp((r[i + 1, j] - r[i, j] - d[i + 1, j]) / gamma)
            b = math.exp((r[i, j + 1] - r[i, j] - d[i, j + 1]) / gamma)
            g = math.exp((r[i + 1, j + 1] - r[i, j] - d[i + 1, j + 1]) / gamma)
            e[i, j] = e[i + 1, j] * a + e[i, j + 1] * b + e[i + 1, j + 1] * g
    return e[1 : n + 1, 1 : m + 1]


def test_soft_dtw_loop_references_are_right():
    # the value reference is DTW as gamma -> 0 and counts paths on a zero cost: sdtw_γ(0) = -γ log|𝒜(N, M)|
    c = np.random.default_rng(0).random((4, 6))
    assert abs(_soft_dtw_loops(c, 1e-4)[0] - _dtw_loops(c)) < 1e-2
    assert _soft_dtw_loops(np.zeros((4, 6)), 0.7)[0] == pytest.approx(-0.7 * _log_n_paths(4, 6), rel=1e-12)
    # the backward recursion is the gradient of the value: central differences on every cell
    gamma, eps = 0.4, 1e-6
    e = _soft_alignment_loops(c, gamma)
    fd = np.zeros_like(c)
    for i in range(c.shape[0]):
        for j in range(c.shape[1]):
            up, down = c.copy(), c.copy()
            up[i, j] += eps
            down[i, j] -= eps
            fd[i, j] = (_soft_dtw_loops(up, gamma)[0] - _soft_dtw_loops(down, gamma)[0]) / (2 * eps)
    assert np.allclose(e, fd, atol=1e-6)
    assert e[0, 0] == pytest.approx(1.0) and e[-1, -1] == pytest.approx(1.0)


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (5, 1), (4, 4), (6, 9), (10, 3)])
@pytest.mark.parametrize("gamma", [1.0, 0.1])
def test_soft_dtw_matches_plain_loops(shape, gamma):
    c = torch.rand(*shape, generator=_gen(100 + sum(shape)), dtype=torch.float64)
    ref = _soft_dtw_loops(c.numpy(), gamma)[0]
    assert abs(soft_dtw(c, gamma).item() - ref) < 1e-10
    assert abs(soft_dtw(c.float(), gamma).item() - ref) < 1e-4 * max(1.0, abs(ref)), "float32 input"
    if min(shape) > 1:  # the comparison can fail: another gamma gives another value (1×M has one path)
        assert abs(_soft_dtw_loops(c.numpy(), 2 * gamma)[0] - ref) > 1e-3


@pytest.mark.parametrize("gamma", [1.0, 0.1])
def test_soft_dtw_batched_masks_match_plain_loops(gamma):
    c = torch.rand(3, 7, 9, generator=_gen(120), dtype=torch.float64)
    rows, cols = [7, 4, 1], [9, 2, 6]
    c_pad = c.clone()
    for b in range(3):  # junk in the padding must not matter
        c_pad[b, rows[b] :] = 50.0
        c_pad[b, :, cols[b] :] = -50.0
    value = soft_dtw(c_pad, gamma, _prefix_mask(rows, 7), _prefix_mask(cols, 9))
    refs = [_soft_dtw_loops(c[b, : rows[b], : cols[b]].numpy(), gamma)[0] for b in range(3)]
    assert value.shape == (3,) and np.allclose(value.numpy(), refs, rtol=0, atol=1e-10)
    unmasked = [_soft_dtw_loops(c_pad[b].numpy(), gamma)[0] for b in range(3)]
    assert abs(unmasked[1] - refs[1]) > 1e-3 and abs(unmasked[2] - refs[2]) > 1e-3, "the masks must matter here"


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (5, 1), (6, 9), (10, 3)])
@pytest.mark.parametrize("gamma", [1.0, 0.1])
def test_soft_dtw_gradient_matches_cuturi_blondel_backward_recursion(shape, gamma):
    c = torch.rand(*shape, generator=_gen(200 + sum(shape)), dtype=torch.float64, requires_grad=True)
    e_ref = _soft_alignment_loops(c.detach().numpy(), gamma)
    soft_dtw(c, gamma).backward()
    assert np.allclose(c.grad.numpy(), e_ref, rtol=0, atol=1e-10), "autograd through soft_dtw"
    assert np.allclose(soft_alignment(c.detach(), gamma).numpy(), e_ref, rtol=0, atol=1e-10), "soft_alignment"
    e32 = soft_alignment(c.detach().float(), gamma)
    assert e32.dtype == torch.float32 and np.allclose(e32.numpy(), e_ref, rtol=0, atol=1e-4), "float32 input"
    if min(shape) > 1:  # the comparison can fail: another gamma gives another expected alignment
        assert np.abs(_soft_alignment_loops(c.detach().numpy(), 2 * gamma) - e_ref).max() > 1e-3


def test_soft_alignment_batched_masks_match_backward_recursion():
    gamma = 0.3
    c = torch.rand(3, 6, 8, generator=_gen(220), dtype=torch.float64)
    rows, cols = [6, 3, 5], [8, 5, 1]
    c_pad = c.clone()
    for b in range(3):
        c_pad[b, rows[b] :] = 50.0
        c_pad[b, :, cols[b] :] = -50.0
    e = soft_alignment(c_pad, gamma, _prefix_mask(rows, 6), _prefix_mask(cols, 8))
    for b in range(3):
        n, m = rows[b], cols[b]
        e_ref = _soft_alignment_loops(c[b, :n, :m].numpy(), gamma)
        assert np.allclose(e[b, :n, :m].numpy(), e_ref, rtol=0, atol=1e-10)
        assert (e[b, n:] == 0).all() and (e[b, :, m:] == 0).all(), "no gradient outside the lengths"
    e_unmasked = _soft_alignment_loops(c_pad[1].numpy(), gamma)[:3, :5]
    assert np.abs(e_unmasked - e[1, :3, :5].numpy()).max() > 1e-3, "the masks must matter here"


def test_pairwise_cost():
    x, y = torch.randn(2, 4, 3, generator=_gen(8)), torch.randn(2, 6, 3, generator=_gen(9))
    assert torch.allclose(pairwise_cost(x, y), torch.cdist(x, y) ** 2, atol=1e-5)
    assert torch.allclose(pairwise_cost(x, y, "euclidean"), torch.cdist(x, y), atol=1e-4)
    cos = pairwise_cost(x[0], y[0], "cosine")
    assert cos.shape == (4, 6) and torch.allclose(cos, 1 - F.cosine_similarity(x[0, :, None], y[0, None], dim=-1))
    with pytest.raises(ValueError, match="D"):
        pairwise_cost(torch.randn(4, 3), torch.randn(5, 2))
    with pytest.raises(ValueError, match="metric"):
        pairwise_cost(x, y, "manhattan")


# ---------------------------------------------------------------------------------------------------------------
# Pairings and the metric


def test_pairings_hand_made():
    path = torch.tensor([[[1, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]], dtype=torch.bool)
    assert path_to_pairing(path).tolist() == [[1, 3, -1]]
    rows, cols = _prefix_mask([3, 4], 4), _prefix_mask([6, 2], 6)
    assert index_pairing(rows, cols).tolist() == [[0, 1, 2, -1], [0, 1, 1, 1]]
    assert proportional_pairing(rows, cols).tolist() == [[1, 3, 5, -1], [0, 0, 1, 1]]


def test_alignment_accuracy_hand_made():
    pred = torch.tensor([[0, 0, 1, 2], [0, 1, 1, -1]])
    target = torch.tensor([[0, 1, 1, 2], [0, 0, 1, -1]])
    assert alignment_accuracy(pred, target) == pytest.approx(5 / 7)  # padding (-1) is not counted
    mask = torch.tensor([[True, False, False, False], [True, True, False, False]])
    assert alignment_accuracy(pred, target, mask) == pytest.approx(2 / 3)
    assert alignment_accuracy(target, target) == 1.0
    with pytest.raises(ValueError, match="target"):
        alignment_accuracy(pred, target[:, :3])
    with pytest.raises(ValueError, match="no frame"):
        alignment_accuracy(pred, target, torch.zeros_like(mask))
    with pytest.raises(TypeError, match="pred"):
        alignment_accuracy(pred.float(), target)


# ---------------------------------------------------------------------------------------------------------------
# The shared space, the aligners


def test_info_nce_is_cross_entropy_on_cosine_logits():
    z, cands = torch.randn(6, 5, generator=_gen(10)), torch.randn(4, 5, generator=_gen(11))
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    logits = F.normalize(z, dim=-1) @ F.normalize(cands, dim=-1).T / 0.2
    assert torch.isclose(info_nce(z, cands, y, 0.2), F.cross_entropy(logits, y))
    assert info_nce(cands[y], cands, y, 0.01) < 1e-3, "anchors equal to their positives: loss near 0"
    with pytest.raises(ValueError, match="target"):
        info_nce(z, cands, torch.tensor([0, 1, 2, 3, 4, 0]))
    with pytest.raises(ValueError, match="candidates"):
        info_nce(z, torch.randn(4, 6), y)


def test_frame_encoder_masks_and_norm():
    torch.manual_seed(0)
    enc = FrameEncoder(in_dim=12, dim=8, context=2)
    x = torch.randn(2, 10, 3, 4)
    mask = _prefix_mask([10, 6], 10)
    z = enc(x, mask)
    assert z.shape == (2, 10, 8) and (z[1, 6:] == 0).all()
    assert torch.allclose(z[mask].norm(dim=-1), torch.ones(int(mask.sum())), atol=1e-5)
    x2 = x.clone()
    x2[1, 6:] = 100.0
    assert torch.allclose(enc(x2, mask), z, atol=1e-6), "padding does not leak into real frames"
    with pytest.raises(ValueError, match="12 features"):
        enc(torch.randn(2, 10, 13))


@pytest.fixture(scope="module")
def small_batch():
    return collate_episodes(make_alignment_episodes(4, "val", warp=[0.0, 0.3, 0.7, 1.0], seed=11))


def test_alignment_space_costs(small_batch):
    torch.manual_seed(0)
    space = AlignmentSpace(dim=16).eval()
    with torch.no_grad():
        same, cos = space.cost(small_batch), space.cost(small_batch, "cosine")
    b, ta, tv = small_batch["speech"].shape[0], small_batch["speech"].shape[1], small_batch["video"].shape[1]
    assert same.shape == cos.shape == (b, ta, tv)
    assert (same >= -1e-6).all() and (cos >= -1e-6).all() and (cos <= 2 + 1e-6).all()
    assert space.words.shape == (10, 16) and torch.allclose(space.words.norm(dim=-1), torch.ones(10))
    with pytest.raises(ValueError, match="kind"):
        space.cost(small_batch, "l1")


def test_relative_positions_and_attention_aligner(small_batch):
    mask = small_batch["speech_mask"]
    pos = relative_position_features(mask, n_freq=3)
    assert pos.shape == (*mask.shape, 6) and (pos[~mask] == 0).all()
    n = int(mask[0].sum())
    assert torch.allclose(pos[0, n - 1, :3], torch.sin(math.pi * torch.arange(1, 4).float()), atol=1e-5)
    torch.manual_seed(0)
    space, aligner = AlignmentSpace(dim=16).eval(), AttentionAligner(space_dim=16, dim=8, heads=2)
    za = space.speech(small_batch["speech"], mask)
    zv = space.video(small_batch["video"], small_batch["video_mask"])
    w = aligner(za, mask, zv, small_batch["video_mask"])
    assert w.shape == (4, mask.shape[1], zv.shape[1])
    assert (w.transpose(1, 2)[~small_batch["video_mask"]] == 0).all(), "no weight on padded video frames"
    assert torch.allclose(w.sum(-1)[mask], torch.ones(int(mask.sum())), atol=1e-5)


def test_segment_attention_loss_hand_made():
    q_tok, c_tok = torch.tensor([[0, 0, 1]]), torch.tensor([[0, 1, 1, -1]])
    perfect = torch.tensor([[[1.0, 0, 0, 0], [1, 0, 0, 0], [0, 0.5, 0.5, 0]]])
    assert segment_attention_loss(perfect, q_tok, c_tok) < 1e-5
    uniform = torch.full((1, 3, 4), 0.25)
    expected = -(math.log(0.25) * 2 + math.log(0.5)) / 3
    assert segment_attention_loss(uniform, q_tok, c_tok).item() == pytest.approx(expected, abs=1e-4)
    only_last = torch.tensor([[False, False, True]])
    assert segment_attention_loss(uniform, q_tok, c_tok, only_last).item() == pytest.approx(-math.log(0.5), abs=1e-4)
    with pytest.raises(ValueError, match="context_token"):
        segment_attention_loss(uniform, q_tok, c_tok[:, :3])


def test_predict_tokens(small_batch):
    b = small_batch
    for m in ("index", "proportional"):
        pred = predict_tokens(m, b)
        assert pred.shape == b["speech_token"].shape and (pred[~b["speech_mask"]] == -1).all()
        # episode 0 is at warp 0: both naive pairings are exact there
        assert alignment_accuracy(pred[:1], b["speech_token"][:1]) == 1.0
    torch.manual_seed(0)
    space, aligner = AlignmentSpace(dim=16).eval(), AttentionAligner(space_dim=16).eval()
    for m in ALIGN_METHODS:
        pred = predict_tokens(m, b, space, aligner)
        assert (pred[~b["speech_mask"]] == -1).all() and (pred[b["speech_mask"]] >= 0).all()
        assert (pred <= b["token_mask"].sum(1, keepdim=True) - 1).all()
    with pytest.raises(ValueError, match="space"):
        predict_tokens("dtw", b)
    with pytest.raises(ValueError, match="aligner"):
        predict_tokens("attention", b, space)
    with pytest.raises(ValueError, match="method"):
        predict_tokens("nearest", b)


def test_dtw_on_an_oracle_cost_recovers_strong_warp():
    b = collate_episodes(make_alignment_episodes(8, "test", warp=1.0, seed=12))
    same = b["speech_digit"][:, :, None] == b["video_digit"][:, None, :]
    cost = torch.where(b["speech_voiced"][:, :, None], (~same).float(), 0.5)
    _, path = dtw(cost, b["speech_mask"], b["video_mask"])
    pred = torch.where(b["speech_mask"], b["video_token"].gather(1, path_to_pairing(path).clamp_min(0)), -1)
    assert alignment_accuracy(pred, b["speech_token"], b["speech_voiced"]) > 0.97
    assert alignment_accuracy(predict_tokens("proportional", b), b["speech_token"], b["speech_voiced"]) < 0.75


def test_grounding_attention():
    torch.manual_seed(0)
    model = GroundingAttention(word_dim=8, dim=16)
    g = make_grounding_canvases(5, "val", seed=1)
    w = model(g.patches(), g.query)
    assert w.shape == (5, 16) and torch.allclose(w.sum(-1), torch.ones(5))
    with pytest.raises(ValueError, match="64 pixels"):
        model(torch.randn(5, 16, 1, 8, 9), g.query)
    with pytest.raises(ValueError, match="query"):
        model(g.patches(), g.query[:3])


# ---------------------------------------------------------------------------------------------------------------
# CUDA (runs only where there is a GPU)


@cuda
@pytest.mark.gpu
def test_dtw_and_attention_on_cuda_match_cpu():
    c = torch.rand(2, 30, 45, generator=_gen(13))
    rows, cols = _prefix_mask([30, 21], 30), _prefix_mask([45, 40], 45)
    v_cpu, p_cpu = dtw(c, rows, cols)
    v_gpu, p_gpu = dtw(c.cuda(), rows.cuda(), cols.cuda())
    assert torch.allclose(v_gpu.cpu(), v_cpu, atol=1e-4) and torch.equal(p_gpu.cpu(), p_cpu)
    assert torch.allclose(soft_dtw(c.cuda(), 0.1).cpu(), soft_dtw(c, 0.1), atol=1e-3)
    torch.manual_seed(0)
    cma = CrossModalAttention(8, 6, 12, heads=3)
    q, ctx = torch.randn(2, 4, 8), torch.randn(2, 7, 6)
    out_cpu, _ = cma(q, ctx, context_mask=cols[:, :7])
    out_gpu, _ = cma.cuda()(q.cuda(), ctx.cuda(), context_mask=cols[:, :7].cuda())
    assert torch.allclose(out_gpu.cpu(), out_cpu, atol=1e-4)
    b = collate_episodes(make_alignment_episodes(3, "val", warp=1.0, seed=3))
    space, aligner = AlignmentSpace().eval(), AttentionAligner().eval()
    acc = {m: alignment_accuracy(predict_tokens(m, b, space, aligner), b["speech_token"]) for m in ALIGN_METHODS}
    space, aligner = space.cuda(), aligner.cuda()
    bg = {k: v.cuda() for k, v in b.items()}
    for m in ALIGN_METHODS:  # ties in an untrained space may break differently on the GPU: compare accuracies
        pred = predict_tokens(m, bg, space, aligner)
        assert pred.is_cuda and abs(alignment_accuracy(pred, bg["speech_token"]) - acc[m]) < 0.05
