import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from mmlab import seed_everything
from mmlab.lessons.missing import (
    MISSING_MODALITIES,
    MissingData,
    MissingRun,
    lesson_encoders,
    load_missing_data,
    missing_curves_figure,
    robustness_score,
    train_missing_model,
)
from mmlab.missing import MissingModalityClassifier, accuracy_by_pattern, train_classifier
from mmlab.train import History

ACCS = {
    "robust": [{(True, True): 0.9, (True, False): 0.85, (False, True): 0.7}] * 2,
    "fragile": [
        {(True, True): 0.92, (True, False): 0.3, (False, True): 0.6},
        {(True, True): 0.90, (True, False): 0.4, (False, True): 0.6},
    ],
}


def _tiny_data(n: int = 120, seed: int = 0) -> MissingData:
    """Random stand-in with the lesson's shapes: image (n, 64), audio (n, 40), 10 classes."""
    g = torch.Generator().manual_seed(seed)

    def split():
        y = torch.randint(0, 10, (n,), generator=g)
        image = torch.randn(n, 64, generator=g) + torch.nn.functional.one_hot(y, 64).float()
        audio = torch.randn(n, 40, generator=g) + torch.nn.functional.one_hot(y, 40).float()
        return [image, audio], y

    (train_x, train_y), (test_x, test_y) = split(), split()
    return MissingData(train_x, train_y, test_x, test_y)


def test_load_missing_data_shapes_and_training_statistics():
    data = load_missing_data()
    assert data.modalities == MISSING_MODALITIES == ("image", "audio")
    (image, audio), y = data.train_inputs, data.train_labels
    assert image.shape == (len(y), 64) and audio.shape == (len(y), 40)
    assert [x.shape[1] for x in data.test_inputs] == [64, 40] and len(data.test_labels) == len(data.test_inputs[0])
    assert torch.allclose(audio.mean(0), torch.zeros(40), atol=1e-4), "audio standardised on the training split"
    assert set(data.train_labels.unique().tolist()) == set(range(10))


def test_lesson_encoders_same_init_alone_or_together():
    torch.manual_seed(3)
    both = lesson_encoders()
    torch.manual_seed(3)
    audio = lesson_encoders(["audio"])
    assert list(both) == ["image", "audio"] and list(audio) == ["audio"]
    assert all(e.out_dim == 32 for e in both.values())
    for a, b in zip(both["audio"].parameters(), audio["audio"].parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="modalities must be a non-empty subset"):
        lesson_encoders(["visual"])


def test_train_missing_model_matches_the_seed_everything_recipe_and_leaves_global_rng_alone():
    data = _tiny_data()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    run = train_missing_model(0, data, epochs=2, device="cpu", progress=False, fill="token", train_rates=(0.5, 0.5))
    assert torch.equal(torch.get_rng_state(), before), "the caller's random state is left as it was"
    assert isinstance(run, MissingRun) and isinstance(run.history, History) and run.history.epochs == 2
    assert set(run.pattern_acc) == {(True, True), (True, False), (False, True)}
    assert not run.model.training

    seed_everything(0)  # the recipe the notebook used before: seed, build, train
    ref = MissingModalityClassifier(lesson_encoders(), 10, fill="token", train_rates=(0.5, 0.5))
    hist = train_classifier(ref, data.train_inputs, data.train_labels, epochs=2, seed=0, device="cpu", progress=False)
    assert hist["ce"] == run.history["ce"]
    assert accuracy_by_pattern(ref, data.test_inputs, data.test_labels) == run.pattern_acc


def test_train_missing_model_on_one_modality():
    data = _tiny_data()
    run = train_missing_model(1, data, modalities=["audio"], epochs=1, device="cpu", progress=False)
    assert run.model.modalities == ["audio"] and set(run.pattern_acc) == {(True,)}
    with pytest.raises(ValueError, match="modalities must be a non-empty subset"):
        train_missing_model(1, data, modalities=["text"], epochs=1, progress=False)


