"""hicmae: our network loads a checkpoint saved with the authors' parameter names, strictly;
the forward pass matches a naive re-implementation; preprocessing, sampling and errors."""
import argparse
import time
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from blemore.extractors import create_extractor  # noqa: E402
from blemore.extractors._hf import WeightsUnavailableError  # noqa: E402
from blemore.extractors.hicmae import (  # noqa: E402
    HiCMAE,
    build_hicmae,
    hicmae_config_from_state_dict,
)

TINY = {"dim": 64, "dim_audio": 64, "num_heads": 1, "fusion_num_heads": 1, "tubelet_size": 2, "patch_size": 16,
        "patch_size_audio": 16, "depth": 2, "depth_audio": 2, "fusion_depth": 1, "mlp_hidden": 256,
        "mlp_hidden_audio": 256, "image_size": 32, "num_frames": 4, "audio_length": 256, "num_mel_bins": 128}


def authors_names(depth=2, depth_audio=2, fusion_depth=1, finetuned=True):
    """The parameter names of the authors' AudioVisionTransformer, written out from their module
    structure (modeling_finetune_av.py), independently of our model definition."""
    block = ["norm1.weight", "norm1.bias", "attn.q_bias", "attn.v_bias", "attn.qkv.weight", "attn.proj.weight",
             "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight",
             "mlp.fc2.bias"]
    cross = ["cross_attn.q_bias", "cross_attn.v_bias", "cross_attn.q.weight", "cross_attn.kv.weight",
             "cross_attn.proj.weight", "cross_attn.proj.bias", "cross_norm1.weight", "cross_norm1.bias",
             "cross_norm2.weight", "cross_norm2.bias"] + block
    names = ["encoder.patch_embed.proj.weight", "encoder.patch_embed.proj.bias", "encoder.norm.weight",
             "encoder.norm.bias", "encoder_audio.patch_embed.proj.weight", "encoder_audio.patch_embed.proj.bias",
             "encoder_audio.norm.weight", "encoder_audio.norm.bias", "encoder_fusion.norm.weight",
             "encoder_fusion.norm.bias", "encoder_fusion.norm_audio.weight", "encoder_fusion.norm_audio.bias"]
    names += [f"encoder.blocks.{i}.{b}" for i in range(depth) for b in block]
    names += [f"encoder_audio.blocks.{i}.{b}" for i in range(depth_audio) for b in block]
    names += [f"encoder_fusion.{m}.{i}.{b}" for m in ("blocks", "blocks_audio") for i in range(fusion_depth)
              for b in cross]
    if finetuned:
        names += ["fc_norm.weight", "fc_norm.bias", "video_layer_weights", "audio_layer_weights"]
    return sorted(names)


def _random_model(seed=0):
    torch.manual_seed(seed)
    m = build_hicmae(TINY)
    with torch.no_grad():
        for p in m.parameters():  # random everything, incl. biases, norms and layer weights
            p.add_(torch.randn_like(p) * 0.05)
    return m.eval()


def _save_like_authors(model, path, finetuned=True, extra=None):
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    if not finetuned:
        for k in ("fc_norm.weight", "fc_norm.bias", "video_layer_weights", "audio_layer_weights"):
            sd.pop(k)
        sd["encoder_to_decoder.weight"] = torch.zeros(8, 64)  # pre-training parts are ignored
        sd["decoder.blocks.0.norm1.weight"] = torch.ones(8)
    else:
        sd["head.weight"], sd["head.bias"] = torch.zeros(6, 256), torch.zeros(6)
    sd.update(extra or {})
    # the authors' save format: a dict with the weights under "model" and their argparse args
    torch.save({"model": sd, "epoch": 99, "args": argparse.Namespace(model="avit_dim64", input_size=32)}, path)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model = _random_model()
    path = _save_like_authors(model, tmp_path_factory.mktemp("hicmae") / "checkpoint-99.pth")
    return path, model


def _extractor(path, **kw):
    kw.setdefault("face_crop", False)
    return HiCMAE(weights=str(path), image_size=32, num_frames=4, device="cpu", **kw)


def test_parameter_names_are_the_authors(tiny):
    _, model = tiny
    assert sorted(model.state_dict()) == authors_names()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    cfg = hicmae_config_from_state_dict(shapes, num_heads=1, image_size=32, num_frames=4)
    assert cfg == TINY
    # the published base model: width 512 -> 8 heads, as in avit_dim512_patch16_160_a256
    base = dict(shapes, **{"encoder.patch_embed.proj.weight": (512, 3, 2, 16, 16),
                           "encoder_audio.patch_embed.proj.weight": (512, 1, 16, 16)})
    assert hicmae_config_from_state_dict(base)["num_heads"] == 8


