"""Late fusion with learned weights: the weight grid, the choice, and that the weights for a
held-out fold are chosen without that fold (planted detector in the runner)."""
import numpy as np
import pytest

from blemore.bundle import ModelBundle
from blemore.config import ExperimentConfig
from blemore.experiment import Experiment, run_experiment
from blemore.fusion import create_fusion, list_fusions, register_fusion
from blemore.heads import ThresholdDecoder, create_head
from blemore.late_fusion import LearnedLateFusion, choose_weights, weight_grid
from blemore.labels import N_TARGETS, TARGET_SOFT
from blemore.normalise import actor_norm_transforms
from blemore.synth.features import generate_feature_corpus


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate_feature_corpus(tmp_path_factory.mktemp("lf"), n_train_actors=6, n_test_actors=2,
                                   n_train_clips=None, n_test_clips=None, clips_per_actor=36, dim=6,
                                   frames=(4, 6), folds=3, signal=2.5, seed=5)


SEEN: list[np.ndarray] = []


@register_fusion("test-late-learned-spy")
class SpyFusion(LearnedLateFusion):
    """Records the true targets of every batch of outputs its weights are chosen on."""

    def select_weights(self, outputs, true_target, head, decoder):
        SEEN.append(np.array(true_target))
        return super().select_weights(outputs, true_target, head, decoder)


def test_weight_grid():
    W = weight_grid(2, 0.1)
    assert W.shape == (11, 2)
    np.testing.assert_allclose(W.sum(axis=1), 1.0)
    np.testing.assert_allclose(W[0], [0.5, 0.5])  # the most even first: ties go to equal weights
    assert len(weight_grid(3, 0.1)) == 66 and (weight_grid(3, 0.25) >= 0).all()
    np.testing.assert_allclose(weight_grid(1), [[1.0]])
    with pytest.raises(ValueError, match="step"):
        weight_grid(2, 0.3)
    assert "late-learned" in list_fusions()
    f = create_fusion("late-learned", step=0.25, mode="logit")
    assert f.groups(["video", "audio"]) == [("video",), ("audio",)]
    assert f.as_dict() == {"kind": "late-learned", "step": 0.25, "mode": "logit"}
    with pytest.raises(ValueError, match="mode"):
        create_fusion("late-learned", mode="vote")


def test_choose_weights_prefers_the_informative_source():
    rng = np.random.default_rng(0)
    true = rng.integers(0, N_TARGETS, 400)
    good = 0.6 * TARGET_SOFT[true] + 0.4 * rng.dirichlet(np.ones(6), 400)
    noise = rng.dirichlet(np.ones(6), 400)
    head, dec = create_head("mlp-512"), ThresholdDecoder()
    w, score = choose_weights([noise, good], true, head, dec)
    assert w[1] >= 0.8
    assert score == pytest.approx(dec.calibrate(head.fuse([noise, good], w), true).score)
    w2, _ = choose_weights([good, good], true, head, dec)
    assert w2 == [0.5, 0.5]  # a tie between all weights: the even one


def test_weights_are_chosen_without_the_held_out_fold(corpus):
    """Planted detector: a spy fusion records the targets of every selection batch. Under
    nested selection each batch is exactly the pooled inner folds of one outer fold, never
    the held-out fold; under the paper's selection it is the held-out fold (the detector works)."""
    cfg = ExperimentConfig(metadata=str(corpus.train_metadata),
                           features=[str(corpus.sources["video"]), str(corpus.sources["audio"])],
                           head="linear", preset="fast", train={"epochs": 2, "batch_size": 64, "lr": 3e-2}, threads=1,
                           plots=False, fusion="test-late-learned-spy", fusion_options={"step": 0.5})
    exp = Experiment(cfg, progress=False)
    targets = {k: exp.target[exp.fold_positions(k)] for k in exp.folds}
    SEEN.clear()
    cv = exp.cross_validate(nested=True)
    assert SEEN, "the fusion was never asked for weights"
    inner = {k: np.concatenate([targets[j] for j in exp.folds if j != k]) for k in exp.folds}
    n_epochs = len(exp.spec.eval_epochs())
    for k in exp.folds:
        calls = [s for s in SEEN if len(s) == len(inner[k]) and np.array_equal(s, inner[k])]
        assert len(calls) >= n_epochs  # one choice per recorded epoch, on the inner folds of k
    for s in SEEN:
        assert any(len(s) == len(inner[k]) and np.array_equal(s, inner[k]) for k in exp.folds)
        assert not any(len(s) == len(targets[k]) and np.array_equal(s, targets[k]) for k in exp.folds)
    for f in cv["folds"]:
        w = f["selection"].weights
        assert len(w) == 2 and sum(w) == pytest.approx(1.0) and set(w) <= {0.0, 0.5, 1.0}
    SEEN.clear()
    exp.cross_validate(nested=False)
    assert any(len(s) == len(targets[k]) and np.array_equal(s, targets[k]) for s in SEEN for k in exp.folds)


def test_run_and_bundle_round_trip_with_actor_norm_and_learned_fusion(corpus, tmp_path):
    cfg = ExperimentConfig(metadata=str(corpus.train_metadata), test_metadata=str(corpus.test_metadata),
                           features=[str(corpus.sources["video"]), str(corpus.sources["audio"])],
                           head="structured", head_options={"hidden": 16}, preset="fast",
                           train={"epochs": 3, "batch_size": 64, "lr": 1e-2}, threads=1, plots=False,
                           fusion="late-learned", transforms=actor_norm_transforms("cluster"),
                           model_dir=str(tmp_path / "model"))
    r = run_experiment(cfg, progress=False, write=False)
    assert all(len(f["weights"]) == 2 for f in r.results["validation"]["folds"])
    assert (r.predictions["pred_target"] >= 0).all()  # structured: always a valid label
    model = ModelBundle.load(tmp_path / "model")
    assert model.fusion.name == "late-learned" and len(model.fusion_weights) == 2
    # anonymised clips: no actor given, the bundle's actor-norm groups them by clustering
    pred = model.predict({"video": corpus.sources["video"], "audio": corpus.sources["audio"]},
                         clip_ids=r.test_predictions["clip_id"].tolist())
    assert (pred.target >= 0).all()
    same = (pred.target == r.test_predictions["pred_target"].to_numpy()).mean()
    assert same > 0.9  # the same up to how the two test actors were clustered
