import collections
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mmlab.audio import log_mel
from mmlab.data import (
    DATA_DIR,
    DIGIT_WORDS,
    clip_splits,
    collate_episodes,
    load_audio_clips,
    load_avdigits,
    load_easy_vqa,
    make_alignment_episode,
    make_alignment_episodes,
    make_caption,
    make_grounding_canvases,
    standardize,
)

ROOT = Path(__file__).resolve().parent.parent


def test_artifact_is_small_and_complete():
    clips = load_audio_clips()
    assert clips["wave"].shape[0] == 320 and clips["wave"].dtype == np.int16
    assert set(np.unique(clips["digit"])) == set(range(10))
    assert len(clips["voice_names"]) == 8 and list(clips["test_voices"]) == [6, 7]
    size = sum(f.stat().st_size for f in DATA_DIR.rglob("*") if f.is_file())
    assert size < 30e6


@pytest.mark.parametrize("split,n", [("train", 1078), ("val", 359), ("test", 360)])
def test_splits_shapes_and_voices(split, n):
    ds = load_avdigits(split)
    assert len(ds) == n and ds.image.shape == (n, 1, 8, 8) and ds.audio.shape[0] == n and ds.audio.shape[2] == 32
    assert ds.label.dtype == torch.long and len(ds.text) == n
    assert (ds.audio_len >= 1).all() and (ds.audio_len <= ds.audio.shape[1]).all()
    test_voices = set(load_audio_clips()["test_voices"].tolist())
    assert (set(ds.voice.tolist()) <= test_voices) == (split == "test")
    clips = load_audio_clips()
    assert (torch.from_numpy(clips["digit"])[ds.clip] == ds.label).all(), "each clip must say the image's digit"
    item = ds[0]
    assert set(item) >= {"image", "audio", "text", "label"}


def test_splits_are_disjoint_and_deterministic():
    a, b = load_avdigits("train"), load_avdigits("train")
    assert torch.equal(a.image, b.image) and a.text == b.text and torch.equal(a.clip, b.clip)
    imgs = {s: {tuple(x.flatten().tolist()) for x in load_avdigits(s).image} for s in ("train", "test")}
    # scikit-learn's digits contain a few exact duplicates; splits must share almost none
    assert len(imgs["train"] & imgs["test"]) <= 3


def test_no_clip_in_two_splits_and_val_is_seen_voices_unseen_recordings():
    clips = load_audio_clips()
    split_of = clip_splits(clips)
    assert split_of.shape == clips["digit"].shape
    used = {s: set(load_avdigits(s).clip.tolist()) for s in ("train", "val", "test")}
    assert not used["train"] & used["val"] and not used["train"] & used["test"] and not used["val"] & used["test"]
    for s, ids in used.items():
        assert (split_of[sorted(ids)] == s).all()
    voices = {s: set(clips["voice"][split_of == s].tolist()) for s in ("train", "val", "test")}
    assert voices["val"] == voices["train"] == set(range(6)) and voices["test"] == {6, 7}
    # each (training voice, digit) keeps 3 settings for train and 1 for val; every setting is held out equally
    for v in range(6):
        for d in range(10):
            here = split_of[(clips["voice"] == v) & (clips["digit"] == d)]
            assert sorted(here.tolist()) == ["train", "train", "train", "val"]
    val_settings = list(zip(clips["speed"][split_of == "val"].tolist(), clips["pitch"][split_of == "val"].tolist()))
    assert sorted(collections.Counter(val_settings).values()) == [15, 15, 15, 15]
    # episodes draw from the same pools
    ep = make_alignment_episode("val", seed=3)
    assert (split_of[ep.clips.numpy()] == "val").all()


