"""CLI commands of the engine area: ``benchmark``, ``train``, ``predict``, ``report``, and
``synth features``.

Thin layer over :mod:`blemore.experiment`, :mod:`blemore.bundle`, :mod:`blemore.report` and
:mod:`blemore.synth.features`: read options, call one library function, print a table
(or JSON with ``--json``). Progress bars go to stderr so that ``--json`` output stays clean.
Library errors become click errors (``Error: ...``, exit status 1).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import click

from blemore.cli._errors import UserError



def _show_warnings() -> None:
    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        click.echo(f"warning: {message}", err=True)

    warnings.showwarning = show


def _train_overrides(epochs, lr, batch_size, weight_decay) -> dict:
    out = {}
    if epochs is not None:
        out["epochs"] = epochs
    if lr is not None:
        out["lr"] = lr
    if batch_size is not None:
        out["batch_size"] = batch_size
    if weight_decay is not None:
        out["weight_decay"] = weight_decay
    return out


def _fusion_names(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Validate ``--fusion`` (a registered fusion, or a comma list of them for ``benchmark``)."""
    if value is None:
        return None
    from blemore.fusion import list_fusions

    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [n for n in names if n not in list_fusions()]
    if not names or bad:
        raise click.BadParameter(f"{value!r}: expected one of {', '.join(list_fusions())} (or a comma list for benchmark)")
    return ",".join(dict.fromkeys(names))


def _actor_norm_options(fn: Callable) -> Callable:
    """``--actor-norm`` and ``--identity-groups`` (per-actor normalisation, blemore.normalise)."""
    fn = click.option("--identity-groups", default=None,
                      help="Number of identity groups when clips of unknown actors are clustered for --actor-norm: "
                           "auto (silhouette, default), size (from the training clips per actor) or an integer.")(fn)
    fn = click.option("--actor-norm", "actor_norm", default=None,
                      help="Per-actor normalisation (transductive, never uses labels): off (default); on (actors from "
                           "the clip ids, unknown ones clustered); cluster (held-out/test actors found by clustering, "
                           "as for anonymised test clips). benchmark takes a comma list to compare.")(fn)
    return fn


def _norm_transforms(mode: str | None, identity_groups: str | None) -> list | None:
    """The transform chain for one ``--actor-norm`` mode (None when not given)."""
    if mode is None:
        return None
    from blemore.normalise import actor_norm_transforms

    return actor_norm_transforms(mode, _groups_value(identity_groups))


def _groups_value(identity_groups: str | None) -> int | str:
    if identity_groups is None:
        return "auto"
    return int(identity_groups) if identity_groups.strip().isdigit() else identity_groups.strip()


