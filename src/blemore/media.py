"""Decode and write media with PyAV (FFmpeg bundled; no system ffmpeg needed).

Reading::

    info = probe("clip.mov")                         # MediaInfo(has_video, has_audio, duration, fps, ...)
    for frames, times in read_video("clip.mov", fps=10, max_side=640):
        ...                                          # frames (n, H, W, 3) uint8 RGB, times (n,) seconds
    y, sr = read_audio("clip.mov")                   # mono float32 at 16 kHz
    is_silent(y)                                     # an all-zero (or near-zero) track

:func:`read_video` streams: it holds at most ``batch`` decoded frames at a time, already
reduced to ``max_side``, so a long high-resolution clip never sits in memory at full size.
:func:`read_audio` averages the channels itself (FFmpeg's down-mix sums them) and trims the
decoder's padding to the stream duration.

Writing (for tests and generated corpora)::

    write_video("x.mp4", frames, fps=25, audio=y, sr=16000)   # H.264 yuv420p + AAC (or PCM)
    write_audio("x.wav", y, sr=16000)

Errors are :class:`MediaError` subclasses that name the file: :class:`CorruptMediaError`
(cannot be opened or decoded), :class:`NoVideoError`, :class:`NoAudioError`.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from blemore._io import atomic_path
from blemore.errors import BlemoreError

__all__ = [
    "MediaError",
    "CorruptMediaError",
    "NoVideoError",
    "MediaArgumentError",
    "NoAudioError",
    "MediaInfo",
    "VIDEO_EXTENSIONS",
    "AUDIO_EXTENSIONS",
    "MEDIA_EXTENSIONS",
    "probe",
    "read_video",
    "iter_frames",
    "load_video",
    "read_audio",
    "is_silent",
    "write_video",
    "write_audio",
]

VIDEO_EXTENSIONS = (".mov", ".mp4", ".flv", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".m4a", ".aac", ".ogg", ".opus")
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS + AUDIO_EXTENSIONS


class MediaError(BlemoreError):
    """A media file could not be used; ``path`` names it."""

    def __init__(self, path: str | Path, message: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")


class CorruptMediaError(MediaError):
    """The file is missing, truncated, or not decodable."""


class NoVideoError(MediaError):
    """The file has no video stream."""


class NoAudioError(MediaError):
    """The file has no audio stream."""


class MediaArgumentError(MediaError, ValueError):
    """A bad argument to a media reader or writer (fps, stride, batch, output extension, frames
    to write); ``path`` names the file it was for."""


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` learns from a file's headers (no full decode)."""

    path: str
    has_video: bool
    has_audio: bool
    duration: float | None  # seconds (container, else longest stream)
    fps: float | None  # average video frame rate
    size: tuple[int, int] | None  # video (width, height)
    codec: str | None  # video codec name
    frames: int | None = None  # video frame count from the header (or estimated), None if unknown
    audio_codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None


def _open(path: str | Path):
    import av

    p = Path(path)
    if not p.exists():
        raise CorruptMediaError(p, "file not found")
    if p.is_dir():
        raise CorruptMediaError(p, "is a folder, expected a media file")
    try:
        return av.open(str(p), mode="r")
    except av.error.FFmpegError as e:  # InvalidDataError, EOFError, ...
        raise CorruptMediaError(p, f"cannot open ({e.__class__.__name__}: {getattr(e, 'strerror', None) or e})") from e
    except (OSError, ValueError) as e:
        raise CorruptMediaError(p, f"cannot open ({e})") from e


