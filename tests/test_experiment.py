"""The runner on a small generated corpus: actor-disjoint CV, no leaks, nested selection that
never reads the held-out fold, determinism, trivial baselines, test evaluation."""
import numpy as np
import pandas as pd
import pytest

from blemore.config import ExperimentConfig
from blemore.dataset import load_metadata
from blemore.experiment import Experiment, ExperimentError, run_experiment, trivial_targets
from blemore.features import Transform, load_features, register_transform
from blemore.heads import register_head
from blemore.heads.mlp import KLHead
from blemore.labels import TARGETS
from blemore.pooling import Pooling
from blemore.synth.features import generate_feature_corpus

FIT_LOG: list[tuple[set, set]] = []
HEAD_LOG: list[set] = []


@register_transform("test-leak-probe")
class LeakProbe(Transform):
    """Records the clips (and actors) every fit sees; passes features through."""

    def fit(self, X, *, clip_ids, groups=None):
        FIT_LOG.append((set(clip_ids), set(groups or [])))
        return self

    def transform(self, X, *, clip_ids, groups=None):
        return X


@register_head("test-leak-head")
class LeakHead(KLHead):
    """A small MLP that records the actors of its training rows."""

    def __init__(self, hidden=None, dropout=0.0):
        super().__init__(hidden=8, dropout=dropout)

    def fit(self, X, Y_soft, *, groups=None, **kw):
        HEAD_LOG.append(set(groups.tolist()))
        return super().fit(X, Y_soft, groups=groups, **kw)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate_feature_corpus(tmp_path_factory.mktemp("corpus"), n_train_actors=10, n_test_actors=3,
                                   n_train_clips=None, n_test_clips=None, clips_per_actor=36, dim=8,
                                   frames=(4, 8), signal=2.5, seed=3)


def _cfg(corpus, **kw):
    base = dict(metadata=str(corpus.train_metadata), features=[str(corpus.sources["video"]), str(corpus.sources["audio"])],
                head="linear", preset="fast", train={"epochs": 6, "batch_size": 64, "lr": 3e-2}, threads=1, plots=False)
    base.update(kw)
    return ExperimentConfig(**base)


class DictSource:
    """An in-memory feature source (name, clip_ids, load)."""

    def __init__(self, name, arrays):
        self.name, self.arrays = name, dict(arrays)

    @property
    def clip_ids(self):
        return sorted(self.arrays)

    def load(self, cid):
        return self.arrays[cid]


def test_cv_is_actor_disjoint_and_no_statistic_sees_a_held_out_clip(corpus):
    FIT_LOG.clear()
    HEAD_LOG.clear()
    cfg = _cfg(corpus, test_metadata=str(corpus.test_metadata), transforms=["test-leak-probe", "standardize"],
               head="test-leak-head", train={"epochs": 3, "batch_size": 128, "lr": 3e-2})
    exp = Experiment(cfg, progress=False)
    exp.cross_validate()
    job_final = exp.train_final(exp.final_selection())
    assert len(exp.jobs) == 15  # 5 outer + 10 pair-excluded models serve nested selection
    test_ids = set(exp.test_table["clip_id"])
    fold_of = dict(zip(exp.train_table["clip_id"], exp.train_table["fold"]))
    actor_of = dict(zip(exp.clip_ids, exp.actor))
    train_sets = []
    for job in list(exp.jobs.values()) + [job_final]:
        train = set(job.train_clips)
        train_sets.append(train)
        evals = {c for pos in job.evals.values() for c in exp.clip_ids[pos]}
        assert not train & evals and not train & test_ids
        assert {fold_of[c] for c in train}.isdisjoint(job.exclude)
        assert {actor_of[c] for c in train}.isdisjoint({actor_of[c] for c in evals})  # actor-disjoint
        for name, pos in job.evals.items():
            if name.startswith("fold"):
                assert {fold_of[c] for c in exp.clip_ids[pos]} == {int(name[4:])}
    # the leak detectors saw exactly the training clips of each job, nothing else
    assert len(FIT_LOG) == len(train_sets) == len(HEAD_LOG)
    for (ids, actors), train, head_actors in zip(FIT_LOG, train_sets, HEAD_LOG):
        assert ids == train and actors == head_actors == {actor_of[c] for c in train}
    assert set(job_final.train_clips) == set(exp.train_table["clip_id"])


