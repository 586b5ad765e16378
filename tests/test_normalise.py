"""Per-actor normalisation: transductive per-actor statistics, never labels nor clip ids;
identity grouping of clips of unknown actors; adjusted Rand index."""
import warnings

import numpy as np
import pandas as pd
import pytest

from blemore.config import ExperimentConfig
from blemore.experiment import Experiment, run_experiment
from blemore.features import FeatureError, TransformChain, create_transform
from blemore.heads import register_head
from blemore.heads.mlp import KLHead
from blemore.normalise import (
    ActorNorm,
    actor_norm_transforms,
    actor_standardise,
    adjusted_rand_index,
    estimate_n_groups,
    evaluate_identity_grouping,
    identity_groups,
    is_unknown_group,
    uses_actor_norm,
)
from blemore.report import results_markdown
from blemore.synth.features import generate_feature_corpus


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def actors_data(n_actors=12, per_actor=30, dim=20, offset=6.0, seed=0):
    """Rows = actor offset (large) + expression (small); every actor has every 'label'."""
    rng = np.random.default_rng(seed)
    # identity lives in a few directions (as face shape / voice timbre would), shared by all actors
    off = rng.standard_normal((n_actors, 4)) @ rng.standard_normal((4, dim)) * offset / 2
    lab = np.tile(np.arange(per_actor) % 6, n_actors)
    proto = rng.standard_normal((6, dim))
    actor = np.repeat(np.arange(n_actors), per_actor)
    X = off[actor] + proto[lab] + 0.3 * rng.standard_normal((len(actor), dim))
    return X.astype(np.float32), np.array([f"A{100 + a}" for a in actor], dtype=object), lab


