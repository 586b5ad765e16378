"""The end-to-end demo: the whole pipeline on a generated corpus, in a few minutes on a laptop.

:func:`run_demo` (``blemore demo --out DIR``, ``make demo``) does, under ``DIR``::

    corpus/             1. a synthetic media corpus (blemore.synth.media): clips + metadata
    features/           2. the default features (face-mesh measures, face-expression, eGeMAPS)
    runs/<name>/        3. the benchmark: face, voice, and face+voice fusion, each with
                           5-fold actor-disjoint validation, test score, trivial baselines,
                           results.md and plots (confusion, per configuration, PCA, selection)
    report.md           4. the runs side by side (the headline table)
    model/              5. a trained model bundle (face+voice)
    predictions.csv     6. predict on a few held-out clips (media in, labels out), with
    timelines/             their per-window probability plots
    demo.json              what was run, where it is, and how long each stage took

The corpus has a known answer, so the demo also says whether the pipeline recovered it:
held-out actors' presence and salience accuracy against the trivial baselines.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from blemore import __version__
from blemore._io import atomic_write_bytes as _atomic_write
from blemore.config import ExperimentConfig
from blemore.experiment import run_experiment, train_model
from blemore.extract import extract
from blemore.report import compare_runs, format_compare, plot_timeline
from blemore.synth.media import SynthConfig, generate_media_corpus, parse_difficulty

__all__ = ["DemoSettings", "DemoResult", "demo_settings", "run_demo"]


@dataclass(frozen=True)
class DemoSettings:
    """What the demo generates and runs (see :func:`demo_settings` for the defaults)."""

    actors: int = 10
    test_actors: int = 3
    difficulty: str | float = "medium"
    size: tuple[int, int] = (160, 160)
    duration: float = 2.0
    fps: float = 12.0
    head: str = "mlp-512"
    preset: str = "fast"
    runs: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("face", ("face-mesh", "face-expression")),
        ("voice", ("egemaps",)),
        ("face+voice", ("face-mesh", "face-expression", "egemaps")),
    )
    model_run: str = "face+voice"
    predict_clips: int = 6
    face_landmarks: bool = False  # face-mesh measures only (19 columns) instead of 1,434 landmark coordinates


def demo_settings(quick: bool = False) -> DemoSettings:
    """The default demo, or ``quick``: fewer, shorter clips and no separate face/voice runs."""
    if not quick:
        return DemoSettings()
    return DemoSettings(actors=6, test_actors=2, duration=1.5, fps=10.0,
                        runs=(("face+voice", ("face-mesh", "face-expression", "egemaps")),), predict_clips=4)


@dataclass
class DemoResult:
    """Where everything is and how it went."""

    out: Path
    corpus: Path
    features: Path
    runs: dict[str, Path]
    report: Path
    model: Path
    predictions: Path
    timelines: list[Path]
    seconds: dict[str, float] = field(default_factory=dict)
    results: dict[str, dict] = field(default_factory=dict)
    table: str = ""


def _select_clips(table, n: int, seed: int) -> list[str]:
    """A few held-out clips: singles and blends of different actors, deterministic."""
    import numpy as np

    test = table[table["split"] == "test"]
    if not len(test):
        test = table
    rng = np.random.default_rng(seed)
    singles = test[~test["is_blend"]]
    blends = test[test["is_blend"]]
    n_single = min(len(singles), max(1, n // 3))
    pick = list(singles["clip_id"].to_numpy()[rng.permutation(len(singles))[:n_single]])
    pick += list(blends["clip_id"].to_numpy()[rng.permutation(len(blends))[: n - n_single]])
    return pick


def _fmt_s(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min"


def run_demo(
    out: str | os.PathLike = "demo_run",
    *,
    quick: bool = False,
    settings: DemoSettings | None = None,
    workers: int | None = None,
    seed: int = 0,
    progress: bool = True,
    echo: Callable[[str], Any] = print,
) -> DemoResult:
    """Run the demo under ``out`` (see the module docstring) and return where everything is.

    Re-running in the same folder reuses the corpus and the extracted features (both resume
    where they stopped) and redoes the benchmark, the model and the predictions.
    """
    s = settings or demo_settings(quick)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    seconds: dict[str, float] = {}

    def stage(name: str, text: str) -> float:
        echo(f"\n== {text}")
        return time.perf_counter()

    # 1. corpus ----------------------------------------------------------------------------
    t = stage("generate", f"1/6 generating a synthetic corpus: {s.actors} training + {s.test_actors} test actors, "
                          f"36 clips each, {s.duration:g} s at {s.fps:g} fps, {s.size[0]}x{s.size[1]}")
    cfg = SynthConfig(actors=s.actors, test_actors=s.test_actors, seed=seed, difficulty=parse_difficulty(s.difficulty),
                      size=s.size, duration=s.duration, fps=s.fps)
    try:
        corpus = generate_media_corpus(out / "corpus", cfg, workers=workers, progress=progress)
    except FileExistsError:
        raise FileExistsError(f"{out} holds a demo made with other settings (--quick or --seed differ); "
                              "choose another --out or delete that folder") from None
    seconds["generate"] = time.perf_counter() - t
    echo(f"{len(corpus.table)} clips in {corpus.root} ({corpus.written} written, {corpus.skipped} reused)")

    # 2. features ----------------------------------------------------------------------------
    t = stage("extract", "2/6 extracting the default features (face-mesh, face-expression, egemaps)")
    feats = out / "features"
    ext_settings = {} if s.face_landmarks else {"face-mesh": {"landmarks": False}}
    folders = [d for d in (corpus.train_dir, corpus.test_dir) if d.is_dir()]
    summary = extract(folders, feats, workers=workers, progress=progress, settings=ext_settings)
    seconds["extract"] = time.perf_counter() - t
    failures = getattr(summary, "failures", None) or []
    echo(f"features in {feats}" + (f"; {len(failures)} clip(s) failed (see the manifests)" if failures else ""))

    # 3. benchmark ----------------------------------------------------------------------------
    t = stage("benchmark", f"3/6 benchmarking ({', '.join(n for n, _ in s.runs)}): 5-fold actor-disjoint "
                           f"validation with nested selection, then the held-out test actors")
    runs: dict[str, Path] = {}
    results: dict[str, dict] = {}
    test_md = str(corpus.test_metadata) if corpus.test_metadata else None
    for name, sources in s.runs:
        run_dir = out / "runs" / name.replace("+", "_")
        ecfg = ExperimentConfig(metadata=str(corpus.train_metadata), test_metadata=test_md,
                                features=[str(feats / x) for x in sources], name=name, out=str(run_dir),
                                head=s.head, preset=s.preset, seed=seed)
        echo(f"-- {name}: {' + '.join(sources)}")
        r = run_experiment(ecfg, progress=progress)
        runs[name] = run_dir
        results[name] = r.results
    seconds["benchmark"] = time.perf_counter() - t

    # 4. report ----------------------------------------------------------------------------------
    t = stage("report", "4/6 report")
    rows = compare_runs([runs[n] for n, _ in s.runs])
    table = format_compare(rows)
    report = out / "report.md"
    prov = provenance(out, quick=quick, seed=seed, settings=s)
    header = ("# blemore demo: synthetic corpus, known answer\n\n"
              f"Made by `{prov['command']}` at commit {prov['commit']} (blemore {prov['blemore']}), "
              f"{prov['date']}, on {prov['machine']}. Copy this table together with this line.\n\n"
              f"{s.actors} training actors (5 folds) and {s.test_actors} held-out test actors, 36 targets each; "
              f"difficulty {s.difficulty}. Validation: mean ± std over folds (nested selection). "
              "Test: held-out actors, model trained on all training actors.\n\n")
    _atomic_write(report, (header + table + "\n").encode())
    seconds["report"] = time.perf_counter() - t
    echo(table)

    # 5. model -------------------------------------------------------------------------------------
    t = stage("train", f"5/6 training a model bundle ({s.model_run}, {s.head})")
    sources = dict(s.runs)[s.model_run]
    model_dir = out / "model"
    mcfg = ExperimentConfig(metadata=str(corpus.train_metadata), features=[str(feats / x) for x in sources],
                            head=s.head, preset=s.preset, seed=seed, model_dir=str(model_dir), plots=False)
    model = train_model(mcfg, progress=progress)
    seconds["train"] = time.perf_counter() - t
    echo(f"model bundle in {model_dir}")

    # 6. predict ---------------------------------------------------------------------------------
    t = stage("predict", f"6/6 predicting {s.predict_clips} held-out clips from their media files")
    pick = _select_clips(corpus.table, s.predict_clips, seed)
    paths = corpus.table.set_index("clip_id").loc[pick, "path"].tolist()
    pred, srcs = model.predict_media(paths, out / "predict" / "features", workers=workers, progress=progress)
    truth = corpus.table.set_index("clip_id")["label"]
    ptab = pred.table()
    ptab.insert(1, "truth", [truth[c].name() for c in ptab["clip_id"]])
    ptab.insert(2, "predicted", pred.labels())
    ptab.insert(3, "correct", [truth[c].name() == p for c, p in zip(ptab["clip_id"], pred.labels())])
    pred_csv = out / "predictions.csv"
    _atomic_write(pred_csv, ptab.to_csv(index=False).encode())
    timelines: list[Path] = []
    for cid, label in zip(pred.clip_ids, pred.labels()):
        try:
            arrays = {n: srcs[n].load(cid) for n in model.source_names}
            rates = {n: getattr(srcs[n], "rate", None) for n in model.source_names}
            tt, pp = model.timeline(arrays, rates=rates)
        except Exception as e:  # a timeline is a bonus: report and go on
            echo(f"(no timeline for {cid}: {e})")
            continue
        p = out / "timelines" / f"{cid}.png"
        plot_timeline(tt, pp, p, f"{cid}: predicted {label}, true {truth[cid].name()}")
        timelines.append(p)
    seconds["predict"] = time.perf_counter() - t
    cols = ["clip_id", "truth", "predicted", "correct"] + [c for c in ptab.columns if c.startswith("p_")]
    echo(ptab[cols].to_string(index=False))
    seconds["total"] = time.perf_counter() - t_all

    res = DemoResult(out=out, corpus=corpus.root, features=feats, runs=runs, report=report, model=model_dir,
                     predictions=pred_csv, timelines=timelines, seconds=seconds, results=results, table=table)
    _atomic_write(out / "demo.json", (json.dumps({
        "settings": asdict(s), "seed": seed, "provenance": prov, "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "corpus": str(corpus.root), "features": str(feats), "runs": {k: str(v) for k, v in runs.items()},
        "report": str(report), "model": str(model_dir), "predictions": str(pred_csv),
        "timelines": [str(p) for p in timelines],
        "headline": {k: _headline(v) for k, v in results.items()},
    }, indent=2, default=str) + "\n").encode())
    _print_summary(res, s, echo)
    return res


def provenance(out: str | os.PathLike, *, quick: bool = False, seed: int = 0,
               settings: DemoSettings | None = None) -> dict[str, str]:
    """Where a demo's numbers come from: the command, the git commit of the blemore sources
    (``+dirty`` with uncommitted changes; ``unknown`` outside a git checkout), the version, the
    UTC date and the machine. The report and demo.json carry it, so a table copied into the
    README says which run it is (the README's numbers are pasted from ``report.md``)."""
    import datetime
    import platform
    import subprocess

    src = Path(__file__).resolve().parent
    commit = "unknown (not a git checkout)"
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=src, capture_output=True, text=True,
                             timeout=10)
        if sha.returncode == 0 and sha.stdout.strip():
            commit = sha.stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "."], cwd=src,
                                   capture_output=True, text=True, timeout=10)
            if dirty.returncode == 0 and dirty.stdout.strip():
                commit += "+dirty"
    except (OSError, subprocess.SubprocessError):
        pass
    cmd = f"blemore demo --out {out}" + (" --quick" if quick else "") + (f" --seed {seed}" if seed else "")
    if settings is not None and settings not in (DemoSettings(), demo_settings(True)):
        cmd += " (custom settings)"
    return {"command": cmd, "commit": commit, "blemore": __version__,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, Python {platform.python_version()}"}


def _headline(res: Mapping) -> dict:
    v, t, triv = res["validation"], res.get("test") or {}, res["trivial"]
    return {
        "val_presence": round(v["acc_presence"]["mean"], 3), "val_salience": round(v["acc_salience"]["mean"], 3),
        "test_presence": t.get("acc_presence"), "test_salience": t.get("acc_salience"),
        "trivial_test_presence": max(triv[k].get("test", {}).get("acc_presence", 0.0) for k in ("single", "blend")),
        "trivial_test_salience": max(triv[k].get("test", {}).get("acc_salience", 0.0) for k in ("single", "blend")),
    }


def _print_summary(r: DemoResult, s: DemoSettings, echo: Callable[[str], Any]) -> None:
    echo("\n== done in " + _fmt_s(r.seconds["total"]) + " ("
         + ", ".join(f"{k} {_fmt_s(v)}" for k, v in r.seconds.items() if k != "total") + ")")
    echo(f"  corpus:       {r.corpus}  (train_metadata.csv, test_metadata.csv, train/, test/)")
    echo(f"  features:     {r.features}")
    for name, d in r.runs.items():
        echo(f"  run {name + ':':<10} {d}  (results.md, plots/, predictions/, submission.zip)")
    echo(f"  report:       {r.report}")
    echo(f"  model:        {r.model}  (blemore predict {r.model} <clips>)")
    echo(f"  predictions:  {r.predictions}" + (f"; timelines in {r.timelines[0].parent}" if r.timelines else ""))
    best = r.results.get(s.model_run) or next(iter(r.results.values()))
    h = _headline(best)
    if h["test_presence"] is not None:
        echo(f"\nHeld-out actors ({s.model_run}): presence {h['test_presence']:.3f} vs trivial "
             f"{h['trivial_test_presence']:.3f}, salience {h['test_salience']:.3f} vs trivial "
             f"{h['trivial_test_salience']:.3f}")
