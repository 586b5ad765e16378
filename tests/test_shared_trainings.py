"""Shared trainings: configurations that differ only in --thresholds / --adapt train once
(blemore.experiment.run_shared, the ablation's training groups) and each gets exactly what it
gets when run alone (the reference: run_experiment of that configuration by itself)."""
import json
from pathlib import Path

import pytest

from blemore.ablation import run_ablation
from blemore.config import ExperimentConfig
from blemore.experiment import Experiment, ExperimentError, run_experiment, run_shared, training_key
from blemore.heads.training import TorchHead
from blemore.synth.features import generate_feature_corpus

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VARIANTS = [(f"thresholds={t} adapt={a}", {"thresholds": t, "adapt": a})
            for t in ("global", "per-actor") for a in ("none", "meanvar")]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate_feature_corpus(tmp_path_factory.mktemp("shared"), n_train_actors=5, n_test_actors=1,
                                   n_train_clips=None, n_test_clips=None, clips_per_actor=36, dim=4, latent=4,
                                   frames=(3, 5), folds=3, seed=11)


def _base(c) -> ExperimentConfig:
    return ExperimentConfig(metadata=str(c.train_metadata), test_metadata=str(c.test_metadata),
                            features=[str(c.sources["video"]), str(c.sources["audio"])], fusion="late-learned",
                            head="mlp", head_options={"hidden": 8}, preset="fast",
                            train={"epochs": 6, "batch_size": 32, "lr": 1e-2}, threads=1, plots=False)


def _results(run_dir) -> dict:
    """results.json without measured times (never equal between two runs)."""
    r = json.loads((Path(run_dir) / "results.json").read_text())
    r.pop("timing")
    for f in r["validation"]["folds"]:
        f.pop("train_seconds")
    r.get("final", {}).pop("train_seconds", None)
    return r


class _Spy:
    """Counts trainings (Experiment.train_job, by excluded folds) and head fits."""

    def __init__(self, monkeypatch):
        self.jobs: list[frozenset] = []
        self.fits = 0
        job, fit = Experiment.train_job, TorchHead.fit

        def train_job(exp, exclude, evals, spec=None, train_pos=None):
            self.jobs.append(frozenset(exclude))
            return job(exp, exclude, evals, spec=spec, train_pos=train_pos)

        def head_fit(head, *a, **kw):
            self.fits += 1
            return fit(head, *a, **kw)

        monkeypatch.setattr(Experiment, "train_job", train_job)
        monkeypatch.setattr(TorchHead, "fit", head_fit)

    def take(self) -> tuple[list[frozenset], int]:
        out = (list(self.jobs), self.fits)
        self.jobs.clear()
        self.fits = 0
        return out


@pytest.mark.slow
def test_ablation_over_thresholds_and_adapt_trains_once_with_each_runs_own_results(corpus, tmp_path, monkeypatch):
    spy = _Spy(monkeypatch)
    logs: list[str] = []
    res = run_ablation(_base(corpus), ["mlp[hidden=8]"], reference="mlp[hidden=8]", out=tmp_path / "abl",
                       progress=False, variants=VARIANTS, log=logs.append)
    shared_jobs, shared_fits = spy.take()
    assert [r.variant for r in res.rows] == [v for v, _ in VARIANTS]
    assert "4 configurations, 1 training group(s)" in " ".join(logs)
    assert res.settings["training_groups"] == 1 and all(r.shared == 4 for r in res.rows)
    assert "4 configurations in 1 training groups" in (tmp_path / "abl" / "ablation.md").read_text()

    alone_jobs, final_epochs = [], set()
    for r in res.rows:  # the reference: each configuration run by itself, from its own config.json
        cfg = ExperimentConfig.from_dict(json.loads((Path(r.run_dir) / "config.json").read_text()))
        alone = run_experiment(cfg.replace(out=str(tmp_path / "alone" / Path(r.run_dir).name)), progress=False)
        jobs, _ = spy.take()
        alone_jobs.append(jobs)
        final_epochs.add(alone.results["final"]["selection"]["epoch"])
        assert _results(r.run_dir) == _results(alone.config.out), r.key
        for f in ("results.json", "predictions/validation.csv", "predictions/test.csv"):
            a, b = (Path(r.run_dir) / f).read_bytes(), (Path(alone.config.out) / f).read_bytes()
            if f == "results.json":  # byte-identical but for the measured times
                a, b = (json.dumps(_results(Path(d)), indent=2).encode() for d in (r.run_dir, alone.config.out))
            assert a == b, (r.key, f)
    # the variants really differ (else the test could not tell their outputs apart)
    assert len({json.dumps(_results(r.run_dir)["validation"]["folds"]) for r in res.rows}) == 4
    # trainings: the cross-validation jobs of one configuration, and one final model per selected length
    one = alone_jobs[0]
    assert all(sorted(map(sorted, j)) == sorted(map(sorted, one)) for j in alone_jobs)
    cv_jobs = [j for j in one if j]
    assert sorted(map(sorted, (j for j in shared_jobs if j))) == sorted(map(sorted, cv_jobs))
    assert sum(1 for j in shared_jobs if not j) == len(final_epochs) <= 2  # global/per-actor share a length
    assert shared_fits == 2 * len(shared_jobs)  # late fusion: one head per source and training
    assert len(shared_jobs) < 4 * len(one)


def test_run_shared_bundles_are_each_configurations_own(corpus, tmp_path):
    base = _base(corpus).replace(test_metadata=None, fusion="early")
    cfgs = [base.replace(adapt=a, thresholds=t, model_dir=str(tmp_path / f"m-{t}-{a}"))
            for t, a in (("global", "none"), ("per-actor", "meanvar"))]
    shared = run_shared(cfgs, progress=False, write=False)
    for cfg, r in zip(cfgs, shared):
        alone_dir = tmp_path / ("alone-" + Path(cfg.model_dir).name)
        alone = run_experiment(cfg.replace(model_dir=str(alone_dir)), progress=False, write=False)
        va, vb = (dict(x.results["validation"]) for x in (r, alone))
        for v in (va, vb):
            v["folds"] = [{k: x for k, x in f.items() if k != "train_seconds"} for f in v["folds"]]
        assert va == vb
        a, b = (json.loads((Path(d) / "bundle.json").read_text()) for d in (cfg.model_dir, alone_dir))
        for m in (a, b):
            m["info"].pop("created")
        assert a == b  # weights, transforms and adapt statistics by SHA-256; decoder rule and mode
        assert a["files"] and all((Path(cfg.model_dir) / f).read_bytes() == (alone_dir / f).read_bytes()
                                  for f in a["files"])


def test_only_configurations_that_train_the_same_models_share(corpus):
    base = _base(corpus)
    assert training_key(base) == training_key(base.replace(thresholds="per-actor", adapt="coral", name="x",
                                                          out="y", model_dir="z", plots=True))
    assert training_key(base) != training_key(base.replace(seed=1))
    with pytest.raises(ExperimentError, match=r"differ only in .*'.*' differs .* in head_options, seed"):
        run_shared([base, base.replace(head_options={"hidden": 4}, seed=3)], progress=False, write=False)