def test_checkpoint_loads_strictly_and_outputs(tiny):
    path, model = tiny
    e = _extractor(path, num_heads=1)
    e.load()
    assert e.load_info["finetuned"] and e.load_info["ignored"] == 2  # the head
    for k, v in model.state_dict().items():
        torch.testing.assert_close(e.model.state_dict()[k], v)
    dims = {"fused": 256, "visual": 64, "audio": 64, "fusion": 128}
    for out, d in dims.items():
        assert _extractor(path, num_heads=1, output=out).dim == d  # read from the file, before loading


def test_pretrained_checkpoint_gets_uniform_layer_weights(tiny, tmp_path):
    _, model = tiny
    p = _save_like_authors(model, tmp_path / "pre.pth", finetuned=False)
    e = _extractor(p, num_heads=1)
    e.load()
    assert not e.load_info["finetuned"] and e.load_info["ignored"] == 2
    w = torch.softmax(e.model.video_layer_weights, 0)
    torch.testing.assert_close(w, torch.full((2,), 0.5))


def test_bad_checkpoints_are_refused_with_reasons(tiny, tmp_path):
    _, model = tiny
    sd = model.state_dict()
    broken = {k: v for k, v in sd.items() if k != "encoder.blocks.1.mlp.fc2.bias"}
    broken["encoder.blocks.0.gamma_1"] = torch.ones(64)  # layer scale: another variant
    torch.save({"model": broken}, tmp_path / "b.pth")
    with pytest.raises(ValueError) as err:
        _extractor(tmp_path / "b.pth", num_heads=1).load()
    assert "encoder.blocks.1.mlp.fc2.bias" in str(err.value) and "gamma_1" in str(err.value)
    torch.save({"model": {"blocks.0.norm1.weight": torch.ones(3)}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a HiCMAE checkpoint"):
        _extractor(tmp_path / "other.pth").load()


def test_missing_weights_fail_fast(tmp_path):
    t0 = time.perf_counter()
    assert not HiCMAE.weights_available()
    with pytest.raises(WeightsUnavailableError, match="sunlicai/HiCMAE.*--weights"):
        HiCMAE().load()
    with pytest.raises(WeightsUnavailableError, match="not an existing checkpoint file"):
        HiCMAE(weights=str(tmp_path / "nope.pth")).load()
    assert time.perf_counter() - t0 < 2.0
    with pytest.raises(ValueError, match="output must be one of"):
        HiCMAE(output="both")
    with pytest.raises(ValueError, match="no layers setting"):
        HiCMAE(layers="3")


def _naive_forward(model, video, audio):
    """The authors' forward, written with explicit attention matrices (reference)."""
    F = torch.nn.functional

    def ln(m, x):
        return F.layer_norm(x, m.weight.shape, m.weight, m.bias, 1e-6)

    def attn(a, x, ctx=None, heads=1):
        d = x.shape[-1]
        if ctx is None:
            w = a.qkv.weight
            q, k, v = x @ w[:d].T + a.q_bias, x @ w[d:2 * d].T, x @ w[2 * d:].T + a.v_bias
        else:
            q = x @ a.q.weight.T + a.q_bias
            k, v = ctx @ a.kv.weight[:d].T, ctx @ a.kv.weight[d:].T + a.v_bias
        s = torch.softmax((q * d ** -0.5) @ k.transpose(-1, -2), dim=-1)
        return a.proj(s @ v)

    def block(b, x):
        x = x + attn(b.attn, ln(b.norm1, x))
        return x + b.mlp.fc2(F.gelu(b.mlp.fc1(ln(b.norm2, x))))

    def encode(enc, x, table):
        x = enc.patch_embed.proj(x).flatten(2).transpose(1, 2) + table
        outs = []
        for b in enc.blocks:
            x = block(b, x)
            outs.append(ln(enc.norm, x))
        return outs

    def sincos(n, d):
        t = np.array([[p / np.power(10000, 2 * (j // 2) / d) for j in range(d)] for p in range(n)])
        t[:, 0::2], t[:, 1::2] = np.sin(t[:, 0::2]), np.cos(t[:, 1::2])
        return torch.tensor(t, dtype=torch.float32)[None]

    lv = encode(model.encoder, video, sincos(2 * 2 * 2, 64))
    la = encode(model.encoder_audio, audio, sincos(16 * 8, 64))
    wv, wa = torch.softmax(model.video_layer_weights, 0), torch.softmax(model.audio_layer_weights, 0)
    visual = sum(w * x.mean(1) for w, x in zip(wv, lv))
    aud = sum(w * x.mean(1) for w, x in zip(wa, la))
    v, a = lv[-1], la[-1]
    for bv, ba in zip(model.encoder_fusion.blocks, model.encoder_fusion.blocks_audio):
        nv = v + attn(bv.cross_attn, ln(bv.cross_norm1, v), ln(bv.cross_norm2, a))
        na = a + attn(ba.cross_attn, ln(ba.cross_norm1, a), ln(ba.cross_norm2, v))
        v, a = block(bv, nv), block(ba, na)
    v, a = ln(model.encoder_fusion.norm, v), ln(model.encoder_fusion.norm_audio, a)
    feats = torch.cat([visual, aud, v.mean(1), a.mean(1)], -1)
    return ln(model.fc_norm, feats)


def test_forward_matches_a_naive_reference(tiny):
    _, model = tiny
    g = torch.Generator().manual_seed(1)
    video, audio = torch.randn(2, 3, 4, 32, 32, generator=g), torch.randn(2, 1, 256, 128, generator=g)
    with torch.no_grad():
        ours = model(video, audio)
        ref = _naive_forward(model, video, audio)
    torch.testing.assert_close(ours["fused"], ref, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(ours["fused"], model.fc_norm(torch.cat([ours["visual"], ours["audio"],
                                                                       ours["fusion"]], -1)))


def test_audio_input_is_the_ast_recipe(tiny):
    """The log-Mel input equals a direct computation: Kaldi-style frames (25 ms / 10 ms, DC removed,
    pre-emphasis, Hanning window, 512-point power spectrum), 128 Kaldi mel bins, log, zero-padded to
    256 frames, then (x + 4.2677393) / (2 * 4.5689974)."""
    from transformers.audio_utils import mel_filter_bank

    path, _ = tiny
    e = _extractor(path, num_heads=1)
    e.load()
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    got = e.audio_input(wave)[0]
    assert got.shape == (256, 128)
    n = 1 + (len(wave) - 400) // 160
    frames = np.stack([wave[i * 160: i * 160 + 400].astype(np.float64) for i in range(n)])
    frames -= frames.mean(axis=1, keepdims=True)
    frames = np.concatenate([frames[:, :1] * (1 - 0.97), frames[:, 1:] - 0.97 * frames[:, :-1]], axis=1)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 399)
    power = np.abs(np.fft.rfft(frames * win, 512)) ** 2
    with warnings.catch_warnings():  # "a mel filter has all zero values": true of Kaldi's 128-bin bank too
        warnings.simplefilter("ignore", UserWarning)
        mel = mel_filter_bank(num_frequency_bins=257, num_mel_filters=128, min_frequency=20, max_frequency=8000,
                              sampling_rate=16000, norm=None, mel_scale="kaldi", triangularize_in_mel_space=True)
    logmel = np.log(np.maximum(power @ mel, 1.192092955078125e-07))
    want = np.zeros((256, 128))
    want[:n] = logmel
    want = (want + 4.2677393) / (2 * 4.5689974)
    np.testing.assert_allclose(got, want, atol=2e-3)


def test_segments_and_extract(tiny, tmp_path):
    from media_fixtures import make_clip

    path, _ = tiny
    e = _extractor(path, num_heads=1, frame_step=2, segment_stride=4)
    assert e.segments(3) == [[0, 1, 2, 2]]
    assert e.segments(10) == [[0, 1, 2, 3], [4, 5, 6, 7], [6, 7, 8, 9]]
    clip = make_clip(tmp_path / "A1_ang_int1_ver1.mp4", seconds=1.6, fps=25, size=(64, 80))
    r = e.extract(clip)
    assert r.status == "ok", r.error
    # 40 frames -> 20 sampled -> segments at 0, 4, 8, 12, 16 (the last one ends exactly at 20)
    assert r.features.shape == (5, 256) and r.info["sampled"] == 20 and r.info["segments"] == 5
    np.testing.assert_allclose(r.times, [(s * 2 + (s + 3) * 2) / 2 / 25 for s in (0, 4, 8, 12, 16)], atol=1e-6)
    mute = e.extract(make_clip(tmp_path / "mute.mp4", seconds=0.4, audio=None, size=(64, 80)))
    assert mute.status == "ok" and mute.features.shape == (2, 256)  # 5 sampled frames: starts 0 and 1 and "silence" in mute.info["audio"]
    (tmp_path / "bad.mp4").write_bytes(b"nope")
    assert e.extract(tmp_path / "bad.mp4").status == "failed"
    assert create_extractor("hicmae").name == "hicmae"


def test_face_crops_reuse_the_last_box(tiny, tmp_path):
    from media_fixtures import make_clip

    path, _ = tiny
    e = _extractor(path, num_heads=1, face_crop=True, frame_step=2)
    e.load()
    clip = make_clip(tmp_path / "A1_hap_int1_ver1.mp4", seconds=0.4, fps=25, size=(120, 160), blank=(4,))
    frames, times, n, dt = e.sample_frames(clip)
    assert n == 10 and len(frames) == 5 and abs(dt - 0.04) < 1e-6
    assert all(f.shape == (32, 32, 3) for f in frames)  # face crops at the model's size, the blank one too
    assert e._nofaces == 1
    r = e.extract(clip)
    assert r.status == "ok" and r.info["no_face_frames"] == 1
