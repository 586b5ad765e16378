"""Per-actor normalisation and identity grouping of anonymised clips.

Identity dominates pooled features: two clips of one actor are closer than two clips of one
emotion. In BLEMORE every actor performs every configuration (all 6 single classes and all
30 blend configurations), so an actor's mean over their clips is an estimate of *who* they
are, not of *what* they express, and subtracting it (and dividing by their spread) removes
identity without removing the signal. The paper does this for its PCA plots only; here it is
a feature transform (``actor-norm``) the runner can use.

The normalisation is **transductive**: each actor is standardised with statistics of all of
that actor's clips passed to :meth:`ActorNorm.transform` together, including unlabelled
held-out or test clips (their labels are never needed; a test actor's clips are available at
once). It never reads labels, nor the clip ids (which encode labels in BLEMORE): only the
feature rows and the group (actor) of each row.

The official test clips are anonymised (``test_0001``), so their actor is unknown. Rows whose
group is unknown (``None``, NaN or ``""``), or, with ``identity="cluster"``, rows of any actor
not seen when the transform was fitted, are grouped by **clustering identity-bearing
features**: the rows are projected onto the directions along which the *training actors'*
mean feature vectors differ most (principal components of the per-actor means, learned from
actor ids only), then clustered by Ward linkage. The number of groups is given
(``n_groups=15``), estimated from the number of rows and the training actors' typical clip
count (``n_groups="size"``), or chosen by the silhouette criterion (``n_groups="auto"``).
:func:`evaluate_identity_grouping` reports how well this recovers the real training actors
(adjusted Rand index on held-out folds). :func:`cluster_unknown` is the one grouping step, used
by ``actor-norm`` and by per-actor thresholds (:mod:`blemore.thresholds`) alike.

Use: ``transforms = ["actor-norm", "standardize"]`` in an experiment config (options as a
table: ``{name = "actor-norm", identity = "cluster", n_groups = "auto"}``), or
``blemore benchmark --actor-norm on|cluster``.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from blemore.features import FeatureError, FeatureSet, Transform, aggregate_rows, register_transform

__all__ = [
    "ActorNorm", "actor_standardise", "identity_groups", "estimate_n_groups", "IdentityProjector", "cluster_unknown",
    "identity_rows",
    "adjusted_rand_index", "evaluate_identity_grouping", "GroupingReport", "is_unknown_group",
    "ACTOR_NORM_MODES", "actor_norm_transforms", "uses_actor_norm", "actor_norm_summary", "find_actor_norm",
]

ACTOR_NORM_MODES = ("off", "on", "cluster")
"""``off``: no per-actor normalisation; ``on``: per actor, clustering only rows of unknown
actor (anonymised test clips); ``cluster``: every actor not seen in training is found by
clustering (what happens to the official test clips, simulated on known held-out actors)."""


def is_unknown_group(g: Any) -> bool:
    """True for ``None``, NaN and empty strings (an actor that is not known)."""
    if g is None:
        return True
    if isinstance(g, float) and math.isnan(g):
        return True
    return isinstance(g, str) and g.strip() == ""


def _nan_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(X, axis=0)
        std = np.nanstd(X, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
    return mean, std


def actor_standardise(X: np.ndarray, groups: Sequence[Any], scale: str = "z", min_rows: int = 2,
                      fallback: tuple[np.ndarray, np.ndarray] | None = None,
                      dtype: Any = np.float32) -> np.ndarray:
    """Standardise the rows of each group with that group's own statistics.

    ``scale="z"``: subtract the group mean and divide by the group standard deviation
    (per column; constant columns keep scale 1). ``scale="center"``: subtract the group mean
    only. Groups with fewer than ``min_rows`` rows use ``fallback`` ``(mean, std)`` (default:
    statistics of all rows). NaN values stay NaN (imputed later by ``standardize``). The
    result has ``dtype`` (float32 for features; the PCA plots of :mod:`blemore.report` ask
    for float64).
    """
    if scale not in ("z", "center"):
        raise FeatureError(f"actor-norm scale must be 'z' or 'center', got {scale!r}")
    X = np.asarray(X, dtype=np.float64)
    keys = np.asarray([str(g) for g in groups], dtype=object)
    if len(keys) != len(X):
        raise FeatureError(f"{len(X)} rows but {len(keys)} group ids")
    out = np.empty_like(X)
    fb = fallback if fallback is not None else _nan_stats(X)
    for key in dict.fromkeys(keys):
        idx = np.flatnonzero(keys == key)
        if len(idx) >= min_rows:
            m, s = _nan_stats(X[idx])
        else:
            m, s = fb
        out[idx] = (X[idx] - m) / s if scale == "z" else X[idx] - m
    return out.astype(dtype, copy=False)


# ----------------------------------------------------------------------------- identity
@dataclass
class IdentityProjector:
    """Directions along which actors' mean features differ (principal components of the
    per-actor means of globally standardised rows). Learned from actor ids, never labels."""

    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray  # (F, k)
    rows_per_group: float

    @classmethod
    def fit(cls, X: np.ndarray, groups: Sequence[Any], dims: int = 16) -> "IdentityProjector":
        X = np.asarray(X, dtype=np.float64)
        mean, scale = _nan_stats(X)
        Z = np.nan_to_num((X - mean) / scale)
        keys = np.asarray([str(g) for g in groups], dtype=object)
        uniq = list(dict.fromkeys(keys))
        if len(uniq) < 2:
            raise FeatureError(f"learning identity directions needs at least 2 known actors, got {len(uniq)}")
        M = np.stack([Z[keys == k].mean(axis=0) for k in uniq])
        M -= M.mean(axis=0)
        k = max(1, min(int(dims), len(uniq) - 1, M.shape[1]))
        _, _, vt = np.linalg.svd(M, full_matrices=False)
        counts = [int((keys == k_).sum()) for k_ in uniq]
        return cls(mean.astype(np.float32), scale.astype(np.float32), vt[:k].T.astype(np.float32),
                   float(np.median(counts)))

    def project(self, X: np.ndarray) -> np.ndarray:
        Z = np.nan_to_num((np.asarray(X, dtype=np.float64) - self.mean) / self.scale)
        return Z @ self.components

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "scale": self.scale, "components": self.components,
                "rows_per_group": self.rows_per_group}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "IdentityProjector":
        return cls(np.asarray(state["mean"], np.float32), np.asarray(state["scale"], np.float32),
                   np.asarray(state["components"], np.float32), float(state["rows_per_group"]))


def _ward_labels(Z: np.ndarray, ks: Sequence[int]) -> dict[int, np.ndarray]:
    from scipy.cluster.hierarchy import fcluster, linkage

    L = linkage(Z, method="ward")
    return {k: fcluster(L, t=k, criterion="maxclust") - 1 for k in ks}


def estimate_n_groups(Z: np.ndarray, rows_per_group: float | None = None, k_min: int = 2,
                      k_max: int | None = None) -> int:
    """The number of identity groups in ``Z`` (projected rows) by the silhouette criterion
    over Ward clusterings with ``k_min..k_max`` groups (default range: a third to three times
    ``len(Z) / rows_per_group``, or 2..sqrt(n)). Ties go to the smaller k.

    With ``rows_per_group`` (the typical clip count of an actor: every BLEMORE actor performs
    every configuration) two plausibility rules apply: a clustering with a group smaller than
    a quarter of that is not considered, and fewer rows than 1.5 actors' worth are one group
    unless a split is clearly separated (silhouette >= 0.5)."""
    from sklearn.metrics import silhouette_score

    n = len(Z)
    if n < 4:
        return 1
    if rows_per_group:
        k0 = max(1.0, n / rows_per_group)
        lo, hi = max(k_min, int(k0 / 3)), int(math.ceil(3 * k0))
    else:
        k0 = None
        lo, hi = k_min, int(math.ceil(math.sqrt(n))) + 1
    if k_max is not None:
        hi = min(hi, k_max)
    hi = min(hi, n - 1)
    lo = min(max(2, lo), hi)
    if hi < 2:
        return 1
    ks = list(range(lo, hi + 1))
    labels = _ward_labels(Z, ks)
    best_k, best = None, -np.inf
    for k in ks:
        lab = labels[k]
        sizes = np.bincount(lab)
        if len(sizes) < 2 or (rows_per_group and sizes.min() < rows_per_group / 4):
            continue
        s = float(silhouette_score(Z, lab))
        if s > best + 1e-12:
            best_k, best = k, s
    if k0 is not None and n < 1.5 * rows_per_group and best < 0.5:  # type: ignore[operator]
        return 1
    if best_k is None:
        return max(1, int(round(k0))) if k0 is not None else 1
    return best_k


def identity_groups(Z: np.ndarray, n_groups: int | str | None = "auto",
                    rows_per_group: float | None = None) -> np.ndarray:
    """Cluster projected rows ``Z`` into identity groups (Ward linkage): labels 0..k-1.
    ``n_groups``: an int (given), ``"auto"``/``None`` (silhouette), or ``"size"``
    (``round(len(Z) / rows_per_group)``)."""
    Z = np.asarray(Z, dtype=np.float64)
    n = len(Z)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n_groups is None or n_groups == "auto":
        k = estimate_n_groups(Z, rows_per_group)
    elif n_groups == "size":
        if not rows_per_group:
            raise FeatureError("n_groups='size' needs the typical number of clips per actor")
        k = int(round(n / rows_per_group))
    else:
        try:
            k = int(n_groups)
        except (TypeError, ValueError):
            raise FeatureError(f"n_groups must be an integer, 'auto' or 'size', got {n_groups!r}") from None
        if k < 1:
            raise FeatureError(f"n_groups must be >= 1, got {k}")
    k = max(1, min(k, n))
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    return _ward_labels(Z, [k])[k].astype(np.int64)


def cluster_unknown(X: np.ndarray, groups: Sequence[Any], projector: IdentityProjector | None,
                    n_groups: int | str | None = "auto", todo: Sequence[bool] | None = None) -> tuple[list[str], int]:
    """The group of every row: its given group (as a string), or ``"cluster:<k>"`` for the rows
    to cluster, which are Ward-clustered together (:func:`identity_groups`, ``n_groups``) on
    their projection onto ``projector``'s identity directions. ``todo`` marks the rows to
    cluster (default: those whose group is unknown, :func:`is_unknown_group`). Returns the
    groups and the number of clusters found (0 when no row was clustered). What
    ``actor-norm`` and per-actor thresholds (:mod:`blemore.thresholds`) both use for clips of
    unknown actors; raises :class:`FeatureError` when rows must be clustered without a projector."""
    groups = list(groups)
    if len(groups) != len(X):
        raise FeatureError(f"{len(X)} rows but {len(groups)} group ids")
    mask = np.array([is_unknown_group(g) for g in groups] if todo is None else list(todo), dtype=bool)
    out = ["" if t else str(g) for g, t in zip(groups, mask)]
    if not mask.any():
        return out, 0
    if projector is None:
        raise FeatureError(f"{int(mask.sum())} row(s) of unknown actors cannot be grouped: no identity directions "
                           "(they are learned from at least 2 known actors)")
    idx = np.flatnonzero(mask)
    lab = identity_groups(projector.project(np.asarray(X)[idx]), n_groups, projector.rows_per_group)
    for i, k in zip(idx, lab):
        out[i] = f"cluster:{int(k)}"
    return out, int(len(np.unique(lab)))


def identity_rows(fs: FeatureSet, pos: np.ndarray, frames: int | None = None) -> np.ndarray:
    """One row per clip of ``pos`` (positions in ``fs``) for identity clustering (per-actor
    thresholds, :mod:`blemore.thresholds`): each source's rows as the heads and ``actor-norm``
    see them before any transform, averaged per clip (windows; with ``frames``, the frames
    with data), sources side by side."""
    pos = np.asarray(pos, dtype=np.int64)
    blocks = []
    for s in fs.sources:
        X, owner = fs.rows([s], pos)
        X = np.asarray(X, dtype=np.float64)
        if frames:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a clip without any frame: NaN, projected as the mean
                X = np.nanmean(X.reshape(len(X), int(frames), -1), axis=1)
        if owner is not None:
            X = aggregate_rows(np.nan_to_num(X), owner, len(pos))
        blocks.append(X)
    return np.hstack(blocks)


def adjusted_rand_index(labels_true: Sequence[Any], labels_pred: Sequence[Any]) -> float:
    """Adjusted Rand index between two groupings (1 = identical up to renaming, ~0 = chance)."""
    from sklearn.metrics import adjusted_rand_score

    a = [str(x) for x in labels_true]
    b = [str(x) for x in labels_pred]
    if len(a) != len(b):
        raise ValueError(f"groupings differ in length: {len(a)} vs {len(b)}")
    return float(adjusted_rand_score(a, b))


# ----------------------------------------------------------------------------- transform
@register_transform("actor-norm")
class ActorNorm(Transform):
    """Transductive per-actor standardisation (see the module docstring).

    Options: ``scale`` (``"z"`` or ``"center"``), ``identity`` (``"known"``: use the given
    actor of every row and cluster only rows without one; ``"cluster"``: also cluster rows of
    actors not seen in :meth:`fit`), ``n_groups`` (int, ``"auto"`` or ``"size"``),
    ``cluster_dims`` (identity directions kept, default 16), ``min_rows`` (a group with fewer
    rows falls back to the training statistics, default 8).

    After each :meth:`transform`, ``last_groups`` holds the group used for every row
    (``"cluster:<k>"`` for clustered rows) and ``last_clustered`` how many rows were
    clustered into how many groups.
    """

    def __init__(self, scale: str = "z", identity: str = "known", n_groups: int | str = "auto",
                 cluster_dims: int = 16, min_rows: int = 8, **options: Any):
        if scale not in ("z", "center"):
            raise FeatureError(f"actor-norm scale must be 'z' or 'center', got {scale!r}")
        if identity not in ("known", "cluster"):
            raise FeatureError(f"actor-norm identity must be 'known' or 'cluster', got {identity!r}")
        if not (n_groups in ("auto", "size") or (isinstance(n_groups, int) and n_groups >= 1)):
            raise FeatureError(f"actor-norm n_groups must be a positive integer, 'auto' or 'size', got {n_groups!r}")
        if int(cluster_dims) < 1 or int(min_rows) < 2:
            raise FeatureError(f"cluster_dims must be >= 1 and min_rows >= 2, got {cluster_dims} and {min_rows}")
        super().__init__(scale=scale, identity=identity, n_groups=n_groups, cluster_dims=int(cluster_dims),
                         min_rows=int(min_rows), **options)
        self.scale, self.identity, self.n_groups = scale, identity, n_groups
        self.cluster_dims, self.min_rows = int(cluster_dims), int(min_rows)
        self.projector: IdentityProjector | None = None
        self.known_: set[str] = set()
        self.last_groups: list[str] = []
        self.last_clustered: dict[str, int] = {}

    # NB: clip_ids are accepted for the Transform interface and deliberately never read.
    def fit(self, X, *, clip_ids=None, groups=None):
        X = np.asarray(X, dtype=np.float64)
        if groups is None:
            raise FeatureError("actor-norm needs the actor of every training row (groups=...)")
        groups = list(groups)
        if len(groups) != len(X):
            raise FeatureError(f"{len(X)} rows but {len(groups)} group ids")
        known = [not is_unknown_group(g) for g in groups]
        kx = X[np.asarray(known, dtype=bool)]
        kg = [str(g) for g, k in zip(groups, known) if k]
        self.mean_, self.std_ = (a.astype(np.float32) for a in _nan_stats(X))
        self.known_ = set(kg)
        self.projector = IdentityProjector.fit(kx, kg, self.cluster_dims) if len(self.known_) >= 2 else None
        return self

    def resolve_groups(self, X: np.ndarray, groups: Sequence[Any] | None) -> list[str]:
        """The group of every row: the given actor, or ``cluster:<k>`` for rows to cluster."""
        n = len(X)
        groups = [None] * n if groups is None else list(groups)
        if len(groups) != n:
            raise FeatureError(f"{n} rows but {len(groups)} group ids")
        todo = np.array([is_unknown_group(g) or (self.identity == "cluster" and str(g) not in self.known_)
                         for g in groups], dtype=bool)
        if todo.any() and self.projector is None:
            raise FeatureError("actor-norm cannot group clips of unknown actors: it was fitted without "
                               "at least 2 known actors to learn identity directions from")
        out, found = cluster_unknown(X, groups, self.projector, self.n_groups, todo)
        self.last_clustered = {"rows": int(todo.sum()), "groups": found}
        return out

    def transform(self, X, *, clip_ids=None, groups=None):
        if not hasattr(self, "mean_"):
            raise RuntimeError("actor-norm is not fitted")
        X = np.asarray(X, dtype=np.float32)
        if X.shape[1] != len(self.mean_):
            raise FeatureError(f"actor-norm: expected {len(self.mean_)} columns, got {X.shape[1]}")
        keys = self.resolve_groups(X, groups)
        sizes: dict[str, int] = {}
        for k in keys:
            sizes[k] = sizes.get(k, 0) + 1
        small = {k: v for k, v in sizes.items() if v < self.min_rows}
        if small:
            warnings.warn(f"actor-norm: {len(small)} group(s) have fewer than {self.min_rows} clips "
                          f"({', '.join(f'{k}: {v}' for k, v in list(small.items())[:5])}); "
                          "they are standardised with the training statistics instead", stacklevel=2)
        self.last_groups = keys
        return actor_standardise(X, keys, self.scale, self.min_rows,
                                 (self.mean_.astype(np.float64), self.std_.astype(np.float64)))

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean_, "std": self.std_, "known": sorted(self.known_),
                "projector": None if self.projector is None else self.projector.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.mean_ = np.asarray(state["mean"], dtype=np.float32)
        self.std_ = np.asarray(state["std"], dtype=np.float32)
        self.known_ = set(state.get("known") or [])
        p = state.get("projector")
        self.projector = None if p is None else IdentityProjector.from_state(p)


def actor_norm_transforms(mode: str, n_groups: int | str = "auto", **options: Any) -> list[Any]:
    """The transform chain for an ``--actor-norm`` mode: ``off`` -> ``["standardize"]``;
    ``on``/``cluster`` -> ``[{"name": "actor-norm", ...}, "standardize"]``."""
    if mode not in ACTOR_NORM_MODES:
        raise FeatureError(f"actor-norm mode must be one of {', '.join(ACTOR_NORM_MODES)}, got {mode!r}")
    if mode == "off":
        return ["standardize"]
    spec = {"name": "actor-norm", "identity": "known" if mode == "on" else "cluster", "n_groups": n_groups}
    spec.update(options)
    return [spec, "standardize"]


def uses_actor_norm(transforms: Sequence[Any]) -> dict | None:
    """The actor-norm spec in a transform list (as a dict), or None."""
    for t in transforms or []:
        if t == "actor-norm":
            return {"name": "actor-norm"}
        if isinstance(t, Mapping) and t.get("name") == "actor-norm":
            return dict(t)
    return None


# ----------------------------------------------------------------------------- evaluation
@dataclass
class GroupingReport:
    """How well blind clustering recovers the actors of held-out folds."""

    ari: float  # mean over folds
    folds: list[dict] = field(default_factory=list)
    n_groups: str = "auto"

    def as_dict(self) -> dict:
        return {"ari_mean": self.ari, "n_groups": self.n_groups, "folds": self.folds}


def evaluate_identity_grouping(X: np.ndarray, actors: Sequence[Any], folds: Sequence[int],
                               n_groups: int | str = "auto", cluster_dims: int = 16) -> GroupingReport:
    """For each fold: learn identity directions from the other folds' actors, cluster the
    fold's rows blind (actors hidden), and compare with the true actors (adjusted Rand
    index; also the number of groups found vs the true number)."""
    X = np.asarray(X, dtype=np.float64)
    actors = np.asarray([str(a) for a in actors], dtype=object)
    folds = np.asarray(folds)
    if not (len(X) == len(actors) == len(folds)):
        raise ValueError(f"X, actors and folds must align: {len(X)}, {len(actors)}, {len(folds)}")
    rows = []
    for k in sorted(set(folds.tolist())):
        test = folds == k
        proj = IdentityProjector.fit(X[~test], actors[~test], cluster_dims)
        lab = identity_groups(proj.project(X[test]), n_groups, proj.rows_per_group)
        rows.append({"fold": int(k), "clips": int(test.sum()), "actors": int(len(set(actors[test]))),
                     "groups_found": int(len(np.unique(lab))),
                     "ari": adjusted_rand_index(actors[test], lab)})
    return GroupingReport(float(np.mean([r["ari"] for r in rows])) if rows else 0.0, rows, str(n_groups))


# ----------------------------------------------------------------------------- run summary
def find_actor_norm(chain) -> "ActorNorm | None":
    """The fitted :class:`ActorNorm` in a :class:`~blemore.features.TransformChain` (None
    when the chain is None or has none)."""
    if chain is None:
        return None
    for t in chain.transforms:
        if isinstance(t, ActorNorm):
            return t
    return None


def _grouping_record(an: "ActorNorm", true_actors: Sequence[Any]) -> dict:
    rec: dict[str, Any] = {"clustered_rows": int(an.last_clustered.get("rows", 0)),
                           "groups_found": int(an.last_clustered.get("groups", 0))}
    known = [not is_unknown_group(a) for a in true_actors]
    if rec["clustered_rows"] and len(an.last_groups) == len(true_actors) and all(known):
        rec["actors"] = int(len({str(a) for a in true_actors}))
        rec["ari"] = adjusted_rand_index(true_actors, an.last_groups)
    return rec


def actor_norm_summary(transforms: Sequence[Any], folds: Mapping[int, tuple[Any, Sequence[Any]]],
                       test: tuple[Any, Sequence[Any]] | None = None) -> dict | None:
    """What per-actor normalisation did in a run (None when ``transforms``, the run's transform
    specs, do not use it): the transform settings, and for clips whose actor was found by
    clustering, the number of groups and the adjusted Rand index against the true actors when
    those are known.

    ``folds`` maps each outer fold to ``(chain, true_actors)``: the fitted
    :class:`~blemore.features.TransformChain` of the model that held that fold out (None when
    there is none) and the true actors of the fold's clips, in the order the chain last
    transformed them. ``test`` is the same pair for the final model and the test clips.
    """
    spec = uses_actor_norm(transforms or [])
    if spec is None:
        return None
    out: dict[str, Any] = {
        "used": True, "transform": spec, "labels_used": False,
        "description": "transductive per-actor standardisation: each actor's clips (held-out and test clips "
                       "included) standardised with that actor's own statistics; labels never used; "
                       + ("actors of held-out and test clips found by clustering identity features"
                          if spec.get("identity") == "cluster" else
                          "actors taken from the metadata, clips of unknown actors grouped by clustering"),
    }
    recs = []
    for k, (chain, actors) in folds.items():
        an = find_actor_norm(chain)
        if an is None:
            continue
        recs.append({"fold": int(k), **_grouping_record(an, list(actors))})
    out["folds"] = recs
    aris = [f["ari"] for f in recs if "ari" in f]
    if aris:
        out["ari_mean"] = float(np.mean(aris))
    if test is not None:
        an = find_actor_norm(test[0])
        if an is not None and len(test[1]):
            out["test"] = _grouping_record(an, list(test[1]))
    return out
