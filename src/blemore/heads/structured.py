"""Structured heads: predict one valid label instead of a distribution over six classes.

* ``structured``: a 16-way **set** classifier (the 6 single classes, then the 10 pairs in
  :data:`blemore.labels.PAIRS` order) and a **pair-conditioned ratio** classifier with three
  classes per pair in the pair's canonical order (:data:`blemore.labels.RATIOS`: index 0 =
  the first emotion at 30 %, i.e. the second dominant; 1 = 50/50; 2 = the first at 70 %),
  trained jointly on a shared hidden layer. ``mix_ang_hap_30_70`` is pair (ang, hap) with
  ratio 0: happiness dominant.

  ``ratio="pair"`` (default) gives each pair its own 3-way softmax. ``ratio="ordinal"``
  shares strength across pairs: every blend emotion gets a dominance score ``d``, and the
  ratio of pair (a, b) is an ordinal logistic model on ``d_a - d_b`` with symmetric cut
  points ``+-tau_p`` (so swapping the emotions mirrors the prediction).

* ``flat36``: one 36-way softmax over the targets (6 singles + 10 pairs x 3 ratios), trained
  with cross-entropy: the simplest structured baseline.

Both output a distribution over the 36 targets (``output_dim = 36``, in
:data:`blemore.labels.TARGETS` order); for ``structured`` it is
``P(set) * P(ratio | pair)``. Decoding (:class:`StructuredDecoder`) always yields a valid label
and needs no thresholds: ``decode="set"`` picks the most probable emotion set (marginal over
ratios), then the most probable ratio inside it; ``decode="joint"`` picks the most probable of
the 36 targets. An optional ``blend_bias`` (added to the log-probability of every pair) can be
calibrated on inner folds with ``blend_bias="calibrate"``.

Options (besides the decoder's): ``hidden`` (512; 0 = linear), ``ratio_weight`` (weight of the
ratio loss, ``structured`` only), and the regularisation options of
:mod:`blemore.heads.regularise` (``dropout``, ``label_smoothing``, ``mixup``, ``class_balance``).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from blemore.decoders import Decoder, DecoderFit
from blemore.heads.base import HeadError, register_head
from blemore.heads.training import TorchHead
from blemore.heads.regularise import RegularisedMixin, trunk
from blemore.labels import (
    EMOTIONS,
    N_SETS,
    N_TARGETS,
    PAIRS,
    RATIOS,
    TARGET_SOFT,
    TARGET_TO_MASK,
    TARGET_TO_SET,
)
from blemore.metrics import score_codes

__all__ = [
    "StructuredHead", "Flat36Head", "StructuredDecoder", "joint_from_parts", "set_marginal",
    "TARGET_PAIR", "TARGET_RATIO", "BIAS_GRID",
]

_N_SINGLE = len(EMOTIONS)
_N_PAIRS = len(PAIRS)
_N_RATIOS = len(RATIOS)

TARGET_PAIR = np.array([-1] * _N_SINGLE + [p for p in range(_N_PAIRS) for _ in RATIOS], dtype=np.int64)
"""Pair index 0..9 of each of the 36 targets (-1 for singles)."""
TARGET_RATIO = np.array([-1] * _N_SINGLE + [r for _ in range(_N_PAIRS) for r in range(_N_RATIOS)], dtype=np.int64)
"""Ratio index 0..2 of each target (-1 for singles): the first (canonical) emotion's salience
is ``RATIOS[ratio]``."""

BIAS_GRID: np.ndarray = np.linspace(-2.0, 2.0, 21)
"""Blend-bias values tried by ``blend_bias="calibrate"`` (log-probability units)."""


def joint_from_parts(set_prob: np.ndarray, ratio_prob: np.ndarray) -> np.ndarray:
    """The 36-target distribution from set probabilities ``(n, 16)`` and per-pair ratio
    probabilities ``(n, 10, 3)``: singles copy their set probability, target ``(p, r)`` gets
    ``P(set = pair p) * P(ratio = r | p)``."""
    set_prob = np.asarray(set_prob, dtype=np.float64)
    ratio_prob = np.asarray(ratio_prob, dtype=np.float64)
    if set_prob.ndim != 2 or set_prob.shape[1] != N_SETS:
        raise HeadError(f"set probabilities must have shape (n, {N_SETS}), got {set_prob.shape}")
    if ratio_prob.shape != (len(set_prob), _N_PAIRS, _N_RATIOS):
        raise HeadError(f"ratio probabilities must have shape ({len(set_prob)}, {_N_PAIRS}, {_N_RATIOS}), "
                         f"got {ratio_prob.shape}")
    pairs = set_prob[:, _N_SINGLE:, None] * ratio_prob
    return np.concatenate([set_prob[:, :_N_SINGLE], pairs.reshape(len(set_prob), -1)], axis=1)


def set_marginal(outputs: np.ndarray) -> np.ndarray:
    """``(n, 36) -> (n, 16)``: the probability of each emotion set (ratios summed)."""
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim != 2 or out.shape[1] != N_TARGETS:
        raise HeadError(f"structured outputs must have shape (n, {N_TARGETS}), got {out.shape}")
    pairs = out[:, _N_SINGLE:].reshape(len(out), _N_PAIRS, _N_RATIOS).sum(axis=2)
    return np.concatenate([out[:, :_N_SINGLE], pairs], axis=1)


def _outputs_to_proba(outputs: np.ndarray) -> np.ndarray:
    """Six-class probabilities: the expected soft target (``sum_t P(t) * soft(t)``)."""
    out = np.asarray(outputs, dtype=np.float64)
    return (out @ TARGET_SOFT.astype(np.float64)).astype(np.float32)


# ----------------------------------------------------------------------------- decoder
class StructuredDecoder(Decoder):
    """Decode a distribution over the 36 targets into one valid label.

    ``mode="set"``: the most probable emotion set (6 singles + 10 pairs, ratios summed),
    plus ``blend_bias`` for pairs, then the most probable ratio of the chosen pair.
    ``mode="joint"``: the most probable target, ``blend_bias`` added to the log-probability of
    the 30 blend targets. Ties go to the lowest index. ``calibrate`` tries ``bias_grid``
    (default: only 0, i.e. no parameters) in order of increasing ``|bias|`` and keeps the first
    best composite score.
    """

    def __init__(self, mode: str = "set", bias_grid: Sequence[float] | None = None,
                 weights: tuple[float, float] = (0.5, 0.5)):
        if mode not in ("set", "joint"):
            raise HeadError(f"structured decode mode must be 'set' or 'joint', got {mode!r}")
        self.mode = mode
        grid = np.array([0.0] if bias_grid is None else bias_grid, dtype=np.float64).ravel()
        if grid.size == 0 or not np.all(np.isfinite(grid)):
            raise HeadError(f"bias_grid must be non-empty and finite, got {list(grid)}")
        self.bias_grid = grid[np.argsort(np.abs(grid), kind="stable")]
        self.weights = weights

    def decode(self, outputs: np.ndarray, params: Mapping) -> tuple[np.ndarray, np.ndarray]:
        out = np.asarray(outputs, dtype=np.float64)
        if out.ndim != 2 or out.shape[1] != N_TARGETS:
            raise HeadError(f"structured outputs must have shape (n, {N_TARGETS}), got {out.shape}")
        if not np.all(np.isfinite(out)):
            raise HeadError("structured outputs must be finite")
        bias = float(params.get("blend_bias", 0.0))
        logp = np.log(np.clip(out, 1e-30, None))
        if self.mode == "joint":
            logp[:, _N_SINGLE:] += bias
            target = np.argmax(logp, axis=1).astype(np.int64)
        else:
            ls = np.log(np.clip(set_marginal(out), 1e-30, None))
            ls[:, _N_SINGLE:] += bias
            s = np.argmax(ls, axis=1)
            pair = np.maximum(s - _N_SINGLE, 0)
            blocks = out[:, _N_SINGLE:].reshape(len(out), _N_PAIRS, _N_RATIOS)
            ratio = np.argmax(blocks[np.arange(len(out)), pair], axis=1)
            target = np.where(s < _N_SINGLE, s, _N_SINGLE + _N_RATIOS * pair + ratio).astype(np.int64)
        return TARGET_TO_MASK[target].astype(np.int64), target

    def calibrate(self, outputs: np.ndarray, true_target: np.ndarray) -> DecoderFit:
        true_target = np.asarray(true_target, dtype=np.int64)
        if len(true_target) != len(outputs):
            raise HeadError(f"{len(outputs)} output rows but {len(true_target)} true targets")
        best: DecoderFit | None = None
        wp, ws = self.weights
        for b in self.bias_grid:
            m, t = self.decode(outputs, {"blend_bias": b})
            s = score_codes(m, t, true_target)
            score = wp * s["acc_presence"] + ws * s["acc_salience"]
            if best is None or score > best.score + 1e-12:
                best = DecoderFit({"blend_bias": float(b)}, s["acc_presence"], s["acc_salience"], score)
        assert best is not None
        return best


def _bias_grid(blend_bias: Any) -> list[float]:
    if isinstance(blend_bias, str):
        if blend_bias != "calibrate":
            raise HeadError(f"blend_bias must be a number or 'calibrate', got {blend_bias!r}")
        return [float(b) for b in BIAS_GRID]
    try:
        return [float(blend_bias)]
    except (TypeError, ValueError):
        raise HeadError(f"blend_bias must be a number or 'calibrate', got {blend_bias!r}") from None


def _check_targets(name: str, target) -> None:
    if target is None or np.any(np.asarray(target) < 0) or np.any(np.asarray(target) >= N_TARGETS):
        raise HeadError(f"head {name!r} trains on target indices: pass target= with values 0..{N_TARGETS - 1} "
                        "for every row")


# ----------------------------------------------------------------------------- heads
class _StructuredBase(RegularisedMixin, TorchHead):
    output_dim = N_TARGETS
    default_decode = "set"

    def __init__(self, hidden: int = 512, decode: str | None = None, blend_bias: Any = 0.0,
                 dropout: float = 0.0, label_smoothing: float = 0.0, mixup: float = 0.0,
                 class_balance: bool = False, **options: Any):
        hidden = int(hidden)
        if hidden < 0:
            raise HeadError(f"hidden must be >= 0, got {hidden}")
        decode = self.default_decode if decode is None else decode
        if decode not in ("set", "joint"):
            raise HeadError(f"decode must be 'set' or 'joint', got {decode!r}")
        self._bias = _bias_grid(blend_bias)
        self._init_regularisation(dropout, label_smoothing, mixup, class_balance)
        super().__init__(hidden=hidden, decode=decode, blend_bias=blend_bias, **self.regularisation(), **options)
        self.hidden = hidden
        self.decode_mode = decode

    def prepare(self, X, Y_soft, target) -> None:
        _check_targets(self.name, target)
        super().prepare(X, Y_soft, target)

    def decoder(self, alphas=None, betas=None, weights=(0.5, 0.5)) -> Decoder:
        """A :class:`StructuredDecoder` (the alpha/beta grids do not apply)."""
        return StructuredDecoder(self.decode_mode, self._bias, tuple(weights))  # type: ignore[arg-type]

    def outputs_to_proba(self, outputs: np.ndarray) -> np.ndarray:
        return _outputs_to_proba(outputs)


@register_head("flat36")
class Flat36Head(_StructuredBase):
    """One softmax over the 36 targets, cross-entropy loss; decoded by argmax (``decode="joint"``)."""

    default_decode = "joint"

    def build_module(self, in_dim: int):
        from torch import nn

        body, width = trunk(in_dim, self.hidden, self.dropout)
        return self.wrap(nn.Sequential(body, nn.Linear(width, N_TARGETS)))

    def loss(self, logits, y_soft, target):
        import torch.nn.functional as F

        eps = self.label_smoothing
        return self.mixed_loss(
            lambda z, y, t: F.cross_entropy(z, t, reduction="none", label_smoothing=eps), logits, y_soft, target)


def _structured_module_class():
    import torch
    from torch import nn

    class _Structured(nn.Module):
        """Shared trunk -> 16 set logits and 10 x 3 ratio logits (log-probabilities for the
        ordinal form), returned side by side as (B, 16 + 30)."""

        def __init__(self, in_dim: int, hidden: int, dropout: float, ratio: str):
            super().__init__()
            self.body, width = trunk(in_dim, hidden, dropout)
            self.set_layer = nn.Linear(width, N_SETS)
            self.ratio_kind = ratio
            if ratio == "pair":
                self.ratio_layer = nn.Linear(width, _N_PAIRS * _N_RATIOS)
            else:
                self.dominance = nn.Linear(width, len(EMOTIONS) - 1)
                self.tau_raw = nn.Parameter(torch.zeros(_N_PAIRS))
                first = torch.tensor([EMOTIONS.index(a) for a, _ in PAIRS])
                second = torch.tensor([EMOTIONS.index(b) for _, b in PAIRS])
                self.register_buffer("first", first, persistent=False)
                self.register_buffer("second", second, persistent=False)

        def forward(self, x):
            h = self.body(x)
            z_set = self.set_layer(h)
            if self.ratio_kind == "pair":
                z_ratio = self.ratio_layer(h)
            else:
                d = self.dominance(h)
                s = d[:, self.first] - d[:, self.second]  # (B, 10): > 0 means the first dominates
                tau = nn.functional.softplus(self.tau_raw) + 1e-3
                c0 = torch.sigmoid(-tau - s)  # P(ratio <= 0) (first at 30)
                c1 = torch.sigmoid(tau - s)  # P(ratio <= 1)
                p = torch.stack([c0, c1 - c0, 1.0 - c1], dim=2).clamp_min(1e-7)
                z_ratio = torch.log(p).reshape(len(x), -1)
            return torch.cat([z_set, z_ratio], dim=1)

    return _Structured


@register_head("structured")
class StructuredHead(_StructuredBase):
    """Joint 16-way set classifier and pair-conditioned 3-way ratio classifier (see the
    module docstring). Loss: ``CE(set) + ratio_weight * CE(ratio | true pair)``, the ratio
    term counting only blend rows (summed over them and divided by the batch size, so the
    loss stays a mean over rows)."""

    def __init__(self, hidden: int = 512, ratio: str = "pair", ratio_weight: float = 1.0, **options: Any):
        if ratio not in ("pair", "ordinal"):
            raise HeadError(f"ratio must be 'pair' or 'ordinal', got {ratio!r}")
        if float(ratio_weight) < 0:
            raise HeadError(f"ratio_weight must be >= 0, got {ratio_weight}")
        super().__init__(hidden=hidden, ratio=ratio, ratio_weight=float(ratio_weight), **options)
        self.ratio = ratio
        self.ratio_weight = float(ratio_weight)

    def build_module(self, in_dim: int):
        return self.wrap(_structured_module_class()(in_dim, self.hidden, self.dropout, self.ratio))

    def loss(self, logits, y_soft, target):
        import torch
        import torch.nn.functional as F

        eps = self.label_smoothing
        dev = logits.device  # tables on the training device (--device)
        t_set = torch.as_tensor(TARGET_TO_SET, device=dev)
        t_pair = torch.as_tensor(TARGET_PAIR, device=dev)
        t_ratio = torch.as_tensor(TARGET_RATIO, device=dev)

        def row_losses(z, y, t):
            z_set, z_ratio = z[:, :N_SETS], z[:, N_SETS:].reshape(len(z), _N_PAIRS, _N_RATIOS)
            loss = F.cross_entropy(z_set, t_set[t], reduction="none", label_smoothing=eps)
            blend = t_pair[t] >= 0
            if self.ratio_weight > 0 and bool(blend.any()):
                rows = torch.nonzero(blend).squeeze(1)
                zr = z_ratio[rows, t_pair[t][rows]]
                lr = F.cross_entropy(zr, t_ratio[t][rows], reduction="none", label_smoothing=eps)
                loss = loss.index_add(0, rows, self.ratio_weight * lr)
            return loss

        return self.mixed_loss(row_losses, logits, y_soft, target)

    def logits_to_outputs(self, logits):
        import torch

        z_set = logits[:, :N_SETS]
        z_ratio = logits[:, N_SETS:].reshape(len(logits), _N_PAIRS, _N_RATIOS)
        p_set = torch.softmax(z_set, dim=1)
        p_ratio = torch.softmax(z_ratio, dim=2)
        pairs = (p_set[:, _N_SINGLE:, None] * p_ratio).reshape(len(logits), -1)
        return torch.cat([p_set[:, :_N_SINGLE], pairs], dim=1)
