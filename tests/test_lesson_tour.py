import pytest

from mmlab.lessons.tour import avdigits_sample_figure


def test_sample_figure_widget_function():
    fig = avdigits_sample_figure(3, image_noise=0.3, text_noise=0.5)
    assert "caption" in fig._suptitle.get_text()
    img_ax, spec_ax = fig.axes[:2]
    assert img_ax.get_title() and img_ax.get_xlabel() == "x (px)"
    assert spec_ax.get_xlabel() == "time (s)" and spec_ax.get_ylabel() == "mel band"
    with pytest.raises(ValueError, match="index must be in"):
        avdigits_sample_figure(10_000)


def test_keep_best_chooses_the_epoch_on_the_score_and_restores_it():
    import torch
    from torch import nn

    from mmlab.lessons.tour import KeepBest
    from mmlab.train import fit, make_loader

    torch.manual_seed(0)
    model = nn.Linear(1, 1)
    scores = iter([0.2, 0.7, 0.5, 0.7])  # best at epoch 2; a later tie does not replace it
    seen = {}

    def score(m):
        seen.setdefault("training", []).append(m.training)
        seen.setdefault("grad", []).append(torch.is_grad_enabled())
        return next(scores)

    best = KeepBest(score, name="val_acc")
    weights = []

    def record(m, epoch):
        row = best(m, epoch)
        weights.append(m.weight.detach().clone())
        return row

    x = torch.randn(32, 1)
    history = fit(
        model,
        make_loader(x, 3 * x, batch_size=8),
        epochs=4,
        lr=0.1,
        loss_fn=nn.functional.mse_loss,
        after_epoch=record,
        progress=False,
    )
    assert history["val_acc"] == [0.2, 0.7, 0.5, 0.7] and best.scores == history["val_acc"]
    assert best.best_epoch == 2 and best.best_score == 0.7
    assert seen["training"] == [False] * 4 and seen["grad"] == [False] * 4, "scored in eval mode, without gradients"
    assert not torch.equal(model.weight, weights[1])  # training moved on after epoch 2...
    assert best.restore(model) is model and torch.equal(model.weight, weights[1])  # ...and restore goes back
    assert model.training, "the model's mode is restored after scoring"
    with pytest.raises(RuntimeError, match="never ran"):
        KeepBest(lambda m: 0.0).restore(model)
    with pytest.raises(ValueError, match="score returned"):
        KeepBest(lambda m: float("nan"))(model, 0)
    with pytest.raises(TypeError, match="callable"):
        KeepBest(0.5)
