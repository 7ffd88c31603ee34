import math

import pytest
import torch
from torch import nn

from mmlab import seed_everything
from mmlab.balance import (
    GradNorm,
    UncertaintyWeighting,
    encode,
    fit_linear_probe,
    gradient_norms,
    inverse_norm_weights,
    linear_probe,
    modality_logits,
    modality_scores,
    modulate_gradients,
    ogm_coefficients,
    weighted_sum,
)
from mmlab.models import MultimodalClassifier, mlp

# --- OGM coefficients -----------------------------------------------------------------------------------------


def test_equal_scores_give_one_and_one():
    assert ogm_coefficients(3.0, 3.0, alpha=1.0) == (1.0, 1.0)
    assert ogm_coefficients(torch.tensor(2.5), torch.tensor(2.5), alpha=5.0) == (1.0, 1.0)


@pytest.mark.parametrize("alpha", [0.1, 1.0, 3.0])
def test_first_modality_dominant(alpha):
    k_a, k_b = ogm_coefficients(6.0, 2.0, alpha)
    assert k_a == pytest.approx(1 - math.tanh(alpha * 3.0))
    assert k_b == 1.0


@pytest.mark.parametrize("alpha", [0.1, 1.0, 3.0])
def test_second_modality_dominant(alpha):
    k_a, k_b = ogm_coefficients(2.0, 5.0, alpha)
    assert k_a == 1.0
    assert k_b == pytest.approx(1 - math.tanh(alpha * 2.5))


def test_paper_formula_jumps_at_one_and_smooth_variant_does_not():
    k_jump = ogm_coefficients(1.0001, 1.0, 1.0)[0]
    k_smooth = ogm_coefficients(1.0001, 1.0, 1.0, smooth=True)[0]
    assert k_jump == pytest.approx(1 - math.tanh(1.0), abs=1e-3)  # ≈ 0.24 the moment one modality leads
    assert k_smooth == pytest.approx(1.0, abs=1e-3)
    assert ogm_coefficients(3.0, 1.0, 1.0, smooth=True)[0] == pytest.approx(1 - math.tanh(2.0))


def test_alpha_zero_never_modulates_and_coefficients_stay_in_unit_interval():
    assert ogm_coefficients(9.0, 1.0, 0.0) == (1.0, 1.0)
    for sa, sb in [(1.0, 64.0), (64.0, 1.0), (5.0, 4.0)]:
        assert all(0.0 <= k <= 1.0 for k in ogm_coefficients(sa, sb, 2.0))


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_non_positive_or_non_finite_scores_raise(bad):
    with pytest.raises(ValueError, match="score_a must be a finite number > 0"):
        ogm_coefficients(bad, 1.0, 1.0)
    with pytest.raises(ValueError, match="score_b must be a finite number > 0"):
        ogm_coefficients(1.0, bad, 1.0)


def test_negative_alpha_raises():
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        ogm_coefficients(2.0, 1.0, -0.5)


# --- per-modality logits and scores -----------------------------------------------------------------------------


def test_modality_logits_sum_to_head_output_and_scores_match_definition():
    seed_everything(0)
    h = [torch.randn(5, 3), torch.randn(5, 4)]
    head = nn.Linear(7, 6)
    outs = modality_logits(h, head)
    assert torch.allclose(outs[0] + outs[1], head(torch.cat(h, 1)), atol=1e-6)
    y = torch.tensor([0, 1, 2, 3, 4])
    s = modality_scores(h, head, y)
    ref = [torch.softmax(o, -1)[torch.arange(5), y].sum() for o in outs]
    assert s.shape == (2,) and torch.allclose(s, torch.stack(ref))
    assert not s.requires_grad


def test_modality_logits_errors():
    head = nn.Linear(7, 6)
    with pytest.raises(ValueError, match="sum to 6 but head expects 7"):
        modality_logits([torch.randn(5, 3), torch.randn(5, 3)], head)
    with pytest.raises(ValueError, match=r"features\[1\] must have shape \(B, \*\) with B=5"):
        modality_logits([torch.randn(5, 3), torch.randn(4, 4)], head)
    with pytest.raises(TypeError, match="head must be an nn.Linear"):
        modality_logits([torch.randn(5, 7)], nn.Identity())
    with pytest.raises(ValueError, match="target must have shape"):
        modality_scores([torch.randn(5, 3), torch.randn(5, 4)], head, torch.zeros(4, dtype=torch.long))


