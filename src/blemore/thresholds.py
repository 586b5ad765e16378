"""Per-actor decoding thresholds (``--thresholds global|per-actor``), chosen without labels of the
evaluated actor.

The paper decodes every clip with one pair (alpha, beta). Actors differ in expressivity, so the
same pair makes one actor's clips look like blends too often and another's never (the 6th-place
challenge entry saw beta range from 0.05 to 0.43 across folds). ``per-actor`` keeps the global
pair's *meaning* and moves its value per actor:

1. On the selection data (labelled, never the evaluated fold) the global pair is chosen as
   usual; :meth:`ActorThresholds.fit` records where it sits in those outputs' distributions:
   ``q_alpha`` = share of clips whose second-highest probability ``p2`` is below alpha, and
   ``q_beta`` = share whose gap ``p1 - p2`` is at most beta (no labels used).
2. For an evaluated actor (or identity group) with ``n`` clips, its own outputs give the
   quantiles at the same levels, ``alpha* = quantile(p2, q_alpha)``, ``beta* = quantile(gap,
   q_beta)``, shrunk towards the global pair: ``alpha_a = w alpha* + (1 - w) alpha`` with
   ``w = n / (n + shrink)`` (default ``shrink`` 20 clips).
3. Evaluated clips of no known actor (the official test clips are anonymised) are split into
   **identity groups** by the clustering ``--actor-norm`` uses
   (:func:`blemore.normalise.cluster_unknown`): :func:`fit_identity` learns identity directions
   from the *training* actors' features (every source's rows, averaged per clip:
   :func:`blemore.normalise.identity_rows`), the unknown clips evaluated together are projected onto them and
   Ward-clustered (``identity_groups``: ``"auto"`` silhouette, ``"size"`` or a number; the
   ``--identity-groups`` option), and each group is decoded like an actor. Without identity
   directions (fewer than 2 training actors) they keep the global pair.

This is transductive like ``--actor-norm``: an actor's thresholds depend on the predicted
outputs of all of that actor's evaluated clips (never on their labels). Only decoders with
``alpha``/``beta`` parameters (the paper's rule) are adapted; others decode as before.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from blemore.errors import BlemoreError
from blemore.features import FeatureError, FeatureSet
from blemore.normalise import IdentityProjector, cluster_unknown, identity_rows, is_unknown_group

__all__ = ["THRESHOLD_MODES", "ActorThresholds", "ThresholdError", "top_two_stats", "fit_identity"]

THRESHOLD_MODES = ("global", "per-actor")


class ThresholdError(BlemoreError, ValueError):
    """A bad thresholds mode or setting."""


def top_two_stats(outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(p2, gap)`` per clip: the second-highest probability and ``p1 - p2``."""
    o = np.sort(np.asarray(outputs, dtype=np.float64), axis=1)
    return o[:, -2], o[:, -1] - o[:, -2]


def fit_identity(fs: FeatureSet, pos: np.ndarray, actors: Sequence[Any],
                 frames: int | None = None) -> IdentityProjector | None:
    """Identity directions learned from the clips ``pos`` of known ``actors`` (the training
    clips; :meth:`blemore.normalise.IdentityProjector.fit` on :func:`identity_rows`), or None
    with fewer than 2 known actors."""
    known = np.array([not is_unknown_group(a) for a in actors], dtype=bool)
    if len({str(a) for a, k in zip(actors, known) if k}) < 2:
        return None
    pos = np.asarray(pos, dtype=np.int64)[known]
    return IdentityProjector.fit(identity_rows(fs, pos, frames), [str(a) for a, k in zip(actors, known) if k])


