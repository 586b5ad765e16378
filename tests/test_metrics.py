"""Tests for blemore.metrics: ACC_presence / ACC_salience in array and challenge-dict form."""
from __future__ import annotations

import re

import numpy as np
import pytest

from blemore.labels import INVALID, TARGETS, Label, encode_labels
from blemore.metrics import (
    CONFUSION_COLUMNS,
    ScoringError,
    acc_presence,
    acc_salience,
    confusion_matrix,
    per_class,
    per_configuration,
    per_emotion,
    score_codes,
    score_labels,
    score_predictions,
    unwrap_predictions,
)

HAP = Label.single("hap")
NEU = Label.single("neu")
HS73 = Label.blend("hap", 70, "sad", 30)
HS55 = Label.blend("hap", 50, "sad", 50)
AD37 = Label.blend("ang", 30, "disg", 70)


def _p(*pairs):
    return [{"emotion": e, "salience": s} for e, s in pairs]


def reference_score(preds: dict, truth: dict) -> tuple[float, float]:
    """The definition in FACTS.md written out directly, clip by clip."""
    pres, sal = [], []
    for cid, lab in truth.items():
        pred = preds[cid]
        pres.append({d["emotion"] for d in pred} == set(lab.emotions))
        if lab.is_blend:
            ok = len(pred) == 2 and {d["emotion"]: round(float(d["salience"])) for d in pred} == dict(
                zip(lab.emotions, lab.saliences))
            sal.append(ok)
    return float(np.mean(pres)), (float(np.mean(sal)) if sal else 0.0)


def test_presence_and_salience_by_hand():
    truth = {"a": HAP, "b": HS73, "c": HS55, "d": AD37, "e": NEU}
    preds = {
        "a": _p(("hap", 100.0)),                   # presence ok
        "b": _p(("sad", 30), ("hap", 70)),         # both ok, order of emotions irrelevant
        "c": _p(("hap", 70), ("sad", 30)),         # presence ok, salience wrong
        "d": _p(("disg", 100)),                    # one-emotion prediction for a blend: both wrong
        "e": _p(("neu", 50), ("hap", 50)),         # extra emotion: wrong
    }
    s = score_predictions(preds, truth, strict=False)
    assert s.acc_presence == pytest.approx(3 / 5)
    assert s.acc_salience == pytest.approx(1 / 3)
    assert (s.n_clips, s.n_blends, s.partial) == (5, 3, False)
    assert (s.acc_presence, s.acc_salience) == pytest.approx(reference_score(preds, truth))
    assert score_predictions({"predictions": preds}, truth, strict=False).as_dict() == s.as_dict()


@pytest.mark.parametrize("s1, s2", [(70, 30), (70.0, 30.0), ("70", "30"), ("70.0", 30), (69.6, 30.4)])
def test_salience_number_forms(s1, s2):
    truth = {"x": HS73}
    assert score_predictions({"x": _p(("hap", s1), ("sad", s2))}, truth).acc_salience == 1.0
    assert score_predictions({"x": _p(("hap", s2), ("sad", s1))}, truth).acc_salience == 0.0


def test_no_blends_gives_zero_salience_and_empty_arrays():
    s = score_predictions({"a": _p(("hap", 100))}, {"a": HAP})
    assert (s.acc_presence, s.acc_salience, s.n_blends) == (1.0, 0.0, 0)
    assert acc_salience(np.array([0, 1]), np.array([0, 1])) == 0.0
    assert acc_presence(np.array([], dtype=np.int64), np.array([], dtype=np.int64)) == 0.0
    with pytest.raises(ValueError, match="shape"):
        acc_presence(np.zeros(2), np.zeros(3))


def test_unrounded_and_out_of_space_predictions():
    truth = {"a": HS73, "b": HS55}
    preds = {"a": _p(("hap", 60), ("sad", 40)), "b": _p(("hap", 50), ("sad", 50), ("ang", 0))}
    s = score_predictions(preds, truth, strict=False)
    assert (s.acc_presence, s.acc_salience) == (0.5, 0.0) == reference_score(preds, truth)


def test_missing_unknown_and_bad_entries_are_listed():
    truth = {"a": HAP, "b": HS73, "c": NEU}
    preds = {"a.mov": _p(("hap", 100)), "z": _p(("hap", 100))}
    with pytest.raises(ScoringError) as e:
        score_predictions(preds, truth)
    msg = str(e.value)
    assert "2 labelled clip(s) have no prediction: b, c" in msg and "1 predicted clip(s) have no label: z" in msg
    assert len(e.value.problems) == 2
    s = score_predictions(preds, truth, allow_partial=True)
    assert s.partial and s.n_clips == 1 and s.missing == ["b", "c"] and s.unknown == ["z"]
    assert s.as_dict()["partial"] is True and s.as_dict()["n_missing"] == 2
    bad = {"a": _p(("joy", 100)), "b": [{"emotion": "hap"}], "c": "neu", "z": _p(("hap", None))}
    with pytest.raises(ScoringError) as e:
        score_predictions(bad, truth, allow_partial=True)
    assert len(e.value.problems) == 4 and "'joy'" in str(e.value)
    with pytest.raises(ScoringError, match="twice"):
        score_predictions({"a": _p(("hap", 100)), "a.mov": _p(("hap", 100))}, {"a": HAP})
    with pytest.raises(ScoringError, match="no predicted clip has a label"):
        score_predictions({"z": _p(("hap", 100))}, truth, allow_partial=True)
    with pytest.raises(ScoringError, match="expected a mapping"):
        score_predictions([1, 2], truth)  # type: ignore[arg-type]