# --- gradient modulation --------------------------------------------------------------------------------------


def _two_encoders():
    seed_everything(1)
    enc = nn.ModuleDict({"audio": nn.Sequential(nn.Linear(4, 8), nn.ReLU()), "image": nn.Linear(3, 8)})
    loss = enc["audio"](torch.randn(16, 4)).pow(2).sum() + enc["image"](torch.randn(16, 3)).sin().sum()
    loss.backward()
    return enc


def test_modulation_scales_exactly_the_dominant_encoder_and_leaves_the_other_untouched():
    enc = _two_encoders()
    before = {n: p.grad.clone() for n, p in enc.named_parameters()}
    k_audio, k_image = ogm_coefficients(8.0, 2.0, alpha=1.0)
    modulate_gradients({m: enc[m].parameters() for m in ("audio", "image")}, {"audio": k_audio, "image": k_image})
    for n, p in enc.named_parameters():
        k = k_audio if n.startswith("audio") else 1.0
        assert torch.equal(p.grad, before[n] * k) if k != 1.0 else torch.equal(p.grad, before[n])
    assert k_audio < 1.0


def test_modulation_works_for_every_parameter_shape_and_skips_missing_gradients():
    p1, p2, p3 = nn.Parameter(torch.ones(())), nn.Parameter(torch.ones(2, 3, 4, 5)), nn.Parameter(torch.ones(3))
    p1.grad, p2.grad = torch.full((), 2.0), torch.full((2, 3, 4, 5), 2.0)
    modulate_gradients({"a": [p1, p2, p3]}, {"a": 0.25})
    assert p1.grad.item() == 0.5 and torch.all(p2.grad == 0.5) and p3.grad is None


def test_ge_noise_has_the_gradients_std():
    seed_everything(2)
    p = nn.Parameter(torch.zeros(200_000))
    g = torch.randn(200_000) * 0.3 + 1.0
    p.grad = g.clone()
    modulate_gradients({"audio": [p]}, {"audio": 0.4}, noise=True)
    noise = p.grad - 0.4 * g
    assert noise.mean().abs().item() < 0.01
    assert noise.std().item() == pytest.approx(g.std().item(), rel=0.02)


def test_modulation_errors():
    enc = _two_encoders()
    with pytest.raises(KeyError, match="parameter group 'image' belongs to no modality"):
        modulate_gradients({"audio": enc["audio"].parameters(), "image": enc["image"].parameters()}, {"audio": 0.5})
    with pytest.raises(ValueError, match="more than one group"):
        modulate_gradients({"a": enc["audio"].parameters(), "b": enc["audio"].parameters()}, {"a": 1, "b": 1})
    with pytest.raises(ValueError, match="is empty"):
        modulate_gradients({"a": []}, {"a": 1.0})
    with pytest.raises(ValueError, match=r"coefficients\['audio'\] must be a finite number >= 0"):
        modulate_gradients({"audio": enc["audio"].parameters()}, {"audio": -1.0})


# --- the article's inverse-norm weights ------------------------------------------------------------------------


def test_inverse_norm_weights_are_at_least_one_and_guarded_against_zero():
    enc = _two_encoders()
    norms = gradient_norms({m: enc[m].parameters() for m in enc})
    ref = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in enc["audio"].parameters()))
    assert norms["audio"] == pytest.approx(ref)
    w = inverse_norm_weights(norms)
    assert min(w.values()) == pytest.approx(1.0) and all(v >= 1.0 for v in w.values())
    assert inverse_norm_weights({"a": 2.0, "b": 0.001})["b"] == pytest.approx(2000.0)  # unbounded as ‖g‖ → 0
    assert inverse_norm_weights({"a": 2.0, "b": 0.0}) == {"a": 1.0, "b": 1.0}
    with pytest.raises(ValueError, match=r"norms\['b'\] must be a finite number >= 0"):
        inverse_norm_weights({"a": 1.0, "b": -1.0})


# --- multi-task balancing -------------------------------------------------------------------------------------


