import json

import numpy as np
import pytest

from blemore.config import ExperimentConfig
from blemore.experiment import run_experiment
from blemore.report import compare_runs, fmt_pm, format_compare, per_actor_normalise, results_markdown
from blemore.synth.features import generate_feature_corpus

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("rep")
    c = generate_feature_corpus(root / "data", n_train_actors=10, n_test_actors=2, n_train_clips=None,
                                n_test_clips=None, clips_per_actor=36, dim=6, frames=(4, 8), signal=2.5, seed=2)
    out = []
    for head in ("linear", "mlp-256"):
        cfg = ExperimentConfig(metadata=str(c.train_metadata), test_metadata=str(c.test_metadata),
                               features=[str(c.sources["audio"])], head=head, preset="fast", selection="paper",
                               train={"epochs": 4, "batch_size": 128, "lr": 1e-2}, threads=1,
                               out=str(root / f"run-{head}"), plots=head == "linear")
        out.append(run_experiment(cfg, progress=False))
    return root, out


def test_run_folder_files(runs):
    root, (r, _) = runs
    d = root / "run-linear"
    for f in ("config.json", "results.json", "results.md", "predictions/validation.csv", "predictions/test.csv",
              "submission.json", "submission.zip", "plots/confusion.png", "plots/confusion_test.png",
              "plots/pca.png", "plots/per_configuration.png", "plots/selection.png"):
        assert (d / f).exists(), f
    for png in (d / "plots").glob("*.png"):
        assert png.read_bytes()[:8] == PNG
    res = json.loads((d / "results.json").read_text())
    assert res["files"]["confusion"] == "plots/confusion.png"
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["head"] == "linear" and cfg["resolved_train"]["epochs"] == 4
    # no leftover temporary files from the atomic writes
    assert not [p for p in d.rglob(".*") if p.is_file()]


def test_markdown_tables_carry_the_numbers(runs):
    root, (r, _) = runs
    res = r.results
    md = (root / "run-linear" / "results.md").read_text()
    assert md == results_markdown(res)
    assert "| Features | Head | Presence accuracy | Salience accuracy |" in md
    assert fmt_pm(res["validation"]["acc_presence"]) in md
    assert f"{res['test']['acc_presence']:.3f}" in md
    assert "trivial: most frequent single emotion" in md and "paper: best epoch" in md
    assert "| 70/30 |" in md  # per-configuration table
    counts = np.array(res["per_configuration"]["counts"])
    assert counts.sum() == int((r.predictions["true_target"] >= 6).sum())


def test_compare_runs_side_by_side(runs):
    root, (a, b) = runs
    rows = compare_runs([root / "run-linear", root / "run-mlp-256"])
    assert [r["head"] for r in rows] == ["linear", "mlp-256"]
    table = format_compare(rows)
    assert table.count("\n") == 2 + 2 + 2  # header, rule, two runs, two trivial rows
    assert fmt_pm(b.results["validation"]["acc_salience"]) in table
    with pytest.raises(FileNotFoundError, match="results.json"):
        compare_runs([root])


def test_per_actor_normalise():
    rng = np.random.default_rng(0)
    actors = np.repeat(["A1", "A2", "A3"], 20)
    X = rng.normal(size=(60, 4)) + np.repeat(rng.normal(size=(3, 4)) * 10, 20, axis=0)
    Z = per_actor_normalise(X, actors)
    for a in ("A1", "A2", "A3"):
        np.testing.assert_allclose(Z[actors == a].mean(0), 0, atol=1e-9)
        np.testing.assert_allclose(Z[actors == a].std(0), 1, atol=1e-9)


def test_rerun_into_the_same_folder_removes_the_previous_runs_files_only(runs, tmp_path):
    """issue 11: re-running benchmark into an existing --out kept the previous run's plots."""
    import copy
    import dataclasses
    import shutil

    from blemore.report import write_run

    root, (r, _) = runs
    d = tmp_path / "run"
    shutil.copytree(root / "run-linear", d)
    (d / "notes.txt").write_text("mine")
    (d / "plots" / "my_figure.png").write_bytes(PNG)
    r2 = copy.copy(r)
    r2.config = dataclasses.replace(r.config, plots=False, out=str(d))
    r2.test_predictions, r2.submission = None, None
    write_run(r2, d)
    left = sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())
    assert left == ["config.json", "notes.txt", "plots/my_figure.png", "predictions/validation.csv",
                    "results.json", "results.md"]
    assert set(json.loads((d / "results.json").read_text())["files"].values()) <= set(left)