class ActorThresholds:
    """``mode="global"``: the decoder's own pair for every clip (the paper); ``"per-actor"``:
    see the module docstring (``identity_groups``: how many identity groups the evaluated
    clips of unknown actors are clustered into)."""

    def __init__(self, mode: str = "global", shrink: float = 20.0, identity_groups: int | str = "auto"):
        problems = []
        if mode not in THRESHOLD_MODES:
            problems.append(f"thresholds must be one of {', '.join(THRESHOLD_MODES)}, got {mode!r}")
        if not shrink >= 0:
            problems.append(f"shrink must be >= 0, got {shrink}")
        if not (identity_groups in ("auto", "size") or (isinstance(identity_groups, int)
                                                         and not isinstance(identity_groups, bool) and identity_groups >= 1)):
            problems.append(f"identity_groups must be a positive integer, 'auto' or 'size', got {identity_groups!r}")
        if problems:
            raise ThresholdError("; ".join(problems))
        self.mode, self.shrink, self.identity_groups = mode, float(shrink), identity_groups
        self.log: list[dict[str, Any]] = []  # per decode call: group -> (alpha, beta, n)
        self.identity: list[dict[str, Any]] = []  # per resolve_groups call that met unknown actors

    def resolve_groups(self, actors: Sequence[Any], projector: IdentityProjector | None,
                       rows: Callable[[], np.ndarray]) -> list[Any]:
        """The group of every evaluated clip: its actor, or ``"cluster:<k>"`` for clips of unknown
        actor (None, NaN, ``""``), found together by clustering ``rows()`` (their
        :func:`identity_rows`, computed only when needed) on ``projector``'s identity
        directions. Without a projector they stay None (the global pair). Appends what was
        done to :attr:`identity` when a clip's actor was unknown."""
        actors = list(actors)
        unknown = [is_unknown_group(a) for a in actors]
        if not self.active or not any(unknown):
            return actors
        info: dict[str, Any] = {"clips": int(sum(unknown)), "identity_groups": self.identity_groups}
        if projector is None:
            self.identity.append({**info, "groups": 0, "clustered": False})
            return [None if u else a for a, u in zip(actors, unknown)]
        try:
            out, found = cluster_unknown(rows(), actors, projector, self.identity_groups)
        except FeatureError as e:
            raise ThresholdError(f"per-actor thresholds: {e}") from None
        self.identity.append({**info, "groups": found, "clustered": True})
        return [o if u else a for a, o, u in zip(actors, out, unknown)]

    @property
    def active(self) -> bool:
        return self.mode == "per-actor"

    def fit(self, outputs: np.ndarray, params: Mapping) -> dict:
        """Extra parameters from the selection outputs at the chosen pair (label-free)."""
        if not self.active or "alpha" not in params or "beta" not in params or len(outputs) == 0:
            return {}
        p2, gap = top_two_stats(outputs)
        return {"q_alpha": float((p2 < float(params["alpha"])).mean()),
                "q_beta": float((gap <= float(params["beta"])).mean())}

    def pair_for(self, outputs: np.ndarray, params: Mapping) -> tuple[float, float]:
        """The shrunk (alpha, beta) of one group's outputs."""
        a, b = float(params["alpha"]), float(params["beta"])
        n = len(outputs)
        if n == 0:
            return a, b
        p2, gap = top_two_stats(outputs)
        w = n / (n + self.shrink)
        a_star = float(np.quantile(p2, np.clip(params["q_alpha"], 0.0, 1.0)))
        b_star = float(np.quantile(gap, np.clip(params["q_beta"], 0.0, 1.0)))
        return w * a_star + (1 - w) * a, w * b_star + (1 - w) * b

    def decode(self, decoder, outputs: np.ndarray, params: Mapping,
               groups: Sequence[Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(mask, target)`` codes: the decoder's own for ``global`` (or without groups or
        fitted quantiles), else each group decoded with its own pair."""
        if not self.active or groups is None or "q_alpha" not in params:
            return decoder.decode(outputs, params)
        outputs = np.asarray(outputs)
        g = np.asarray([None if x is None or (isinstance(x, float) and np.isnan(x)) else str(x) for x in groups],
                       dtype=object)
        mask = np.zeros(len(outputs), dtype=np.int64)
        target = np.zeros(len(outputs), dtype=np.int64)
        used: dict[str, Any] = {}
        for key in dict.fromkeys(g.tolist()):
            rows = np.flatnonzero(g == key) if key is not None else np.flatnonzero([x is None for x in g])
            if key is None:
                a, b = float(params["alpha"]), float(params["beta"])
            else:
                a, b = self.pair_for(outputs[rows], params)
            m, t = decoder.decode(outputs[rows], {**params, "alpha": a, "beta": b})
            mask[rows], target[rows] = m, t
            used[str(key)] = {"alpha": round(a, 4), "beta": round(b, 4), "n": int(len(rows))}
        self.log.append(used)
        return mask, target

    def report(self) -> dict | None:
        """What per-actor thresholds did (for ``results.json``), None in ``global`` mode."""
        if not self.active:
            return None
        pairs = [v for d in self.log for k, v in d.items() if k != "None"]
        alphas = [p["alpha"] for p in pairs]
        betas = [p["beta"] for p in pairs]
        desc = (f"per-actor alpha/beta (transductive, labels never read): each evaluated actor's pair is the "
                f"quantile of its own predicted top-two statistics at the level the global pair has on the "
                f"selection data, shrunk towards the global pair with n / (n + {self.shrink:g}).")
        if pairs:
            desc += (f" Across {len(pairs)} actor decodings alpha ranged {min(alphas):.3f}-{max(alphas):.3f}, "
                     f"beta {min(betas):.3f}-{max(betas):.3f}.")
        for rec in self.identity:
            desc += (f" {rec['clips']} evaluated clip(s) of unknown actor were split into {rec['groups']} identity "
                     f"group(s) by clustering (identity directions from the training actors' features, "
                     f"--identity-groups {rec['identity_groups']}), each decoded like an actor."
                     if rec["clustered"] else
                     f" {rec['clips']} evaluated clip(s) of unknown actor kept the global pair (no identity "
                     "directions: fewer than 2 training actors).")
        out = {"mode": self.mode, "shrink": self.shrink, "description": desc, "decodings": self.log}
        if self.identity:
            out["identity"] = self.identity
        return out
