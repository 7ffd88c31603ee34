import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from mmlab.contrastive import DualEncoder, FrozenTextTower, embed, retrieval_report
from mmlab.lessons.contrastive import (
    EASY_VQA_CAPTION_TEMPLATES,
    EASY_VQA_COLORS,
    EASY_VQA_SHAPES,
    Gallery,
    data_size_run,
    easy_vqa_attributes,
    easy_vqa_pairs,
    per_seed,
    retrieval_figure,
    scratch_text_tower,
    seen_wordings,
    summarize,
    sweep_figure,
    train_seeds,
)
from mmlab.models import MLPEncoder, TextBagEncoder


def test_retrieval_figure_changes_with_top_k_and_checks_input():
    g = torch.Generator().manual_seed(0)
    emb = F.normalize(torch.randn(12, 4, generator=g), dim=-1)

    def query(texts):
        return emb[:1].repeat(len(texts), 1)

    galleries = [
        Gallery("images", emb, query, torch.rand(12, 1, 8, 8, generator=g), [str(i) for i in range(12)]),
        # log-mel spectrograms, time first: (N, frames, mels) with 15 valid frames of 20
        Gallery("audio", emb, query, torch.rand(12, 20, 32, generator=g), ["a"] * 12, torch.full((12,), 15)),
    ]
    f3 = retrieval_figure("a seven", 3, galleries=galleries)
    f5 = retrieval_figure("a seven", 5, 0.5, galleries=galleries)
    assert isinstance(f3, Figure) and len(f3.axes) == 6 and len(f5.axes) == 10
    assert f3.axes[0].get_title().startswith("0\ncos 1.00")  # the query's own vector ranks first
    assert "a seven" in f3._suptitle.get_text() and f3.axes[0].get_ylabel() == "images"
    assert f3.axes[3].get_ylabel() == "audio" and f3.axes[3].get_xlabel() == "time (frames)"
    spec = f3.axes[3].get_images()[0].get_array()
    assert spec.shape == (32, 15)  # mels on y, the valid frames on x
    with pytest.raises(ValueError, match=r"top_k must be in \[1, 12\]"):
        retrieval_figure("x", 13, galleries=galleries)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        retrieval_figure("x", 2, 0.0, galleries=galleries)
    with pytest.raises(TypeError, match="query must be a str"):
        retrieval_figure(["x"], 2, galleries=galleries)
    with pytest.raises(ValueError, match="at least one Gallery"):
        retrieval_figure("x", 2, galleries=[])


def test_easy_vqa_attributes_reads_questions():
    ds = SimpleNamespace(
        image=torch.zeros(3, 3, 4, 4),
        answers=["circle", "green", "red", "gray", "yes", "teal", "black", "rectangle", "yellow", "triangle"]
        + ["brown", "blue", "no"],
        question=[
            "what color is the circle?",  # image 0: blue circle
            "is there a triangle?",  # image 1: no triangle ...
            "is no circle present?",  # ... and no circle: so a rectangle
            "is there not a red shape?",  # image 1: red
            "what shape is present?",  # image 2: a triangle, colour unknown
        ],
        answer=torch.tensor([11, 12, 4, 12, 9]),
        image_id=torch.tensor([0, 1, 1, 1, 2]),
    )
    color, shape = easy_vqa_attributes(ds)
    assert [EASY_VQA_COLORS[c] if c >= 0 else None for c in color] == ["blue", "red", None]
    assert [EASY_VQA_SHAPES[s] if s >= 0 else None for s in shape] == ["circle", "rectangle", "triangle"]


def test_easy_vqa_pairs_caption_each_image_with_its_attributes():
    img, captions, color, shape = easy_vqa_pairs("test", 30, seed=1)
    assert img.shape[1:] == (3, 16, 16) and len(img) == len(captions) == len(color) == len(shape) > 20
    for cap, c, s in zip(captions, color.tolist(), shape.tolist()):
        assert cap in [t.format(c=EASY_VQA_COLORS[c], s=EASY_VQA_SHAPES[s]) for t in EASY_VQA_CAPTION_TEMPLATES]
    assert easy_vqa_pairs("test", 30, seed=1)[1] == captions  # the seed fixes the templates
    with pytest.raises(ValueError, match="templates must be a non-empty list"):
        easy_vqa_pairs("test", 5, seed=0, templates="a {c} {s}")


def test_summarize_uses_the_sample_standard_deviation():
    runs = [{"a": 1.0}, {"a": 2.0}, {"a": 4.0}]
    mean, std = summarize(runs, "a")
    assert mean == pytest.approx(7 / 3) and std == pytest.approx(np.std([1, 2, 4], ddof=1))
    assert math.isnan(summarize(runs[:1], "a")[1])
    with pytest.raises(ValueError, match="at least one run"):
        summarize([], "a")


class _FakeTextEncoder(nn.Module):
    """A deterministic stand-in for a pretrained text encoder: one-hot of the last character."""

    def forward(self, texts):
        return F.one_hot(torch.tensor([ord(t[-1]) % 8 for t in texts]), 8).float()


