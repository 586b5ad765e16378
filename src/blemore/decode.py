"""From a probability vector over the six classes to a prediction, and the (alpha, beta) search.

The paper's rules (FACTS.md, pipeline step 6), for each clip:

1. keep the top two classes (ties in probability keep the lower class index first);
2. presence threshold ``alpha``: keep those with ``p >= alpha``; if even the top one is
   below ``alpha``, predict the top one alone;
3. if neutral survives together with another class, predict the larger one alone
   (a tie goes to the emotion, not neutral);
4. two survivors: ``|p1 - p2| <= beta`` gives 50/50, otherwise the larger gets 70 and
   the smaller 30. A single prediction carries salience 100.

Everything is vectorised: decoding a whole grid of (alpha, beta) pairs is broadcasting over
the top-two probabilities and their gap, and the salience score of all pairs is one
matrix product, so the paper's 20 x 20 search costs well under a millisecond per pair.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from blemore._io import atomic_path
from blemore.labels import (
    EMOTION_INDEX,
    EMOTIONS,
    INVALID,
    NEUTRAL,
    PAIRS,
    TARGET_IS_BLEND,
    TARGET_TO_MASK,
    TARGETS,
    Label,
)
from blemore.errors import BlemoreError
from blemore.predictions import read_probabilities

PAPER_GRID: np.ndarray = np.linspace(0.05, 0.95, 20)
"""The paper's grid for both alpha and beta."""


class DecodeError(BlemoreError, ValueError):
    """Probabilities, targets or threshold grids that cannot be decoded or calibrated on."""

_NEU = EMOTION_INDEX[NEUTRAL]
_N = len(EMOTIONS)
# (i, j) ordered class indices -> pair index (or -1), and whether i is the canonical first.
_PAIR_OF = np.full((_N, _N), -1, dtype=np.int64)
_FIRST_IS_I = np.zeros((_N, _N), dtype=bool)
for _p, (_a, _b) in enumerate(PAIRS):
    _ia, _ib = EMOTION_INDEX[_a], EMOTION_INDEX[_b]
    _PAIR_OF[_ia, _ib] = _PAIR_OF[_ib, _ia] = _p
    _FIRST_IS_I[_ia, _ib] = True


@dataclass
class TopTwo:
    """Per clip: the top two classes and probabilities (p1 >= p2)."""

    i1: np.ndarray
    i2: np.ndarray
    p1: np.ndarray
    p2: np.ndarray

    @classmethod
    def of(cls, probs: np.ndarray) -> "TopTwo":
        probs = np.asarray(probs, dtype=np.float64)
        if probs.ndim != 2 or probs.shape[1] != _N:
            raise DecodeError(f"probabilities must have shape (n, {_N}) in the order {EMOTIONS}, got {probs.shape}")
        if not np.all(np.isfinite(probs)):
            bad = np.flatnonzero(~np.isfinite(probs).all(axis=1))
            raise DecodeError(f"probabilities must be finite; {len(bad)} row(s) are not, first rows: {bad[:10].tolist()}")
        order = np.argsort(-probs, axis=1, kind="stable")[:, :2]
        i1, i2 = order[:, 0], order[:, 1]
        rows = np.arange(len(probs))
        return cls(i1, i2, probs[rows, i1], probs[rows, i2])

    @property
    def neutral_pair(self) -> np.ndarray:
        return (self.i1 == _NEU) | (self.i2 == _NEU)

    def single_choice(self) -> np.ndarray:
        """Class predicted alone when only one survives: the top one, except that a
        neutral/emotion tie goes to the emotion."""
        tie_to_emotion = (self.i1 == _NEU) & (self.p1 == self.p2)
        return np.where(tie_to_emotion, self.i2, self.i1)


