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
statistics are those of frames with data (all-NaN frames stay masked). Model bundles do not
adapt at prediction time (they predict clip by clip).
"""
from __future__ import annotations

import numpy as np

from blemore.errors import BlemoreError

__all__ = ["ADAPT_MODES", "AdaptError", "adapt", "describe"]

ADAPT_MODES = ("none", "meanvar", "coral")


class AdaptError(BlemoreError, ValueError):
    """An unknown adaptation mode."""


def _meanvar(train: np.ndarray, ev: np.ndarray) -> np.ndarray:
    mt, st = train.mean(axis=0), train.std(axis=0)
    me, se = ev.mean(axis=0), ev.std(axis=0)
    se = np.where(se < 1e-8, 1.0, se)
    return (ev - me) / se * st + mt


def _sqrtm(c: np.ndarray, inv: bool) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    w = np.clip(w, 1e-8, None)
    return (v * (w ** (-0.5 if inv else 0.5))) @ v.T


def _coral(train: np.ndarray, ev: np.ndarray, rank: int, eps: float) -> np.ndarray:
    out = _meanvar(train, ev)
    mt = train.mean(axis=0)
    k = int(min(rank, train.shape[1], len(train) - 1, len(ev) - 1))
    if k < 2:
        return out
    _, _, vt = np.linalg.svd(train - mt, full_matrices=False)
    basis = vt[:k].T  # (D, k)
    zt = (train - mt) @ basis
    ze = (out - mt) @ basis
    ze_c = ze - ze.mean(axis=0)

    def cov(z: np.ndarray) -> np.ndarray:
        c = np.cov(z, rowvar=False)
        return (1 - eps) * c + eps * np.diag(np.diag(c)) + 1e-6 * np.eye(len(c))

    ze_new = ze_c @ _sqrtm(cov(ze), inv=True) @ _sqrtm(cov(zt), inv=False) + ze.mean(axis=0)
    return out + (ze_new - ze) @ basis.T


def adapt(mode: str, train: np.ndarray, ev: np.ndarray, frames: int | None = None,
          rank: int = 64, eps: float = 0.1) -> np.ndarray:
    """``ev`` (transformed features of evaluated clips) aligned to ``train``; ``frames``: rows
    are flattened frame sequences (statistics over frames with data; masked frames stay NaN)."""
    if mode not in ADAPT_MODES:
        raise AdaptError(f"adapt must be one of {', '.join(ADAPT_MODES)}, got {mode!r}")
    if mode == "none" or len(ev) < 2:
        return ev
    if frames:
        n, m = len(train), len(ev)
        ft, fe = train.reshape(n * frames, -1), ev.reshape(m * frames, -1)
        vt, ve = ~np.isnan(ft).all(axis=1), ~np.isnan(fe).all(axis=1)
        out = np.full_like(fe, np.nan)
        out[ve] = adapt(mode, np.nan_to_num(ft[vt]), np.nan_to_num(fe[ve]), None, rank, eps)
        return out.reshape(m, -1)
    train = np.asarray(train, dtype=np.float64)
    ev = np.asarray(ev, dtype=np.float64)
    res = _meanvar(train, ev) if mode == "meanvar" else _coral(train, ev, rank, eps)
    return res.astype(np.float32)


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
