"""ACC_presence and ACC_salience, exactly as the BLEMORE challenge defines them.

Functional form: integer codes from :mod:`blemore.labels` (``mask`` for the emotion set,
``target`` for the full label), one vectorised comparison each.

* ACC_presence: share of clips whose predicted emotion set equals the true set
  (saliences ignored), over all clips.
* ACC_salience: over blended clips only; correct when exactly the true two emotions are
  predicted and each rounded salience equals the true one. A one-emotion prediction
  for a blend is wrong. With no blended clips the score is 0.

Dict form (:func:`score_predictions`): the challenge's ``{clip_id: [{"emotion", "salience"}]}``
(with or without the top-level ``"predictions"`` key), converted to codes at the boundary.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from blemore.errors import BlemoreError
from blemore.labels import (
    EMOTIONS,
    INVALID,
    N_TARGETS,
    RATIOS,
    TARGET_IS_BLEND,
    TARGET_NAMES,
    TARGET_TO_MASK,
    TARGET_TO_SET,
    TARGETS,
    Label,
    LabelError,
    clip_id_from_path,
    encode_labels,
    encode_prediction,
)
from blemore.dataset import load_metadata, truth_from_table
from blemore.predictions import code_entries, entry_problems, load_json_strict


def acc_presence(pred_mask: np.ndarray, true_mask: np.ndarray) -> float:
    """Share of clips whose predicted emotion-set mask equals the true one."""
    pred_mask, true_mask = np.asarray(pred_mask), np.asarray(true_mask)
    if pred_mask.shape != true_mask.shape:
        raise ScoringError(f"shape mismatch: {pred_mask.shape} vs {true_mask.shape}")
    if true_mask.size == 0:
        return 0.0
    return float(np.mean(pred_mask == true_mask))


def acc_salience(pred_target: np.ndarray, true_target: np.ndarray) -> float:
    """Share of blended clips (true target >= 6) whose predicted target equals the true one."""
    pred_target, true_target = np.asarray(pred_target), np.asarray(true_target)
    if pred_target.shape != true_target.shape:
        raise ScoringError(f"shape mismatch: {pred_target.shape} vs {true_target.shape}")
    blend = is_blend_target(true_target)
    n = int(blend.sum())
    if n == 0:
        return 0.0
    return float(np.sum(pred_target[blend] == true_target[blend]) / n)


def is_blend_target(target: np.ndarray) -> np.ndarray:
    t = np.asarray(target)
    return (t >= 0) & TARGET_IS_BLEND[np.clip(t, 0, N_TARGETS - 1)]


def score_codes(
    pred_mask: np.ndarray, pred_target: np.ndarray, true_target: np.ndarray
) -> dict[str, float | int]:
    """Both metrics from codes; the true mask is derived from the true target."""
    true_target = np.asarray(true_target)
    if np.any(true_target < 0):
        raise ScoringError("true targets must all be valid (0..35)")
    true_mask = TARGET_TO_MASK[true_target]
    return {
        "acc_presence": acc_presence(pred_mask, true_mask),
        "acc_salience": acc_salience(pred_target, true_target),
        "n_clips": int(true_target.size),
        "n_blends": int(TARGET_IS_BLEND[true_target].sum()),
    }


def score_labels(pred: Sequence[Label | None], true: Sequence[Label]) -> dict[str, float | int]:
    """Both metrics on aligned sequences of :class:`Label` (``None`` = no prediction)."""
    pm, pt = encode_labels(pred)
    _, tt = encode_labels(true)
    return score_codes(pm, pt, tt)


# -- the challenge dict form ---------------------------------------------------------
class ScoringError(BlemoreError, ValueError):
    """A prediction file that cannot be scored as it is (lists every problem)."""

    def __init__(self, message: str, problems: Sequence[str] = ()):
        super().__init__(message)
        self.problems = list(problems)


def unwrap_predictions(obj: Mapping) -> Mapping:
    """Accept ``{"predictions": {...}}`` or the bare ``{clip: [...]}`` mapping."""
    if isinstance(obj, Mapping) and "predictions" in obj and isinstance(obj["predictions"], Mapping):
        return obj["predictions"]
    return obj


@dataclass
class DictScore:
    acc_presence: float
    acc_salience: float
    n_clips: int
    n_blends: int
    partial: bool = False
    missing: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    clip_ids: list[str] = field(default_factory=list)
    pred_mask: np.ndarray | None = None
    pred_target: np.ndarray | None = None
    true_target: np.ndarray | None = None

    def as_dict(self) -> dict:
        d = {
            "acc_presence": self.acc_presence,
            "acc_salience": self.acc_salience,
            "n_clips": self.n_clips,
            "n_blends": self.n_blends,
        }
        if self.partial:
            d.update(partial=True, n_missing=len(self.missing), n_unknown=len(self.unknown))
        return d


def score_predictions(
    predictions: Mapping, truth: Mapping[str, Label], *, allow_partial: bool = False, strict: bool = True
) -> DictScore:
    """Score the challenge dict format against ``{clip_id: Label}``.

    Keys may carry extensions (``test_0001.mov``); they are matched by clip id. Missing
    labelled clips, unknown clip ids, malformed entries and unknown emotions are one
    :class:`ScoringError` listing all of them; with ``allow_partial`` the intersection is
    scored (malformed entries and unknown emotions are still errors, and so is an empty
    intersection) and the result says so (``partial``, ``missing``, ``unknown``).
    Saliences may be numbers or numeric strings (``70``, ``70.0``, ``"70"``); they are
    rounded to integers as the challenge scorer does.

    ``strict`` (the default) applies the same entry check as ``blemore submit``
    (:func:`blemore.predictions.entry_problems`: one or two distinct emotions, saliences in
    [0, 100] summing to 100, blends 50/50, 70/30 or 30/70, no neutral blend), so a file scored
    here is one the challenge accepts. ``strict=False`` only checks the form and counts
    out-of-space predictions (an empty list, three emotions, 60/40) as wrong.
    """
    preds = unwrap_predictions(predictions)
    if not isinstance(preds, Mapping):
        raise ScoringError(
            "cannot score these predictions: expected a mapping {clip_id: [{'emotion', 'salience'}, ...]} "
            f"(optionally under a top-level 'predictions' key), got {type(preds).__name__}"
        )
    truth_ids = {clip_id_from_path(k): v for k, v in truth.items()}
    codes: dict[str, tuple[int, int]] = {}
    problems: list[str] = []
    for k, v in preds.items():
        cid = clip_id_from_path(str(k))
        if cid in codes:
            problems.append(f"clip {k!r} is predicted twice")
            continue
        bad = entry_problems(f"clip {k!r}", v, numeric_strings=True, strict=strict)
        if not bad:
            try:
                codes[cid] = encode_prediction(v)
                continue
            except LabelError as e:
                bad = [f"clip {k!r}: {e}"]
        problems.extend(bad)
        codes[cid] = (0, INVALID)
    missing = sorted(set(truth_ids) - set(codes))
    unknown = sorted(set(codes) - set(truth_ids))
    ids = [c for c in truth_ids if c in codes]
    if not allow_partial:
        if missing:
            problems.append(f"{len(missing)} labelled clip(s) have no prediction: {_head(missing)}")
        if unknown:
            problems.append(f"{len(unknown)} predicted clip(s) have no label: {_head(unknown)}")
    elif not ids and not problems:
        problems.append(f"no predicted clip has a label ({len(codes)} predicted, {len(truth_ids)} labelled)")
    if problems:
        raise ScoringError("cannot score these predictions:\n  " + "\n  ".join(problems), problems)
    pm = np.array([codes[c][0] for c in ids], dtype=np.int64)
    pt = np.array([codes[c][1] for c in ids], dtype=np.int64)
    tt = np.array([truth_ids[c].target_index() for c in ids], dtype=np.int64)
    s = score_codes(pm, pt, tt) if ids else {"acc_presence": 0.0, "acc_salience": 0.0, "n_clips": 0, "n_blends": 0}
    return DictScore(
        s["acc_presence"], s["acc_salience"], s["n_clips"], s["n_blends"],
        partial=bool(allow_partial and (missing or unknown)), missing=missing, unknown=unknown,
        clip_ids=ids, pred_mask=pm, pred_target=pt, true_target=tt,
    )


_NAME_TO_TARGET = {t.name(): t for t in TARGETS}


def _frame_entries(frame) -> dict:
    """``{clip: [entries]}`` from a prediction DataFrame: ``clip`` + ``label``
    (:func:`blemore.predictions.prediction_frame`) or ``clip_id`` + ``emotions`` + ``salience``
    (:func:`blemore.predictions.prediction_table`)."""
    cols = set(frame.columns)
    if {"clip", "label"} <= cols:
        ids, labels = frame["clip"], frame["label"]
    elif {"clip_id", "emotions", "salience"} <= cols:
        ids = frame["clip_id"]
        labels = [f"{e} {s}" if "+" in str(e) and str(s) else str(e)
                  for e, s in zip(frame["emotions"], frame["salience"].fillna(""))]
    else:
        raise ScoringError(f"cannot score a table with columns {sorted(cols)}: expected 'clip' and 'label' "
                           "(blemore.load_model(...).predict) or 'clip_id', 'emotions' and 'salience'")
    out, problems = {}, []
    for cid, lab in zip(ids, labels):
        lab = "" if lab is None else str(lab).strip()
        if lab in _NAME_TO_TARGET:
            out[str(cid)] = _NAME_TO_TARGET[lab].to_prediction()
            continue
        emos = [e for e in lab.split(" ")[0].split("+") if e]
        bad = [e for e in emos if e not in EMOTIONS]
        if bad or not emos:
            problems.append(f"clip {cid!r}: label {lab!r} is not a prediction (e.g. 'hap', 'ang+hap 70/30')")
            continue
        out[str(cid)] = code_entries(sum(1 << EMOTIONS.index(e) for e in emos), INVALID)
    if problems:
        raise ScoringError("cannot score these predictions:\n  " + "\n  ".join(problems), problems)
    return out


def score(predictions, metadata, *, allow_partial: bool = False, strict: bool = True) -> DictScore:
    """Score predictions against labelled clips: the challenge's two accuracies.

    ``predictions``: the challenge dict (with or without the top-level ``"predictions"`` key),
    a path to such a JSON file, or a prediction DataFrame (``blemore.load_model(...).predict``'s
    ``clip`` + ``label``, or a run's ``clip_id`` + ``emotions`` + ``salience`` table).
    ``metadata``: a metadata CSV path, a clip table, or ``{clip_id: Label}``. The rest is
    :func:`score_predictions` (every problem listed in one :class:`ScoringError`).
    """
    if hasattr(predictions, "columns"):
        preds = _frame_entries(predictions)
    elif isinstance(predictions, Mapping):
        preds = predictions
    else:
        preds = load_json_strict(predictions, error=ScoringError)
    if isinstance(metadata, Mapping):
        truth = dict(metadata)
    else:
        table = metadata.copy() if hasattr(metadata, "columns") else load_metadata(metadata)
        truth = truth_from_table(table)
    return score_predictions(preds, truth, allow_partial=allow_partial, strict=strict)


def _head(items: Sequence[str], n: int = 10) -> str:
    s = ", ".join(items[:n])
    return s + (f", ... ({len(items) - n} more)" if len(items) > n else "")


# -- breakdowns ------------------------------------------------------------------------
def confusion_matrix(pred_target: np.ndarray, true_target: np.ndarray) -> np.ndarray:
    """(36, 37) counts: rows true target, columns predicted target; column 36 = other/invalid."""
    pt = np.asarray(pred_target).copy()
    pt[pt < 0] = N_TARGETS
    tt = np.asarray(true_target)
    cm = np.zeros((N_TARGETS, N_TARGETS + 1), dtype=np.int64)
    np.add.at(cm, (tt, pt), 1)
    return cm


CONFUSION_COLUMNS: tuple[str, ...] = TARGET_NAMES + ("other",)


def per_class(pred_mask: np.ndarray, pred_target: np.ndarray, true_target: np.ndarray) -> list[dict]:
    """Per true target (36 composite labels): count, presence accuracy, exact-label accuracy."""
    pm, pt, tt = map(np.asarray, (pred_mask, pred_target, true_target))
    tm = TARGET_TO_MASK[tt]
    rows = []
    for t in range(N_TARGETS):
        sel = tt == t
        n = int(sel.sum())
        rows.append({
            "label": TARGET_NAMES[t],
            "n": n,
            "acc_presence": float(np.mean(pm[sel] == tm[sel])) if n else None,
            "acc_exact": float(np.mean(pt[sel] == tt[sel])) if n else None,
        })
    return rows


def per_emotion(pred_mask: np.ndarray, true_target: np.ndarray) -> list[dict]:
    """Per emotion: precision, recall and F1 of its presence (multi-label view)."""
    pm = np.asarray(pred_mask)
    tm = TARGET_TO_MASK[np.asarray(true_target)]
    rows = []
    for i, e in enumerate(EMOTIONS):
        p, t = (pm >> i) & 1, (tm >> i) & 1
        tp, fp, fn = int(np.sum(p & t)), int(np.sum(p & ~t & 1)), int(np.sum(~p & 1 & t))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        rows.append({"emotion": e, "support": int(t.sum()), "precision": prec, "recall": rec, "f1": f1})
    return rows


RATIO_OUTCOMES: tuple[str, ...] = ("30/70", "50/50", "70/30", "wrong pair", "single")


def per_configuration(pred_mask: np.ndarray, pred_target: np.ndarray, true_target: np.ndarray) -> dict:
    """For blend clips: true ratio (rows 30/70, 50/50, 70/30, in canonical pair order) against
    what was predicted (the three ratios when the pair is right, ``wrong pair``, ``single``).
    ``wrong pair`` also takes empty or 3+-emotion predictions and a right pair whose saliences
    are not 50/50, 70/30 or 30/70 (possible only in hand-made prediction files).

    Returns ``{"rows": [...], "cols": [...], "counts": [[...]]}``; e.g. counts[2][1] is how
    often a 70/30 blend was predicted as 50/50 with the right pair.
    """
    pm, pt, tt = map(np.asarray, (pred_mask, pred_target, true_target))
    blend = TARGET_IS_BLEND[tt]
    counts = np.zeros((3, 5), dtype=np.int64)
    for i in np.flatnonzero(blend):
        true_ratio = (tt[i] - 6) % 3
        true_set = TARGET_TO_SET[tt[i]]
        if pt[i] >= 0 and TARGET_IS_BLEND[pt[i]] and TARGET_TO_SET[pt[i]] == true_set:
            col = (pt[i] - 6) % 3
        elif bin(int(pm[i])).count("1") == 1:
            col = 4
        else:
            col = 3
        counts[true_ratio, col] += 1
    return {
        "rows": [f"{r}/{100 - r}" for r in RATIOS],
        "cols": list(RATIO_OUTCOMES),
        "counts": counts.tolist(),
    }


def single_emotion_scores(pred_target: np.ndarray, true_target: np.ndarray) -> dict:
    """The single-label view for corpora without blends (speech-emotion conventions), over
    clips whose true label is one emotion:

    * ``confusion``: 6x6 counts, rows true, columns predicted, in :data:`EMOTIONS` order;
      ``other`` counts per true emotion the predictions that are no single emotion (a blend
      or nothing): they are wrong and count in recall;
    * ``accuracy``: correct / clips;
    * ``uar``: unweighted average recall, the mean recall over the emotions that occur;
    * ``macro_f1``: mean F1 over the emotions that occur in the truth or the predictions.
    """
    p = np.asarray(pred_target, dtype=np.int64)
    t = np.asarray(true_target, dtype=np.int64)
    keep = (t >= 0) & (t < len(EMOTIONS))
    p, t = p[keep], t[keep]
    k = len(EMOTIONS)
    single = (p >= 0) & (p < k)
    conf = np.zeros((k, k), dtype=np.int64)
    np.add.at(conf, (t[single], p[single]), 1)
    other = np.bincount(t[~single], minlength=k).astype(np.int64)
    n = len(t)
    rows = conf.sum(axis=1) + other
    cols = conf.sum(axis=0)
    tp = np.diag(conf).astype(np.float64)
    present = rows > 0
    recall = np.divide(tp, rows, out=np.zeros(k), where=rows > 0)
    precision = np.divide(tp, cols, out=np.zeros(k), where=cols > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    used = present | (cols > 0)
    return {
        "n_clips": int(n),
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "uar": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[used].mean()) if used.any() else 0.0,
        "recall": {e: float(recall[i]) for i, e in enumerate(EMOTIONS) if present[i]},
        "labels": list(EMOTIONS),
        "confusion": conf.tolist(),
        "other": other.tolist(),
    }


__all__ = [
    "single_emotion_scores",
    "acc_presence", "acc_salience", "score_codes", "score_labels", "score_predictions", "score",
    "ScoringError", "DictScore", "confusion_matrix", "per_class", "per_emotion",
    "per_configuration", "CONFUSION_COLUMNS", "unwrap_predictions", "TARGETS",
]
