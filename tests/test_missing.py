import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from mmlab import seed_everything
from mmlab.missing import (
    CrossModalReconstructor,
    MissingModalityClassifier,
    MissingToken,
    ModalityDropout,
    accuracy_by_pattern,
    check_presence,
    effective_rates,
    evaluate_with_missing,
    expected_accuracy,
    fill_missing,
    mean_fill,
    missing_rate_curve,
    missing_rates_figure,
    pattern_probabilities,
    reconstruction_loss,
    robustness_auc,
    sample_presence,
    train_classifier,
    zero_fill,
)
from mmlab.models import MLPEncoder
from mmlab.train import History

# ------------------------------------------------------------------------------------------------ presence masks


def test_sample_presence_respects_rates_exactly_when_another_modality_is_always_present():
    mask = sample_presence(200_000, [0.3, 0.0], generator=torch.Generator().manual_seed(0))
    assert mask.shape == (200_000, 2) and mask.dtype == torch.bool
    missing = (~mask).float().mean(0)
    assert abs(missing[0].item() - 0.3) < 0.005
    assert missing[1].item() == 0.0


@pytest.mark.parametrize("rates", [[0.7, 0.6, 0.5], [0.95, 0.95], [0.5, 0.5], [1.0, 0.2]])
def test_sample_presence_matches_the_documented_rates_and_never_drops_everything(rates):
    mask = sample_presence(200_000, rates, generator=torch.Generator().manual_seed(1))
    assert mask.any(1).all()
    assert np.allclose((~mask).float().mean(0).numpy(), effective_rates(rates), atol=0.005)
    rows, counts = torch.unique(mask, dim=0, return_counts=True)
    freq = {tuple(r.tolist()): int(c) for r, c in zip(rows, counts)}
    for pattern, p in pattern_probabilities(rates).items():
        assert abs(freq.get(pattern, 0) / len(mask) - p) < 0.005, pattern


def test_effective_rates_formula():
    r = [0.7, 0.6, 0.5]
    empty = 0.7 * 0.6 * 0.5
    expected = [x - empty * (1 - x) / sum(1 - y for y in r) for x in r]
    assert np.allclose(effective_rates(r), expected)
    assert np.isclose(sum(pattern_probabilities(r).values()), 1.0)
    assert effective_rates([1.0, 0.0]) == [1.0, 0.0]


