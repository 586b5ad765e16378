"""Property-based tests (Hypothesis) of the probability-table reader, the challenge-entry check
and the predictions JSON reader: a right result or a BlemoreError naming the input, nothing
else (issue 11). Profiles: tests/conftest.py."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

hyp = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from blemore.errors import BlemoreError  # noqa: E402
from blemore.labels import EMOTIONS, TARGETS, Label  # noqa: E402
from blemore.metrics import ScoringError, score_predictions  # noqa: E402
from blemore.predictions import (  # noqa: E402
    ProbabilityTableError,
    entry_problems,
    load_json_strict,
    read_probabilities,
)
from blemore.submission import load_predictions, template_keys, validate_submission  # noqa: E402

UNICODE_DIGITS = "\u0660\u0661\u06f3\u0967\uff11"
cells = st.one_of(
    st.floats(0, 1).map(repr), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-3, 3).map(str), st.text(max_size=8), st.just(""), st.just("nan"), st.just("inf"),
    st.just("1e309"), st.integers(4000, 5000).map(lambda n: "0." + "1" * n), st.text(UNICODE_DIGITS, min_size=1, max_size=3),
    st.just("0,5"), st.just(" 0.5 "),
)
id_cells = st.one_of(st.text(max_size=12), st.sampled_from(["A1_ang_int1_ver1", "test_0001.mov", "x", "", "x"]))
col_names = st.sampled_from(["clip_id", "filename", "FileName", " clip_id ", "\ufeffclip_id", "actor", "p_ang", "ang",
                             "P_DISG", "disg", "p_fea", "fea", "p_hap", "hap", "p_sad", "sad", "p_neu", "neu",
                             "NEU", "p_ang", "junk", ""])


@st.composite
def tables(draw):
    """CSV text with a hostile header, cells and separator; sometimes a complete valid table."""
    if draw(st.booleans()):
        cols = ["clip_id"] + [f"p_{e}" for e in EMOTIONS]
        if draw(st.booleans()):
            cols = ["filename"] + list(EMOTIONS)
        extra = draw(st.lists(col_names, max_size=3))
        cols = draw(st.permutations(cols + extra))
    else:
        cols = draw(st.lists(col_names, max_size=9))
    n = draw(st.integers(0, 5))
    rows = []
    for _ in range(n):
        row = []
        for c in cols:
            if c.strip().lstrip("\ufeff").lower() in ("clip_id", "filename"):
                row.append(draw(id_cells))
            else:
                row.append(draw(st.one_of(st.floats(0, 1).map(repr), cells)))
        rows.append(row)
    sep = draw(st.sampled_from([",", ",", ";", "\t", "|"]))
    quote = (lambda v: '"' + v.replace('"', '""') + '"') if sep == "," else (lambda v: v)
    lines = [sep.join(quote(c) for c in cols)] + [sep.join(quote(v) for v in r) for r in rows]
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n"]))


@given(tables())
def test_fuzz_read_probabilities(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("p") / "probs.csv"
    path.write_text(text, encoding="utf-8")
    try:
        ids, p = read_probabilities(path)
    except ProbabilityTableError as e:
        assert str(path) in str(e)
        return
    # a right result: unique non-empty ids, (n, 6) finite values in [0, 1], equal to the cells
    assert p.shape == (len(ids), 6) and len(ids) >= 1 and len(set(ids)) == len(ids) and all(ids)
    assert np.isfinite(p).all() and (p >= -1e-6).all() and (p <= 1 + 1e-6).all()
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    norm = {c.strip().lstrip("\ufeff").lower(): c for c in df.columns}
    prefix = "" if all(e in norm for e in EMOTIONS) else "p_"
    for j, e in enumerate(EMOTIONS):
        assert np.allclose(p[:, j], df[norm[prefix + e]].astype(str).str.strip().astype(float))


@given(st.binary(max_size=200))
def test_fuzz_read_probabilities_bytes(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("b") / "raw.csv"
    path.write_bytes(raw)
    try:
        ids, p = read_probabilities(path)
    except ProbabilityTableError as e:
        assert str(path) in str(e)
        return
    assert p.shape == (len(ids), 6)


# -- challenge entries -----------------------------------------------------------------------
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.integers(10**300, 10**320),
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
                         st.sampled_from(EMOTIONS), st.sampled_from([100, 100.0, 70, 30, 50, "100", "70", 69.6, 30.4]))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["emotion", "salience", "x"]), inner, max_size=3)),
    max_leaves=8)
entry = st.dictionaries(st.sampled_from(["emotion", "salience", "extra"]),
                        st.one_of(st.sampled_from(EMOTIONS), st.sampled_from([100, 70, 30, 50, -5, 60, 100.0001, "70"]),
                                  json_scalars), max_size=3)
entries = st.one_of(json_values, st.lists(entry, max_size=3),
                    st.sampled_from(TARGETS).map(lambda t: t.to_prediction()))

_VALID = {tuple(sorted((d["emotion"], round(float(d["salience"]))) for d in t.to_prediction())) for t in TARGETS}


@given(entries)
def test_fuzz_entry_problems(value):
    problems = entry_problems("k", value)
    assert isinstance(problems, list) and all(isinstance(p, str) and p.startswith("k:") for p in problems)
    # the reference: valid exactly when it is one of the 36 targets' entries (JSON numbers)
    try:
        ok = (isinstance(value, list) and all(isinstance(d, dict) and set(d) == {"emotion", "salience"}
                                               and isinstance(d["salience"], (int, float))
                                               and not isinstance(d["salience"], bool)
                                               and math.isfinite(float(d["salience"])) for d in value)
              and len({d["emotion"] for d in value}) == len(value)
              and abs(sum(float(d["salience"]) for d in value) - 100) <= 1e-6
              and all(0 <= float(d["salience"]) <= 100 for d in value)
              and tuple(sorted((d["emotion"], round(float(d["salience"]))) for d in value)) in _VALID)
    except (OverflowError, TypeError):
        ok = False
    assert (problems == []) == ok, (value, problems)
    if ok:
        assert Label.from_prediction(value).target_index() >= 0


@given(st.dictionaries(st.sampled_from(["a", "b", "a.mov", "test_0001", "c"]), entries, max_size=4))
def test_fuzz_score_predictions(preds):
    truth = {"a": TARGETS[0], "b": TARGETS[7], "c": TARGETS[20]}
    try:
        s = score_predictions(preds, truth, allow_partial=True)
    except ScoringError as e:
        assert e.problems
        return
    assert 0 <= s.acc_presence <= 1 and 0 <= s.acc_salience <= 1 and s.n_clips >= 1


# -- JSON files --------------------------------------------------------------------------------
@st.composite
def json_texts(draw):
    keys = draw(st.lists(st.sampled_from(["test_0001.mov", "test_0002.mov", "predictions", "x"]), max_size=4))
    body = ", ".join(f'"{k}": {json.dumps(draw(entries), allow_nan=True)}' for k in keys)
    text = "{" + body + "}"
    if draw(st.booleans()):
        text = '{"predictions": ' + text + "}"
    mangle = draw(st.sampled_from(["", "trunc", "huge", "bom", "nul"]))
    if mangle == "trunc":
        text = text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    elif mangle == "huge":
        text = text.replace("100", "1" + "0" * 5000, 1)
    elif mangle == "bom":
        text = "\ufeff" + text
    elif mangle == "nul":
        text = text + "\x00"
    return text


@given(json_texts())
def test_fuzz_load_predictions(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("j") / "preds.json"
    path.write_text(text, encoding="utf-8")
    try:
        preds = load_predictions(path)
    except BlemoreError as e:
        assert str(path) in str(e)
        return
    assert isinstance(preds, dict)
    assert load_json_strict(path) is not None


# -- the submission validator ------------------------------------------------------------------
_KEYS = template_keys()
hostile_keys = st.one_of(st.text(max_size=12), st.sampled_from(["test_0001", "test_0001.mp4", "test_\u0661.mov",
                                                                  "test_0595.mov", "test_00001.mov", " test_0001.mov"]))


@given(st.dictionaries(st.sampled_from(_KEYS[:5]), entries, max_size=5), st.lists(hostile_keys, max_size=3),
       st.lists(st.sampled_from(_KEYS), max_size=3, unique=True))
def test_fuzz_validate_submission(changed, extra_keys, dropped):
    sub = {k: [{"emotion": "hap", "salience": 100.0}] for k in _KEYS}
    sub.update(changed)
    for k in extra_keys:
        sub.setdefault(k, [{"emotion": "sad", "salience": 100}])
    for k in dropped:
        sub.pop(k, None)
    problems = validate_submission({"predictions": sub})
    assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
    expected_bad = (set(sub) ^ set(_KEYS)) | {k for k, v in sub.items() if entry_problems(k, v)}
    assert bool(problems) == bool(expected_bad)
    for k in expected_bad:
        assert any(p.startswith(f"{k}:") for p in problems), (k, problems[:5])
