"""Feature sources as matrices: loading, pooling, joining on clip id, and feature transforms.

A *feature source* is a folder with one ``<clip_id>.npy`` per clip (shape ``(T, D)`` or
``(D,)``, the layout of the official pre-extracted features) or a blemore store subfolder
(:mod:`blemore.store`). :func:`load_features` pools every requested clip of every source
(:class:`blemore.pooling.Pooling`) and joins the sources **by clip id** into a
:class:`FeatureSet`; clips missing in a source are reported and either dropped (with a
warning) or imputed (NaN rows, replaced by the training mean after standardisation), never
silently misaligned.

*Transforms* (:class:`Transform`, registry :func:`register_transform`) are fitted on the
training rows of a split and applied to every row. They receive the rows' clip ids and
group (actor) ids, never labels. The default chain is ``["standardize"]`` (z-scores with
training statistics); a transductive per-actor normalisation can be registered the same way.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from blemore.errors import BlemoreError
from blemore.pooling import Pooling
from blemore.registry import Registry
from blemore.store import StoreError, open_source
from blemore.pooling import stat_columns

__all__ = [
    "FeatureSet", "MissingReport", "FeatureError", "open_features", "load_features", "pool_source",
    "Transform", "Standardize", "register_transform", "create_transform", "list_transforms",
    "TransformChain", "clear_cache", "aggregate_rows",
]


class FeatureError(BlemoreError, ValueError):
    """Features that cannot be used as asked (missing clips, shape mismatch, bad source)."""


def open_features(src: Any):
    """A feature source from a path (plain folder or store subfolder) or an object that
    already has ``name``, ``clip_ids`` and ``load(clip_id)``."""
    if hasattr(src, "load") and hasattr(src, "clip_ids"):
        return src
    folder = str(src)
    if folder.endswith("]") and "[layers=" in folder:  # STORE/name[layers=A-B]: see blemore.store
        folder = folder[:folder.rindex("[layers=")]
    if not Path(folder).exists():
        raise FeatureError(f"feature source {str(src)!r} does not exist")
    try:
        return open_source(src)
    except StoreError as e:
        raise FeatureError(f"cannot open feature source {str(src)!r}: {e}") from None


# ----------------------------------------------------------------------------- pooling cache
# (source folder, pooling) -> {clip_id: (file stamp, pooled rows)}; an entry is used only while
# the clip's feature file has the same (path, inode, mtime_ns, size), so rewriting it re-pools it
_CACHE: dict[tuple, dict[str, tuple[tuple | None, np.ndarray]]] = {}


def clear_cache() -> None:
    """Forget pooled features kept in memory by :func:`pool_source`."""
    _CACHE.clear()


def _source_key(source) -> str:
    root = getattr(source, "root", None)
    return str(Path(root).resolve()) + getattr(source, "selector", "") if root is not None else f"id:{id(source)}"


def _file_stamp(source, clip_id: str) -> tuple | None:
    """``(path, inode, mtime_ns, size)`` of the clip's feature file; None for in-memory sources."""
    try:
        p = source.path(clip_id)
        st = os.stat(p)
    except (AttributeError, KeyError, OSError, TypeError):
        return None
    return (str(p), st.st_ino, st.st_mtime_ns, st.st_size)


def pool_source(source, clip_ids: Iterable[str], pooling: Pooling, progress: bool = False,
                cache: bool = True) -> dict[str, np.ndarray]:
    """``{clip_id: (rows, F) float32}`` for the clips of ``clip_ids`` that ``source`` has
    (pooled once per process and source/pooling when ``cache``, and again whenever a clip's
    feature file changed: the cache is keyed on each file's path, mtime and size)."""
    have = set(source.clip_ids)
    wanted = [c for c in clip_ids if c in have]
    key = (_source_key(source), pooling.key())
    store = _CACHE.setdefault(key, {}) if cache else {}
    stamps = {c: _file_stamp(source, c) for c in wanted}
    todo = [c for c in wanted if c not in store or store[c][0] != stamps[c] or stamps[c] is None]
    if todo:
        it: Iterable[str] = todo
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(todo, desc=f"pool {source.name}", unit="clip", leave=False)
        dim = None
        for cid in it:
            rows = pooling.apply(source.load(cid))
            if dim is None:
                dim = rows.shape[1]
            elif rows.shape[1] != dim:
                raise FeatureError(f"{source.name}: clip {cid!r} gives {rows.shape[1]} features, others {dim}")
            store[cid] = (stamps[cid], rows)
    return {c: store[c][1] for c in wanted}


