import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmlab.contrastive import (
    INIT_LOGIT_SCALE,
    MAX_LOGIT_SCALE,
    DualEncoder,
    FrozenTextTower,
    clip_loss,
    embed,
    fill_templates,
    lit_text_tower,
    retrieval_metrics,
    retrieval_report,
    similarity_logits,
    train_contrastive,
    zero_shot_predict,
    zero_shot_weights,
)
from mmlab.models import AudioCNN, MLPEncoder
from mmlab.train import History


def _reference_loss(a, b, t):
    """CLIP's loss written the long way: one softmax per row of S and per row of Sᵀ."""
    a = a / a.norm(dim=1, keepdim=True)
    b = b / b.norm(dim=1, keepdim=True)
    s = math.exp(t)  # as it is: the bound on t is a clamp of the parameter after each step, not of the forward
    n = len(a)
    i2t = t2i = 0.0
    for i in range(n):
        row = [s * float(a[i] @ b[j]) for j in range(n)]
        col = [s * float(b[i] @ a[j]) for j in range(n)]
        i2t += -row[i] + math.log(sum(math.exp(x) for x in row))
        t2i += -col[i] + math.log(sum(math.exp(x) for x in col))
    return 0.5 * (i2t + t2i) / n


def test_clip_loss_matches_a_straightforward_computation():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g)
    for t in (0.0, INIT_LOGIT_SCALE, 6.0):  # 6 > ln 100: used as it is (the forward never clamps)
        assert clip_loss(a, b, t).item() == pytest.approx(_reference_loss(a, b, t), rel=1e-5)


def test_clip_loss_is_symmetric_and_scale_free():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    assert torch.allclose(clip_loss(a, b, 2.0), clip_loss(b, a, 2.0))
    assert torch.allclose(clip_loss(3 * a, 0.5 * b, 2.0), clip_loss(a, b, 2.0), atol=1e-6)  # normalised inside


@pytest.mark.parametrize("batch", [1, 2, 16, 100])
def test_clip_loss_is_ln_b_for_constant_embeddings(batch):
    a = torch.ones(batch, 8)
    assert clip_loss(a, a.clone(), INIT_LOGIT_SCALE).item() == pytest.approx(math.log(batch), abs=1e-5)


def test_gradient_reaches_the_temperature_also_above_ln_100():
    """The forward uses exp(t) as it is: above ln 100 the gradient is not cut off (a forward clamp would zero it
    and a t that got there could never come back)."""
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    for t0 in (INIT_LOGIT_SCALE, MAX_LOGIT_SCALE + 1):
        t = torch.tensor(t0, requires_grad=True)
        clip_loss(a, b, t).backward()
        assert t.grad is not None and t.grad.abs() > 1e-4, t0
    # dL/dt = s·Σ(∂L/∂S)·Î·Tᵀ: check it at t = ln 100 + 1 by a central finite difference
    t0, eps = MAX_LOGIT_SCALE + 1, 1e-3
    t = torch.tensor(t0, dtype=torch.float64, requires_grad=True)
    clip_loss(a.double(), b.double(), t).backward()
    fd = (_reference_loss(a.double(), b.double(), t0 + eps) - _reference_loss(a.double(), b.double(), t0 - eps)) / (
        2 * eps
    )
    assert t.grad.item() == pytest.approx(fd, rel=1e-4)
    assert clip_loss(a, b, t0).item() != pytest.approx(clip_loss(a, b, MAX_LOGIT_SCALE).item())  # no forward clamp


