"""wav2vec2 family with tiny random models of the real architectures: layer ranges (mean, concat,
all), audEERING's A/D/V head in the published checkpoint layout, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from blemore.extractors import create_extractor, get_extractor_class  # noqa: E402
from blemore.extractors.wav2vec2 import Wav2Vec2Emotion, Wav2Vec2Family  # noqa: E402

from helpers import assert_missing_weights_fail_fast  # noqa: E402
from test_extractors_hf_audio import SR, TINY, _wave  # noqa: E402  (same tiny Large-recipe config)


def _norm(w):
    return ((w - w.mean()) / np.sqrt(w.var() + 1e-7)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A plain wav2vec2 folder, and one in audEERING's published layout: config.json with
    architectures ["EmotionModel"], tensors ``wav2vec2.*`` + ``classifier.dense/out_proj``."""
    root = tmp_path_factory.mktemp("w2v")
    torch.manual_seed(0)
    model = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**TINY)).eval()
    model.save_pretrained(root / "plain")
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(root / "plain")

    emo = root / "emotion"
    emo.mkdir()
    cfg = transformers.Wav2Vec2Config(**TINY, num_labels=3).to_dict()
    cfg["architectures"] = ["EmotionModel"]
    cfg["id2label"] = {"0": "arousal", "1": "dominance", "2": "valence"}
    (emo / "config.json").write_text(json.dumps(cfg))
    g = torch.Generator().manual_seed(1)
    head = {"classifier.dense.weight": torch.randn(32, 32, generator=g) * 0.2,
            "classifier.dense.bias": torch.randn(32, generator=g) * 0.1,
            "classifier.out_proj.weight": torch.randn(3, 32, generator=g) * 0.2,
            "classifier.out_proj.bias": torch.randn(3, generator=g) * 0.1}
    sd = {f"wav2vec2.{k}": v for k, v in model.state_dict().items()}
    sd.update(head)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, str(emo / "model.safetensors"))
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(emo)
    return {"plain": root / "plain", "emotion": emo, "model": model, "head": head}


def _hidden(model, wave):
    with torch.no_grad():
        return [h[0].numpy() for h in model(torch.from_numpy(_norm(wave))[None], output_hidden_states=True).hidden_states]


def _last(model, wave):
    with torch.no_grad():
        return model(torch.from_numpy(_norm(wave))[None]).last_hidden_state[0].numpy()


def test_registered_defaults():
    assert get_extractor_class("wav2vec2").default_weights == "facebook/wav2vec2-large-lv60"
    assert get_extractor_class("wav2vec2-emotion").default_weights == \
        "audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim"
    e = create_extractor("wav2vec2", layers="6-12", layer_pool="concat")
    assert (e.dim, e.rate, e.modality) == (7 * 1024, 50.0, "audio")
    assert create_extractor("wav2vec2-emotion", output="avd").columns == ["arousal", "dominance", "valence"]


