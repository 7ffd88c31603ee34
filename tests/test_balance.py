import math

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from mmlab import seed_everything
from mmlab.balance import (
    GradNorm,
    UncertaintyWeighting,
    gradient_norms,
    imbalance_widget_figure,
    inverse_norm_weights,
    linear_probe,
    load_imbalance_data,
    load_multitask_data,
    modality_logits,
    modality_scores,
    modulate_gradients,
    ogm_coefficients,
    per_epoch,
    plot_rho_k,
    train_imbalance,
    train_multitask,
    weighted_sum,
)

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
    enc = nn.ModuleDict({"audio": nn.Sequential(nn.Linear(4, 8), nn.ReLU()), "visual": nn.Linear(3, 8)})
    loss = enc["audio"](torch.randn(16, 4)).pow(2).sum() + enc["visual"](torch.randn(16, 3)).sin().sum()
    loss.backward()
    return enc


def test_modulation_scales_exactly_the_dominant_encoder_and_leaves_the_other_untouched():
    enc = _two_encoders()
    before = {n: p.grad.clone() for n, p in enc.named_parameters()}
    k_audio, k_visual = ogm_coefficients(8.0, 2.0, alpha=1.0)
    modulate_gradients({m: enc[m].parameters() for m in ("audio", "visual")}, {"audio": k_audio, "visual": k_visual})
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
    with pytest.raises(KeyError, match="parameter group 'visual' belongs to no modality"):
        modulate_gradients({"audio": enc["audio"].parameters(), "visual": enc["visual"].parameters()}, {"audio": 0.5})
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


# --- the lesson's experiments -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data():
    return load_imbalance_data(0.3)


def test_imbalance_data_shapes_and_standardised_audio(data):
    assert data.dims == {"visual": 64, "audio": 40}
    assert data.train["audio"].mean(0).abs().max() < 1e-4
    assert len(data.y_train) == len(data.train["visual"]) and len(data.y_test) == len(data.test["audio"])


def test_train_imbalance_records_diagnostics_and_alpha_zero_equals_baseline(data):
    base = train_imbalance(data, "baseline", epochs=2, progress=False, device="cpu")
    steps = 2 * math.ceil(len(data.y_train) / 64)
    assert len(base.rho) == steps and len(base.k["audio"]) == steps
    assert len(base.half_train_acc["visual"]) == 2 and 0.0 <= base.test_acc <= 1.0
    same = train_imbalance(data, "ogm", alpha=0.0, epochs=2, progress=False, device="cpu")
    assert same.test_acc == base.test_acc and same.rho == base.rho
    ogm = train_imbalance(data, "ogm", alpha=1.0, epochs=2, progress=False, device="cpu")
    assert min(ogm.k["audio"] + ogm.k["visual"]) < 1.0
    alone = train_imbalance(data, "alone", epochs=1, progress=False, device="cpu")
    assert alone.model.modalities == ["visual"] and not alone.rho
    aux = train_imbalance(data, "aux", epochs=1, progress=False, device="cpu")
    with pytest.raises(ValueError, match="recorded no ρ"):
        plot_rho_k({"aux": aux})
    with pytest.raises(ValueError, match="method must be one of"):
        train_imbalance(data, "gradnorm")
    with pytest.raises(ValueError, match="optimizer must be one of"):
        train_imbalance(data, "ogm", optimizer="rmsprop")


def test_linear_probe_separable_and_errors():
    seed_everything(4)
    y = torch.arange(200) % 4
    f = torch.nn.functional.one_hot(y, 4).float() + 0.05 * torch.randn(200, 4)
    assert linear_probe(f[:150], y[:150], f[150:], y[150:]) == 1.0
    with pytest.raises(ValueError, match=r"test_features must have shape \(M, D\) with D=4"):
        linear_probe(f[:150], y[:150], f[150:, :3], y[150:])
    with pytest.raises(ValueError, match=r"y_train must have shape \(N\) with N=150"):
        linear_probe(f[:150], y[:149], f[150:], y[150:])


def test_per_epoch():
    assert per_epoch([1, 3, 5, 7], 2).tolist() == [2.0, 6.0]
    with pytest.raises(ValueError, match="not a multiple"):
        per_epoch([1, 2, 3], 2)


def test_train_multitask_every_method_runs_and_records_weights():
    d = load_multitask_data(0.0)
    assert d.ink_train.mean() > 100  # raw units: the two losses differ by orders of magnitude
    for method in ("fixed", "uncertainty", "gradnorm"):
        run = train_multitask(d, method, epochs=1, progress=False, device="cpu")
        assert len(run.weights) == 1 and len(run.weights[0]) == 2 and np.isfinite(run.test_rmse)
    with pytest.raises(ValueError, match="method must be one of"):
        train_multitask(d, "pcgrad")


def test_widget_returns_a_figure_that_changes_with_alpha():
    f1 = imbalance_widget_figure(alpha=1.0, epochs=2)
    f2 = imbalance_widget_figure(alpha=0.0, epochs=2)
    assert isinstance(f1, Figure) and f1.axes[0].get_title()
    arrays = []
    for f in (f1, f2):
        canvas = FigureCanvasAgg(f)
        canvas.draw()
        arrays.append(np.asarray(canvas.buffer_rgba()))
    assert arrays[0].shape == arrays[1].shape and not np.array_equal(arrays[0], arrays[1])
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        imbalance_widget_figure(alpha=-1.0)
