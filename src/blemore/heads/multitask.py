"""``multitask``: separate presence and salience outputs, decoded with calibrated thresholds.

The network has a shared hidden layer and two outputs per clip:

* **presence**: six sigmoid outputs, one per class (multi-label: is anger present? is
  happiness present? ...), trained with binary cross-entropy against the true emotion set;
* **salience**: a dominance score ``d_e`` per emotion; for a blend (a, b) in canonical order
  the predicted share of the first emotion is ``sigmoid(d_a - d_b)``, trained by regression on
  the true proportion (0.3, 0.5 or 0.7; binary cross-entropy with a soft target). Only blend
  clips train the salience output.

Outputs (``output_dim = 12``): ``[presence probabilities (6), dominance scores (6)]`` in
:data:`blemore.labels.EMOTIONS` order (the neutral dominance is unused).

Decoding (:class:`MultitaskDecoder`) uses two calibrated thresholds, like the paper's rule but
on separate outputs: the two classes with the highest presence probability are both predicted
when the second reaches ``alpha`` (and neither is neutral; if neutral is among them the more
probable class is predicted alone), otherwise the first alone; a predicted pair is 50/50 when
``|share - 0.5| <= beta``, otherwise the emotion with the larger share gets 70. Both are chosen
by a vectorised grid search maximising ``0.5 * ACC_presence + 0.5 * ACC_salience`` (alpha on
the paper's grid, beta on ``linspace(0, 0.3, 20)`` by default).

Options: ``hidden`` (512; 0 = linear), ``salience_weight`` (weight of the salience loss) and the
regularisation options of :mod:`blemore.heads.regularise`.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from blemore.decode import PAPER_GRID, TopTwo
from blemore.decoders import Decoder, DecoderFit
from blemore.fusion import FusionError
from blemore.heads.base import HeadError, register_head
from blemore.heads.training import TorchHead
from blemore.heads.regularise import RegularisedMixin, trunk
from blemore.labels import EMOTION_INDEX, EMOTIONS, N_TARGETS, PAIRS, TARGET_IS_BLEND, TARGET_TO_MASK

__all__ = ["MultitaskHead", "MultitaskDecoder", "BETA_GRID", "decode_multitask"]

_N = len(EMOTIONS)
BETA_GRID: np.ndarray = np.linspace(0.0, 0.3, 20)
"""Default grid for the 50/50 threshold on ``|share - 0.5|``."""

# ordered class pair (i, j) -> pair index, or -1 (neutral or i == j)
_PAIR_OF = np.full((_N, _N), -1, dtype=np.int64)
for _p, (_a, _b) in enumerate(PAIRS):
    _PAIR_OF[EMOTION_INDEX[_a], EMOTION_INDEX[_b]] = _PAIR_OF[EMOTION_INDEX[_b], EMOTION_INDEX[_a]] = _p
# per target: the canonical first / second emotion of blends (-1 for singles) and the first's share
_FIRST = np.full(N_TARGETS, -1, dtype=np.int64)
_SECOND = np.full(N_TARGETS, -1, dtype=np.int64)
_SHARE = np.zeros(N_TARGETS, dtype=np.float32)
for _t in range(N_TARGETS):
    if TARGET_IS_BLEND[_t]:
        _p, _r = divmod(_t - _N, 3)
        _FIRST[_t], _SECOND[_t] = EMOTION_INDEX[PAIRS[_p][0]], EMOTION_INDEX[PAIRS[_p][1]]
        _SHARE[_t] = (30, 50, 70)[_r] / 100.0
_PRESENT = ((TARGET_TO_MASK[:, None] >> np.arange(_N)[None, :]) & 1).astype(np.float32)  # (36, 6)


def _split(outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim != 2 or out.shape[1] != 2 * _N:
        raise HeadError(f"multitask outputs must have shape (n, {2 * _N}) "
                         f"(presence probabilities, dominance scores), got {out.shape}")
    if not np.all(np.isfinite(out)):
        raise HeadError("multitask outputs must be finite")
    return out[:, :_N], out[:, _N:]


def _structure(presence: np.ndarray, dominance: np.ndarray):
    """Top two presence classes, single choice, pair index and the first emotion's share."""
    tt = TopTwo.of(presence)
    single = tt.single_choice()
    pair = _PAIR_OF[tt.i1, tt.i2]
    a, b = np.minimum(tt.i1, tt.i2), np.maximum(tt.i1, tt.i2)  # canonical order = index order
    rows = np.arange(len(presence))
    share = 1.0 / (1.0 + np.exp(-(dominance[rows, a] - dominance[rows, b])))
    return tt, single, pair, share


