"""Media decoding and writing with PyAV: formats, timestamps, audio fidelity, failures."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from media_fixtures import face_frames, make_clip, truncate, voice

from blemore.media import (
    CorruptMediaError,
    MediaError,
    NoAudioError,
    NoVideoError,
    is_silent,
    load_video,
    probe,
    read_audio,
    read_video,
    write_audio,
    write_video,
)

SR = 16000


@pytest.mark.parametrize("ext", [".mov", ".mp4", ".mkv", ".flv", ".avi"])
def test_video_roundtrip_formats(tmp_path, ext):
    frames = face_frames(20, 120, 160)
    y = voice(0.8, SR)
    p = write_video(tmp_path / f"c{ext}", frames, 25, audio=y, sr=SR, preset="ultrafast")
    info = probe(p)
    assert info.has_video and info.has_audio
    assert info.size == (160, 120) and info.fps == pytest.approx(25)
    assert info.duration == pytest.approx(0.8, abs=0.1)
    got, times = load_video(p)
    assert got.shape == (20, 120, 160, 3) and got.dtype == np.uint8
    np.testing.assert_allclose(times, np.arange(20) / 25, atol=1e-3)
    assert np.abs(got.astype(int) - frames).mean() < 6  # lossy but close
    a, sr = read_audio(p)
    assert sr == SR and a.dtype == np.float32 and a.ndim == 1
    if ext in (".mov", ".mp4", ".avi"):  # durations known: exact length, no codec padding
        assert len(a) == len(y)
    else:  # Matroska / FLV carry no stream duration: only the container's bound
        assert len(y) <= len(a) <= len(y) + 0.15 * SR
    if ext != ".flv":  # FLV does not signal the AAC encoder delay (1024 samples)
        assert np.corrcoef(a[: len(y)], y)[0, 1] > 0.99


def test_audio_only_files_and_channel_average(tmp_path):
    y = voice(0.5, SR)
    stereo = np.stack([y, -0.5 * y], axis=1)  # mean = 0.25 * y; a sum would give 0.5 * y
    for ext in (".wav", ".flac", ".mp3"):
        p = write_audio(tmp_path / f"a{ext}", stereo, SR)
        info = probe(p)
        assert info.has_audio and not info.has_video and info.channels == 2
        a, _ = read_audio(p)
        assert len(a) == len(y)
        tol = 1e-3 if ext != ".mp3" else 2e-2
        assert np.abs(a - 0.25 * y).max() < tol, ext
        with pytest.raises(NoVideoError, match="no video stream"):
            next(read_video(p))


def test_resample_to_16k(tmp_path):
    sr_in = 44100
    t = np.arange(sr_in) / sr_in
    p = write_audio(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * 440 * t), sr_in)
    a, sr = read_audio(p, sr=16000)
    assert sr == 16000 and len(a) == 16000
    spec = np.abs(np.fft.rfft(a))
    assert np.argmax(spec) == pytest.approx(440, abs=2)  # 1 s: bin = Hz
    assert np.abs(a).max() == pytest.approx(0.5, abs=0.02)


def test_fps_stride_and_max_side(tmp_path):
    p = write_video(tmp_path / "v.mp4", face_frames(50, 240, 320), 25, preset="ultrafast")
    frames, times = load_video(p, fps=10)
    np.testing.assert_allclose(times, np.arange(0, 2, 0.1), atol=0.021)  # nearest source frame
    assert len(frames) == 20
    frames, times = load_video(p, stride=3, max_side=160)
    assert frames.shape == (17, 120, 160, 3)
    np.testing.assert_allclose(times, np.arange(0, 50, 3) / 25, atol=1e-3)
    frames, _ = load_video(p, fps=100)  # more than the source: every frame once
    assert len(frames) == 50
    with pytest.raises(ValueError, match="either fps or stride"):
        next(read_video(p, fps=5, stride=2))


def test_streaming_batches_are_bounded(tmp_path):
    p = write_video(tmp_path / "big.mp4", (np.full((720, 1280, 3), i * 8, np.uint8) for i in range(30)), 30,
                    preset="ultrafast")
    sizes = [f.shape for f, _ in read_video(p, max_side=320, batch=8)]
    assert sizes == [(8, 180, 320, 3)] * 3 + [(6, 180, 320, 3)]


def test_failures_are_reported_not_crashed(tmp_path):
    good = make_clip(tmp_path / "good.mp4", seconds=0.6)
    bad = truncate(good, tmp_path / "cut.mp4", 0.5)
    with pytest.raises(CorruptMediaError, match="cut.mp4"):
        probe(bad)
    with pytest.raises(CorruptMediaError):
        next(read_video(bad))
    junk = tmp_path / "junk.mov"
    junk.write_bytes(b"not a video" * 50)
    with pytest.raises(MediaError, match="junk.mov"):
        read_audio(junk)
    with pytest.raises(CorruptMediaError, match="not found"):
        probe(tmp_path / "missing.mov")
    mute = make_clip(tmp_path / "mute.mp4", seconds=0.4, audio=None)
    assert not probe(mute).has_audio
    with pytest.raises(NoAudioError, match="mute.mp4: no audio stream"):
        read_audio(mute)
    silent = make_clip(tmp_path / "silent.mov", seconds=0.4, audio="silent")
    a, _ = read_audio(silent)
    assert len(a) == int(0.4 * SR) and is_silent(a)
    assert not is_silent(read_audio(good)[0])


def test_write_video_is_atomic_and_validates(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "f.mp4", np.zeros((2, 16, 16, 3), np.float32), 25)
    with pytest.raises(ValueError, match="extension"):
        write_video(tmp_path / "f.xyz", np.zeros((2, 16, 16, 3), np.uint8), 25)
    assert os.listdir(tmp_path) == []  # no temporary left behind
    p = write_video(tmp_path / "odd.mov", np.zeros((3, 15, 17, 3), np.uint8), 30000 / 1001,
                    audio=np.zeros((2000, 2)), audio_codec="pcm_s16le")
    info = probe(p)
    assert info.size == (18, 16) and info.fps == pytest.approx(29.97, abs=0.01)
    assert info.audio_codec == "pcm_s16le" and info.channels == 2
    assert stat.S_IMODE(os.stat(p).st_mode) & 0o044  # readable by others, not mkstemp's 0600
