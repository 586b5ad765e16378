"""A synthetic face that makes the emotions' action units: a real face deformed by smooth fields.

The base face is the astronaut portrait shipped with scikit-image (``skimage.data.astronaut()``).
MediaPipe FaceMesh is run on it once (:func:`base_face`; the result is cached on disk) to place
every displacement field on real facial landmarks instead of hand-picked pixel positions.

An *action unit* (AU, after the Facial Action Coding System) is approximated by a displacement
field: a few landmarks (brows, lids, lip corners, lips, nose wings, chin) move by a vector given in
units of the inter-ocular distance (IOD), and the motion spreads to their neighbourhood through a
normalised Gaussian window. Each emotion is a weighted set of AUs (:data:`EMOTION_AUS`, after the
prototypes of Ekman and Friesen), a blend is the salience-weighted sum of the two emotions'
fields, and a clip plays an onset-apex-offset time course of those weights. Actors differ by
identity warps (eye spacing, brow, nose and mouth position, jaw width), colour, lighting,
size, head motion, background and mirror image (:class:`FaceIdentity`).

Frames are rendered by :meth:`FaceRig.render` with two ``cv2.remap`` calls (identity, then
expression) and one ``cv2.warpAffine`` (head pose) per frame: a few milliseconds at 192 px.
"""
from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blemore._io import atomic_path
from blemore.labels import EMOTIONS
from blemore.synth import SynthError

# -- MediaPipe FaceMesh landmark indices (478-point topology with refined irises) ----------------
LIP_CORNERS = (61, 291)
UPPER_LIP = (0, 37, 267, 39, 269, 13, 82, 312)
LOWER_LIP = (14, 17, 84, 314, 87, 317)
CHIN = (152, 175, 199, 200, 18)
INNER_BROWS = (107, 66, 55, 65, 336, 296, 285, 295)
OUTER_BROWS = (70, 63, 46, 53, 300, 293, 276, 283)
MID_BROWS = (105, 52, 334, 282)
UPPER_LIDS = (159, 158, 160, 386, 385, 387)
LOWER_LIDS = (145, 153, 144, 374, 380, 373)
CHEEKS = (117, 118, 50, 346, 347, 280)
NOSE_WINGS = (48, 64, 98, 278, 294, 327)
NOSE_TIP = (1, 4)
NOSE_BRIDGE = (6, 168, 197)
LEFT_EYE = (33, 133, 159, 145, 158, 153, 160, 144)  # the subject's right eye (image left)
RIGHT_EYE = (263, 362, 386, 374, 385, 380, 387, 373)
JAW_SIDES = (172, 136, 150, 397, 365, 379, 234, 454)
IRIS_CENTRES = (468, 473)