def _common_options(fn: Callable) -> Callable:
    """Options shared by ``benchmark`` and ``train``."""
    opts = [
        click.option("--metadata", type=click.Path(exists=True, dir_okay=False), help="train_metadata.csv (labels, actors, folds)."),
        click.option("--features", "features", multiple=True, type=click.Path(exists=True, file_okay=False),
                     help="A feature folder (<clip_id>.npy per clip, or a blemore store subfolder). Repeat to fuse sources."),
        click.option("--fusion", default=None, callback=_fusion_names,
                     help="How several --features combine: early (default), late, late-learned (weights chosen on "
                          "inner folds). benchmark takes a comma list to compare."),
        click.option("--late-mode", type=click.Choice(["prob", "logit"]), default=None, help="Late fusion: average probabilities or logits."),
        click.option("--preset", type=click.Choice(["paper", "fast"]), default=None, help="Training preset (default paper)."),
        click.option("--pooling", type=click.Choice(["stats", "windows"]), default=None,
                     help="stats: 7 statistics per clip (default); windows: each window a sample (subsampling)."),
        click.option("--window", type=int, default=None, help="Window length in rows for --pooling windows (default 16)."),
        click.option("--stride", type=int, default=None, help="Window stride in rows (default: the window length)."),
        click.option("--epochs", type=int, default=None, help="Override the preset's maximum number of epochs."),
        click.option("--lr", type=float, default=None, help="Override the preset's learning rate."),
        click.option("--batch-size", type=int, default=None, help="Override the preset's batch size (0 = full batch)."),
        click.option("--weight-decay", type=float, default=None, help="Override the preset's weight decay."),
        click.option("--folds", type=int, default=None, help="Folds to make when the metadata has none (default 5)."),
        click.option("--seed", type=int, default=None, help="Seed for weights and batch order (default 0)."),
        click.option("--missing", type=click.Choice(["drop", "impute", "error"]), default=None,
                     help="Clips missing in a source: drop them with a warning (default), impute, or fail."),
        click.option("--threads", type=int, default=None, help="Torch threads (default: all CPUs available)."),
        click.option("--quiet", is_flag=True, help="No progress bars."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _config_kwargs(metadata, features, fusion, late_mode, preset, pooling, window, stride, epochs, lr,
                   batch_size, weight_decay, folds, seed, missing, threads) -> dict:
    kw: dict[str, Any] = {}
    if metadata:
        kw["metadata"] = metadata
    if features:
        kw["features"] = list(features)
    if fusion:
        kw["fusion"] = fusion
    if late_mode:
        kw["fusion_options"] = {"mode": late_mode}
    for k, v in (("preset", preset), ("pooling", pooling), ("window", window), ("stride", stride),
                 ("folds", folds), ("seed", seed), ("missing", missing), ("threads", threads)):
        if v is not None:
            kw[k] = v
    tr = _train_overrides(epochs, lr, batch_size, weight_decay)
    if tr:
        kw["train"] = tr
    return kw


# ----------------------------------------------------------------------------- benchmark
@click.command("benchmark")
@click.argument("config_file", required=False, type=click.Path(exists=True, dir_okay=False))
@_common_options
@click.option("--test-metadata", type=click.Path(exists=True, dir_okay=False),
              help="test_metadata.csv: test clips to predict (scored when labelled); a submission is always written.")
@click.option("--head", "heads", multiple=True,
              help="Head (default mlp-512), optionally with options: structured[ratio=ordinal,mixup=0.2]. Repeat or "
                   "give a comma list to compare heads; several heads, --actor-norm modes or --fusion values make an "
                   "ablation table (ablation.md/json in --out).")
@_actor_norm_options
@click.option("--selection", type=click.Choice(["nested", "paper"]), default=None,
              help="nested (default): epoch and thresholds from inner folds; paper: chosen on the validation fold (optimistic).")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Run folder (default runs/<run name>).")
@click.option("--model-dir", type=click.Path(file_okay=False), default=None, help="Also save the final model bundle here.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option("--json", "as_json", is_flag=True, help="Print results.json (a list for several runs) instead of tables.")
def benchmark_cmd(config_file, metadata, features, fusion, late_mode, preset, pooling, window, stride, epochs, lr,
                  batch_size, weight_decay, folds, seed, missing, threads, quiet, test_metadata, heads, actor_norm,
                  identity_groups, selection, out, model_dir, no_plots, as_json):
    """Run the BLEMORE protocol: 5-fold actor-disjoint CV, test evaluation, trivial baselines, reports.

    Either flags (--metadata, --features ...) or a TOML CONFIG_FILE describing a grid of
    feature sets x heads (flags given on the command line override its top-level keys).
    """
    from blemore.config import ExperimentConfig, load_config
    from blemore.experiment import run_experiment
    from blemore.report import compare_runs, format_compare

    _show_warnings()
    kw = _config_kwargs(metadata, features, fusion, late_mode, preset, pooling, window, stride, epochs, lr,
                        batch_size, weight_decay, folds, seed, missing, threads)
    for k, v in (("test_metadata", test_metadata), ("selection", selection), ("out", out), ("model_dir", model_dir)):
        if v is not None:
            kw[k] = v
    if no_plots:
        kw["plots"] = False
    from blemore.ablation import parse_heads, parse_list
    from blemore.normalise import ACTOR_NORM_MODES

    head_specs = parse_heads(heads) if heads else []
    norms = parse_list(actor_norm, ACTOR_NORM_MODES, "--actor-norm mode")
    fusions = (fusion or "").split(",") if fusion else []
    if len(fusions) > 1:
        kw.pop("fusion", None)
    if not config_file and (len(head_specs) > 1 or len(norms) > 1 or len(fusions) > 1):
        _ablation(kw, head_specs, norms, fusions, identity_groups, metadata, features, out, quiet, as_json)
        return
    if norms:
        kw["transforms"] = _norm_transforms(norms[0], identity_groups)
    if config_file:
        configs = load_config(config_file, **kw)
        if head_specs:
            configs = [c.replace(head=h.name, head_options=dict(h.options), name=None if len(head_specs) > 1 else c.name)
                       for c in configs for h in head_specs]
    else:
        if not metadata or not features:
            raise click.UsageError("give --metadata and --features (or a CONFIG_FILE)")
        configs = [ExperimentConfig(**kw, **({"head": h.name, "head_options": dict(h.options)} if h else {}))
                   for h in (head_specs or [None])]
    several = len(configs) > 1
    for c in configs:
        if not c.out or (several and not config_file):
            base = Path(out) if out else Path("runs")
            c.out = str(base / c.run_name()) if (several or not out) else out
    for c in configs:
        c.validate()
    results = []
    for i, cfg in enumerate(configs):
        if len(configs) > 1 and not quiet:
            click.echo(f"[{i + 1}/{len(configs)}] {cfg.run_name()}", err=True)
        r = run_experiment(cfg, progress=not quiet)
        results.append((cfg, r))
    if as_json:
        objs = [r.results for _, r in results]
        click.echo(json.dumps(objs[0] if len(objs) == 1 else objs, indent=2, default=str))
        return
    if len(results) == 1:
        cfg, r = results[0]
        from blemore.report import results_markdown

        click.echo(results_markdown(r.results))
        if cfg.out:
            click.echo(f"Run folder: {cfg.out}")
    else:
        rows = compare_runs([c.out for c, _ in results])
        table = format_compare(rows)
        click.echo(table)
        parents = {str(Path(c.out).parent) for c, _ in results}
        if len(parents) == 1:
            from blemore.report import _atomic_write

            where = Path(parents.pop()) / "report.md"
            _atomic_write(where, table.encode())
            click.echo(f"Side-by-side table: {where}")


def _ablation(kw, head_specs, norms, fusions, identity_groups, metadata, features, out, quiet, as_json) -> None:
    """``benchmark`` with several heads / --actor-norm modes / fusions: one ablation table."""
    from blemore.ablation import run_ablation
    from blemore.config import ExperimentConfig

    if not metadata or not features:
        raise click.UsageError("give --metadata and --features for an ablation (several heads, norms or fusions)")
    out_dir = Path(out) if out else Path("runs") / "ablation"
    base = ExperimentConfig(**{k: v for k, v in kw.items() if k not in ("out", "model_dir")})
    say = (lambda msg: None) if quiet else (lambda msg: click.echo(msg, err=True))
    res = run_ablation(base, head_specs or ["mlp-512"], norms or ["off"], fusions or None, out=out_dir,
                       n_groups=_groups_value(identity_groups), progress=not quiet, log=say)
    if as_json:
        click.echo(json.dumps(res.as_dict(), indent=2, default=str))
        return
    click.echo(res.markdown())
    click.echo(f"Ablation table: {out_dir / 'ablation.md'} (and ablation.json); run folders below {out_dir}")


# ----------------------------------------------------------------------------- train
@click.command("train")
@_common_options
@click.option("--head", default="mlp-512", show_default=True, help="Head to train.")
@click.option("--out", "model_dir", required=True, type=click.Path(file_okay=False), help="Model folder to write.")
@click.option("--json", "as_json", is_flag=True, help="Print the bundle description as JSON.")
@_actor_norm_options
def train_cmd(metadata, features, fusion, late_mode, preset, pooling, window, stride, epochs, lr, batch_size,
              weight_decay, folds, seed, missing, threads, quiet, head, model_dir, as_json, actor_norm, identity_groups):
    """Train on all labelled clips and save a self-contained model bundle.

    The epoch and the decoding thresholds are chosen on the pooled out-of-fold outputs of a
    5-fold cross-validation; then one model is trained on every clip.
    """
    from blemore.config import ExperimentConfig
    from blemore.experiment import train_model

    _show_warnings()
    if not metadata or not features:
        raise click.UsageError("give --metadata and --features")
    kw = _config_kwargs(metadata, features, fusion, late_mode, preset, pooling, window, stride, epochs, lr,
                        batch_size, weight_decay, folds, seed, missing, threads)
    if fusion and "," in fusion:
        raise click.UsageError("train takes one --fusion")
    if actor_norm:
        if "," in actor_norm:
            raise click.UsageError("train takes one --actor-norm mode")
        kw["transforms"] = _norm_transforms(actor_norm.strip(), identity_groups)
    from blemore.ablation import parse_heads

    spec = parse_heads(head)[0]
    cfg = ExperimentConfig(**kw, head=spec.name, head_options=dict(spec.options), model_dir=model_dir, plots=False)
    model = train_model(cfg, progress=not quiet)
    if as_json:
        click.echo(json.dumps(model.manifest(), indent=2, default=str))
        return
    cv = model.info.get("cv", {})
    params = ", ".join(f"{k}={v:.3f}" for k, v in model.params.items())
    click.echo(f"Trained {head} on {model.info.get('train_clips')} clips, {model.epochs} epochs, {params or 'no thresholds'}")
    if cv:
        click.echo(f"Out-of-fold (selection data, optimistic): presence {cv['acc_presence']:.3f}, "
                   f"salience {cv['acc_salience']:.3f}")
    click.echo(f"Model bundle: {model_dir}")


# ----------------------------------------------------------------------------- predict
def _classify_inputs(model, inputs: Sequence[str]):
    """Feature sources by the model's source names, or None when the inputs are media."""
    from blemore.store import StoreError, open_source, open_store

    names = model.source_names
    found: dict[str, Any] = {}
    media = []
    for inp in inputs:
        p = Path(inp)
        if p.is_dir():
            try:
                store = open_store(p)
            except StoreError:
                store = {}
            hits = {n: store[n] for n in names if n in store}
            if hits:
                found.update(hits)
                continue
            try:
                src = open_source(p)
            except StoreError:
                media.append(p)
                continue
            if src.name in names:
                found[src.name] = src
            elif len(names) == 1:
                found[names[0]] = src
            else:
                raise UserError(f"{p}: a feature folder named {src.name!r}, but the model needs {names}")
        else:
            media.append(p)
    if found and media:
        raise UserError("give either feature folders or media clips, not both")
    if found:
        missing = [n for n in names if n not in found]
        if missing:
            raise UserError(f"the model needs feature source(s) {missing} too (it uses {names})")
        return found
    return None


@click.command("predict")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the challenge JSON here (and the readable table next to it as .csv).")
@click.option("--store", type=click.Path(file_okay=False), default=None,
              help="Where to extract features of media inputs (default: a temporary folder).")
@click.option("--workers", type=int, default=None, help="Extraction processes for media inputs.")
@click.option("--timeline", type=click.Path(file_okay=False), default=None,
              help="Also write a per-window probability plot per clip into this folder (up to 20 clips).")
@click.option("--json", "as_json", is_flag=True, help="Print the challenge JSON instead of the table.")
def predict_cmd(model_dir, inputs, output, store, workers, timeline, as_json):
    """Predict clips with a trained model bundle.

    INPUTS are media clips or folders of clips (features are extracted with the bundle's
    extractors and settings), or feature folders / a feature store.
    """
    import tempfile

    from blemore.bundle import ModelBundle

    _show_warnings()
    model = ModelBundle.load(model_dir)
    sources = _classify_inputs(model, inputs)
    tmp = None
    try:
        if sources is None:
            model.extractors()  # fails early, before extraction, for models made from plain feature folders
            if store is None:
                tmp = tempfile.TemporaryDirectory(prefix="blemore-predict-")
                store = tmp.name
            pred, sources = model.predict_media(list(inputs), store, workers=workers, progress=True)
        else:
            pred = model.predict(sources)
        if timeline:
            from blemore.report import plot_timeline

            tdir = Path(timeline)
            for cid in pred.clip_ids[:20]:
                arrays = {n: sources[n].load(cid) for n in model.source_names}
                rates = {n: getattr(sources[n], "rate", None) for n in model.source_names}
                t, p = model.timeline(arrays, rates=rates)
                plot_timeline(t, p, tdir / f"{cid}.png", f"{cid}: {pred.labels()[pred.clip_ids.index(cid)]}")
            if len(pred.clip_ids) > 20:
                click.echo(f"warning: timelines written for the first 20 of {len(pred.clip_ids)} clips", err=True)
    finally:
        if tmp is not None:
            tmp.cleanup()
    sub = pred.submission()
    table = pred.table()
    if output:
        from blemore.report import _atomic_write
        from blemore.submission import write_predictions

        write_predictions(sub, output)
        _atomic_write(Path(output).with_suffix(".csv"), table.to_csv(index=False).encode())
    if as_json:
        click.echo(json.dumps(sub, indent=2))
    else:
        click.echo(table.to_string(index=False))
        if output:
            click.echo(f"\nChallenge JSON: {output}; table: {Path(output).with_suffix('.csv')}")


# ----------------------------------------------------------------------------- report
@click.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Also write the table (markdown) here.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def report_cmd(run_dirs, output, as_json):
    """Put several run folders side by side in one table."""
    from blemore.report import _atomic_write, compare_runs, format_compare

    rows = compare_runs(run_dirs)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
    else:
        click.echo(format_compare(rows))
    if output:
        _atomic_write(Path(output), format_compare(rows).encode())


# ----------------------------------------------------------------------------- synth features
@click.command("features")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--clips", type=int, default=2456, show_default=True, help="Training clips (spread over the actors).")
@click.option("--test-clips", type=int, default=594, show_default=True, help="Test clips.")
@click.option("--actors", type=int, default=43, show_default=True, help="Training actors.")
@click.option("--test-actors", type=int, default=15, show_default=True, help="Test actors.")
@click.option("--dim", type=int, default=1024, show_default=True, help="Feature dimension per source.")
@click.option("--sources", default="video,audio", show_default=True, help="Comma-separated source names.")
@click.option("--frames", default="12,48", show_default=True, help="Frames per clip: MIN,MAX.")
@click.option("--signal", type=float, default=1.0, show_default=True, help="Strength of the emotion signal.")
@click.option("--actor-scale", type=float, default=1.0, show_default=True, help="Strength of the actor offsets.")
@click.option("--noise", type=float, default=1.0, show_default=True, help="Clip and frame noise.")
@click.option("--no-signal", is_flag=True, help="Content unrelated to the labels (a chance-level control).")
@click.option("--folds", type=int, default=5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def synth_features_cmd(out, clips, test_clips, actors, test_actors, dim, sources, frames, signal, actor_scale, noise,
                       no_signal, folds, seed):
    """Generate a feature-level synthetic BLEMORE corpus (feature folders + metadata)."""
    from blemore.synth.features import generate_feature_corpus

    try:
        fmin, fmax = (int(x) for x in frames.split(","))
    except ValueError:
        raise click.BadParameter(f"expected MIN,MAX, got {frames!r}", param_hint="--frames") from None
    names = [s.strip() for s in sources.split(",") if s.strip()]
    c = generate_feature_corpus(out, n_train_actors=actors, n_test_actors=test_actors, n_train_clips=clips,
                                n_test_clips=test_clips, sources=names, dim=dim, frames=(fmin, fmax), signal=signal,
                                actor_scale=actor_scale, noise=noise, no_signal=no_signal, folds=folds, seed=seed,
                                progress=True)
    click.echo(f"{c.n_train} training and {c.n_test} test clips, sources {', '.join(c.sources)} ({dim} dims each)")
    for name, p in c.sources.items():
        click.echo(f"  features {name}: {p}")
    click.echo(f"  train metadata: {c.train_metadata}\n  test metadata:  {c.test_metadata}")


def _synth_group(group: click.Group) -> click.Group:
    """The ``synth`` group, shared with the synth area (cli/synth.py, which owns ``synth media``).

    Whichever area registers first creates the group; the other adds its subcommands to it.
    (cli/__init__.py registers "engine" before "synth", so this usually creates it; synth.py
    should look it up with ``group.commands.get("synth")`` before creating its own.)
    """
    existing = group.commands.get("synth")
    if isinstance(existing, click.Group):
        return existing

    @click.group("synth")
    def synth() -> None:
        """Generate synthetic BLEMORE-shaped corpora (media clips or features)."""

    group.add_command(synth)
    return synth


def register(group: click.Group) -> None:
    """Attach this area's commands to the main group."""
    for cmd in (benchmark_cmd, train_cmd, predict_cmd, report_cmd):
        group.add_command(cmd)
    _synth_group(group).add_command(synth_features_cmd)
