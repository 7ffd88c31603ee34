import pytest
import torch
from matplotlib.figure import Figure

from mmlab.train import History
from mmlab.viz import bar_chart, plot_curves, plot_history, plot_spectrogram, show_images


def _labelled(fig: Figure) -> bool:
    title = fig._suptitle.get_text() if fig._suptitle else ""
    axes = [a for a in fig.axes if a.get_label() != "<colorbar>"]
    return bool(title or all(a.get_title() for a in axes))


def test_figures_have_titles_and_labels():
    h = History()
    for i in range(3):
        h.log(train_loss=1 / (i + 1), train_acc=i / 3, val_loss=1.2 / (i + 1), val_acc=i / 4)
    figs = [
        plot_history(h),
        show_images(torch.rand(4, 1, 8, 8), labels=[0, 1, 2, 3]),
        plot_curves([0, 1], {"a": [0.1, 0.2]}, xlabel="x (s)", ylabel="y (%)", title="t"),
        bar_chart({"a": 0.5, "b": 0.7}, ylabel="accuracy", title="t", ref=0.1),
    ]
    for fig in figs:
        assert isinstance(fig, Figure) and _labelled(fig)
    ax = figs[2].axes[0]
    assert ax.get_xlabel() and ax.get_ylabel()


def test_spectrogram_is_time_first():
    fig = plot_spectrogram(torch.zeros(50, 32), title="s")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "time (s)" and ax.get_xlim()[1] == pytest.approx(0.5)  # 50 frames of 10 ms
    with pytest.raises(ValueError, match=r"\(frames, n_mels\)"):
        plot_spectrogram(torch.zeros(2, 3, 4))


def test_plot_curves_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="has 1 points but x has 2"):
        plot_curves([0, 1], {"a": [1]}, xlabel="x", ylabel="y", title="t")
