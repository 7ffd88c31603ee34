"""Audio features with numpy/scipy only: log-mel spectrograms and MFCCs.

A log-mel spectrogram is ``log(M · |STFT(x)|² + eps)``, where the mel filterbank ``M`` has triangular filters
equally spaced on the mel scale ``mel(f) = 2595·log10(1 + f/700)`` (O'Shaughnessy 1987). MFCCs are the first
coefficients of the type-II DCT of the log-mel frames (Davis & Mermelstein 1980).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["mel_filterbank", "log_mel", "mfcc", "hz_to_mel", "mel_to_hz"]


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """``mel(f) = 2595·log10(1 + f/700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=8)
def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, fmin: float = 0.0, fmax: float | None = None):
    """Triangular mel filterbank of shape ``(n_mels, n_fft // 2 + 1)`` (each filter peaks at 1)."""
    if n_mels < 1 or n_fft < 2:
        raise ValueError(f"n_mels must be >= 1 and n_fft >= 2, got n_mels={n_mels}, n_fft={n_fft}")
    fmax = sample_rate / 2 if fmax is None else fmax
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None] - lower) / (center - lower)
    falling = (upper - freqs[None]) / (upper - center)
    fb = np.clip(np.minimum(rising, falling), 0.0, None)
    fb.setflags(write=False)
    return fb


def _check_wave(wave: np.ndarray) -> np.ndarray:
    wave = np.asarray(wave, dtype=np.float64)
    if wave.ndim != 1:
        raise ValueError(f"wave must have shape (samples,), got {wave.shape}")
    if not np.isfinite(wave).all():
        raise ValueError("wave contains NaN or inf")
    return wave


def log_mel(
    wave: np.ndarray,
    sample_rate: int = 8000,
    n_mels: int = 32,
    n_fft: int = 256,
    hop: int = 80,
    eps: float = 1e-6,
) -> np.ndarray:
    """Log-mel spectrogram of shape ``(frames, n_mels)`` (time first, the course's convention for every audio
    sequence); defaults give 32 ms windows every 10 ms at 8 kHz. ``log(M·|STFT|² + eps)`` with ``M`` the
    triangular mel filterbank (Stevens, Volkmann & Newman 1937; Davis & Mermelstein 1980)."""
    wave = _check_wave(wave)
    if len(wave) < n_fft:
        wave = np.pad(wave, (0, n_fft - len(wave)))
    # Imported here, not at the top: scipy.signal takes 0.5 s to import, and a process that computes no audio
    # features (each rank of lesson 8 trains on images and captions) should not pay for it.
    from scipy.signal import stft

    _, _, spec = stft(wave, fs=sample_rate, nperseg=n_fft, noverlap=n_fft - hop, boundary=None, padded=True)
    power = np.abs(spec) ** 2
    return np.log(mel_filterbank(n_mels, n_fft, sample_rate) @ power + eps).T.astype(np.float32)


def mfcc(wave: np.ndarray, sample_rate: int = 8000, n_mfcc: int = 20, n_mels: int = 32, **kwargs) -> np.ndarray:
    """MFCCs of shape ``(frames, n_mfcc)``: the orthonormal DCT-II of each log-mel frame, first ``n_mfcc`` kept
    (Davis & Mermelstein 1980)."""
    if not 1 <= n_mfcc <= n_mels:
        raise ValueError(f"n_mfcc must be in [1, n_mels={n_mels}], got {n_mfcc}")
    lm = log_mel(wave, sample_rate, n_mels=n_mels, **kwargs)
    from scipy.fft import dct

    return dct(lm, type=2, axis=1, norm="ortho")[:, :n_mfcc].astype(np.float32)
