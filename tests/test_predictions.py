"""blemore.predictions: the one probability-table reader (blemore's own CSVs and the official
form), the shared challenge-entry check and strict JSON (issue 11)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from blemore.bundle import Predictions
from blemore.cli import cli
from blemore.errors import BlemoreError
from blemore.labels import EMOTIONS, TARGETS, encode_labels, format_clip_id
from blemore.predictions import ProbabilityTableError, entry_problems, load_json_strict, read_probabilities
from blemore.submission import load_predictions


def _labels_probs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    labels = [TARGETS[i] for i in rng.integers(0, 36, n)]
    ids = [format_clip_id(100 + i % 5, lab, level=1 + i % 4, version=i) for i, lab in enumerate(labels)]
    soft = np.stack([t.soft() for t in labels])
    p = 0.6 * soft + 0.4 * rng.dirichlet(np.ones(6), size=n)
    return ids, labels, p / p.sum(1, keepdims=True)


def _run_folder_csv(path, ids, p):
    """The columns of a run folder's predictions/validation.csv (experiment._prediction_frame)."""
    df = pd.DataFrame({"clip_id": ids, "actor": ["A1"] * len(ids), "fold": 0, "true": "x", "pred": "y",
                       "true_target": 0, "pred_target": 0, "pred_mask": 1})
    for i, e in enumerate(EMOTIONS):
        df[f"p_{e}"] = np.round(p[:, i], 6)
    df.to_csv(path, index=False)
    return path


def test_reads_blemores_own_tables_and_the_official_form(tmp_path):
    ids, labels, p = _labels_probs()
    run = _run_folder_csv(tmp_path / "validation.csv", ids, p)
    got_ids, got = read_probabilities(run)
    assert got_ids == ids and np.allclose(got, p, atol=1e-6)
    # predict's CSV (bundle.Predictions.table): clip_id, emotions, salience, p_* rounded to 4 places
    mask, target = encode_labels(labels)
    table = Predictions(ids, p, mask, target).table()
    table.to_csv(tmp_path / "predict.csv", index=False)
    got_ids, got = read_probabilities(tmp_path / "predict.csv")
    assert got_ids == ids and np.allclose(got, p, atol=1e-4)
    assert read_probabilities(table).ids == ids  # a DataFrame works too
    # the official form, columns shuffled, names in capitals, a BOM
    off = pd.DataFrame(p, columns=[e.upper() for e in EMOTIONS])
    off.insert(3, "Filename", [i + ".mov" for i in ids])
    (tmp_path / "off.csv").write_text("\ufeff" + off.to_csv(index=False), encoding="utf-8")
    got_ids, got = read_probabilities(tmp_path / "off.csv")
    assert got_ids == [i + ".mov" for i in ids] and np.array_equal(got, p)


def test_clear_errors_name_the_file_and_every_problem(tmp_path):
    semi = tmp_path / "semi.csv"
    semi.write_text("filename;ang;disg;fea;hap;sad;neu\nx;1;0;0;0;0;0\n")
    with pytest.raises(ProbabilityTableError, match=r"semi\.csv: missing column.*semicolon-separated"):
        read_probabilities(semi)
    few = tmp_path / "few.csv"
    few.write_text("clip_id,p_ang,p_disg,p_fea\nx,1,0,0\n")
    with pytest.raises(ProbabilityTableError, match=r"few\.csv: missing column\(s\) p_hap, p_sad, p_neu"):
        read_probabilities(few)
    bad = tmp_path / "bad.csv"
    bad.write_text("clip_id,p_ang,p_disg,p_fea,p_hap,p_sad,p_neu\nx,1.5,0,0,0,0,nan\nx,1,0,0,0,0,0\n,0,0,0,0,0,1\n")
    with pytest.raises(ProbabilityTableError) as e:
        read_probabilities(bad)
    msg = str(e.value)
    assert "bad.csv" in msg and "appear more than once: x" in msg and "empty clip_id in row(s) 4" in msg
    assert "1.5 is not a probability" in msg and "'nan' is not a finite number" in msg
    for content, what in ((b"", "empty"), (b"\x80\x81abc", "not a UTF-8"), (b"clip_id,p_ang\n", "missing")):
        (tmp_path / "x.csv").write_bytes(content)
        with pytest.raises(ProbabilityTableError, match=what):
            read_probabilities(tmp_path / "x.csv")
    with pytest.raises(ProbabilityTableError, match="not found"):
        read_probabilities(tmp_path / "absent.csv")
    assert issubclass(ProbabilityTableError, BlemoreError) and issubclass(ProbabilityTableError, ValueError)


def _cli(*args, ok=True):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert (res.exit_code == 0) == ok, res.output
    assert "Traceback" not in res.output
    return res


