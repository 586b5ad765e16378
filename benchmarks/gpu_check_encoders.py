"""GPU check of the pretrained encoders: one real forward pass per architecture, paper sizes.

Builds each of the paper's encoders with random weights (no download: same shapes and
kernels as the trained ones) directly on the GPU and runs it through the extractor's own
array API with float16 autocast, as ``blemore extract --device cuda`` would:

* hubert-large, wavlm-large (24 x 1024): 80 s of audio = four 20 s chunks with context;
* clip-vit-b32 and imagebind-vision (OpenCLIP ViT-H/14, 632M): 64 frames of 480 x 640;
* videomae-v2-base (ViT-B/16) and video-swin (torchvision Swin3D-B, when torchvision
  imports): 128 frames of 480 x 640 = 8 segments of 16 frames;
* wav2vec2 (wav2vec2-large-lv60, 24 x 1024, every hidden state as ``--layers all``) and
  wav2vec2-emotion (the 12 x 1024 robust model with its A/D/V head): 80 s of audio;
* timesformer (TimeSformer-B, 8 x 224 x 224): 128 frames = 9 segments (frame_step 2);
* hicmae (the released 512-wide model, 10 + 10 + 2 layers, 16 x 160 x 160 + 256 x 128 log-Mel):
  128 sampled frames (512 source frames) = 8 segments;
* emotion2vec (at ``paper`` size: emotion2vec+ large's 1024-d width, 4 + 8 layers): 80 s of audio.
(hsemotion runs on onnxruntime with published ONNX files; it has no random-weight build here.)

For each it records the output shape, that every value is finite, the throughput (best of
two timed runs after a warm-up), the peak GPU memory, and how far the float16 output is from
a float32 run on the same input (mean cosine similarity of the rows). Results go to
``$OUT/gpu_check_encoders.json`` (or ``--out``) and are printed.

Run on the device machine from the repository root (its python3 has torch, transformers,
torchvision; nothing else is needed)::

    PYTHONPATH=src PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check_encoders.py

Takes a minute or two on an H100.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_encoders import ARCHS, build, measure  # noqa: E402

WORK = {
    "hubert-large": dict(audio_seconds=80.0, batch_size=4),
    "wavlm-large": dict(audio_seconds=80.0, batch_size=4),
    "clip-vit-b32": dict(n_frames=64, batch_size=64),
    "imagebind-vision": dict(n_frames=64, batch_size=64),
    "videomae-v2-base": dict(n_video_frames=128, batch_size=8),
    "video-swin": dict(n_video_frames=128, batch_size=8),
    "wav2vec2": dict(audio_seconds=80.0, batch_size=4),
    "wav2vec2-emotion": dict(audio_seconds=80.0, batch_size=4),
    "timesformer": dict(n_video_frames=128, batch_size=8),
    "hicmae": dict(n_video_frames=512, batch_size=8),
    "emotion2vec": dict(audio_seconds=80.0, batch_size=4),
}


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    num = (a * b).sum(1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12
    return float((num / den).mean())


def check(arch: str, device: str, size: str = "paper") -> dict:
    import torch

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    w = dict(WORK[arch])
    bs = w.pop("batch_size")
    t0 = time.perf_counter()
    case = build(arch, size, device=device, precision="fp16" if cuda else "fp32", batch_size=bs, **w)
    build_s = time.perf_counter() - t0
    row = measure(case, repeats=2, device=device)
    row["build_s"] = round(build_s, 2)
    if cuda:
        row["peak_gpu_GiB"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)
    out16 = case.run()
    out16 = np.asarray(out16[0] if isinstance(out16, tuple) else out16)
    case.extractor.config.precision = "fp32"
    t = time.perf_counter()
    out32 = case.run()
    if cuda:
        torch.cuda.synchronize()
    row["fp32_s"] = round(time.perf_counter() - t, 4)
    out32 = np.asarray(out32[0] if isinstance(out32, tuple) else out32)
    row["fp16_vs_fp32_cosine"] = round(_cosine(out16, out32), 6)
    row["fp16_vs_fp32_max_abs"] = float(np.abs(out16 - out32).max())
    del case
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="one forward pass per encoder architecture on the GPU")
    ap.add_argument("--archs", default=",".join(ARCHS))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", default="paper", help="paper (default); tiny for a dry run of this script on a CPU")
    ap.add_argument("--out", default=os.environ.get("OUT", "gpu_check_out"))
    args = ap.parse_args(argv)

    import torch
    import transformers

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("CUDA is not available: nothing to check (use --device cpu --size tiny for a dry run)", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = True
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "none (CPU dry run)"
    env = {"gpu": gpu, "size": args.size, "torch": torch.__version__,
           "transformers": transformers.__version__, "python": platform.python_version()}
    try:
        import torchvision

        env["torchvision"] = torchvision.__version__
    except Exception as exc:
        env["torchvision"] = f"unavailable ({exc.__class__.__name__})"
    print(json.dumps(env))
    rows = []
    for arch in [a for a in args.archs.split(",") if a]:
        try:
            row = check(arch, args.device, args.size)
        except Exception as exc:
            row = {"arch": arch, "error": f"{exc.__class__.__name__}: {exc}", "trace": traceback.format_exc()[-2000:]}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "trace"}), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check_encoders.json").write_text(json.dumps({"env": env, "rows": rows}, indent=2) + "\n")
    ok = all("error" not in r and r.get("finite") for r in rows if r["arch"] != "video-swin")
    print("all encoders ran" if ok else "some encoders failed (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
