"""Typed results: RunResult.to_dict() is exactly the record the runner assembles (and the
results.json it writes), and the frames carry the same numbers."""
import copy
import json
import math

import pandas as pd
import pytest

from blemore import experiment
from blemore.config import ExperimentConfig
from blemore.results import FoldResult, RunResult, Score, Spread
from blemore.synth.features import generate_feature_corpus


def _dumps(d):
    return json.dumps(d, indent=2, default=str)  # key order matters: the file must stay the same


def test_small_types_round_trip():
    f = {"fold": 3, "n_clips": 40, "n_blends": 22, "acc_presence": 0.5, "acc_salience": 0.25, "epoch": 7,
         "params": {"alpha": 0.1, "beta": 0.3}, "weights": None, "selection_score": 0.4, "train_seconds": 1.5,
         "something_new": [1]}
    fr = FoldResult.from_dict(f)
    assert _dumps(fr.to_dict()) == _dumps(f)
    assert (fr.alpha, fr.beta, fr.score) == (0.1, 0.3, Score(0.5, 0.25, 40, 22))
    row = fr.to_frame().iloc[0]
    assert row["alpha"] == 0.1 and row["acc_salience"] == 0.25 and row["epoch"] == 7
    assert Spread.from_dict({"mean": 1.0, "std": 0.0, "folds": [1.0]}).to_dict() == {"mean": 1.0, "std": 0.0, "folds": [1.0]}


@pytest.mark.slow
def test_run_result_is_the_record_and_the_file(tmp_path, monkeypatch):
    corpus = generate_feature_corpus(tmp_path / "c", n_train_actors=5, n_test_actors=1, n_train_clips=None,
                                     n_test_clips=None, clips_per_actor=36, dim=4, frames=(3, 5), signal=2.5, seed=5)
    records = []
    real = RunResult.from_record.__func__

    def spy(cls, config, record, *a, **k):  # what the runner assembled, before any typing
        records.append(copy.deepcopy(record))
        return real(cls, config, record, *a, **k)

    monkeypatch.setattr(RunResult, "from_record", classmethod(spy))
    cfg = ExperimentConfig(metadata=str(corpus.train_metadata), test_metadata=str(corpus.test_metadata),
                           features=[str(corpus.sources["video"])], head="linear", preset="fast",
                           train={"epochs": 3, "batch_size": 64, "lr": 3e-2}, threads=1, plots=False,
                           out=str(tmp_path / "run"))
    r = experiment.run_experiment(cfg, progress=False)
    assert isinstance(r, RunResult) and len(records) == 1
    record = records[0]
    assert "files" not in record and r.files["results"] == "results.json"
    written = (tmp_path / "run" / "results.json").read_text()
    assert written == _dumps({**record, "files": r.files}) + "\n"  # the file is the record plus its files
    assert _dumps(r.to_dict()) == written.rstrip("\n")
    assert r.results == r.to_dict() and r["validation"] == record["validation"]  # dict-style access kept
    # typed fields carry the record's numbers
    val = record["validation"]
    assert r.validation.presence.mean == val["acc_presence"]["mean"]
    assert [f.fold for f in r.folds] == [f["fold"] for f in val["folds"]]
    assert r.test.score.presence == record["test"]["acc_presence"] and r.test.epoch == record["test"]["epoch"]
    assert set(r.trivial) == {"single", "blend"}
    frame = r.to_frame()
    assert list(frame["acc_presence"]) == [f["acc_presence"] for f in val["folds"]]
    assert list(frame["alpha"]) == [f["params"]["alpha"] for f in val["folds"]]
    s = r.summary()
    assert isinstance(s, pd.DataFrame) and list(s.index) == ["acc_presence", "acc_salience"]
    assert s.loc["acc_salience", "validation_std"] == val["acc_salience"]["std"]
    assert s.loc["acc_presence", "test"] == record["test"]["acc_presence"]
    assert s.loc["acc_presence", "trivial_blend"] == record["trivial"]["blend"]["acc_presence"]["mean"]
    assert s.loc["acc_presence", "pooled"] == val["pooled"]["acc_presence"]
    # a run without test labels: no test column value
    r2 = RunResult.from_record(cfg, {k: v for k, v in record.items() if k != "test"})
    assert math.isnan(r2.summary().loc["acc_presence", "test"]) and "test" not in r2.to_dict()