def test_calibrate_accepts_a_run_folders_validation_csv(tmp_path):
    """issue 11: calibrate rejected every probability CSV blemore writes (clip_id + p_ang...)."""
    ids, _, p = _labels_probs(80)
    path = _run_folder_csv(tmp_path / "validation.csv", ids, p)
    got = json.loads(_cli("calibrate", path, "--json").output)
    assert got["n_clips"] == 80 and got["acc_presence"] > 0.5


def test_decode_accepts_predicts_csv(tmp_path):
    """issue 11: decode rejected predict's CSV (clip_id + p_ang...)."""
    ids, labels, p = _labels_probs(30)
    mask, target = encode_labels(labels)
    Predictions(ids, p, mask, target).table().to_csv(tmp_path / "pred.csv", index=False)
    _cli("decode", tmp_path / "pred.csv", "--alpha", "0.3", "--beta", "0.1", "-o", tmp_path / "out.json")
    assert set(json.loads((tmp_path / "out.json").read_text())["predictions"]) == set(ids)


def test_duplicate_json_keys_are_refused(tmp_path):
    """issue 11: duplicate keys silently kept the last prediction."""
    f = tmp_path / "dup.json"
    f.write_text('{"predictions": {"test_0001.mov": [{"emotion": "hap", "salience": 100}],'
                 ' "test_0001.mov": [{"emotion": "sad", "salience": 100}]}}')
    with pytest.raises(BlemoreError, match=r"dup\.json: the key 'test_0001\.mov' appears twice"):
        load_predictions(f)
    g = tmp_path / "huge.json"
    g.write_text('{"a": [{"emotion": "hap", "salience": ' + "9" * 5000 + "}]}")
    with pytest.raises(BlemoreError, match="huge.json"):
        load_json_strict(g)


def test_entry_problems():
    assert entry_problems("k", [{"emotion": "hap", "salience": 100}]) == []
    assert entry_problems("k", [{"emotion": "hap", "salience": 70}, {"emotion": "sad", "salience": 30.0}]) == []
    assert entry_problems("k", [{"emotion": "hap", "salience": "100"}], numeric_strings=True) == []
    assert "not a JSON number" in entry_problems("k", [{"emotion": "hap", "salience": "100"}])[0]
    assert "not a JSON number" in entry_problems("k", [{"emotion": "hap", "salience": True}])[0]
    assert "not a JSON number" in entry_problems("k", [{"emotion": "hap", "salience": 10 ** 400}])[0]
    assert entry_problems("k", [], strict=False) == []
    assert all(p.startswith("k:") for p in entry_problems("k", [{"emotion": 3, "salience": -1}, 4]))


def test_score_with_metadata_never_scores_clips_outside_it(tmp_path):
    """issue 11: score --metadata labelled predicted clips outside the metadata from their ids."""
    from blemore.dataset import clip_table, write_metadata

    ids, labels, _ = _labels_probs(10)
    meta = tmp_path / "meta.csv"
    write_metadata(clip_table(ids[:8], labels=labels[:8]), meta)
    # every prediction right for the 8 metadata clips, wrong for the 2 outside it
    preds = {i: lab.to_prediction() for i, lab in zip(ids[:8], labels[:8])}
    preds.update({i: [{"emotion": "neu", "salience": 100}] if lab.emotions != ("neu",) else
                  [{"emotion": "hap", "salience": 100}] for i, lab in zip(ids[8:], labels[8:])})
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"predictions": preds}))
    r = _cli("score", f, "--metadata", meta, ok=False)
    assert "2 predicted clip(s) are not in the metadata" in r.output and ids[8] in r.output
    got = json.loads(_cli("score", f, "--metadata", meta, "--allow-partial", "--json").output)
    assert got["n_clips"] == 8 and got["acc_presence"] == 1.0


def test_score_rejects_what_submit_rejects(tmp_path):
    """issue 11: duplicate emotion / -5 / 60+60 / [] / duplicate keys were scored."""
    ids, labels, _ = _labels_probs(3)
    for bad in ('[{"emotion": "hap", "salience": 50}, {"emotion": "hap", "salience": 50}]',
                '[{"emotion": "hap", "salience": -5}]', '[]',
                '[{"emotion": "hap", "salience": 60}, {"emotion": "sad", "salience": 60}]'):
        body = ", ".join(f'"{i}": ' + (bad if k == 0 else json.dumps(lab.to_prediction()))
                         for k, (i, lab) in enumerate(zip(ids, labels)))
        (tmp_path / "p.json").write_text("{" + body + "}")
        assert "Traceback" not in _cli("score", tmp_path / "p.json", ok=False).output
    body = ", ".join(f'"{i}": ' + json.dumps(lab.to_prediction()) for i, lab in zip(ids, labels))
    (tmp_path / "d.json").write_text("{" + body + f', "{ids[0]}": [{{"emotion": "hap", "salience": 100}}]' + "}")
    assert "appears twice" in _cli("score", tmp_path / "d.json", ok=False).output