def test_keys_with_extensions_match_ids():
    s = score_predictions({"test_0001.mov": _p(("sad", 100))}, {"test_0001": Label.single("sad")})
    assert s.acc_presence == 1.0
    assert unwrap_predictions({"predictions": {"a": []}}) == {"a": []}


def test_array_form_matches_dict_form_random():
    rng = np.random.default_rng(0)
    n = 300
    true = [TARGETS[i] for i in rng.integers(0, 36, n)]
    pred = [TARGETS[i] if rng.random() < 0.9 else None for i in rng.integers(0, 36, n)]
    ids = [f"c{i}" for i in range(n)]
    preds = {c: (p.to_prediction() if p is not None else []) for c, p in zip(ids, pred)}
    truth = dict(zip(ids, true))
    d = score_predictions(preds, truth, strict=False)
    a = score_labels(pred, true)
    assert (d.acc_presence, d.acc_salience) == (a["acc_presence"], a["acc_salience"]) == reference_score(preds, truth)
    pm, pt = encode_labels(pred)
    _, tt = encode_labels(true)
    assert score_codes(pm, pt, tt) == a
    with pytest.raises(ValueError):
        score_codes(pm, pt, np.full(n, INVALID))


def test_breakdowns():
    true = [HS73, HS73, HS73, HS55, HAP, AD37]
    pred = [HS73, HS55, HAP, Label.blend("ang", 50, "sad", 50), HAP, None]
    pm, pt = encode_labels(pred)
    _, tt = encode_labels(true)
    cm = confusion_matrix(pt, tt)
    assert cm.shape == (36, 37) and cm.sum() == 6 and len(CONFUSION_COLUMNS) == 37
    assert cm[HS73.target_index(), HS55.target_index()] == 1 and cm[AD37.target_index(), 36] == 1
    rows = {r["label"]: r for r in per_class(pm, pt, tt)}
    assert rows["hap+sad 70/30"]["n"] == 3 and rows["hap+sad 70/30"]["acc_exact"] == pytest.approx(1 / 3)
    assert rows["hap+sad 70/30"]["acc_presence"] == pytest.approx(2 / 3) and rows["ang"]["n"] == 0
    conf = per_configuration(pm, pt, tt)
    c = np.array(conf["counts"])
    # canonical pair (hap, sad) with hap 70: row "70/30"
    assert c[2].tolist() == [0, 1, 1, 0, 1] and c[1].tolist() == [0, 0, 0, 1, 0] and c[0].tolist() == [0, 0, 0, 1, 0]  # empty -> "wrong pair"
    emo = {r["emotion"]: r for r in per_emotion(pm, tt)}
    assert emo["hap"]["support"] == 5 and emo["hap"]["recall"] == pytest.approx(4 / 5)
    assert emo["sad"]["precision"] == pytest.approx(1.0) and emo["sad"]["recall"] == pytest.approx(3 / 4)


@pytest.mark.parametrize("entry, problem", [
    (_p(("hap", 50), ("hap", 50)), "same emotion 'hap' twice"),
    (_p(("hap", -5), ("sad", 105)), "outside [0, 100]"),
    (_p(("hap", 60), ("sad", 60)), "sum to 120"),
    ([], "an empty list"),
    (_p(("hap", 60), ("sad", 40)), "not 50/50, 70/30 or 30/70"),
    (_p(("neu", 50), ("hap", 50)), "neutral cannot be part of a blend"),
])
def test_score_applies_the_submit_entry_check(entry, problem):
    """issue 11: score accepted entries that submit rejects, so local and official scores differed."""
    from blemore.submission import validate_submission

    with pytest.raises(ScoringError, match=re.escape(problem)):
        score_predictions({"a": entry, "b": _p(("hap", 100))}, {"a": HS73, "b": HAP})
    sub = {"predictions": {f"test_{i:04d}.mov": _p(("hap", 100)) for i in range(1, 595)}}
    sub["predictions"]["test_0001.mov"] = entry
    assert any(problem in p for p in validate_submission(sub))


def test_single_emotion_scores_match_a_clip_by_clip_count():
    """Accuracy, UAR, macro-F1 and the 6x6 confusion against plain loops (blend or empty
    predictions are wrong and count as 'other'); blend truths are left out."""
    from blemore.metrics import single_emotion_scores

    rng = np.random.default_rng(3)
    true = rng.integers(0, 6, 300)
    true[:20] = 10  # blend truths: not scored here
    pred = np.where(rng.random(300) < 0.6, true, rng.integers(-1, 36, 300))
    s = single_emotion_scores(pred, true)
    keep = true < 6
    t, p = true[keep], pred[keep]
    conf = [[sum(1 for a, b in zip(t, p) if a == i and b == j) for j in range(6)] for i in range(6)]
    other = [sum(1 for a, b in zip(t, p) if a == i and not 0 <= b < 6) for i in range(6)]
    assert s["confusion"] == conf and s["other"] == other and s["n_clips"] == keep.sum()
    assert s["accuracy"] == pytest.approx(np.mean(t == p))
    recalls = [np.mean(p[t == i] == i) for i in range(6) if (t == i).any()]
    assert s["uar"] == pytest.approx(np.mean(recalls))
    f1s = []
    for i in range(6):
        tp = np.sum((t == i) & (p == i))
        prec = tp / max(np.sum(p == i), 1)
        rec = tp / max(np.sum(t == i), 1)
        if (t == i).any() or (p == i).any():
            f1s.append(0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec))
    assert s["macro_f1"] == pytest.approx(np.mean(f1s))