def test_missing_curves_figure_draws_the_straight_lines_and_ceilings():
    fig = missing_curves_figure(ACCS, {"image": 0.95, "audio": 0.7}, rates=[0.0, 0.5, 1.0], title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 2 and fig._suptitle.get_text() == "t"
    for ax, m in zip(fig.axes, ["image", "audio"]):
        assert ax.get_title() == f"{m} goes missing" and "rate" in ax.get_xlabel() and ax.get_ylabel()
    robust_image_missing = fig.axes[0].lines[0].get_ydata()
    assert np.allclose(robust_image_missing, [0.9, 0.8, 0.7])  # (1-r)·acc(both) + r·acc(audio only)
    assert np.isclose(fig.axes[0].lines[-1].get_ydata()[0], 0.7)  # audio-alone ceiling, dashed
    with pytest.raises(ValueError, match="ceilings must give"):
        missing_curves_figure(ACCS, {"image": 0.9})


def _tiny_data_with_val(n: int = 120) -> MissingData:
    data = _tiny_data(n)
    other = _tiny_data(n, seed=1)
    return MissingData(
        data.train_inputs,
        data.train_labels,
        data.test_inputs,
        data.test_labels,
        val_inputs=other.test_inputs,
        val_labels=other.test_labels,
    )


def test_robustness_score_is_the_mean_of_the_end_points():
    acc = {(True, True): 0.9, (True, False): 0.7, (False, True): 0.5}
    # image missing: (0.9 + 0.5) / 2; audio missing: (0.9 + 0.7) / 2; mean of the two
    assert robustness_score(acc) == pytest.approx(((0.9 + 0.5) / 2 + (0.9 + 0.7) / 2) / 2)
    assert robustness_score({(True,): 0.8}) == pytest.approx(0.8)


def test_missing_data_split():
    data = _tiny_data_with_val()
    inputs, labels = data.split("val", ["audio"])
    assert len(inputs) == 1 and inputs[0] is data.val_inputs[1] and labels is data.val_labels
    assert data.split("test")[1] is data.test_labels
    with pytest.raises(ValueError, match="no 'val' split"):
        _tiny_data().split("val")
    with pytest.raises(ValueError, match="name"):
        data.split("dev")


def test_load_missing_data_has_a_val_split_standardised_with_training_statistics():
    data = load_missing_data()
    (image, audio), y = data.split("val")
    assert image.shape == (len(y), 64) and audio.shape == (len(y), 40)
    assert not torch.allclose(audio.mean(0), torch.zeros(40), atol=1e-3)  # train statistics, not val's own


def test_train_missing_model_keeps_the_best_val_epoch_and_scores_test_after():
    data = _tiny_data_with_val()
    run = train_missing_model(0, data, epochs=4, progress=False, fill="zero", train_rates=(0.5, 0.5))
    scores = run.history["val_score"]
    assert len(scores) == 4 and 1 <= run.best_epoch <= 4
    assert scores.index(max(scores)) == run.best_epoch - 1
    assert robustness_score(run.val_acc) == pytest.approx(max(scores))
    # the returned model is the kept epoch: its val accuracies are the recorded ones
    assert accuracy_by_pattern(run.model, data.val_inputs, data.val_labels) == run.val_acc
    assert run.pattern_acc == accuracy_by_pattern(run.model, data.test_inputs, data.test_labels)


def test_train_missing_model_recon_weight_zero_keeps_the_network_but_not_the_loss():
    data = _tiny_data()
    on = train_missing_model(0, data, epochs=2, progress=False, fill="reconstruct", train_rates=(0.5, 0.5))
    off = train_missing_model(
        0, data, epochs=2, progress=False, fill="reconstruct", train_rates=(0.5, 0.5), recon_weight=0.0
    )
    assert sum(p.numel() for p in on.model.parameters()) == sum(p.numel() for p in off.model.parameters())
    assert off.history["train_loss"] == off.history["ce"]  # L = CE when the weight is 0
    assert on.history["train_loss"] != on.history["ce"]
    assert all(r > 0 for r in off.history["recon"])  # still measured, just not trained on
