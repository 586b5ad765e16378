"""The ablation table: head specs, paired per-fold differences, the reference, winners, files,
and ``blemore benchmark`` with several heads / norms / fusions."""
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from blemore.ablation import (
    AblationError,
    HeadSpec,
    paired_differences,
    parse_heads,
    parse_list,
    run_ablation,
    sign_flip_p,
)
from blemore.cli import cli
from blemore.config import ExperimentConfig
from blemore.synth.features import generate_feature_corpus


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_parse_heads():
    specs = parse_heads("mlp-512, structured[ratio=ordinal,mixup=0.2;class_balance=true],flat36")
    assert [s.name for s in specs] == ["mlp-512", "structured", "flat36"]
    assert dict(specs[1].options) == {"ratio": "ordinal", "mixup": 0.2, "class_balance": True}
    assert specs[1].label == "structured[ratio=ordinal,mixup=0.2,class_balance=true]"
    assert parse_heads(["multitask[hidden=64]", "multitask[hidden=64]"]) == [HeadSpec("multitask", (("hidden", 64),))]
    with pytest.raises(AblationError, match="unknown head 'nope'"):
        parse_heads("nope")
    with pytest.raises(AblationError, match="ratio"):
        parse_heads("structured[ratio=ranked]")  # the head itself rejects the option
    with pytest.raises(AblationError, match="unbalanced"):
        parse_heads("structured[ratio=pair")
    with pytest.raises(AblationError, match="key=value"):
        parse_heads("structured[ordinal]")
    assert parse_list("off, cluster,off", ("off", "on", "cluster")) == ["off", "cluster"]
    with pytest.raises(AblationError, match="maybe"):
        parse_list("maybe", ("off", "on"))


def test_sign_flip_and_paired_differences():
    assert sign_flip_p([0.1, 0.2, 0.05, 0.3, 0.1]) == pytest.approx(2 / 32)
    assert sign_flip_p([0.0] * 5) == 1.0
    assert sign_flip_p([0.1, -0.1]) == 1.0
    d = paired_differences([0.5, 0.6, 0.4], [0.4, 0.6, 0.5])
    np.testing.assert_allclose(d["folds"], [0.1, 0.0, -0.1], atol=1e-12)
    assert d["wins"] == 1 and d["losses"] == 1 and d["mean"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="same folds"):
        paired_differences([1, 2], [1])


def _fake_run(scores):
    """A stand-in for run_experiment: per-fold scores from ``scores[(head, norm, fusion)]``."""
    calls = []

    def run(cfg, progress=True, write=True):
        norm = "off" if cfg.transforms == ["standardize"] else cfg.transforms[0]["identity"]
        norm = {"known": "on"}.get(norm, norm)
        key = (cfg.head + (f"[{','.join(f'{k}={v}' for k, v in cfg.head_options.items())}]" if cfg.head_options else ""),
               norm, cfg.fusion)
        calls.append((key, cfg))
        p, s = scores[key]
        folds = [{"fold": i, "epoch": 5, "weights": [0.5, 0.5] if cfg.fusion != "early" else None} for i in range(len(p))]
        res = {"validation": {"acc_presence": {"mean": float(np.mean(p)), "std": float(np.std(p)), "folds": p},
                              "acc_salience": {"mean": float(np.mean(s)), "std": float(np.std(s)), "folds": s},
                              "folds": folds},
               "test": {"acc_presence": p[0], "acc_salience": s[0]}}
        return SimpleNamespace(results=res)

    return run, calls


