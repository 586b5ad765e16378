"""Media generated for the tests: a real face (skimage's astronaut) and a voice-like tone.

Import from test modules (``from media_fixtures import make_clip``); nothing here is a test.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from blemore.media import write_audio, write_video


@lru_cache(maxsize=8)
def face_frame(height: int = 240, width: int = 320) -> np.ndarray:
    """An RGB uint8 frame with the astronaut's face (cropped around the head) in the middle."""
    from skimage import data
    from skimage.transform import resize

    img = data.astronaut()[0:300, 100:400]  # head and shoulders, 300x300
    side = min(height, width)
    face = (resize(img, (side, side), anti_aliasing=True) * 255).astype(np.uint8)
    frame = np.full((height, width, 3), 40, np.uint8)
    y0, x0 = (height - side) // 2, (width - side) // 2
    frame[y0:y0 + side, x0:x0 + side] = face
    frame.setflags(write=False)
    return frame


def face_frames(n: int, height: int = 240, width: int = 320, blank: tuple[int, ...] = ()) -> np.ndarray:
    """``n`` frames of the face drifting a little sideways; frames listed in ``blank`` are empty."""
    base = face_frame(height, width)
    out = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        out[i] = np.roll(base, (i % 5) - 2, axis=1)
        if i in blank:
            out[i] = 40
    return out


def voice(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """A voice-like signal: a harmonic tone with a gliding pitch (120-220 Hz), syllable-rate
    loudness changes and a little breath noise. float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    f0 = 160 + 50 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    y = 0.25 * env * y / 2.6 + 0.005 * rng.standard_normal(len(t))
    return y.astype(np.float32)


def make_clip(path: str | Path, seconds: float = 1.0, fps: float = 25, audio: str | None = "voice",
              size: tuple[int, int] = (240, 320), blank: tuple[int, ...] = (), sr: int = 16000) -> Path:
    """Write a test clip: face frames plus ``audio`` = "voice", "silent" or None (no audio stream)."""
    n = int(round(seconds * fps))
    frames = face_frames(n, *size, blank=blank)
    track = None
    if audio == "voice":
        track = voice(seconds, sr)
    elif audio == "silent":
        track = np.zeros(int(round(seconds * sr)), np.float32)
    elif audio is not None:
        raise ValueError(audio)
    return write_video(path, frames, fps, audio=track, sr=sr, preset="ultrafast")


def make_voice_file(path: str | Path, seconds: float = 1.0, sr: int = 16000) -> Path:
    return write_audio(path, voice(seconds, sr), sr)


def truncate(src: str | Path, dst: str | Path, fraction: float = 0.5) -> Path:
    """Copy the first ``fraction`` of a file's bytes (a download cut short)."""
    b = Path(src).read_bytes()
    Path(dst).write_bytes(b[: int(len(b) * fraction)])
    return Path(dst)