def test_training_step_clamps_the_logit_scale_parameter():
    """Perfectly paired embeddings ask for a colder temperature (dL/dt < 0); with a big learning rate one AdamW
    step pushes t past ln 100, and the after-step clamp brings the *parameter* back to ln 100 exactly."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(16, 6, generator=g)
    m = DualEncoder(nn.Identity(), nn.Identity(), 6, a_dim=6, b_dim=6, temperature=0.0105)
    with torch.no_grad():  # identical heads: every pair is already perfectly matched
        m.head_b.load_state_dict(m.head_a.state_dict())
    assert m.logit_scale.item() < MAX_LOGIT_SCALE
    m.loss(x, x).backward()
    assert m.logit_scale.grad.item() < 0  # the loss wants t up
    m.zero_grad()
    h = train_contrastive(m, x, x, epochs=1, batch_size=16, lr=0.5, device="cpu", progress=False)
    assert h.steps == 1 and m.logit_scale.item() == pytest.approx(MAX_LOGIT_SCALE)
    assert m.temperature == pytest.approx(0.01)
    # the method itself: both bounds, and a fixed temperature (a buffer) is left alone
    with torch.no_grad():
        m.logit_scale.fill_(-1.0)
    assert m.clamp_logit_scale_().logit_scale.item() == 0.0
    fixed = DualEncoder(MLPEncoder(4, 8), MLPEncoder(4, 8), 6, temperature=2.0, learn_temperature=False)
    assert fixed.clamp_logit_scale_().logit_scale.item() == pytest.approx(math.log(0.5))


def test_clip_loss_clear_errors():
    with pytest.raises(ValueError, match=r"text_emb must have shape \(B, D\) with B=4"):
        clip_loss(torch.randn(4, 8), torch.randn(5, 8))
    with pytest.raises(ValueError, match=r"text_emb must have shape \(B, D\) with D=8"):
        clip_loss(torch.randn(4, 8), torch.randn(4, 6))
    with pytest.raises(ValueError, match=r"image_emb must have shape \(B, D\)"):
        clip_loss(torch.randn(4, 2, 8), torch.randn(4, 8))
    with pytest.raises(ValueError, match="logit_scale must be a scalar"):
        clip_loss(torch.randn(4, 8), torch.randn(4, 8), torch.zeros(2))
    with pytest.raises(ValueError, match="contains NaN"):
        clip_loss(torch.full((2, 3), float("nan")), torch.randn(2, 3))


def test_similarity_logits_shape_and_scale():
    a, b = torch.randn(3, 4), torch.randn(5, 4)
    s = similarity_logits(a, b, math.log(10.0))
    assert s.shape == (3, 5) and s.abs().max() <= 10.0 + 1e-5
    with pytest.raises(ValueError, match=r"b must have shape \(\*, D\) with D=4"):
        similarity_logits(a, torch.randn(5, 3))


def test_retrieval_metrics_on_hand_made_matrices():
    perfect = torch.eye(4) + 0.01 * torch.arange(4.0)  # diagonal wins every row
    m = retrieval_metrics(perfect, ks=(1, 2))
    assert m == {"R@1": 1.0, "R@2": 1.0, "MdR": 1.0}
    sim = torch.tensor(
        [
            [0.9, 0.1, 0.2, 0.0],  # right item first: rank 1
            [0.8, 0.5, 0.1, 0.0],  # right item second: rank 2
            [0.9, 0.8, 0.1, 0.7],  # right item last: rank 4
            [0.0, 0.0, 0.0, 0.3],  # rank 1
        ]
    )
    m = retrieval_metrics(sim, ks=(1, 2, 3))
    assert m["R@1"] == 0.5 and m["R@2"] == 0.75 and m["R@3"] == 0.75 and m["MdR"] == 1.0
    # several right answers: the best-scored one counts
    rel = torch.tensor([[False, True, True, False], [True, False, False, False]])
    m = retrieval_metrics(torch.tensor([[0.9, 0.1, 0.5, 0.0], [0.1, 0.2, 0.3, 0.4]]), rel, ks=(1, 2))
    assert m["R@1"] == 0.0 and m["R@2"] == 0.5
    # ties count against the query: a collapsed model gets no credit
    m = retrieval_metrics(torch.ones(5, 5), ks=(1, 5))
    assert m["R@1"] == 0.0 and m["R@5"] == 1.0 and m["MdR"] == 5.0


def test_retrieval_metrics_errors():
    with pytest.raises(ValueError, match="must be square"):
        retrieval_metrics(torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"relevant must have shape \(3, 4\)"):
        retrieval_metrics(torch.randn(3, 4), torch.ones(4, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one relevant"):
        retrieval_metrics(torch.randn(2, 2), torch.tensor([[True, False], [False, False]]))


def test_retrieval_report_both_directions_and_labels():
    z = F.normalize(torch.randn(6, 3), dim=-1)
    rep = retrieval_report(z, z.clone(), ks=(1,))
    assert rep == {"image→text R@1": 1.0, "image→text MdR": 1.0, "text→image R@1": 1.0, "text→image MdR": 1.0}
    # class-level: any item of the same label counts, so swapping items within a class changes nothing
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    rep = retrieval_report(z, z[[1, 0, 3, 2, 5, 4]], labels, labels, names=("audio", "text"), ks=(1,))
    assert rep["audio→text R@1"] == 1.0 and rep["text→audio R@1"] == 1.0
    with pytest.raises(ValueError, match="both labels_a and labels_b"):
        retrieval_report(z, z, labels, None)
    with pytest.raises(ValueError, match=r"labels_b must have shape \(6\)"):
        retrieval_report(z, z, labels, labels[:5])


class _FakeTextEncoder(nn.Module):
    """Deterministic stand-in for a pretrained encoder: a bag of hashed characters."""

    dim = 16

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(128, 16, generator=torch.Generator().manual_seed(0)))
        self.calls = 0

    def forward(self, texts):
        self.calls += 1
        x = torch.zeros(len(texts), 128)
        for i, t in enumerate(texts):
            for c in t:
                x[i, ord(c) % 128] += 1
        return x @ self.w


def test_frozen_text_tower_looks_up_and_encodes_new_texts():
    enc = _FakeTextEncoder()
    tower = FrozenTextTower(enc, ["a seven", "a two", "a seven"])
    assert len(tower.table) == 2 and tower.out_dim == 16 and not enc.w.requires_grad
    assert tower.train().training and not enc.training  # the locked encoder stays in eval mode
    assert not tower.eval().training and not enc.training
    ids = tower.ids(["a two", "a seven"])
    assert ids.tolist() == [1, 0] and enc.calls == 1
    out = tower(tower.ids(["a nine", "a two"]))  # "a nine" is encoded on the fly and appended
    assert len(tower.table) == 3 and enc.calls == 2
    assert torch.allclose(out, enc(["a nine", "a two"]))
    with pytest.raises(TypeError, match="list of strings"):
        tower.ids("a two")
    with pytest.raises(ValueError, match=r"ids must be in \[0, 3\)"):
        tower(torch.tensor([5]))
    with pytest.raises(ValueError, match="non-empty"):
        FrozenTextTower(enc, [])


def test_lit_tower_loads_packaged_minilm_offline(capsys):
    tower = lit_text_tower(["a handwritten seven", "the digit 7", "a red circle"])
    assert "packaged:all-MiniLM-L6-v2" in capsys.readouterr().out
    assert tower.source.startswith("packaged:all-MiniLM-L6-v2") and tower.table.shape == (3, 384)
    assert not any(p.requires_grad for p in tower.parameters())


def test_dual_encoder_freezes_tower_and_learns_temperature():
    tower = FrozenTextTower(_FakeTextEncoder(), ["x"])
    m = DualEncoder(MLPEncoder(4, 8), tower, 6, freeze_b=True)
    assert m.temperature == pytest.approx(0.07)
    za, zb = m(torch.randn(3, 4), tower.ids(["x", "y", "z"]))
    assert za.shape == zb.shape == (3, 6)
    assert torch.allclose(za.norm(dim=1), torch.ones(3)) and torch.allclose(zb.norm(dim=1), torch.ones(3))
    m.loss(torch.randn(3, 4), tower.ids(["x", "y", "z"])).backward()
    assert m.logit_scale.grad is not None and m.head_b.weight.grad is not None
    assert all(p.grad is None for p in m.encoder_b.parameters())
    fixed = DualEncoder(MLPEncoder(4, 8), MLPEncoder(4, 8), 6, temperature=0.5, learn_temperature=False)
    assert "logit_scale" not in dict(fixed.named_parameters()) and fixed.temperature == pytest.approx(0.5)
    with pytest.raises(ValueError, match="out_dim"):
        DualEncoder(nn.Identity(), MLPEncoder(4, 8))
    with pytest.raises(ValueError, match="temperature must be >= 0.01"):
        DualEncoder(MLPEncoder(4, 8), MLPEncoder(4, 8), temperature=0.001)
    with pytest.raises(ValueError, match=r"must start in \[0.01, 1\]"):
        DualEncoder(MLPEncoder(4, 8), MLPEncoder(4, 8), temperature=2.0)


def _toy_pairs(n=256, seed=0):
    """Pairs that share a hidden 4-class factor, seen through different random maps."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    proto = torch.randn(4, 6, generator=g)
    a = proto[y] @ torch.randn(6, 10, generator=g) + 0.1 * torch.randn(n, 10, generator=g)
    b = proto[y] @ torch.randn(6, 12, generator=g) + 0.1 * torch.randn(n, 12, generator=g)
    return a, b, y