class Tripwire:
    """A clip-id list that fails the test if anything reads it (clip ids encode labels)."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        raise AssertionError("actor-norm read the clip ids")

    def __iter__(self):
        raise AssertionError("actor-norm read the clip ids")

    def __getitem__(self, i):
        raise AssertionError("actor-norm read the clip ids")


def test_actor_standardise_per_group():
    X, actor, _ = actors_data()
    Z = actor_standardise(X, actor)
    for a in np.unique(actor):
        np.testing.assert_allclose(Z[actor == a].mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(Z[actor == a].std(axis=0), 1, atol=1e-4)
    C = actor_standardise(X, actor, scale="center")
    np.testing.assert_allclose(C[actor == actor[0]].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(C[actor == actor[0]].std(axis=0), X[actor == actor[0]].std(axis=0), rtol=1e-4)
    # NaN stays NaN (imputed later), and does not spoil the group's statistics
    Xn = X.copy()
    Xn[0, 3] = np.nan
    Zn = actor_standardise(Xn, actor)
    assert np.isnan(Zn[0, 3]) and np.isfinite(Zn[1:]).all()
    with pytest.raises(FeatureError, match="scale"):
        actor_standardise(X, actor, scale="minmax")


def test_never_reads_clip_ids_and_labels_do_not_exist_for_it():
    X, actor, _ = actors_data()
    t = ActorNorm()
    t.fit(X[:240], clip_ids=Tripwire(240), groups=actor[:240])
    out = t.transform(X[240:], clip_ids=Tripwire(len(X) - 240), groups=actor[240:])
    ref = actor_standardise(X[240:], actor[240:])
    np.testing.assert_allclose(out, ref, atol=1e-5)  # transductive: held-out actors' own statistics
    # unknown actors are clustered -- still without reading clip ids
    out2 = t.transform(X[240:], clip_ids=Tripwire(len(X) - 240), groups=[None] * (len(X) - 240))
    np.testing.assert_allclose(out2, ref, atol=1e-5)  # clustering found the same actors


SPY_LOG: list = []


@register_head("test-actor-norm-spy")
class Spy(KLHead):
    """Records the exact training and evaluation matrices it is given."""

    def __init__(self, hidden=None, dropout=0.0):
        super().__init__(hidden=4, dropout=dropout)

    def fit(self, X, Y_soft, *, eval_sets=None, **kw):
        SPY_LOG.append((X.copy(), {k: v.X.copy() for k, v in (eval_sets or {}).items()}))
        return super().fit(X, Y_soft, eval_sets=eval_sets, **kw)


def test_permuting_labels_changes_nothing_in_the_runner(tmp_path):
    """Planted detector: a head records the exact matrices it is given. Shuffling the training
    labels (targets) must leave every normalised feature matrix unchanged."""
    seen = SPY_LOG
    c = generate_feature_corpus(tmp_path / "c", n_train_actors=6, n_test_actors=2, n_train_clips=None,
                                n_test_clips=None, clips_per_actor=36, dim=6, frames=(4, 6), folds=3, seed=1)
    from blemore.dataset import load_metadata

    table = load_metadata(c.train_metadata)
    shuffled = table.copy()
    rng = np.random.default_rng(0)
    shuffled["target"] = rng.permutation(shuffled["target"].to_numpy())
    for mode in ("cluster",):  # training actors known, held-out actors clustered
        cfg = ExperimentConfig(metadata=str(c.train_metadata), features=[str(c.sources["video"])], head="test-actor-norm-spy",
                               preset="fast", train={"epochs": 1}, threads=1, plots=False,
                               transforms=actor_norm_transforms(mode))
        runs = []
        for tab in (table, shuffled):
            seen.clear()
            exp = Experiment(cfg, table=tab, progress=False)
            exp.train_job(frozenset({0}), {"fold0": exp.fold_positions(0)})
            runs.append(list(seen))
        (Xa, Ea), (Xb, Eb) = runs[0][0], runs[1][0]
        np.testing.assert_array_equal(Xa, Xb)
        np.testing.assert_array_equal(Ea["fold0"], Eb["fold0"])
        assert not np.array_equal(exp.target, Experiment(cfg, table=table, progress=False).target)


def test_identity_grouping_recovers_actors():
    X, actor, _ = actors_data(n_actors=12, per_actor=30)
    folds = np.repeat(np.arange(12) % 3, 30)
    rep = evaluate_identity_grouping(X, actor, folds, n_groups="auto")
    assert rep.ari > 0.95
    assert all(f["groups_found"] == f["actors"] == 4 for f in rep.folds)
    rep2 = evaluate_identity_grouping(X, actor, folds, n_groups="size")
    assert rep2.ari > 0.95
    # no identity structure: blind clustering must not pretend to find the actors
    Xr = np.random.default_rng(5).standard_normal(X.shape).astype(np.float32)
    assert evaluate_identity_grouping(Xr, actor, folds, n_groups=4).ari < 0.2


def test_group_count_estimation_and_given_counts():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((7, 5)) * 20
    Z = np.repeat(centres, 25, axis=0) + rng.standard_normal((175, 5))
    assert estimate_n_groups(Z, rows_per_group=25) == 7
    assert estimate_n_groups(Z) == 7
    lab = identity_groups(Z, 7)
    assert adjusted_rand_index(np.repeat(np.arange(7), 25), lab) == pytest.approx(1.0)
    assert len(np.unique(identity_groups(Z, 3))) == 3
    assert len(np.unique(identity_groups(Z, "size", rows_per_group=35))) == 5
    with pytest.raises(FeatureError, match="n_groups"):
        identity_groups(Z, "many")


def test_cluster_mode_clusters_unseen_actors_only():
    X, actor, _ = actors_data()
    tr, te = slice(0, 240), slice(240, None)
    t = ActorNorm(identity="cluster")
    t.fit(X[tr], clip_ids=None, groups=actor[tr])
    # training actors are used as given
    t.transform(X[tr], clip_ids=None, groups=actor[tr])
    assert t.last_clustered["rows"] == 0 and t.last_groups == list(actor[tr])
    # held-out actors are not taken from their names but found by clustering
    t.transform(X[te], clip_ids=None, groups=actor[te])
    assert t.last_clustered == {"rows": 120, "groups": 4}
    assert all(g.startswith("cluster:") for g in t.last_groups)
    assert adjusted_rand_index(actor[te], t.last_groups) == pytest.approx(1.0)
    # "known" mode keeps given names and clusters only unknown ones (None, NaN, "")
    k = ActorNorm().fit(X[tr], clip_ids=None, groups=actor[tr])
    mixed = list(actor[te])
    mixed[:30] = [None] * 10 + [float("nan")] * 10 + [""] * 10
    k.transform(X[te], clip_ids=None, groups=mixed)
    assert k.last_clustered["rows"] == 30 and k.last_clustered["groups"] == 1
    assert is_unknown_group(float("nan")) and is_unknown_group(" ") and not is_unknown_group("A1")


def test_small_groups_fall_back_with_a_warning_and_state_round_trips():
    X, actor, _ = actors_data()
    t = ActorNorm(min_rows=8).fit(X, clip_ids=None, groups=actor)
    with pytest.warns(UserWarning, match="fewer than 8"):
        out = t.transform(X[:3], clip_ids=None, groups=actor[:3])
    np.testing.assert_allclose(out, (X[:3] - t.mean_) / t.std_, rtol=1e-4, atol=1e-4)
    u = create_transform("actor-norm")
    u.load_state_dict(t.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(u.transform(X[:60], clip_ids=None, groups=[None] * 60),
                                   t.transform(X[:60], clip_ids=None, groups=[None] * 60), atol=1e-5)
    with pytest.raises(FeatureError, match="groups"):
        ActorNorm().fit(X, clip_ids=None, groups=None)
    with pytest.raises(FeatureError, match="identity"):
        ActorNorm(identity="guess")
    chain = TransformChain(actor_norm_transforms("cluster", 4))
    assert [t.name for t in chain.transforms] == ["actor-norm", "standardize"]
    assert uses_actor_norm(actor_norm_transforms("on"))["identity"] == "known"
    assert uses_actor_norm(["standardize"]) is None


def test_adjusted_rand_index():
    a = ["x"] * 5 + ["y"] * 5
    assert adjusted_rand_index(a, [1] * 5 + [0] * 5) == pytest.approx(1.0)
    assert adjusted_rand_index(a, [0, 1] * 5) < 0.1
    with pytest.raises(ValueError, match="length"):
        adjusted_rand_index(a, [0])


def test_run_results_say_when_actor_norm_was_used(tmp_path):
    c = generate_feature_corpus(tmp_path / "c", n_train_actors=6, n_test_actors=2, n_train_clips=None,
                                n_test_clips=None, clips_per_actor=36, dim=6, frames=(4, 6), folds=3, seed=2)
    base = dict(metadata=str(c.train_metadata), test_metadata=str(c.test_metadata), features=[str(c.sources["video"])],
                head="linear", preset="fast", train={"epochs": 2}, threads=1, plots=False)
    r = run_experiment(ExperimentConfig(**base, transforms=actor_norm_transforms("cluster")), progress=False, write=False)
    an = r.results["actor_norm"]
    assert an["used"] and an["labels_used"] is False and an["transform"]["identity"] == "cluster"
    assert len(an["folds"]) == 3 and all(f["clustered_rows"] == 72 for f in an["folds"])
    assert an["test"]["clustered_rows"] == 72 and an["test"]["actors"] == 2
    assert "per-actor normalisation: USED" in results_markdown(r.results)
    r0 = run_experiment(ExperimentConfig(**base), progress=False, write=False)
    assert "actor_norm" not in r0.results
    assert "per-actor normalisation: not used" in results_markdown(r0.results)
    assert isinstance(pd.DataFrame(an["folds"]), pd.DataFrame)