def _stream_seconds(stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def _container_seconds(container) -> float | None:
    if container.duration is not None:
        return container.duration / 1_000_000.0  # AV_TIME_BASE
    return None


def probe(path: str | Path) -> MediaInfo:
    """Read the headers: which streams exist, duration, frame rate, frame size, codecs."""
    with _open(path) as c:
        v = c.streams.video[0] if c.streams.video else None
        a = c.streams.audio[0] if c.streams.audio else None
        durs = [d for d in (_container_seconds(c), v and _stream_seconds(v), a and _stream_seconds(a)) if d]
        duration = durs[0] if durs else None
        fps = size = codec = frames = None
        if v is not None:
            rate = v.average_rate or v.guessed_rate or v.base_rate
            fps = float(rate) if rate else None
            size = (v.codec_context.width, v.codec_context.height)
            codec = v.codec_context.name
            frames = int(v.frames) if v.frames else None
            if frames is None and fps and duration:
                frames = int(round(fps * (_stream_seconds(v) or duration)))
        return MediaInfo(
            path=str(path), has_video=v is not None, has_audio=a is not None, duration=duration,
            fps=fps, size=size, codec=codec, frames=frames,
            audio_codec=a.codec_context.name if a is not None else None,
            sample_rate=a.codec_context.sample_rate if a is not None else None,
            channels=a.codec_context.channels if a is not None else None,
        )


def _target_size(w: int, h: int, max_side: int | None) -> tuple[int, int]:
    if not max_side or max(w, h) <= max_side:
        return w, h
    s = max_side / max(w, h)
    return max(2, int(round(w * s / 2)) * 2), max(2, int(round(h * s / 2)) * 2)


def read_video(
    path: str | Path,
    fps: float | None = None,
    stride: int | None = None,
    max_side: int | None = None,
    *,
    batch: int = 32,
    threads: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Decode the first video stream in batches of RGB frames.

    Yields ``(frames, times)``: ``frames`` uint8 ``(n, H, W, 3)`` with ``n <= batch`` and
    ``times`` float64 ``(n,)`` seconds from the start of the stream (presentation time).

    ``fps``: keep about that many frames per second (the first frame at or after each
    ``k / fps``; never more frames than the source has). ``stride``: keep every ``stride``-th
    decoded frame. Give at most one of them. ``max_side``: shrink frames (aspect kept) so the
    longer side is at most this many pixels; done by FFmpeg while converting to RGB.
    ``threads``: decoder threads (None lets FFmpeg choose; 1 suits one worker per core).

    Raises :class:`NoVideoError` when the file has no video stream and
    :class:`CorruptMediaError` when it cannot be opened or decoding fails part-way.
    """
    if batch < 1:
        raise MediaArgumentError(path, f"batch must be >= 1, got {batch!r}")
    frames: list[np.ndarray] = []
    times: list[float] = []
    for arr, t in iter_frames(path, fps=fps, stride=stride, max_side=max_side, threads=threads):
        frames.append(arr)
        times.append(t)
        if len(frames) >= batch:
            yield np.stack(frames), np.asarray(times, dtype=np.float64)
            frames, times = [], []
    if frames:
        yield np.stack(frames), np.asarray(times, dtype=np.float64)


def iter_frames(
    path: str | Path,
    fps: float | None = None,
    stride: int | None = None,
    max_side: int | None = None,
    *,
    threads: int | None = None,
) -> Iterator[tuple[np.ndarray, float]]:
    """Like :func:`read_video` but one ``(frame (H, W, 3) uint8, time)`` at a time (no
    batching copy: the cheapest way to stream frames through a per-frame model)."""
    import av

    if fps is not None and stride is not None:
        raise MediaArgumentError(path, "give either fps or stride, not both")
    if fps is not None and not fps > 0:
        raise MediaArgumentError(path, f"fps must be > 0, got {fps!r}")
    if stride is not None and (int(stride) != stride or stride < 1):
        raise MediaArgumentError(path, f"stride must be a positive integer, got {stride!r}")
    container = _open(path)
    try:
        if not container.streams.video:
            raise NoVideoError(path, "no video stream")
        stream = container.streams.video[0]
        if threads is not None:
            stream.codec_context.thread_count = int(threads)
        stream.thread_type = "AUTO"
        tb = float(stream.time_base) if stream.time_base is not None else None
        start = stream.start_time * tb if stream.start_time is not None and tb is not None else 0.0
        rate = stream.average_rate or stream.guessed_rate
        src_fps = float(rate) if rate else 25.0
        # AVI stores no presentation times (B-frames come back with decode-order guesses):
        # its frames are evenly spaced by definition, so time = index / fps.
        by_index = "avi" in (container.format.name or "").split(",")
        period = 1.0 / fps if fps else None
        next_t = 0.0
        index = -1
        size: tuple[int, int] | None = None
        try:
            for frame in container.decode(stream):
                index += 1
                pts = frame.pts
                t = index / src_fps if by_index or pts is None or tb is None else pts * tb - start
                if stride is not None and index % int(stride):
                    continue
                if period is not None:
                    if t < next_t - 1e-6:
                        continue
                    next_t += period * max(1, math.floor((t - next_t) / period + 1e-9) + 1)
                if size is None:
                    size = _target_size(frame.width, frame.height, max_side)
                w, h = size
                if (w, h) == (frame.width, frame.height):
                    arr = frame.to_ndarray(format="rgb24")
                else:
                    arr = frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="AREA")
                yield arr, float(t)
        except av.error.FFmpegError as e:
            raise CorruptMediaError(path, f"video decoding failed after {index + 1} frames ({e})") from e
        if index < 0:
            raise CorruptMediaError(path, "the video stream has no decodable frames")
    finally:
        container.close()


def load_video(path: str | Path, fps: float | None = None, stride: int | None = None,
               max_side: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All selected frames at once: ``(frames (T, H, W, 3) uint8, times (T,))``. Short clips only."""
    chunks = list(read_video(path, fps=fps, stride=stride, max_side=max_side))
    return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])