def _perturb_fold(corpus, fold, seed=0):
    """The same data, except that fold ``fold`` has shuffled labels and noise features."""
    table = load_metadata(corpus.train_metadata)
    ids = table["clip_id"].tolist()
    fs = load_features([corpus.sources["video"], corpus.sources["audio"]], ids, Pooling())
    rng = np.random.default_rng(seed)
    m = (table["fold"] == fold).to_numpy()
    t2 = table.copy()
    new = rng.permutation(t2.loc[m, "target"].to_numpy())
    t2.loc[m, "target"] = new
    t2.loc[m, "label"] = pd.Series([TARGETS[t] for t in new], index=t2.index[m], dtype=object)
    fs2 = load_features([corpus.sources["video"], corpus.sources["audio"]], ids, Pooling())
    for s in fs2.sources:
        fs2.blocks[s] = fs2.blocks[s].copy()
        fs2.blocks[s][m] = rng.normal(size=fs2.blocks[s][m].shape).astype(np.float32)
    return table, fs, t2, fs2


@pytest.mark.parametrize("selection", ["nested", "paper"])
def test_nested_selection_never_reads_the_held_out_fold(corpus, selection):
    table, fs, t2, fs2 = _perturb_fold(corpus, fold=0)
    cfg = _cfg(corpus, selection=selection)
    a = Experiment(cfg, table=table, features=fs, progress=False).cross_validate()
    b = Experiment(cfg, table=t2, features=fs2, progress=False).cross_validate()
    sa, sb = a["folds"][0]["selection"], b["folds"][0]["selection"]
    assert a["folds"][0]["score"] != b["folds"][0]["score"]  # the held-out fold did change
    if selection == "nested":
        assert (sa.epoch, sa.params, sa.score) == (sb.epoch, sb.params, sb.score)
    else:  # the paper's selection looks at the fold it reports: the check above can fail
        assert (sa.epoch, sa.params, sa.score) != (sb.epoch, sb.params, sb.score)


def test_results_are_deterministic_for_a_seed(corpus):
    r1 = run_experiment(_cfg(corpus, selection="paper"), progress=False)
    r2 = run_experiment(_cfg(corpus, selection="paper"), progress=False)
    r3 = run_experiment(_cfg(corpus, selection="paper", seed=7), progress=False)
    strip = lambda v: [{k: x for k, x in f.items() if k != "train_seconds"} for f in v["folds"]]  # noqa: E731
    assert strip(r1.results["validation"]) == strip(r2.results["validation"])
    assert r1.results["validation"]["acc_presence"] == r2.results["validation"]["acc_presence"]
    p = [r.predictions[[f"p_{e}" for e in ("ang", "disg", "fea", "hap", "sad", "neu")]].to_numpy() for r in (r1, r2, r3)]
    np.testing.assert_array_equal(p[0], p[1])
    assert not np.allclose(p[0], p[2])


