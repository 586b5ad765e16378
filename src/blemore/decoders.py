"""Decoders: from a head's per-clip outputs to ``(mask, target)`` prediction codes.

A :class:`Decoder` calibrates its parameters on labelled outputs (maximising the composite
score ``w_p * ACC_presence + w_s * ACC_salience``) and decodes outputs into int64 codes (the
emotion mask and the target index of :mod:`blemore.labels`, ``INVALID`` where none applies):

* :class:`ThresholdDecoder`: the paper's rule for six-class probabilities (top two classes,
  presence threshold alpha, 50/50 gap beta); ``calibrate`` is the vectorised grid search of
  :func:`blemore.decode.calibrate`.
* :class:`ArgmaxTargetDecoder`: for outputs that are a distribution over the 36 targets; no
  parameters.

Heads choose their decoder (:meth:`blemore.heads.base.Head.decoder`); the runner only talks to
this interface. This module sits beside :mod:`blemore.decode` (which it uses) and below the
heads: it imports :mod:`blemore.decode`, :mod:`blemore.metrics` and :mod:`blemore.labels` only.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from blemore.decode import PAPER_GRID, calibrate as _calibrate, decode_probabilities
from blemore.labels import TARGET_TO_MASK
from blemore.metrics import score_codes

__all__ = ["DecoderFit", "Decoder", "ThresholdDecoder", "ArgmaxTargetDecoder"]


@dataclass
class DecoderFit:
    """Calibrated decoder parameters and the scores they reach on the calibration data."""

    params: dict
    acc_presence: float
    acc_salience: float
    score: float


class Decoder(abc.ABC):
    """Turns per-clip outputs into ``(mask, target)`` codes; may calibrate parameters."""

    @abc.abstractmethod
    def calibrate(self, outputs: np.ndarray, true_target: np.ndarray) -> DecoderFit:
        """Choose parameters on labelled outputs (maximising the composite score)."""

    @abc.abstractmethod
    def decode(self, outputs: np.ndarray, params: Mapping) -> tuple[np.ndarray, np.ndarray]:
        """``(mask, target)`` int64 codes."""

    def scores(self, outputs_per_epoch: np.ndarray, true_target: np.ndarray) -> list[DecoderFit]:
        """Calibrate on each epoch's outputs ``(E, n, K)``."""
        return [self.calibrate(o, true_target) for o in outputs_per_epoch]


class ThresholdDecoder(Decoder):
    """The paper's rule: top two classes, presence threshold alpha, 50/50 gap beta.

    ``calibrate`` is the vectorised grid search of :func:`blemore.decode.calibrate`
    (the paper's 20 x 20 grid by default; ties go to the first pair, alpha-major)."""

    def __init__(self, alphas: Sequence[float] | None = None, betas: Sequence[float] | None = None,
                 weights: tuple[float, float] = (0.5, 0.5)):
        self.alphas = PAPER_GRID if alphas is None else np.asarray(alphas, dtype=np.float64)
        self.betas = PAPER_GRID if betas is None else np.asarray(betas, dtype=np.float64)
        self.weights = weights

    def calibrate(self, outputs: np.ndarray, true_target: np.ndarray) -> DecoderFit:
        c = _calibrate(outputs, true_target, self.alphas, self.betas, self.weights)
        return DecoderFit({"alpha": c.alpha, "beta": c.beta}, c.acc_presence, c.acc_salience, c.score)

    def decode(self, outputs: np.ndarray, params: Mapping) -> tuple[np.ndarray, np.ndarray]:
        return decode_probabilities(outputs, float(params["alpha"]), float(params["beta"]))


class ArgmaxTargetDecoder(Decoder):
    """For heads whose outputs are a distribution over the 36 targets: predict the most
    probable target; no parameters (always a valid label)."""

    def __init__(self, weights: tuple[float, float] = (0.5, 0.5)):
        self.weights = weights

    def calibrate(self, outputs: np.ndarray, true_target: np.ndarray) -> DecoderFit:
        m, t = self.decode(outputs, {})
        s = score_codes(m, t, true_target)
        wp, ws = self.weights
        return DecoderFit({}, s["acc_presence"], s["acc_salience"], wp * s["acc_presence"] + ws * s["acc_salience"])

    def decode(self, outputs: np.ndarray, params: Mapping) -> tuple[np.ndarray, np.ndarray]:
        t = np.argmax(np.asarray(outputs), axis=1).astype(np.int64)
        return TARGET_TO_MASK[t].astype(np.int64), t