# An AU: ((landmarks, (dx_outward, dy), sigma), ...) in IOD units; dx > 0 moves away from the
# face's midline, dy > 0 moves down (image rows).
_AUSpec = tuple[tuple[tuple[int, ...], tuple[float, float], float], ...]
_EYES = UPPER_LIDS + LOWER_LIDS + IRIS_CENTRES + (33, 133, 263, 362)
FOREHEAD = (10, 151, 108, 337, 67, 297, 109, 338)
AU_SPECS: dict[str, _AUSpec] = {
    "AU1": ((INNER_BROWS, (-0.02, -0.15), 0.26), (_EYES, (0.0, 0.0), 0.08)),  # inner brow raiser
    "AU2": ((OUTER_BROWS, (0.02, -0.14), 0.26), (_EYES, (0.0, 0.0), 0.08)),  # outer brow raiser
    "AU4": ((INNER_BROWS + MID_BROWS + OUTER_BROWS, (-0.07, 0.15), 0.26), (UPPER_LIDS, (0.0, 0.05), 0.08),
            (LOWER_LIDS + (33, 133, 263, 362), (0.0, 0.0), 0.10)),  # brow lowerer (brows and lids down)
    "AU5": ((UPPER_LIDS, (0.0, -0.08), 0.11), (LOWER_LIDS, (0.0, 0.0), 0.06)),  # upper lid raiser
    "AU6": ((CHEEKS, (0.0, -0.12), 0.24), (LOWER_LIDS, (0.0, -0.05), 0.09),
            (UPPER_LIDS, (0.0, 0.0), 0.06)),  # cheek raiser
    "AU7": ((LOWER_LIDS, (0.0, -0.05), 0.09), (UPPER_LIDS, (0.0, 0.0), 0.06)),  # lid tightener
    "AU9": ((NOSE_WINGS, (0.0, -0.11), 0.18), (NOSE_BRIDGE, (0.0, 0.05), 0.14),
            (LOWER_LIP, (0.0, 0.0), 0.12)),  # nose wrinkler
    "AU10": ((UPPER_LIP[:5], (0.0, -0.11), 0.18), (NOSE_TIP, (0.0, 0.0), 0.12),
             (LOWER_LIP, (0.0, 0.0), 0.10)),  # upper lip raiser
    "AU12": ((LIP_CORNERS, (0.14, -0.17), 0.24), (NOSE_TIP + CHIN, (0.0, 0.0), 0.16)),  # lip corner puller
    "AU15": ((LIP_CORNERS, (0.0, 0.17), 0.22), (NOSE_TIP, (0.0, 0.0), 0.16)),  # lip corner depressor
    "AU17": ((CHIN, (0.0, -0.08), 0.20), (UPPER_LIP, (0.0, 0.0), 0.10)),  # chin raiser
    "AU20": ((LIP_CORNERS, (0.17, 0.03), 0.22), (NOSE_TIP + CHIN, (0.0, 0.0), 0.16)),  # lip stretcher
    "AU24": ((UPPER_LIP, (0.0, 0.05), 0.13), (LOWER_LIP, (0.0, -0.06), 0.13),
             (LIP_CORNERS, (-0.08, 0.0), 0.16)),  # lip presser
    "AU25": ((UPPER_LIP[:5], (0.0, -0.02), 0.10), (LOWER_LIP, (0.0, 0.03), 0.10),
             (NOSE_TIP + CHIN, (0.0, 0.0), 0.12)),  # lips part (also shows the teeth, see FaceRig)
    "AU26": ((LOWER_LIP + CHIN, (0.0, 0.14), 0.28), (UPPER_LIP + NOSE_TIP, (0.0, 0.0), 0.10)),  # jaw drop
}
AU_NAMES: tuple[str, ...] = tuple(AU_SPECS)

EMOTION_AUS: dict[str, dict[str, float]] = {
    "ang": {"AU4": 1.0, "AU7": 0.8, "AU24": 1.0},
    "disg": {"AU9": 1.0, "AU10": 1.0, "AU15": 0.35, "AU4": 0.3, "AU25": 0.4},
    "fea": {"AU1": 0.7, "AU2": 0.7, "AU5": 1.0, "AU20": 1.0, "AU25": 0.6, "AU26": 0.5},
    "hap": {"AU6": 1.0, "AU12": 1.0, "AU25": 1.0, "AU26": 0.2},
    "sad": {"AU1": 1.0, "AU4": 0.35, "AU15": 1.0, "AU17": 0.6},
    "neu": {},
}
"""Emotion -> AU weights. Neutral has none."""

def emotion_au_matrix() -> np.ndarray:
    """(6, A) AU weights of each emotion (:data:`EMOTIONS` order, :data:`AU_NAMES` columns)."""
    W = np.zeros((len(EMOTIONS), len(AU_NAMES)), np.float32)
    for i, e in enumerate(EMOTIONS):
        for a, w in EMOTION_AUS[e].items():
            W[i, AU_NAMES.index(a)] = w
    return W


NEUTRALISE: dict[str, float] = {"AU15": 0.35, "AU6": -0.15}
"""A standing correction applied to every frame: the astronaut smiles in the photograph
(:func:`base_face` also closes her lips)."""

_CACHE_VERSION = 4