def _codes(tt: TopTwo, two: np.ndarray, equal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask, target) given which clips predict two classes and which blends are 50/50.

    ``two`` and ``equal`` broadcast together (e.g. (A, 1, N) and (1, B, N))."""
    single = tt.single_choice()
    pair = _PAIR_OF[tt.i1, tt.i2]
    first_is_i1 = _FIRST_IS_I[tt.i1, tt.i2]
    # ratio index: salience of the canonical first emotion, 30/50/70 -> 0/1/2
    ratio = np.where(equal, 1, np.where(first_is_i1, 2, 0))
    target = np.where(two, 6 + 3 * np.maximum(pair, 0) + ratio, single)
    mask = np.where(two, (1 << tt.i1) | (1 << tt.i2), 1 << single)
    return mask.astype(np.int64), target.astype(np.int64)


def _check_thresholds(**values) -> None:
    bad = [f"{name}={np.asarray(v).ravel()[~np.isfinite(np.asarray(v, dtype=np.float64).ravel())][:3].tolist()}"
           for name, v in values.items() if not np.all(np.isfinite(np.asarray(v, dtype=np.float64)))]
    if bad:
        raise DecodeError("decoding thresholds must be finite numbers; got " + ", ".join(bad))


def decode_probabilities(probs: np.ndarray, alpha: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Decode (n, 6) probabilities into ``(mask, target)`` codes with the paper's rules.
    ``alpha``/``beta`` are numbers (or per-clip arrays); NaN or infinite thresholds are refused."""
    _check_thresholds(alpha=alpha, beta=beta)
    tt = TopTwo.of(probs)
    two = (tt.p2 >= alpha) & ~tt.neutral_pair
    equal = np.abs(tt.p1 - tt.p2) <= beta
    return _codes(tt, two, equal)


def decode_to_labels(probs: np.ndarray, alpha: float, beta: float) -> list[Label]:
    _, target = decode_probabilities(probs, alpha, beta)
    return [TARGETS[t] for t in target]


def decode_to_predictions(clip_ids: Sequence[str], probs: np.ndarray, alpha: float, beta: float) -> dict:
    """The challenge dict ``{clip_id: [{"emotion", "salience"}, ...]}``."""
    labels = decode_to_labels(probs, alpha, beta)
    return {cid: lab.to_prediction() for cid, lab in zip(clip_ids, labels)}


@dataclass
class Calibration:
    """Result of the (alpha, beta) grid search."""

    alpha: float
    beta: float
    acc_presence: float
    acc_salience: float
    score: float
    presence_only: float
    salience_only: float
    alphas: np.ndarray
    betas: np.ndarray
    presence_grid: np.ndarray  # (A,)  presence depends on alpha only
    salience_grid: np.ndarray  # (A, B)

    def as_dict(self, grid: bool = False) -> dict:
        d = {k: v for k, v in asdict(self).items() if not isinstance(v, np.ndarray)}
        d = {k: float(v) for k, v in d.items()}
        if grid:
            d.update(alphas=self.alphas.tolist(), betas=self.betas.tolist(),
                     presence_grid=self.presence_grid.tolist(), salience_grid=self.salience_grid.tolist())
        return d