def _toy_digits(n=96, seed=0):
    """'Images' that carry their class (4 classes) through a random map; captions name the class."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = F.one_hot(y, 4).float() @ torch.randn(4, 10, generator=g) + 0.05 * torch.randn(n, 10, generator=g)
    return x, [f"class {int(c)}" for c in y], y


def _evaluate(x, texts, y):
    def evaluate(model, to_input):
        return retrieval_report(embed(model.embed_a, x), embed(model.embed_b, to_input(texts)), y, y, ks=(1,))

    return evaluate


def test_train_seeds_one_row_per_seed_and_keeps_global_rng():
    x, texts, y = _toy_digits()
    tower = FrozenTextTower(_FakeTextEncoder(), texts)
    ids = tower.ids(texts)
    state = torch.get_rng_state()
    runs = train_seeds(
        lambda: DualEncoder(MLPEncoder(10, 8), tower, 4, freeze_b=True),
        x,
        ids,
        lambda m: _evaluate(x, texts, y)(m, tower.ids),
        seeds=[0, 1],
        epochs=3,
        batch_size=32,
    )
    assert torch.equal(torch.get_rng_state(), state)
    assert [r.seed for r in runs] == [0, 1] and set(runs[0].metrics) >= {"image→text R@1", "loss/lnB"}
    assert all(0 < r.metrics["loss/lnB"] < 1.5 for r in runs)
    assert runs[0].history.epochs == 3 and isinstance(runs[0].model, DualEncoder)
    # the kept model is the one that was scored: scoring it again gives the same row
    assert _evaluate(x, texts, y)(runs[1].model, tower.ids)["image→text R@1"] == runs[1].metrics["image→text R@1"]
    again = train_seeds(
        lambda: DualEncoder(MLPEncoder(10, 8), tower, 4, freeze_b=True),
        x,
        ids,
        lambda m: _evaluate(x, texts, y)(m, tower.ids),
        seeds=[1],
        epochs=3,
        batch_size=32,
    )
    assert again[0].metrics == runs[1].metrics  # a run depends on its seed only
    rows = [r.metrics for r in runs]
    assert per_seed(rows, "loss/lnB") == [r["loss/lnB"] for r in rows]
    fig, axes = sweep_figure([0.1, 1.0], {0.1: rows, 1.0: [again[0].metrics] + rows}, "fixed τ", "temperature τ", "τ")
    assert isinstance(fig, Figure) and len(axes) == 2
    assert axes[0].get_ylabel() == "val R@1 (fraction)" and axes[1].get_xlabel() == "temperature τ"
    assert "2 seeds" in axes[0].get_title() and axes[1].get_ylabel() == "final training loss / ln B"
    with pytest.raises(ValueError, match="at least one seed"):
        train_seeds(lambda: None, x, ids, lambda m: {}, seeds=[], epochs=1)


def test_data_size_run_frozen_and_scratch_towers():
    x, texts, y = _toy_digits()
    frozen = FrozenTextTower(_FakeTextEncoder(), texts)
    built = []

    def make_model(tower):
        built.append(tower)
        return DualEncoder(MLPEncoder(10, 8), tower, 4, freeze_b=isinstance(tower, FrozenTextTower))

    out = data_size_run(make_model, x, texts, 40, 0, evaluate=_evaluate(x, texts, y), text_tower=frozen, steps=6)
    assert built[-1] is frozen and set(out) == {"image→text R@1", "image→text MdR", "text→image R@1", "text→image MdR"}
    out2 = data_size_run(make_model, x, texts, 40, 0, evaluate=_evaluate(x, texts, y), steps=6)
    assert isinstance(built[-1], TextBagEncoder) and 0 <= out2["image→text R@1"] <= 1
    assert data_size_run(make_model, x, texts, 40, 0, evaluate=_evaluate(x, texts, y), steps=6) == out2
    with pytest.raises(ValueError, match=r"n must be in \[2, 96\]"):
        data_size_run(make_model, x, texts, 200, 0, evaluate=_evaluate(x, texts, y))


def test_scratch_text_tower_knows_only_its_words():
    tower, to_input = scratch_text_tower(["a red circle", "a blue square"], out_dim=5, max_len=4)
    ids = to_input(["a red circle", "a green circle"])
    assert ids.shape == (2, 4) and ids[1, 1] == 1  # "green" is unknown
    assert tower(ids).shape == (2, 5) and tower.out_dim == 5


def test_seen_wordings_finds_training_captions_in_flat_lists_and_prompt_sets():
    captions = ["a handwritten seven", "the digit 7", "a red circle"]
    assert seen_wordings(["A  Handwritten seven", "a hand-drawn seven"], captions) == ["A  Handwritten seven"]
    prompt_set = [["the number 7", "the digit 7"], ["a red circle"], ["the digit 7"]]  # one list per class
    assert seen_wordings(prompt_set, captions) == ["the digit 7", "a red circle"]
    assert seen_wordings([["a picture of the number 7"]], ["the number 7"]) == []  # exact wording, not substrings
    assert seen_wordings([], captions) == []