def test_uncertainty_weighting_gradient_vanishes_at_log_loss():
    losses = torch.tensor([0.3, 250.0])
    uw = UncertaintyWeighting(2)
    with torch.no_grad():
        uw.log_vars.copy_(losses.log())
    uw(losses).backward()
    assert torch.allclose(uw.log_vars.grad, torch.zeros(2), atol=1e-6)
    assert torch.allclose(uw.weights, 1 / losses)
    uw.zero_grad()
    with torch.no_grad():
        uw.log_vars.zero_()
    total = uw(losses)
    assert total.item() == pytest.approx(250.3)
    total.backward()
    assert torch.allclose(uw.log_vars.grad, 1 - losses)


def test_weighted_sum_and_loss_errors():
    assert weighted_sum([torch.tensor(2.0), torch.tensor(3.0)], [1.0, 0.5]).item() == pytest.approx(3.5)
    with pytest.raises(ValueError, match=r"losses must have shape \(2\)"):
        weighted_sum(torch.ones(3), [1.0, 1.0])
    with pytest.raises(ValueError, match="weights must be a 1-D sequence"):
        weighted_sum(torch.ones(2), [1.0, -1.0])
    with pytest.raises(ValueError, match=r"losses\[1\] must have shape \(\)"):
        UncertaintyWeighting(2)([torch.tensor(1.0), torch.ones(2)])
    with pytest.raises(ValueError, match="n_tasks"):
        UncertaintyWeighting(0)
    with pytest.raises(ValueError, match="n_tasks"):
        GradNorm(1)


def test_gradnorm_sets_model_and_weight_gradients_and_moves_toward_balance():
    seed_everything(3)
    shared = nn.Linear(4, 8)
    heads = nn.ModuleList([nn.Linear(8, 1), nn.Linear(8, 1)])
    x = torch.randn(32, 4)
    gn = GradNorm(2, alpha=1.5)
    h = shared(x).relu()
    losses = torch.stack([heads[0](h).pow(2).mean(), 100 * heads[1](h).pow(2).mean()])  # task 1 is 100× louder
    ref = torch.autograd.grad(losses.sum(), shared.weight, retain_graph=True)[0]
    gn.backward(losses, shared.weight)
    assert torch.allclose(shared.weight.grad, ref, atol=1e-5)  # weights start at 1: Σ w_i L_i = Σ L_i
    assert gn.task_weights.grad is not None
    assert gn.task_weights.grad[1] > 0 > gn.task_weights.grad[0]  # descending shrinks the loud task's weight
    with torch.no_grad():
        gn.task_weights.sub_(0.5 * gn.task_weights.grad.sign())
    gn.renormalize()
    assert gn.weights.sum().item() == pytest.approx(2.0) and gn.weights[1] < gn.weights[0]
    with pytest.raises(ValueError, match="shared_weight"):
        gn.backward(losses.detach(), torch.ones(3))


def _old_gradnorm_backward(gn: GradNorm, losses: torch.Tensor, shared_weight: torch.Tensor) -> torch.Tensor:
    """GradNorm's update as first written (two autograd passes, the weights' gradient assigned by hand)."""
    if not bool((gn.initial_losses > 0).all()):
        gn.initial_losses.copy_(losses.detach().clamp_min(1e-12))
    norms = torch.stack([torch.autograd.grad(li, shared_weight, retain_graph=True)[0].norm() for li in losses])
    g = gn.task_weights * norms.detach()
    rate = losses.detach() / gn.initial_losses
    target = (g.mean() * (rate / rate.mean()) ** gn.alpha).detach()
    grad_w = torch.autograd.grad((g - target).abs().sum(), gn.task_weights)[0]
    total = (gn.task_weights.detach() * losses).sum()
    total.backward()
    gn.task_weights.grad = grad_w
    return total.detach()


