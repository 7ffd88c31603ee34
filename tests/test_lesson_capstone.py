"""Lesson 9 (capstone): the task, the pipelines' modules, the ablation drivers, serving timings and the widget."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from mmlab.fusion import NormalizedFusion  # noqa: E402
from mmlab.lessons.capstone import (  # noqa: E402
    CONDITIONS,
    FIXES,
    CapstoneClassifier,
    SequenceAudioEncoder,
    build_pipeline,
    capstone_widget_figure,
    condition_accuracy,
    contribution_figure,
    cumulative_configs,
    leave_one_out_configs,
    load_capstone_task,
    pattern_accuracy,
    per_seed,
    pipeline_runs,
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


def test_train_pipeline_selects_on_val_and_learns(task):
    run = train_pipeline(task, FIXES, seed=0, epochs=3, progress=False)
    assert 1 <= run.best_epoch <= 3 and 0.2 < run.kept < 1.0
    assert len(run.history["val_acc"]) == 3
    assert max(run.history["val_acc"]) == pytest.approx(condition_accuracy(run.val_patterns, "missing"), abs=1e-6)
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
    out = serving_timings({"m": model}, [t[:40] for t in x], batch_size=16, repeats=5)
    row = out["m"]
    assert row["p95_ms"] >= row["p50_ms"] > 0 and row["items_per_s"] > 0 and row["size_kb"] > 1
    with pytest.raises(ValueError, match="models"):
        serving_timings({}, x)


def test_widget_figure():
    pats = [
        {p: 0.5 for p in [(a, b, c) for a in (True, False) for b in (True, False) for c in (True, False)] if any(p)}
    ]
    fig = capstone_widget_figure(0.1, 0.3, 0.3, patterns={"a": pats, "b": pats})
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    fig = capstone_widget_figure(1.0, 1.0, 1.0, patterns={"a": pats})
    assert "nothing" in fig.axes[0].get_title()
    assert set(CONDITIONS) == {"complete", "missing", "shifted"}
