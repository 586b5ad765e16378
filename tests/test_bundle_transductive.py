"""Model bundles of runs with ``--thresholds per-actor`` and ``--adapt meanvar|coral`` decode
the clips they predict as the run decoded its test clips (blemore.bundle, blemore.model).

The reference is the run's own test predictions, made by another code path (the experiment's
eval sets inside training, Experiment.apply); the bundle path loads the saved training
statistics and threshold levels from disk and adapts/decodes the clips given to it."""
import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from blemore.adapt import adapt, apply_stats, fit_stats
from blemore.bundle import BundleError, ModelBundle
from blemore.config import ExperimentConfig
from blemore.dataset import DatasetError, load_groups, load_metadata
from blemore.experiment import run_experiment
from blemore.hub import model_card
from blemore.labels import EMOTIONS
from blemore.model import load_model
from blemore.synth.temporal import generate_temporal_corpus
from blemore.validate import InputWarning

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- the statistics split (fit once, apply later) against the formulas written out ------------------
def _ref_meanvar(train, ev):
    se = np.where(ev.std(0) < 1e-8, 1.0, ev.std(0))
    return (ev - ev.mean(0)) / se * train.std(0) + train.mean(0)


def _ref_coral(train, ev, rank, eps):
    out = _ref_meanvar(train, ev)
    mt = train.mean(0)
    k = min(rank, train.shape[1], len(train) - 1, len(ev) - 1)
    basis = np.linalg.svd(train - mt, full_matrices=False)[2][:k].T
    zt, ze = (train - mt) @ basis, (out - mt) @ basis

    def root(c, p):
        c = (1 - eps) * c + eps * np.diag(np.diag(c)) + 1e-6 * np.eye(len(c))
        w, v = np.linalg.eigh(c)
        return (v * np.clip(w, 1e-8, None) ** p) @ v.T

    new = (ze - ze.mean(0)) @ root(np.cov(ze, rowvar=False), -0.5) @ root(np.cov(zt, rowvar=False), 0.5) + ze.mean(0)
    return out + (new - ze) @ basis.T


def test_saved_statistics_give_the_formulas_result():
    rng = np.random.default_rng(3)
    train = rng.standard_normal((80, 6)) @ rng.standard_normal((6, 6))
    ev = rng.standard_normal((9, 6)) * 2 + 1  # fewer clips than the rank: k follows the evaluated set
    np.testing.assert_allclose(apply_stats(fit_stats("meanvar", train), ev), _ref_meanvar(train, ev), atol=1e-5)
    for rank in (4, 64):
        st = fit_stats("coral", train, rank=rank)
        assert st["basis"].shape == (6, min(rank, 6)) and "n" in st
        np.testing.assert_allclose(apply_stats(st, ev, eps=0.1), _ref_coral(train, ev, rank, 0.1), atol=1e-4)
        np.testing.assert_allclose(adapt("coral", train, ev, rank=rank), _ref_coral(train, ev, rank, 0.1), atol=1e-4)
    one = ev[:1]
    assert apply_stats(fit_stats("meanvar", train), one) is one  # one clip: no statistics of its own
    assert fit_stats("none", train) is None


# -- runs and their bundles --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate_temporal_corpus(tmp_path_factory.mktemp("tb"), n_train_actors=3, n_test_actors=2,
                                    n_train_clips=108, n_test_clips=72, dim=5, latent=4, frames=(12, 24),
                                    event=(3, 6), folds=3, seed=5)


def _run(corpus, tmp, **kw):
    base = dict(metadata=str(corpus.train_metadata), test_metadata=str(corpus.test_metadata),
                features=[str(corpus.sources["audio"])], head="mlp", head_options={"hidden": 8},
                preset="fast", selection="paper", train={"epochs": 3, "batch_size": 32, "lr": 1e-2},
                threads=1, plots=False, model_dir=str(tmp / "m"))
    return run_experiment(ExperimentConfig(**{**base, **kw}), progress=False, write=False)


def _test_npys(corpus, r):
    return [corpus.sources["audio"] / f"{c}.npy" for c in r.test_predictions["clip_id"]]


def _same_as_run(df, r):
    ref = r.test_predictions.set_index("clip_id")
    got = df.set_index("clip").loc[ref.index]
    assert got["label"].tolist() == ref["pred"].tolist()
    p_cols = [f"p_{e}" for e in EMOTIONS]
    np.testing.assert_allclose(got[p_cols].to_numpy(float), ref[p_cols].to_numpy(float), atol=6e-5)  # 4 decimals


