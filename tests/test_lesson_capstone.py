"""Lesson 9 (capstone): the task, the pipelines' modules, the ablation drivers, test-time noise, compression,
serving and the widget."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from mmlab.deploy import model_size_bytes  # noqa: E402
from mmlab.fusion import NormalizedFusion  # noqa: E402
from mmlab.lessons.capstone import (  # noqa: E402
    CONDITIONS,
    FIXES,
    PRUNE_PAIRS,
    TEST_NOISE,
    CachedTextPipeline,
    CapstoneClassifier,
    SequenceAudioEncoder,
    add_test_noise,
    build_pipeline,
    capstone_widget_figure,
    compress_pipeline,
    condition_accuracy,
    contribution_figure,
    cumulative_configs,
    interpolate_noise,
    leave_one_out_configs,
    load_capstone_task,
    noisy_pattern_accuracy,
    pattern_accuracy,
    per_seed,
    pipeline_runs,
    serve,
    serving_timings,
    train_pipeline,
)
from mmlab.missing import accuracy_by_pattern  # noqa: E402
from mmlab.runtime import seeded  # noqa: E402
from mmlab.stats import paired_bootstrap  # noqa: E402


@pytest.fixture(scope="module")
def task():
    return load_capstone_task()


def test_task_has_every_problem(task):
    x, y = task.split("train")
    assert [t.shape[0] for t in x] == [len(y)] * 3
    assert x[0].shape[1] == 64 and x[1].shape[2] == 33 and x[2].shape[1] == len(task.vocab)
    mask = x[1][..., -1]
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert (mask.sum(1) < mask.shape[1]).float().mean() > 0.9, "most clips are padded"
    # the audio of a mismatched pair comes from another class; labels of wrong-label items differ from the truth
    assert int(task.noise.mismatched.sum()) == round(0.2 * len(y))
    assert bool((task.noise.labels[task.noise.wrong_label] != task.noise.clean_labels[task.noise.wrong_label]).all())
    assert task.audio_lengths("test").float().mean() > task.audio_lengths("train").float().mean()
    with pytest.raises(ValueError, match="name"):
        task.split("dev")


def test_masked_audio_encoder_ignores_padding_and_naive_does_not():
    with seeded(0):
        masked, naive = SequenceAudioEncoder(masked=True), SequenceAudioEncoder(masked=False)
    naive.load_state_dict(masked.state_dict())
    x = torch.randn(2, 10, 33)
    x[..., -1] = 0
    x[0, :6, -1] = 1
    x[1, :6, -1] = 1
    x[1, :6, :32] = x[0, :6, :32]  # same real frames, different padding values
    x[1, 6:, :32] = 5.0
    a, b = masked(x), naive(x)
    torch.testing.assert_close(a[0], a[1])
    assert not torch.allclose(b[0], b[1])
    with pytest.raises(ValueError, match="packed"):
        masked(torch.randn(2, 10, 32))


def test_build_pipeline_switches_modules(task):
    with seeded(0):
        naive, full = build_pipeline(task, ()), build_pipeline(task, FIXES)
    assert isinstance(full, CapstoneClassifier) and isinstance(full.fusion, NormalizedFusion)
    assert naive.dropout is None and naive.fill == "zero" and not naive.encoders["audio"].masked
    assert full.dropout is not None and full.fill == "token" and full.encoders["audio"].masked
    with pytest.raises(ValueError, match="fixes"):
        build_pipeline(task, ["masks", "magic"])
    with pytest.raises(TypeError, match="fixes"):
        build_pipeline(task, "masks")


def test_normalised_completion_is_layer_norm(task):
    with seeded(0):
        model = build_pipeline(task, ["fusion"]).eval()
    x, _ = task.split("val")
    feats = model.embed(*(t[:5] for t in x))
    present = torch.ones(5, 3, dtype=torch.bool)
    zs = model.complete(feats, present)
    for z in zs:
        torch.testing.assert_close(z.mean(-1), torch.zeros(5), atol=1e-5, rtol=0)


def test_pattern_accuracy_matches_accuracy_by_pattern(task):
    with seeded(0):
        model = build_pipeline(task, FIXES).eval()
    x, y = task.split("val")
    fast = pattern_accuracy(model, x, y)
    slow = accuracy_by_pattern(model, x, y)
    assert fast.keys() == slow.keys()
    for k in fast:
        assert fast[k] == pytest.approx(slow[k], abs=1e-6)


def test_condition_accuracy_is_exact_expectation():
    pats = {p: float(sum(p)) / 3 for p in [(a, b, c) for a in (1, 0) for b in (1, 0) for c in (1, 0) if a or b or c]}
    pats = {tuple(bool(v) for v in k): v for k, v in pats.items()}
    assert condition_accuracy(pats, "complete") == pytest.approx(1.0)
    assert 0 < condition_accuracy(pats, "shifted") < condition_accuracy(pats, "missing") < 1
    with pytest.raises(ValueError, match="condition"):
        condition_accuracy(pats, "rainy")
    with pytest.raises(ValueError, match="condition"):
        condition_accuracy(pats, [0.1, 0.2])


def test_configs():
    cum = cumulative_configs()
    assert cum[0] == frozenset() and cum[-1] == frozenset(FIXES) and len(cum) == len(FIXES) + 1
    loo = leave_one_out_configs()
    assert all(len(c) == len(FIXES) - 1 and f not in c for f, c in loo.items())
    with pytest.raises(ValueError, match="fixes"):
        cumulative_configs(["masks", "nope"])


@pytest.fixture(scope="module")
def short_run(task):
    return train_pipeline(task, FIXES, seed=0, epochs=3, progress=False)


def test_train_pipeline_selects_on_val_and_learns(task, short_run):
    run = short_run
    assert 1 <= run.best_epoch <= 3 and 0.2 < run.kept < 1.0
    assert len(run.history["val_acc"]) == 3
    assert max(run.history["val_acc"]) == pytest.approx(condition_accuracy(run.val_patterns, "missing"), abs=1e-6)
    assert run.val_patterns == pattern_accuracy(run.model, *task.split("val"))  # kept epoch's val patterns
    assert condition_accuracy(run.test_patterns, "complete") > 0.3  # far above chance (0.1) after 3 epochs
    with pytest.raises(ValueError, match="select_on"):
        train_pipeline(task, (), select_on="val", epochs=1, progress=False)


def test_pipeline_runs_reuses_cache(task):
    cache = {}
    out = pipeline_runs(task, [frozenset(), frozenset(["masks"])], [0, 1], cache, epochs=1)
    assert len(cache) == 4 and all(len(v) == 2 for v in out.values())
    again = pipeline_runs(task, [frozenset()], [0, 1], cache, epochs=1)
    assert again[frozenset()][0] is out[frozenset()][0]
    acc = per_seed(out[frozenset()], "missing")
    assert acc.shape == (2,) and np.all((acc >= 0) & (acc <= 1))
    iv = paired_bootstrap(per_seed(out[frozenset(["masks"])], "complete"), per_seed(out[frozenset()], "complete"))
    fig = contribution_figure({"masks": iv}, {"masks": iv})
    assert fig.axes[0].get_title() and fig.axes[0].get_xlabel()


def test_serving_timings(task):
    with seeded(0):
        model = build_pipeline(task, FIXES).eval()
    x, _ = task.split("test")
    small = [t[:40] for t in x]
    out = serving_timings({"m": model, "cached": CachedTextPipeline(model)}, small, batch_size=16, repeats=5)
    for row in out.values():
        assert row["p95_ms"] >= row["p50_ms"] > 0 and row["items_per_s"] > 0 and row["size_kb"] > 1
    assert out["cached"]["size_kb"] == pytest.approx(out["m"]["size_kb"])  # the cache is not part of the checkpoint
    with pytest.raises(ValueError, match="models"):
        serving_timings({}, x)
    with pytest.raises(ValueError, match="batch_size"):
        serving_timings({"m": model}, small, batch_size=0)


# ------------------------------------------------------------------------------------------------ test-time noise

PATTERNS3 = [(a, b, c) for a in (True, False) for b in (True, False) for c in (True, False) if a or b or c]


def test_add_test_noise_touches_real_frames_only(task):
    x, _ = task.split("test")
    x = [t[:20] for t in x]
    same = add_test_noise(x, 0.0, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(same, x))
    one, two = add_test_noise(x, 0.5, 1.0, seed=3), add_test_noise(x, 1.0, 2.0, seed=3)
    torch.testing.assert_close(two[0] - x[0], 2 * (one[0] - x[0]))  # the same draws, scaled by σ
    valid = x[1][..., -1:] > 0
    assert torch.equal(one[1][..., -1], x[1][..., -1]), "the mask channel is untouched"
    assert torch.equal(torch.where(valid, 0.0, one[1]), torch.where(valid, 0.0, x[1])), "padding stays padding"
    assert not torch.equal(one[1], x[1]) and torch.equal(one[2], x[2])
    assert not torch.equal(add_test_noise(x, 0.5, 0.0, seed=4)[0], one[0])
    with pytest.raises(ValueError, match="image_noise"):
        add_test_noise(x, -0.1)
    with pytest.raises(ValueError, match="inputs"):
        add_test_noise(x[:2], 0.1)


def test_noisy_pattern_accuracy_grid(task):
    with seeded(0):
        model = build_pipeline(task, FIXES).eval()
    x, y = task.split("test")
    x, y = [t[:60] for t in x], y[:60]
    grid = noisy_pattern_accuracy(model, x, y, image_levels=(0.0, 1.0), audio_levels=(0.0, 2.0))
    assert set(grid) == {(0.0, 0.0), (0.0, 2.0), (1.0, 0.0), (1.0, 2.0)}
    assert grid[0.0, 0.0] == pattern_accuracy(model, x, y)
    assert grid[1.0, 2.0] == pattern_accuracy(model, add_test_noise(x, 1.0, 2.0), y)
    assert set(grid[1.0, 0.0]) == set(PATTERNS3)
    assert tuple(sorted({k[0] for k in noisy_pattern_accuracy(model, x, y)})) == TEST_NOISE["image"]
    with pytest.raises(ValueError, match="image_levels"):
        noisy_pattern_accuracy(model, x, y, image_levels=(1.0, 0.0))


def _grid(base: float, slope_i: float, slope_a: float) -> dict:
    """A noise grid whose every pattern's accuracy is base − slope_i·σ_i − slope_a·σ_a."""
    return {
        (si, sa): {p: base - slope_i * si - slope_a * sa for p in PATTERNS3}
        for si in TEST_NOISE["image"]
        for sa in TEST_NOISE["audio"]
    }


