"""clip-vit-b32 / imagebind-vision with tiny random models (built here)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import torch.nn.functional as F  # noqa: E402

from blemore.extractors import get_extractor_class  # noqa: E402
from blemore.extractors._hf import ImagePreprocess  # noqa: E402
from blemore.extractors.hf_image import (  # noqa: E402
    CLIP_PREPROCESS,
    IMAGEBIND_PREPROCESS,
    ClipViTB32,
    ImageBindVision,
    imagebind_vision_to_clip,
)

VISION = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
              image_size=32, patch_size=8)


def _frames(n: int = 3, h: int = 120, w: int = 160) -> np.ndarray:
    from skimage import data
    from skimage.transform import resize

    img = (resize(data.astronaut(), (h, w), anti_aliasing=True) * 255).astype(np.uint8)
    return np.stack([np.roll(img, 3 * i, axis=1) for i in range(n)])


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A full tiny CLIP (text + vision) folder with a 32-pixel processor config."""
    folder = tmp_path_factory.mktemp("tiny_clip")
    torch.manual_seed(0)
    cfg = transformers.CLIPConfig(
        text_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         vocab_size=99, bos_token_id=0, eos_token_id=1, pad_token_id=1),
        vision_config=VISION, projection_dim=16)
    model = transformers.CLIPModel(cfg).eval()
    model.save_pretrained(folder)
    transformers.CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
                                       ).save_pretrained(folder)
    return folder, model


def test_registered_with_paper_defaults():
    assert get_extractor_class("clip-vit-b32").default_weights == "openai/clip-vit-base-patch32"
    assert get_extractor_class("clip-vit-b32")().dim == 512
    ib = get_extractor_class("imagebind-vision")()
    assert ib.dim == 1024 and ib.config.normalize and ib.modality == "video"
    assert get_extractor_class("imagebind-vision")(output="pooled").dim == 1280


@pytest.mark.parametrize("hw", [(480, 640), (640, 480), (301, 457), (100, 90)])
def test_preprocessing_matches_clip_image_processor(hw):
    frame = _frames(1, *hw)[0]
    ref = transformers.CLIPImageProcessorPil()(images=[frame], return_tensors="np")["pixel_values"][0]
    mine = CLIP_PREPROCESS(torch.from_numpy(frame)[None])[0].numpy()
    assert mine.shape == ref.shape == (3, 224, 224)
    diff = np.abs(mine - ref)
    # torch's antialiased bicubic stands in for PIL's: a fraction of a grey level on average
    assert diff.mean() < 0.01 and diff.max() < 0.15


def test_preprocess_reads_the_checkpoint_config():
    cfg = {"size": {"shortest_edge": 256}, "crop_size": {"height": 240, "width": 240}, "resample": 2,
           "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}
    p = ImagePreprocess.from_processor_config(cfg, CLIP_PREPROCESS)
    assert (p.size, p.crop, p.resample, p.mean, p.std) == (256, (240, 240), "bilinear", (0.5,) * 3, (0.25,) * 3)
    assert ImagePreprocess.from_processor_config({}, CLIP_PREPROCESS) is CLIP_PREPROCESS
    # torchvision's centre crop rounds the offset, transformers' floors it
    x = torch.arange(5 * 230 * 3, dtype=torch.uint8).reshape(1, 5, 230, 3).expand(1, 5, 230, 3)
    a = ImagePreprocess(size=5, crop=(5, 227))(x.contiguous())
    b = ImagePreprocess(size=5, crop=(5, 227), crop_offset="round")(x.contiguous())
    assert not torch.equal(a, b)


def test_clip_embeddings_equal_the_model_features(tiny_clip):
    folder, model = tiny_clip
    e = ClipViTB32(weights=str(folder))
    assert e.dim == 16  # the top-level projection_dim of the folder, before loading
    frames = _frames(3)
    out = e.embed_frames(frames)
    assert out.shape == (3, 16) and out.dtype == np.float32
    assert e.preprocess.size == 32 and e.preprocess.crop == (32, 32)
    pixels = e.preprocess(torch.from_numpy(frames))
    with torch.no_grad():
        ref = model.get_image_features(pixel_values=pixels)
    ref = getattr(ref, "pooler_output", ref).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-5)
    # and, through the official processor, equal up to the resize differences
    proc = transformers.CLIPImageProcessorPil.from_pretrained(folder)(images=list(frames), return_tensors="pt")
    with torch.no_grad():
        ref2 = model.get_image_features(pixel_values=proc["pixel_values"])
    ref2 = getattr(ref2, "pooler_output", ref2).numpy()
    assert np.abs(out - ref2).max() < 0.05 * np.abs(ref2).mean()