def read_audio(path: str | Path, sr: int = 16000) -> tuple[np.ndarray, int]:
    """Decode the first audio stream as mono float32 at ``sr`` Hz.

    Channels are averaged (not summed), and the result is trimmed to the stream's declared
    duration, which removes the padding that AAC/MP3 decoders append. Returns ``(y, sr)``.
    Raises :class:`NoAudioError` or :class:`CorruptMediaError`.
    """
    import av

    container = _open(path)
    try:
        if not container.streams.audio:
            raise NoAudioError(path, "no audio stream")
        stream = container.streams.audio[0]
        resampler = None
        parts: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                if resampler is None:
                    resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=sr)
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray())
            if resampler is not None:
                for out in resampler.resample(None):
                    parts.append(out.to_ndarray())
        except av.error.FFmpegError as e:
            raise CorruptMediaError(path, f"audio decoding failed ({e})") from e
        if not parts:
            raise CorruptMediaError(path, "the audio stream has no decodable samples")
        y = np.concatenate(parts, axis=1).mean(axis=0).astype(np.float32)
        dur = _stream_seconds(stream)
        if dur is None:  # e.g. Matroska, FLV: the container's duration is still an upper bound
            dur = _container_seconds(container)
        if dur is not None:
            n = int(round(dur * sr))
            if 0 < n < len(y):
                y = y[:n]
        return np.ascontiguousarray(y), sr
    finally:
        container.close()


def is_silent(y: np.ndarray, threshold_db: float = -80.0) -> bool:
    """True when the track is empty or its peak is below ``threshold_db`` dBFS (-80 by default:
    digital silence and codec noise around it)."""
    y = np.asarray(y)
    if y.size == 0:
        return True
    peak = float(np.max(np.abs(y)))
    return peak <= 10.0 ** (threshold_db / 20.0)


# ----------------------------------------------------------------------------- writing
_DEFAULT_AUDIO_CODEC = {".mp4": "aac", ".m4v": "aac", ".mov": "aac", ".mkv": "aac", ".flv": "aac",
                        ".avi": "pcm_s16le", ".webm": "libopus"}


def _as_fraction(fps: float | Fraction) -> Fraction:
    if isinstance(fps, Fraction):
        return fps
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps!r}")
    return Fraction(fps).limit_denominator(1001)


