"""Measured properties of the synthetic media corpus (blemore.synth.media).

Prints: generation time (render and encode per clip, and the corpus wall time), the share of
frames in which the face-mesh extractor finds the face, how the face-mesh measures move per
emotion at the apex (relative to each actor's neutral clip), and what the face-expression
network (fer's FER2013 mini-Xception) outputs per emotion.

    python benchmarks/bench_synth_media.py                      # generate + extract a small corpus
    python benchmarks/bench_synth_media.py --corpus DIR --features DIR   # measure existing ones
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

MEASURES = ["mouth_open", "mouth_width", "lip_corner_raise_r", "lip_corner_raise_l", "upper_lip_to_nose",
            "brow_raise_r", "brow_raise_l", "brow_inner_raise_r", "brow_inner_distance", "eye_open_r", "eye_open_l"]


def time_render(n: int = 20) -> None:
    """Render and encode cost per clip in one single-threaded process (as in a worker)."""
    from threadpoolctl import threadpool_limits

    from blemore.synth import media as M

    with threadpool_limits(1):
        _time_render(M, n)


def _time_render(M, n: int) -> None:  # noqa: N803 - the module

    cfg = M.SynthConfig(actors=5, test_actors=0)
    actors, clips = M.plan_corpus(cfg)
    by_id = {a.actor_id: a for a in actors}
    M.render_clip(clips[0], by_id[clips[0].actor], cfg)  # build the rig
    t0 = time.perf_counter()
    out = [M.render_clip(c, by_id[c.actor], cfg) for c in clips[:n]]
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        for i, (fr, au) in enumerate(out):
            M._write_clip(Path(d) / f"c{i}.mov", fr, au, cfg.fps, cfg.sample_rate)
    t2 = time.perf_counter()
    print(f"one process, {cfg.size[0]}x{cfg.size[1]}, {cfg.frames} frames + {cfg.duration:g} s audio per clip: "
          f"render {1000 * (t1 - t0) / n:.0f} ms, encode {1000 * (t2 - t1) / n:.0f} ms per clip")


def measure(corpus: Path, features: Path) -> None:
    from blemore.dataset import load_metadata
    from blemore.store import open_store

    table = pd.concat([load_metadata(p) for p in (corpus / "train_metadata.csv", corpus / "test_metadata.csv")
                       if p.exists()])
    st = open_store(features)
    fm, fe = st["face-mesh"], st.get("face-expression")
    cols = fm.columns
    fi = cols.index("face_found")
    found, rows = [], []
    for cid, actor, lab in zip(table["clip_id"], table["actor"], table["label"]):
        x = fm.load(cid)
        found.append(x[:, fi])
        t = len(x)
        apex = slice(int(t * 0.4), max(int(t * 0.65), int(t * 0.4) + 1))
        row = {"clip": cid, "actor": actor, "label": lab.name(), "single": not lab.is_blend}
        with np.errstate(all="ignore"):
            row.update({m: float(np.nanmean(x[apex, cols.index(m)])) for m in MEASURES if m in cols})
            if fe is not None:
                y = fe.load(cid)
                row.update({f"fer_{n}": float(np.nanmean(y[apex, j])) for j, n in enumerate(fe.columns)
                            if n != "face_found"})
        rows.append(row)
    f = np.concatenate(found)
    print(f"\nface found by face-mesh in {f.mean():.2%} of {len(f)} frames ({len(table)} clips)")
    df = pd.DataFrame(rows)
    num = [c for c in df.columns if c not in ("clip", "actor", "label", "single")]
    base = df[df["label"] == "neu"].set_index("actor")[num]
    d = df.copy()
    d[num] = df[num].to_numpy() - base.loc[df["actor"]].to_numpy()
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 40)
    geo = [c for c in num if not c.startswith("fer_")]
    print("\nface-mesh measures at the apex minus the same actor's neutral clip (IOD units), singles:")
    print(d[d["single"]].groupby("label")[geo].mean().round(3).to_string())
    fer = [c for c in num if c.startswith("fer_")]
    if fer:
        print("\nface-expression (FER2013 network) mean probabilities at the apex, singles:")
        print(df[df["single"]].groupby("label")[fer].mean().round(2).to_string())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, help="an existing corpus folder (blemore synth media OUT)")
    ap.add_argument("--features", type=Path, help="its feature store (blemore extract)")
    ap.add_argument("--actors", type=int, default=5)
    ap.add_argument("--test-actors", type=int, default=1)
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    time_render()
    if args.corpus and args.features:
        measure(args.corpus, args.features)
        return
    from blemore.extract import extract
    from blemore.synth.media import SynthConfig, generate_media_corpus

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        c = generate_media_corpus(Path(d) / "corpus", SynthConfig(actors=args.actors, test_actors=args.test_actors),
                                  workers=args.workers, progress=False)
        t1 = time.perf_counter()
        print(f"generated {len(c.table)} clips in {t1 - t0:.1f} s ({args.workers or 'all'} workers)")
        extract([c.train_dir, c.test_dir], Path(d) / "features", workers=args.workers, progress=False,
                settings={"face-mesh": {"landmarks": False}})
        print(f"extracted the default features in {time.perf_counter() - t1:.1f} s")
        measure(c.root, Path(d) / "features")


if __name__ == "__main__":
    main()
