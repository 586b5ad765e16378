"""CLI commands that make synthetic data and run the demo: the ``synth`` group (``synth media``,
``synth features``) and ``demo``.

Thin layer over :func:`blemore.synth.media.generate_media_corpus`,
:func:`blemore.synth.features.generate_feature_corpus` and :func:`blemore.demo.run_demo`.
This module owns the ``synth`` group; errors go through the CLI's one adapter
(:mod:`blemore.cli._errors`).
"""
from __future__ import annotations

import click


def _size(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT such as 192x192, got {value!r}") from None
    return w, h


@click.command("media")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--actors", type=int, default=10, show_default=True, help="Training actors (at least --folds).")
@click.option("--test-actors", type=int, default=3, show_default=True, help="Held-out test actors.")
@click.option("--folds", type=int, default=5, show_default=True, help="Actor-disjoint cross-validation folds.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--difficulty", default="medium", show_default=True,
              help="0..1 or easy / medium / hard: actor variation, noise, weaker expressions.")
@click.option("--size", default="192x192", show_default=True, callback=_size, help="Frame size WIDTHxHEIGHT.")
@click.option("--duration", type=float, default=2.0, show_default=True, help="Seconds per clip.")
@click.option("--fps", type=float, default=12.0, show_default=True, help="Frames per second.")
@click.option("--format", "fmt", type=click.Choice(["mov", "mp4"]), default="mov", show_default=True)
@click.option("--intensities", type=int, default=1, show_default=True,
              help="Intensity levels (and neutral situations) per emotion per actor, 1..4.")
@click.option("--no-signal", is_flag=True, help="Content unrelated to the labels (a chance-level control).")
@click.option("--anonymise-test", is_flag=True,
              help="Name test clips test_0001 ... (labels go to test_answers.csv only).")
@click.option("--workers", type=int, default=None, help="Processes (default: all cores).")
@click.option("--overwrite", is_flag=True, help="Re-render clips that already exist.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def synth_media_cmd(out, actors, test_actors, folds, seed, difficulty, size, duration, fps, fmt, intensities,
                    no_signal, anonymise_test, workers, overwrite, quiet):
    """Generate a media-level synthetic BLEMORE corpus in OUT: video clips with a voice track,
    named by the BLEMORE grammar, with train/test metadata and a known answer."""
    from blemore.synth.media import SynthConfig, generate_media_corpus, parse_difficulty

    cfg = SynthConfig(actors=actors, test_actors=test_actors, folds=folds, seed=seed,
                      difficulty=parse_difficulty(difficulty), size=size, duration=duration, fps=fps,
                      format=fmt, intensities=intensities, signal=not no_signal,
                      anonymise_test=anonymise_test)
    c = generate_media_corpus(out, cfg, workers=workers, progress=not quiet, overwrite=overwrite)
    n_train = int((c.table["split"] == "train").sum())
    n_test = int((c.table["split"] == "test").sum())
    click.echo(f"{n_train} training clips ({cfg.actors} actors, {cfg.folds} folds) and {n_test} test clips "
               f"({cfg.test_actors} actor{'s' if cfg.test_actors != 1 else ''}) in {c.seconds:.1f} s "
               f"({c.written} written, {c.skipped} kept)"
               + ("; NO SIGNAL: labels unrelated to content" if no_signal else ""))
    click.echo(f"  clips:          {c.train_dir}" + (f", {c.test_dir}" if n_test else ""))
    click.echo(f"  train metadata: {c.train_metadata}")
    if c.test_metadata:
        click.echo(f"  test metadata:  {c.test_metadata}")
    if c.answers:
        click.echo(f"  test answers:   {c.answers}")


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False), default="demo_run", show_default=True,
              help="Folder for the corpus, features, reports and model.")
@click.option("--quick", is_flag=True, help="A smaller corpus and fewer runs (about a third of the time).")
@click.option("--workers", type=int, default=None, help="Processes for generation and extraction (default: all cores).")
@click.option("--seed", type=int, default=0, show_default=True)
def demo_cmd(out, quick, workers, seed):
    """Run the whole pipeline on a generated corpus: generate, extract, benchmark, report,
    train a model, predict on held-out clips; print where everything is."""
    from blemore.demo import run_demo

    run_demo(out, quick=quick, workers=workers, seed=seed, echo=click.echo)


