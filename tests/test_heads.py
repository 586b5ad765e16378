import numpy as np
import pytest
import torch

from blemore.decode import calibrate
from blemore.heads import (
    ArgmaxTargetDecoder,
    EvalSet,
    HeadError,
    ThresholdDecoder,
    TrainSpec,
    create_head,
    head_class,
    list_heads,
    register_head,
)
from blemore.heads.mlp import KLHead
from blemore.labels import TARGET_SOFT, TARGET_TO_MASK


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(n=240, d=10, seed=0):
    """Clips of single emotions whose class is readable from the features."""
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 6, size=n)
    proto = rng.normal(size=(6, d)) * 2
    X = (proto[t] + rng.normal(size=(n, d))).astype(np.float32)
    return X, t


def test_registry_lists_and_builds_the_paper_heads():
    assert {"linear", "mlp-256", "mlp-512"} <= set(list_heads())
    assert create_head("mlp-256").hidden == 256
    assert create_head("mlp-512").hidden == 512
    assert create_head("linear").hidden == 0
    assert create_head("mlp-512", dropout=0.1).config() == {"hidden": 512, "dropout": 0.1}
    with pytest.raises(HeadError, match="unknown head 'mlp-9'.*linear"):
        create_head("mlp-9")
    with pytest.raises(HeadError, match="bad options"):
        create_head("linear", colour="red")


def test_register_a_new_head_without_touching_the_runner():
    @register_head("test-tiny-mlp")
    class Tiny(KLHead):
        default_hidden = 3

    assert head_class("test-tiny-mlp") is Tiny and create_head("test-tiny-mlp").hidden == 3
    with pytest.raises(HeadError, match="already registered"):
        @register_head("test-tiny-mlp")
        class Other(KLHead):
            pass


def test_training_is_deterministic_for_a_seed():
    X, t = _data()
    spec = TrainSpec(lr=1e-2, batch_size=32, epochs=4)
    runs = []
    for seed in (3, 3, 4):
        h = create_head("mlp-256")
        hist = h.fit(X, TARGET_SOFT[t], target=t, eval_sets={"v": EvalSet(X[:20])}, spec=spec, seed=seed)
        runs.append(hist.outputs["v"])
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])


def test_history_records_outputs_per_evaluated_epoch_and_learns():
    X, t = _data()
    h = create_head("linear")
    spec = TrainSpec(lr=5e-2, batch_size=0, epochs=30, eval_every=10)
    assert spec.eval_epochs() == [10, 20, 30]
    hist = h.fit(X[:200], TARGET_SOFT[t[:200]], target=t[:200], eval_sets={"v": EvalSet(X[200:])}, spec=spec, seed=0)
    assert hist.epochs == [10, 20, 30] and hist.outputs["v"].shape == (3, 40, 6)
    assert len(hist.train_loss) == 30 and hist.train_loss[-1] < hist.train_loss[0]
    np.testing.assert_allclose(hist.outputs["v"].sum(-1), 1, rtol=1e-5)
    acc = (hist.at("v", 30).argmax(1) == t[200:]).mean()
    assert acc > 0.7  # chance is 1/6
    np.testing.assert_allclose(h.predict_outputs(X[200:]), hist.at("v", 30), rtol=1e-5, atol=1e-6)
    with pytest.raises(KeyError, match="epoch 11"):
        hist.at("v", 11)


def test_subsampled_inference_averages_logits_not_probabilities():
    X, t = _data()
    h = create_head("mlp-256")
    h.fit(X, TARGET_SOFT[t], target=t, spec=TrainSpec(lr=1e-2, batch_size=64, epochs=3), seed=0)
    rows = X[:7]
    owner = np.array([0, 0, 0, 1, 1, 1, 1])
    logits = h.predict_logits(rows)
    expect = torch.softmax(torch.tensor(np.stack([logits[:3].mean(0), logits[3:].mean(0)])), 1).numpy()
    got = h.predict_outputs(rows, owner)
    np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-6)
    mean_prob = np.stack([h.predict_outputs(rows[:3]).mean(0), h.predict_outputs(rows[3:]).mean(0)])
    assert not np.allclose(got, mean_prob, atol=1e-4)
    # the same aggregation happens for eval sets during training
    h2 = create_head("mlp-256")
    hist = h2.fit(X, TARGET_SOFT[t], target=t, eval_sets={"w": EvalSet(rows, owner)},
                  spec=TrainSpec(lr=1e-2, batch_size=64, epochs=3), seed=0)
    np.testing.assert_allclose(hist.at("w", 3), got, rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip():
    X, t = _data()
    h = create_head("mlp-256")
    h.fit(X, TARGET_SOFT[t], target=t, spec=TrainSpec(lr=1e-2, epochs=2), seed=0)
    h2 = create_head("mlp-256")
    h2.load_state_dict(h.state_dict())
    np.testing.assert_array_equal(h.predict_outputs(X), h2.predict_outputs(X))
    with pytest.raises(RuntimeError, match="not trained"):
        create_head("linear").predict_outputs(X)
    with pytest.raises(ValueError, match="shape"):
        h.predict_outputs(X[:, :3])


def test_bad_inputs_are_named():
    X, t = _data(n=10)
    with pytest.raises(ValueError, match="Y_soft must have shape"):
        create_head("linear").fit(X, TARGET_SOFT[t][:5], spec=TrainSpec(epochs=1))
    with pytest.raises(HeadError, match="optimizer"):
        TrainSpec(optimizer="lbfgs")


def test_decoders():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(6), size=50)
    true = rng.integers(0, 36, size=50)
    fit = ThresholdDecoder().calibrate(p, true)
    ref = calibrate(p, true)
    assert fit.params == {"alpha": ref.alpha, "beta": ref.beta} and fit.score == ref.score
    m, tg = ThresholdDecoder().decode(p, fit.params)
    assert m.shape == tg.shape == (50,)
    q = rng.dirichlet(np.ones(36), size=50)
    am = ArgmaxTargetDecoder()
    m2, t2 = am.decode(q, {})
    assert (t2 == q.argmax(1)).all() and (m2 == TARGET_TO_MASK[t2]).all()
    assert am.calibrate(q, true).params == {}