def _same_as_run_exactly(model, corpus, r, groups):
    """ModelBundle.predict (unrounded) against the run's 6-decimal test probabilities and codes."""
    ids = r.test_predictions["clip_id"].tolist()
    pred = model.bundle.predict({n: corpus.sources[n] for n in model.source_names}, clip_ids=ids, groups=groups)
    np.testing.assert_array_equal(pred.target, r.test_predictions["pred_target"].to_numpy())
    np.testing.assert_array_equal(pred.mask, r.test_predictions["pred_mask"].to_numpy())
    np.testing.assert_allclose(pred.proba, r.test_predictions[[f"p_{e}" for e in EMOTIONS]].to_numpy(float), atol=6e-7)
    return pred


@pytest.mark.parametrize("mode,kw", [
    ("meanvar", {}),
    ("coral", {"fusion": "late-learned", "features": ["video", "audio"]}),  # one part (statistics) per source
    ("meanvar", {"head": "attn-pool", "head_options": {"frames": 6, "hidden": 4, "heads": 2}}),  # frame sequences
], ids=["meanvar", "coral-late", "meanvar-sequence"])
def test_bundle_decodes_as_the_run_with_per_actor_thresholds_and_adaptation(corpus, tmp_path, mode, kw):
    if "features" in kw:
        kw = {**kw, "features": [str(corpus.sources[n]) for n in kw["features"]]}
    r = _run(corpus, tmp_path, thresholds="per-actor", adapt=mode, **kw)
    m = json.loads((tmp_path / "m" / "bundle.json").read_text())
    assert m["format_version"] == 4 and m["adapt"]["mode"] == mode  # 4: identity directions saved
    assert m["decoder"]["thresholds"] == {"mode": "per-actor", "shrink": 20.0, "identity_groups": "auto",
                                          "identity_dims": 2}  # 3 training actors: 2 directions
    assert {"q_alpha", "q_beta"} <= set(m["decoder"]["params"])
    assert f"decoding is transductive: `--adapt {mode}`" in model_card(tmp_path / "m")
    test = load_metadata(corpus.test_metadata)
    actors = dict(zip(test["clip_id"], test["actor"]))
    assert len(set(actors.values())) == 2
    model = load_model(tmp_path / "m")
    pred = _same_as_run_exactly(model, corpus, r, actors)
    dec = pred.decoding
    assert dec["transductive"] and dec["adapt"]["mode"] == mode
    assert [p["applied"] for p in dec["adapt"]["parts"]] == [True] * len(model.parts) == [True] * (1 + ("fusion" in kw))
    # the per-actor pairs are those the run reported for its test set (its last decoding)
    assert dec["thresholds"]["pairs"] == r.results["thresholds"]["decodings"][-1]
    assert any("transductive" in n for n in dec["notes"])
    # the saved statistics matter: the same bundle without them predicts other probabilities
    plain = ModelBundle.load(tmp_path / "m")
    plain.adapt = "none"
    p0 = plain.predict({n: corpus.sources[n] for n in plain.source_names}, clip_ids=pred.clip_ids, groups=actors)
    assert np.abs(p0.proba - pred.proba).max() > 1e-3
    if mode == "coral":  # two clips: CORAL's covariance step has no dimension to work in, and says so
        assert all(p["coral_rank"] >= 2 for p in dec["adapt"]["parts"])
        two = model.bundle.predict({n: corpus.sources[n] for n in model.source_names}, clip_ids=pred.clip_ids[:2])
        assert [p["coral_rank"] for p in two.decoding["adapt"]["parts"]] == [1, 1]
        assert "only the mean and standard deviation" in two.decoding["notes"][0]
    if not kw:  # the notebook API on .npy files and the command line, with the test metadata as --groups
        df = model.predict(_test_npys(corpus, r), groups=actors)
        _same_as_run(df, r)
        assert df.attrs["decoding"]["thresholds"]["pairs"] == dec["thresholds"]["pairs"]
        from click.testing import CliRunner

        from blemore.cli import cli

        folder = tmp_path / "test_audio"  # a feature folder of the test clips only (one evaluated set)
        folder.mkdir()
        shutil.copyfile(corpus.sources["audio"] / "config.json", folder / "config.json")
        for f in _test_npys(corpus, r):
            shutil.copyfile(f, folder / f.name)
        out = tmp_path / "pred.json"
        res = CliRunner().invoke(cli, ["predict", str(tmp_path / "m"), str(folder),
                                       "--groups", str(corpus.test_metadata), "-o", str(out)])
        assert res.exit_code == 0, res.output
        assert "transductive" in res.output and "--adapt meanvar" in res.output
        assert json.loads(out.read_text())["predictions"] == r.submission["predictions"]  # the run's challenge JSON
        table = pd.read_csv(out.with_suffix(".csv"))
        assert len(table) == len(r.test_predictions) and table["decoding"].str.contains("transductive").all()