def test_layer_mean_concat_and_all(tiny):
    wave = _wave(1.0, seed=2)
    hs = _hidden(tiny["model"], wave)
    assert len(hs) == 4
    folder = str(tiny["plain"])
    mean, t = Wav2Vec2Family(weights=folder, layers="1-2").embed(wave)
    np.testing.assert_allclose(mean, (hs[1] + hs[2]) / 2, atol=1e-5)
    np.testing.assert_allclose(t, np.arange(len(mean)) / 50)
    cat_e = Wav2Vec2Family(weights=folder, layers="1-3", layer_pool="concat")
    assert cat_e.dim == 96  # read from config.json before loading
    cat, _ = cat_e.embed(wave)
    np.testing.assert_allclose(cat, np.concatenate(hs[1:4], axis=1), atol=1e-5)
    every = Wav2Vec2Family(weights=folder, layers="all")
    stack, _ = every.embed(wave)
    assert stack.shape == (len(hs[0]), 4, 32) and every.dim == 32
    np.testing.assert_allclose(stack, np.stack(hs, axis=1), atol=1e-5)
    assert every.config_dict()["layer_axis"]["size"] == 4
    last, _ = Wav2Vec2Family(weights=folder).embed(wave)
    np.testing.assert_allclose(last, _last(tiny["model"], wave), atol=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        Wav2Vec2Family(weights=folder, layers="2-5").load()
    for bad, msg in (({"layer_pool": "max"}, "layer_pool"), ({"layers": "al"}, "layers"),
                     ({"output": "avd", "layers": "2"}, "leave layers unset")):
        with pytest.raises(ValueError, match=msg):
            Wav2Vec2Family(**bad)


def test_audeering_layout_loads_with_its_head(tiny):
    """The published checkpoint's layout: the encoder under ``wav2vec2.`` and the A/D/V head
    (mean over time of the last hidden state -> dense -> tanh -> out_proj) computed by hand."""
    wave = _wave(1.5, seed=3)
    e = Wav2Vec2Emotion(weights=str(tiny["emotion"]))
    frames, _ = e.embed(wave)
    last = _last(tiny["model"], wave)
    np.testing.assert_allclose(frames, last, atol=1e-5)  # encoder weights loaded, prefix stripped
    avd_e = Wav2Vec2Emotion(weights=str(tiny["emotion"]), output="avd")
    avd, t = avd_e.embed(wave)
    h = {k: v.numpy().astype(np.float64) for k, v in tiny["head"].items()}
    pooled = last.mean(axis=0)
    want = np.tanh(pooled @ h["classifier.dense.weight"].T + h["classifier.dense.bias"]) @ \
        h["classifier.out_proj.weight"].T + h["classifier.out_proj.bias"]
    assert avd.shape == (1, 3) and avd_e.rate is None and t.tolist() == [0.0]
    np.testing.assert_allclose(avd[0], want, atol=1e-4)
    with pytest.raises(Exception, match="regression head"):
        Wav2Vec2Family(weights=str(tiny["plain"]), output="avd").load()


def test_other_model_types_and_refusals(tiny, tmp_path):
    torch.manual_seed(0)
    hub = transformers.HubertModel(transformers.HubertConfig(**TINY)).eval()
    hub.save_pretrained(tmp_path / "hubert")
    out, _ = Wav2Vec2Family(weights=str(tmp_path / "hubert"), layers="2").embed(_wave(0.5))
    np.testing.assert_allclose(out, _hidden(hub, _wave(0.5))[2], atol=1e-5)
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "config.json").write_text(json.dumps({"model_type": "clip"}))
    (tmp_path / "clip" / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="wav2vec2-style model_type"):
        Wav2Vec2Family(weights=str(tmp_path / "clip")).load()


def test_missing_weights_fail_fast(tmp_path, monkeypatch):
    assert_missing_weights_fail_fast((Wav2Vec2Family, Wav2Vec2Emotion), tmp_path, monkeypatch)


