"""``face-mesh``: MediaPipe face-mesh landmarks, normalised, plus interpretable face measures.

One row per analysed frame:

* ``lm000_x, lm000_y, lm000_z, ...``: the 478 refined landmarks (468 without irises) with head
  position, scale and in-plane rotation removed. The origin is the midpoint between the two eye
  centres, the unit is the inter-ocular distance (between the eye centres, each the midpoint of
  its two corners), and the frame is rotated so the eyes lie on the x axis (subject's right eye
  at x = -0.5, left eye at x = +0.5; y grows downwards, z is MediaPipe's depth on the same scale).
* Geometric measures in inter-ocular units (see :data:`MEASURES`): mouth opening and width,
  lip-corner height relative to the lip centre (positive = raised, a smile), upper-lip to nose
  distance, jaw drop, brow height (mean and inner point, above the eye line), inner-brow
  distance, eye opening (lid distance over eye width), and the head terms removed from the
  landmarks: roll (radians), yaw and pitch proxies (nose-tip offset), face position and size
  in the image.
* ``face_found``: 1 when a face was tracked in the frame, else 0; every other column of such a
  frame is NaN.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from blemore.extractors._face import FaceExtractor, FacePassConfig
from blemore.extractors.base import register_extractor

# MediaPipe canonical face-mesh indices ("right" = the subject's right, on the image's left).
R_EYE_OUTER, R_EYE_INNER, L_EYE_INNER, L_EYE_OUTER = 33, 133, 362, 263
R_LID_UP, R_LID_DOWN, L_LID_UP, L_LID_DOWN = 159, 145, 386, 374
MOUTH_R, MOUTH_L, LIP_IN_UP, LIP_IN_DOWN, LIP_TOP = 61, 291, 13, 14, 0
NOSE_TIP, NOSE_BASE, CHIN = 1, 2, 152
R_BROW = (70, 63, 105, 66, 107)
L_BROW = (300, 293, 334, 296, 336)
R_BROW_INNER, L_BROW_INNER = 107, 336

#: The measure columns, in order.
MEASURES = (
    "mouth_open", "mouth_width", "lip_corner_raise_r", "lip_corner_raise_l", "upper_lip_to_nose",
    "jaw_drop", "brow_raise_r", "brow_raise_l", "brow_inner_raise_r", "brow_inner_raise_l",
    "brow_inner_distance", "eye_open_r", "eye_open_l",
    "head_roll", "head_yaw", "head_pitch", "face_x", "face_y", "face_size",
)


@dataclass
class FaceMeshConfig(FacePassConfig):
    """``landmarks``: include the normalised landmark coordinates (else only the measures and
    the flag); ``include_z``: include their depth coordinate."""

    landmarks: bool = True
    include_z: bool = True


def normalise_landmarks(pts: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """Remove position, scale and in-plane rotation from pixel landmarks ``(N, 3)``.

    Returns the normalised ``(N, 3)`` array and the removed pose terms
    (``origin_x``, ``origin_y``, ``iod`` in pixels, ``roll`` in radians).
    """
    pts = np.asarray(pts, dtype=np.float32)
    c_r = (pts[R_EYE_OUTER] + pts[R_EYE_INNER]) / 2
    c_l = (pts[L_EYE_INNER] + pts[L_EYE_OUTER]) / 2
    d = c_l[:2] - c_r[:2]
    iod = float(math.hypot(d[0], d[1])) or 1e-6
    roll = math.atan2(float(d[1]), float(d[0]))
    origin = (c_r + c_l) / 2
    c, s = math.cos(-roll), math.sin(-roll)
    rot = np.array([[c, -s], [s, c]], dtype=np.float32)
    out = np.empty_like(pts)
    out[:, :2] = (pts[:, :2] - origin[:2]) @ rot.T / iod
    out[:, 2] = (pts[:, 2] - origin[2]) / iod
    return out, {"origin_x": float(origin[0]), "origin_y": float(origin[1]), "iod": iod, "roll": roll}


def face_measures(q: np.ndarray, pose: dict[str, float], width: int, height: int) -> np.ndarray:
    """The :data:`MEASURES` from normalised landmarks ``q`` and the removed pose terms."""

    def dist(a: int, b: int) -> float:
        return float(np.linalg.norm(q[a, :2] - q[b, :2]))

    lip_mid_y = (q[LIP_IN_UP, 1] + q[LIP_IN_DOWN, 1]) / 2
    m = [
        dist(LIP_IN_UP, LIP_IN_DOWN),
        dist(MOUTH_R, MOUTH_L),
        lip_mid_y - q[MOUTH_R, 1],
        lip_mid_y - q[MOUTH_L, 1],
        dist(LIP_TOP, NOSE_BASE),
        q[CHIN, 1] - q[NOSE_TIP, 1],
        -float(q[list(R_BROW), 1].mean()),
        -float(q[list(L_BROW), 1].mean()),
        -q[R_BROW_INNER, 1],
        -q[L_BROW_INNER, 1],
        dist(R_BROW_INNER, L_BROW_INNER),
        dist(R_LID_UP, R_LID_DOWN) / max(dist(R_EYE_OUTER, R_EYE_INNER), 1e-6),
        dist(L_LID_UP, L_LID_DOWN) / max(dist(L_EYE_INNER, L_EYE_OUTER), 1e-6),
        pose["roll"],
        q[NOSE_TIP, 0],
        q[NOSE_TIP, 1],
        pose["origin_x"] / width,
        pose["origin_y"] / height,
        pose["iod"] / width,
    ]
    return np.asarray(m, dtype=np.float32)


@register_extractor
class FaceMesh(FaceExtractor):
    """MediaPipe face mesh (refined, tracked within a clip): normalised landmarks, face
    measures and a face-found flag per frame."""

    name = "face-mesh"
    version = "1"
    config_class = FaceMeshConfig
    default_weights = None  # the models ship inside the mediapipe wheel
    description = "MediaPipe face mesh: normalised 3-D landmarks + geometric measures + face-found flag"

    @property
    def columns(self) -> list[str]:
        cols: list[str] = []
        if self.config.landmarks:
            n = 478 if self.config.refine_landmarks else 468
            axes = ("x", "y", "z") if self.config.include_z else ("x", "y")
            cols = [f"lm{i:03d}_{a}" for i in range(n) for a in axes]
        return cols + list(MEASURES) + ["face_found"]

    @classmethod
    def weights_available(cls) -> bool:
        import importlib.util

        return importlib.util.find_spec("mediapipe") is not None

    def frame_features(self, frame: np.ndarray, landmarks: np.ndarray | None) -> np.ndarray:
        if landmarks is None:
            return self.empty_row()
        q, pose = normalise_landmarks(landmarks)
        parts = []
        if self.config.landmarks:
            parts.append((q if self.config.include_z else q[:, :2]).reshape(-1))
        parts.append(face_measures(q, pose, frame.shape[1], frame.shape[0]))
        parts.append(np.ones(1, np.float32))
        return np.concatenate(parts).astype(np.float32, copy=False)

    def empty_row(self) -> np.ndarray:
        row = np.full(self.dim, np.nan, np.float32)
        row[-1] = 0.0  # face_found
        return row
