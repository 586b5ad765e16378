"""Other corpora end to end: non-BLEMORE ids through metadata, features, benchmark, predictions
and reports; two-actor and leave-one-actor-out protocols; no-blend salience; cross-corpus."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from blemore.cli import cli
from blemore.dataset import DatasetError, load_metadata
from blemore.labels import EMOTIONS

FAST = ["--preset", "fast", "--epochs", "3", "--batch-size", "64", "--lr", "0.01", "--threads", "1", "--quiet",
        "--no-plots"]
EMO_INDEX = {e: i for i, e in enumerate(EMOTIONS)}


def _corpus(root, name, rows, dim=6, seed=0, corpus_column=True):
    """Metadata CSV + a plain .npy feature folder: rows = (clip_id, actor, emotion)."""
    rng = np.random.default_rng(seed)
    feats = root / f"{name}_features"
    feats.mkdir(parents=True)
    for cid, _, emo in rows:
        x = rng.normal(size=(5, dim)).astype(np.float32)
        x[:, EMO_INDEX[emo] % dim] += 3.0  # the label is in the features
        np.save(feats / f"{cid}.npy", x)
    meta = pd.DataFrame(rows, columns=["filename", "actor", "emotion_1"])
    if corpus_column:
        meta["corpus"] = name
    meta.to_csv(root / f"{name}.csv", index=False)
    return root / f"{name}.csv", feats


def _rows(ids_per_actor, emotions=("ang", "hap", "sad", "neu"), n=6):
    return [(fmt(a, i, e), a, e) for a, fmt in ids_per_actor for i in range(n) for e in emotions]


def _run(args):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


@pytest.mark.slow
def test_two_actor_corpus_default_nested_selection_and_unicode_ids(tmp_path):
    # EmoDB-like ids for one speaker, ids with spaces and non-ASCII letters for the other
    rows = _rows([("03", lambda a, i, e: f"03a{i:02d}{e}a"), ("08", lambda a, i, e: f"Sprecherin ä {i} {e}")])
    meta, feats = _corpus(tmp_path, "tiny", rows)
    r = _run(["benchmark", "--metadata", str(meta), "--features", str(feats), "--out", str(tmp_path / "run"),
              "--json", *FAST])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    val = res["validation"]
    assert val["acc_salience"]["mean"] is None and val["pooled"]["acc_salience"] is None
    assert all(f["acc_salience"] is None for f in val["folds"])
    assert "inner folds made within each training part" in val["inner_folds"] and "by clip" in val["inner_folds"]
    se = val["single_emotion"]
    assert np.array(se["confusion"]).shape == (6, 6) and se["n_clips"] == len(rows)
    assert 0.0 <= se["uar"] <= 1.0 and 0.0 <= se["macro_f1"] <= 1.0
    md = (tmp_path / "run" / "results.md").read_text(encoding="utf-8")
    assert "n/a (no blends)" in md and "UAR" in md and "small corpus:" in md
    assert json.loads((tmp_path / "run" / "results.json").read_text())["validation"]["acc_salience"]["mean"] is None
    preds = pd.read_csv(tmp_path / "run" / "predictions" / "validation.csv", keep_default_na=False)
    assert set(preds["clip_id"]) == {c for c, _, _ in rows}  # ids unchanged, spaces and umlauts included
    assert set(preds["actor"]) == {"tiny:03", "tiny:08"}


@pytest.mark.slow
def test_leave_one_actor_out_and_cross_corpus_report(tmp_path):
    train_rows = _rows([(f"{a:02d}", lambda a, i, e: f"03-01-0{EMO_INDEX[e] + 1}-01-01-0{i}-{a}")
                        for a in (1, 2, 3)], n=4)
    test_rows = _rows([("1001", lambda a, i, e: f"{a}_DFA_{e.upper()}_X{i}")], n=3)
    meta, feats = _corpus(tmp_path, "ravdess", train_rows)
    tmeta, tfeats = _corpus(tmp_path, "cremad", test_rows, corpus_column=False, seed=1)
    for p in tfeats.iterdir():  # one feature folder for both corpora
        p.rename(feats / p.name)
    r = _run(["benchmark", "--metadata", str(meta), "--features", str(feats), "--test-metadata", str(tmeta),
              "--folds", "loso", "--out", str(tmp_path / "run"), "--json", *FAST])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["data"]["folds"] == [0, 1, 2] and "inner_folds" not in res["validation"]
    assert res["data"]["corpora"] == {"train": ["ravdess"], "test": ["cremad"]}
    assert res["test"]["acc_salience"] is None and res["test"]["single_emotion"]["n_clips"] == len(test_rows)
    md = (tmp_path / "run" / "results.md").read_text()
    assert "trained on ravdess, tested on cremad" in md
    sub = json.loads((tmp_path / "run" / "submission.json").read_text())
    keys = set(sub.get("predictions", sub))
    assert {k.rsplit(".", 1)[0] for k in keys} == {c for c, _, _ in test_rows}


def test_path_like_ids_are_refused_with_the_row(tmp_path):
    p = tmp_path / "m.csv"
    pd.DataFrame({"filename": ["ok", "../evil", "..", "a\\b", "x\x00y"], "actor": ["1"] * 5,
                  "emotion_1": ["ang"] * 5}).to_csv(p, index=False)
    with pytest.raises(DatasetError) as e:
        load_metadata(p)
    msg = str(e.value)
    assert "row 3" in msg and "row 4" in msg and "row 5" in msg and "row 6" in msg and "row 2" not in msg


def test_grammar_still_checked_when_columns_exist(tmp_path):
    p = tmp_path / "m.csv"
    pd.DataFrame({"filename": ["A102_ang_int1_ver1", "free id"], "actor": ["A102", "x"],
                  "emotion_1": ["hap", "sad"]}).to_csv(p, index=False)
    with pytest.raises(DatasetError, match="row 2.*label columns say 'hap' but the clip id says 'ang'"):
        load_metadata(p)
    pd.DataFrame({"filename": ["free id"], "emotion_1": ["sad"]}).to_csv(p, index=False)
    with pytest.raises(Exception, match="need label columns.*and an actor column"):
        load_metadata(p)


def test_label_column_composite_form(tmp_path):
    p = tmp_path / "m.csv"
    pd.DataFrame({"filename": ["c1", "c2", "c3"], "speaker": ["s1", "s1", "s2"],
                  "label": ["hap+ang 30/70", "neu", "disg+sad 50/50"]}).to_csv(p, index=False)
    t = load_metadata(p)
    assert [lab.name() for lab in t["label"]] == ["ang+hap 70/30", "neu", "disg+sad 50/50"]
    assert list(t["actor"]) == ["s1", "s1", "s2"] and list(t["is_blend"]) == [True, False, True]
    pd.DataFrame({"filename": ["c1"], "speaker": ["s1"], "label": ["ang+hap"]}).to_csv(p, index=False)
    with pytest.raises(DatasetError, match="row 2 .c1.: label 'ang\\+hap' is not"):
        load_metadata(p)


@pytest.mark.slow
def test_recipes_extract_egemaps_and_cross_corpus_benchmark(tmp_path):
    """EmoDB-named speech (2 speakers) for training, a generic corpus with spaces and umlauts in
    its file names for testing: corpus -> extract egemaps -> benchmark with default options."""
    from media_fixtures import make_voice_file

    emodb, other = tmp_path / "emodb" / "wav", tmp_path / "other"
    emodb.mkdir(parents=True)
    other.mkdir()
    for spk in ("03", "08"):
        for i, letter in enumerate("WFTNWFTNL"):
            make_voice_file(emodb / f"{spk}a0{i}{letter}a.wav", seconds=0.5)
    for i, emo in enumerate(("ang", "hap", "sad")):
        make_voice_file(other / f"Sprecherin ä {emo} {i}.wav", seconds=0.5)
    r = _run(["corpus", "emodb", str(tmp_path / "emodb"), "-o", str(tmp_path / "emodb.csv")])
    assert r.exit_code == 0, r.output
    assert "L 2" in r.output and "wrote 16 clips" in r.output  # boredom dropped, counted
    r = _run(["corpus", "generic", str(other), "-o", str(tmp_path / "other.csv"),
              "--pattern", r"^(?P<actor>\w+) ä (?P<emotion>\w+) "])
    assert r.exit_code == 0, r.output
    store = tmp_path / "store"
    r = _run(["extract", str(emodb), str(other), "-o", str(store), "-e", "egemaps", "-j", "1"])
    assert r.exit_code == 0, r.output
    assert (store / "egemaps" / "Sprecherin ä hap 1.npy").exists()
    r = _run(["benchmark", "--metadata", str(tmp_path / "emodb.csv"), "--features", str(store / "egemaps"),
              "--test-metadata", str(tmp_path / "other.csv"), "--out", str(tmp_path / "run"), *FAST])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "run" / "results.json").read_text(encoding="utf-8"))
    assert res["data"]["corpora"] == {"train": ["emodb"], "test": ["generic"]}
    assert res["validation"]["acc_salience"]["mean"] is None and res["test"]["acc_salience"] is None
    assert "trained on emodb, tested on generic" in (tmp_path / "run" / "results.md").read_text(encoding="utf-8")
    test = pd.read_csv(tmp_path / "run" / "predictions" / "test.csv", keep_default_na=False)
    assert sorted(test["clip_id"]) == ["Sprecherin ä ang 0", "Sprecherin ä hap 1", "Sprecherin ä sad 2"]


@pytest.mark.slow
def test_train_on_a_corpus_without_blends_says_salience_is_undefined(tmp_path):
    rows = _rows([("a", lambda a, i, e: f"{a} {i} {e}"), ("b", lambda a, i, e: f"{a}-{i}-{e}")], n=3)
    meta, feats = _corpus(tmp_path, "tiny", rows)
    r = _run(["train", "--metadata", str(meta), "--features", str(feats), "--out", str(tmp_path / "m"), *FAST[:-1]])
    assert r.exit_code == 0, r.output
    assert "salience n/a (no blends)" in r.output
    info = json.loads((tmp_path / "m" / "bundle.json").read_text())["info"]["cv"]
    assert info["acc_salience"] is None and all(f["acc_salience"] is None for f in info["folds"])


def test_clip_table_takes_free_ids_with_labels_and_actors():
    from blemore.dataset import clip_table
    from blemore.labels import ClipIdError, Label

    t = clip_table(["03a01Wa", "A102_ang_int1_ver1", "ünïcode id"], labels=[Label.single("ang")] * 3,
                   actors=["03", "102", "x"])
    assert list(t["clip_id"]) == ["03a01Wa", "A102_ang_int1_ver1", "ünïcode id"]
    assert list(t["actor"]) == ["03", "A102", "x"]
    with pytest.raises(ClipIdError):
        clip_table(["03a01Wa"], labels=[Label.single("ang")])  # no actors: the grammar applies
    with pytest.raises(DatasetError, match="path separator"):
        clip_table(["a/b"], labels=[Label.single("ang")], actors=["1"])