def test_layer_sweep_end_to_end(tiny, tmp_path):
    """``extract --layers all`` stores (T, L + 1, D) once; ``STORE/wav2vec2[layers=A-B]`` reads the
    mean of a range at benchmark time and equals extracting that range directly."""
    from click.testing import CliRunner
    from media_fixtures import make_clip

    from blemore.cli import cli
    from blemore.features import FeatureError, load_features, open_features
    from blemore.pooling import Pooling
    from blemore.store import StoreError, open_source

    clips = tmp_path / "clips"
    clips.mkdir()
    make_clip(clips / "A1_ang_int1_ver1.mp4", seconds=0.8)
    make_clip(clips / "A1_hap_int2_ver1.mp4", seconds=0.5)
    res = CliRunner().invoke(cli, ["extract", str(clips), "--out", str(tmp_path / "store"), "-e", "wav2vec2",
                                   "--weights", str(tiny["plain"]), "--layers", "all", "--device", "cpu",
                                   "--workers", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    folder = tmp_path / "store" / "wav2vec2"
    raw = np.load(folder / "A1_ang_int1_ver1.npy")
    assert raw.ndim == 3 and raw.shape[1:] == (4, 32)
    src = open_source(folder)
    assert src.config["layer_axis"]["size"] == 4 and src.dim == 32
    np.testing.assert_allclose(src.load("A1_ang_int1_ver1"), raw[:, -1])  # no selector: the last layer
    sel = open_features(f"{folder}[layers=1-2]")
    assert sel.name == "wav2vec2[layers=1-2]"
    np.testing.assert_allclose(sel.load("A1_ang_int1_ver1"), raw[:, 1:3].mean(axis=1), atol=1e-6)
    from blemore.media import read_audio

    wave, _ = read_audio(clips / "A1_ang_int1_ver1.mp4", sr=SR)
    direct, _ = Wav2Vec2Family(weights=str(tiny["plain"]), layers="1-2").embed(wave)
    np.testing.assert_allclose(sel.load("A1_ang_int1_ver1"), direct, atol=1e-4)
    ids = ["A1_ang_int1_ver1", "A1_hap_int2_ver1"]
    fs = load_features([f"{folder}[layers=1-2]", f"{folder}[layers=3]"], ids, Pooling("stats", stats=("mean",)), cache=False)
    assert set(fs.sources) == {"wav2vec2[layers=1-2]", "wav2vec2[layers=3-3]"}
    np.testing.assert_allclose(fs.blocks["wav2vec2[layers=3-3]"][0], raw[:, 3].mean(axis=0), atol=1e-5)
    with pytest.raises(StoreError, match="out of range.*0..3"):
        open_source(f"{folder}[layers=2-7]")
    with pytest.raises(FeatureError, match="must be a hidden-state index"):
        open_features(f"{folder}[layers=six]")
    plain = tmp_path / "plain"
    plain.mkdir()
    np.save(plain / "A1_ang_int1_ver1.npy", np.zeros((3, 4), np.float32))
    with pytest.raises(StoreError, match="no layer axis"):
        open_source(f"{plain}[layers=1]")


@pytest.mark.slow
def test_benchmark_reads_a_layer_range_without_re_extracting(tmp_path):
    """``blemore benchmark --features STORE/NAME[layers=1-1]`` on a store with a layer axis gives
    exactly the results of the plain features that layer holds."""
    from click.testing import CliRunner

    from blemore.cli import cli
    from blemore.store import ManifestRow, StoreWriter, open_source
    from blemore.synth.features import generate_feature_corpus

    c = generate_feature_corpus(tmp_path / "synth", n_train_actors=6, n_test_actors=1, n_train_clips=None,
                                n_test_clips=None, clips_per_actor=36, dim=4, frames=(3, 5), signal=2.5, seed=3)
    plain = open_source(c.sources["audio"])
    cfg = {"extractor": "layered", "version": "1", "modality": "audio", "settings": {}, "dim": plain.dim,
           "columns": None, "rate": None, "layer_axis": {"size": 3, "first": 0}}
    rng = np.random.default_rng(0)
    with StoreWriter(tmp_path / "store", cfg) as w:  # layers: zeros, the features, noise
        for cid in plain.clip_ids:
            x = plain.load(cid)
            w.write(ManifestRow(cid, "synth", "ok", frames=len(x)),
                    np.stack([0 * x, x, rng.standard_normal(x.shape)], axis=1))
    fast = ["--metadata", str(c.train_metadata), "--selection", "paper", "--no-plots", "--json", "--preset", "fast",
            "--epochs", "2", "--batch-size", "128", "--lr", "0.01", "--threads", "1", "--quiet", "--seed", "0"]
    runs = {}
    store = tmp_path / "store" / "layered"
    for name, feats in (("plain", str(c.sources["audio"])), ("layer", f"{store}[layers=1-1]"), ("noise", str(store))):
        r = CliRunner().invoke(cli, ["benchmark", "--features", feats, "--out", str(tmp_path / name), *fast],
                               catch_exceptions=False)
        assert r.exit_code == 0, r.output
        runs[name] = json.loads(r.stdout)["validation"]
    assert runs["layer"]["acc_presence"]["folds"] == runs["plain"]["acc_presence"]["folds"]
    assert runs["layer"]["acc_salience"]["folds"] == runs["plain"]["acc_salience"]["folds"]
    assert runs["noise"]["acc_presence"]["folds"] != runs["plain"]["acc_presence"]["folds"]  # no selector: last layer
    bad = CliRunner().invoke(cli, ["benchmark", "--features", f"{tmp_path / 'nope'}[layers=1-2]", *fast])
    assert bad.exit_code == 2 and "does not exist" in bad.output
