"""videomae-v2-base (tiny random VideoMAE models built here) and video-swin's optional status."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import torch.nn.functional as F  # noqa: E402

from blemore.extractors import get_extractor_class  # noqa: E402
from blemore.extractors._hf import ExtractorUnavailableError  # noqa: E402
from blemore.extractors.hf_video import (  # noqa: E402
    VIDEOMAE_PREPROCESS,
    VideoMAEv2Base,
    VideoSwin,
    _torchvision_ok,
    segment_starts,
    videomae_v2_to_hf,
)

IMAGENET = dict(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            image_size=32, patch_size=8, num_frames=4, tubelet_size=2, layer_norm_eps=1e-6)


def _frames(n: int, h: int = 48, w: int = 64) -> np.ndarray:
    import cv2
    from skimage import data

    img = cv2.resize(data.astronaut(), (w, h), interpolation=cv2.INTER_AREA)
    return np.stack([np.roll(img, 2 * i, axis=1) for i in range(n)])


@pytest.fixture(scope="module")
def tiny_videomae(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_videomae")
    torch.manual_seed(0)
    model = transformers.VideoMAEModel(transformers.VideoMAEConfig(**TINY)).eval()
    model.save_pretrained(folder)
    transformers.VideoMAEImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                           **IMAGENET).save_pretrained(folder)
    return folder, model


def test_registered_with_paper_defaults():
    cls = get_extractor_class("videomae-v2-base")
    assert cls.default_weights == "OpenGVLab/VideoMAEv2-Base" and cls().dim == 768
    assert VideoMAEv2Base(fps=8, segment_stride=4).rate == 2.0 and VideoMAEv2Base().rate is None


def test_segment_starts():
    assert segment_starts(0, 16, 16) == []
    assert segment_starts(5, 16, 16) == [0]  # short clip: one padded segment
    assert segment_starts(16, 16, 16) == [0]
    assert segment_starts(40, 16, 16) == [0, 16, 24]  # tail covered
    assert segment_starts(40, 16, 16, cover_tail=False) == [0, 16]
    assert segment_starts(40, 16, 8) == [0, 8, 16, 24]


def test_preprocessing_matches_videomae_image_processor():
    frames = list(_frames(2, 240, 320))
    ref = transformers.VideoMAEImageProcessorPil(**IMAGENET)(frames, return_tensors="np")["pixel_values"][0]
    mine = VIDEOMAE_PREPROCESS(torch.from_numpy(np.stack(frames))).numpy()
    assert mine.shape == ref.shape == (2, 3, 224, 224)
    diff = np.abs(mine - ref)
    assert diff.mean() < 0.01 and diff.max() < 0.15


def test_segments_rows_and_times(tiny_videomae):
    folder, model = tiny_videomae
    e = VideoMAEv2Base(weights=str(folder), segment_stride=4, batch_size=2)
    assert e.dim == 32
    frames = _frames(11)
    times = np.arange(11) / 10.0
    feats, t, n = e.embed_video(zip(frames, times))
    assert n == 11 and e.num_frames == 4
    assert feats.shape == (3, 32)  # starts 0, 4 and the tail segment at 7
    np.testing.assert_allclose(t, [0.15, 0.55, 0.85])
    pix = e.preprocess(torch.from_numpy(frames))
    with torch.no_grad():
        for row, start in zip(feats, [0, 4, 7]):
            ref = model(pixel_values=pix[start:start + 4][None]).last_hidden_state.mean(dim=1)[0].numpy()
            np.testing.assert_allclose(row, ref, atol=1e-5)
    # frame_step 2: a segment spans 7 frames
    feats2, t2, _ = VideoMAEv2Base(weights=str(folder), frame_step=2, segment_stride=4).embed_video(
        zip(frames, times))
    assert feats2.shape == (2, 32)  # starts 0 and the tail at 4
    np.testing.assert_allclose(t2, [0.3, 0.7])
    with torch.no_grad():
        ref = model(pixel_values=pix[[4, 6, 8, 10]][None]).last_hidden_state.mean(dim=1)[0].numpy()
    np.testing.assert_allclose(feats2[1], ref, atol=1e-5)


def test_short_clip_gives_one_padded_segment(tiny_videomae):
    folder, model = tiny_videomae
    e = VideoMAEv2Base(weights=str(folder))
    frames = _frames(2)
    feats, t, n = e.embed_video(zip(frames, [0.0, 0.04]))
    assert feats.shape == (1, 32) and n == 2 and t.tolist() == [0.02]
    pix = e.preprocess(torch.from_numpy(frames))[[0, 1, 1, 1]]
    with torch.no_grad():
        ref = model(pixel_values=pix[None]).last_hidden_state.mean(dim=1)[0].numpy()
    np.testing.assert_allclose(feats[0], ref, atol=1e-5)


def test_layer_selection(tiny_videomae):
    folder, model = tiny_videomae
    frames = _frames(4)
    e = VideoMAEv2Base(weights=str(folder), layers="1-2")
    feats, _, _ = e.embed_video(zip(frames, np.arange(4) / 10))
    pix = e.preprocess(torch.from_numpy(frames))[None]
    with torch.no_grad():
        hs = model(pixel_values=pix, output_hidden_states=True).hidden_states
    ref = ((hs[1].mean(dim=1) + hs[2].mean(dim=1)) / 2)[0].numpy()
    np.testing.assert_allclose(feats[0], ref, atol=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        VideoMAEv2Base(weights=str(folder), layers="0-3").load()


# ----------------------------------------------------------------------------- VideoMAE V2 checkpoints
def _v2_state_dict(d=32, depth=2, patch=8, tubelet=2, seed=0, prefix="") -> dict:
    g = torch.Generator().manual_seed(seed)

    def r(*shape, s=0.2):
        return torch.randn(*shape, generator=g) * s

    sd = {"patch_embed.proj.weight": r(d, 3, tubelet, patch, patch, s=0.05), "patch_embed.proj.bias": r(d, s=0.1),
          "fc_norm.weight": 1 + r(d, s=0.1), "fc_norm.bias": r(d, s=0.1), "head.weight": r(10, d), "head.bias": r(10)}
    for i in range(depth):
        b = f"blocks.{i}."
        sd |= {b + "norm1.weight": 1 + r(d, s=0.1), b + "norm1.bias": r(d, s=0.1),
               b + "attn.qkv.weight": r(3 * d, d), b + "attn.q_bias": r(d, s=0.1), b + "attn.v_bias": r(d, s=0.1),
               b + "attn.proj.weight": r(d, d), b + "attn.proj.bias": r(d, s=0.1),
               b + "norm2.weight": 1 + r(d, s=0.1), b + "norm2.bias": r(d, s=0.1),
               b + "mlp.fc1.weight": r(4 * d, d), b + "mlp.fc1.bias": r(4 * d, s=0.1),
               b + "mlp.fc2.weight": r(d, 4 * d), b + "mlp.fc2.bias": r(d, s=0.1)}
    return {prefix + k: v for k, v in sd.items()}


def _sinusoid(n: int, d: int) -> torch.Tensor:
    pos = np.arange(n)[:, None] / np.power(10000, 2 * (np.arange(d)[None, :] // 2) / d)
    pos[:, 0::2], pos[:, 1::2] = np.sin(pos[:, 0::2]), np.cos(pos[:, 1::2])
    return torch.tensor(pos, dtype=torch.float32)[None]


def _v2_reference(sd: dict, clip: torch.Tensor, heads: int) -> torch.Tensor:
    """VideoMAE V2's ViT written from the paper's description: tubelet Conv3d patches, fixed
    sine-cosine positions, pre-LN blocks with q/v biases (no k bias), mean of the tokens, fc_norm."""
    w = sd["patch_embed.proj.weight"]
    d = w.shape[0]
    x = F.conv3d(clip.permute(0, 2, 1, 3, 4), w, sd["patch_embed.proj.bias"], stride=tuple(w.shape[2:]))
    x = x.flatten(2).transpose(1, 2)
    x = x + (sd["pos_embed"] if "pos_embed" in sd else _sinusoid(x.shape[1], d))
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    hd = d // heads
    for i in range(depth):
        b = f"blocks.{i}."
        h = F.layer_norm(x, (d,), sd[b + "norm1.weight"], sd[b + "norm1.bias"], 1e-6)
        bias = torch.cat([sd[b + "attn.q_bias"], torch.zeros(d), sd[b + "attn.v_bias"]])
        q, k, v = F.linear(h, sd[b + "attn.qkv.weight"], bias).reshape(len(x), -1, 3, heads, hd).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(hd), dim=-1) @ v
        x = x + F.linear(a.transpose(1, 2).reshape(len(x), -1, d), sd[b + "attn.proj.weight"], sd[b + "attn.proj.bias"])
        h = F.layer_norm(x, (d,), sd[b + "norm2.weight"], sd[b + "norm2.bias"], 1e-6)
        x = x + F.linear(F.gelu(F.linear(h, sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"])),
                         sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"])
    return F.layer_norm(x.mean(dim=1), (d,), sd["fc_norm.weight"], sd["fc_norm.bias"], 1e-6)


def _ref_rows(e, sd, frames, starts, heads=2):
    pix = e.preprocess(torch.from_numpy(frames))
    clips = torch.stack([pix[s:s + e.num_frames] for s in starts])
    with torch.no_grad():
        return _v2_reference(sd, clips, heads).numpy()


def test_videomae_v2_checkpoint_file_maps_exactly(tmp_path):
    sd = _v2_state_dict()
    # a learnable position table for 16 frames of 32 x 32 pixels (8 x 4 x 4 tokens) keeps it small;
    # the public checkpoints use the fixed sine-cosine table (tested with the repository layout below)
    sd["pos_embed"] = torch.randn(1, 128, 32, generator=torch.Generator().manual_seed(5)) * 0.2
    path = tmp_path / "vit_tiny_videomaev2.pth"
    torch.save({"module": sd}, path)  # as the training scripts save them
    e = VideoMAEv2Base(weights=str(path), num_heads=2)
    assert e.dim == 32  # from the tensor shapes, before loading
    e.load()
    assert e.num_frames == 16 and e.fc_norm is not None
    assert e.preprocess == dataclasses.replace(VIDEOMAE_PREPROCESS, size=32, crop=(32, 32))
    frames = _frames(20)
    feats, _, _ = e.embed_video(zip(frames, np.arange(20) / 25))
    np.testing.assert_allclose(feats, _ref_rows(e, sd, frames, [0, 4]), atol=2e-5)


def test_videomae_v2_remote_code_repository_layout(tmp_path):
    """OpenGVLab/VideoMAEv2-Base's layout: config.json with model_config, tensors under 'model.'."""
    from safetensors.torch import save_file

    sd = _v2_state_dict(prefix="model.", seed=1)
    folder = tmp_path / "VideoMAEv2-Base"
    folder.mkdir()
    save_file(sd, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({
        "model_type": "VideoMAEv2_Base", "architectures": ["VideoMAEv2_Base"],
        "model_config": {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2,
                         "mlp_ratio": 4, "qkv_bias": True, "layer_norm_eps": 1e-6, "tubelet_size": 2,
                         "use_mean_pooling": True, "num_frames": 4, "num_classes": 0}}))
    e = VideoMAEv2Base(weights=str(folder))
    assert e.dim == 32
    e.load()
    assert e.num_frames == 4 and e.preprocess.crop == (32, 32) and e.preprocess.mean == VIDEOMAE_PREPROCESS.mean
    frames = _frames(6)
    feats, _, _ = e.embed_video(zip(frames, np.arange(6) / 25))
    plain = {k[len("model."):]: v for k, v in sd.items()}
    np.testing.assert_allclose(feats, _ref_rows(e, plain, frames, [0, 2]), atol=2e-5)


