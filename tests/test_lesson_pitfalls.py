import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from mmlab.lessons.pitfalls import (
    QUALITY_METHODS,
    EarlyStopping,
    FusionStack,
    QualityData,
    StopTraining,
    labeled_split,
    quality_widget_figure,
    run_quality,
    score_histogram,
    split_accuracy,
    train_classifier,
    train_on_features,
    tune_on_val,
)
from mmlab.models import count_parameters
from mmlab.quality import FILTER_GRID
from mmlab.train import accuracy, predict


def _blobs(n=400, seed=0, d=(6, 5), c=4, scale=2.0):
    """Two modalities, each a noisy code of the label (``c`` classes)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, c, (n,), generator=g)
    protos = [torch.randn(c, k, generator=g) * scale for k in d]
    xs = [p[y] + torch.randn(n, p.shape[1], generator=g) for p in protos]
    return xs, y


def _tiny_data(n=240, n_val=80, n_test=120) -> QualityData:
    xs, y = _blobs(n + n_val + n_test, seed=3, scale=1.0)
    parts = [slice(0, n), slice(n, n + n_val), slice(n + n_val, None)]
    return QualityData(*[t for p in parts for t in (xs[0][p], xs[1][p], y[p])])


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


def test_early_stopping_stops_after_patience_and_restores_the_best_epoch():
    xs, y = _blobs(120)
    vx, vy = [x[:40] for x in xs], y[:40]
    vy_bad = (vy + 1) % 4  # validation labels the model can only get worse on as it learns
    torch.manual_seed(0)
    m = FusionStack([6, 5], 4, width=8)
    stop = EarlyStopping(vx, vy_bad, patience=3)
    snapshots = []

    def train(hook):
        def after_epoch(model, epoch):
            out = hook(model, epoch)
            snapshots.append(_params(model).clone())
            return out

        train_on_features(m, xs, y, epochs=30, lr=3e-2, seed=0, progress=False, after_epoch=after_epoch)

    stop.run(m, train)
    assert stop.epochs_run == stop.best_epoch + 3 < 30  # stopped 3 epochs after the last improvement
    assert stop.best_acc == max(stop.val_acc) and stop.val_acc.index(stop.best_acc) + 1 == stop.best_epoch
    assert torch.equal(_params(m), snapshots[stop.best_epoch - 1])  # the best epoch's weights are back
    assert len(snapshots) == stop.epochs_run - 1  # the last epoch raised StopTraining inside the hook


def test_early_stopping_errors():
    xs, y = _blobs(20)
    with pytest.raises(ValueError, match="patience must be a positive int"):
        EarlyStopping(xs, y, patience=0)
    with pytest.raises(ValueError, match=r"features\[1\] must have shape \(20, \*\)"):
        EarlyStopping([xs[0], xs[1][:5]], y, patience=2)
    with pytest.raises(RuntimeError, match="never ran"):
        EarlyStopping(xs, y, patience=2).run(FusionStack([6, 5], 4), lambda hook: None)
    with pytest.raises(StopTraining):
        stop = EarlyStopping(xs, y, patience=1)
        model = FusionStack([6, 5], 4)
        stop(model, 0)
        stop(model, 1)  # no improvement on identical weights: the patience of one epoch is spent


def test_tune_on_val_chooses_on_validation_accuracy_from_one_initialisation():
    xs, y = _blobs(200)
    vx, vy = [x[:60] for x in xs], y[:60]
    tx, ty = [x[60:] for x in xs], y[60:]
    inits = []

    def make():
        model = FusionStack([6, 5], 4, width=8)
        inits.append(_params(model).clone())
        return model

    def train(model, lr, after_epoch):
        train_on_features(model, tx, ty, epochs=12, lr=lr, seed=0, progress=False, after_epoch=after_epoch)

    torch.manual_seed(123)
    before = torch.get_rng_state()
    run = tune_on_val(make, train, vx, vy, grid=[{"lr": 1e-5}, {"lr": 3e-2}], patience=4, seed=0, train_features=tx,
                      train_labels=ty)  # fmt: skip
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(inits[0], inits[1])  # every grid point starts from the same weights
    assert [p for p, _, _ in run.grid] == [{"lr": 1e-5}, {"lr": 3e-2}]
    assert run.val_acc == max(acc for _, _, acc in run.grid) and run.params == {"lr": 3e-2}
    assert 1 <= run.epoch <= 12 and 0 <= run.train_acc <= 1
    assert accuracy(predict(run.model, vx), vy) == run.val_acc  # the returned model is the chosen epoch's
    with pytest.raises(ValueError, match="grid must hold"):
        tune_on_val(make, train, vx, vy, grid=[], patience=2)


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


def test_quality_data_splits():
    data = _tiny_data()
    (vi, va), vy = data.val
    (ti, ta), ty = data.test
    assert vi.shape == (80, 6) and va.shape == (80, 5) and vy.shape == (80,)
    assert ti.shape == (120, 6) and ta.shape == (120, 5) and ty.shape == (120,)
    assert data.input_dims == [6, 5]


def test_train_classifier_is_seeded_and_leaves_the_global_rng_alone():
    data = _tiny_data()
    torch.manual_seed(7)
    before = torch.get_rng_state()
    a = train_classifier(data, data.image, data.audio, data.label, seed=0, epochs=3, device="cpu")
    assert torch.equal(torch.get_rng_state(), before)
    b = train_classifier(data, data.image, data.audio, data.label, seed=0, epochs=3, device="cpu")
    assert torch.equal(_params(a), _params(b))
    assert 0.5 < split_accuracy(a, data, "val") <= 1.0 and 0.5 < split_accuracy(a, data, "test") <= 1.0
    with pytest.raises(ValueError, match="split must be 'val' or 'test'"):
        split_accuracy(a, data, "train")


def test_run_quality_on_tiny_data():
    data = _tiny_data()
    run = run_quality(
        data, mismatch=0.3, label_noise=0.2, seed=0, methods=QUALITY_METHODS, warmup_epochs=3, epochs=5, device="cpu"
    )
    assert set(run.accuracy) == set(QUALITY_METHODS) and all(0 <= v <= 1 for v in run.accuracy.values())
    assert set(run.val_accuracy) == set(QUALITY_METHODS)
    assert int(run.noise.mismatched.sum()) == 72 and int(run.noise.wrong_label.sum()) == 48
    assert run.keep.shape == (240,) and run.report["kept"] == pytest.approx(run.keep.float().mean().item())
    assert run.scores.agreement.shape == (240,)
    for m in ("filtered", "weighted"):  # the choice is the candidate with the best validation accuracy
        assert len(run.val_candidates[m]) == len(FILTER_GRID)
        best = int(np.argmax(run.val_candidates[m]))
        assert run.chosen[m] == FILTER_GRID[best] and run.val_accuracy[m] == max(run.val_candidates[m])
    ta, tl = run.chosen["filtered"]
    assert torch.equal(run.keep, (run.scores.agreement >= ta) & (run.scores.loglik >= tl))


def test_run_quality_chooses_without_looking_at_the_test_split():
    """Scrambling the test labels changes the test accuracies, never the choices or validation numbers."""
    data = _tiny_data()
    g = torch.Generator().manual_seed(0)
    scrambled = QualityData(
        data.image, data.audio, data.label, *data.val[0], data.val_label, *data.test[0],
        torch.randint(0, 4, data.test_label.shape, generator=g),
    )  # fmt: skip
    kw = dict(mismatch=0.3, label_noise=0.2, seed=1, methods=("filtered", "weighted"), warmup_epochs=3, epochs=4)
    a, b = run_quality(data, **kw, device="cpu"), run_quality(scrambled, **kw, device="cpu")
    assert a.chosen == b.chosen and a.val_candidates == b.val_candidates
    assert a.accuracy != b.accuracy


def test_run_quality_with_one_candidate_uses_it():
    data = _tiny_data()
    run = run_quality(
        data, mismatch=0.2, label_noise=0.0, thresholds=[(0.2, -5.0)], methods=("filtered",), warmup_epochs=2, epochs=2
    )
    assert run.chosen == {"filtered": (0.2, -5.0)} and len(run.val_candidates["filtered"]) == 1
    with pytest.raises(ValueError, match="thresholds must hold"):
        run_quality(data, mismatch=0.2, label_noise=0.0, thresholds=[], methods=("filtered",))


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
    assert "validation" in a.axes[2].get_title()  # thresholds are explored on val, never on test
    heights = lambda f: [p.get_height() for p in f.axes[2].patches]
    assert heights(a) != heights(b)
    assert not any(math.isnan(h) for h in heights(a))
    with pytest.raises(ValueError, match="mismatch"):
        quality_widget_figure(0.5, -2.3, 1.5, 0.2)