def calibrate(
    probs: np.ndarray,
    true_target: np.ndarray,
    alphas: Sequence[float] | None = None,
    betas: Sequence[float] | None = None,
    weights: tuple[float, float] = (0.5, 0.5),
) -> Calibration:
    """Grid-search (alpha, beta) maximising ``w_p * ACC_presence + w_s * ACC_salience``.

    Ties go to the first pair in alpha-major, beta-minor order, as in the paper. Also
    reports the best presence-only and salience-only scores over the grid.
    """
    alphas = np.array(PAPER_GRID if alphas is None else alphas, dtype=np.float64).ravel()
    betas = np.array(PAPER_GRID if betas is None else betas, dtype=np.float64).ravel()
    if alphas.size == 0 or betas.size == 0:
        raise DecodeError("the alpha and beta grids must not be empty")
    _check_thresholds(alphas=alphas, betas=betas)
    true_target = np.asarray(true_target, dtype=np.int64).ravel()
    if np.any(true_target < 0) or np.any(true_target >= len(TARGETS)):
        raise DecodeError("true targets must be valid target indices 0..35")
    tt = TopTwo.of(probs)
    n = len(true_target)
    if n == 0:
        raise DecodeError("cannot calibrate on zero clips")
    if len(tt.i1) != n:
        raise DecodeError(f"{len(tt.i1)} probability rows but {n} true targets")
    true_mask = TARGET_TO_MASK[true_target]
    blend = TARGET_IS_BLEND[true_target]
    nb = int(blend.sum())

    two = (tt.p2[None, :] >= alphas[:, None]) & ~tt.neutral_pair[None, :]  # (A, N)
    single = tt.single_choice()
    pair_mask = (1 << tt.i1) | (1 << tt.i2)
    pred_mask = np.where(two, pair_mask[None, :], (1 << single)[None, :])
    presence = (pred_mask == true_mask[None, :]).mean(axis=1)  # (A,)

    if nb:
        # A blend clip is salience-correct iff it predicts two classes (alpha), the pair is
        # right (alpha-independent), and the ratio is right (beta only): a product of a
        # (A, Nb) and a (B, Nb) indicator matrix.
        tb = true_target[blend]
        pair_ok = pair_mask[blend] == true_mask[blend]
        blend_ok = (two[:, blend] & pair_ok[None, :]).astype(np.float64)  # (A, Nb)
        true_ratio = (tb - 6) % 3
        first_is_i1 = _FIRST_IS_I[tt.i1[blend], tt.i2[blend]]
        unequal_ratio = np.where(first_is_i1, 2, 0)
        gap = np.abs(tt.p1[blend] - tt.p2[blend])
        equal = gap[None, :] <= betas[:, None]  # (B, Nb)
        pred_ratio = np.where(equal, 1, unequal_ratio[None, :])
        ratio_ok = (pred_ratio == true_ratio[None, :]).astype(np.float64)  # (B, Nb)
        salience = (blend_ok @ ratio_ok.T) / nb  # (A, B)
    else:
        salience = np.zeros((len(alphas), len(betas)))

    wp, ws = weights
    score = wp * presence[:, None] + ws * salience
    k = int(np.argmax(score))  # first maximum in C order = alpha-major, beta-minor
    a, b = divmod(k, len(betas))
    return Calibration(
        alpha=float(alphas[a]), beta=float(betas[b]),
        acc_presence=float(presence[a]), acc_salience=float(salience[a, b]), score=float(score[a, b]),
        presence_only=float(presence.max()), salience_only=float(salience.max()),
        alphas=alphas, betas=betas, presence_grid=presence, salience_grid=salience,
    )


# -- probability files -------------------------------------------------------------------
def load_probabilities(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Read a probability table: ids as written and an (n, 6) float64 array in
    :data:`~blemore.labels.EMOTIONS` order. Accepts blemore's own CSVs (``clip_id`` +
    ``p_ang``...) and the official form (``filename`` + ``ang``...); see
    :func:`blemore.predictions.read_probabilities`, which this calls."""
    ids, proba = read_probabilities(path)
    return ids, proba


def save_probabilities(path: str | os.PathLike, clip_ids: Sequence[str], probs: np.ndarray) -> Path:
    """Write ``filename`` + one column per emotion code, atomically (read back by
    :func:`load_probabilities`)."""
    import pandas as pd

    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape != (len(clip_ids), _N):
        raise DecodeError(f"probabilities must have shape ({len(clip_ids)}, {_N}), got {probs.shape}")
    df = pd.DataFrame(probs, columns=list(EMOTIONS))
    df.insert(0, "filename", list(clip_ids))
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        df.to_csv(fh, index=False)  # full precision: decoding at a threshold must not move
    return path


__all__ = ["DecodeError", "PAPER_GRID", "load_probabilities", "save_probabilities", "TopTwo", "decode_probabilities", "decode_to_labels",
           "decode_to_predictions", "Calibration", "calibrate", "INVALID"]