def _audio_planar(audio: np.ndarray) -> np.ndarray:
    """(n,) or (n, C) float in [-1, 1] -> (C, n) float32 contiguous."""
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 1:
        a = a[None, :]
    elif a.ndim == 2:
        a = a.T
    else:
        raise ValueError(f"audio must be (n,) or (n, channels), got shape {np.shape(audio)}")
    if a.shape[0] not in (1, 2):
        raise ValueError(f"audio must be mono or stereo, got {a.shape[0]} channels")
    return np.ascontiguousarray(np.clip(a, -1.0, 1.0))


def _add_audio_stream(container, codec: str, sr: int, channels: int):
    stream = container.add_stream(codec, rate=sr)
    stream.layout = "mono" if channels == 1 else "stereo"
    return stream


def _audio_frames(stream, planar: np.ndarray, sr: int, start: int, stop: int, chunk: int = 4096):
    import av

    codec_fmt = stream.codec_context.format
    for s in range(start, stop, chunk):
        block = planar[:, s:min(stop, s + chunk)]
        if codec_fmt is not None and codec_fmt.name in ("s16", "s16p"):
            pcm = (block * 32767.0).round().astype(np.int16)
            if codec_fmt.name == "s16":  # packed: (1, n * C) interleaved
                pcm = np.ascontiguousarray(pcm.T.reshape(1, -1))
            frame = av.AudioFrame.from_ndarray(pcm, format=codec_fmt.name, layout=stream.layout.name)
        else:
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp", layout=stream.layout.name)
        frame.sample_rate = sr
        frame.pts = s
        frame.time_base = Fraction(1, sr)
        yield frame


@functools.lru_cache(maxsize=1)
def _x264_params() -> dict[str, str]:
    """Extra libx264 options that make its output deterministic on this CPU.

    On a CPU with AVX-512 the libx264 bundled with PyAV (av 18.1) is not deterministic: encoding
    the same 12 frames 24 times in one process gave 10 different files whose decoded frames
    differ by up to 42 grey levels, with one thread as with many. Restricting x264 to its AVX2
    code (``asm=AVX2``, a subset of what an AVX-512 CPU has) gave one file in 24, with the
    default threads. On other CPUs nothing is changed (forcing instruction sets a CPU lacks
    would crash the encoder).
    """
    if _cpu_has_avx512():
        return {"x264-params": "asm=AVX2"}
    return {}


def _cpu_has_avx512() -> bool:
    try:  # NumPy's own run-time CPU detection (it also checks that the OS enables the state)
        try:
            from numpy._core._multiarray_umath import __cpu_features__ as features
        except ImportError:  # pragma: no cover - NumPy 1.x
            from numpy.core._multiarray_umath import __cpu_features__ as features
        return bool(features.get("AVX512F") and features.get("AVX2"))
    except Exception:  # pragma: no cover - a NumPy without the table: ask the kernel
        try:
            flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").split()
        except OSError:
            return False
        return "avx512f" in flags and "avx2" in flags