def test_train_contrastive_learns_a_shared_space():
    a, b, y = _toy_pairs()
    torch.manual_seed(0)
    m = DualEncoder(MLPEncoder(10, 16), MLPEncoder(12, 16), 8)
    h = train_contrastive(m, a, b, epochs=15, batch_size=64, seed=0, device="cpu", progress=False)
    assert isinstance(h, History) and h.epochs == 15 and h.steps == 15 * 4
    assert len(h.steps_log["loss"]) == len(h.steps_log["logit_scale"]) == 60 and h["loss"] == h.steps_log["loss"]
    assert len(h["train_loss"]) == len(h.metrics["logit_scale"]) == 15
    assert h.steps_log["logit_scale"][0] == pytest.approx(INIT_LOGIT_SCALE)  # the t used by the first step
    assert h["train_loss"][-1] < 0.8 * math.log(64) < h["train_loss"][0] + 0.5
    za, zb = embed(m.embed_a, a), embed(m.embed_b, b)
    assert retrieval_report(za, zb, y, y)["image→text R@1"] > 0.9
    # zero-shot: class "prompts" are the class means of tower b's inputs
    w = zero_shot_weights(lambda rows: m.embed_b(torch.stack(rows)), [[b[y == c].mean(0)] for c in range(4)])
    assert w.shape == (4, 8)
    assert (zero_shot_predict(za, w) == y).float().mean() > 0.9