def test_interpolate_noise_is_exact_at_levels_and_linear_between():
    grid = _grid(0.9, 0.2, 0.1)
    at = interpolate_noise(grid, 0.5, 1.0)
    assert at == grid[0.5, 1.0]
    mid = interpolate_noise(grid, 0.25, 1.5)
    assert mid[(True, True, True)] == pytest.approx(0.9 - 0.2 * 0.25 - 0.1 * 1.5)
    assert interpolate_noise(grid, 1.0, 2.0) == grid[1.0, 2.0]
    with pytest.raises(ValueError, match="image_noise"):
        interpolate_noise(grid, 1.5, 0.0)
    with pytest.raises(ValueError, match="audio_noise"):
        interpolate_noise(grid, 0.0, -0.5)


def test_widget_figure():
    grids = {"a": [_grid(0.9, 0.2, 0.1), _grid(0.8, 0.2, 0.1)], "b": [_grid(0.6, 0.1, 0.0)] * 2}
    fig = capstone_widget_figure(0.1, 0.3, 0.3, patterns=grids)
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel() and "noise" in ax.get_title()
    widths = [b.get_width() for b in ax.patches]
    assert widths == pytest.approx([0.85, 0.6])
    # the first slider (image missing rate) changes the figure; so does each noise slider
    other = [b.get_width() for b in capstone_widget_figure(0.9, 0.3, 0.3, patterns=grids).axes[0].patches]
    assert other != widths
    noisy = [b.get_width() for b in capstone_widget_figure(0.1, 0.3, 0.3, 0.5, 1.0, patterns=grids).axes[0].patches]
    assert noisy == pytest.approx([0.85 - 0.1 - 0.1, 0.6 - 0.05])
    fig = capstone_widget_figure(1.0, 1.0, 1.0, patterns=grids)
    assert "nothing" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="image_noise"):
        capstone_widget_figure(0.1, 0.3, 0.3, 2.0, patterns=grids)
    assert set(CONDITIONS) == {"complete", "missing", "shifted"}