def test_videomae_v2_mapping_refuses_unknown_variants():
    sd = _v2_state_dict()
    sd["blocks.0.gamma_1"] = torch.ones(32)  # layer scale: not in VideoMAE's architecture
    with pytest.raises(ValueError, match="unmapped.*gamma_1"):
        videomae_v2_to_hf(sd)
    with pytest.raises(ValueError, match="not a VideoMAE V2 checkpoint"):
        videomae_v2_to_hf({"foo.weight": torch.zeros(1)})


def test_not_a_videomae_folder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="neither a transformers VideoMAE folder"):
        VideoMAEv2Base(weights=str(tmp_path)).load()


# ----------------------------------------------------------------------------- media
def test_extract_clip_one_row_per_segment(tiny_videomae, tmp_path):
    from media_fixtures import make_clip

    folder, _ = tiny_videomae
    clip = make_clip(tmp_path / "A1_sad_int2_ver1.mp4", seconds=1.0, fps=25, audio=None)
    r = VideoMAEv2Base(weights=str(folder), segment_stride=8).extract(clip)
    starts = segment_starts(25, 4, 8)
    assert r.status == "ok" and r.features.shape == (len(starts), 32) == (4, 32)
    np.testing.assert_allclose(r.times, [(s + 1.5) / 25 for s in starts], atol=1e-3)
    assert r.info == {"frames": 25, "segments": 4}
    half = VideoMAEv2Base(weights=str(folder), segment_stride=8, fps=12.5).extract(clip)
    assert half.info["frames"] in (12, 13) and len(half.features) == len(segment_starts(half.info["frames"], 4, 8))
    from blemore.media import write_audio

    r = VideoMAEv2Base(weights=str(folder)).extract(write_audio(tmp_path / "a.wav", np.zeros(800, np.float32), 16000))
    assert r.status == "no-video"


