"""blemore ensemble: nested weights (a spy proves the scored fold's labels are never read to
choose them), files, CLI, refusals."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from blemore.cli import cli
from blemore.config import ExperimentConfig
from blemore.ensemble import EnsembleError, load_member, run_ensemble
from blemore.experiment import run_experiment
from blemore.late_fusion import choose_weights
from blemore.synth.temporal import generate_temporal_corpus

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ens")
    c = generate_temporal_corpus(root / "c", n_train_actors=3, n_test_actors=1, n_train_clips=108, n_test_clips=36,
                                 dim=5, latent=4, frames=(12, 24), event=(3, 6), folds=3, seed=6)
    dirs = []
    for i, (src, seed) in enumerate([("video", 0), ("audio", 0), ("audio", 1)]):
        cfg = ExperimentConfig(metadata=str(c.train_metadata), test_metadata=str(c.test_metadata),
                               features=[str(c.sources[src])], head="mlp", head_options={"hidden": 8}, seed=seed,
                               preset="fast", train={"epochs": 3, "batch_size": 32, "lr": 1e-2}, threads=1,
                               plots=False, out=str(root / f"run{i}"))
        run_experiment(cfg, progress=False)
        dirs.append(root / f"run{i}")
    return dirs


def test_weights_never_chosen_on_the_scored_fold(runs, tmp_path):
    seen = []

    def spy(outputs, true_target, head, decoder, step=0.1, mode="prob"):
        seen.append(np.array(true_target))
        return choose_weights(outputs, true_target, head, decoder, step=step, mode=mode)

    res = run_ensemble(runs, tmp_path / "e", selector=spy)
    v = load_member(runs[0])["validation"]
    per_fold = {k: v["true_target"].to_numpy()[v["fold"].to_numpy() == k] for k in sorted(set(v["fold"]))}
    for k, f in zip(per_fold, res["validation"]["folds"]):
        others = v["true_target"].to_numpy()[v["fold"].to_numpy() != k]
        assert any(len(s) == len(others) and np.array_equal(s, others) for s in seen)  # chosen on the others
        assert not any(len(s) == len(per_fold[k]) and np.array_equal(s, per_fold[k]) for s in seen)
        assert len(f["weights"]) == 3 and sum(f["weights"]) == pytest.approx(1.0)
    assert len(seen) == len(per_fold) + 1  # one per fold, one on everything for the test clips
    for name in ("results.json", "results.md", "predictions/validation.csv", "predictions/test.csv", "submission.json"):
        assert (tmp_path / "e" / name).exists(), name
    assert set(res["vs_best_member"]) == {"acc_presence", "acc_salience"}
    assert "test" in res  # the members' test clips are labelled


def test_single_member_weight_one_reproduces_it(runs, tmp_path):
    """With weight grids that can only give all weight to one member, the ensemble's fused
    outputs are that member's probabilities."""
    res = run_ensemble([runs[0], runs[0]], tmp_path / "same", step=1.0)
    m = load_member(runs[0])["validation"]
    got = load_member(tmp_path / "same")["validation"]
    np.testing.assert_allclose(got[[f"p_{e}" for e in ("ang", "disg", "fea", "hap", "sad", "neu")]].to_numpy(),
                               m[[f"p_{e}" for e in ("ang", "disg", "fea", "hap", "sad", "neu")]].to_numpy(), atol=2e-6)
    assert res["validation"]["folds"][0]["weights"] in ([1.0, 0.0], [0.0, 1.0])


def test_cli_and_refusals(runs, tmp_path):
    r = CliRunner().invoke(cli, ["ensemble", *map(str, runs), "--out", str(tmp_path / "c"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["run"] == "ensemble"
    with pytest.raises(EnsembleError, match="at least 2"):
        run_ensemble([runs[0]])
    with pytest.raises(EnsembleError, match="not a finished run folder"):
        run_ensemble([runs[0], tmp_path])


def test_seeds_head_is_the_mean_of_single_seed_heads():
    from blemore.heads.base import create_head
    from blemore.heads.training import EvalSet, TrainSpec

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5)).astype(np.float32)
    Y = np.eye(6, dtype=np.float32)[rng.integers(0, 6, 40)]
    spec = TrainSpec(lr=1e-2, epochs=3, batch_size=16)
    h = create_head("mlp", hidden=4).wrapped("seeds", k=3)
    hist = h.fit(X, Y, spec=spec, seed=5, eval_sets={"v": EvalSet(X[:7])})
    singles = []
    for i in range(3):
        s = create_head("mlp", hidden=4)
        s.fit(X, Y, spec=spec, seed=5 + 7919 * i)
        singles.append(s.predict_outputs(X[:7]))
    np.testing.assert_allclose(h.predict_outputs(X[:7]), np.mean(singles, axis=0), atol=1e-6)
    np.testing.assert_allclose(hist.outputs["v"][-1], np.mean(singles, axis=0), atol=1e-6)


def test_seeds_run_and_bundle_round_trip(tmp_path):
    from blemore.bundle import ModelBundle

    c = generate_temporal_corpus(tmp_path / "c", n_train_actors=3, n_test_actors=1, n_train_clips=108,
                                 n_test_clips=36, dim=4, latent=3, frames=(10, 16), event=(3, 5), folds=3, seed=8)
    cfg = ExperimentConfig(metadata=str(c.train_metadata), test_metadata=str(c.test_metadata),
                           features=[str(c.sources["audio"])], head="attn-pool",
                           head_options={"frames": 6, "hidden": 4, "heads": 2}, seeds=2, preset="fast",
                           train={"epochs": 2, "batch_size": 32, "lr": 1e-2}, threads=1, plots=False,
                           selection="paper", model_dir=str(tmp_path / "m"))
    r = run_experiment(cfg, progress=False, write=False)
    model = ModelBundle.load(tmp_path / "m")
    assert len(model.parts[0].head.members) == 2
    pred = model.predict({"audio": c.sources["audio"]}, clip_ids=r.test_predictions["clip_id"].tolist())
    np.testing.assert_array_equal(pred.target, r.test_predictions["pred_target"].to_numpy())
