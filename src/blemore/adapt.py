"""Train-to-test feature adaptation (``--adapt none|meanvar|coral``), without labels.

Before a trained head predicts a set of evaluated clips (a held-out fold, inner folds, the
test clips), their transformed features are moved towards the statistics of the training
clips the head was trained on:

* ``meanvar``: per column, the evaluated set is standardised with its own mean and standard
  deviation and given the training ones.
* ``coral`` (correlation alignment, Sun et al. 2016): ``meanvar``, then in the training data's
  top principal subspace (``rank`` components, default 64) the evaluated coordinates are
  whitened with their own covariance and re-coloured with the training covariance (both
  shrunk towards their diagonal, ``eps``), so second-order structure matches too; the
  remaining directions keep the ``meanvar`` result.

It is **transductive** like ``--actor-norm``: each evaluated set's own feature statistics (all
its clips, never labels) change its features; the report says so. For frame sequences the
statistics are those of frames with data (all-NaN frames stay masked).

The training side is :func:`fit_stats` (mean and standard deviation per column; for ``coral``
also the training data's principal basis and its covariance there), the evaluated side
:func:`apply_stats`; :func:`adapt` is the two in one call. A runner fits the statistics once
per trained head and a model bundle saves them (never the training clips), so a bundle adapts
the clips it predicts together exactly as the run adapted its test clips. A set of fewer than
:data:`MIN_CLIPS` clips (rows) has no statistics of its own and is left as it is.
"""
from __future__ import annotations

import numpy as np

from blemore.errors import BlemoreError

__all__ = ["ADAPT_MODES", "MIN_CLIPS", "AdaptError", "adapt", "fit_stats", "apply_stats", "describe"]

ADAPT_MODES = ("none", "meanvar", "coral")
MIN_CLIPS = 2
"""Fewer evaluated rows than this are left unadapted (their own statistics are undefined)."""


class AdaptError(BlemoreError, ValueError):
    """An unknown adaptation mode."""


def _check_mode(mode: str) -> None:
    if mode not in ADAPT_MODES:
        raise AdaptError(f"adapt must be one of {', '.join(ADAPT_MODES)}, got {mode!r}")


def _valid_frames(x: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of flattened frame sequences as one frame per row, and which frames have data."""
    f = x.reshape(len(x) * frames, -1)
    return f, ~np.isnan(f).all(axis=1)


def fit_stats(mode: str, train: np.ndarray, frames: int | None = None, rank: int = 64) -> dict | None:
    """The training statistics ``mode`` aligns evaluated sets to (None for ``none``): float64
    ``mean`` and ``std`` per column; for ``coral`` also ``basis`` (D, k), the training data's
    top ``k = min(rank, D, n - 1)`` principal directions, and ``cov`` (k, k), the training
    covariance in them (absent when ``k < 2``). ``frames``: rows are flattened frame sequences;
    the statistics are those of the frames with data."""
    _check_mode(mode)
    if mode == "none":
        return None
    if frames:
        f, ok = _valid_frames(np.asarray(train), frames)
        train = np.nan_to_num(f[ok])
    train = np.asarray(train, dtype=np.float64)
    mt = train.mean(axis=0)
    stats: dict = {"mode": mode, "mean": mt, "std": train.std(axis=0), "n": int(len(train))}
    k = int(min(rank, train.shape[1], len(train) - 1))
    if mode == "coral" and k >= 2:
        _, _, vt = np.linalg.svd(train - mt, full_matrices=False)
        basis = vt[:k].T  # (D, k)
        stats["basis"] = basis
        stats["cov"] = np.cov((train - mt) @ basis, rowvar=False).reshape(k, k)
    return stats


def _shrunk(c: np.ndarray, eps: float) -> np.ndarray:
    return (1 - eps) * c + eps * np.diag(np.diag(c)) + 1e-6 * np.eye(len(c))


def _sqrtm(c: np.ndarray, inv: bool) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    w = np.clip(w, 1e-8, None)
    return (v * (w ** (-0.5 if inv else 0.5))) @ v.T


def _apply(stats: dict, ev: np.ndarray, eps: float) -> np.ndarray:
    if len(ev) < MIN_CLIPS:
        return ev
    ev = np.asarray(ev, dtype=np.float64)
    mt, st = np.asarray(stats["mean"], dtype=np.float64), np.asarray(stats["std"], dtype=np.float64)
    me, se = ev.mean(axis=0), ev.std(axis=0)
    se = np.where(se < 1e-8, 1.0, se)
    out = (ev - me) / se * st + mt  # meanvar
    basis = stats.get("basis")
    if stats["mode"] == "coral" and basis is not None:
        k = int(min(np.shape(basis)[1], len(ev) - 1))
        if k >= 2:
            b = np.asarray(basis, dtype=np.float64)[:, :k]
            ze = (out - mt) @ b
            ct = np.asarray(stats["cov"], dtype=np.float64)[:k, :k]
            ze_new = (ze - ze.mean(axis=0)) @ _sqrtm(_shrunk(np.cov(ze, rowvar=False).reshape(k, k), eps), inv=True) \
                @ _sqrtm(_shrunk(ct, eps), inv=False) + ze.mean(axis=0)
            out = out + (ze_new - ze) @ b.T
    return out.astype(np.float32)


def apply_stats(stats: dict | None, ev: np.ndarray, frames: int | None = None, eps: float = 0.1) -> np.ndarray:
    """``ev`` (transformed features of the clips evaluated together) aligned to the training
    statistics ``stats`` of :func:`fit_stats`; unchanged (the same object) for None or fewer
    than :data:`MIN_CLIPS` rows. ``frames``: as in :func:`fit_stats` (frames without data stay NaN)."""
    if stats is None or len(ev) < MIN_CLIPS:
        return ev
    _check_mode(str(stats.get("mode")))
    if frames:
        f, ok = _valid_frames(np.asarray(ev), frames)
        out = np.full_like(f, np.nan)
        out[ok] = _apply(stats, np.nan_to_num(f[ok]), eps)
        return out.reshape(len(ev), -1)
    return _apply(stats, ev, eps)


def adapt(mode: str, train: np.ndarray, ev: np.ndarray, frames: int | None = None,
          rank: int = 64, eps: float = 0.1) -> np.ndarray:
    """``ev`` (transformed features of evaluated clips) aligned to ``train``; ``frames``: rows
    are flattened frame sequences (statistics over frames with data; masked frames stay NaN).
    The same as ``apply_stats(fit_stats(mode, train, frames, rank), ev, frames, eps)``."""
    _check_mode(mode)
    if mode == "none" or len(ev) < MIN_CLIPS:
        return ev
    return apply_stats(fit_stats(mode, train, frames, rank), ev, frames, eps)


def describe(mode: str) -> dict | None:
    """The report's statement (None for ``none``)."""
    if mode == "none":
        return None
    what = {"meanvar": "per-column mean and standard deviation",
            "coral": "per-column mean/std and the covariance in the training data's top principal subspace"}[mode]
    return {"mode": mode, "description": (
        f"--adapt {mode} (transductive): every evaluated set (held-out fold, inner fold, test clips) had its "
        f"{what} aligned to those of the training clips of the model predicting it, using its own features "
        "only (never labels).")}