def test_sample_presence_is_reproducible_and_moves_to_device():
    a = sample_presence(64, [0.5, 0.5], generator=torch.Generator().manual_seed(3), device="cpu")
    b = sample_presence(64, [0.5, 0.5], generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert sample_presence(0, [0.5, 0.5]).shape == (0, 2)


def test_sample_presence_errors():
    with pytest.raises(ValueError, match="all 1"):
        sample_presence(4, [1.0, 1.0])
    with pytest.raises(ValueError, match=r"rates\[1\] must be in \[0, 1\]"):
        sample_presence(4, [0.5, 1.5])
    with pytest.raises(ValueError, match="batch_size"):
        sample_presence(-1, [0.5])
    with pytest.raises(TypeError, match="rates must be a sequence"):
        sample_presence(4, 0.5)
    with pytest.raises(ValueError, match="empty"):
        sample_presence(4, [])


def test_check_presence_errors():
    ok = torch.tensor([[True, False], [False, True]])
    assert check_presence(ok, 2, 2) is ok
    with pytest.raises(TypeError, match="present must have dtype bool"):
        check_presence(ok.float(), 2, 2)
    with pytest.raises(ValueError, match=r"present must have shape \(2, 3\)"):
        check_presence(ok, 2, 3)
    with pytest.raises(ValueError, match=r"present must have shape \(\*, 2\)|present must have shape \(B, 2\)"):
        check_presence(ok[0], None, 2)
    with pytest.raises(ValueError, match="row 1 has every modality missing"):
        check_presence(torch.tensor([[True, False], [False, False]]), 2, 2)


# ------------------------------------------------------------------------------------------------------- fills


def test_fills_put_exact_values_in_missing_rows_and_leave_present_rows_untouched():
    x = torch.randn(5, 3, 2)
    present = torch.tensor([True, False, True, False, True])
    z = zero_fill(x, present)
    assert torch.equal(z[present], x[present]) and (z[~present] == 0).all()
    mu = torch.randn(3, 2)
    m = mean_fill(x, present, mu)
    assert torch.equal(m[present], x[present])
    assert torch.equal(m[~present], mu.expand(2, 3, 2))
    c = fill_missing(x, present, -7.5)
    assert (c[~present] == -7.5).all() and torch.equal(c[present], x[present])
    assert torch.equal(fill_missing(x, torch.ones(5, dtype=torch.bool), 0.0), x)


def test_fill_gradients_reach_the_token_but_not_missing_inputs():
    x = torch.randn(4, 3, requires_grad=True)
    token = nn.Parameter(torch.zeros(3))
    present = torch.tensor([True, False, False, True])
    fill_missing(x, present, token).sum().backward()
    assert torch.equal(x.grad[~present], torch.zeros(2, 3))
    assert torch.equal(x.grad[present], torch.ones(2, 3))
    assert torch.equal(token.grad, torch.full((3,), 2.0))


def test_fill_errors():
    x = torch.randn(4, 3)
    with pytest.raises(TypeError, match="present must have dtype bool"):
        zero_fill(x, torch.ones(4))
    with pytest.raises(ValueError, match=r"present must have shape \(4\)"):
        zero_fill(x, torch.ones(5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"value must have shape \(3\)"):
        mean_fill(x, torch.ones(4, dtype=torch.bool), torch.zeros(4))
    with pytest.raises(ValueError, match=r"value must have shape \(3\)"):
        mean_fill(x, torch.ones(4, dtype=torch.bool), torch.zeros(1, 3))
    with pytest.raises(TypeError, match="value must be a number or a tensor"):
        fill_missing(x, torch.ones(4, dtype=torch.bool), "zero")
    with pytest.raises(TypeError, match="x must have dtype float"):
        zero_fill(torch.ones(4, 3, dtype=torch.long), torch.ones(4, dtype=torch.bool))


def test_missing_token_fills_with_its_learned_vector():
    tok = MissingToken([3, 2])
    z = [torch.randn(4, 3), torch.randn(4, 2)]
    present = torch.tensor([[True, True], [False, True], [True, False], [True, True]])
    out = tok(z, present)
    assert torch.equal(out[0][1], tok.tokens[0].detach()) and torch.equal(out[1][2], tok.tokens[1].detach())
    assert torch.equal(out[0][[0, 2, 3]], z[0][[0, 2, 3]])
    with pytest.raises(ValueError, match="features must hold 2 tensors"):
        tok(z[:1], present)
    with pytest.raises(ValueError, match="input_dims must be positive"):
        MissingToken([3, 0])
    with pytest.raises(TypeError, match="input_dims must be a sequence"):
        MissingToken(3)
    assert tok.input_dims == [3, 2]


def test_modality_dropout_drops_at_its_rates_in_training_only():
    seed_everything(0)
    drop = ModalityDropout([0.4, 0.0])
    present = torch.ones(50_000, 2, dtype=torch.bool)
    out = drop(present)
    assert abs((~out[:, 0]).float().mean().item() - 0.4) < 0.01 and out[:, 1].all()
    given = torch.tensor([[False, True]] * 8 + [[True, False]] * 8)
    kept = ModalityDropout([0.9, 0.9])(given)
    assert torch.equal(kept, given), "a row is never emptied: it keeps its original mask"
    drop.eval()
    assert torch.equal(drop(present), present)
    with pytest.raises(ValueError, match=r"present must have shape \(\*, 2\)|present must have shape \(B, 2\)"):
        drop.train()(torch.ones(4, 3, dtype=torch.bool))


# ------------------------------------------------------------------------------------------------ reconstruction


def test_reconstruction_loss_formula_and_zero_when_nothing_missing():
    z = [torch.randn(6, 4), torch.randn(6, 2)]
    zh = [torch.randn(6, 4), torch.randn(6, 2)]
    full = torch.ones(6, 2, dtype=torch.bool)
    assert reconstruction_loss(zh, z, full).item() == 0.0
    present = torch.tensor([[True, False], [False, True], [True, True], [True, False], [True, True], [True, True]])
    num = ((zh[0][1] - z[0][1]) ** 2).sum() + ((zh[1][[0, 3]] - z[1][[0, 3]]) ** 2).sum()
    assert torch.allclose(reconstruction_loss(zh, z, present), num / (1 * 4 + 2 * 2))
    with pytest.raises(ValueError, match=r"reconstructed\[1\] must have shape \(6, 2\)"):
        reconstruction_loss([zh[0], torch.randn(6, 3)], z, present)


def test_reconstruction_loss_detaches_its_target():
    """The loss trains what reconstructs, never what produced the target embeddings (the docstring's promise)."""
    seed_everything(0)
    enc_a, enc_b = nn.Linear(5, 4), nn.Linear(3, 2)
    xa, xb = torch.randn(6, 5), torch.randn(6, 3)
    present = torch.tensor([[True, False], [False, True], [True, True], [True, False], [True, False], [False, True]])
    target = [enc_a(xa), enc_b(xb)]  # the full-modality embeddings, still attached to their encoders
    rec = CrossModalReconstructor([4, 2], hidden=8, bottleneck=4)
    reconstructed = rec([z.detach() for z in target], present)  # the reconstructor sees the same values
    loss = reconstruction_loss(reconstructed, target, present)
    assert loss.item() > 0
    grads = torch.autograd.grad(loss, target, retain_graph=True, allow_unused=True)
    assert all(g is None or not g.any() for g in grads), grads  # no gradient reaches the target tensors ...
    loss.backward()
    for enc in (enc_a, enc_b):  # ... nor the encoders that produced them
        assert all(p.grad is None or not p.grad.any() for p in enc.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in rec.parameters())  # the reconstructor learns
    # the same backward through an explicit, undetached MSE does reach the encoders: the check above can fail
    manual = sum(
        ((zh[~present[:, m]] - z[~present[:, m]]) ** 2).sum() for m, (zh, z) in enumerate(zip(reconstructed, target))
    )
    assert torch.autograd.grad(manual, enc_b.weight)[0].abs().sum() > 0


def test_reconstructor_learns_a_cross_modal_mapping_and_keeps_present_embeddings():
    seed_everything(0)
    a = torch.randn(512, 6)
    b = torch.tanh(a @ torch.randn(6, 4))  # b is a learnable function of a
    rec = CrossModalReconstructor([6, 4], hidden=64, bottleneck=32)
    present = torch.ones(512, 2, dtype=torch.bool)
    present[:, 1] = False

    def error():
        with torch.no_grad():
            return reconstruction_loss(rec([a, b], present), [a, b], present).item()

    before = error()
    opt = torch.optim.Adam(rec.parameters(), lr=3e-3)
    for _ in range(300):
        loss = reconstruction_loss(rec([a, b], present), [a, b], present)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = error()
    mean_guess = ((b - b.mean(0)) ** 2).mean().item()
    assert after < 0.2 * before and after < 0.2 * mean_guess, (before, after, mean_guess)
    out = rec([a, b], present)
    assert torch.equal(out[0], a), "present embeddings pass through unchanged"
    with pytest.raises(ValueError, match=r"features\[1\] must have shape \(B, 4\)"):
        rec([a, torch.randn(512, 5)], present)
    with pytest.raises(ValueError, match="input_dims must be positive"):
        CrossModalReconstructor([6, -1])


def test_reconstructor_layers_are_the_documented_autoencoder():
    rec = CrossModalReconstructor([6, 4], hidden=16, bottleneck=8)
    kinds = [type(x) for x in rec.encoder] + [type(x) for x in rec.decoder]
    assert kinds == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert rec.encoder[0].in_features == 6 + 4 + 2 and rec.decoder[-1].out_features == 10


# ---------------------------------------------------------------------------------------------------- the model


def _model(fill="zero", train_rates=None):
    seed_everything(0)
    return MissingModalityClassifier(
        {"a": MLPEncoder(5, 8, hidden=16), "b": MLPEncoder(3, 8, hidden=16)}, 4, fill=fill, train_rates=train_rates
    )


@pytest.mark.parametrize("fill", ["zero", "mean", "token", "reconstruct"])
def test_missing_inputs_never_reach_the_output(fill):
    model = _model(fill).eval()
    xa, xb = torch.randn(6, 5), torch.randn(6, 3)
    if fill == "mean":
        model.set_fill_mean(xa, xb)
    present = torch.tensor([[True, False]] * 3 + [[False, True]] * 3)
    out1 = model(xa, xb, present=present)
    xa2, xb2 = xa.clone(), xb.clone()
    xb2[:3] = 100 * torch.randn(3, 3)
    xa2[3:] = 100 * torch.randn(3, 5)
    assert out1.shape == (6, 4)
    assert torch.allclose(out1, model(xa2, xb2, present=present))
    assert torch.allclose(model(xa, xb), model(xa, xb, present=torch.ones(6, 2, dtype=torch.bool)))


def test_mean_fill_uses_the_training_mean_embedding():
    model = _model("mean").eval()
    xa, xb = torch.randn(10, 5), torch.randn(10, 3)
    with pytest.raises(RuntimeError, match="set_fill_mean"):
        model(xa, xb)
    model.train()
    model.set_fill_mean(xa, xb, batch_size=3)
    assert model.training, "set_fill_mean restores the previous mode"
    model.eval()
    expected = torch.cat(model.embed(xa, xb), 1).mean(0)
    assert torch.allclose(model.fill_mean, expected, atol=1e-6)
    present = torch.tensor([[False, True]] * 10)
    completed = model.complete(model.embed(xa, xb), present)
    assert torch.allclose(completed[0], expected[:8].expand(10, 8))


def test_classifier_errors():
    model = _model()
    assert model.embedding_dims == [8, 8] and model.modalities == ["a", "b"]
    x = (torch.randn(4, 5), torch.randn(4, 3))
    with pytest.raises(ValueError, match="expected 2 inputs"):
        model(x[0])
    with pytest.raises(ValueError, match="row 0 has every modality missing"):
        model(*x, present=torch.zeros(4, 2, dtype=torch.bool))
    with pytest.raises(TypeError, match="present must have dtype bool"):
        model(*x, present=torch.ones(4, 2))
    with pytest.raises(ValueError, match=r"present must have shape \(4, 2\)"):
        model(*x, present=torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="fill must be one of"):
        _model("median")
    with pytest.raises(ValueError, match="train_rates must have 2 rates"):
        _model(train_rates=[0.5])
    model.fill = "token"
    with pytest.raises(RuntimeError, match="needs a model built with fill='token'"):
        model(*x)


def test_moddrop_layer_is_active_in_training_mode_only():
    model = _model(train_rates=[0.5, 0.5])
    x = (torch.randn(256, 5), torch.randn(256, 3))
    _, _, _, used = model.train().forward_details(*x)
    assert (~used).any() and used.any(1).all()
    _, _, _, used = model.eval().forward_details(*x)
    assert used.all()


def _toy(n=600, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    a = torch.randn(n, 5, generator=g) * 0.5 + nn.functional.one_hot(y, 5).float()[:, :5]
    b = torch.randn(n, 3, generator=g) * 0.5 + torch.stack([y == 1, y == 2, y == 3], 1).float()
    return [a, b], y


def test_train_classifier_learns_and_reports_reconstruction():
    (xa, xb), y = _toy()
    model = _model("reconstruct", train_rates=[0.3, 0.3])
    hist = train_classifier(model, [xa, xb], y, epochs=15, lr=1e-2, seed=0, device="cpu", progress=False)
    assert isinstance(hist, History) and hist.epochs == 15 and hist.steps == 0
    assert hist["ce"][-1] < 0.5 * hist["ce"][0]
    assert all(r > 0 for r in hist["recon"])
    assert np.allclose(hist["train_loss"], np.add(hist["ce"], hist["recon"]))
    assert not model.training, "the model is left in eval mode"
    acc = accuracy_by_pattern(model, [xa, xb], y)
    assert set(acc) == {(True, True), (True, False), (False, True)}
    assert acc[(True, True)] > 0.8
    plain = _model()
    hist = train_classifier(plain, [xa, xb], y, epochs=2, seed=0, device="cpu", progress=False)
    assert hist["recon"] == [0.0, 0.0]
    with pytest.raises(ValueError, match=r"inputs\[1\] must have 600 rows"):
        train_classifier(plain, [xa, xb[:10]], y, epochs=1, progress=False)
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        train_classifier(plain, [xa, xb], y, epochs=0, progress=False)
    with pytest.raises(ValueError, match="inputs must hold 2 tensors"):
        train_classifier(plain, [xa], y, epochs=1, progress=False)
    with pytest.raises(TypeError, match="model must be a MissingModalityClassifier"):
        train_classifier(nn.Linear(5, 4), [xa], y, epochs=1, progress=False)


def _hand_written_loop(model, inputs, labels, epochs, lr, batch_size, recon_weight, seed):
    """The loop train_classifier replaced: Adam, a seeded randperm per epoch, CE (+ reconstruction)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    ce_log, recon_log = [], []
    model.train()
    for _ in range(epochs):
        ce_sum = recon_sum = 0.0
        for idx in torch.randperm(len(labels), generator=gen).split(batch_size):
            logits, feats, completed, present = model.forward_details(*(x[idx] for x in inputs))
            ce = nn.functional.cross_entropy(logits, labels[idx])
            recon = reconstruction_loss(completed, feats, present) if model.fill == "reconstruct" else None
            total = ce if recon is None else ce + recon_weight * recon
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            ce_sum += ce.item() * len(idx)
            recon_sum += 0.0 if recon is None else recon.item() * len(idx)
        ce_log.append(ce_sum / len(labels))
        recon_log.append(recon_sum / len(labels))
    return ce_log, recon_log


@pytest.mark.parametrize("fill", ["zero", "token", "reconstruct"])
def test_train_classifier_reproduces_the_hand_written_loop_exactly(fill):
    """fit + make_loader(shuffle=True, seed) give the same batches, masks and weights as the old loop."""
    (xa, xb), y = _toy(300)
    ref = _model(fill, train_rates=[0.4, 0.4])
    torch.manual_seed(5)
    ce_ref, recon_ref = _hand_written_loop(ref, [xa, xb], y, 3, 3e-3, 64, 0.5, seed=2)
    model = _model(fill, train_rates=[0.4, 0.4])
    torch.manual_seed(5)
    hist = train_classifier(
        model, [xa, xb], y, epochs=3, batch_size=64, recon_weight=0.5, seed=2, device="cpu", progress=False
    )
    assert hist["ce"] == ce_ref and hist["recon"] == recon_ref
    for (name, a), b in zip(ref.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name


# -------------------------------------------------------------------------------------------------- evaluation


def test_expected_accuracy_matches_sampled_masks_and_curves_are_lines():
    (xa, xb), y = _toy(2000, seed=1)
    model = _model(train_rates=[0.5, 0.5])
    train_classifier(model, [xa, xb], y, epochs=5, lr=1e-2, seed=0, device="cpu", progress=False)
    acc = accuracy_by_pattern(model, [xa, xb], y)
    for rates in ([0.0, 0.5], [0.7, 0.6]):
        sampled = evaluate_with_missing(model, [xa, xb], y, rates, generator=torch.Generator().manual_seed(0))
        assert abs(sampled - expected_accuracy(acc, rates)) < 0.03
    curve = missing_rate_curve(acc, 1, [0.0, 0.5, 1.0])
    assert np.allclose(curve, [acc[(True, True)], (acc[(True, True)] + acc[(True, False)]) / 2, acc[(True, False)]])
    with pytest.raises(ValueError, match="modality must be in"):
        missing_rate_curve(acc, 2, [0.0, 1.0])
    with pytest.raises(ValueError, match="lacks patterns"):
        expected_accuracy({(True, True): 1.0}, [0.5, 0.5])


def test_robustness_auc():
    r = np.linspace(0, 1, 11)
    assert np.isclose(robustness_auc(r, np.full(11, 0.8)), 0.8)
    assert np.isclose(robustness_auc(r, 0.9 - 0.5 * r), 0.65)
    assert np.isclose(robustness_auc([0.2, 0.6], [1.0, 0.0]), 0.5)
    with pytest.raises(ValueError, match="strictly increasing"):
        robustness_auc([0.0, 0.5, 0.4], [1, 1, 1])
    with pytest.raises(ValueError, match="same length"):
        robustness_auc([0.0, 1.0], [1.0])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_model_runs_on_cuda():
    model = _model("reconstruct", train_rates=[0.5, 0.5]).to("cuda")
    x = [torch.randn(8, 5, device="cuda"), torch.randn(8, 3, device="cuda")]
    present = sample_presence(8, [0.5, 0.5], device="cuda")
    assert model(*x, present=present).device.type == "cuda"
    (xa, xb), y = _toy(64)
    train_classifier(model, [xa, xb], y, epochs=1, device="cuda", progress=False)


def test_robustness_auc_of_a_straight_line_is_the_mean_of_its_end_points():
    acc = {(True, True): 0.9, (True, False): 0.4, (False, True): 0.7}
    for grid in (np.array([0.0, 1.0]), np.linspace(0, 1, 11), np.linspace(0, 1, 7)):
        line = missing_rate_curve(acc, 0, grid)  # image missing: from acc(both) to acc(audio only)
        assert np.isclose(robustness_auc(grid, line), (0.9 + 0.7) / 2)
    bent = np.array([0.9, 0.2, 0.7])  # not a line: the middle point matters
    assert not np.isclose(robustness_auc([0, 0.5, 1], bent), (0.9 + 0.7) / 2)


def test_accuracy_by_pattern_matches_one_pass_per_pattern():
    torch.manual_seed(0)
    model = MissingModalityClassifier({"a": MLPEncoder(3, 4, hidden=5), "b": MLPEncoder(2, 4, hidden=5)}, 3)
    x = [torch.randn(50, 3), torch.randn(50, 2)]
    y = torch.randint(0, 3, (50,))
    got = accuracy_by_pattern(model, x, y, batch_size=7)
    assert list(got) == [(True, True), (True, False), (False, True)]
    for pattern, acc in got.items():
        with torch.no_grad():
            pred = model(*x, present=torch.tensor(pattern).expand(50, -1)).argmax(-1)
        assert acc == pytest.approx((pred == y).float().mean().item())


def test_train_classifier_recon_weight_and_after_epoch():
    torch.manual_seed(0)
    model = MissingModalityClassifier(
        {"a": MLPEncoder(3, 4, hidden=5), "b": MLPEncoder(2, 4, hidden=5)},
        3,
        fill="reconstruct",
        train_rates=(0.5, 0.5),
    )
    x, y = [torch.randn(40, 3), torch.randn(40, 2)], torch.randint(0, 3, (40,))
    seen = []
    hist = train_classifier(
        model, x, y, epochs=2, recon_weight=0.0, progress=False, after_epoch=lambda m, e: seen.append(e) or {"e": e}
    )
    assert seen == [0, 1] and hist["e"] == [0.0, 1.0]
    assert hist["train_loss"] == hist["ce"]
    with pytest.raises(ValueError, match="recon_weight"):
        train_classifier(model, x, y, epochs=1, recon_weight=-1.0, progress=False)


MISSING_ACCS = {
    "robust": [{(True, True): 0.9, (True, False): 0.85, (False, True): 0.7}] * 2,
    "fragile": [
        {(True, True): 0.92, (True, False): 0.3, (False, True): 0.6},
        {(True, True): 0.90, (True, False): 0.4, (False, True): 0.6},
    ],
}


def test_missing_rates_figure_draws_exact_expected_accuracy():
    acc = MISSING_ACCS
    fig = missing_rates_figure(acc, [0.0, 0.0], ["image", "audio"])
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    widths0 = [p.get_width() for p in ax.patches]
    widths1 = [p.get_width() for p in missing_rates_figure(acc, [0.0, 0.8], ["image", "audio"]).axes[0].patches]
    assert np.allclose(widths0, [0.9, 0.91])
    assert np.allclose(widths1, [0.2 * 0.9 + 0.8 * 0.85, 0.2 * 0.91 + 0.8 * 0.35])
    assert "nothing to classify" in missing_rates_figure(acc, [1.0, 1.0], ["image", "audio"]).axes[0].get_title()
    titled = missing_rates_figure(acc, [0.5, 0.0], ["image", "audio"], title="noise 0.3")
    assert titled.axes[0].get_title().startswith("noise 0.3\n")
    with pytest.raises(ValueError, match="one rate per modality"):
        missing_rates_figure(acc, [0.5], ["image", "audio"])
