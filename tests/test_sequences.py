"""Lesson 1's data: aligned video/speech/transcript episodes and spatial-grounding canvases (mmlab.data)."""

import numpy as np
import pytest
import torch

from mmlab.data import (
    DIGIT_WORDS,
    collate_episodes,
    load_audio_clips,
    make_alignment_episode,
    make_alignment_episodes,
    make_grounding_canvases,
)


def _runs(tokens: torch.Tensor) -> list[int]:
    return torch.unique_consecutive(tokens).tolist()


@pytest.mark.parametrize("warp", [0.0, 0.5, 1.0])
def test_episode_structure(warp):
    for i in range(6):
        ep = make_alignment_episode("train", warp=warp, index=i, seed=3)
        k = len(ep.digits)
        assert 3 <= k <= 6 and (ep.digits[1:] != ep.digits[:-1]).all(), "no digit twice in a row"
        assert ep.video.shape[1:] == (1, 8, 8) and ep.speech.shape[1] == 32
        assert ep.video.dtype == ep.speech.dtype == torch.float32
        assert len(ep.video_token) == len(ep.video) and len(ep.speech_token) == len(ep.speech)
        # every token appears, in order, as one contiguous run in each stream
        assert _runs(ep.video_token) == list(range(k)) and _runs(ep.speech_token) == list(range(k))
        assert ep.speech_voiced.dtype == torch.bool and ep.speech_voiced.any()
        for t in range(k):  # every word is voiced somewhere in its own segment
            assert ep.speech_voiced[ep.speech_token == t].any()
        assert ep.words == [DIGIT_WORDS[d] for d in ep.digits.tolist()] and ep.transcript == " ".join(ep.words)
        clips = load_audio_clips()
        assert (torch.from_numpy(clips["digit"])[ep.clips] == ep.digits).all(), "each clip says its digit"


def test_warp_zero_is_lockstep_and_warp_changes_only_timing():
    for i in range(10):
        a = make_alignment_episode("val", warp=0.0, index=i, seed=1)
        b = make_alignment_episode("val", warp=1.0, index=i, seed=1)
        assert len(a.video) == len(a.speech) and torch.equal(a.video_token, a.speech_token)
        assert not a.speech_voiced[: a.speech_token.bincount()[0]].logical_not().all()
        assert torch.equal(a.digits, b.digits) and torch.equal(a.clips, b.clips), "same string and clips"
        # the same images, held for other durations
        assert torch.equal(a.video[a.video_token == 0][0], b.video[b.video_token == 0][0])
    lengths = [(len(e.video), len(e.speech)) for e in make_alignment_episodes(20, "val", warp=1.0, seed=1)]
    assert sum(v != s for v, s in lengths) >= 15


def test_episodes_deterministic_and_split_voices():
    a = make_alignment_episode("test", warp=0.7, index=4, seed=9)
    b = make_alignment_episode("test", warp=0.7, index=4, seed=9)
    assert torch.equal(a.speech, b.speech) and torch.equal(a.video, b.video)
    clips = load_audio_clips()
    test_voices = set(clips["test_voices"].tolist())
    for split in ("train", "test"):
        voices = {int(clips["voice"][c]) for e in make_alignment_episodes(10, split, seed=2) for c in e.clips}
        assert (voices <= test_voices) == (split == "test") and (voices & test_voices or split == "train")


def test_noise_knobs_change_only_their_stream():
    clean = make_alignment_episode("val", warp=0.5, index=2)
    img = make_alignment_episode("val", warp=0.5, index=2, image_noise=0.3)
    aud = make_alignment_episode("val", warp=0.5, index=2, audio_noise=0.5)
    assert torch.equal(clean.speech, img.speech) and not torch.equal(clean.video, img.video)
    assert abs(float((img.video - clean.video).std()) - 0.3) < 0.03
    assert torch.equal(clean.video, aud.video) and not torch.equal(clean.speech, aud.speech)
    assert torch.equal(clean.speech_token, aud.speech_token) and torch.equal(clean.video_token, img.video_token)


