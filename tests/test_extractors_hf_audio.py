"""hubert-large / wavlm-large with tiny random models of the same architectures (built here)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from blemore.extractors import create_extractor, get_extractor_class  # noqa: E402
from blemore.extractors._hf import WeightsUnavailableError, parse_layers, weights_available  # noqa: E402
from blemore.extractors.hf_audio import HubertLarge, WavLMLarge, frame_geometry, num_frames  # noqa: E402

SR = 16000
TINY = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=48,
            conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
            do_stable_layer_norm=True, feat_extract_norm="layer")


def _save_tiny(folder, kind: str, do_normalize: bool = True, seed: int = 0):
    cfg_cls, model_cls = {"hubert": (transformers.HubertConfig, transformers.HubertModel),
                          "wavlm": (transformers.WavLMConfig, transformers.WavLMModel)}[kind]
    torch.manual_seed(seed)
    model = model_cls(cfg_cls(**TINY)).eval()
    model.save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=do_normalize, return_attention_mask=True).save_pretrained(folder)
    return model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_audio")
    return {kind: (root / kind, _save_tiny(root / kind, kind)) for kind in ("hubert", "wavlm")}


def _wave(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 180 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


CLASSES = [("hubert", HubertLarge), ("wavlm", WavLMLarge)]


def test_registered_with_paper_defaults():
    assert get_extractor_class("hubert-large").default_weights == "facebook/hubert-large-ll60k"
    assert get_extractor_class("wavlm-large").default_weights == "microsoft/wavlm-large"
    e = create_extractor("wavlm-large")
    assert (e.dim, e.rate, e.modality) == (1024, 50.0, "audio")


def test_import_is_lazy():
    code = "import sys, blemore.extractors.hf_audio, blemore.extractors.hf_image, blemore.extractors.hf_video; " \
           "print(int('transformers' in sys.modules), int('torch' in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "0"]


def test_frame_geometry_of_the_wav2vec2_front_end():
    assert frame_geometry([10, 3, 3, 3, 3, 2, 2], [5, 2, 2, 2, 2, 2, 2]) == (400, 320)
    assert num_frames(16000, 400, 320) == 49 and num_frames(399, 400, 320) == 0 and num_frames(400, 400, 320) == 1


@pytest.mark.parametrize("kind,cls", CLASSES)
def test_dim_and_50_frames_per_second(tiny, kind, cls):
    folder, model = tiny[kind]
    e = cls(weights=str(folder))
    assert e.dim == 32  # read from the folder's config before loading
    wave = _wave(1.5)
    feats, times = e.embed(wave)
    assert feats.shape == ((len(wave) - 400) // 320 + 1, 32) == (74, 32)
    assert feats.dtype == np.float32 and np.isfinite(feats).all()
    np.testing.assert_allclose(times, np.arange(74) * 0.02)
    assert e.rate == 50.0
    # the last hidden state of the model itself, on the normalised waveform
    x = (wave - wave.mean()) / np.sqrt(wave.var() + 1e-7)
    with torch.no_grad():
        ref = model(torch.from_numpy(x[None])).last_hidden_state[0].numpy()
    np.testing.assert_allclose(feats, ref, atol=1e-5)


@pytest.mark.parametrize("do_normalize", [True, False])
def test_preprocessing_matches_wav2vec2_feature_extractor(tmp_path, do_normalize):
    folder = tmp_path / "m"
    _save_tiny(folder, "hubert", do_normalize=do_normalize)
    e = HubertLarge(weights=str(folder))
    e.load()
    wave = _wave(0.7) * 3 + 0.2
    fe = transformers.Wav2Vec2FeatureExtractor.from_pretrained(folder)
    ref = fe(wave, sampling_rate=SR, return_tensors="np")["input_values"][0]
    np.testing.assert_allclose(e.preprocess(wave), ref, atol=1e-5)
    # the setting overrides the checkpoint
    e2 = HubertLarge(weights=str(folder), normalize=not do_normalize)
    e2.load()
    assert not np.allclose(e2.preprocess(wave), ref, atol=1e-3)


def test_very_short_clip_gives_one_row(tiny):
    e = HubertLarge(weights=str(tiny["hubert"][0]))
    feats, times = e.embed(_wave(0.01))  # 160 samples < one 400-sample window
    assert feats.shape == (1, 32) and times.tolist() == [0.0]


@pytest.mark.parametrize("n_samples", [400, 16000 * 3 + 17, 16000 * 7 - 1, 320 * 250 + 400])
def test_chunk_plan_covers_every_row_once(tiny, n_samples):
    e = WavLMLarge(weights=str(tiny["wavlm"][0]), chunk_seconds=1.0, context_seconds=0.3)
    e.load()
    plan = e.chunk_plan(n_samples)
    total = num_frames(n_samples, 400, 320)
    kept = np.concatenate([np.arange(ka, kb) for _, _, ka, kb in plan])
    np.testing.assert_array_equal(kept, np.arange(total))
    for a, b, ka, kb in plan:
        assert a <= ka < kb <= b and (b - 1) * 320 + 400 <= n_samples
        assert ka - a >= min(15, ka) and b - kb >= min(15, total - kb)  # 0.3 s of context where there is audio


@pytest.mark.parametrize("kind,cls", CLASSES)
def test_chunked_long_clip_matches_unchunked(tiny, kind, cls):
    folder, _ = tiny[kind]
    wave = _wave(7.0, seed=3)
    whole, t_whole = cls(weights=str(folder), chunk_seconds=60).embed(wave)
    chunked, t_chunked = cls(weights=str(folder), chunk_seconds=2.0, context_seconds=0.5, batch_size=2).embed(wave)
    assert chunked.shape == whole.shape == (349, 32)
    np.testing.assert_array_equal(t_chunked, t_whole)
    # rows far from any chunk boundary see the same audio up to attention over a shorter window
    scale = np.abs(whole).mean()
    assert np.abs(chunked - whole).mean() < 0.01 * scale
    assert np.abs(chunked - whole).max() < 0.2 * scale
    assert np.corrcoef(chunked.ravel(), whole.ravel())[0, 1] > 0.999


@pytest.mark.parametrize("kind,cls", CLASSES)
def test_layer_selection(tiny, kind, cls):
    folder, model = tiny[kind]
    wave = _wave(1.0, seed=1)
    x = torch.from_numpy(((wave - wave.mean()) / np.sqrt(wave.var() + 1e-7))[None])
    with torch.no_grad():
        hs = [h[0].numpy() for h in model(x, output_hidden_states=True).hidden_states]
    assert len(hs) == 4  # embeddings + 3 layers
    one, _ = cls(weights=str(folder), layers="1").embed(wave)
    np.testing.assert_allclose(one, hs[1], atol=1e-5)
    rng_, _ = cls(weights=str(folder), layers="1-3").embed(wave)
    np.testing.assert_allclose(rng_, np.mean(hs[1:4], axis=0), atol=1e-5)
    last, _ = cls(weights=str(folder)).embed(wave)
    assert not np.allclose(one, last, atol=1e-3)
    with pytest.raises(ValueError, match="out of range.*3 layers"):
        cls(weights=str(folder), layers="2-4").load()


def test_layer_spec_parsing():
    assert parse_layers(None) is None and parse_layers("last") is None
    assert (parse_layers("6-12").first, parse_layers("6-12").last) == (6, 12)
    assert str(parse_layers(12)) == "12" and str(parse_layers(" 3 - 5 ")) == "3-5"
    for bad in ("12-6", "x", "-1", "1-2-3"):
        with pytest.raises(ValueError, match="layers"):
            parse_layers(bad)
    with pytest.raises(ValueError, match="layers"):
        HubertLarge(layers="six")


def test_missing_weights_fail_fast_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    assert not HubertLarge.weights_available()
    with pytest.raises(WeightsUnavailableError) as err:
        HubertLarge().load()
    msg = str(err.value)
    assert "facebook/hubert-large-ll60k" in msg and str(tmp_path / "empty-cache") in msg
    assert "hf download facebook/hubert-large-ll60k" in msg and "--weights" in msg
    # downloads allowed but the hub unreachable: still immediate (a closed local port, no retries)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(WeightsUnavailableError, match="cannot be reached"):
        WavLMLarge().load()
    with pytest.raises(WeightsUnavailableError, match="neither an existing file or folder"):
        WavLMLarge(weights=str(tmp_path / "nope" / "model.pth")).load()
    assert time.perf_counter() - t0 < 5.0


def test_weights_found_in_the_hub_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    snap = cache / "models--someone--tiny-wavlm" / "snapshots" / "0123abcd"
    _save_tiny(snap, "wavlm")
    (cache / "models--someone--tiny-wavlm" / "refs").mkdir()
    (cache / "models--someone--tiny-wavlm" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert weights_available("someone/tiny-wavlm") and not weights_available("someone/other")
    e = WavLMLarge(weights="someone/tiny-wavlm")
    assert e.weights_ready() and e.dim == 32
    feats, _ = e.embed(_wave(0.5))
    assert feats.shape == (24, 32)


def test_wrong_model_type_is_refused(tiny):
    with pytest.raises(ValueError, match="'hubert' model; expected one of \\('wavlm',\\)"):
        WavLMLarge(weights=str(tiny["hubert"][0])).load()


def test_runtime_settings_stay_out_of_the_store_identity(tiny):
    a = HubertLarge(weights=str(tiny["hubert"][0]), device="cpu", batch_size=1)
    b = HubertLarge(weights=str(tiny["hubert"][0]), batch_size=16, precision="fp32")
    assert a.config_hash() == b.config_hash()
    assert a.config_dict()["runtime"]["batch_size"] == 1 and "device" not in a.config_dict()["settings"]
    assert a.config_hash() != HubertLarge(weights=str(tiny["hubert"][0]), layers="2").config_hash()
    assert HubertLarge().config_dict()["settings"]["weights"] == "facebook/hubert-large-ll60k"


def test_extract_media_files(tiny, tmp_path):
    from media_fixtures import make_clip

    from blemore.media import write_audio

    e = HubertLarge(weights=str(tiny["hubert"][0]))
    clip = make_clip(tmp_path / "A1_ang_int1_ver1.mp4", seconds=1.2, audio="voice")
    r = e.extract(clip)
    assert r.status == "ok" and r.features.shape[1] == 32
    assert abs(len(r.features) - 1.2 * 50) <= 2 and r.info["frames"] == len(r.features)
    wav = write_audio(tmp_path / "a.wav", _wave(2.0), SR)
    r = e.extract(wav)
    assert r.status == "ok" and r.features.shape == (99, 32)
    r = e.extract(make_clip(tmp_path / "mute.mp4", seconds=0.5, audio=None))
    assert r.status == "no-audio" and r.features.shape == (0, 32)
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    r = e.extract(tmp_path / "bad.mp4")
    assert r.status == "failed" and r.error


@pytest.mark.skipif(os.environ.get("BLEMORE_SKIP_CLI") == "1", reason="CLI disabled")
def test_cli_extract_with_weights_folder(tiny, tmp_path):
    from click.testing import CliRunner
    from media_fixtures import make_clip

    from blemore.cli import cli
    from blemore.store import open_source

    clips = tmp_path / "clips"
    clips.mkdir()
    make_clip(clips / "A1_ang_int1_ver1.mp4", seconds=1.0)
    make_clip(clips / "A1_hap_int2_ver1.mp4", seconds=0.6)
    res = CliRunner().invoke(cli, ["extract", str(clips), "--out", str(tmp_path / "store"), "--extractor",
                                   "wavlm-large", "--weights", str(tiny["wavlm"][0]), "--layers", "1-2",
                                   "--device", "cpu", "--batch-size", "2", "--workers", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    src = open_source(tmp_path / "store" / "wavlm-large")
    assert sorted(src.clip_ids) == ["A1_ang_int1_ver1", "A1_hap_int2_ver1"]
    x = src.load("A1_ang_int1_ver1")
    assert x.shape[1] == 32 and abs(len(x) - 50) <= 2 and src.rate == 50.0
    assert src.config["settings"]["layers"] == "1-2"


def test_cli_encoder_options_need_an_encoder(tmp_path):
    from click.testing import CliRunner
    from media_fixtures import make_clip

    from blemore.cli import cli

    clip = make_clip(tmp_path / "A1_ang_int1_ver1.mp4", seconds=0.3)
    res = CliRunner().invoke(cli, ["extract", str(clip), "--out", str(tmp_path / "s"), "--extractor", "egemaps",
                                   "--layers", "6-12"])
    assert res.exit_code == 2 and "--layers applies to the pretrained encoders" in res.output


def test_from_model_wraps_an_in_memory_model(tiny):
    folder, model = tiny["hubert"]
    wave = _wave(0.8, seed=4)
    a, _ = HubertLarge.from_model(model, {"do_normalize": True}, layers="2").embed(wave)
    b, _ = HubertLarge(weights=str(folder), layers="2").embed(wave)
    np.testing.assert_allclose(a, b, atol=1e-6)
    raw, _ = HubertLarge.from_model(model, {"do_normalize": False}).embed(wave)
    assert not np.allclose(raw, HubertLarge.from_model(model).embed(wave)[0], atol=1e-4)


def test_download_path_when_the_hub_is_reachable(tmp_path, monkeypatch):
    """Not cached, downloads allowed, hub reachable: snapshot_download fetches config + weights only."""
    import huggingface_hub

    from blemore.extractors import _hf

    calls = []

    def fake_snapshot_download(repo_id, allow_patterns=None, **kw):
        calls.append((repo_id, list(allow_patterns)))
        folder = tmp_path / "downloaded"
        if not folder.exists():
            _save_tiny(folder, "hubert")
        return str(folder)

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(_hf, "_hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    e = HubertLarge()
    assert not e.weights_ready()
    feats, _ = e.embed(_wave(0.5))
    assert feats.shape == (24, 32)
    assert calls[0][0] == "facebook/hubert-large-ll60k"
    assert "model.safetensors" in calls[0][1] and "config.json" in calls[0][1]
    assert not any(p.endswith(".bin") for p in calls[0][1])
    with pytest.raises(WeightsUnavailableError, match="allow_download is off"):
        HubertLarge(allow_download=False).load()