def test_gradnorm_objective_reproduces_the_two_pass_update_over_several_steps():
    """One backward of ``objective`` = the original procedure, bit for bit, through Adam steps + renormalise."""
    results = []
    for use_objective in (False, True):
        seed_everything(5)
        shared, heads = nn.Linear(4, 8), nn.ModuleList([nn.Linear(8, 3), nn.Linear(8, 1)])
        gn = GradNorm(2, alpha=1.5)
        opt = torch.optim.Adam(
            [{"params": [*shared.parameters(), *heads.parameters()]}, {"params": gn.parameters(), "lr": 0.05}]
        )
        x, y, t = torch.randn(32, 4), torch.randint(0, 3, (32,)), 50 * torch.randn(32)
        totals = []
        for _ in range(4):
            h = shared(x).relu()
            losses = torch.stack(
                [nn.functional.cross_entropy(heads[0](h), y), nn.functional.mse_loss(heads[1](h)[:, 0], t)]
            )
            opt.zero_grad(set_to_none=True)
            if use_objective:
                loss = gn.objective(losses, shared.weight)
                loss.backward()
                totals.append(loss.detach())
            else:
                totals.append(_old_gradnorm_backward(gn, losses, shared.weight))
            opt.step()
            gn.renormalize()
        results.append((torch.stack(totals), gn.weights, [p.detach().clone() for p in shared.parameters()]))
    (t0, w0, p0), (t1, w1, p1) = results
    assert torch.equal(t0, t1) and torch.equal(w0, w1)
    assert all(torch.equal(a, b) for a, b in zip(p0, p1))
    assert not torch.equal(w1, torch.ones(2))  # the weights did move


def test_gradnorm_objective_value_is_the_weighted_sum():
    seed_everything(6)
    shared = nn.Linear(3, 4)
    h = shared(torch.randn(8, 3))
    losses = torch.stack([h.pow(2).mean(), 10 * h.abs().mean()])
    gn = GradNorm(2)
    with torch.no_grad():
        gn.task_weights.copy_(torch.tensor([0.5, 1.5]))
    assert gn.objective(losses, shared.weight).item() == pytest.approx((0.5 * losses[0] + 1.5 * losses[1]).item())


def test_encode_returns_cpu_features_without_changing_the_mode():
    seed_everything(7)
    model = MultimodalClassifier(
        {"image": mlp(6, 8, 4, final_activation=True), "audio": mlp(5, 8, 4, final_activation=True)}, 3, fused_dim=8
    )
    model.train()
    x = torch.randn(10, 6)
    f = encode(model, "image", x)
    assert f.shape == (10, 4) and not f.requires_grad and f.device.type == "cpu"
    assert torch.allclose(f, model.encoders["image"](x).detach())
    assert model.encoders["image"].training
    with pytest.raises(ValueError, match="modality must be one of"):
        encode(model, "visual", x)
    with pytest.raises(TypeError, match="model must be a MultimodalClassifier"):
        encode(nn.Linear(6, 4), "image", x)


def test_linear_probe_separable_and_errors():
    seed_everything(4)
    y = torch.arange(200) % 4
    f = torch.nn.functional.one_hot(y, 4).float() + 0.05 * torch.randn(200, 4)
    assert linear_probe(f[:150], y[:150], f[150:], y[150:]) == 1.0
    with pytest.raises(ValueError, match=r"test_features must have shape \(M, D\) with D=4"):
        linear_probe(f[:150], y[:150], f[150:, :3], y[150:])
    with pytest.raises(ValueError, match=r"y_train must have shape \(N\) with N=150"):
        linear_probe(f[:150], y[: 150 - 1], f[150:], y[150:])


def test_fit_linear_probe_scores_several_splits_from_one_fit():
    seed_everything(5)
    y = torch.arange(300) % 3
    f = torch.nn.functional.one_hot(y, 3).float() + 0.8 * torch.randn(300, 3)
    probe = fit_linear_probe(f[:200], y[:200])
    for lo, hi in ((200, 250), (250, 300)):  # the same model as linear_probe's, scored on two splits
        assert probe.score(f[lo:hi].numpy(), y[lo:hi].numpy()) == linear_probe(f[:200], y[:200], f[lo:hi], y[lo:hi])
    assert probe.predict(f[:5].numpy()).shape == (5,)
    with pytest.raises(ValueError, match=r"y_train must have shape \(N\) with N=200"):
        fit_linear_probe(f[:200], y[:199])