def test_train_contrastive_errors():
    a, b, _ = _toy_pairs(32)
    m = DualEncoder(MLPEncoder(10, 16), MLPEncoder(12, 16), 8)
    with pytest.raises(ValueError, match="same number of pairs"):
        train_contrastive(m, a, b[:30], epochs=1, batch_size=8, progress=False)
    with pytest.raises(ValueError, match=r"batch_size must be in \[2, 32\]"):
        train_contrastive(m, a, b, epochs=1, batch_size=64, progress=False)
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        train_contrastive(m, a, b, epochs=0, batch_size=8, progress=False)


def test_zero_shot_prompt_ensembling_formula():
    table = {"p0": torch.tensor([2.0, 0.0]), "p1": torch.tensor([0.0, 1.0]), "q": torch.tensor([0.0, -3.0])}
    w = zero_shot_weights(lambda ps: torch.stack([table[p] for p in ps]), [["p0", "p1"], ["q"]])
    assert torch.allclose(w, torch.tensor([[2**-0.5, 2**-0.5], [0.0, -1.0]]))  # mean of unit vectors, renormalised
    assert zero_shot_predict(torch.tensor([[1.0, 0.9], [0.1, -1.0]]), w).tolist() == [0, 1]
    assert fill_templates(["a {w}", "digit {d}"], [{"w": "one", "d": 1}]) == [["a one", "digit 1"]]
    with pytest.raises(ValueError, match="one per class"):
        zero_shot_weights(lambda ps: torch.zeros(len(ps), 2), ["p0"])


