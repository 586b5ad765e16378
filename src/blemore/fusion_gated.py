"""Selective (gated) fusion of sources: ``--fusion gated`` with options ``top=N`` (sources kept
per clip, default 1), ``shared`` (width of the shared space; default 256 for pooled heads, a
sequence head's ``hidden`` for sequence heads, which refuse another) and the training-only
rank-aware gate terms ``rank`` (weight, default 1; 0 = off), ``balance`` (load-balancing weight,
default 0.01) and ``tau`` (temperature of the ranking target, default 0.1), explained in
:mod:`blemore.heads.gated` (``--gate-top``, ``--gate-rank``, ``--gate-balance`` on the command line).

After Lee et al. (FG 2026 BLEMORE challenge, 2nd place): per-source projections into a shared
space, a per-clip gate over sources, the top-N fused (the network: :mod:`blemore.heads.gated`).
This strategy puts all sources in one group and asks the configured head to be wrapped
(``head.wrapped("gated", dims=..., top=..., shared=...)``), so the wrapped head keeps its own
loss, outputs and decoder. :meth:`GatedFusion.summary` adds to ``results.json`` (and
``results.md``), per source and emotion configuration, how often the source was selected and
its mean gate weight, measured with each outer cross-validation model on its held-out fold
(clips it was not trained on). No torch at import.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from blemore.fusion import Fusion, FusionError, register_fusion
from blemore.labels import TARGETS

__all__ = ["GatedFusion", "gate_summary"]


def gate_summary(gates: np.ndarray, true_target: np.ndarray, sources: Sequence[str]) -> dict:
    """Per source: overall and per emotion configuration (true label), the share of clips where
    the source was selected (gate > 0) and its mean gate weight."""
    g = np.asarray(gates, dtype=np.float64)
    t = np.asarray(true_target)
    out: dict[str, Any] = {"sources": list(sources), "overall": {}, "per_configuration": {}}
    for i, s in enumerate(sources):
        out["overall"][s] = {"selected": float((g[:, i] > 0).mean()) if len(g) else 0.0,
                             "weight": float(g[:, i].mean()) if len(g) else 0.0}
    for k in sorted(set(int(x) for x in t if x >= 0)):
        m = t == k
        out["per_configuration"][TARGETS[k].name()] = {
            s: {"selected": float((g[m, i] > 0).mean()), "weight": float(g[m, i].mean()), "n": int(m.sum())}
            for i, s in enumerate(sources)}
    return out


@register_fusion("gated")
class GatedFusion(Fusion):
    """All sources in one gated head; ``top`` sources kept per clip; ``shared`` projection width."""

    def __init__(self, top: int = 1, shared: int | None = None, rank: float = 1.0, balance: float = 0.01,
                 tau: float = 0.1, **options: Any):
        problems = []
        if int(top) < 1:
            problems.append(f"top must be >= 1, got {top}")
        if shared is not None and int(shared) < 1:
            problems.append(f"shared must be >= 1, got {shared}")
        problems += [f"{k} must be >= 0, got {v}" for k, v in (("rank", rank), ("balance", balance))
                     if not float(v) >= 0]
        if not float(tau) > 0:
            problems.append(f"tau must be > 0, got {tau}")
        if problems:
            raise FusionError("gated fusion: " + "; ".join(problems))
        super().__init__(top=int(top), shared=None if shared is None else int(shared), rank=float(rank),
                         balance=float(balance), tau=float(tau), **options)

    def groups(self, sources):
        return [tuple(sources)]

    def head_for(self, head, dims: Sequence[int] | None):
        o = self.options
        return head.wrapped("gated", dims=dims, top=o["top"], shared=o["shared"], rank=o["rank"],
                            balance=o["balance"], tau=o["tau"])

    def summary(self, exp, cv: Mapping[str, Any]) -> dict | None:
        """Gate statistics of each outer model on its held-out fold."""
        gates, true = [], []
        for f in cv["folds"]:
            part = exp.jobs[frozenset({f["fold"]})].parts[0]
            X, _, rc = exp._rows(part.sources, f["positions"])
            X = part.chain.transform(X, clip_ids=exp.clip_ids[rc].tolist(), groups=exp.actor[rc].tolist())
            gates.append(part.head.gates(X))
            true.append(exp.target[f["positions"]])
        if not gates:
            return None
        out = gate_summary(np.concatenate(gates), np.concatenate(true), list(exp.groups[0]))
        out["note"] = ("measured with each outer model (trained for the full length) on its held-out fold; "
                       f"top={self.options['top']} of {len(exp.groups[0])} sources per clip; gate trained with "
                       f"rank={self.options['rank']:g}, balance={self.options['balance']:g}")
        return {"gating": out}