def test_audio_len_keeps_the_last_real_frame():
    ds = load_avdigits("val")
    clips = load_audio_clips()
    pad = np.float32(np.log(1e-6))
    for i in range(0, len(ds), 37):
        n = int(ds.audio_len[i])
        assert n == log_mel(clips["wave"][int(ds.clip[i]), : clips["length"][int(ds.clip[i])]] / 32768.0).shape[0]
        assert (ds.audio[i, n - 1] > pad).any(), "the last counted frame must hold signal (a quiet tail still counts)"
        assert (ds.audio[i, n:] == pad).all(), "frames after audio_len must be padding"


def test_noise_knobs_change_only_their_modality():
    clean = load_avdigits("val")
    noisy = load_avdigits("val", image_noise=0.5)
    assert not torch.equal(clean.image, noisy.image) and torch.equal(clean.audio, noisy.audio)
    assert abs(float((noisy.image - clean.image).std()) - 0.5) < 0.02
    noisy_a = load_avdigits("val", audio_noise=1.0)
    assert torch.equal(clean.image, noisy_a.image) and not torch.equal(clean.audio, noisy_a.audio)
    noisy_t = load_avdigits("val", text_noise=1.0)
    assert all(str(d) not in t for t in noisy_t.text for d in range(10))


def test_audio_formats():
    mf = load_avdigits("val", audio_format="mfcc_stats")
    assert mf.audio.shape == (359, 40)
    wv = load_avdigits("val", audio_format="waveform")
    assert wv.audio.abs().max() <= 1.0 and (wv.audio_len > 1000).all()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"split": "training"}, "split must be one of"),
        ({"audio_format": "mp3"}, "audio_format must be one of"),
        ({"image_noise": -1}, "image_noise"),
        ({"image_noise": float("nan")}, "image_noise"),
        ({"text_noise": 2}, "text_noise"),
        ({"seed": -3}, "seed"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_avdigits(**kwargs)


def test_captions():
    rng = np.random.default_rng(0)
    caps = [make_caption(7, rng) for _ in range(50)]
    assert len(set(caps)) > 5
    with pytest.raises(ValueError, match="label"):
        make_caption(11, rng)


def test_standardize_uses_train_statistics():
    tr, te = torch.randn(100, 3) * 5 + 2, torch.randn(10, 3)
    s_tr, s_te = standardize(tr, te)
    assert torch.allclose(s_tr.mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(s_te, (te - tr.mean(0)) / (tr.std(0) + 1e-6))
    with pytest.raises(ValueError, match=r"others\[0\] must have shape"):
        standardize(tr, torch.zeros(4, 2))


def test_easy_vqa_loader():
    ds = load_easy_vqa("test", max_images=40)
    assert ds.image.shape == (40, 3, 32, 32) and 0 <= ds.image.min() and ds.image.max() <= 1
    assert len(ds) == len(ds.question) and ds.image_id.max() < 40
    assert ds.answers[int(ds.answer[0])] in ds.answers
    with pytest.raises(ValueError, match="split"):
        load_easy_vqa("val")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_rebuild_matches_committed_artifact(tmp_path):
    out = tmp_path / "rebuilt.npz"
    subprocess.run([sys.executable, str(ROOT / "data" / "build_avdigits.py"), "--out", str(out)], check=True)
    committed = load_audio_clips()
    with np.load(out) as z:
        for k in committed:
            assert np.array_equal(z[k], committed[k]), k


# ---- lesson 1's sequences: aligned video/speech/transcript episodes and spatial-grounding canvases


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


def test_digits_read_without_sklearn_match_load_digits():
    from sklearn.datasets import load_digits

    from mmlab.data import _digits

    images, target = _digits()
    ref = load_digits()
    assert images.dtype == ref.images.dtype and target.dtype == ref.target.dtype
    assert np.array_equal(images, ref.images) and np.array_equal(target, ref.target)


def test_loading_pairs_for_a_rank_imports_neither_sklearn_nor_scipy_signal():
    # each rank process of lesson 8 pays every import: scikit-learn and scipy.signal cost about 1.5 s together
    code = (
        "import sys; from mmlab.train_distributed import load_pairs; load_pairs(); "
        "print(sorted(m for m in ('sklearn', 'scipy.signal') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
