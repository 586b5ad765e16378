"""CLI round trips for score / decode / calibrate / submit (click's CliRunner)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from blemore.cli import cli
from blemore.dataset import clip_table, make_folds, write_metadata
from blemore.decode import calibrate, save_probabilities
from blemore.labels import TARGETS, encode_labels, format_clip_id
from blemore.submission import read_submission, template_keys


def _run(*args, ok=True):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    if ok:
        assert res.exit_code == 0, res.output
    else:
        assert res.exit_code != 0, res.output
        assert "Traceback" not in res.output and isinstance(res.exception, SystemExit), res.output
    return res


def _probs(labels, seed=0):
    rng = np.random.default_rng(seed)
    soft = np.stack([t.soft() for t in labels])
    return 0.55 * soft + 0.45 * rng.dirichlet(np.ones(6), size=len(labels))


@pytest.fixture()
def train_probs(tmp_path):
    rng = np.random.default_rng(1)
    labels = [TARGETS[i] for i in rng.integers(0, 36, 120)]
    ids = [format_clip_id(100 + i % 7, lab, level=1 + i % 4, version=i) for i, lab in enumerate(labels)]
    path = save_probabilities(tmp_path / "val_probs.csv", [i + ".mov" for i in ids], _probs(labels))
    return path, ids, labels


def test_calibrate_decode_score_round_trip(tmp_path, train_probs):
    path, ids, labels = train_probs
    res = _run("calibrate", path, "--json")
    got = json.loads(res.output)
    _, tt = encode_labels(labels)
    names = pd.read_csv(path)["filename"]
    probs = pd.read_csv(path)[["ang", "disg", "fea", "hap", "sad", "neu"]].to_numpy()
    ref = calibrate(probs, tt)
    for k in ("alpha", "beta", "acc_presence", "acc_salience", "presence_only", "salience_only"):
        assert got[k] == getattr(ref, k)
    assert got["n_clips"] == 120 and got["n_blends"] == int(sum(t.is_blend for t in labels))
    assert len(names) == 120

    out = tmp_path / "preds.json"
    res = _run("decode", path, "--alpha", repr(got["alpha"]), "--beta", repr(got["beta"]), "-o", out)
    assert "Wrote 120 predictions" in res.output
    scored = json.loads(_run("score", out, "--json").output)
    assert scored["acc_presence"] == got["acc_presence"] and scored["acc_salience"] == got["acc_salience"]
    assert scored["n_clips"] == 120 and scored["n_blends"] == got["n_blends"]

    human = _run("score", out, "--breakdown").output
    assert "ACC_presence" in human and "ACC_salience" in human and "per emotion" in human
    human = _run("calibrate", path, "--grid-size", "5", "-o", tmp_path / "best.json").output
    for k in ("alpha", "beta", "acc_presence", "acc_salience", "presence_only", "salience_only"):
        assert k in human
    assert "grid 5 x 5" in human and (tmp_path / "best.json").exists()


def test_calibrate_options(train_probs):
    path, _, _ = train_probs
    got = json.loads(_run("calibrate", path, "--alphas", "0.2,0.4", "--betas", "0.1", "--weights", "1", "0",
                          "--json", "--full-grid").output)
    assert got["alpha"] in (0.2, 0.4) and got["beta"] == 0.1 and got["grid"] == [2, 1]
    assert got["score"] == got["acc_presence"] == got["presence_only"] and len(got["salience_grid"]) == 2
    res = _run("calibrate", path, "--alphas", "0.2,x", ok=False)
    assert "comma-separated numbers" in res.output


def test_anonymised_ids_need_metadata(tmp_path):
    rng = np.random.default_rng(2)
    labels = [TARGETS[i] for i in rng.integers(0, 36, 30)]
    ids = [f"test_{i:04d}" for i in range(1, 31)]
    meta = tmp_path / "test_metadata.csv"
    write_metadata(clip_table(ids, labels=labels), meta)
    probs = save_probabilities(tmp_path / "p.csv", [i + ".mov" for i in ids], _probs(labels))
    res = _run("calibrate", probs, ok=False)
    assert "30 clip(s)" in res.output and "--metadata" in res.output
    got = json.loads(_run("calibrate", probs, "--metadata", meta, "--json").output)
    out = tmp_path / "pred.json"
    _run("decode", probs, "--alpha", repr(got["alpha"]), "--beta", repr(got["beta"]), "-o", out)
    assert "--metadata" in _run("score", out, ok=False).output
    s = json.loads(_run("score", out, "-m", meta, "--json").output)
    assert (s["acc_presence"], s["acc_salience"]) == (got["acc_presence"], got["acc_salience"])
    # a missing clip is an error that names it, unless --allow-partial
    preds = json.loads(out.read_text())
    del preds["predictions"]["test_0007.mov"]
    out.write_text(json.dumps(preds))
    assert "test_0007" in _run("score", out, "-m", meta, ok=False).output
    s = json.loads(_run("score", out, "-m", meta, "--allow-partial", "--json").output)
    assert s["partial"] is True and s["n_clips"] == 29 and s["missing"] == ["test_0007"]
    assert "PARTIAL" in _run("score", out, "-m", meta, "--allow-partial").output


def test_score_fold_option(tmp_path, train_probs):
    path, ids, labels = train_probs
    table = make_folds(clip_table(ids), k=3)
    meta = tmp_path / "train_metadata.csv"
    write_metadata(table, meta)
    out = tmp_path / "preds.json"
    _run("decode", path, "--alpha", "0.3", "--beta", "0.1", "-o", out)
    preds = json.loads(out.read_text())["predictions"]
    fold0 = set(table["clip_id"][table["fold"] == 0])
    only0 = {k: v for k, v in preds.items() if k[:-4] in fold0}
    (tmp_path / "f0.json").write_text(json.dumps({"predictions": only0}))
    s = json.loads(_run("score", tmp_path / "f0.json", "-m", meta, "--fold", "0", "--json").output)
    assert s["n_clips"] == len(fold0) and "partial" not in s
    assert "no prediction" in _run("score", tmp_path / "f0.json", "-m", meta, ok=False).output
    assert "no label" in _run("score", out, "-m", meta, "--fold", "0", ok=False).output
    assert "--fold needs --metadata" in _run("score", out, "--fold", "0", ok=False).output


def test_submit(tmp_path):
    keys = template_keys()
    rng = np.random.default_rng(3)
    labels = [TARGETS[i] for i in rng.integers(0, 36, len(keys))]
    probs = save_probabilities(tmp_path / "test_probs.csv", [k[:-4] for k in keys], _probs(labels))
    preds = tmp_path / "test_preds.json"
    _run("decode", probs, "--alpha", "0.3", "--beta", "0.1", "-o", preds)
    zpath = tmp_path / "submission.zip"
    res = _run("submit", preds, "-o", zpath)
    assert "594 clips" in res.output
    sub = read_submission(zpath)
    assert list(sub["predictions"]) == keys
    # a broken file: non-zero exit, every problem listed, nothing written
    obj = json.loads(preds.read_text())
    del obj["predictions"]["test_0003"]
    obj["predictions"]["test_0004"] = [{"emotion": "joy", "salience": 100}]
    preds.write_text(json.dumps(obj))
    res = _run("submit", preds, "-o", tmp_path / "bad.zip", ok=False)
    assert "test_0003.mov: no prediction" in res.output and "unknown emotion 'joy'" in res.output
    assert "2 problem(s)" in res.output and not (tmp_path / "bad.zip").exists()


def test_clean_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("filename,ang\nx,1\n")
    assert "missing column" in _run("decode", bad, "--alpha", ".3", "--beta", ".1", "-o", tmp_path / "o.json",
                                    ok=False).output
    assert "missing column" in _run("calibrate", bad, ok=False).output
    (tmp_path / "p.json").write_text('{"predictions": {"nonsense": [{"emotion": "hap", "salience": 100}]}}')
    assert "malformed" in _run("score", tmp_path / "p.json", ok=False).output
    (tmp_path / "q.json").write_text("{not json")
    assert "not valid JSON" in _run("score", tmp_path / "q.json", ok=False).output
    assert "not valid JSON" in _run("submit", tmp_path / "q.json", "-o", tmp_path / "z.zip", ok=False).output
    _run("score", tmp_path / "absent.json", ok=False)
