import json

import numpy as np
import pytest
import torch

from blemore.bundle import BundleError, ModelBundle
from blemore.config import ExperimentConfig
from blemore.experiment import train_model
from blemore.labels import EMOTIONS
from blemore.store import open_source
from blemore.synth.features import generate_feature_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate_feature_corpus(tmp_path_factory.mktemp("bc"), n_train_actors=10, n_test_actors=2,
                                   n_train_clips=None, n_test_clips=None, clips_per_actor=36, dim=8,
                                   frames=(4, 8), signal=2.5, seed=4)


def _cfg(corpus, **kw):
    base = dict(metadata=str(corpus.train_metadata), features=[str(corpus.sources["video"]), str(corpus.sources["audio"])],
                head="mlp-256", preset="fast", train={"epochs": 4, "batch_size": 64, "lr": 1e-2}, threads=1, plots=False)
    base.update(kw)
    return ExperimentConfig(**base)


@pytest.mark.parametrize("fusion", ["early", "late"])
def test_bundle_round_trip(corpus, tmp_path, fusion):
    torch.set_num_threads(1)
    model = train_model(_cfg(corpus, fusion=fusion, model_dir=str(tmp_path / "m")), progress=False)
    loaded = ModelBundle.load(tmp_path / "m")
    srcs = {"video": corpus.sources["video"], "audio": corpus.sources["audio"]}
    a, b = model.predict(srcs), loaded.predict(srcs)
    assert a.clip_ids == b.clip_ids and len(a.clip_ids) == 36 * 12  # every clip of the sources
    np.testing.assert_array_equal(a.proba, b.proba)
    np.testing.assert_array_equal(a.target, b.target)
    assert loaded.params == model.params and loaded.epochs == model.epochs
    assert len(loaded.parts) == (1 if fusion == "early" else 2)
    m = json.loads((tmp_path / "m" / "bundle.json").read_text())
    assert m["labels"] == list(EMOTIONS) and m["head"]["name"] == "mlp-256"
    assert {"blemore", "torch", "numpy"} <= set(m["versions"])
    assert [s["name"] for s in m["sources"]] == ["video", "audio"]
    assert m["sources"][0]["config"]["extractor"] == "video"  # extractor config travels with the model
    assert m["parts"][0]["transforms"] == [{"name": "standardize"}]
    assert set(m["decoder"]["params"]) == {"alpha", "beta"}
    assert "cv" in m["info"] and 0 <= m["info"]["cv"]["acc_presence"] <= 1
    table = b.table()
    assert list(table.columns[:3]) == ["clip_id", "emotions", "salience"]
    assert set(b.submission()["predictions"]) == {f"{c}.mov" for c in b.clip_ids}


def test_predict_inputs_checked_and_timeline(corpus, tmp_path):
    torch.set_num_threads(1)
    train_model(_cfg(corpus, features=[str(corpus.sources["audio"])], model_dir=str(tmp_path / "m")), progress=False)
    loaded = ModelBundle.load(tmp_path / "m")
    # a single-source model accepts one feature folder whatever its name
    p = loaded.predict(corpus.sources["video"])
    assert len(p.clip_ids) == 36 * 12
    src = open_source(corpus.sources["audio"])
    some = src.clip_ids[:3]
    assert loaded.predict(src, clip_ids=some).clip_ids == some
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    for c in some:
        np.save(wrong / f"{c}.npy", np.zeros((5, 3), dtype=np.float32))
    with pytest.raises(BundleError, match="trained on 56"):
        loaded.predict(wrong)
    x = src.load(src.clip_ids[0])
    t, proba = loaded.timeline({"audio": x})
    assert proba.shape == (len(t), 6) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert np.all(np.diff(t) > 0)
    with pytest.raises(BundleError, match="missing"):
        loaded.timeline({"video": x})
    with pytest.raises(BundleError, match="not a blemore model"):
        ModelBundle.load(tmp_path)