def cache_dir() -> Path:
    """Where generated assets are cached: ``$BLEMORE_CACHE`` or ``~/.cache/blemore``."""
    root = os.environ.get("BLEMORE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "blemore")
    return Path(root)


@dataclass(frozen=True)
class BaseFace:
    """The base portrait, square, with its foreground matte and FaceMesh landmarks.

    ``image``: (S, S, 3) uint8 RGB with the lips closed (the teeth of the photograph painted
    over); ``open_mouth``: the photograph itself (smiling, teeth showing); ``mouth``: (S, S)
    float32 soft mask of the inner mouth, where ``open_mouth`` shows through when the lips part;
    ``matte``: (S, S) float32 in [0, 1] (1 = person); ``landmarks``: (478, 2) float32 pixel
    coordinates (x, y).
    """

    image: np.ndarray
    open_mouth: np.ndarray
    mouth: np.ndarray
    matte: np.ndarray
    landmarks: np.ndarray

    @property
    def size(self) -> int:
        return int(self.image.shape[0])

    @property
    def iod(self) -> float:
        """Inter-ocular distance (iris centres) in pixels."""
        a, b = self.landmarks[list(IRIS_CENTRES)]
        return float(np.hypot(*(a - b)))

    def resized(self, size: int) -> "BaseFace":
        import cv2

        if size == self.size:
            return self
        k = size / self.size
        interp = cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC

        def rs(x: np.ndarray, how: int = interp) -> np.ndarray:
            return cv2.resize(x, (size, size), interpolation=how)

        # pixel centres: x' = (x + 0.5) * k - 0.5
        lm = ((self.landmarks + 0.5) * k - 0.5).astype(np.float32)
        return BaseFace(rs(self.image), rs(self.open_mouth),
                        np.clip(rs(self.mouth, cv2.INTER_LINEAR), 0, 1).astype(np.float32),
                        np.clip(rs(self.matte, cv2.INTER_LINEAR), 0, 1).astype(np.float32), lm)


INNER_LIPS_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
INNER_LIPS_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)


BROW_UPPER = ((70, 63, 105, 66, 107), (300, 293, 334, 296, 336))
BROW_LOWER = ((46, 53, 52, 65, 55), (276, 283, 282, 295, 285))