def _hand_written_loop(model, x_a, x_b, *, epochs, batch_size, lr=3e-3, weight_decay=1e-4, seed=0):
    """The loop train_contrastive replaced: seeded permutations, last incomplete batch dropped, AdamW groups."""

    def take(x, idx):
        return tuple(t[idx] for t in x) if isinstance(x, tuple) else x[idx]

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        [
            {"params": [p for p in params if p.dim() > 1], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0},
        ],
        lr=lr,
    )
    gen, losses, n = torch.Generator().manual_seed(seed), [], len(x_b)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for s in range(n // batch_size):
            idx = order[s * batch_size : (s + 1) * batch_size]
            za, zb = model(take(x_a, idx), take(x_b, idx))
            loss = clip_loss(za, zb, model.logit_scale)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0.0, MAX_LOGIT_SCALE)  # CLIP's clamp of the parameter after each step
            losses.append(loss.item())
    return losses


def test_train_contrastive_reproduces_the_hand_written_loop_with_tuple_inputs():
    """Audio (a tuple of padded frames (N, T, n_mels) and lengths) against vectors: same batches, same numbers."""
    g = torch.Generator().manual_seed(3)
    audio, lengths = torch.randn(42, 12, 8, generator=g), torch.randint(4, 13, (42,), generator=g)
    b = torch.randn(42, 5, generator=g)
    runs = []
    for use_fit in (False, True):
        torch.manual_seed(0)
        m = DualEncoder(AudioCNN(8, 6, width=8), MLPEncoder(5, 6), 4)
        if use_fit:
            h = train_contrastive(m, (audio, lengths), b, epochs=3, batch_size=16, seed=5, device="cpu", progress=False)
            losses = h.steps_log["loss"]
            assert h.steps == 3 * 2  # 42 // 16 = 2 full batches per epoch; the last 10 pairs are dropped
            assert h["train_loss"] == pytest.approx([sum(losses[i : i + 2]) / 2 for i in (0, 2, 4)])
        else:
            losses = _hand_written_loop(m, (audio, lengths), b, epochs=3, batch_size=16, seed=5)
        runs.append((losses, [p.detach().clone() for p in m.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(p, q) for p, q in zip(runs[0][1], runs[1][1]))


def test_train_contrastive_leaves_the_global_random_state_alone():
    a, b, _ = _toy_pairs(64)
    m = DualEncoder(MLPEncoder(10, 16), MLPEncoder(12, 16), 8)
    state = torch.get_rng_state()
    train_contrastive(m, a, b, epochs=2, batch_size=16, seed=1, device="cpu", progress=False)
    assert torch.equal(torch.get_rng_state(), state)


def test_embed_batches_tuples_restores_mode_and_takes_plain_functions():
    g = torch.Generator().manual_seed(4)
    audio, lengths = torch.randn(10, 7, 8, generator=g), torch.randint(3, 8, (10,), generator=g)
    m = DualEncoder(AudioCNN(8, 6, width=8), MLPEncoder(5, 6), 4).train()
    z = embed(m.embed_a, (audio, lengths), batch_size=3)
    assert z.shape == (10, 4) and z.device.type == "cpu" and not z.requires_grad
    assert m.training and m.encoder_a.training  # restored after the call
    with torch.no_grad():
        assert torch.allclose(z, m.eval().embed_a((audio, lengths)), atol=1e-6)
    assert torch.equal(embed(lambda x: 2 * x, torch.ones(5, 2), batch_size=2), torch.full((5, 2), 2.0))
    with pytest.raises(ValueError, match="share their first dimension"):
        embed(m.embed_a, (audio, lengths[:9]))
    with pytest.raises(TypeError, match="x must be a tensor or a tuple of tensors"):
        embed(m.embed_a, [1, 2])