# ----------------------------------------------------------------------------- feature set
@dataclass
class MissingReport:
    """Clips asked for but absent from a source, per source."""

    missing: dict[str, list[str]] = field(default_factory=dict)
    policy: str = "drop"

    @property
    def any(self) -> bool:
        return any(self.missing.values())

    def clips(self) -> list[str]:
        return sorted({c for v in self.missing.values() for c in v})

    def summary(self) -> str:
        parts = []
        for s, ids in self.missing.items():
            if ids:
                head = ", ".join(ids[:5]) + (f", ... ({len(ids) - 5} more)" if len(ids) > 5 else "")
                parts.append(f"{s}: {len(ids)} clip(s) missing ({head})")
        return "; ".join(parts)

    def as_dict(self) -> dict:
        return {"policy": self.policy, "missing": {k: list(v) for k, v in self.missing.items()}}


def aggregate_rows(values: np.ndarray, owner: np.ndarray | None, n: int | None = None) -> np.ndarray:
    """Mean of the rows of ``values`` per owner (clip): ``(M, K) -> (n, K)``."""
    if owner is None:
        return values
    owner = np.asarray(owner, dtype=np.int64)
    n = int(owner.max()) + 1 if n is None else n
    out = np.zeros((n, values.shape[1]), dtype=np.float64)
    np.add.at(out, owner, values)
    cnt = np.bincount(owner, minlength=n).astype(np.float64)
    if np.any(cnt == 0):
        raise ValueError("some clips have no rows (windows) to aggregate")
    return (out / cnt[:, None]).astype(values.dtype)


