"""From a clip's feature time series ``(T, D)`` to fixed-size vectors.

* :func:`pool_stats`: the paper's aggregation, 7 statistics per dimension (mean, std,
  10th, 25th, 50th, 75th, 90th percentile), concatenated statistic-major: the output is
  ``[mean(D), std(D), p10(D), ..., p90(D)]`` of length ``7 * D``. Rows that are entirely NaN
  (frames without a face) are ignored; a clip without any valid row gives an all-NaN vector
  (imputed later by the standardiser). Isolated NaN values are ignored per dimension.
* :func:`windows`: fixed-length segments (mean of the rows in each window) for the
  paper's subsampling strategy, where every segment is a training sample and the segment
  logits of a clip are averaged at inference (:class:`blemore.heads.TorchHead`).

* :func:`frame_slots` / :func:`frame_windows`: per-frame features kept as frames for sequence
  heads (``Pooling(kind="frames")``): a clip resampled onto a fixed number of time slots (one
  row per clip, every source on the same time base), or NaN-padded / cut into windows of
  fixed length (several rows per long clip). Rows are flattened frame-major ``(L * D,)`` and
  frames without data stay all-NaN so that heads can mask them.

``std`` is the population standard deviation (``ddof=0``); percentiles use linear
interpolation (NumPy's default).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from blemore.errors import BlemoreError

__all__ = ["PoolingError", "STATS", "pool_stats", "pool_many", "windows", "window_many", "stat_columns", "frame_slots",
           "frame_windows", "Pooling"]

STATS: tuple[str, ...] = ("mean", "std", "p10", "p25", "p50", "p75", "p90")
_PERCENTILES = {"p10": 10.0, "p25": 25.0, "p50": 50.0, "p75": 75.0, "p90": 90.0}


class PoolingError(BlemoreError, ValueError):
    """A bad pooling setting (statistics, window length / stride, frame length) or a feature
    array that cannot be pooled."""


def _check_stats(stats: Sequence[str]) -> tuple[str, ...]:
    stats = tuple(stats)
    bad = [s for s in stats if s not in STATS]
    if bad or not stats:
        raise PoolingError(f"unknown statistic(s) {bad or stats}; expected a non-empty subset of {STATS}")
    return stats


def _as_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        return x[None, :]
    if x.ndim != 2:
        raise PoolingError(f"features must be (T, D) or (D,), got shape {x.shape}")
    return x


def pool_stats(x: np.ndarray, stats: Sequence[str] = STATS) -> np.ndarray:
    """Aggregate ``(T, D)`` into ``(len(stats) * D,)`` float32 (statistic-major), NaN-robust."""
    stats = _check_stats(stats)
    x = _as_2d(x)
    d = x.shape[1]
    nan = np.isnan(x)
    if nan.any():
        x = x[~nan.all(axis=1)]
        if len(x) == 0:
            return np.full(len(stats) * d, np.nan, dtype=np.float32)
        partial = np.isnan(x).any()
    else:
        partial = False
    x64 = x.astype(np.float64)
    out = []
    pcts = [s for s in stats if s in _PERCENTILES]
    if pcts:
        q = [_PERCENTILES[s] for s in pcts]
        if partial:
            pv = np.nanpercentile(x64, q, axis=0)
        else:
            pv = np.percentile(x64, q, axis=0)
        pmap = dict(zip(pcts, pv))
    for s in stats:
        if s == "mean":
            out.append(np.nanmean(x64, axis=0) if partial else x64.mean(axis=0))
        elif s == "std":
            out.append(np.nanstd(x64, axis=0) if partial else x64.std(axis=0))
        else:
            out.append(pmap[s])
    return np.concatenate(out).astype(np.float32)


def pool_many(arrays: Sequence[np.ndarray], stats: Sequence[str] = STATS) -> np.ndarray:
    """Stack :func:`pool_stats` of several clips into ``(N, len(stats) * D)``."""
    return np.stack([pool_stats(a, stats) for a in arrays]) if len(arrays) else np.zeros((0, 0), np.float32)


def stat_columns(columns: Sequence[str] | int, stats: Sequence[str] = STATS) -> list[str]:
    """Names of the pooled columns: ``mean:col``, ``std:col``, ... (``columns`` may be D)."""
    stats = _check_stats(stats)
    cols = [f"f{i}" for i in range(columns)] if isinstance(columns, int) else list(columns)
    return [f"{s}:{c}" for s in stats for c in cols]


def windows(x: np.ndarray, size: int = 16, stride: int | None = None, min_valid: int = 1) -> np.ndarray:
    """Fixed-length segments of ``(T, D)``: row ``k`` is the NaN-robust mean of rows
    ``[k * stride, k * stride + size)``. A clip shorter than ``size`` gives one window over
    all its rows; a trailing partial window is kept when it holds at least half a window.
    Windows with fewer than ``min_valid`` valid rows are dropped; a clip without any valid
    window gives one all-NaN row (so every clip keeps at least one sample).

    ``size=1`` returns the valid rows themselves (features that are already per segment,
    such as VideoMAE's 16-frame embeddings).
    """
    if size < 1:
        raise PoolingError(f"pooling window length (--window) must be >= 1, got {size}")
    stride = size if stride is None else stride
    if stride < 1:
        raise PoolingError(f"pooling window stride (--stride) must be >= 1, got {stride}")
    x = _as_2d(x)
    t, d = x.shape
    valid = ~np.isnan(x).all(axis=1)
    if size == 1 and stride == 1:
        rows = x[valid]
        return rows if len(rows) else np.full((1, d), np.nan, np.float32)
    if t <= size:
        starts = [0]
    else:
        starts = list(range(0, t - size + 1, stride))
        last_end = starts[-1] + size
        if t - last_end >= max(1, size // 2) and (t - size) not in starts:
            starts.append(starts[-1] + stride)
    out = []
    xz = np.where(np.isnan(x), 0.0, x).astype(np.float64)
    ok = ~np.isnan(x)
    for s in starts:
        seg_n = ok[s:s + size].sum(axis=0)
        if valid[s:s + size].sum() < min_valid:
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(xz[s:s + size].sum(axis=0) / seg_n)
    if not out:
        return np.full((1, d), np.nan, np.float32)
    return np.stack(out).astype(np.float32)


def window_many(arrays: Sequence[np.ndarray], size: int = 16, stride: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Windows of several clips stacked: ``(rows (M, D), owner (M,))`` with ``owner[i]`` the
    index of the clip of row ``i``."""
    ws = [windows(a, size, stride) for a in arrays]
    owner = np.concatenate([np.full(len(w), i, dtype=np.int64) for i, w in enumerate(ws)]) if ws else np.zeros(0, np.int64)
    rows = np.concatenate(ws) if ws else np.zeros((0, 0), np.float32)
    return rows, owner


def frame_slots(x: np.ndarray, length: int) -> np.ndarray:
    """``(T, D)`` onto ``length`` equal time slots ``(length, D)``: with ``T >= length`` slot ``i``
    is the NaN-robust mean of the frames in its time span (all-NaN frames ignored; a slot with
    none left stays all-NaN); with ``T < length`` slot ``i`` is frame ``floor(i * T / length)``.
    Two sources of one clip (any frame rates) land on the same time base."""
    if length < 1:
        raise PoolingError(f"frame length must be >= 1, got {length}")
    x = _as_2d(x)
    t, d = x.shape
    if t == length:
        return x.copy()
    if t < length:
        return x[(np.arange(length) * t) // length].copy()
    edges = (np.arange(length + 1) * t) // length
    valid = ~np.isnan(x).all(axis=1)
    ok = ~np.isnan(x) & valid[:, None]
    xz = np.where(ok, x, 0.0).astype(np.float64)
    sums = np.add.reduceat(xz, edges[:-1], axis=0)
    cnt = np.add.reduceat(ok.astype(np.float64), edges[:-1], axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = sums / cnt
    return out.astype(np.float32)


def frame_windows(x: np.ndarray, length: int, stride: int) -> np.ndarray:
    """``(T, D)`` as windows of ``length`` frames ``(W, length, D)``: a clip of at most ``length``
    frames is one window padded with all-NaN frames; a longer one gives windows every
    ``stride`` frames, the last one ending at the clip's last frame."""
    if length < 1 or stride < 1:
        raise PoolingError(f"frame length and stride must be >= 1, got {length} and {stride}")
    x = _as_2d(x)
    t, d = x.shape
    if t <= length:
        out = np.full((1, length, d), np.nan, dtype=np.float32)
        out[0, :t] = x
        return out
    starts = list(range(0, t - length + 1, stride))
    if starts[-1] + length < t:
        starts.append(t - length)
    return np.stack([x[s:s + length] for s in starts]).astype(np.float32)


@dataclass(frozen=True)
class Pooling:
    """How clips become samples: ``kind="stats"`` (one vector per clip, :func:`pool_stats`),
    ``kind="windows"`` (one sample per window, :func:`windows`) or ``kind="frames"`` (frame
    sequences for sequence heads, ``window`` frames flattened frame-major: with ``stride`` None
    every clip is resampled onto ``window`` time slots, :func:`frame_slots`, one row per clip;
    with a ``stride`` clips are NaN-padded or cut in windows, :func:`frame_windows`)."""

    kind: str = "stats"
    stats: tuple[str, ...] = STATS
    window: int = 16
    stride: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("stats", "windows", "frames"):
            raise PoolingError(f"pooling must be 'stats', 'windows' or 'frames', got {self.kind!r}")
        _check_stats(self.stats)

    @property
    def per_clip(self) -> bool:
        return self.kind == "stats" or (self.kind == "frames" and self.stride is None)

    @property
    def sequence_length(self) -> int | None:
        """Frames per row for ``kind="frames"`` (rows are ``(L * D,)`` frame-major), else None."""
        return int(self.window) if self.kind == "frames" else None

    def join(self, blocks: Sequence[np.ndarray]) -> np.ndarray:
        """Rows of several sources side by side: columns concatenated, or for frames each
        frame's features concatenated (``(n, L * (D1 + D2))``, still frame-major)."""
        blocks = list(blocks)
        if self.kind != "frames" or len(blocks) == 1:
            return np.concatenate(blocks, axis=1)
        n, length = len(blocks[0]), int(self.window)
        return np.concatenate([b.reshape(n, length, -1) for b in blocks], axis=2).reshape(n, -1)

    def key(self) -> tuple:
        return (self.kind, self.stats, self.window, self.stride)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``(rows, F)`` samples of one clip (one row for ``stats``)."""
        if self.kind == "stats":
            return pool_stats(x, self.stats)[None, :]
        if self.kind == "frames":
            if self.stride is None:
                return frame_slots(x, self.window).reshape(1, -1)
            w = frame_windows(x, self.window, self.stride)
            return w.reshape(len(w), -1)
        return windows(x, self.window, self.stride)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "stats": list(self.stats), "window": self.window, "stride": self.stride}
