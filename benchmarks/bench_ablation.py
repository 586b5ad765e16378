"""The full-scale ablation on the feature-level synthetic corpus: head x per-actor
normalisation x fusion, under nested selection, in one call.

Generates (or reuses) a BLEMORE-shaped synthetic feature corpus (2,456 training clips of 43
actors and 594 test clips of 15 actors, two sources "video" and "audio", actor offsets that
dominate the variance; :mod:`blemore.synth.features`), then runs
:func:`blemore.ablation.run_ablation` -- exactly what ``blemore benchmark`` does with several
``--head`` / ``--actor-norm`` / ``--fusion`` values -- and prints the table, the winners with
their per-fold paired differences against the paper's head, and the timings (total, per
configuration, per training).

    python benchmarks/bench_ablation.py --out runs/ablation-bench \\
        [--dim 128] [--heads mlp-512,flat36,structured,multitask] [--actor-norm off,cluster] \\
        [--fusion early,late-learned] [--preset fast] [--lr 1e-3] [--epochs 20] [--quick]

``--quick`` uses a small corpus (10 + 3 actors, 36 clips each, 16 dims) and 3 epochs: a smoke
run of the same code path in about a minute.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/ablation-bench", help="Output folder (corpus in <out>/corpus).")
    ap.add_argument("--corpus", default=None, help="An existing corpus folder (from `blemore synth features`).")
    ap.add_argument("--dim", type=int, default=128, help="Feature dimension per source (pooled: 7 x dim).")
    ap.add_argument("--heads", default="mlp-512,flat36,structured,multitask")
    ap.add_argument("--actor-norm", default="off,cluster")
    ap.add_argument("--fusion", default="early,late-learned")
    ap.add_argument("--preset", default="fast", choices=["fast", "paper"])
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--selection", default="nested", choices=["nested", "paper"])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="Small corpus and 3 epochs (smoke run).")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)

    from blemore.ablation import run_ablation
    from blemore.config import ExperimentConfig
    from blemore.synth.features import generate_feature_corpus

    out = Path(args.out)
    root = Path(args.corpus) if args.corpus else out / "corpus"
    t0 = time.perf_counter()
    if not (root / "train_metadata.csv").exists():
        if args.quick:
            generate_feature_corpus(root, n_train_actors=10, n_test_actors=3, n_train_clips=None, n_test_clips=None,
                                    clips_per_actor=36, dim=16, seed=args.seed)
        else:
            generate_feature_corpus(root, dim=args.dim, seed=args.seed, progress=True)
    t_gen = time.perf_counter() - t0
    train = {"lr": args.lr, "epochs": 3 if args.quick else args.epochs}
    base = ExperimentConfig(metadata=str(root / "train_metadata.csv"), test_metadata=str(root / "test_metadata.csv"),
                            features=[str(root / "video"), str(root / "audio")], preset=args.preset, train=train,
                            selection=args.selection, seed=args.seed, threads=args.threads,
                            plots=not args.no_plots)
    t1 = time.perf_counter()
    res = run_ablation(base, args.heads, args.actor_norm.split(","), args.fusion.split(","), out=out / "ablation",
                       progress=True, log=lambda m: print(m, file=sys.stderr, flush=True))
    total = time.perf_counter() - t1
    print(res.markdown())
    n_train = 15 if args.selection == "nested" else 5
    print("## Timing\n")
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"threads {base.threads or 'all'}")
    print(f"corpus: {'reused' if t_gen < 1 else f'generated in {t_gen:.1f} s'} ({root})")
    print(f"ablation: {len(res.rows)} configurations in {total:.0f} s ({total / 60:.1f} min); "
          f"per configuration {total / len(res.rows):.0f} s; each configuration = {n_train} CV trainings + 1 final "
          f"model (~{total / len(res.rows) / (n_train + 1):.1f} s per training incl. selection, test and reports)")
    for r in res.rows:
        print(f"  {r.key}: {r.seconds:.0f} s")
    (out / "ablation").mkdir(parents=True, exist_ok=True)
    (out / "ablation" / "bench_timing.json").write_text(json.dumps(
        {"total_seconds": total, "configurations": len(res.rows), "corpus": str(root), "dim": args.dim,
         "train": train, "preset": args.preset, "per_configuration": {r.key: r.seconds for r in res.rows}}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
