"""Per-actor thresholds (blemore.thresholds) and train-to-test adaptation (blemore.adapt)."""
import numpy as np
import pytest

from blemore.adapt import AdaptError, adapt
from blemore.config import ConfigError, ExperimentConfig
from blemore.decoders import ThresholdDecoder
from blemore.experiment import Experiment, run_experiment
from blemore.report import results_markdown
from blemore.synth.temporal import generate_temporal_corpus
from blemore.thresholds import ActorThresholds, ThresholdError, top_two_stats

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _probs(n, rng, temp):
    z = rng.standard_normal((n, 6)) * temp
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_global_mode_is_the_decoder_and_per_actor_follows_each_actors_quantiles():
    rng = np.random.default_rng(0)
    dec = ThresholdDecoder()
    sel = _probs(400, rng, 1.0)
    params = {"alpha": 0.2, "beta": 0.1}
    glob = ActorThresholds("global")
    assert glob.fit(sel, params) == {}
    out = _probs(60, rng, 3.0)  # a very expressive actor: peaked outputs
    groups = ["A"] * 30 + ["B"] * 30
    m, t = glob.decode(dec, out, params, groups)
    m0, t0 = dec.decode(out, params)
    assert np.array_equal(m, m0) and np.array_equal(t, t0)
    pa = ActorThresholds("per-actor", shrink=10)
    q = pa.fit(sel, params)
    p2, gap = top_two_stats(sel)
    assert q == {"q_alpha": pytest.approx((p2 < 0.2).mean()), "q_beta": pytest.approx((gap <= 0.1).mean())}
    full = {**params, **q}
    m, t = pa.decode(dec, out, full, groups)
    for g in ("A", "B"):  # clip-by-clip reference: each actor decoded with its own shrunk pair
        rows = [i for i, x in enumerate(groups) if x == g]
        a2, g2 = top_two_stats(out[rows])
        w = len(rows) / (len(rows) + 10)
        a = w * np.quantile(a2, q["q_alpha"]) + (1 - w) * 0.2
        b = w * np.quantile(g2, q["q_beta"]) + (1 - w) * 0.1
        mr, tr = dec.decode(out[rows], {"alpha": a, "beta": b})
        assert np.array_equal(m[rows], mr) and np.array_equal(t[rows], tr)
    assert pa.log[-1]["A"]["n"] == 30
    m_none, _ = pa.decode(dec, out, full, [None] * 60)  # unknown actors: the global pair
    assert np.array_equal(m_none, m0)
    with pytest.raises(ThresholdError):
        ActorThresholds("per-clip")


def test_adapt_meanvar_and_coral_match_training_statistics():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((5, 5))
    train = rng.standard_normal((300, 5)) @ A
    ev = (rng.standard_normal((200, 5)) @ (A * 0.5 + np.eye(5))) * 3 + 7
    mv = adapt("meanvar", train, ev)
    np.testing.assert_allclose(mv.mean(0), train.mean(0), atol=1e-4)
    np.testing.assert_allclose(mv.std(0), train.std(0), rtol=1e-4)
    co = adapt("coral", train, ev, rank=5, eps=0.0)
    np.testing.assert_allclose(np.cov(co, rowvar=False), np.cov(train, rowvar=False), atol=0.02)
    assert adapt("none", train, ev) is ev
    seq_t = rng.standard_normal((10, 4 * 3)).astype(np.float32)
    seq_e = rng.standard_normal((6, 4 * 3)).astype(np.float32) + 5
    seq_e.reshape(6, 4, 3)[1, 2] = np.nan
    out = adapt("meanvar", seq_t, seq_e, frames=4).reshape(6, 4, 3)
    assert np.isnan(out[1, 2]).all() and np.isfinite(np.delete(out.reshape(24, 3), 6, axis=0)).all()
    with pytest.raises(AdaptError):
        adapt("whiten", train, ev)
    with pytest.raises(ConfigError):
        ExperimentConfig(adapt="whiten")
    with pytest.raises(ConfigError):
        ExperimentConfig(thresholds="per-clip")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate_temporal_corpus(tmp_path_factory.mktemp("thr"), n_train_actors=3, n_test_actors=1,
                                    n_train_clips=108, n_test_clips=36, dim=5, latent=4, frames=(12, 24),
                                    event=(3, 6), folds=3, seed=4)


