"""Build the audio half of AV-Digits with espeak-ng.

Every digit word "zero".."nine" is spoken by 8 espeak-ng voices (6 for training, 2 held out for testing) at 4
speed/pitch settings: 320 clips. Each clip is decoded from espeak-ng's 22.05 kHz WAV, resampled to 8 kHz with a
polyphase filter, trimmed of leading and trailing silence and stored as int16 in
``mmlab/assets/avdigits_audio.npz`` (package data of ``mmlab``).
espeak-ng is deterministic, so a rebuild reproduces the committed file exactly (``tests/test_data.py`` checks
this when espeak-ng is installed).

Usage:  python data/build_avdigits.py [--out mmlab/assets/avdigits_audio.npz]
Needs:  Debian's espeak-ng (``apt-get install espeak-ng``), numpy, scipy.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# espeak-ng voice + variant; the last two are the held-out test voices.
VOICES = [
    "en-us+m1",
    "en-gb+f2",
    "en-gb-scotland+m3",
    "en-gb-x-rp+f1",
    "en-029+m2",
    "en-gb-x-gbclan+f3",
    "en-us-nyc+m4",
    "en-gb-x-gbcwmd+f4",
]
TEST_VOICES = (6, 7)
# (words per minute, pitch 0..99)
SETTINGS = [(140, 40), (175, 55), (210, 45), (160, 70)]
SOURCE_RATE = 22050
SAMPLE_RATE = 8000


def synthesize(word: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """Return espeak-ng's 16-bit mono waveform for ``word`` at 22.05 kHz as float in [-1, 1]."""
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word],
        check=True,
        capture_output=True,
    ).stdout
    # espeak-ng streams a 44-byte RIFF header whose length fields are placeholders; the rest is PCM.
    pcm = np.frombuffer(wav[44:], dtype="<i2").astype(np.float64) / 32768.0
    return pcm


def trim_silence(x: np.ndarray, rel_threshold: float = 0.02, margin: int = 160) -> np.ndarray:
    """Cut leading/trailing samples quieter than ``rel_threshold`` times the peak, keeping ``margin`` samples."""
    loud = np.flatnonzero(np.abs(x) > rel_threshold * np.abs(x).max())
    start = max(loud[0] - margin, 0)
    stop = min(loud[-1] + margin + 1, len(x))
    return x[start:stop]


def build() -> dict[str, np.ndarray]:
    clips, digits, voices, speeds, pitches = [], [], [], [], []
    for v, voice in enumerate(VOICES):
        for speed, pitch in SETTINGS:
            for d, word in enumerate(WORDS):
                x = synthesize(word, voice, speed, pitch)
                x = resample_poly(x, SAMPLE_RATE // 50, SOURCE_RATE // 50)  # 160/441
                x = trim_silence(x)
                clips.append(np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16))
                digits.append(d)
                voices.append(v)
                speeds.append(speed)
                pitches.append(pitch)
    lengths = np.array([len(c) for c in clips], dtype=np.int32)
    wave = np.zeros((len(clips), lengths.max()), dtype=np.int16)
    for i, c in enumerate(clips):
        wave[i, : len(c)] = c
    return {
        "wave": wave,
        "length": lengths,
        "digit": np.array(digits, dtype=np.int64),
        "voice": np.array(voices, dtype=np.int64),
        "speed": np.array(speeds, dtype=np.int64),
        "pitch": np.array(pitches, dtype=np.int64),
        "voice_names": np.array(VOICES),
        "test_voices": np.array(TEST_VOICES, dtype=np.int64),
        "sample_rate": np.array(SAMPLE_RATE),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent.parent / "mmlab" / "assets" / "avdigits_audio.npz"
    )
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed: apt-get install espeak-ng")
    arrays = build()
    np.savez_compressed(args.out, **arrays)
    secs = arrays["length"] / SAMPLE_RATE
    print(
        f"wrote {args.out}: {len(secs)} clips, {secs.min():.2f}-{secs.max():.2f} s, "
        f"{args.out.stat().st_size / 1e6:.2f} MB"
    )


if __name__ == "__main__":
    main()