# ----------------------------------------------------------------------------- synth features
@click.command("features")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--clips", type=int, default=2456, show_default=True, help="Training clips (spread over the actors).")
@click.option("--test-clips", type=int, default=594, show_default=True, help="Test clips.")
@click.option("--actors", type=int, default=43, show_default=True, help="Training actors.")
@click.option("--test-actors", type=int, default=15, show_default=True, help="Test actors.")
@click.option("--dim", type=int, default=1024, show_default=True, help="Feature dimension per source.")
@click.option("--sources", default="video,audio", show_default=True, help="Comma-separated source names.")
@click.option("--frames", default=None, help="Frames per clip: MIN,MAX (default 12,48; 60,140 with --temporal).")
@click.option("--signal", type=float, default=1.0, show_default=True, help="Strength of the emotion signal.")
@click.option("--actor-scale", type=float, default=1.0, show_default=True, help="Strength of the actor offsets.")
@click.option("--noise", type=float, default=1.0, show_default=True, help="Clip and frame noise.")
@click.option("--no-signal", is_flag=True, help="Content unrelated to the labels (a chance-level control).")
@click.option("--folds", type=int, default=5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--temporal", is_flag=True,
              help="Frame sequences where emotions are short events at random times over an identity "
                   "background (blemore.synth.temporal): for sequence heads, gated fusion, per-actor "
                   "thresholds and --adapt.")
@click.option("--dropout", type=float, default=0.3, show_default=True,
              help="--temporal: share of clips with one source carrying no event.")
@click.option("--shift", type=float, default=0.5, show_default=True,
              help="--temporal: strength of the test-set feature shift (0: none).")
def synth_features_cmd(out, clips, test_clips, actors, test_actors, dim, sources, frames, signal, actor_scale, noise,
                       no_signal, folds, seed, temporal, dropout, shift):
    """Generate a feature-level synthetic BLEMORE corpus (feature folders + metadata)."""
    from blemore.synth.features import generate_feature_corpus
    from blemore.synth.temporal import generate_temporal_corpus

    frames = frames or ("60,140" if temporal else "12,48")
    try:
        fmin, fmax = (int(x) for x in frames.split(","))
    except ValueError:
        raise click.BadParameter(f"expected MIN,MAX, got {frames!r}", param_hint="--frames") from None
    names = [s.strip() for s in sources.split(",") if s.strip()]
    if temporal and no_signal:
        raise click.BadParameter("--no-signal is not available with --temporal", param_hint="--no-signal")
    if temporal:
        c = generate_temporal_corpus(out, n_train_actors=actors, n_test_actors=test_actors, n_train_clips=clips,
                                     n_test_clips=test_clips, sources=names, dim=dim, frames=(fmin, fmax),
                                     signal=signal, actor_scale=actor_scale, noise=noise, dropout=dropout,
                                     shift=shift, folds=folds, seed=seed, progress=True)
    else:
        c = generate_feature_corpus(out, n_train_actors=actors, n_test_actors=test_actors, n_train_clips=clips,
                                    n_test_clips=test_clips, sources=names, dim=dim, frames=(fmin, fmax),
                                    signal=signal, actor_scale=actor_scale, noise=noise, no_signal=no_signal,
                                    folds=folds, seed=seed, progress=True)
    click.echo(f"{c.n_train} training and {c.n_test} test clips, sources {', '.join(c.sources)} ({dim} dims each)")
    for name, p in c.sources.items():
        click.echo(f"  features {name}: {p}")
    click.echo(f"  train metadata: {c.train_metadata}\n  test metadata:  {c.test_metadata}")


@click.group("synth")
def synth_group() -> None:
    """Generate synthetic BLEMORE-shaped corpora (media clips or features)."""


synth_group.add_command(synth_media_cmd)
synth_group.add_command(synth_features_cmd)


def register(group: click.Group) -> None:
    """Attach this module's commands to the main group."""
    group.add_command(synth_group)
    group.add_command(demo_cmd)
