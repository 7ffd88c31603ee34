"""mmlab.lessons.alignment: lesson 1's test sets, scoring, experiment over seeds, figures and widget."""

import inspect

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import mmlab.align
from mmlab.align import ALIGN_METHODS, AlignmentSpace, AttentionAligner, alignment_accuracy, predict_tokens
from mmlab.data import collate_episodes, make_alignment_episode, make_alignment_episodes, make_grounding_canvases
from mmlab.lessons.alignment import (
    ALIGN_METHOD_LABELS,
    SELECTION_SEED_OFFSET,
    TEST_SEED_OFFSET,
    alignment_curves_figure,
    alignment_experiment,
    alignment_figure,
    alignment_score,
    alignment_test_sets,
    chance_accuracy,
    episode_figure,
    grounding_figure,
    score_methods,
    selection_batch,
    timing_ranges,
)


def _pixels(fig: Figure) -> np.ndarray:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def _untrained(seed: int) -> tuple[AlignmentSpace, AttentionAligner]:
    torch.manual_seed(seed)
    return AlignmentSpace(dim=8).eval(), AttentionAligner(space_dim=8, dim=8, heads=2).eval()


@pytest.fixture(scope="module")
def tiny_sets():
    return alignment_test_sets([0.0, 1.0], [0, 1], n=3)


def test_method_module_does_not_know_the_lesson():
    source = inspect.getsource(mmlab.align)
    assert "lessons" not in source.split('"""', 2)[2], "mmlab.align must not import mmlab.lessons"
    for name in ("episode_figure", "alignment_figure", "grounding_figure", "METHODS"):
        assert not hasattr(mmlab.align, name)
    assert set(ALIGN_METHOD_LABELS) == set(ALIGN_METHODS)


def test_test_sets_are_the_lesson_streams(tiny_sets):
    assert set(tiny_sets) == {(0.0, 0), (0.0, 1), (1.0, 0), (1.0, 1)}
    expected = collate_episodes(make_alignment_episodes(3, "test", warp=1.0, seed=TEST_SEED_OFFSET + 1))
    got = tiny_sets[1.0, 1]
    assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in got)
    # the same episode numbers give the same strings at every warp
    assert torch.equal(tiny_sets[0.0, 0]["token_mask"], tiny_sets[1.0, 0]["token_mask"])
    with pytest.raises(ValueError, match="n must"):
        alignment_test_sets([0.0], [0], n=0)
    with pytest.raises(ValueError, match="warps and seeds"):
        alignment_test_sets([], [0])


def test_scores_and_chance(tiny_sets):
    b = tiny_sets[0.0, 0]
    assert alignment_score("index", b) == 1.0 and alignment_score("proportional", b) == 1.0  # in step: exact
    # chance by hand: the mean of 1/K over the spoken frames of episodes of K tokens
    k = b["token_mask"].sum(1).float()
    per_frame = torch.cat([torch.full((int(n),), 1 / float(kk)) for n, kk in zip(b["speech_voiced"].sum(1), k)])
    assert chance_accuracy(b) == pytest.approx(per_frame.mean().item())
    space, aligner = _untrained(0)
    space.train()
    got = alignment_score("attention", b, space, aligner)
    assert space.training and not aligner.training, "the models' modes are restored"
    want = alignment_accuracy(
        predict_tokens("attention", b, space.eval(), aligner), b["speech_token"], b["speech_voiced"]
    )
    assert got == pytest.approx(want)
    with pytest.raises(ValueError, match="method"):
        alignment_score("nearest", b)


def test_score_methods_and_experiment(tiny_sets):
    warps, seeds = [0.0, 1.0], [0, 1]
    space, aligner = _untrained(5)
    one = score_methods(space, aligner, tiny_sets, 0, warps, ("index", "dtw"))
    assert set(one) == {"index", "dtw"} and one["index"][0] == 1.0 and len(one["dtw"]) == 2
    with pytest.raises(ValueError, match="methods"):
        score_methods(space, aligner, tiny_sets, 0, warps, ("nearest",))
    with pytest.raises(KeyError, match="test_sets"):
        score_methods(space, aligner, tiny_sets, 7, warps)

    calls = []

    def train(seed):
        calls.append(seed)
        return _untrained(seed)

    acc = alignment_experiment(train, tiny_sets, seeds, warps, trained={0: (space, aligner)})
    assert calls == [1], "a seed given in trained is not trained again"
    assert set(acc) == set(ALIGN_METHODS) and all(a.shape == (2, 2) for a in acc.values())
    assert np.allclose(acc["index"][:, 0], 1.0) and ((acc["dtw"] >= 0) & (acc["dtw"] <= 1)).all()
    assert acc["dtw"][0].tolist() == one["dtw"]
    with pytest.raises(ValueError, match="seeds"):
        alignment_experiment(train, tiny_sets, [], warps)


