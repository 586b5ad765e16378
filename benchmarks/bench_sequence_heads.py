"""Time per cross-validation fold of each sequence head on the CPU at BLEMORE size.

BLEMORE size: 2,456 training clips, about 100 frames each, 1,024 features per frame (one
source). A fold trains on 4/5 of the clips (1,965) and records the held-out fifth (491) after
every epoch. The frames are resampled onto ``--frames`` slots (64 by default: what
``Pooling(kind="frames")`` feeds the head; the resampling and the per-frame standardisation
are timed once, as ``prepare``). For each head (``attn-pool``, ``bigru-attn``,
``transformer``; ``mlp-512`` on the 7 x 1,024 pooled statistics for reference) it trains
``--epochs`` measured epochs (default 1) with the held-out fifth evaluated after each, and
extrapolates honestly: ``fold seconds = prepare + epochs_per_fold x measured seconds per epoch
(train + eval)`` for ``--fold-epochs`` (default 20, the ``fast`` preset's order of magnitude for
sequence heads). The measured and extrapolated figures are printed separately.

    PYTHONPATH=src python3 benchmarks/bench_sequence_heads.py [--threads 2] [--epochs 1]

(One measured epoch of bigru-attn at this size takes minutes on two CPU cores.)
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from blemore.features import TransformChain
from blemore.heads.base import create_head
from blemore.heads.training import EvalSet, TrainSpec
from blemore.pooling import Pooling, pool_stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=2456)
    ap.add_argument("--raw-frames", type=int, default=100)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--epochs", type=int, default=1, help="measured epochs per head")
    ap.add_argument("--fold-epochs", type=int, default=20, help="epochs of a fold, for the extrapolation")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--heads", default="mlp-512,attn-pool,bigru-attn,transformer")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    n_tr = a.clips * 4 // 5
    Y = np.eye(6, dtype=np.float32)[rng.integers(0, 6, a.clips)]
    t0 = time.perf_counter()
    pool = Pooling(kind="frames", window=a.frames)
    rows = np.empty((a.clips, a.frames * a.dim), dtype=np.float32)
    stats = np.empty((a.clips, 7 * a.dim), dtype=np.float32)
    for i in range(a.clips):  # one clip at a time, as the feature loader does
        x = rng.standard_normal((a.raw_frames, a.dim), dtype=np.float32)
        rows[i] = pool.apply(x)[0]
        stats[i] = pool_stats(x)
    t_pool = time.perf_counter() - t0
    t0 = time.perf_counter()
    chain = TransformChain(["standardize"], frames=a.frames)
    ids = [str(i) for i in range(a.clips)]
    Xtr = chain.fit_transform(rows[:n_tr], clip_ids=ids[:n_tr])
    Xev = chain.transform(rows[n_tr:], clip_ids=ids[n_tr:])
    t_std = time.perf_counter() - t0
    print(json.dumps({"prepare": {"clips": a.clips, "raw_frames": a.raw_frames, "frames": a.frames, "dim": a.dim,
                                  "resample_and_stats_s": round(t_pool, 1), "per_frame_standardise_s": round(t_std, 1),
                                  "threads": a.threads}}), flush=True)
    create_head("mlp", hidden=4).fit(stats[:8, :4], Y[:8], spec=TrainSpec(epochs=1, device="cpu"))  # warm-up
    for name in a.heads.split(","):
        seq = name != "mlp-512"
        head = create_head(name, frames=a.frames, hidden=128, heads=4) if seq else create_head(name)
        Xt, Xe = (Xtr, Xev) if seq else (stats[:n_tr], stats[n_tr:])
        spec = TrainSpec(lr=1e-3, epochs=a.epochs, batch_size=a.batch_size, device="cpu")
        t0 = time.perf_counter()
        head.fit(Xt, Y[:n_tr], spec=spec, eval_sets={"held": EvalSet(Xe)})
        per_epoch = (time.perf_counter() - t0) / a.epochs
        print(json.dumps({"head": name, "measured_epochs": a.epochs, "seconds_per_epoch_train_and_eval": round(per_epoch, 2),
                          "extrapolated_fold_seconds": round(per_epoch * a.fold_epochs, 1),
                          "fold_epochs_assumed": a.fold_epochs, "train_clips": n_tr, "eval_clips": a.clips - n_tr}),
              flush=True)


if __name__ == "__main__":
    main()