def test_runner_per_actor_thresholds_and_adaptation_are_reported(corpus):
    base = ExperimentConfig(metadata=str(corpus.train_metadata), test_metadata=str(corpus.test_metadata),
                            features=[str(corpus.sources["audio"])], head="mlp", head_options={"hidden": 8},
                            preset="fast", train={"epochs": 2, "batch_size": 32, "lr": 1e-2}, threads=1, plots=False)
    g = run_experiment(base, progress=False, write=False)
    assert "thresholds" not in g.results and "adaptation" not in g.results
    r = run_experiment(base.replace(thresholds="per-actor", adapt="coral"), progress=False, write=False)
    assert all("q_alpha" in f["params"] for f in r.results["validation"]["folds"])
    dec = r.results["thresholds"]["decodings"]
    assert len(dec) == 3 + 1  # one per held-out fold (one actor each) and the test set
    assert "transductive" in r.results["adaptation"]["description"]
    md = results_markdown(r.results)
    assert "## Per-actor thresholds" in md and "## Train-to-test adaptation" in md
    # the global parts are untouched: same epochs chosen on the same outputs (adaptation off)
    t = run_experiment(base.replace(thresholds="per-actor"), progress=False, write=False)
    assert [f["epoch"] for f in t.results["validation"]["folds"]] == [f["epoch"] for f in g.results["validation"]["folds"]]
    assert [f["params"]["alpha"] for f in t.results["validation"]["folds"]] == \
        [f["params"]["alpha"] for f in g.results["validation"]["folds"]]


def test_per_actor_thresholds_never_read_the_scored_folds_labels(corpus, monkeypatch):
    """Spy: the thresholds' fit sees only selection outputs; decode never gets labels."""
    cfg = ExperimentConfig(metadata=str(corpus.train_metadata), features=[str(corpus.sources["audio"])],
                           head="mlp", head_options={"hidden": 8}, preset="fast", thresholds="per-actor",
                           train={"epochs": 2, "batch_size": 32, "lr": 1e-2}, threads=1, plots=False)
    exp = Experiment(cfg, progress=False)
    seen = []
    orig = exp.decoder.calibrate
    monkeypatch.setattr(exp.decoder, "calibrate", lambda o, t: (seen.append(np.array(t)), orig(o, t))[1])
    exp.cross_validate(nested=True)
    for k in exp.folds:
        tk = exp.target[exp.fold_positions(k)]
        assert not any(len(s) == len(tk) and np.array_equal(s, tk) for s in seen)


def test_benchmark_compares_thresholds_and_adaptation_in_one_table(corpus, tmp_path):
    import json

    from click.testing import CliRunner

    from blemore.cli import cli

    r = CliRunner().invoke(cli, [
        "benchmark", "--metadata", str(corpus.train_metadata), "--features", str(corpus.sources["audio"]),
        "--head", "mlp[hidden=8]", "--preset", "fast", "--epochs", "2", "--lr", "0.01", "--threads", "1",
        "--thresholds", "global,per-actor", "--adapt", "none,meanvar", "--no-plots", "--quiet",
        "--out", str(tmp_path / "abl")])
    assert r.exit_code == 0, r.output
    rows = json.loads((tmp_path / "abl" / "ablation.json").read_text())["rows"]
    variants = [row["variant"] for row in rows if row["head_label"].startswith("mlp[")]
    assert variants == ["thresholds=global adapt=none", "thresholds=global adapt=meanvar",
                        "thresholds=per-actor adapt=none", "thresholds=per-actor adapt=meanvar"]
    assert "thresholds=per-actor adapt=meanvar" in (tmp_path / "abl" / "ablation.md").read_text()
    bad = CliRunner().invoke(cli, ["benchmark", "--metadata", str(corpus.train_metadata), "--features",
                                   str(corpus.sources["audio"]), "--thresholds", "per-clip"])
    assert bad.exit_code != 0 and "per-clip" in bad.output