def test_one_clip_one_group_and_groups_files(corpus, tmp_path):
    r = _run(corpus, tmp_path, thresholds="per-actor", adapt="meanvar")
    model = load_model(tmp_path / "m")
    npys = _test_npys(corpus, r)
    with pytest.warns(InputWarning, match="skipped"):
        one = model.predict(npys[:1])
    dec = one.attrs["decoding"]
    assert dec["adapt"]["parts"][0]["applied"] is False and dec["thresholds"]["groups"] == "clustered"
    assert list(dec["thresholds"]["pairs"]) == ["cluster:0"]  # one clip: one identity group
    # without groups: the clips predicted together are split into identity groups by clustering
    # (tests/test_thresholds_identity.py checks them against the run and the true actors)
    df = model.predict(npys)
    pairs = df.attrs["decoding"]["thresholds"]["pairs"]
    assert all(k.startswith("cluster:") for k in pairs) and sum(p["n"] for p in pairs.values()) == len(npys)
    # a plain clip,actor CSV gives the same groups as the metadata file
    test = load_metadata(corpus.test_metadata)
    plain = tmp_path / "groups.csv"
    pd.DataFrame({"clip_id": [f"{c}.mov" for c in test["clip_id"]], "speaker": test["actor"]}).to_csv(plain, index=False)
    assert load_groups(plain) == load_groups(corpus.test_metadata) == dict(zip(test["clip_id"], test["actor"]))
    # a bundle.json without the new fields (as blemore wrote them before): global pair, no adaptation
    mf = tmp_path / "m" / "bundle.json"
    m = json.loads(mf.read_text())
    old = {**m, "format_version": 2, "decoder": {k: v for k, v in m["decoder"].items() if k != "thresholds"}}
    old.pop("adapt")
    mf.write_text(json.dumps(old))
    legacy = ModelBundle.load(tmp_path / "m")
    lp = legacy.predict({"audio": corpus.sources["audio"]}, clip_ids=df["clip"].tolist(), groups=dict(zip(test["clip_id"], test["actor"])))
    ref_mask, ref_target = legacy.decoder().decode(legacy.outputs(legacy._feature_set({"audio": corpus.sources["audio"]}, df["clip"].tolist(), "impute")), legacy.params)
    assert lp.decoding == {"transductive": False} and np.array_equal(lp.target, ref_target)
    # a bundle that names a mode its weights have no statistics for is refused, naming the part
    mf.write_text(json.dumps({**m, "adapt": {**m["adapt"], "mode": "coral"}}))
    with pytest.raises(BundleError, match="no training statistics for --adapt coral"):
        ModelBundle.load(tmp_path / "m")
    bad = tmp_path / "bad.csv"
    bad.write_text("clip_id,actor\na,x\na,y\n")
    with pytest.raises(DatasetError, match="two actors"):
        load_groups(bad)
    bad.write_text("name,who\na,x\n")
    with pytest.raises(DatasetError, match="no clip column") as e:
        load_groups(bad)
    assert "no actor column" in str(e.value)


def test_global_bundle_is_format_2_and_decodes_clip_by_clip(corpus, tmp_path):
    r = _run(corpus, tmp_path)
    m = json.loads((tmp_path / "m" / "bundle.json").read_text())
    assert m["format_version"] == 2 and "adapt" not in m and "thresholds" not in m["decoder"]
    model = load_model(tmp_path / "m")
    npys = _test_npys(corpus, r)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)
        df = model.predict(npys)
    _same_as_run(df, r)
    _same_as_run_exactly(model, corpus, r, None)
    assert df.attrs["decoding"] == {"transductive": False}
    single = model.predict(npys[:1])  # the same prediction alone as among the others
    row = df.set_index("clip").loc[single["clip"].iloc[0]]
    assert single["label"].iloc[0] == row["label"] and single["p_hap"].iloc[0] == pytest.approx(row["p_hap"], abs=1e-6)
