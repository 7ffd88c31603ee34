import numpy as np
import pytest

from mmlab.audio import hz_to_mel, log_mel, mel_filterbank, mel_to_hz, mfcc


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


def test_mel_scale_round_trip_and_filterbank():
    f = np.array([0.0, 440.0, 1000.0, 3999.0])
    assert np.allclose(mel_to_hz(hz_to_mel(f)), f)
    fb = mel_filterbank(32, 256, 8000)
    assert fb.shape == (32, 129) and (fb >= 0).all() and (fb.sum(1) > 0).all()


def test_time_first_convention():
    """Every audio sequence in the course is (frames, features): more samples, more rows."""
    rng = np.random.default_rng(0)
    short, long = log_mel(rng.normal(size=4000)), log_mel(rng.normal(size=8000))
    assert short.shape[1] == long.shape[1] == 32 and long.shape[0] > short.shape[0]
    m = mfcc(rng.normal(size=8000), n_mfcc=13)
    assert m.shape == (long.shape[0], 13)
    with pytest.raises(ValueError, match="n_mfcc"):
        mfcc(rng.normal(size=800), n_mfcc=40)
