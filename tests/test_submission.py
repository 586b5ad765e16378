"""Tests for blemore.submission: keys, JSON/zip writing, validation against the official template."""
from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path

import pytest

from blemore.labels import Label
from blemore.submission import (
    ZIP_MEMBER,
    SubmissionError,
    load_predictions,
    load_template,
    make_submission,
    read_submission,
    submission_key,
    template_keys,
    validate_submission,
    write_predictions,
    write_submission,
)

SHARED = Path("/work/shared/blemore/submission_template.json")


@pytest.fixture(scope="module")
def template():
    return load_template()


def test_packaged_template_is_the_official_one(template):
    keys = template_keys()
    assert len(keys) == 594 and keys[0] == "test_0001.mov" and keys[-1] == "test_0594.mov"
    assert len(set(keys)) == 594
    if SHARED.exists():  # the copy shipped in the package is byte-for-byte the official file
        assert json.loads(SHARED.read_text()) == template


def test_official_template_is_valid(template):
    assert validate_submission(template) == []
    assert validate_submission(template, template=template) == []
    if SHARED.exists():
        assert validate_submission(template, template=SHARED) == []


@pytest.mark.parametrize("edit, expected", [
    (lambda p: p.pop("test_0005.mov"), "test_0005.mov: no prediction"),
    (lambda p: p.__setitem__("test_0595.mov", [{"emotion": "hap", "salience": 100}]),
     "test_0595.mov: not a clip of the test set"),
    (lambda p: p.__setitem__("test_0001", p.pop("test_0001.mov")), "did you mean 'test_0001.mov'"),
    (lambda p: p.__setitem__("test_0001.mov", [{"emotion": "joy", "salience": 100}]), "unknown emotion 'joy'"),
    (lambda p: p.__setitem__("test_0001.mov", [{"emotion": "hap", "salience": 90}]), "sum to 90, not 100"),
    (lambda p: p.__setitem__("test_0001.mov", [{"emotion": "hap", "salience": "100"}]), "not a JSON number"),
    (lambda p: p.__setitem__("test_0001.mov", []), "one or two emotions expected, got 0"),
    (lambda p: p.__setitem__("test_0001.mov", [{"emotion": e, "salience": 100 / 3} for e in ("ang", "hap", "sad")]),
     "one or two emotions expected, got 3"),
    (lambda p: p.__setitem__("test_0001.mov", [{"emotion": "hap", "salience": 60}, {"emotion": "sad", "salience": 40}]),
     "60/40 are not 50/50"),
    (lambda p: p.__setitem__("test_0001.mov", [{"emotion": "neu", "salience": 50}, {"emotion": "sad", "salience": 50}]),
     "neutral cannot be part of a blend"),
    (lambda p: p.__setitem__("test_0001.mov", [{"emotion": "sad", "salience": 50}, {"emotion": "sad", "salience": 50}]),
     "the same emotion 'sad' twice"),
    (lambda p: p.__setitem__("test_0001.mov", [{"emotion": "sad"}]), "must be an object with 'emotion' and 'salience'"),
    (lambda p: p.__setitem__("test_0001.mov", {"emotion": "sad", "salience": 100}), "must be a list"),
])
def test_broken_copies_fail_with_the_problem(template, edit, expected):
    broken = copy.deepcopy(template)
    edit(broken["predictions"])
    problems = validate_submission(broken)
    assert len(problems) >= 1 and any(expected in p for p in problems), problems
    with pytest.raises(SubmissionError) as e:
        validate_submission(broken, raise_error=True)
    assert e.value.problems == problems


def test_every_problem_is_listed(template):
    broken = copy.deepcopy(template)
    p = broken["predictions"]
    for k in list(p)[:100]:
        del p[k]
    p["test_0200.mov"] = [{"emotion": "joy", "salience": 100}]
    problems = validate_submission(broken)
    assert len(problems) == 101
    with pytest.raises(SubmissionError, match="and 51 more"):
        validate_submission(broken, raise_error=True)
    assert validate_submission({"preds": {}}) and validate_submission([1])


def test_valid_variants_pass(template):
    ok = copy.deepcopy(template)
    p = ok["predictions"]
    p["test_0001.mov"] = [{"emotion": "sad", "salience": 70}, {"emotion": "hap", "salience": 30.0}]
    p["test_0002.mov"] = [{"emotion": "neu", "salience": 100}]
    p["test_0003.mov"] = [{"emotion": "fea", "salience": 69.6}, {"emotion": "ang", "salience": 30.4}]
    assert validate_submission(ok) == []


def test_keys_and_make_submission():
    assert submission_key("test_0001") == submission_key("test_0001.mov") == submission_key("/x/test_0001.mp4") \
        == "test_0001.mov"
    sub = make_submission({"predictions": {"test_0002": Label.blend("hap", 70, "sad", 30),
                                           "test_0001.mov": [{"emotion": "ang", "salience": 100.0}]}})
    assert list(sub["predictions"]) == ["test_0001.mov", "test_0002.mov"]
    assert sub["predictions"]["test_0002.mov"] == [{"emotion": "hap", "salience": 70.0},
                                                   {"emotion": "sad", "salience": 30.0}]
    with pytest.raises(SubmissionError, match="both clip 'test_0001.mov'"):
        make_submission({"test_0001": [], "test_0001.mov": []})


def test_zip_round_trip(tmp_path, template):
    preds = {k.replace(".mov", ""): v for k, v in template["predictions"].items()}
    z = write_submission(preds, tmp_path / "out" / "submission.zip")
    with zipfile.ZipFile(z) as zf:
        assert zf.namelist() == [ZIP_MEMBER]
    assert read_submission(z) == template
    # invalid: nothing is written
    del preds["test_0007"]
    with pytest.raises(SubmissionError, match="test_0007.mov: no prediction"):
        write_submission(preds, tmp_path / "bad.zip")
    assert not (tmp_path / "bad.zip").exists()
    assert not list((tmp_path / "out").glob("*.tmp"))
    write_submission(preds, tmp_path / "partial.zip", validate=False)
    assert len(read_submission(tmp_path / "partial.zip")["predictions"]) == 593
    (tmp_path / "junk.zip").write_text("nope")
    with pytest.raises(ValueError, match="not a readable zip"):
        read_submission(tmp_path / "junk.zip")


def test_predictions_json_round_trip(tmp_path):
    p = write_predictions({"A1_hap_int1_ver1": Label.single("hap")}, tmp_path / "p.json")
    assert json.loads(p.read_text()) == {"predictions": {"A1_hap_int1_ver1": [{"emotion": "hap", "salience": 100.0}]}}
    assert load_predictions(p) == {"A1_hap_int1_ver1": [{"emotion": "hap", "salience": 100.0}]}
    (tmp_path / "bare.json").write_text('{"x": []}')
    assert load_predictions(tmp_path / "bare.json") == {"x": []}
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_predictions(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        load_predictions(tmp_path / "list.json")