def test_trivial_baselines_match_a_hand_count(corpus):
    table = load_metadata(corpus.train_metadata)
    rng = np.random.default_rng(5)
    table = table.drop(index=rng.choice(len(table), size=90, replace=False)).reset_index(drop=True)  # uneven counts
    cfg = _cfg(corpus, selection="paper", train={"epochs": 1})
    exp = Experiment(cfg, table=table, progress=False)
    res = exp.trivial(exp.cross_validate())
    for k in sorted(table["fold"].unique()):
        train, val = table[table["fold"] != k], table[table["fold"] == k]
        counts = train["target"].value_counts()
        singles = counts[counts.index < 6]
        single = min(singles.index[singles == singles.max()])
        blends = counts[counts.index >= 6]
        blend = min(blends.index[blends == blends.max()])
        vt = val["target"].to_numpy()
        blend_set = (vt >= 6) & ((vt - 6) // 3 == (blend - 6) // 3)
        assert res["single"]["acc_presence"]["folds"][k] == pytest.approx(np.mean(vt == single))
        assert res["single"]["acc_salience"]["folds"][k] == 0.0
        assert res["blend"]["acc_presence"]["folds"][k] == pytest.approx(np.mean(blend_set))
        assert res["blend"]["acc_salience"]["folds"][k] == pytest.approx(np.sum(vt == blend) / np.sum(vt >= 6))
    assert trivial_targets(np.array([0, 1, 1, 7, 7, 9, -1])) == {"single": 1, "blend": 7}
    assert trivial_targets(np.array([2, 3, 10, 6])) == {"single": 2, "blend": 6}  # ties: lowest index


def test_test_evaluation_and_results_shape(corpus):
    r = run_experiment(_cfg(corpus, test_metadata=str(corpus.test_metadata)), progress=False)
    res = r.results
    assert set(res["validation"]["acc_presence"]) == {"mean", "std", "folds"}
    assert len(res["validation"]["acc_salience"]["folds"]) == 5
    assert {"acc_presence", "acc_salience"} <= set(res["test"])
    for name in ("single", "blend"):
        assert {"acc_presence", "acc_salience", "test"} <= set(res["trivial"][name])
    test_ids = load_metadata(corpus.test_metadata)["clip_id"]
    assert set(r.submission["predictions"]) == {f"{c}.mov" for c in test_ids}
    assert len(r.test_predictions) == len(test_ids)
    # the test score is the score of the submitted predictions
    from blemore.dataset import truth_from_table
    from blemore.metrics import score_predictions

    s = score_predictions(r.submission, truth_from_table(load_metadata(corpus.test_metadata)))
    assert s.acc_presence == pytest.approx(res["test"]["acc_presence"])
    assert s.acc_salience == pytest.approx(res["test"]["acc_salience"])
    # signal is recoverable: far above the trivial baselines on validation
    assert res["validation"]["acc_presence"]["mean"] > res["trivial"]["blend"]["acc_presence"]["mean"] + 0.15


def test_unlabelled_test_clips_still_get_a_submission_and_missing_clips_are_reported(corpus):
    from blemore.dataset import clip_table
    from blemore.store import open_source

    table = load_metadata(corpus.train_metadata)
    test = load_metadata(corpus.test_metadata)
    anon = {c: f"test_{i + 1:04d}" for i, c in enumerate(test["clip_id"])}
    srcs = []
    for name in ("video", "audio"):
        s = open_source(corpus.sources[name])
        arrays = {c: s.load(c) for c in table["clip_id"]}
        arrays.update({anon[c]: s.load(c) for c in test["clip_id"]})
        if name == "audio":
            del arrays[table["clip_id"][3]]  # one training clip lacks audio
        srcs.append(DictSource(name, arrays))
    test_table = clip_table(list(anon.values()), split="test")
    ids = table["clip_id"].tolist() + list(anon.values())
    with pytest.warns(UserWarning, match="dropped"):
        fs = load_features(srcs, ids, Pooling())
    r = run_experiment(_cfg(corpus, metadata=None, features=[]), table=table, test_table=test_table, features=fs,
                       progress=False)
    assert "test" not in r.results and r.results["test_unlabelled"]["n_clips"] == len(anon)
    assert set(r.submission["predictions"]) == {f"{v}.mov" for v in anon.values()}
    assert r.results["data"]["dropped_clips"] == [table["clip_id"][3]]
    assert r.results["data"]["train_clips"] == len(table) - 1


def test_late_fusion_and_windowed_pooling_run(corpus):
    late = run_experiment(_cfg(corpus, fusion="late", fusion_options={"mode": "logit"}, selection="paper"), progress=False)
    assert late.results["fusion"]["kind"] == "late"
    win = run_experiment(_cfg(corpus, features=[str(corpus.sources["video"])], pooling="windows", window=2,
                              selection="paper", train={"epochs": 3, "batch_size": 256, "lr": 1e-2}), progress=False)
    assert win.results["pooling"]["kind"] == "windows"
    assert len(win.predictions) == win.results["data"]["train_clips"]  # one prediction per clip, not per window


def test_clear_errors(corpus):
    table = load_metadata(corpus.train_metadata)
    one_fold = table.assign(fold=0)
    with pytest.raises(ExperimentError, match="at least 2 folds"):
        Experiment(_cfg(corpus), table=one_fold, progress=False)
    with pytest.raises(ExperimentError, match="both training and test"):
        Experiment(_cfg(corpus), table=table, test_table=table.assign(split="test"), progress=False)
    with pytest.raises(ValueError, match="selection"):
        _cfg(corpus, selection="best")


def test_presets_and_toml_grid(tmp_path):
    from blemore.config import ConfigError, load_config, train_spec

    p = train_spec("paper")
    assert (p.optimizer, p.lr, p.weight_decay, p.batch_size, p.epochs) == ("adam", 5e-6, 1e-3, 32, 200)
    w = train_spec("paper", "windows")
    assert (w.batch_size, w.epochs) == (512, 300)
    assert train_spec("fast", overrides={"epochs": 3}).epochs == 3
    (tmp_path / "g.toml").write_text('''
metadata = "data/train.csv"
out = "runs"
[grid]
features = [["data/a"], ["data/a", "data/b"]]
head = ["linear", "mlp-512"]
''')
    cfgs = load_config(tmp_path / "g.toml", preset="fast")
    assert len(cfgs) == 4 and {c.preset for c in cfgs} == {"fast"}
    assert cfgs[0].metadata == str((tmp_path / "data/train.csv").resolve())
    assert cfgs[3].features == [str((tmp_path / "data/a").resolve()), str((tmp_path / "data/b").resolve())]
    assert len({c.out for c in cfgs}) == 4 and all(c.out.startswith(str(tmp_path / "runs")) for c in cfgs)
    (tmp_path / "bad.toml").write_text('metadata = "x"\ncolour = "red"\n')
    with pytest.raises(ConfigError, match="unknown config key"):
        load_config(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="unknown train setting"):
        ExperimentConfig(train={"momentum": 0.9})
