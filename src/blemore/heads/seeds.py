"""Seed ensembles (``--seeds K`` on ``benchmark`` / ``train``): K copies of a head trained with
different seeds on the same rows, their outputs averaged.

:class:`SeedsHead` is a head wrapper (:data:`blemore.heads.base.HEAD_WRAPPERS`, name
``"seeds"``): ``fit`` trains each copy with seed ``seed + 7919 * i`` and records the mean of
their outputs after every evaluated epoch (so the runner chooses the epoch and thresholds for
the averaged model, exactly as for one head); ``predict_outputs`` averages the copies' per-clip
outputs. Everything else (loss, decoder, fusion, the rows it wants) is the wrapped head's. Its
saved state holds every copy's state under ``seed0``, ``seed1``, ... and ``seeds_k``; a model
bundle whose state has ``seeds_k`` is rebuilt as a seed ensemble.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

import numpy as np

from blemore.heads.base import DelegatesToBase, Head, HeadError, register_head_wrapper
from blemore.heads.training import FitHistory

__all__ = ["SeedsHead"]


@register_head_wrapper("seeds")
class SeedsHead(DelegatesToBase, Head):
    """``k`` copies of ``base`` (untrained), averaged."""

    def __init__(self, base: Head, k: int = 2):
        if int(k) < 1:
            raise HeadError(f"seeds must be >= 1, got {k}")
        super().__init__(**base.options)
        self.base, self.k = base, int(k)
        self.name = base.name  # type: ignore[misc]
        self.output_dim = base.output_dim  # type: ignore[misc]
        self.members = [copy.deepcopy(base) for _ in range(self.k)]

    def fit(self, X, Y_soft, *, target=None, groups=None, eval_sets=None, spec=None, seed=0, progress=None):
        tick = None if progress is None else (lambda n: progress(n / self.k))
        hists = [m.fit(X, Y_soft, target=target, groups=groups, eval_sets=eval_sets, spec=spec,
                       seed=seed + 7919 * i, progress=tick) for i, m in enumerate(self.members)]
        h = FitHistory(epochs=list(hists[0].epochs))
        h.outputs = {k: np.mean([x.outputs[k] for x in hists], axis=0).astype(np.float32) for k in hists[0].outputs}
        h.train_loss = list(np.mean([x.train_loss for x in hists], axis=0))
        return h

    def predict_outputs(self, X, owner=None):
        return np.mean([m.predict_outputs(X, owner) for m in self.members], axis=0).astype(np.float32)

    def __getattr__(self, name: str) -> Any:  # e.g. gates() of a gated head: the first copy's
        if name in ("members", "base"):
            raise AttributeError(name)
        return getattr(self.members[0], name)

    def state_dict(self) -> dict[str, Any]:
        return {"seeds_k": self.k, **{f"seed{i}": m.state_dict() for i, m in enumerate(self.members)}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        k = int(np.asarray(state["seeds_k"]))
        self.k = k
        self.members = [copy.deepcopy(self.base) for _ in range(k)]
        for i, m in enumerate(self.members):
            m.load_state_dict(state[f"seed{i}"])