def test_alignment_widget_reacts_to_warp():
    space, aligner = _untrained(0)
    space.train()
    fig0 = alignment_figure(space, aligner, warp=0.0, noise=0.2, episode=2)
    fig1 = alignment_figure(space, aligner, warp=1.0, noise=0.2, episode=2)
    assert space.training and not aligner.training, "the widget restores the models' modes"
    assert isinstance(fig0, Figure) and fig0._suptitle is not None
    panels, bars = fig0.axes[:2], fig0.axes[2:]
    for ax in panels:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert [bar.get_ylabel() for bar in bars] == ["cost (nats)", "attention weight"]
    a, b = _pixels(fig0), _pixels(fig1)
    assert a.shape != b.shape or not np.array_equal(a, b)
    with pytest.raises(ValueError, match="warp"):
        alignment_figure(space, aligner, warp=2.0)


def test_episode_and_grounding_figures():
    eps = [make_alignment_episode("val", warp=w, index=1) for w in (0.0, 1.0)]
    fig = episode_figure(eps, titles=["in step", "out of step"])
    assert isinstance(fig, Figure) and len(fig.axes) == 4 and fig.axes[-1].get_xlabel() == "time (s)"
    assert fig.axes[0].get_title() == "in step" and fig.axes[0].get_ylabel() == "mel band"
    assert fig.axes[0].get_images()[0].get_array().shape == (eps[0].speech.shape[1], eps[0].speech.shape[0])
    with pytest.raises(ValueError, match="titles"):
        episode_figure(eps, titles=["one"])
    g = make_grounding_canvases(3, "val", seed=2)
    fig = grounding_figure(g.canvas, torch.full((3, 16), 1 / 16), g.text, grid=4, target_cell=g.target_cell)
    assert isinstance(fig, Figure) and len(fig.axes) == 3 and fig._suptitle is not None
    assert fig.axes[0].get_xlabel() == "x (px)" and fig.axes[0].get_ylabel() == "y (px)"
    with pytest.raises(ValueError, match="weights"):
        grounding_figure(g.canvas, torch.ones(3, 9), g.text, grid=4)
    with pytest.raises(ValueError, match="texts"):
        grounding_figure(g.canvas, torch.full((3, 16), 1 / 16), g.text[:2], grid=4)


def test_alignment_curves_figure():
    acc = {"index": np.array([[1.0, 0.5], [1.0, 0.4]]), "dtw": np.array([[0.9, 0.9], [0.95, 0.85]])}
    fig = alignment_curves_figure(acc, [0.0, 1.0], chance=0.25)
    ax = fig.axes[0]
    assert "2 seeds" in ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert "(val episodes)" in alignment_curves_figure(acc, [0.0, 1.0], split="val").axes[0].get_title()
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"pair by index", "DTW, cost −log p(same word)"}
    with pytest.raises(ValueError, match="acc"):
        alignment_curves_figure(acc, [0.0, 0.5, 1.0])


def test_val_sets_and_selection_batch_never_touch_test():
    val = alignment_test_sets([1.0], [0], n=3, split="val")[1.0, 0]
    expected = collate_episodes(make_alignment_episodes(3, "val", warp=1.0, seed=TEST_SEED_OFFSET))
    assert all(torch.equal(val[k], expected[k]) for k in val)
    test = alignment_test_sets([1.0], [0], n=3)[1.0, 0]
    assert val["speech"].shape != test["speech"].shape or not torch.equal(val["speech"], test["speech"])
    sel = selection_batch(3, n=4)
    warp = np.random.default_rng(SELECTION_SEED_OFFSET + 3).uniform(0, 1, 4)
    want = collate_episodes(make_alignment_episodes(4, "val", warp=warp, seed=SELECTION_SEED_OFFSET + 3))
    assert all(torch.equal(sel[k], want[k]) for k in sel), "val split, mixed warps, its own stream"
    assert len(set(np.round(warp, 3))) == 4
    with pytest.raises(ValueError, match="n must"):
        selection_batch(0, n=0)


def test_timing_ranges_measure_what_the_generator_states():
    in_step = timing_ranges(make_alignment_episodes(8, "val", warp=0.0, seed=3))
    # in step: every word at its natural duration (up to half a frame of rounding), no pauses, no lead
    assert np.allclose(in_step["speech_stretch"], 1, atol=0.1) and np.allclose(in_step["video_hold"], 1, atol=0.15)
    assert (in_step["pause_s"] <= 0.04 + 1e-9).all() and (in_step["lead_s"] == 0).all()
    eps = make_alignment_episodes(30, "val", warp=1.0, seed=3)
    r = timing_ranges(eps)
    assert len(r["lead_s"]) == 30 and len(r["speech_stretch"]) == sum(len(e.digits) for e in eps)
    assert 0.9 / 2.25 < r["speech_stretch"].min() and r["speech_stretch"].max() < 1.1 * 2.25
    assert 0.9 / 16 < r["video_hold"].min() and r["video_hold"].max() < 1.1 * 16
    assert r["pause_s"].max() <= 0.44 + 1e-9 and r["lead_s"].max() <= 0.54 + 1e-9
    assert r["speech_stretch"].std() > 3 * in_step["speech_stretch"].std(), "the warp stretches words"
    # one hand-checked episode: the lead is the silent frames before the first spoken one
    ep = eps[0]
    first = int(ep.speech_voiced.numpy().argmax())
    assert r["lead_s"][0] == pytest.approx(first * ep.frame_ms / 1000)
    with pytest.raises(ValueError, match="episodes"):
        timing_ranges([])
