"""Shared trainings in the ablation: the same ``--thresholds`` x ``--adapt`` ablation with every
configuration trained on its own, then with configurations that differ only in those sharing
their trainings (:func:`blemore.experiment.run_shared`, the default); prints both wall times,
the trainings each needed and whether every configuration's results are identical.

Generates (or reuses) a small temporal synthetic corpus (the equivalent of ``blemore synth
features Tsmall --temporal --clips 432 --test-clips 144 --actors 12 --test-actors 4 --dim 32
--folds 3``), then runs :func:`blemore.ablation.run_ablation` -- what ``blemore benchmark
--head mlp-512,attn-pool --thresholds global,per-actor --adapt none,meanvar`` does -- twice:

    python benchmarks/bench_shared_trainings.py --out runs/shared-bench \\
        [--corpus DIR] [--heads mlp-512,attn-pool] [--epochs 20] [--threads 1]

"Identical" means each configuration's ``results.json`` (but the measured times), validation
and test prediction CSVs and submission are byte-identical between the two ablations.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path


def _results(run_dir: Path) -> dict:
    r = json.loads((run_dir / "results.json").read_text())
    r.pop("timing", None)
    for f in r["validation"]["folds"]:
        f.pop("train_seconds", None)
    r.get("final", {}).pop("train_seconds", None)
    return r


def _same_run(a: Path, b: Path) -> bool:
    files = ("predictions/validation.csv", "predictions/test.csv", "submission.json")
    return _results(a) == _results(b) and all(
        (a / f).read_bytes() == (b / f).read_bytes() for f in files if (a / f).exists() or (b / f).exists())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/shared-bench", help="Output folder (corpus in <out>/corpus).")
    ap.add_argument("--corpus", default=None, help="An existing temporal corpus (from `blemore synth features --temporal`).")
    ap.add_argument("--heads", default="mlp-512,attn-pool")
    ap.add_argument("--thresholds", default="global,per-actor")
    ap.add_argument("--adapt", default="none,meanvar")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    from blemore.ablation import parse_list, run_ablation
    from blemore.config import ExperimentConfig
    from blemore.experiment import Experiment

    out = Path(args.out)
    corpus = Path(args.corpus) if args.corpus else out / "corpus"
    if not (corpus / "train_metadata.csv").exists():
        from blemore.synth.temporal import generate_temporal_corpus

        generate_temporal_corpus(corpus, n_train_actors=12, n_test_actors=4, n_train_clips=432, n_test_clips=144,
                                 dim=32, frames=(60, 140), folds=3, seed=0, progress=True)
    base = ExperimentConfig(metadata=str(corpus / "train_metadata.csv"), test_metadata=str(corpus / "test_metadata.csv"),
                            features=[str(corpus / "video"), str(corpus / "audio")], preset="fast",
                            train={"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size},
                            threads=args.threads, plots=False)
    variants = [(f"thresholds={t} adapt={a}", {"thresholds": t, "adapt": a})
                for t in parse_list(args.thresholds) for a in parse_list(args.adapt)]
    trainings = []
    orig = Experiment.train_job

    def counted(exp, *a, **kw):
        trainings.append(1)
        return orig(exp, *a, **kw)

    Experiment.train_job = counted  # type: ignore[method-assign]
    figures = {}
    for label, share in (("each alone", False), ("shared", True)):
        trainings.clear()
        t0 = time.perf_counter()
        res = run_ablation(base, args.heads, out=out / label.replace(" ", "-"), progress=False, variants=variants,
                           share=share)
        figures[label] = (time.perf_counter() - t0, len(trainings), res)
    Experiment.train_job = orig  # type: ignore[method-assign]

    alone, shared = figures["each alone"][2], figures["shared"][2]
    same = [_same_run(Path(a.run_dir), Path(b.run_dir)) for a, b in zip(alone.rows, shared.rows)]
    print(f"{platform.processor() or platform.machine()}, {args.threads} torch thread(s); corpus {corpus}; "
          f"heads {args.heads}; {len(variants)} variants; preset fast, {args.epochs} epochs")
    print(f"{len(shared.rows)} configurations, {shared.settings['training_groups']} training groups")
    for label, (secs, n, _) in figures.items():
        print(f"  {label:>10}: {secs:7.1f} s wall, {n} trainings")
    print(f"  speed-up {figures['each alone'][0] / figures['shared'][0]:.2f}x; "
          f"identical results: {sum(same)}/{len(same)} configurations")
    return 0 if all(same) else 1


if __name__ == "__main__":
    sys.exit(main())
