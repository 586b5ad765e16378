"""Late fusion with learned weights (``fusion = "late-learned"``).

One head per feature source (as in ``late`` fusion); their per-clip outputs are combined by a
weighted mean (of probabilities, ``mode="prob"``, or of logits, ``mode="logit"``, through the
head's own :meth:`~blemore.heads.base.Head.fuse`, so structured and multi-task heads fuse
their own kind of output). The weights are chosen from a grid on the probability simplex
(step ``step``, default 0.1) by the same composite score that selects everything else, with
the decoder recalibrated for every candidate.

Which clips the weights are chosen on is the runner's business (:mod:`blemore.experiment`):
under nested selection the outputs it passes to :meth:`LearnedLateFusion.select_weights` are
those of the inner folds only, so the held-out fold never influences its own weights; under
``selection="paper"`` they are the held-out fold's own outputs (optimistic, as published).

Importing this module registers the strategy with :func:`blemore.fusion.register_fusion`.
"""
from __future__ import annotations

import itertools
from typing import Any, Sequence

import numpy as np

from blemore.fusion import Fusion, FusionError, register_fusion

__all__ = ["LearnedLateFusion", "weight_grid", "choose_weights"]


def weight_grid(n: int, step: float = 0.1) -> np.ndarray:
    """All weight vectors of ``n`` sources on the simplex with the given step, ordered by
    distance from equal weights (so ties in score go to the most even weights)."""
    if n < 1:
        raise FusionError(f"need at least one source, got {n}")
    m = int(round(1.0 / step))
    if m < 1 or abs(m * step - 1.0) > 1e-9:
        raise FusionError(f"step must divide 1 (e.g. 0.1, 0.125, 0.25), got {step}")
    if n == 1:
        return np.ones((1, 1))
    combos = [c for c in itertools.product(range(m + 1), repeat=n - 1) if sum(c) <= m]
    W = np.array([list(c) + [m - sum(c)] for c in combos], dtype=np.float64) / m
    d = np.abs(W - 1.0 / n).sum(axis=1)
    order = np.lexsort((np.arange(len(W)), np.round(d, 12)))
    return W[order]


def choose_weights(outputs: Sequence[np.ndarray], true_target: np.ndarray, head, decoder,
                   step: float = 0.1, mode: str = "prob") -> tuple[list[float], float]:
    """The weights (and their composite score) that maximise the decoder's calibrated score
    of the fused outputs on ``true_target``; the first best in :func:`weight_grid` order wins."""
    if not outputs:
        raise FusionError("nothing to fuse")
    best_w, best = None, -np.inf
    for w in weight_grid(len(outputs), step):
        fused = head.fuse(list(outputs), list(w), mode)
        s = decoder.calibrate(fused, true_target).score
        if s > best + 1e-12:
            best_w, best = w, s
    assert best_w is not None
    return [float(x) for x in best_w], float(best)


@register_fusion("late-learned")
class LearnedLateFusion(Fusion):
    """One head per source; weights chosen on labelled outputs from a simplex grid."""

    def __init__(self, step: float = 0.1, mode: str = "prob", **options: Any):
        if mode not in ("prob", "logit"):
            raise FusionError(f"late fusion mode must be 'prob' or 'logit', got {mode!r}")
        weight_grid(2, float(step))  # validates the step
        super().__init__(step=float(step), mode=mode, **options)

    def groups(self, sources):
        return [(s,) for s in sources]

    def select_weights(self, outputs, true_target, head, decoder):
        if len(outputs) == 1:
            return [1.0]
        w, _ = choose_weights(outputs, true_target, head, decoder, self.options["step"], self.options["mode"])
        return w
