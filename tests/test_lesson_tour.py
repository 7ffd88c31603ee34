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
