"""Shared face machinery: a MediaPipe face-mesh tracker, face boxes and crops, and one
decoding + tracking pass that feeds every face extractor of a clip.

Face extractors subclass :class:`FaceExtractor` and implement :meth:`FaceExtractor.frame_features`
(one frame + its landmarks -> one feature row). :func:`run_face_pass` decodes a clip once, runs
MediaPipe once per frame, and hands each frame to all the extractors given, so extracting
``face-mesh`` and ``face-expression`` together costs one tracking pass. Extractors can share a
pass when their :meth:`FaceExtractor.pass_key` (frame rate, frame size, tracker settings) match.

Helpers for other modules (e.g. encoders that want face crops)::

    from blemore.extractors._face import face_box, crop_face
    box = face_box(frame)                 # (x0, y0, x1, y1) square box in pixels, or None
    crop = crop_face(frame, box, 224)     # (224, 224, 3) uint8, zero-padded at the borders
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from blemore.extractors.base import Extractor, ExtractorConfig, ExtractResult
from blemore.media import MediaError, NoVideoError, iter_frames, probe

__all__ = [
    "FacePassConfig",
    "FaceExtractor",
    "FaceMeshTracker",
    "get_tracker",
    "face_box",
    "crop_face",
    "run_face_pass",
]


@dataclass
class FacePassConfig(ExtractorConfig):
    """Settings of the decoding + tracking pass (shared by all face extractors).

    ``fps``: frames per second to analyse (None: every frame of the source).
    ``max_side``: frames are shrunk to this longer side before tracking (MediaPipe works on a
    192-pixel face crop, so 640 loses nothing and saves time). The three tracker settings are
    MediaPipe's ``refine_landmarks`` (478 points with irises instead of 468),
    ``min_detection_confidence`` and ``min_tracking_confidence``.
    """

    fps: float | None = None
    max_side: int | None = 640
    refine_landmarks: bool = True
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5


# ----------------------------------------------------------------------------- tracker
class FaceMeshTracker:
    """MediaPipe FaceMesh for one face. ``tracker(frame) -> (N, 3) landmarks or None``.

    Landmarks are in pixels of the given frame: x, y, and z (depth, on the x scale, relative
    to the head centre; smaller is nearer). In tracking mode (``static=False``) call
    :meth:`reset` between clips so one clip's face never seeds the next.
    """

    def __init__(self, refine_landmarks: bool = True, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, static: bool = False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import mediapipe as mp

        self.refine_landmarks = refine_landmarks
        self.n_points = 478 if refine_landmarks else 468
        with quiet_native_stderr():  # MediaPipe/TFLite print start-up notices from C++
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=static, max_num_faces=1, refine_landmarks=refine_landmarks,
                min_detection_confidence=min_detection_confidence, min_tracking_confidence=min_tracking_confidence,
            )
            self.reset()

    def reset(self) -> None:
        """Forget the tracked face: process one blank frame, after which the next frame starts
        from face detection, exactly as in a fresh graph. (Restarting the graph would do the
        same at ten times the cost and print C++ notices for every clip.)"""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._mesh.process(_BLANK)

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # protobuf deprecation noise on every call
            res = self._mesh.process(np.ascontiguousarray(frame))
        if not res.multi_face_landmarks:
            return None
        h, w = frame.shape[:2]
        pts = np.array([(p.x, p.y, p.z) for p in res.multi_face_landmarks[0].landmark], dtype=np.float32)
        pts[:, 0] *= w
        pts[:, 1] *= h
        pts[:, 2] *= w
        return pts

    def close(self) -> None:
        self._mesh.close()


_TRACKERS: dict[tuple, FaceMeshTracker] = {}
_BLANK = np.zeros((64, 64, 3), np.uint8)


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the block (C++ libraries' start-up notices).
    Python exceptions still propagate; only text written to stderr meanwhile is lost."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr (e.g. some notebooks)
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def get_tracker(refine_landmarks: bool = True, min_detection_confidence: float = 0.5,
                min_tracking_confidence: float = 0.5, static: bool = False) -> FaceMeshTracker:
    """A per-process cached tracker for these settings (models are loaded once per worker)."""
    key = (bool(refine_landmarks), float(min_detection_confidence), float(min_tracking_confidence), bool(static))
    if key not in _TRACKERS:
        _TRACKERS[key] = FaceMeshTracker(*key)
    return _TRACKERS[key]


# ----------------------------------------------------------------------------- boxes and crops
def face_box(frame: np.ndarray | None = None, landmarks: np.ndarray | None = None,
             scale: float = 1.1) -> tuple[float, float, float, float] | None:
    """A square box around the face: ``scale`` times the larger side of the landmark extent,
    centred on it. Give ``landmarks`` ((N, 2+) pixels) or a ``frame`` (then a static face mesh
    finds them). Returns ``(x0, y0, x1, y1)`` in pixels (may exceed the frame) or None."""
    if landmarks is None:
        if frame is None:
            raise ValueError("give a frame or landmarks")
        landmarks = get_tracker(static=True)(frame)
        if landmarks is None:
            return None
    xy = np.asarray(landmarks)[:, :2]
    (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = scale * max(x1 - x0, y1 - y0) / 2
    return (float(cx - half), float(cy - half), float(cx + half), float(cy + half))


def crop_face(frame: np.ndarray, box: Sequence[float], size: int | tuple[int, int] = 224,
              gray: bool = False) -> np.ndarray:
    """Cut ``box`` out of ``frame`` and resize it to ``size`` (int: square; or (width, height)).

    Parts of the box outside the frame are filled with zeros. ``gray``: return a 2-D
    luminance crop (ITU-R 601 weights, as OpenCV). Returns uint8.
    """
    import cv2

    out_w, out_h = (size, size) if isinstance(size, int) else size
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty face box {tuple(box)}")
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    patch = frame[sy0:sy1, sx0:sx1] if sx1 > sx0 and sy1 > sy0 else frame[:0, :0]
    if gray and patch.ndim == 3:
        patch = cv2.cvtColor(np.ascontiguousarray(patch), cv2.COLOR_RGB2GRAY) if patch.size else patch[..., 0]
    if (sx0, sy0, sx1, sy1) != (x0, y0, x1, y1):  # pad what lies outside the frame
        shape = (y1 - y0, x1 - x0) + patch.shape[2:]
        full = np.zeros(shape, np.uint8)
        full[sy0 - y0:sy0 - y0 + patch.shape[0], sx0 - x0:sx0 - x0 + patch.shape[1]] = patch
        patch = full
    interp = cv2.INTER_AREA if patch.shape[0] > out_h else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(patch), (out_w, out_h), interpolation=interp)


# ----------------------------------------------------------------------------- extractor base
class FaceExtractor(Extractor):
    """Base for face extractors: one feature row per analysed frame, from the frame and its
    face-mesh landmarks. Rows of frames without a face are NaN (see :meth:`empty_row`)."""

    modality = "face"
    config_class = FacePassConfig

    @property
    def rate(self) -> float | None:
        return self.config.fps

    def pass_key(self) -> tuple:
        """Extractors with equal keys can share one decoding + tracking pass."""
        c = self.config
        return (c.fps, c.max_side, c.refine_landmarks, c.min_detection_confidence, c.min_tracking_confidence)

    def tracker(self) -> FaceMeshTracker:
        c = self.config
        return get_tracker(c.refine_landmarks, c.min_detection_confidence, c.min_tracking_confidence)

    def load(self) -> None:
        self.tracker()
        self._loaded = True

    @abstractmethod
    def frame_features(self, frame: np.ndarray, landmarks: np.ndarray | None) -> np.ndarray:
        """One row (D,) float32 for ``frame`` (RGB uint8) and its landmarks (None: no face)."""

    def empty_row(self) -> np.ndarray:
        """The row for a frame without a face: all NaN."""
        return np.full(self.dim, np.nan, np.float32)

    def extract(self, path: str | Path) -> ExtractResult:
        return run_face_pass(path, [self])[0]


def run_face_pass(path: str | Path, extractors: Sequence[FaceExtractor]) -> list[ExtractResult]:
    """Decode ``path`` once, track the face, and build every extractor's (T, D) features.

    All extractors must share one :meth:`FaceExtractor.pass_key`. Never raises for bad media:
    returns ``failed`` (corrupt file, decoding error), ``no-video`` or ``no-face`` results
    (the latter still carries the NaN rows and timestamps). ``info`` holds ``frames``,
    ``seconds`` (span of the analysed frames) and ``faces`` (frames with a face).
    """
    if not extractors:
        return []
    keys = {e.pass_key() for e in extractors}
    if len(keys) > 1:
        raise ValueError(f"face extractors with different pass settings cannot share a pass: {sorted(map(str, keys))}")
    cfg = extractors[0].config
    t_start = time.perf_counter()

    def fail(status: str, error: str) -> list[ExtractResult]:
        return [ExtractResult(np.zeros((0, e.dim), np.float32), np.zeros(0), status=status, error=error,
                              info={"frames": 0, "seconds": 0.0, "time_s": time.perf_counter() - t_start})
                for e in extractors]

    try:  # one decoding thread: parallelism comes from one worker process per core
        for e in extractors:
            e.load()
        tracker = extractors[0].tracker()
        tracker.reset()
        rows: list[list[np.ndarray]] = [[] for _ in extractors]
        times: list[float] = []
        faces = 0
        for frame, t in iter_frames(path, fps=cfg.fps, max_side=cfg.max_side, threads=1):
            lm = tracker(frame)
            faces += lm is not None
            for r, e in zip(rows, extractors):
                r.append(e.frame_features(frame, lm) if lm is not None else e.empty_row())
            times.append(t)
    except NoVideoError as err:
        return fail("no-video", str(err))
    except MediaError as err:
        return fail("failed", str(err))
    except Exception as err:  # a model or library error: record it, keep the run going
        return fail("failed", f"{err.__class__.__name__}: {err}")
    tarr = np.asarray(times, dtype=np.float64)
    seconds = _span(tarr)
    warning = ""
    try:
        info = probe(path)
        if info.duration and len(tarr) and tarr[-1] < 0.8 * info.duration - 0.5:
            warning = f"decoded frames end at {tarr[-1]:.2f} s of a declared {info.duration:.2f} s (truncated?)"
    except MediaError:
        pass
    status = "ok" if faces else "no-face"
    error = warning if faces else "no face found in any of the frames"
    elapsed = time.perf_counter() - t_start
    out = []
    for r, e in zip(rows, extractors):
        feats = np.stack(r).astype(np.float32) if r else np.zeros((0, e.dim), np.float32)
        out.append(ExtractResult(feats, tarr.copy(), status=status, error=error or None,
                                 info={"frames": len(tarr), "seconds": seconds, "faces": faces, "time_s": elapsed}))
    return out


def _span(times: np.ndarray) -> float:
    """Seconds covered by frames at ``times``: first to last plus one (median) frame period."""
    if len(times) == 0:
        return 0.0
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    return float(times[-1] - times[0]) + step