class FeatureSet:
    """Pooled samples of several sources for one list of clips, aligned by clip id.

    ``blocks[source]`` is ``(M_s, F_s)``; for per-clip pooling ``M_s == len(clip_ids)`` and row
    ``i`` is clip ``i``; for windows, ``owners[source][r]`` is the clip index of row ``r``.
    """

    def __init__(self, clip_ids: Sequence[str], blocks: Mapping[str, np.ndarray],
                 owners: Mapping[str, np.ndarray | None], pooling: Pooling,
                 columns: Mapping[str, list[str] | None] | None = None,
                 missing: MissingReport | None = None, configs: Mapping[str, Any] | None = None):
        self.clip_ids = list(clip_ids)
        self.index = {c: i for i, c in enumerate(self.clip_ids)}
        if len(self.index) != len(self.clip_ids):
            raise FeatureError("clip ids of a feature set must be unique")
        self.blocks = dict(blocks)
        self.owners = dict(owners)
        self.pooling = pooling
        self.columns = dict(columns or {})
        self.missing = missing or MissingReport()
        self.configs = dict(configs or {})

    @property
    def sources(self) -> list[str]:
        return list(self.blocks)

    def dim(self, source: str) -> int:
        return int(self.blocks[source].shape[1])

    def __len__(self) -> int:
        return len(self.clip_ids)

    def rows(self, sources: Sequence[str], clips: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Samples of clips ``clips`` (indices into :attr:`clip_ids`) with the sources'
        columns side by side: ``(X, owner)``; ``owner`` maps rows to positions in ``clips``
        (None for per-clip pooling)."""
        clips = np.asarray(clips, dtype=np.int64)
        sources = list(sources)
        unknown = [s for s in sources if s not in self.blocks]
        if unknown:
            raise FeatureError(f"unknown source(s) {unknown}; have {self.sources}")
        if self.pooling.per_clip:
            return self.pooling.join([self.blocks[s][clips] for s in sources]), None
        if len(sources) != 1:
            raise FeatureError(
                "windowed (subsampled) samples of several sources do not line up in time; "
                "use one source per head (late fusion) or per-clip pooling for early fusion")
        s = sources[0]
        owner = self.owners[s]
        pos = np.full(len(self.clip_ids), -1, dtype=np.int64)
        pos[clips] = np.arange(len(clips))
        sel = pos[owner] >= 0
        rows = self.blocks[s][sel]
        new_owner = pos[owner[sel]]
        order = np.argsort(new_owner, kind="stable")
        return rows[order], new_owner[order]

    def subset(self, clip_ids: Sequence[str]) -> "FeatureSet":
        idx = np.array([self.index[c] for c in clip_ids], dtype=np.int64)
        blocks, owners = {}, {}
        for s in self.sources:
            X, own = self.rows([s], idx)
            blocks[s], owners[s] = X, own
        return FeatureSet(clip_ids, blocks, owners, self.pooling, self.columns, self.missing, self.configs)


def _unique_names(sources: Sequence[Any]) -> list[str]:
    names, seen = [], {}
    for s in sources:
        n = str(getattr(s, "name", "features"))
        if n in seen:
            seen[n] += 1
            n = f"{n}-{seen[n]}"
        else:
            seen[n] = 1
        names.append(n)
    return names


def load_features(
    sources: Sequence[Any],
    clip_ids: Sequence[str],
    pooling: Pooling | None = None,
    missing: str = "drop",
    progress: bool = False,
    cache: bool = True,
) -> FeatureSet:
    """Pool ``clip_ids`` from every source and join them by clip id.

    ``missing``: ``"drop"`` (default) keeps only clips that every source has and warns
    naming the others; ``"impute"`` keeps all clips, giving a missing clip an all-NaN row
    (imputed by the training mean after standardisation); ``"error"`` raises
    :class:`FeatureError` listing them.
    """
    if missing not in ("drop", "impute", "error"):
        raise FeatureError(f"missing must be 'drop', 'impute' or 'error', got {missing!r}")
    if not sources:
        raise FeatureError("no feature source given")
    pooling = pooling or Pooling()
    srcs = [open_features(s) for s in sources]
    names = _unique_names(srcs)
    clip_ids = list(dict.fromkeys(clip_ids))
    pooled: dict[str, dict[str, np.ndarray]] = {}
    report = MissingReport(policy=missing)
    for name, src in zip(names, srcs):
        pooled[name] = pool_source(src, clip_ids, pooling, progress=progress, cache=cache)
        report.missing[name] = [c for c in clip_ids if c not in pooled[name]]
        if not pooled[name]:
            raise FeatureError(
                f"source {name!r} ({getattr(src, 'root', src)}) has none of the {len(clip_ids)} clips asked for "
                f"(e.g. {clip_ids[:3]}); its clips look like {list(src.clip_ids)[:3]}")
    if report.any:
        if missing == "error":
            raise FeatureError("clips missing from feature sources: " + report.summary())
        what = "dropped from the run" if missing == "drop" else "imputed with the training mean"
        warnings.warn(f"{len(report.clips())} clip(s) {what}: {report.summary()}", stacklevel=2)
    keep = clip_ids if missing == "impute" else [c for c in clip_ids if all(c in pooled[n] for n in names)]
    if not keep:
        raise FeatureError("no clip is present in every feature source: " + report.summary())
    blocks, owners, columns, configs = {}, {}, {}, {}
    for name, src in zip(names, srcs):
        d = next(iter(pooled[name].values())).shape[1]
        nan_row = np.full((1, d), np.nan, dtype=np.float32)
        parts = [pooled[name].get(c, nan_row) for c in keep]
        blocks[name] = np.concatenate(parts).astype(np.float32, copy=False)
        owners[name] = None if pooling.per_clip else np.repeat(
            np.arange(len(keep), dtype=np.int64), [len(p) for p in parts])
        cols = getattr(src, "columns", None)
        if cols and pooling.per_clip:
            cols = stat_columns(cols, pooling.stats)
        columns[name] = list(cols) if cols and len(cols) == d else None
        configs[name] = {"name": getattr(src, "name", name), "root": str(getattr(src, "root", "")),
                         "config": getattr(src, "config", None), "dim": int(getattr(src, "dim", 0) or 0)}
    return FeatureSet(keep, blocks, owners, pooling, columns, report, configs)


# ----------------------------------------------------------------------------- transforms
class Transform:
    """A feature transform fitted on training rows. Receives clip ids and group (actor) ids
    per row, never labels. Subclasses implement :meth:`fit` and :meth:`transform`."""

    name: str = ""

    def __init__(self, **options: Any):
        self.options = dict(options)

    def fit(self, X: np.ndarray, *, clip_ids: Sequence[str], groups: Sequence[Any] | None = None) -> "Transform":
        return self

    def transform(self, X: np.ndarray, *, clip_ids: Sequence[str], groups: Sequence[Any] | None = None) -> np.ndarray:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass

    def config(self) -> dict:
        return dict(self.options)


BUILTIN_TRANSFORMS: tuple[str, ...] = ("blemore.features", "blemore.normalise")
"""The modules that define the built-in transforms (``standardize`` here, ``actor-norm`` in
:mod:`blemore.normalise`); :data:`TRANSFORMS` imports them on first lookup."""

TRANSFORMS: Registry[type[Transform]] = Registry("transform", builtins=BUILTIN_TRANSFORMS, error=FeatureError)
"""Transform name -> class; unknown names raise :class:`FeatureError` listing every one."""


# The public names are the registry's own methods: ``@register_transform("name")`` (class
# decorator), ``list_transforms()``, ``create_transform(name, **options)``.
register_transform = TRANSFORMS.register
list_transforms = TRANSFORMS.names
create_transform = TRANSFORMS.create


@register_transform("standardize")
class Standardize(Transform):
    """Zero mean, unit variance per column with statistics of the fitted rows (NaN ignored);
    constant columns keep scale 1; NaN values become 0 (= the training mean) after scaling."""

    def fit(self, X, *, clip_ids, groups=None):
        X = np.asarray(X, dtype=np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(X, axis=0)
            std = np.nanstd(X, axis=0)
        mean = np.where(np.isnan(mean), 0.0, mean)
        std = np.where(~np.isfinite(std) | (std < 1e-12), 1.0, std)
        self.mean_ = mean.astype(np.float32)
        self.scale_ = std.astype(np.float32)
        return self

    def transform(self, X, *, clip_ids, groups=None):
        if not hasattr(self, "mean_"):
            raise RuntimeError("Standardize is not fitted")
        X = np.asarray(X, dtype=np.float32)
        if X.shape[1] != len(self.mean_):
            raise FeatureError(f"expected {len(self.mean_)} columns, got {X.shape[1]}")
        Z = (X - self.mean_) / self.scale_
        np.nan_to_num(Z, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        return Z

    def state_dict(self):
        return {"mean": self.mean_, "scale": self.scale_}

    def load_state_dict(self, state):
        self.mean_ = np.asarray(state["mean"], dtype=np.float32)
        self.scale_ = np.asarray(state["scale"], dtype=np.float32)


class TransformChain:
    """Transforms applied in order; each is fitted on the output of the previous one.

    ``frames=L``: rows are frame sequences flattened frame-major (``(N, L * D)``,
    ``Pooling(kind="frames")``): the transforms see one row per frame (``(N * L, D)``, the clip
    id and group repeated), are fitted on frames with data only, and frames that are all-NaN
    (no face, padding) stay all-NaN so that sequence heads can mask them."""

    def __init__(self, specs: Sequence[str | Mapping[str, Any]] = ("standardize",), frames: int | None = None):
        self.frames = None if frames is None else int(frames)
        self.transforms: list[Transform] = []
        for s in specs:
            if isinstance(s, str):
                self.transforms.append(create_transform(s))
            else:
                opts = dict(s)
                name = opts.pop("name")
                self.transforms.append(create_transform(name, **opts))

    def fit_transform(self, X: np.ndarray, *, clip_ids: Sequence[str], groups: Sequence[Any] | None = None) -> np.ndarray:
        if self.frames:
            return self._per_frame(X, clip_ids, groups, fit=True)
        for t in self.transforms:
            t.fit(X, clip_ids=clip_ids, groups=groups)
            X = t.transform(X, clip_ids=clip_ids, groups=groups)
        return X

    def transform(self, X: np.ndarray, *, clip_ids: Sequence[str], groups: Sequence[Any] | None = None) -> np.ndarray:
        if self.frames:
            return self._per_frame(X, clip_ids, groups, fit=False)
        for t in self.transforms:
            X = t.transform(X, clip_ids=clip_ids, groups=groups)
        return X

    def _per_frame(self, X: np.ndarray, clip_ids: Sequence[str], groups: Sequence[Any] | None, fit: bool) -> np.ndarray:
        n, length = len(X), int(self.frames)  # type: ignore[arg-type]
        if X.ndim != 2 or X.shape[1] % length:
            raise FeatureError(f"frame rows must be (n, {length} * D), got shape {X.shape}")
        F = np.asarray(X, dtype=np.float32).reshape(n * length, -1)
        valid = ~np.isnan(F).all(axis=1)
        ids = np.repeat(np.asarray(list(clip_ids), dtype=object), length)[valid].tolist()
        grp = None if groups is None else np.repeat(np.asarray(list(groups), dtype=object), length)[valid].tolist()
        Z = F[valid]
        for t in self.transforms:
            if fit:
                t.fit(Z, clip_ids=ids, groups=grp)
            Z = t.transform(Z, clip_ids=ids, groups=grp)
        out = np.full((n * length, Z.shape[1]), np.nan, dtype=np.float32)
        out[valid] = Z
        return out.reshape(n, -1)

    def specs(self) -> list[dict]:
        return [{"name": t.name, **t.config()} for t in self.transforms]

    def state_dict(self) -> list[dict]:
        return [t.state_dict() for t in self.transforms]

    def load_state_dict(self, states: Sequence[Mapping[str, Any]]) -> None:
        for t, s in zip(self.transforms, states):
            t.load_state_dict(s)