def write_video(
    path: str | Path,
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float | Fraction,
    audio: np.ndarray | None = None,
    sr: int = 16000,
    *,
    codec: str = "libx264",
    audio_codec: str | None = None,
    crf: int = 20,
    preset: str = "veryfast",
) -> Path:
    """Write RGB frames (and optionally an audio track) to a video file, atomically.

    ``frames``: uint8 ``(T, H, W, 3)`` or an iterable of ``(H, W, 3)`` frames (streamed, so a
    generator keeps memory flat); odd heights/widths are padded by one edge pixel (yuv420p needs
    even sizes). ``audio``: float ``(n,)`` or ``(n, 2)`` in [-1, 1] at ``sr`` Hz. Codecs: H.264
    (yuv420p, ``crf``/``preset``) and, by container, AAC (.mp4/.mov/.mkv/.flv) or 16-bit PCM
    (.avi); pass ``audio_codec="pcm_s16le"`` for lossless audio in .mov/.mkv. The file appears
    under its name only once complete. Returns the path.

    The output is reproducible: the same frames and audio give byte-identical files (no
    creation time is written). For that, H.264 is encoded without x264's AVX-512 code paths,
    see :func:`_x264_params`.
    """
    import av

    path = Path(path)
    ext = path.suffix.lower()
    if ext not in VIDEO_EXTENSIONS:
        raise MediaArgumentError(path, f"unsupported video extension {ext!r}; expected one of {VIDEO_EXTENSIONS}")
    rate = _as_fraction(fps)
    planar = _audio_planar(audio) if audio is not None else None
    acodec = audio_codec or _DEFAULT_AUDIO_CODEC.get(ext, "aac")
    fmt = {".mkv": "matroska", ".m4v": "mp4", ".mpg": "mpeg", ".mpeg": "mpeg"}.get(ext, ext[1:])
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format=fmt) as c:
        vstream = None
        astream = None
        if planar is not None:
            astream = _add_audio_stream(c, acodec, sr, planar.shape[0])
        a_written = 0
        n = 0
        for frame in frames:
            frame = np.asarray(frame)
            if frame.ndim != 3 or frame.shape[2] != 3:
                raise MediaArgumentError(path, f"frames must be (H, W, 3) RGB, got shape {frame.shape}")
            if frame.dtype != np.uint8:
                raise MediaArgumentError(path, f"frames must be uint8, got {frame.dtype}")
            h, w = frame.shape[:2]
            if h % 2 or w % 2:
                frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            if vstream is None:
                vstream = c.add_stream(codec, rate=rate)
                vstream.width, vstream.height = frame.shape[1], frame.shape[0]
                vstream.pix_fmt = "yuv420p"
                if codec == "libx264":
                    vstream.options = {"crf": str(crf), "preset": preset, **_x264_params()}
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vf.pts = n
            vf.time_base = Fraction(1, 1) / rate
            for pkt in vstream.encode(vf):
                c.mux(pkt)
            n += 1
            if astream is not None:  # interleave: audio up to the end of this frame
                upto = min(planar.shape[1], int(round(n / rate * sr)))
                for af in _audio_frames(astream, planar, sr, a_written, upto):
                    for pkt in astream.encode(af):
                        c.mux(pkt)
                a_written = max(a_written, upto)
        if vstream is None:
            raise MediaArgumentError(path, "no frames to write")
        for pkt in vstream.encode(None):
            c.mux(pkt)
        if astream is not None:
            for af in _audio_frames(astream, planar, sr, a_written, planar.shape[1]):
                for pkt in astream.encode(af):
                    c.mux(pkt)
            for pkt in astream.encode(None):
                c.mux(pkt)
    return path


def write_audio(path: str | Path, audio: np.ndarray, sr: int = 16000, *, codec: str | None = None) -> Path:
    """Write an audio-only file (.wav 16-bit PCM, .flac, .mp3, .m4a AAC), atomically."""
    import av

    path = Path(path)
    ext = path.suffix.lower()
    defaults = {".wav": "pcm_s16le", ".flac": "flac", ".mp3": "libmp3lame", ".m4a": "aac", ".ogg": "libvorbis"}
    if codec is None and ext not in defaults:
        raise MediaArgumentError(path, f"unsupported audio extension {ext!r}; expected one of {tuple(defaults)}")
    planar = _audio_planar(audio)
    fmt = {".m4a": "mp4", ".ogg": "ogg"}.get(ext, ext[1:])
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format=fmt) as c:
        stream = _add_audio_stream(c, codec or defaults[ext], sr, planar.shape[0])
        for af in _audio_frames(stream, planar, sr, 0, planar.shape[1]):
            for pkt in stream.encode(af):
                c.mux(pkt)
        for pkt in stream.encode(None):
            c.mux(pkt)
    return path