# GradNorm over two steps against an update computed by hand (closed-form gradients, no autograd): a shared
# linear layer W (1×3, no bias) and two squared-error tasks L_i = c_i·mean((X Wᵀ - y_i)²), so ∇_W L_i is known.
_GN_X = torch.tensor([[1.0, 0.5, -1.0], [0.0, 2.0, 1.0], [-1.5, 1.0, 0.5], [2.0, -0.5, 1.0]])
_GN_Y = (torch.tensor([1.0, -2.0, 0.5, 3.0]), torch.tensor([0.2, 0.1, -0.3, 0.4]))
_GN_C = (1.0, 4.0)
_GN_W0 = torch.tensor([[0.3, -0.2, 0.1]])
_GN_LR_MODEL, _GN_LR_WEIGHTS = 0.05, 0.1


def _gradnorm_by_hand(alpha: float, steps: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Chen et al. 2018 step by step: per step (weights' gradient, loss ratios r_i, weights after renormalising)."""
    W, w, first, out = _GN_W0.clone(), torch.ones(2), None, []
    for _ in range(steps):
        res = [_GN_X @ W[0] - y for y in _GN_Y]
        L = torch.stack([c * (r**2).mean() for c, r in zip(_GN_C, res)])
        grads = [c * 2 / len(_GN_X) * (r @ _GN_X)[None] for c, r in zip(_GN_C, res)]  # ∇_W L_i in closed form
        first = L.clone() if first is None else first  # L_i(0)
        n = torch.stack([g.norm() for g in grads])  # ‖∇_W L_i‖, so G_i = w_i·n_i
        G = w * n
        ratio = (L / first) / (L / first).mean()
        target = G.mean() * ratio**alpha  # a constant
        grad_w = torch.sign(G - target) * n  # ∂/∂w_i Σ_j |w_j n_j - target_j|
        W = W - _GN_LR_MODEL * (w[0] * grads[0] + w[1] * grads[1])  # SGD on Σ w_i L_i, weights held constant
        w = w - _GN_LR_WEIGHTS * grad_w  # SGD on the weights
        w = w.clamp_min(1e-3)
        w = w * len(w) / w.sum()  # renormalise to Σ w_i = T
        out.append((grad_w, ratio, w))
    return out


def _gradnorm_by_the_class(alpha: float, steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    shared = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        shared.weight.copy_(_GN_W0)
    gn = GradNorm(2, alpha=alpha)
    opt = torch.optim.SGD(
        [{"params": shared.parameters(), "lr": _GN_LR_MODEL}, {"params": gn.parameters(), "lr": _GN_LR_WEIGHTS}]
    )
    out = []
    for _ in range(steps):
        pred = shared(_GN_X)[:, 0]
        losses = torch.stack([c * ((pred - y) ** 2).mean() for c, y in zip(_GN_C, _GN_Y)])
        opt.zero_grad()
        gn.backward(losses, shared.weight)
        grad_w = gn.task_weights.grad.clone()
        opt.step()
        gn.renormalize()
        out.append((grad_w, gn.weights))
    return out


@pytest.mark.parametrize("alpha", [0.0, 1.5])
def test_gradnorm_two_steps_match_the_update_computed_by_hand(alpha):
    hand, ours = _gradnorm_by_hand(alpha, 2), _gradnorm_by_the_class(alpha, 2)
    assert torch.allclose(hand[0][1], torch.ones(2))  # step 1: every ratio is 1 ...
    assert not torch.allclose(hand[1][1], torch.ones(2), atol=0.1)  # ... step 2: they differ, so α counts
    for (grad_ref, _, w_ref), (grad, w) in zip(hand, ours):
        assert torch.allclose(grad, grad_ref, atol=1e-5), (grad, grad_ref)
        assert torch.allclose(w, w_ref, atol=1e-5), (w, w_ref)
        assert w.sum().item() == pytest.approx(2.0)


def test_gradnorm_alpha_changes_the_weights_at_step_two():
    one = {a: _gradnorm_by_the_class(a, 1)[-1][1] for a in (0.0, 1.5)}
    two = {a: _gradnorm_by_the_class(a, 2)[-1][1] for a in (0.0, 1.5)}
    assert torch.allclose(one[0.0], one[1.5])  # after one step the ratios are all 1: α cannot matter
    assert (two[1.5] - two[0.0]).abs().max() > 0.1, two  # at step 2 it does
    # the lagging task (larger L_i(t)/L_i(0)) is task 0; a stronger pull toward r^α gives it the larger weight
    assert two[1.5][0] > two[0.0][0]