def test_run_ablation_table_reference_and_winners(tmp_path):
    scores = {
        ("mlp-512", "off", "early"): ([0.30, 0.32, 0.28], [0.10, 0.12, 0.11]),
        ("mlp-512", "cluster", "early"): ([0.40, 0.41, 0.39], [0.15, 0.14, 0.16]),
        ("structured", "off", "early"): ([0.31, 0.30, 0.30], [0.13, 0.15, 0.12]),
        ("structured", "cluster", "early"): ([0.38, 0.40, 0.37], [0.20, 0.19, 0.21]),
        ("mlp-512", "off", "late-learned"): ([0.29, 0.30, 0.27], [0.10, 0.11, 0.10]),
        ("mlp-512", "cluster", "late-learned"): ([0.39, 0.40, 0.38], [0.14, 0.15, 0.13]),
        ("structured", "off", "late-learned"): ([0.30, 0.31, 0.29], [0.12, 0.13, 0.12]),
        ("structured", "cluster", "late-learned"): ([0.37, 0.38, 0.36], [0.18, 0.19, 0.20]),
    }
    run, calls = _fake_run(scores)
    base = ExperimentConfig(metadata=None, features=["a/video", "a/audio"], preset="fast")
    res = run_ablation(base, "structured", ["cluster", "off"], ["early", "late-learned"], out=tmp_path / "abl", run=run)
    # the reference (paper head, no actor norm, first fusion) was added and comes first
    assert res.reference == "mlp-512 / norm-off / early" and res.rows[0].key == res.reference
    assert len(res.rows) == 5
    cfgs = {k: c for k, c in calls}
    c = cfgs[("structured", "cluster", "late-learned")]
    assert c.transforms[0]["name"] == "actor-norm" and c.transforms[0]["identity"] == "cluster"
    assert c.transforms[1] == "standardize" and c.fusion == "late-learned" and c.head == "structured"
    assert c.out == str(tmp_path / "abl" / "structured_norm-cluster_late-learned")
    row = res.row("structured / norm-cluster / early")
    np.testing.assert_allclose(row.vs_reference["acc_salience"]["folds"], [0.10, 0.07, 0.10], atol=1e-12)
    assert row.vs_reference["acc_salience"]["wins"] == 3
    assert res.winner("acc_salience").key == "structured / norm-cluster / early"
    assert res.winner("acc_presence").key == "structured / norm-cluster / early"  # mlp-512 cluster not in this grid
    md = (tmp_path / "abl" / "ablation.md").read_text()
    assert "Best ACC_salience: `structured`, actor norm cluster, fusion early" in md
    assert "+0.100 | +0.070 | +0.100" in md
    assert "per-actor normalisation, transductive" in md
    js = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    assert js["winners"]["acc_salience"] == "structured / norm-cluster / early"
    assert js["rows"][0]["key"] == res.reference
    # a full grid: the paper head with the same norm/fusion gives the head effect
    run2, _ = _fake_run(scores)
    res2 = run_ablation(base, "mlp-512,structured", ["off", "cluster"], ["early"], run=run2)
    assert len(res2.rows) == 4 and res2.winner("acc_presence").key == "mlp-512 / norm-cluster / early"
    he = res2.row("structured / norm-cluster / early").vs_paper_head["acc_salience"]
    np.testing.assert_allclose(he["folds"], [0.05, 0.05, 0.05], atol=1e-12)
    # one source: the fusion axis disappears
    run3, calls3 = _fake_run(scores)
    res3 = run_ablation(base.replace(features=["a/video"]), ["structured"], ["off"], ["early", "late-learned"], run=run3)
    assert [r.key for r in res3.rows] == ["mlp-512 / norm-off", "structured / norm-off"]


def test_mismatched_folds_are_refused():
    scores = {("mlp-512", "off", "early"): ([0.3, 0.3], [0.1, 0.1]),
              ("flat36", "off", "early"): ([0.3, 0.3, 0.3], [0.1, 0.1, 0.1])}
    run, _ = _fake_run(scores)
    with pytest.raises(AblationError, match="folds"):
        run_ablation(ExperimentConfig(features=["a/video"]), "flat36", run=run)


@pytest.mark.slow
def test_benchmark_cli_writes_one_ablation_table(tmp_path):
    c = generate_feature_corpus(tmp_path / "c", n_train_actors=6, n_test_actors=2, n_train_clips=None,
                                n_test_clips=None, clips_per_actor=36, dim=6, frames=(4, 6), folds=3, seed=1)
    out = tmp_path / "abl"
    args = ["benchmark", "--metadata", str(c.train_metadata), "--test-metadata", str(c.test_metadata),
            "--features", str(c.sources["video"]), "--features", str(c.sources["audio"]),
            "--head", "mlp-512,structured[hidden=16]", "--actor-norm", "off,cluster", "--fusion", "early",
            "--preset", "fast", "--epochs", "2", "--threads", "1", "--no-plots", "--quiet", "--out", str(out)]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "Best ACC_salience" in r.output
    js = json.loads((out / "ablation.json").read_text())
    assert [row["key"] for row in js["rows"]] == [
        "mlp-512 / norm-off / early", "mlp-512 / norm-cluster / early",
        "structured[hidden=16] / norm-off / early", "structured[hidden=16] / norm-cluster / early"]
    assert js["grouping"]["cv"]["ari_mean"] > 0.5
    res = json.loads((Path(js["rows"][3]["run_dir"]) / "results.json").read_text())
    assert res["actor_norm"]["used"] and res["head"] == "structured"
    bad = CliRunner().invoke(cli, args[:-2] + ["--actor-norm", "sometimes", "--out", str(out)])
    assert bad.exit_code != 0 and "sometimes" in bad.output


def _scores_for(fusions, heads=("mlp-512",)):
    return {(h, "off", f): ([0.3, 0.3, 0.3], [0.1, 0.1, 0.1]) for h in heads for f in fusions}


