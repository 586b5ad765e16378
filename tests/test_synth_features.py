import numpy as np
import pytest

from blemore.dataset import load_metadata
from blemore.features import load_features
from blemore.labels import TARGETS, parse_clip_id
from blemore.pooling import Pooling
from blemore.store import open_source
from blemore.synth.features import actor_clip_plan, generate_feature_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate_feature_corpus(tmp_path_factory.mktemp("sf"), n_train_actors=10, n_test_actors=3,
                                   n_train_clips=400, n_test_clips=110, dim=24, frames=(6, 12), seed=0)


def test_layout_names_and_every_target_per_actor(corpus):
    train = load_metadata(corpus.train_metadata)
    test = load_metadata(corpus.test_metadata, split="test")
    assert len(train) == corpus.n_train == 400 and len(test) == corpus.n_test == 110
    for t in (train, test):
        for _actor, g in t.groupby("actor"):
            assert set(g["target"]) == set(range(len(TARGETS)))  # all 36 targets per actor
        for cid in t["clip_id"]:
            assert parse_clip_id(cid).label is not None  # grammar-valid, labelled ids
    assert set(train["actor"]).isdisjoint(set(test["actor"]))
    # counts spread evenly over actors (400 / 10)
    assert set(train.groupby("actor").size()) == {40}


def test_folds_are_actor_disjoint_and_balanced(corpus):
    train = load_metadata(corpus.train_metadata)
    assert sorted(train["fold"].unique()) == [0, 1, 2, 3, 4]
    assert train.groupby("actor")["fold"].nunique().max() == 1
    assert set(train.drop_duplicates("actor").groupby("fold").size()) == {2}


def test_arrays_shapes_nan_rows_and_determinism(corpus, tmp_path):
    v = open_source(corpus.sources["video"])
    a = open_source(corpus.sources["audio"])
    assert len(v.clip_ids) == len(a.clip_ids) == 510
    shapes = {v.load(c).shape for c in v.clip_ids[:50]}
    assert all(6 <= s[0] <= 12 and s[1] == 24 for s in shapes)
    assert v.config["dim"] == 24 and v.rate == 25.0
    assert any(np.isnan(v.load(c)).all(axis=1).any() for c in v.clip_ids)  # face-like source loses frames
    assert not any(np.isnan(a.load(c)).any() for c in a.clip_ids)
    again = generate_feature_corpus(tmp_path / "again", n_train_actors=10, n_test_actors=3, n_train_clips=400,
                                    n_test_clips=110, dim=24, frames=(6, 12), seed=0)
    cid = v.clip_ids[17]
    np.testing.assert_array_equal(v.load(cid), open_source(again.sources["video"]).load(cid))


def _pooled(corpus, source="audio"):
    train = load_metadata(corpus.train_metadata)
    fs = load_features([corpus.sources[source]], train["clip_id"].tolist(), Pooling(stats=("mean",)))
    return fs.blocks[source].astype(np.float64), train


def _between_share(X, groups):
    X = X - X.mean(0)
    means = np.stack([X[groups == g].mean(0) for g in np.unique(groups)])
    counts = np.array([(groups == g).sum() for g in np.unique(groups)])
    return float((counts[:, None] * means ** 2).sum() / (X ** 2).sum())


def test_actor_offsets_dominate_the_variance(corpus):
    X, train = _pooled(corpus)
    actor_share = _between_share(X, train["actor"].to_numpy())
    target_share = _between_share(X, train["target"].to_numpy())
    assert actor_share > 0.4 and actor_share > 2 * target_share


def test_signal_is_learnable_and_no_signal_is_not(corpus, tmp_path):
    def single_accuracy(c):
        X, train = _pooled(c)
        # per-actor centring removes the identity offsets; then a nearest-class-mean read-out
        for a in train["actor"].unique():
            m = (train["actor"] == a).to_numpy()
            X[m] -= X[m].mean(0)
        single = (train["target"] < 6).to_numpy()
        X, y, f = X[single], train["target"].to_numpy()[single], train["fold"].to_numpy()[single]
        accs = []
        for k in range(5):
            tr, te = f != k, f == k
            means = np.stack([X[tr][y[tr] == c].mean(0) for c in range(6)])
            pred = np.argmin(((X[te][:, None, :] - means[None]) ** 2).sum(-1), axis=1)
            accs.append(float(np.mean(pred == y[te])))
        return float(np.mean(accs))

    assert single_accuracy(corpus) > 0.35  # 6 classes: chance 1/6
    ns = generate_feature_corpus(tmp_path / "ns", n_train_actors=10, n_test_actors=0, n_train_clips=400,
                                 sources=("audio",), dim=24, frames=(6, 12), seed=0, no_signal=True)
    assert single_accuracy(ns) < 0.3


def test_plan_and_bad_arguments(tmp_path):
    rng = np.random.default_rng(0)
    plan = actor_clip_plan(57, rng)
    assert len(plan) == 57 and {lab.target_index() for lab, _, _ in plan} == set(range(36))
    assert len({(lab, lvl, ver) for lab, lvl, ver in plan}) == 57  # no duplicate clip ids
    with pytest.raises(ValueError, match="all 36 targets"):
        actor_clip_plan(30, rng)
    with pytest.raises(ValueError, match="actor-disjoint folds"):
        generate_feature_corpus(tmp_path, n_train_actors=3, n_train_clips=None)
    with pytest.raises(ValueError, match="unique"):
        generate_feature_corpus(tmp_path, sources=("a", "a"))