def decode_multitask(outputs: np.ndarray, alpha: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """``(mask, target)`` codes from multitask outputs with thresholds ``alpha`` (presence of
    the second class) and ``beta`` (50/50 band around a share of 0.5)."""
    presence, dominance = _split(outputs)
    tt, single, pair, share = _structure(presence, dominance)
    two = (tt.p2 >= alpha) & ~tt.neutral_pair & (pair >= 0)
    ratio = np.where(np.abs(share - 0.5) <= beta, 1, np.where(share > 0.5, 2, 0))
    target = np.where(two, _N + 3 * np.maximum(pair, 0) + ratio, single).astype(np.int64)
    mask = np.where(two, (1 << tt.i1) | (1 << tt.i2), 1 << single).astype(np.int64)
    return mask, target


class MultitaskDecoder(Decoder):
    """Grid search of (alpha, beta) for :func:`decode_multitask`; ties go to the first pair
    in alpha-major, beta-minor order."""

    def __init__(self, alphas: Sequence[float] | None = None, betas: Sequence[float] | None = None,
                 weights: tuple[float, float] = (0.5, 0.5)):
        self.alphas = np.array(PAPER_GRID if alphas is None else alphas, dtype=np.float64).ravel()
        self.betas = np.array(BETA_GRID if betas is None else betas, dtype=np.float64).ravel()
        if self.alphas.size == 0 or self.betas.size == 0:
            raise HeadError("the alpha and beta grids must not be empty")
        self.weights = weights

    def decode(self, outputs: np.ndarray, params: Mapping) -> tuple[np.ndarray, np.ndarray]:
        return decode_multitask(outputs, float(params["alpha"]), float(params["beta"]))

    def calibrate(self, outputs: np.ndarray, true_target: np.ndarray) -> DecoderFit:
        true_target = np.asarray(true_target, dtype=np.int64).ravel()
        if np.any(true_target < 0) or np.any(true_target >= N_TARGETS):
            raise HeadError("true targets must be valid target indices 0..35")
        presence, dominance = _split(outputs)
        if len(presence) != len(true_target):
            raise HeadError(f"{len(presence)} output rows but {len(true_target)} true targets")
        if len(true_target) == 0:
            raise HeadError("cannot calibrate on zero clips")
        tt, single, pair, share = _structure(presence, dominance)
        true_mask = TARGET_TO_MASK[true_target]
        two = (tt.p2[None, :] >= self.alphas[:, None]) & (~tt.neutral_pair & (pair >= 0))[None, :]  # (A, N)
        pair_mask = (1 << tt.i1) | (1 << tt.i2)
        pred_mask = np.where(two, pair_mask[None, :], (1 << single)[None, :])
        presence_acc = (pred_mask == true_mask[None, :]).mean(axis=1)  # (A,)
        blend = TARGET_IS_BLEND[true_target]
        nb = int(blend.sum())
        if nb:
            ok_pair = (two[:, blend] & (pair_mask[blend] == true_mask[blend])[None, :]).astype(np.float64)
            true_ratio = (true_target[blend] - _N) % 3
            sb = share[blend]
            pred_ratio = np.where(np.abs(sb[None, :] - 0.5) <= self.betas[:, None], 1,
                                  np.where(sb > 0.5, 2, 0)[None, :])  # (B, Nb)
            ok_ratio = (pred_ratio == true_ratio[None, :]).astype(np.float64)
            salience = ok_pair @ ok_ratio.T / nb  # (A, B)
        else:
            salience = np.zeros((len(self.alphas), len(self.betas)))
        wp, ws = self.weights
        score = wp * presence_acc[:, None] + ws * salience
        k = int(np.argmax(score))
        a, b = divmod(k, len(self.betas))
        return DecoderFit({"alpha": float(self.alphas[a]), "beta": float(self.betas[b])},
                          float(presence_acc[a]), float(salience[a, b]), float(score[a, b]))


def _multitask_module_class():
    from torch import nn

    class _Multitask(nn.Module):
        def __init__(self, in_dim: int, hidden: int, dropout: float):
            super().__init__()
            self.body, width = trunk(in_dim, hidden, dropout)
            self.out = nn.Linear(width, 2 * _N)  # presence logits, dominance scores

        def forward(self, x):
            return self.out(self.body(x))

    return _Multitask


@register_head("multitask")
class MultitaskHead(RegularisedMixin, TorchHead):
    """Per-emotion presence (sigmoid) plus pairwise salience regression (see module docstring)."""

    output_dim = 2 * _N

    def __init__(self, hidden: int = 512, salience_weight: float = 1.0, dropout: float = 0.0,
                 label_smoothing: float = 0.0, mixup: float = 0.0, class_balance: bool = False, **options: Any):
        hidden = int(hidden)
        if hidden < 0:
            raise HeadError(f"hidden must be >= 0, got {hidden}")
        if float(salience_weight) < 0:
            raise HeadError(f"salience_weight must be >= 0, got {salience_weight}")
        self._init_regularisation(dropout, label_smoothing, mixup, class_balance)
        super().__init__(hidden=hidden, salience_weight=float(salience_weight), **self.regularisation(), **options)
        self.hidden = hidden
        self.salience_weight = float(salience_weight)

    def prepare(self, X, Y_soft, target) -> None:
        if target is None or np.any(np.asarray(target) < 0) or np.any(np.asarray(target) >= N_TARGETS):
            raise HeadError(f"head {self.name!r} trains on target indices: pass target= with values "
                            f"0..{N_TARGETS - 1} for every row")
        super().prepare(X, Y_soft, target)

    def build_module(self, in_dim: int):
        return self.wrap(_multitask_module_class()(in_dim, self.hidden, self.dropout))

    def loss(self, logits, y_soft, target):
        import torch
        import torch.nn.functional as F

        eps = self.label_smoothing
        dev = logits.device  # tables on the training device (--device)
        present = torch.as_tensor(_PRESENT, device=dev)
        first, second = torch.as_tensor(_FIRST, device=dev), torch.as_tensor(_SECOND, device=dev)
        share = torch.as_tensor(_SHARE, device=dev)

        def row_losses(z, y, t):
            zp, zd = z[:, :_N], z[:, _N:]
            yp = present[t]
            if eps > 0:
                yp = yp * (1.0 - eps) + eps / 2.0
            loss = F.binary_cross_entropy_with_logits(zp, yp, reduction="none").mean(dim=1)
            blend = first[t] >= 0
            if self.salience_weight > 0 and bool(blend.any()):
                rows = torch.nonzero(blend).squeeze(1)
                tb = t[rows]
                diff = zd[rows, first[tb]] - zd[rows, second[tb]]
                ls = F.binary_cross_entropy_with_logits(diff, share[tb], reduction="none")
                loss = loss.index_add(0, rows, self.salience_weight * ls)
            return loss

        return self.mixed_loss(row_losses, logits, y_soft, target)

    def logits_to_outputs(self, logits):
        import torch

        return torch.cat([torch.sigmoid(logits[:, :_N]), logits[:, _N:]], dim=1)

    def outputs_to_proba(self, outputs: np.ndarray) -> np.ndarray:
        """Presence probabilities normalised to sum to one (for reports and plots)."""
        p, _ = _split(outputs)
        return (p / np.clip(p.sum(axis=1, keepdims=True), 1e-12, None)).astype(np.float32)

    def decoder(self, alphas=None, betas=None, weights=(0.5, 0.5)) -> Decoder:
        return MultitaskDecoder(alphas, betas, tuple(weights))  # type: ignore[arg-type]

    def fuse(self, outputs: Sequence[np.ndarray], weights: Sequence[float] | None = None,
             mode: str = "prob") -> np.ndarray:
        """Weighted mean of presence probabilities (``prob``) or of their logits (``logit``),
        and weighted mean of the dominance scores."""
        if not outputs:
            raise FusionError("nothing to fuse")
        parts = [_split(o) for o in outputs]
        w = np.ones(len(parts)) if weights is None else np.asarray(weights, dtype=np.float64)
        if len(w) != len(parts) or np.any(w < 0) or w.sum() <= 0:
            raise FusionError(f"need {len(parts)} non-negative weights with a positive sum, got {list(w)}")
        w = w / w.sum()
        pres = np.stack([p for p, _ in parts])
        dom = np.stack([d for _, d in parts])
        if mode == "prob":
            p = np.tensordot(w, pres, axes=1)
        elif mode == "logit":
            q = np.clip(pres, 1e-7, 1 - 1e-7)
            p = 1.0 / (1.0 + np.exp(-np.tensordot(w, np.log(q / (1 - q)), axes=1)))
        else:
            raise FusionError(f"fusion mode must be 'prob' or 'logit', got {mode!r}")
        return np.concatenate([p, np.tensordot(w, dom, axes=1)], axis=1).astype(np.float32)