# ------------------------------------------------------------------------------------------------- deployment


def test_compress_pipeline_prunes_distills_and_scores(task, short_run):
    student = compress_pipeline(task, short_run, 0.5, epochs=1)
    enc = student.model.encoders
    assert enc["image"].net[1].out_features == 24 and enc["image"].net[3].in_features == 24
    assert enc["audio"].cnn.conv1.out_channels == 12 and enc["audio"].cnn.conv2.in_channels == 12
    assert enc["text"].net[1].out_features == 12
    assert model_size_bytes(student.model) < 0.7 * model_size_bytes(short_run.model)
    assert student.seed == short_run.seed and student.fixes == short_run.fixes and student.best_epoch == 1
    assert set(student.test_patterns) == set(PATTERNS3) and not student.model.training
    assert condition_accuracy(student.test_patterns, "complete") > 0.2
    assert [p for p, _ in PRUNE_PAIRS] == ["encoders.image.net.1", "encoders.audio.cnn.conv1", "encoders.text.net.1"]
    with pytest.raises(ValueError, match="epochs"):
        compress_pipeline(task, short_run, 0.5, epochs=0)
    with pytest.raises(ValueError, match="ratio"):
        compress_pipeline(task, short_run, 1.5)


def test_cached_text_pipeline_serves_the_same_logits(task, short_run):
    model = short_run.model
    x, _ = task.split("test")
    x = [t[:100] for t in x]
    served = CachedTextPipeline(model, capacity=256)
    out = serve(served, x, batch_size=16)
    with torch.no_grad():
        ref = model.eval()(*x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    distinct = len({tuple(r.tolist()) for r in x[2]})
    assert distinct < 100 and served.hit_rate > 0
    assert served.text_cache.cache.misses >= distinct
    served.clear_cache()
    assert served.hit_rate == 0.0 and len(served.text_cache.cache) == 0
    with pytest.raises(ValueError, match="inputs"):
        served(*x[:2])
    with pytest.raises(ValueError, match="inputs"):
        serve(model, [t[:0] for t in x])