def _darken_brows(img: np.ndarray, lm: np.ndarray, strength: float = 0.45) -> np.ndarray:
    """Make the (faint) brows of the photograph darker so that their motion is easy to see."""
    import cv2

    m = np.zeros(img.shape[:2], np.float32)
    for up, lo in zip(BROW_UPPER, BROW_LOWER):
        a, b = lm[list(up)], lm[list(lo)]
        # the brow is the band between its upper and lower landmark rows, a little thinned
        poly = np.concatenate([a + 0.25 * (b - a), (b + 0.25 * (a - b))[::-1]])
        cv2.fillPoly(m, [np.round(poly).astype(np.int32)], 1.0)
    m = cv2.GaussianBlur(m, (0, 0), max(0.8, img.shape[0] / 250))[..., None]
    brow = np.array([70, 50, 35], np.float32)
    out = img.astype(np.float32) * (1 - strength * m) + brow * (strength * m)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _close_mouth(img: np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paint the teeth over with the surrounding lips and draw a lip seam; also the soft
    inner-mouth mask. Returns ``(closed_image, mouth_mask)``."""
    import cv2

    poly = lm[list(INNER_LIPS_UPPER) + list(INNER_LIPS_LOWER[::-1])].astype(np.int32)
    m = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(m, [poly], 255)
    m = cv2.dilate(m, np.ones((3, 3), np.uint8))
    closed = cv2.inpaint(img, m, 5, cv2.INPAINT_TELEA)
    seam = (lm[list(INNER_LIPS_UPPER)] + lm[list(INNER_LIPS_LOWER)]) / 2
    cv2.polylines(closed, [seam.astype(np.int32)], False, (90, 40, 40), 1, cv2.LINE_AA)
    mask = cv2.GaussianBlur(m.astype(np.float32) / 255, (0, 0), 1.0)
    return closed, np.clip(mask, 0, 1).astype(np.float32)


def facemesh_landmarks(image: np.ndarray) -> np.ndarray | None:
    """Run MediaPipe FaceMesh (static mode, refined irises) on one RGB image.

    Returns (478, 2) float32 pixel coordinates, or ``None`` when no face is found.
    Needs the ``extract`` extra (``mediapipe``).
    """
    try:
        import mediapipe as mp
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("placing the synthetic face's action units needs MediaPipe: "
                          "pip install 'blemore[extract]'") from e
    h, w = image.shape[:2]
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True,
                                         max_num_faces=1) as fm:
        res = fm.process(np.ascontiguousarray(image))
    if not res.multi_face_landmarks:
        return None
    pts = res.multi_face_landmarks[0].landmark
    return np.array([[p.x * w, p.y * h] for p in pts], dtype=np.float32)


def _atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def _foreground_matte(img: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """A soft person/background matte of the portrait crop (GrabCut seeded by the landmarks)."""
    import cv2

    h, w = img.shape[:2]
    gm = np.full((h, w), cv2.GC_PR_FGD, np.uint8)
    # the studio background: the top edge, the sides above the shoulders
    gm[: max(2, h // 50)] = cv2.GC_BGD
    gm[: int(h * 0.6), : max(2, w // 50)] = cv2.GC_BGD
    gm[: int(h * 0.72), -max(2, w // 50):] = cv2.GC_BGD
    gm[int(h * 0.5): int(h * 0.7), int(w * 0.85):] = cv2.GC_BGD
    hull = cv2.convexHull(lm[:468].astype(np.int32))
    cv2.fillConvexPoly(gm, hull, cv2.GC_FGD)
    gm[int(h * 0.85):, int(w * 0.3): int(w * 0.7)] = cv2.GC_FGD  # the suit below the chin
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.grabCut(img, gm, None, bgd, fgd, 5, cv2.GC_INIT_WITH_MASK)
    fg = ((gm == cv2.GC_FGD) | (gm == cv2.GC_PR_FGD)).astype(np.uint8)
    n, lbl, st, _ = cv2.connectedComponentsWithStats(fg)
    if n > 1:
        fg = (lbl == 1 + int(np.argmax(st[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    matte = cv2.GaussianBlur(fg.astype(np.float32), (0, 0), max(1.0, w / 220))
    return np.clip(matte, 0, 1).astype(np.float32)


@functools.lru_cache(maxsize=1)
def base_face() -> BaseFace:
    """The astronaut portrait cropped around the face (crop, matte and landmarks cached on disk).

    The crop is square, 4.2 IOD wide, centred a little below the face centre so that the
    shoulders show; landmarks come from MediaPipe FaceMesh run once on the full photograph.
    """
    from skimage import data as skdata

    photo = skdata.astronaut()
    key = hashlib.sha1(photo.tobytes()).hexdigest()[:12]
    path = cache_dir() / "synth" / f"astronaut_face_v{_CACHE_VERSION}_{key}.npz"
    if path.exists():
        try:
            with np.load(path) as z:
                x0, y0, side = (int(v) for v in z["crop"])
                return BaseFace(z["closed"], z["open"], z["mouth"], z["matte"], z["landmarks"])
        except Exception:  # a damaged cache is recomputed
            pass
    lm = facemesh_landmarks(photo)
    if lm is None:  # pragma: no cover - the model is deterministic
        raise RuntimeError("MediaPipe FaceMesh found no face in skimage.data.astronaut()")
    iod = float(np.hypot(*(lm[IRIS_CENTRES[0]] - lm[IRIS_CENTRES[1]])))
    lo, hi = lm[:468].min(0), lm[:468].max(0)
    cx, cy = (lo + hi) / 2
    side = int(round(4.2 * iod))
    x0 = int(round(cx - side / 2))
    y0 = int(round(cy + 0.25 * iod - side / 2))
    x0 = min(max(x0, 0), photo.shape[1] - side)
    y0 = min(max(y0, 0), photo.shape[0] - side)
    crop = photo[y0:y0 + side, x0:x0 + side].copy()
    lm_c = (lm - [x0, y0]).astype(np.float32)
    matte = _foreground_matte(crop, lm_c)
    crop = _darken_brows(crop, lm_c)
    closed, mouth = _close_mouth(crop, lm_c)
    try:
        _atomic_save_npz(path, crop=np.array([x0, y0, side]), matte=matte, landmarks=lm_c,
                         closed=closed, open=crop, mouth=mouth)
    except OSError:  # a read-only home is fine: recompute next time
        pass
    return BaseFace(closed, crop, mouth, matte, lm_c)


ANCHOR_WEIGHT = 4.0
"""How strongly an anchor point (zero displacement) holds its neighbourhood still."""


# -- displacement fields ---------------------------------------------------------------------
def _field(size: int, points: np.ndarray, disp: np.ndarray, sigma: np.ndarray | float) -> np.ndarray:
    """(size, size, 2) float32: the normalised-Gaussian spread of point displacements.

    Near a cluster of control points the field equals their (weighted mean) displacement, not
    their sum; it fades out smoothly with distance ``sigma`` (pixels, one per point or shared). Points with a zero
    displacement are *anchors*: they hold their neighbourhood still (with :data:`ANCHOR_WEIGHT`
    times the weight of a moving point).
    """
    sig = np.broadcast_to(np.asarray(sigma, np.float32), (len(points),))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    num = np.zeros((size, size, 2), np.float32)
    den = np.zeros((size, size), np.float32)
    for (px, py), d, s in zip(points, disp, sig):
        g = np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * s * s))
        if d[0] or d[1]:
            num += g[..., None] * d
            den += g
        else:
            den += ANCHOR_WEIGHT * g
    # the weighted mean displacement, faded out smoothly where the points' coverage ends
    cover = -np.expm1(-den)
    return num * (cover / np.maximum(den, 1e-6))[..., None]


def _spec_points(face: BaseFace, spec: _AUSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    iod = face.iod
    mid_x = float(face.landmarks[list(NOSE_BRIDGE + NOSE_TIP), 0].mean())
    pts, disp, sig = [], [], []
    for idx, (dx, dy), sigma in spec:
        p = face.landmarks[list(idx)]
        side = np.sign(p[:, 0] - mid_x)
        pts.append(p)
        disp.append(np.stack([side * dx * iod, np.full(len(idx), dy * iod)], 1))
        sig.append(np.full(len(idx), sigma * iod))
    return (np.concatenate(pts).astype(np.float32), np.concatenate(disp).astype(np.float32),
            np.concatenate(sig).astype(np.float32))


def au_field(face: BaseFace, spec: _AUSpec) -> np.ndarray:
    """The displacement field of one AU on ``face`` (pixels), (S, S, 2)."""
    return _field(face.size, *_spec_points(face, spec))


def _backward_map(disp: np.ndarray, iterations: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` maps that move content *forward* by ``disp``.

    Solves ``src + D(src) = q`` for every output pixel ``q`` by fixed-point iteration
    (``src <- q - D(src)``), which converges where the field's gradient is below 1; a single
    step leaves ghosts of moved features (e.g. a raised brow also seen at its old place).
    """
    import cv2

    s = disp.shape[0]
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    mx, my = xx - disp[..., 0], yy - disp[..., 1]
    for _ in range(iterations):
        d = cv2.remap(disp, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mx, my = xx - d[..., 0], yy - d[..., 1]
    return mx, my


MIN_JACOBIAN = 0.3
"""The smallest local area ratio (Jacobian determinant of the forward warp) a rendered field may
have; stronger fields are scaled down as a whole so that the warp never folds (a fold would
duplicate features)."""


def _min_jacobian(disp: np.ndarray, k: float = 1.0) -> float:
    gx0, gy0 = np.gradient(disp[..., 0] * k)[::-1]  # d/dx, d/dy of the x displacement
    gx1, gy1 = np.gradient(disp[..., 1] * k)[::-1]
    return float(((1 + gx0) * (1 + gy1) - gy0 * gx1).min())


def _unfold(disp: np.ndarray) -> np.ndarray:
    """``disp`` scaled down (as little as needed, to 5 %) when it would fold the image."""
    if _min_jacobian(disp) >= MIN_JACOBIAN:
        return disp
    lo, hi = 0.0, 1.0
    for _ in range(6):
        mid = (lo + hi) / 2
        if _min_jacobian(disp, mid) >= MIN_JACOBIAN:
            lo = mid
        else:
            hi = mid
    return disp * np.float32(lo)


# -- actors ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FaceIdentity:
    """What makes one synthetic actor's face look like theirs (all drawn by :func:`draw_identity`).

    ``shape``: group name -> (dx_outward, dy) in IOD units (eye spacing, brows, nose, mouth, jaw);
    ``gain``: RGB multipliers of the person; ``gamma``; ``light``: left-right lighting gradient
    (-1..1 times the brightness change); ``scale``: face size relative to the frame; ``offset``:
    (x, y) position of the face centre in frame fractions; ``aspect``: horizontal stretch;
    ``background``: two RGB colours of a vertical gradient; ``mirror``: flipped left-right;
    ``expressivity``: multiplier of the AU amplitudes; ``motion``: head-motion amplitude.
    """

    shape: tuple[tuple[str, float, float], ...]
    gain: tuple[float, float, float]
    gamma: float
    light: float
    scale: float
    offset: tuple[float, float]
    aspect: float
    background: tuple[tuple[int, int, int], tuple[int, int, int]]
    mirror: bool
    expressivity: float
    motion: float


_SHAPE_GROUPS: dict[str, tuple[tuple[int, ...], float]] = {
    "eyes": (LEFT_EYE + RIGHT_EYE + IRIS_CENTRES, 0.25),
    "brows": (INNER_BROWS + OUTER_BROWS + MID_BROWS, 0.22),
    "nose": (NOSE_WINGS + NOSE_TIP, 0.22),
    "mouth": (LIP_CORNERS + UPPER_LIP + LOWER_LIP, 0.25),
    "jaw": (JAW_SIDES + CHIN, 0.35),
}


def draw_identity(rng: np.random.Generator, variation: float) -> FaceIdentity:
    """A random actor. ``variation`` (0..1) scales how much actors differ."""
    v = float(variation)
    shape = tuple(
        (name, float(rng.normal(0, 0.015 + 0.035 * v)), float(rng.normal(0, 0.015 + 0.035 * v)))
        for name in _SHAPE_GROUPS
    )
    gain = tuple(float(g) for g in np.clip(1 + rng.normal(0, 0.04 + 0.10 * v, 3), 0.6, 1.4))
    bg_a = rng.integers(30, 230, 3)
    bg_b = np.clip(bg_a + rng.integers(-60, 60, 3), 0, 255)
    return FaceIdentity(
        shape=shape,
        gain=gain,  # type: ignore[arg-type]
        gamma=float(np.exp(rng.normal(0, 0.05 + 0.12 * v))),
        light=float(rng.uniform(-1, 1) * (0.05 + 0.2 * v)),
        scale=float(np.exp(rng.normal(0, 0.03 + 0.07 * v))),
        offset=(float(rng.normal(0, 0.01 + 0.03 * v)), float(rng.normal(0, 0.01 + 0.02 * v))),
        aspect=float(np.exp(rng.normal(0, 0.02 + 0.04 * v))),
        background=(tuple(int(c) for c in bg_a), tuple(int(c) for c in bg_b)),  # type: ignore[arg-type]
        mirror=bool(rng.random() < 0.5),
        expressivity=float(np.exp(rng.normal(0, 0.08 + 0.25 * v))),
        motion=float(0.3 + 1.2 * v * rng.uniform(0.5, 1.5)),
    )


class FaceRig:
    """The base face at a working resolution with its AU fields, ready to render clips.

    ``FaceRig(size)`` works on a ``size`` x ``size`` copy of :func:`base_face`; frames of any
    ``(width, height)`` are rendered from it.
    """

    def __init__(self, size: int = 192):
        if size < 64:
            raise SynthError(f"face size must be at least 64 pixels, got {size}")
        self.face = base_face().resized(int(size))
        self.size = int(size)
        self.au_fields = np.stack([au_field(self.face, AU_SPECS[a]) for a in AU_NAMES])  # (A, S, S, 2)
        self.neutralise = self.combine({k: v for k, v in NEUTRALISE.items()})
        self._identity_cache: dict[FaceIdentity, np.ndarray] = {}

    def combine(self, weights: dict[str, float]) -> np.ndarray:
        """The field of AU weights ``{"AU12": 1.0, ...}``."""
        out = np.zeros((self.size, self.size, 2), np.float32)
        for a, w in weights.items():
            out += np.float32(w) * self.au_fields[AU_NAMES.index(a)]
        return out

    def emotion_au_weights(self) -> np.ndarray:
        """(6, A) AU weights of each emotion in :data:`EMOTIONS` order."""
        return emotion_au_matrix()

    def _identity(self, ident: FaceIdentity) -> np.ndarray:
        """(S, S, 8) identity-warped closed-mouth RGB, open-mouth RGB, mouth mask and matte."""
        hit = self._identity_cache.get(ident)
        if hit is not None:
            return hit
        import cv2

        f = self.face
        spec = tuple((_SHAPE_GROUPS[name][0], (dx, dy), _SHAPE_GROUPS[name][1]) for name, dx, dy in ident.shape)
        disp = au_field(f, spec)
        mx, my = _backward_map(disp)
        ramp = np.linspace(-1, 1, self.size, dtype=np.float32)[None, :, None]

        def look(x: np.ndarray) -> np.ndarray:
            x = (x.astype(np.float32) / 255.0) ** ident.gamma * np.array(ident.gain, np.float32)
            x = np.clip(x * (1 + ident.light * ramp), 0, 1)
            return cv2.remap(x, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

        # one RGBA-like stack: closed (3), open-mouth (3), mouth mask, matte
        stack = np.concatenate([
            look(f.image), look(f.open_mouth),
            cv2.remap(f.mouth, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)[..., None],
            cv2.remap(f.matte, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[..., None],
        ], -1).astype(np.float32)
        out = stack
        if len(self._identity_cache) > 64:
            self._identity_cache.clear()
        self._identity_cache[ident] = out
        return out

    def render(
        self,
        au_weights: np.ndarray,
        ident: FaceIdentity,
        pose: np.ndarray,
        frame_size: tuple[int, int],
        noise: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Render frames.

        ``au_weights``: (T, A) AU activations per frame (:data:`AU_NAMES` order; the identity's
        expressivity is *not* applied here); ``pose``: (T, 4) roll (degrees), dx, dy (frame
        fractions), log-scale per frame; ``frame_size``: (width, height); ``noise``: sensor
        noise standard deviation in 0..255 units. Returns (T, height, width, 3) uint8 RGB.
        """
        import cv2

        au_weights = np.asarray(au_weights, np.float32)
        pose = np.asarray(pose, np.float32)
        if au_weights.ndim != 2 or au_weights.shape[1] != len(AU_NAMES):
            raise SynthError(f"au_weights must be (T, {len(AU_NAMES)}), got {au_weights.shape}")
        if pose.shape != (len(au_weights), 4):
            raise SynthError(f"pose must be ({len(au_weights)}, 4), got {pose.shape}")
        w, h = (int(frame_size[0]), int(frame_size[1]))
        rng = rng or np.random.default_rng(0)
        stack = self._identity(ident)
        closed, opened, mouth, matte = stack[..., :3], stack[..., 3:6], stack[..., 6:7], stack[..., 7]
        lips = AU_NAMES.index("AU25")
        s = self.size
        # background: a vertical gradient between the actor's two colours
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        c0 = np.array(ident.background[0], np.float32) / 255
        c1 = np.array(ident.background[1], np.float32) / 255
        bg = np.broadcast_to(c0 * (1 - t) + c1 * t, (h, w, 3))
        base_scale = min(w, h) / s * ident.scale
        centre = np.array([w / 2 + ident.offset[0] * w, h / 2 + ident.offset[1] * h], np.float32)
        fields = self.au_fields.reshape(len(AU_NAMES), -1)
        out = np.empty((len(au_weights), h, w, 3), np.uint8)
        rgba = np.empty((s, s, 4), np.float32)
        rgba[..., 3] = matte
        opening = opened - closed
        for i, (aw, (roll, dx, dy, ls)) in enumerate(zip(au_weights, pose)):
            e = _unfold((aw @ fields).reshape(s, s, 2) + self.neutralise)
            mx, my = _backward_map(e)
            teeth = mouth * float(np.clip(aw[lips], 0.0, 1.0))
            rgba[..., :3] = closed + opening * teeth
            warped = cv2.remap(rgba, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            sc = base_scale * float(np.exp(ls))
            m = cv2.getRotationMatrix2D((s / 2, s / 2), float(roll), sc)
            m[0, :2] *= ident.aspect
            # move the rig centre to the frame position (+ motion)
            m[:, 2] += centre + [dx * w, dy * h] - m[:, :2] @ np.array([s / 2, s / 2], np.float32)
            frame = cv2.warpAffine(warped, m, (w, h), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
            a = frame[..., 3:4]
            comp = frame[..., :3] * a + bg * (1 - a)
            if noise > 0:
                comp = comp + rng.standard_normal(comp.shape, dtype=np.float32) * np.float32(noise / 255.0)
            if ident.mirror:
                comp = comp[:, ::-1]
            out[i] = np.clip(comp * 255 + 0.5, 0, 255).astype(np.uint8)
        return out


# -- verification ---------------------------------------------------------------------------
GEOMETRY: tuple[str, ...] = (
    "mouth_open", "mouth_width", "corner_lift", "brow_height", "inner_brow_height",
    "brow_distance", "eye_open", "nose_lip",
)
"""Measures of :func:`measure_geometry`, all in IOD units (``corner_lift``: lip corners above
the mouth centre; ``brow_height``: brows above the eye centres; ``nose_lip``: nose tip to upper lip)."""


def geometry_from_landmarks(lm: np.ndarray) -> np.ndarray:
    """(..., 478, 2) landmarks -> (..., len(GEOMETRY)) measures in IOD units (mirror-invariant)."""
    lm = np.asarray(lm, np.float64)

    def d(a: int, b: int) -> np.ndarray:
        return np.linalg.norm(lm[..., a, :] - lm[..., b, :], axis=-1)

    iod = d(*IRIS_CENTRES)
    y = lm[..., 1]
    eye_y = (y[..., 468] + y[..., 473]) / 2
    mouth_y = (y[..., 13] + y[..., 14]) / 2
    out = np.stack([
        d(13, 14),
        d(61, 291),
        mouth_y - (y[..., 61] + y[..., 291]) / 2,
        eye_y - y[..., list(INNER_BROWS + OUTER_BROWS + MID_BROWS)].mean(-1),
        eye_y - y[..., [107, 336, 55, 285]].mean(-1),
        d(55, 285),
        (d(159, 145) + d(386, 374)) / 2,
        d(0, 4),
    ], -1)
    return out / iod[..., None]


def measure_geometry(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Track ``frames`` (T, H, W, 3 uint8 RGB) with MediaPipe FaceMesh in video mode.

    Returns ``(found, geometry)``: (T,) bool, and (T, len(GEOMETRY)) measures (NaN where no
    face was found). Used to check that the generated expressions are visible to the extractor.
    """
    import mediapipe as mp

    t, h, w = frames.shape[:3]
    found = np.zeros(t, bool)
    geo = np.full((t, len(GEOMETRY)), np.nan)
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=False, refine_landmarks=True,
                                         max_num_faces=1) as fm:
        for i, f in enumerate(frames):
            res = fm.process(np.ascontiguousarray(f))
            if res.multi_face_landmarks:
                pts = res.multi_face_landmarks[0].landmark
                lm = np.array([[p.x * w, p.y * h] for p in pts])
                found[i] = True
                geo[i] = geometry_from_landmarks(lm)
    return found, geo