def test_each_fusion_gets_its_own_options_whatever_its_place_in_the_list():
    """--gate-* reach gated and --late-mode the late fusions wherever they are in the list (not
    only as the first fusion); an option none of the compared fusions takes is refused, naming it."""
    fusions = ["early", "late-learned", "gated", "late"]
    run, calls = _fake_run(_scores_for(fusions))
    opts = {"top": 2, "rank": 0.5, "balance": 0.0, "mode": "logit"}
    base = ExperimentConfig(features=["a/video", "a/audio"], fusion="early", fusion_options=dict(opts))
    run_ablation(base, "mlp-512", ["off"], fusions, run=run)
    got = {cfg.fusion: cfg.fusion_options for _, cfg in calls}
    assert got == {"early": {}, "late-learned": {"mode": "logit"}, "gated": {"top": 2, "rank": 0.5, "balance": 0.0},
                   "late": {"mode": "logit"}}
    with pytest.raises(AblationError, match=r"'top'.*gated"):
        run_ablation(base.replace(fusion_options={"top": 2}), "mlp-512", ["off"], ["early", "late"],
                     run=_fake_run(_scores_for(fusions))[0])


def test_benchmark_cli_gives_gate_options_to_gated_not_first_in_the_list(tmp_path, monkeypatch):
    import blemore.ablation as ablation

    c = generate_feature_corpus(tmp_path / "c", n_train_actors=4, n_test_actors=1, n_train_clips=None,
                                n_test_clips=None, clips_per_actor=36, dim=4, frames=(3, 4), folds=2, seed=1)
    run, calls = _fake_run(_scores_for(["early", "gated"]))
    monkeypatch.setattr(ablation, "run_shared", lambda cfgs, progress=True, write=True: [run(x) for x in cfgs])
    args = ["benchmark", "--metadata", str(c.train_metadata), "--features", str(c.sources["video"]),
            "--features", str(c.sources["audio"]), "--fusion", "early,gated", "--gate-top", "2", "--gate-rank", "0",
            "--quiet", "--out", str(tmp_path / "abl")]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert {cfg.fusion: cfg.fusion_options for _, cfg in calls} == {"early": {}, "gated": {"top": 2, "rank": 0.0}}
    bad = CliRunner().invoke(cli, args[:args.index("--fusion")] + ["--fusion", "early,late", "--gate-top", "2",
                                                                   "--quiet", "--out", str(tmp_path / "abl2")])
    assert bad.exit_code != 0 and "top" in bad.output and "gated" in bad.output and "Traceback" not in bad.output


@pytest.mark.parametrize("pooling", ["windows", "frames", "stats"])
def test_grouping_report_of_several_sources_has_one_row_per_clip(tmp_path, pooling):
    """The ablation's identity-grouping report with two sources: windowed rows of several sources
    (which do not line up in time) are averaged per clip and source, frame sequences (a sequence
    head's rows) averaged over their frames, sources side by side; the report equals
    evaluate_identity_grouping on rows built clip by clip here."""
    from blemore.experiment import Experiment
    from blemore.normalise import evaluate_identity_grouping

    c = generate_feature_corpus(tmp_path / "c", n_train_actors=4, n_test_actors=1, n_train_clips=None,
                                n_test_clips=None, clips_per_actor=36, dim=4, frames=(6, 9), folds=2, seed=3)
    base = ExperimentConfig(metadata=str(c.train_metadata), features=[str(c.sources["video"]), str(c.sources["audio"])],
                            pooling="stats" if pooling == "frames" else pooling, window=4, stride=2,
                            **({"head": "attn-pool", "head_options": {"frames": 4}} if pooling == "frames" else {}))
    run, _ = _fake_run(_scores_for(["early"]) | {("mlp-512", "cluster", "early"): ([0.3] * 3, [0.1] * 3)})
    res = run_ablation(base, "mlp-512", ["off", "cluster"], ["early"], n_groups=4, run=run)
    assert "grouping_error" not in res.settings and res.grouping is not None
    exp = Experiment(base, progress=False)
    fs = exp.features
    def one(s, p):  # the clip's rows of source s, frames averaged for a sequence head, then rows
        X = fs.rows([s], np.array([p]))[0]
        return (np.nanmean(X.reshape(len(X), 4, -1), axis=1) if pooling == "frames" else X).mean(axis=0)

    ref = np.stack([np.concatenate([one(s, p) for s in fs.sources]) for p in exp.train_pos])
    want = evaluate_identity_grouping(ref, exp.actor[exp.train_pos].tolist(), exp.fold[exp.train_pos], n_groups=4)
    assert res.grouping["cv"] == want.as_dict()
