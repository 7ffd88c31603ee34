import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from mmlab.lessons.pitfalls import (
    QUALITY_METHODS,
    FusionStack,
    QualityData,
    labeled_split,
    quality_widget_figure,
    run_quality,
    score_histogram,
    train_and_test,
    train_on_features,
)
from mmlab.models import count_parameters


def _blobs(n=400, seed=0, d=(6, 5), c=4):
    """Two modalities, each a noisy code of the label (``c`` classes)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, c, (n,), generator=g)
    protos = [torch.randn(c, k, generator=g) * 2 for k in d]
    xs = [p[y] + torch.randn(n, p.shape[1], generator=g) for p in protos]
    return xs, y


def _tiny_data(n=240, n_test=120) -> QualityData:
    xs, y = _blobs(n + n_test, seed=3)
    return QualityData(xs[0][:n], xs[1][:n], y[:n], xs[0][n:], xs[1][n:], y[n:])


def _params(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


# ---------------------------------------------------------------------------------------------- the depth study


def test_fusion_stack_shapes_parameters_and_errors():
    plain = FusionStack([6, 5], 4, width=8, depth=3)
    assert plain(torch.randn(2, 6), torch.randn(2, 5)).shape == (2, 4)
    assert count_parameters(plain) == 11 * 8 + 8 + 2 * (8 * 8 + 8) + 8 * 4 + 4
    res = FusionStack([6, 5], 4, width=8, depth=3, residual=True)
    assert res(torch.randn(2, 6), torch.randn(2, 5)).shape == (2, 4)
    assert count_parameters(res) == count_parameters(plain) + 2 * (8 * 8 + 8 + 2 * 8)  # second Linear + LayerNorm
    with pytest.raises(ValueError, match=r"features\[1\] must have shape \(B, 5\)"):
        plain(torch.randn(2, 6), torch.randn(2, 4))
    with pytest.raises(ValueError, match="expected 2 feature tensors"):
        plain(torch.randn(2, 6))
    with pytest.raises(ValueError, match="depth must be a positive int"):
        FusionStack([6, 5], 4, depth=0)
    with pytest.raises(ValueError, match="input_dims must be a non-empty sequence"):
        FusionStack(6, 4)


def test_fusion_stack_initialises_like_the_hand_written_stack():
    """Same layers in the same order as writing them by hand: the same numbers for the same seed."""
    torch.manual_seed(0)
    stack = FusionStack([6, 5], 4, width=8, depth=2, residual=True)
    torch.manual_seed(0)
    by_hand = [torch.nn.Linear(11, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)]
    by_hand.append(torch.nn.Linear(8, 4))
    assert torch.equal(_params(stack), torch.cat([_params(m) for m in by_hand]))
    h = torch.relu(by_hand[0](torch.ones(3, 11)))
    h = h + by_hand[3](torch.relu(by_hand[2](by_hand[1](h))))
    assert torch.allclose(stack(torch.ones(3, 6), torch.ones(3, 5)), by_hand[4](h), atol=1e-6)


def test_train_on_features_fits_and_leaves_rows_together():
    xs, y = _blobs(200)
    torch.manual_seed(0)
    m = FusionStack([6, 5], 4, width=16)
    hist = train_on_features(m, xs, y, epochs=15, seed=0, device="cpu", progress=False)
    assert hist.epochs == 15 and hist.last("train_acc") > 0.9


def test_constant_loss_weights_equal_plain_training():
    xs, y = _blobs(200)
    runs = []
    for w in (None, torch.full((200,), 0.3)):
        torch.manual_seed(0)
        m = FusionStack([6, 5], 4, width=16)
        train_on_features(m, xs, y, epochs=3, loss_weights=w, seed=0, device="cpu", progress=False)
        runs.append(_params(m))
    assert torch.allclose(runs[0], runs[1], atol=1e-5)


def test_sampler_weights_of_zero_are_never_trained_on():
    """With sampler weights 1 on half the items and 0 on the rest, training equals training on that half with
    the same draws: the items of weight 0 (here with garbage labels) never reach the model."""
    xs, y = _blobs(100)
    w = (torch.arange(100) % 2 == 0).float()
    garbage = y.clone()
    garbage[w == 0] = (y[w == 0] + 1) % 4
    torch.manual_seed(0)
    a = FusionStack([6, 5], 4, width=8)
    train_on_features(a, xs, garbage, epochs=3, sampler_weights=w, seed=1, device="cpu", progress=False)
    torch.manual_seed(0)
    b = FusionStack([6, 5], 4, width=8)
    train_on_features(b, xs, y, epochs=3, sampler_weights=w, seed=1, device="cpu", progress=False)
    assert torch.equal(_params(a), _params(b))


def test_train_on_features_errors():
    xs, y = _blobs(20)
    m = FusionStack([6, 5], 4, width=8)
    with pytest.raises(ValueError, match="not both"):
        train_on_features(m, xs, y, epochs=1, loss_weights=torch.ones(20), sampler_weights=torch.ones(20))
    with pytest.raises(ValueError, match=r"features\[1\] must have shape \(20, \*\)"):
        train_on_features(m, [xs[0], xs[1][:10]], y, epochs=1)
    with pytest.raises(ValueError, match=r"sampler_weights must have shape \(20\)"):
        train_on_features(m, xs, y, epochs=1, sampler_weights=torch.ones(21))
    with pytest.raises(ValueError, match=">= 0"):
        train_on_features(m, xs, y, epochs=1, sampler_weights=-torch.ones(20))


def test_labeled_split():
    y = torch.from_numpy(np.random.default_rng(0).integers(0, 10, 300))
    lab, rest = labeled_split(y, 5, seed=0)
    assert torch.equal(torch.bincount(y[lab], minlength=10), torch.full((10,), 5))
    assert len(set(lab.tolist()) & set(rest.tolist())) == 0 and len(lab) + len(rest) == 300
    assert torch.equal(lab, labeled_split(y, 5, seed=0)[0]) and not torch.equal(lab, labeled_split(y, 5, seed=1)[0])
    with pytest.raises(ValueError, match="per_class"):
        labeled_split(y, 0)
    with pytest.raises(ValueError, match="fewer than per_class"):
        labeled_split(y, 200)


# ---------------------------------------------------------------------------------------------- the quality runs


def test_train_and_test_is_seeded_and_leaves_the_global_rng_alone():
    data = _tiny_data()
    torch.manual_seed(7)
    before = torch.get_rng_state()
    a = train_and_test(data, data.image, data.audio, data.label, seed=0, epochs=3, device="cpu")
    assert torch.equal(torch.get_rng_state(), before)
    assert a == train_and_test(data, data.image, data.audio, data.label, seed=0, epochs=3, device="cpu")
    assert 0.5 < a <= 1.0


def test_run_quality_on_tiny_data():
    data = _tiny_data()
    run = run_quality(
        data, mismatch=0.3, label_noise=0.2, seed=0, methods=QUALITY_METHODS, warmup_epochs=3, epochs=5, device="cpu"
    )
    assert set(run.accuracy) == set(QUALITY_METHODS) and all(0 <= v <= 1 for v in run.accuracy.values())
    assert int(run.noise.mismatched.sum()) == 72 and int(run.noise.wrong_label.sum()) == 48
    assert run.keep.shape == (240,) and run.report["kept"] == pytest.approx(run.keep.float().mean().item())
    assert run.scores.agreement.shape == (240,)
    assert run.accuracy["clean"] > run.accuracy["dirty"]


def test_run_quality_rejects_unknown_methods():
    with pytest.raises(ValueError, match="methods must be among"):
        run_quality(None, mismatch=0.1, label_noise=0.0, methods=("dirty", "magic"))


# ---------------------------------------------------------------------------------------------- plots and widget


def test_score_histogram_labels_and_errors():
    s = torch.randn(50)
    groups = {"a": s > 0, "b": s <= 0}
    fig = score_histogram(s, groups, threshold=0.1, xlabel="score", title="t")
    ax = fig.axes[0]
    assert ax.get_title() == "t" and ax.get_xlabel() == "score" and ax.get_ylabel() == "items (count)"
    assert any("threshold" in t.get_text() for t in ax.get_legend().get_texts())
    with pytest.raises(ValueError, match=r"groups\['a'\] must have shape \(50\)"):
        score_histogram(s, {"a": torch.ones(49, dtype=torch.bool)}, xlabel="x", title="t")


def test_widget_figure_changes_with_the_threshold():
    a = quality_widget_figure(0.5, -2.3, 0.3, 0.2, warmup_epochs=2, epochs=3)
    b = quality_widget_figure(0.8, -2.3, 0.3, 0.2, warmup_epochs=2, epochs=3)
    assert isinstance(a, Figure) and len(a.axes) == 3
    for ax in a.axes:
        assert ax.get_title() and ax.get_ylabel()
    assert a.axes[0].get_xlabel() and a.axes[1].get_xlabel() and a._suptitle.get_text()
    heights = lambda f: [p.get_height() for p in f.axes[2].patches]
    assert heights(a) != heights(b)
    assert not any(math.isnan(h) for h in heights(a))
    with pytest.raises(ValueError, match="mismatch"):
        quality_widget_figure(0.5, -2.3, 1.5, 0.2)
