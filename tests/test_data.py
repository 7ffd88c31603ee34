import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mmlab.audio import log_mel, mel_filterbank, mfcc
from mmlab.data import DATA_DIR, load_audio_clips, load_avdigits, load_easy_vqa, make_caption, standardize

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


def test_audio_features():
    sr = 8000
    t = np.arange(sr // 2) / sr
    wave = np.sin(2 * np.pi * 1000 * t)
    lm = log_mel(wave, sr)
    assert lm.shape[1] == 32 and lm.shape[0] > 40, "log_mel is time first: (frames, n_mels)"
    peak_band = lm.mean(0).argmax()
    centers = (mel_filterbank(32, 256, sr) * np.linspace(0, sr / 2, 129)).sum(1) / mel_filterbank(32, 256, sr).sum(1)
    assert abs(centers[peak_band] - 1000) < 150
    assert mfcc(wave, sr).shape[1] == 20
    with pytest.raises(ValueError, match="wave must have shape"):
        log_mel(np.zeros((2, 100)))
    with pytest.raises(ValueError, match="NaN"):
        log_mel(np.array([np.nan] * 300))


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
