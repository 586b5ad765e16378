"""GPU check of the heads of issue 13: one cross-validation fold of each new head at BLEMORE size.

For each of ``mlp-512`` (pooled statistics, the reference), ``attn-pool``, ``bigru-attn``,
``transformer`` (frame sequences), ``mlp-512`` behind ``--fusion gated`` (two sources) and
``attn-pool`` with ``--seeds 2``, it trains one fold (4/5 of the clips, the held-out fifth as the
eval set recorded every epoch) on random inputs of BLEMORE's shape: 2,456 clips, 100 frames per
clip resampled onto ``--frames`` slots, ``--dim`` (1,024) features per frame and source, with
``TrainSpec(device=..., amp=True)`` (bfloat16 autocast on CUDA), and prints the seconds per
fold, the seconds per epoch and the peak GPU memory; then the same fold on the CPU for a few
epochs when ``--cpu-epochs`` > 0, to compare outputs (max abs difference of the recorded
probabilities after the first epoch: mixed precision and kernel differences only).

Run on the device machine from the repository root::

    PYTHONPATH=src PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check_heads.py --out $OUT

Without a GPU (here): ``--device cpu --clips 60 --dim 16 --frames 12 --epochs 2`` is the dry run
that checks the script end to end (figures meaningless). Results go to
``<out>/gpu_check_heads.json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
import traceback
from pathlib import Path

import numpy as np

from blemore.heads.base import create_head
from blemore.heads.training import EvalSet, TrainSpec


def _data(clips: int, frames: int, dim: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((clips, frames, dim), dtype=np.float32)
    X[rng.random(clips) < 0.1, : frames // 5] = np.nan  # some no-face runs
    Y = np.eye(6, dtype=np.float32)[rng.integers(0, 6, clips)]
    return X, Y


def _one(name: str, make, X, Y, spec: TrainSpec, seed: int = 0) -> dict:
    import torch

    n = len(X)
    cut = n * 4 // 5
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    head = make()
    t0 = time.perf_counter()
    hist = head.fit(X[:cut], Y[:cut], spec=spec, seed=seed, eval_sets={"held": EvalSet(X[cut:])})
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    out = hist.outputs["held"]
    return {"head": name, "device": spec.device, "epochs": spec.epochs, "train_clips": cut, "seconds": round(secs, 3),
            "seconds_per_epoch": round(secs / spec.epochs, 4), "finite": bool(np.isfinite(out).all()),
            "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None,
            "first_epoch_outputs": out[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=2456)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--cpu-epochs", type=int, default=0, help="also train 1 epoch on the CPU to compare outputs")
    ap.add_argument("--out", default=".")
    a = ap.parse_args()
    import torch

    X, Y = _data(a.clips, a.frames, a.dim)
    flat = X.reshape(len(X), -1)
    stats = np.concatenate([np.nanmean(X, 1), np.nanstd(X, 1)] + [np.nanpercentile(X, q, 1) for q in (10, 25, 50, 75, 90)], 1)
    stats = np.nan_to_num(stats).astype(np.float32)
    two = np.concatenate([stats, stats[::-1]], axis=1)
    seq = dict(frames=a.frames, hidden=128, heads=4)
    cases = [
        ("mlp-512 (pooled stats)", lambda: create_head("mlp-512"), stats),
        ("attn-pool", lambda: create_head("attn-pool", **seq), flat),
        ("bigru-attn", lambda: create_head("bigru-attn", **seq), flat),
        ("transformer", lambda: create_head("transformer", **seq), flat),
        ("mlp-512 gated top=1 (2 sources)", lambda: create_head("mlp-512").wrapped("gated", dims=[stats.shape[1]] * 2, top=1),
         two),
        ("attn-pool --seeds 2", lambda: create_head("attn-pool", **seq).wrapped("seeds", k=2), flat),
    ]
    spec = TrainSpec(lr=1e-3, epochs=a.epochs, batch_size=a.batch_size, device=a.device)
    rows = []
    for name, make, data in cases:
        try:
            r = _one(name, make, data, Y, spec)
            if a.cpu_epochs:
                c = _one(name, make, data, Y, TrainSpec(lr=1e-3, epochs=1, batch_size=a.batch_size, device="cpu"))
                r["max_abs_diff_vs_cpu_epoch1"] = float(np.abs(c["first_epoch_outputs"] - r["first_epoch_outputs"]).max())
                r["cpu_seconds_per_epoch"] = c["seconds_per_epoch"]
            r.pop("first_epoch_outputs")
        except Exception as e:  # report and go on with the next head
            r = {"head": name, "error": f"{e.__class__.__name__}: {e}", "trace": traceback.format_exc()[-800:]}
        rows.append(r)
        print(json.dumps(r), flush=True)
    info = {"torch": torch.__version__, "cuda": torch.cuda.is_available(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(), "settings": vars(a)}
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "gpu_check_heads.json").write_text(json.dumps({"info": info, "rows": rows}, indent=2, default=str))


if __name__ == "__main__":
    main()