# ----------------------------------------------------------------------------- Video Swin
@pytest.mark.skipif(_torchvision_ok(), reason="torchvision is installed here")
def test_video_swin_is_an_optional_extra_with_a_clear_error():
    e = VideoSwin()
    assert e.dim == 1024 and not VideoSwin.weights_available() and not e.weights_ready()
    with pytest.raises(ExtractorUnavailableError, match="torchvision.*torch pin"):
        e.load()


def test_cli_extract_videomae(tiny_videomae, tmp_path):
    from click.testing import CliRunner
    from media_fixtures import make_clip

    from blemore.cli import cli
    from blemore.store import open_source

    folder, _ = tiny_videomae
    clips = tmp_path / "clips"
    clips.mkdir()
    make_clip(clips / "A1_ang_int1_ver1.mp4", seconds=1.0, fps=25, audio=None)
    make_clip(clips / "A2_hap_int1_ver1.mp4", seconds=0.4, fps=25, audio=None)
    res = CliRunner().invoke(cli, ["extract", str(clips), "--out", str(tmp_path / "store"), "--extractor",
                                   "videomae-v2-base", "--weights", str(folder), "--set",
                                   "videomae-v2-base.segment_stride=8", "--layers", "2", "--workers", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    src = open_source(tmp_path / "store" / "videomae-v2-base")
    assert src.load("A1_ang_int1_ver1").shape == (4, 32) and src.load("A2_hap_int1_ver1").shape == (2, 32)
    np.testing.assert_allclose(src.times("A2_hap_int1_ver1"), [1.5 / 25, 7.5 / 25], atol=1e-3)
    assert src.config["settings"]["segment_stride"] == 8 and src.config["settings"]["layers"] == "2"


def test_cli_lists_the_encoders_offline():
    from click.testing import CliRunner

    from blemore.cli import cli

    res = CliRunner().invoke(cli, ["extractors", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert rows["videomae-v2-base"]["default_weights"] == "OpenGVLab/VideoMAEv2-Base"
    assert (rows["wavlm-large"]["dim"], rows["wavlm-large"]["rate"]) == (1024, 50.0)
    assert rows["imagebind-vision"]["dim"] == 1024 and rows["video-swin"]["default_weights"].startswith("torchvision:")
    assert isinstance(rows["hubert-large"]["available_offline"], bool)
