"""The top-level API: lazy names, no torch on import, load_model(...).predict on features and
media -> a DataFrame, score on that DataFrame."""
import warnings

import numpy as np
import pandas as pd
import pytest

import blemore
from blemore.labels import EMOTIONS
from helpers import mark_as_egemaps, run_python

COLUMNS = ["clip", "emotions", "saliences", "label", *[f"p_{e}" for e in EMOTIONS]]


def test_import_is_light_and_names_resolve():
    code = ("import sys, blemore\n"
            "heavy = [m for m in ('torch', 'pandas', 'av', 'sklearn') if m in sys.modules]\n"
            "print(heavy)")
    assert run_python(code) == "[]"
    from blemore.decode import calibrate
    from blemore.experiment import run_experiment, train_model

    assert blemore.benchmark is run_experiment and blemore.train is train_model and blemore.calibrate is calibrate
    for name in blemore.__all__:
        assert getattr(blemore, name) is not None
    assert set(blemore.__all__) <= set(dir(blemore))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        blemore.nope  # noqa: B018
    import blemore.extract as module  # the submodule rebinds the name: still callable, still the function's job

    assert callable(blemore.extract) and module.extract.__name__ == "extract"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny model on synthetic features whose store says they are eGeMAPS descriptors (25 per
    10 ms), so the model can also extract its features from media files."""
    from blemore.config import ExperimentConfig
    from blemore.synth.features import generate_feature_corpus

    root = tmp_path_factory.mktemp("api")
    corpus = generate_feature_corpus(root / "corpus", n_train_actors=5, n_test_actors=1, n_train_clips=None,
                                     n_test_clips=None, clips_per_actor=36, sources=("audio",), dim=25,
                                     frames=(4, 8), signal=2.5, seed=7)
    mark_as_egemaps(corpus.sources["audio"])
    blemore.train(ExperimentConfig(metadata=str(corpus.train_metadata), features=[str(corpus.sources["audio"])],
                                   head="linear", preset="fast", train={"epochs": 2, "batch_size": 64},
                                   threads=1, plots=False, model_dir=str(root / "model")), progress=False)
    return root / "model", corpus


def test_load_model_predicts_features_and_media(model_dir, tmp_path):
    from media_fixtures import make_voice_file

    mdir, corpus = model_dir
    model = blemore.load_model(mdir)
    assert model.source_names == ["audio"]  # the bundle's attributes are the model's
    folder = corpus.sources["audio"]
    test_ids = list(pd.read_csv(corpus.test_metadata)["filename"].str.replace(".mov", "", regex=False))
    one_npy = folder / f"{test_ids[0]}.npy"
    media = make_voice_file(tmp_path / "A999_hap_int1_ver1.wav", seconds=1.0)
    before = {p.name for p in tmp_path.iterdir()}
    table = model.predict([folder, media], progress=False)
    assert list(table.columns) == COLUMNS
    n_clips = len(list(folder.glob("*.npy")))
    assert len(table) == n_clips + 1 and table["clip"].iloc[-1] == "A999_hap_int1_ver1"
    assert {p.name for p in tmp_path.iterdir()} == before  # the temporary store is gone
    np.testing.assert_allclose(table[[f"p_{e}" for e in EMOTIONS]].sum(axis=1), 1, atol=1e-3)
    # the columns agree with each other and with the bundle's own predictions
    for _, row in table.iterrows():
        if row["saliences"] == "100":
            assert row["label"] == row["emotions"] and "+" not in row["emotions"]
        elif row["saliences"]:
            assert row["label"] == f"{row['emotions']} {row['saliences']}"
    ref = model.bundle.predict(folder)
    feat_rows = table.iloc[:-1].set_index("clip")
    assert list(feat_rows.index) == ref.clip_ids and list(feat_rows["label"]) == ref.labels()
    # single .npy files, and a store folder holding the model's source
    t1 = model.predict(one_npy, progress=False)
    assert list(t1["clip"]) == [test_ids[0]] and t1["label"].iloc[0] == feat_rows.loc[test_ids[0], "label"]
    t2 = model.predict(folder.parent, progress=False)  # the corpus folder: a store with "audio" in it
    assert list(t2["label"]) == list(feat_rows["label"])
    # score takes the DataFrame as it is
    s = blemore.score(table.iloc[:-1], corpus.train_metadata, allow_partial=True)
    assert s.partial and s.n_clips == len(pd.read_csv(corpus.train_metadata))
    assert 0 <= s.acc_presence <= 1


def test_predict_errors_name_the_input(model_dir, tmp_path):
    from blemore.bundle import BundleError

    mdir, _ = model_dir
    model = blemore.load_model(mdir)
    with pytest.raises(BundleError, match="no such file"):
        model.predict([tmp_path / "missing.mp4"])
    with pytest.raises(BundleError, match="nothing to predict"):
        model.predict([])
    bad = tmp_path / "A1_hap_int1_ver1.wav"
    bad.write_bytes(b"not audio")
    with warnings.catch_warnings(record=True), pytest.raises(BundleError):
        model.predict([bad], progress=False)  # nothing predictable: one error that says why