def test_frame_rate_knob():
    a = make_alignment_episode("val", warp=0.0, index=0, frame_ms=20)
    b = make_alignment_episode("val", warp=0.0, index=0, frame_ms=40)
    assert abs(len(a.speech) - 2 * len(b.speech)) <= len(b.digits)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"warp": 1.5}, "warp"),
        ({"warp": -0.1}, "warp"),
        ({"frame_ms": 25}, "frame_ms"),
        ({"n_digits": (4, 2)}, "n_digits"),
        ({"image_noise": -1.0}, "image_noise"),
        ({"audio_noise": float("nan")}, "audio_noise"),
        ({"split": "dev"}, "split"),
    ],
)
def test_episode_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_alignment_episode(**kwargs)


def test_episodes_warp_per_episode_and_errors():
    eps = make_alignment_episodes(3, "train", warp=[0.0, 0.5, 1.0])
    assert [e.warp for e in eps] == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="warp"):
        make_alignment_episodes(3, "train", warp=[0.0, 0.5])
    with pytest.raises(ValueError, match="n must be"):
        make_alignment_episodes(0)


def test_collate_pads_and_masks():
    eps = make_alignment_episodes(5, "train", warp=1.0, seed=4)
    b = collate_episodes(eps)
    n, tv, ta = 5, max(len(e.video) for e in eps), max(len(e.speech) for e in eps)
    assert b["video"].shape == (n, tv, 1, 8, 8) and b["speech"].shape == (n, ta, 32)
    for i, e in enumerate(eps):
        nv, na, k = len(e.video), len(e.speech), len(e.digits)
        assert b["video_mask"][i].sum() == nv and b["video_mask"][i, :nv].all()
        assert b["speech_mask"][i].sum() == na and (b["speech_token"][i, na:] == -1).all()
        assert torch.equal(b["video_digit"][i, :nv], e.digits[e.video_token])
        assert torch.equal(b["speech_voiced"][i, :na], e.speech_voiced) and not b["speech_voiced"][i, na:].any()
        assert b["token_mask"][i].sum() == k and torch.equal(b["digits"][i, :k], e.digits)
        assert (b["video"][i, nv:] == 0).all() and (b["speech"][i, na:] == 0).all()
    with pytest.raises(ValueError, match="episodes"):
        collate_episodes([])


def test_grounding_canvases():
    g = make_grounding_canvases(40, "test", grid=4, n_digits=3, seed=5)
    assert g.canvas.shape == (40, 1, 32, 32) and len(g) == 40 and len(g.text) == 40
    assert g.digits.shape == g.cells.shape == (40, 3)
    patches = g.patches()
    assert patches.shape == (40, 16, 1, 8, 8)
    # patches reassemble the canvas, row-major
    assert torch.equal(patches[:, 5, 0], g.canvas[:, 0, 8:16, 8:16])
    for i in range(40):
        assert len(set(g.digits[i].tolist())) == 3 and len(set(g.cells[i].tolist())) == 3
        j = g.digits[i].tolist().index(int(g.query[i]))
        assert g.cells[i, j] == g.target_cell[i]
        word, digit = DIGIT_WORDS[int(g.query[i])], str(int(g.query[i]))
        assert word in g.text[i] or digit in g.text[i]
        ink = patches[i].flatten(1).sum(-1)
        assert (ink[g.cells[i]] > 0).all() and (ink.sum() - ink[g.cells[i]].sum()) == 0, "ink only in digit cells"
        r, c = divmod(int(g.target_cell[i]), 4)
        assert torch.equal(g.target_center[i], torch.tensor([8 * r + 4.0, 8 * c + 4.0]))


def test_grounding_jitter_noise_and_errors():
    a = make_grounding_canvases(10, "train", jitter=0, seed=1)
    b = make_grounding_canvases(10, "train", jitter=3, seed=1)
    assert torch.equal(a.target_cell, b.target_cell) and not torch.equal(a.canvas, b.canvas)
    shift = (b.target_center - a.target_center).abs()
    assert shift.max() <= 3 and shift.max() > 0
    assert torch.equal((b.target_center // 8).long()[:, 0] * 4 + (b.target_center // 8).long()[:, 1], b.target_cell)
    c = make_grounding_canvases(10, "train", image_noise=0.2, seed=1)
    assert abs(float((c.canvas - a.canvas).std()) - 0.2) < 0.02
    for kwargs, match in (({"jitter": 4}, "jitter"), ({"n_digits": 11}, "n_digits"), ({"image_noise": -1}, "noise")):
        with pytest.raises(ValueError, match=match):
            make_grounding_canvases(4, **kwargs)
    assert np.isclose(a.canvas.max().item(), 1.0, atol=1e-6) and a.canvas.min() >= 0
