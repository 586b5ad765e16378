import json

import pytest
from click.testing import CliRunner

from blemore.cli import cli
from blemore.synth.features import generate_feature_corpus

FAST = ["--preset", "fast", "--epochs", "3", "--batch-size", "128", "--lr", "0.01", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate_feature_corpus(tmp_path_factory.mktemp("cli"), n_train_actors=10, n_test_actors=2,
                                   n_train_clips=None, n_test_clips=None, clips_per_actor=36, dim=6,
                                   frames=(4, 8), signal=2.5, seed=5)


def _run(args):
    r = CliRunner().invoke(cli, args, catch_exceptions=False)
    return r


def test_benchmark_json(corpus, tmp_path):
    r = _run(["benchmark", "--metadata", str(corpus.train_metadata), "--features", str(corpus.sources["video"]),
              "--features", str(corpus.sources["audio"]), "--test-metadata", str(corpus.test_metadata),
              "--selection", "paper", "--no-plots", "--out", str(tmp_path / "run"), "--json", *FAST])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert set(res["validation"]["acc_presence"]) == {"mean", "std", "folds"}
    assert {"acc_presence", "acc_salience"} <= set(res["test"])
    assert set(res["trivial"]) == {"single", "blend"}
    assert res["features"] == ["video", "audio"] and res["fusion"]["kind"] == "early"
    assert (tmp_path / "run" / "results.json").exists() and (tmp_path / "run" / "submission.zip").exists()


def test_benchmark_toml_grid_and_report(corpus, tmp_path):
    cfg = tmp_path / "grid.toml"
    cfg.write_text(f'''
metadata = "{corpus.train_metadata}"
selection = "paper"
preset = "fast"
plots = false
threads = 1
out = "{tmp_path / 'grid'}"
train = {{ epochs = 2, batch_size = 128, lr = 0.01 }}

[grid]
features = [["{corpus.sources['video']}"], ["{corpus.sources['audio']}"]]
head = ["linear"]
''')
    r = _run(["benchmark", str(cfg), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "| video_linear | video | linear | paper |" in r.stdout
    assert (tmp_path / "grid" / "report.md").exists()
    runs = sorted(p for p in (tmp_path / "grid").iterdir() if p.is_dir())
    assert [p.name for p in runs] == ["audio_linear", "video_linear"]
    r2 = _run(["report", *map(str, runs), "-o", str(tmp_path / "side.md")])
    assert r2.exit_code == 0 and "| audio_linear |" in r2.stdout and (tmp_path / "side.md").exists()


def test_train_then_predict_feature_folders(corpus, tmp_path):
    model = tmp_path / "model"
    r = _run(["train", "--metadata", str(corpus.train_metadata), "--features", str(corpus.sources["audio"]),
              "--head", "linear", "--out", str(model), *FAST])
    assert r.exit_code == 0, r.output
    assert "Model bundle" in r.stdout and (model / "bundle.json").exists()
    few = tmp_path / "few"
    few.mkdir()
    for p in sorted(corpus.sources["audio"].glob("A*.npy"))[:3]:
        (few / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "pred.json"
    r = _run(["predict", str(model), str(few), "-o", str(out), "--timeline", str(tmp_path / "tl")])
    assert r.exit_code == 0, r.output
    preds = json.loads(out.read_text())["predictions"]
    assert len(preds) == 3 and all(k.endswith(".mov") for k in preds)
    assert out.with_suffix(".csv").exists() and len(list((tmp_path / "tl").glob("*.png"))) == 3
    # a store root holding the needed source works too
    r = _run(["predict", str(model), str(corpus.root), "--json"])
    assert r.exit_code == 0 and len(json.loads(r.stdout)["predictions"]) == 36 * 12


def test_synth_features_command_and_errors(tmp_path):
    r = _run(["synth", "features", str(tmp_path / "s"), "--clips", "360", "--test-clips", "72", "--actors", "10",
              "--test-actors", "2", "--dim", "4", "--sources", "face", "--frames", "3,5"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "s" / "face").is_dir() and (tmp_path / "s" / "train_metadata.csv").exists()
    r = CliRunner().invoke(cli, ["benchmark", "--metadata", str(tmp_path / "s" / "train_metadata.csv")])
    assert r.exit_code != 0 and "--features" in r.output
    r = CliRunner().invoke(cli, ["synth", "features", str(tmp_path / "t"), "--frames", "x"])
    assert r.exit_code != 0 and "MIN,MAX" in r.output
    r = CliRunner().invoke(cli, ["predict", str(tmp_path), str(tmp_path)])
    assert r.exit_code == 2 and "not a blemore model" in r.output


def test_predict_media_needs_extractor_configs(corpus, tmp_path):
    """A model trained on plain feature folders cannot extract features from media clips."""
    import numpy as np

    plain = tmp_path / "plain"
    plain.mkdir()
    for p in corpus.sources["audio"].glob("A*.npy"):
        (plain / p.name).write_bytes(p.read_bytes())
    model = tmp_path / "model"
    r = _run(["train", "--metadata", str(corpus.train_metadata), "--features", str(plain), "--head", "linear",
              "--out", str(model), *FAST])
    assert r.exit_code == 0, r.output
    clip = tmp_path / "A100_ang_int1_ver1.mov"
    clip.write_bytes(b"not really a video")
    r = CliRunner().invoke(cli, ["predict", str(model), str(clip)])
    assert r.exit_code == 2 and "no extractor config" in r.output
    assert np.load(next(plain.glob("*.npy"))).ndim == 2
