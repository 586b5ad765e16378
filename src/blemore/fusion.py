"""Combining several feature sources.

* **early** fusion: one head on the concatenation of the sources' pooled features. Each
  source is standardised with statistics of the training clips only (column-wise z-scores,
  so standardising each source and then concatenating is the same as standardising the
  concatenation); the join is by clip id (:func:`blemore.features.join`), never by order.
* **late** fusion: one head per source; their per-clip outputs are combined by a weighted
  mean of probabilities (``mode="prob"``) or of logits (``mode="logit"``).

A fusion strategy tells the runner how to group sources into heads (:meth:`Fusion.groups`),
how to choose combination weights from labelled outputs (:meth:`Fusion.select_weights`;
the runner only ever passes outputs of clips outside the held-out fold), and how to
combine outputs (:meth:`Fusion.combine`). New strategies (e.g. late fusion with weights
learned on inner folds) register with :func:`register_fusion`.
"""
from __future__ import annotations

import inspect
from typing import Any, Sequence

import numpy as np

from blemore.errors import BlemoreError
from blemore.registry import Registry

__all__ = ["FusionError", "FUSIONS", "Fusion", "EarlyFusion", "LateFusion", "register_fusion", "create_fusion", "list_fusions",
           "early_fusion", "late_fusion", "fuse_probabilities"]


class FusionError(BlemoreError, ValueError):
    """An unknown fusion strategy or a bad fusion setting."""


def early_fusion(blocks: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenate row-aligned feature blocks ``[(N, F1), (N, F2), ...] -> (N, F1 + F2 + ...)``."""
    if not blocks:
        raise FusionError("nothing to fuse")
    n = {len(b) for b in blocks}
    if len(n) != 1:
        raise FusionError(f"blocks must have the same number of rows, got {[len(b) for b in blocks]}")
    return np.concatenate([np.asarray(b, dtype=np.float32) for b in blocks], axis=1)


def fuse_probabilities(outputs: Sequence[np.ndarray], weights: Sequence[float] | None = None,
                       mode: str = "prob") -> np.ndarray:
    """Weighted mean of probability arrays (``mode="prob"``) or of their logs, renormalised
    (``mode="logit"``: for softmax outputs the same as averaging logits)."""
    if not outputs:
        raise FusionError("nothing to fuse")
    shapes = {np.shape(o) for o in outputs}
    if len(shapes) != 1:
        raise FusionError(f"outputs to fuse must have one shape, got {sorted(shapes)}")
    w = np.ones(len(outputs)) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(w) != len(outputs) or np.any(w < 0) or w.sum() <= 0:
        raise FusionError(f"need {len(outputs)} non-negative weights with a positive sum, got {list(w)}")
    w = w / w.sum()
    stack = np.stack([np.asarray(o, dtype=np.float64) for o in outputs])
    if mode == "prob":
        out = np.tensordot(w, stack, axes=1)
    elif mode == "logit":
        z = np.tensordot(w, np.log(np.clip(stack, 1e-12, None)), axes=1)
        z -= z.max(axis=-1, keepdims=True)
        out = np.exp(z)
        out /= out.sum(axis=-1, keepdims=True)
    else:
        raise FusionError(f"fusion mode must be 'prob' or 'logit', got {mode!r}")
    return out.astype(np.float32)


def late_fusion(outputs: Sequence[np.ndarray], weights: Sequence[float] | None = None, mode: str = "prob") -> np.ndarray:
    """Weighted mean of per-source probabilities (``prob``) or logits (``logit``)."""
    return fuse_probabilities(outputs, weights, mode)


class Fusion:
    """Base strategy. ``name`` is the registry key."""

    name: str = ""

    def __init__(self, **options: Any):
        self.options = dict(options)

    @classmethod
    def option_names(cls) -> frozenset[str]:
        """The options this strategy takes: its constructor's named parameters (e.g. gated's
        ``top``, late's ``mode``). A runner comparing several fusions with one set of options
        (:func:`blemore.ablation.run_ablation`) gives each the ones it names."""
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        return frozenset(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))

    def groups(self, sources: Sequence[str]) -> list[tuple[str, ...]]:
        """Which sources go into each head."""
        raise NotImplementedError

    def select_weights(self, outputs: Sequence[np.ndarray], true_target: np.ndarray, head, decoder) -> list[float] | None:
        """Combination weights chosen from labelled outputs (one array per group)."""
        return None

    def head_for(self, head, dims: Sequence[int] | None):
        """The head a group trains, given the configured ``head`` and the group's source widths
        (``dims``; None when rebuilding a saved model). Default: ``head`` itself; gated fusion
        wraps it (:mod:`blemore.fusion_gated`)."""
        return head

    def summary(self, exp, cv) -> dict | None:
        """Extra results of this strategy after cross-validation (merged into ``results.json``);
        default None."""
        return None

    def combine(self, outputs: Sequence[np.ndarray], weights: Sequence[float] | None, head) -> np.ndarray:
        """One per-clip output array from the groups' outputs."""
        if len(outputs) == 1:
            return outputs[0]
        return head.fuse(outputs, weights, self.options.get("mode", "prob"))

    def as_dict(self) -> dict:
        return {"kind": self.name, **self.options}


BUILTIN_FUSIONS: tuple[str, ...] = ("blemore.fusion", "blemore.late_fusion", "blemore.fusion_gated",
                                     "blemore.fusion_xattn")
"""The modules that define the built-in strategies (``early``, ``late`` here; ``late-learned``
in :mod:`blemore.late_fusion`; ``gated`` in :mod:`blemore.fusion_gated`; ``xattn``, cross-modal
attention between sequence encoders, in :mod:`blemore.fusion_xattn`); :data:`FUSIONS` imports
them on first lookup."""

FUSIONS: Registry[type[Fusion]] = Registry("fusion", builtins=BUILTIN_FUSIONS, error=FusionError)
"""Fusion name -> strategy class; unknown names raise :class:`FusionError` listing every one."""


# The public names are the registry's own methods: ``@register_fusion("name")`` (class
# decorator), ``list_fusions()``, ``create_fusion(name, **options)``.
register_fusion = FUSIONS.register
list_fusions = FUSIONS.names
create_fusion = FUSIONS.create


@register_fusion("early")
class EarlyFusion(Fusion):
    """All sources in one head (concatenated after per-source standardisation)."""

    def groups(self, sources):
        return [tuple(sources)]


@register_fusion("late")
class LateFusion(Fusion):
    """One head per source; outputs averaged with fixed ``weights`` (default equal) in
    ``mode`` ``"prob"`` or ``"logit"``."""

    def __init__(self, weights: Sequence[float] | None = None, mode: str = "prob", **options: Any):
        if mode not in ("prob", "logit"):
            raise FusionError(f"late fusion mode must be 'prob' or 'logit', got {mode!r}")
        super().__init__(weights=None if weights is None else [float(w) for w in weights], mode=mode, **options)

    def groups(self, sources):
        return [(s,) for s in sources]

    def select_weights(self, outputs, true_target, head, decoder):
        w = self.options.get("weights")
        if w is not None and len(w) != len(outputs):
            raise FusionError(f"late fusion has {len(w)} weights for {len(outputs)} sources")
        return w
