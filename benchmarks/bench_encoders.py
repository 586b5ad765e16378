"""Throughput of the pretrained-encoder extractors with random weights (no download needed).

Each architecture is built at three sizes from ``transformers`` (or torchvision) configs and
driven through the extractor's own array API (``embed`` / ``embed_frames`` /
``embed_video``), so the figures include the input pipeline (normalisation, resizing on the
device, segmenting), not media decoding:

* ``tiny``: hidden size 32, 2 layers (what the tests use);
* ``base``: 768-wide, 12-layer versions (HuBERT/WavLM Base shape, CLIP ViT-B/32, a ViT-B
  with ImageBind's 14-pixel patches, VideoMAE V2 ViT-B/16), the paper's own size for CLIP
  and VideoMAE; Video Swin-T;
* ``paper``: the paper's large models where they differ (HuBERT/WavLM Large 24 x 1024,
  ImageBind's ViT-H/14 632M) and Video Swin-B (needs torchvision).

Issue-15 encoders at their published sizes: ``wav2vec2`` (``paper``: wav2vec2-large-lv60, 24 x
1024, every hidden state kept as with ``--layers all``; ``base``: 12 x 768), ``wav2vec2-emotion``
(``paper``: the 12 x 1024 robust model with its A/D/V head, ``output=avd``), ``timesformer``
(``base`` = ``paper``: TimeSformer-B, 8 x 224 x 224), ``hicmae`` (``base`` = ``paper``: the released
512-wide model, 10 + 10 + 2 layers, 16 x 160 x 160 video + 256 x 128 log-Mel), ``emotion2vec``
(``base``: emotion2vec base, 768-d, 4 + 8 layers; ``paper``: emotion2vec+ large's width, 1024-d).

Workloads: 10 s of 16 kHz audio (real-time factor = audio seconds per second of work);
16 frames of 480 x 640 for the image encoders (frames/s); 32 frames of 480 x 640 cut into
16-frame segments with stride 16 for the video encoders (segments/s and frames/s).

Run: ``.venv/bin/python benchmarks/bench_encoders.py [--sizes tiny,base] [--threads 1]
[--device cpu] [--repeats 2] [--json out.json]``. Random weights give the same speed as
trained ones (same shapes, same kernels). The paper sizes take minutes on a CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

ARCHS = ("hubert-large", "wavlm-large", "clip-vit-b32", "imagebind-vision", "videomae-v2-base", "video-swin",
         "wav2vec2", "wav2vec2-emotion", "timesformer", "hicmae", "emotion2vec")
#: hsemotion is not here: its published models are ONNX EfficientNets, which cannot be built offline
#: without timm; its per-frame cost is onnxruntime's on a 224 x 224 crop.
SIZES = ("tiny", "base", "paper")
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)


@dataclass
class Case:
    arch: str
    size: str
    extractor: Any
    params_m: float
    run: Callable[[], Any]
    units: float  # items per run
    unit: str  # "audio s", "frames", "segments"
    frames: float = 0.0  # video frames per run (for frames/s of the segment encoders)


def _params(model) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


def _audio_config(kind: str, size: str):
    import transformers

    cfg_cls = transformers.HubertConfig if kind == "hubert" else transformers.WavLMConfig
    dims = {"tiny": TINY, "base": BASE, "paper": LARGE}[size]
    extra: dict = dict(conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2) \
        if size == "tiny" else {}
    if size == "paper":  # the Large recipe: layer-norm feature encoder, stable layer norm
        extra |= dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=kind == "hubert")
    return cfg_cls(**dims, **extra)


def _image_config(arch: str, size: str):
    import transformers

    if size == "tiny":
        return transformers.CLIPVisionConfig(**TINY, image_size=224, patch_size=32, projection_dim=16)
    if arch == "imagebind-vision":  # OpenCLIP ViT-H/14 as kept frozen in ImageBind; base: ViT-B at /14 (256 tokens)
        dims = dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16, intermediate_size=5120) \
            if size == "paper" else BASE
        return transformers.CLIPVisionConfig(**dims, image_size=224, patch_size=14, projection_dim=1024,
                                             hidden_act="gelu", layer_norm_eps=1e-6)
    return transformers.CLIPVisionConfig(**BASE, image_size=224, patch_size=32, projection_dim=512)


def _videomae_config(size: str):
    import transformers

    dims = TINY if size == "tiny" else BASE
    return transformers.VideoMAEConfig(**dims, image_size=224, patch_size=16, num_frames=16, tubelet_size=2,
                                       layer_norm_eps=1e-6)


def _wav2vec2_config(size: str, layers: int = 24):
    import transformers

    if size == "tiny":
        return transformers.Wav2Vec2Config(**TINY, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
                                           num_conv_pos_embedding_groups=2)
    dims = BASE if size == "base" else dict(LARGE, num_hidden_layers=layers)
    return transformers.Wav2Vec2Config(**dims, feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)


def _hicmae_config(size: str) -> dict:
    dim, depth, fdepth, side, frames = (64, 2, 1, 32, 4) if size == "tiny" else (512, 10, 2, 160, 16)
    return {"dim": dim, "dim_audio": dim, "num_heads": max(1, dim // 64), "fusion_num_heads": max(1, dim // 64),
            "tubelet_size": 2, "patch_size": 16, "patch_size_audio": 16, "depth": depth, "depth_audio": depth,
            "fusion_depth": fdepth, "mlp_hidden": 4 * dim, "mlp_hidden_audio": 4 * dim, "image_size": side,
            "num_frames": frames, "audio_length": 256, "num_mel_bins": 128}


def _emotion2vec_config(size: str) -> dict:
    dim, heads, conv, k, groups, pos, pre, depth = {
        "tiny": (32, 4, 16, 5, 4, 2, 1, 2), "base": (768, 12, 512, 19, 16, 5, 4, 8),
        "paper": (1024, 16, 512, 19, 16, 5, 4, 8)}[size]
    return {"dim": dim, "feature_dim": conv, "conv_channels": [conv] * 7, "pos_depth": pos, "pos_kernel": k,
            "pos_groups": groups, "prenet_depth": pre, "depth": depth, "num_heads": heads, "mlp_hidden": 4 * dim,
            "extra_tokens": 10, "prenet_norm": True, "alibi_scale_shape": [1, 1, heads, 1, 1]}


def _frames(n: int, h: int = 480, w: int = 640, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return np.stack([np.roll(base, 3 * i, axis=1) for i in range(n)])


def build(arch: str, size: str, device: str = "cpu", precision: str = "auto", batch_size: int | None = None,
          audio_seconds: float = 10.0, n_frames: int = 16, n_video_frames: int = 32) -> Case:
    """A random-weight extractor of ``arch`` at ``size`` on ``device`` and its workload."""
    import torch
    import transformers

    from blemore.extractors.hf_audio import HubertLarge, WavLMLarge
    from blemore.extractors.hf_image import ClipViTB32, ImageBindVision
    from blemore.extractors.hf_video import VideoMAEv2Base, VideoSwin, _torchvision_ok

    torch.manual_seed(0)
    settings: dict = dict(device=device, precision=precision)
    if batch_size:
        settings["batch_size"] = batch_size
    dev = torch.device("cuda" if device.startswith("cuda") else "cpu")
    with torch.device(dev):  # initialise the weights where they will run (much faster on a GPU)
        if arch in ("hubert-large", "wavlm-large"):
            kind = arch.split("-")[0]
            model_cls = transformers.HubertModel if kind == "hubert" else transformers.WavLMModel
            model = model_cls(_audio_config(kind, size))
            cls = HubertLarge if kind == "hubert" else WavLMLarge
            e = cls.from_model(model, {"do_normalize": True}, **settings)
            wave = (0.1 * np.random.default_rng(0).standard_normal(int(audio_seconds * 16000))).astype(np.float32)
            return Case(arch, size, e, _params(model), lambda: e.embed(wave), audio_seconds, "audio s")
        if arch in ("clip-vit-b32", "imagebind-vision"):
            model = transformers.CLIPVisionModelWithProjection(_image_config(arch, size))
            cls = ClipViTB32 if arch == "clip-vit-b32" else ImageBindVision
            e = cls.from_model(model, **settings)
            frames = _frames(n_frames)
            return Case(arch, size, e, _params(model), lambda: e.embed_frames(frames), n_frames, "frames")
        if arch == "videomae-v2-base":
            model = transformers.VideoMAEModel(_videomae_config(size))
            e = VideoMAEv2Base.from_model(model, **settings)
            frames = _frames(n_video_frames)
            times = np.arange(n_video_frames) / 30.0
            n_seg = len(range(0, n_video_frames - 16 + 1, 16))
            return Case(arch, size, e, _params(model), lambda: e.embed_video(zip(frames, times)), n_seg,
                        "segments", n_video_frames)
        if arch == "video-swin":
            if not _torchvision_ok():
                raise RuntimeError("torchvision (Swin3D) cannot be imported here")
            from torchvision.models import get_model

            name = {"tiny": "swin3d_t", "base": "swin3d_t", "paper": "swin3d_b"}[size]
            model = get_model(name, weights=None)
            e = VideoSwin.from_model(model, arch=name, **settings)
            frames = _frames(n_video_frames)
            times = np.arange(n_video_frames) / 30.0
            n_seg = len(range(0, n_video_frames - 16 + 1, 16))
            return Case(arch, size, e, _params(model), lambda: e.embed_video(zip(frames, times)), n_seg,
                        "segments", n_video_frames)
        if arch in ("wav2vec2", "wav2vec2-emotion"):
            from blemore.extractors.wav2vec2 import Wav2Vec2Emotion, Wav2Vec2Family, build_avd_head

            emo = arch == "wav2vec2-emotion"
            model = transformers.Wav2Vec2Model(_wav2vec2_config(size, layers=12 if emo else 24))
            wave = (0.1 * np.random.default_rng(0).standard_normal(int(audio_seconds * 16000))).astype(np.float32)
            if emo:
                head = build_avd_head(model.config.hidden_size)
                e = Wav2Vec2Emotion.from_model(model, {"do_normalize": True}, head=head, output="avd", **settings)
            else:  # every hidden state, as `--layers all` stores them
                e = Wav2Vec2Family.from_model(model, {"do_normalize": True}, layers="all", **settings)
            return Case(arch, size, e, _params(model), lambda: e.embed(wave), audio_seconds, "audio s")
        if arch == "timesformer":
            from blemore.extractors.hf_video import segment_starts
            from blemore.extractors.timesformer import Timesformer

            dims = TINY if size == "tiny" else BASE
            model = transformers.TimesformerModel(transformers.TimesformerConfig(
                **dims, image_size=224 if size != "tiny" else 32, patch_size=16, num_frames=8))
            e = Timesformer.from_model(model, **settings)
            frames = _frames(n_video_frames)
            times = np.arange(n_video_frames) / 30.0
            n_seg = len(segment_starts(n_video_frames, e.span, e.config.segment_stride))
            return Case(arch, size, e, _params(model), lambda: e.embed_video(zip(frames, times)), n_seg,
                        "segments", n_video_frames)
        if arch == "emotion2vec":
            from blemore.extractors.emotion2vec import Emotion2vec, build_emotion2vec

            model = build_emotion2vec(_emotion2vec_config(size))
            e = Emotion2vec.from_model(model, {"do_normalize": True}, **settings)
            wave = (0.1 * np.random.default_rng(0).standard_normal(int(audio_seconds * 16000))).astype(np.float32)
            return Case(arch, size, e, _params(model), lambda: e.embed(wave), audio_seconds, "audio s")
        if arch == "hicmae":
            from blemore.extractors.hicmae import HiCMAE, build_hicmae

            cfg = _hicmae_config(size)
            model = build_hicmae(cfg)
            e = HiCMAE.from_model(model, face_crop=False, image_size=cfg["image_size"],
                                  num_frames=cfg["num_frames"], **settings)
            n_src = max(n_video_frames, 4 * cfg["num_frames"])  # every 4th frame is sampled
            sampled = list(_frames(n_src // 4, 224, 224))
            times = [4 * i / 30.0 for i in range(len(sampled))]
            wave = (0.1 * np.random.default_rng(0).standard_normal(int(n_src / 30.0 * 16000))).astype(np.float32)
            n_seg = len(e.segments(len(sampled)))
            return Case(arch, size, e, _params(model), lambda: e.embed_clip(sampled, times, wave, 1 / 30.0), n_seg,
                        "segments", n_src)
    raise ValueError(f"unknown architecture {arch!r}; expected one of {ARCHS}")


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(case: Case, repeats: int = 2, device: str = "cpu") -> dict:
    """Warm up once, then the best of ``repeats`` timed runs."""
    t = time.perf_counter()
    out = case.run()
    _sync(device)
    first = time.perf_counter() - t
    best = first
    for _ in range(repeats):
        t = time.perf_counter()
        out = case.run()
        _sync(device)
        best = min(best, time.perf_counter() - t)
    arr = out[0] if isinstance(out, tuple) else out
    row = {"arch": case.arch, "size": case.size, "params_M": round(case.params_m, 1), "unit": case.unit,
           "units_per_run": case.units, "first_s": round(first, 4), "best_s": round(best, 4),
           "per_s": round(case.units / best, 2), "out_shape": list(np.asarray(arr).shape),
           "finite": bool(np.isfinite(arr).all())}
    if case.frames:
        row["frames_per_s"] = round(case.frames / best, 2)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", default=",".join(ARCHS))
    ap.add_argument("--sizes", default="tiny,base")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: figures per core)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(max(1, args.threads))
    rows = []
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} CPU thread(s), "
          f"{os.cpu_count()} cores seen (load average {load:.1f}); random weights; "
          f"best of {args.repeats} after one warm-up")
    print(f"{'arch':<18} {'size':<6} {'params':>8}  {'workload':<16} {'best s':>8}  throughput")
    for arch in [a for a in args.archs.split(",") if a]:
        for size in [s for s in args.sizes.split(",") if s]:
            try:
                case = build(arch, size, device=args.device)
            except Exception as exc:  # e.g. video-swin without torchvision
                print(f"{arch:<18} {size:<6} {'-':>8}  unavailable: {exc}")
                rows.append({"arch": arch, "size": size, "error": str(exc)})
                continue
            r = measure(case, args.repeats, args.device)
            rows.append(r)
            work = f"{r['units_per_run']:g} {r['unit']}"
            speed = f"{r['per_s']:.2f} {r['unit']}/s"
            if r["unit"] == "audio s":
                speed = f"{r['per_s']:.2f}x real time"
            if "frames_per_s" in r:
                speed += f" ({r['frames_per_s']:.1f} frames/s)"
            print(f"{arch:<18} {size:<6} {r['params_M']:>7.1f}M  {work:<16} {r['best_s']:>8.3f}  {speed}")
            del case
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