def test_outputs_layers_and_normalisation(tiny_clip):
    folder, model = tiny_clip
    frames = _frames(2)
    pixels = ClipViTB32(weights=str(folder)).preprocess  # default before load; use the loaded one below
    e = ClipViTB32(weights=str(folder), output="pooled")
    assert e.dim == 32
    pooled = e.embed_frames(frames)
    pixels = e.preprocess(torch.from_numpy(frames))
    with torch.no_grad():
        vo = model.vision_model(pixel_values=pixels, output_hidden_states=True)
    np.testing.assert_allclose(pooled, vo.pooler_output.numpy(), atol=1e-5)
    lay = ClipViTB32(weights=str(folder), layers="1-2").embed_frames(frames)
    ref = (vo.hidden_states[1][:, 0] + vo.hidden_states[2][:, 0]).numpy() / 2
    np.testing.assert_allclose(lay, ref, atol=1e-5)
    normed = ClipViTB32(weights=str(folder), normalize=True).embed_frames(frames)
    np.testing.assert_allclose(np.linalg.norm(normed, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="output must be one of"):
        ClipViTB32(output="cls")
    with pytest.raises(ValueError, match="out of range"):
        ClipViTB32(weights=str(folder), layers="3").load()


# ----------------------------------------------------------------------------- ImageBind
def _imagebind_vision_state_dict(d: int = 32, layers: int = 2, patch: int = 8, grid: int = 4, out: int = 24,
                                 seed: int = 0) -> dict:
    """Random tensors in ImageBind's layout (vision branch, plus a text key to ignore)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, s=0.2):
        return torch.randn(*shape, generator=g) * s

    pre, tr, hd = "modality_preprocessors.vision.", "modality_trunks.vision.", "modality_heads.vision."
    sd = {pre + "cls_token": r(1, 1, d), pre + "rgbt_stem.proj.1.weight": r(d, 3, 2, patch, patch, s=0.05),
          pre + "pos_embedding_helper.pos_embed": r(1, grid * grid + 1, d),
          tr + "pre_transformer_layer.0.weight": 1 + r(d, s=0.1), tr + "pre_transformer_layer.0.bias": r(d, s=0.1),
          hd + "0.weight": 1 + r(d, s=0.1), hd + "0.bias": r(d, s=0.1), hd + "2.weight": r(out, d),
          "modality_trunks.text.blocks.0.attn.in_proj_weight": r(96, 32)}
    for i in range(layers):
        b = f"{tr}blocks.{i}."
        sd |= {b + "attn.in_proj_weight": r(3 * d, d), b + "attn.in_proj_bias": r(3 * d, s=0.1),
               b + "attn.out_proj.weight": r(d, d), b + "attn.out_proj.bias": r(d, s=0.1),
               b + "norm_1.weight": 1 + r(d, s=0.1), b + "norm_1.bias": r(d, s=0.1),
               b + "norm_2.weight": 1 + r(d, s=0.1), b + "norm_2.bias": r(d, s=0.1),
               b + "mlp.fc1.weight": r(4 * d, d), b + "mlp.fc1.bias": r(4 * d, s=0.1),
               b + "mlp.fc2.weight": r(d, 4 * d), b + "mlp.fc2.bias": r(d, s=0.1)}
    return sd


def _imagebind_reference(sd: dict, pixels: torch.Tensor, heads: int) -> torch.Tensor:
    """ImageBind's vision forward pass written from its description: the image repeated into
    a 2-frame clip, Conv3d patches, CLS + learned positions, pre-LN transformer (eps 1e-6),
    LayerNorm + CLS + linear head, L2 normalisation."""
    pre, tr, hd = "modality_preprocessors.vision.", "modality_trunks.vision.", "modality_heads.vision."
    w3 = sd[pre + "rgbt_stem.proj.1.weight"]
    d = w3.shape[0]
    clip = pixels.unsqueeze(2).repeat(1, 1, 2, 1, 1)  # B, C, T=2, H, W
    x = F.conv3d(clip, w3, stride=tuple(w3.shape[2:])).flatten(2).transpose(1, 2)
    x = torch.cat([sd[pre + "cls_token"].expand(len(x), -1, -1), x], dim=1) + sd[pre + "pos_embedding_helper.pos_embed"]
    x = F.layer_norm(x, (d,), sd[tr + "pre_transformer_layer.0.weight"], sd[tr + "pre_transformer_layer.0.bias"], 1e-6)
    n_layers = len({k.split(".")[3] for k in sd if k.startswith(tr + "blocks.")})
    for i in range(n_layers):
        b = f"{tr}blocks.{i}."
        attn = torch.nn.MultiheadAttention(d, heads, batch_first=True)
        attn.load_state_dict({"in_proj_weight": sd[b + "attn.in_proj_weight"], "in_proj_bias": sd[b + "attn.in_proj_bias"],
                              "out_proj.weight": sd[b + "attn.out_proj.weight"], "out_proj.bias": sd[b + "attn.out_proj.bias"]})
        h = F.layer_norm(x, (d,), sd[b + "norm_1.weight"], sd[b + "norm_1.bias"], 1e-6)
        x = x + attn(h, h, h, need_weights=False)[0]
        h = F.layer_norm(x, (d,), sd[b + "norm_2.weight"], sd[b + "norm_2.bias"], 1e-6)
        h = F.linear(F.gelu(F.linear(h, sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"])),
                     sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"])
        x = x + h
    x = F.layer_norm(x, (d,), sd[hd + "0.weight"], sd[hd + "0.bias"], 1e-6)[:, 0]
    return F.normalize(F.linear(x, sd[hd + "2.weight"]), dim=-1)


def test_imagebind_checkpoint_maps_exactly(tmp_path):
    sd = _imagebind_vision_state_dict()
    path = tmp_path / "imagebind_tiny.pth"
    torch.save(sd, path)
    e = ImageBindVision(weights=str(path), num_heads=2)
    assert e.dim == 24  # read from the checkpoint's head before loading
    frames = _frames(3)
    out = e.embed_frames(frames)
    assert out.shape == (3, 24)
    # ImageBind's pipeline (torchvision rounding of the crop), at the tiny model's 32 pixels
    assert e.preprocess == dataclasses.replace(IMAGEBIND_PREPROCESS, size=32, crop=(32, 32))
    pixels = e.preprocess(torch.from_numpy(frames))
    with torch.no_grad():
        ref = _imagebind_reference(sd, pixels, heads=2).numpy()
    np.testing.assert_allclose(out, ref, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    cfg, mapped = imagebind_vision_to_clip(sd, num_heads=2)
    assert cfg["layer_norm_eps"] == 1e-6 and cfg["hidden_act"] == "gelu" and cfg["image_size"] == 32
    assert not any("text" in k for k in mapped)


def test_imagebind_rejects_other_checkpoints(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ValueError, match="not an ImageBind checkpoint"):
        ImageBindVision(weights=str(path)).load()
    with pytest.raises(ValueError, match="expected a transformers CLIP folder"):
        ClipViTB32(weights=str(path)).load()


def test_imagebind_from_a_clip_folder_is_normalised(tiny_clip):
    folder, _ = tiny_clip
    out = ImageBindVision(weights=str(folder)).embed_frames(_frames(2))
    assert out.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


# ----------------------------------------------------------------------------- media
def test_extract_video_per_frame_and_fps(tiny_clip, tmp_path):
    from media_fixtures import make_clip

    folder, _ = tiny_clip
    clip = make_clip(tmp_path / "A1_ang_int1_ver1.mp4", seconds=1.0, fps=25, audio=None)
    r = ClipViTB32(weights=str(folder), batch_size=8).extract(clip)
    assert r.status == "ok" and r.features.shape == (25, 16)
    np.testing.assert_allclose(r.times, np.arange(25) / 25, atol=1e-3)
    r5 = ClipViTB32(weights=str(folder), fps=5).extract(clip)
    assert r5.features.shape == (5, 16) and ClipViTB32(fps=5).rate == 5.0
    np.testing.assert_allclose(r5.features, r.features[::5], atol=1e-5)
    from blemore.media import write_audio

    r = ClipViTB32(weights=str(folder)).extract(write_audio(tmp_path / "a.wav", np.zeros(8000, np.float32), 16000))
    assert r.status == "no-video"


@pytest.mark.slow
def test_face_crop(tiny_clip, tmp_path):
    pytest.importorskip("mediapipe")
    from media_fixtures import make_clip

    folder, _ = tiny_clip
    clip = make_clip(tmp_path / "face.mp4", seconds=0.4, fps=25, audio=None, blank=(3, 4))
    e = ClipViTB32(weights=str(folder), face_crop=True)
    r = e.extract(clip)
    assert r.status == "ok" and r.features.shape == (10, 16)
    found = np.isfinite(r.features).all(axis=1)
    assert not found[3] and not found[4] and found.sum() >= 6 and r.info["faces"] == found.sum()
    full = ClipViTB32(weights=str(folder)).extract(clip).features
    assert not np.allclose(r.features[found], full[found], atol=1e-3)  # the crop, not the frame
    r = e.extract(make_clip(tmp_path / "empty.mp4", seconds=0.2, fps=25, audio=None, blank=tuple(range(5))))
    assert r.status == "no-face" and np.isnan(r.features).all()


def test_cli_extract_clip_and_imagebind(tiny_clip, tmp_path):
    from click.testing import CliRunner
    from media_fixtures import make_clip

    from blemore.cli import cli
    from blemore.store import open_source

    folder, _ = tiny_clip
    clips = tmp_path / "clips"
    clips.mkdir()
    make_clip(clips / "A1_ang_int1_ver1.mp4", seconds=0.8, fps=25, audio=None)
    ib = tmp_path / "imagebind_tiny.pth"
    torch.save(_imagebind_vision_state_dict(), ib)
    store = tmp_path / "store"
    for name, weights, extra in (("clip-vit-b32", folder, []), ("imagebind-vision", ib, ["--set", "imagebind-vision.num_heads=2"])):
        res = CliRunner().invoke(cli, ["extract", str(clips), "--out", str(store), "--extractor", name, "--weights",
                                       str(weights), "--fps", "5", "--batch-size", "3", "--device", "cpu",
                                       "--workers", "1", "--quiet", *extra])
        assert res.exit_code == 0, res.output
    clip_src, ib_src = open_source(store / "clip-vit-b32"), open_source(store / "imagebind-vision")
    x, y = clip_src.load("A1_ang_int1_ver1"), ib_src.load("A1_ang_int1_ver1")
    assert x.shape == (4, 16) and y.shape == (4, 24) and clip_src.rate == 5.0
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    assert ib_src.config["settings"]["weights"] == str(ib) and ib_src.config["runtime"]["batch_size"] == 3
