"""CLI commands that make and use models: ``benchmark``, ``train``, ``predict``, ``report``.

Thin layer over :mod:`blemore.experiment`, :mod:`blemore.ablation`, :mod:`blemore.bundle` and
:mod:`blemore.report`: read options, call one library function, print a table (or JSON with
``--json``). Progress bars go to stderr so that ``--json`` output stays clean. Errors go through
the CLI's one adapter (:mod:`blemore.cli._errors`).

The options that set an :class:`~blemore.config.ExperimentConfig` field are declared once, in
:data:`CONFIG_OPTIONS` (click parameter -> config field, ``train.<TrainSpec field>`` or
``fusion_options.mode``); :func:`config_kwargs` turns what click collected into config keyword
arguments and refuses a parameter that names no field.
"""
from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import click

from blemore.cli._engines import engine_options, open_engine
from blemore.cli._errors import UserError


def _show_warnings() -> None:
    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        click.echo(f"warning: {message}", err=True)

    warnings.showwarning = show


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
                      help="Number of identity groups when clips of unknown actors are clustered for --actor-norm "
                           "and --thresholds per-actor: "
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

# ----------------------------------------------------------------------------- config options
_PATH_FILE = click.Path(exists=True, dir_okay=False)


class _FeatureFolder(click.ParamType):
    """An existing feature folder, optionally with a layer selector of a store extracted with
    ``--layers all``: ``STORE/wav2vec2[layers=6-12]`` (see :mod:`blemore.store`)."""

    name = "directory"

    def convert(self, value, param, ctx):
        from blemore.store import split_selector

        folder, _ = split_selector(str(value))
        if not Path(folder).is_dir():
            self.fail(f"directory {str(folder)!r} does not exist", param, ctx)
        return str(value)


def _folds_value(ctx: click.Context, param: click.Parameter, value: str | None) -> int | str | None:
    if value is None or value.strip().lower() == "loso":
        return None if value is None else "loso"
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"expected a number of folds or loso, got {value!r}") from None

#: Options that set an ExperimentConfig field: click parameter name -> (target, option
#: declarations, click keyword arguments). A target is a config field, ``train.<TrainSpec
#: field>`` (an override of the preset) or ``fusion_options.mode``. Unset options (None or an
#: empty tuple) leave the config's default.
CONFIG_OPTIONS: dict[str, tuple[str, tuple[str, ...], dict[str, Any]]] = {
    "metadata": ("metadata", ("--metadata",), dict(type=_PATH_FILE, help="train_metadata.csv (labels, actors, folds).")),
    "features": ("features", ("--features",), dict(
        multiple=True, type=_FeatureFolder(),
        help="A feature folder (<clip_id>.npy per clip, or a blemore store subfolder; STORE/NAME[layers=A-B] "
             "averages hidden states A..B of a store extracted with --layers all). Repeat to fuse sources.")),
    "fusion": ("fusion", ("--fusion",), dict(
        default=None, callback=_fusion_names,
        help="How several --features combine: early (default), late, late-learned (weights chosen on "
             "inner folds), gated (per-clip source selection), xattn (sequence heads: each source encoded "
             "separately, cross-modal attention between them). benchmark takes a comma list to compare.")),
    "late_mode": ("fusion_options.mode", ("--late-mode",), dict(
        type=click.Choice(["prob", "logit"]), default=None, help="Late fusion: average probabilities or logits.")),
    "gate_top": ("fusion_options.top", ("--gate-top",), dict(
        type=int, default=None, help="--fusion gated: sources kept per clip (default 1).")),
    "gate_rank": ("fusion_options.rank", ("--gate-rank",), dict(
        type=float, default=None, help="--fusion gated: weight of the rank-aware gate training (each source also "
                                       "classified alone; the gate learns to rank sources per clip by that loss; "
                                       "default 1, 0 = off).")),
    "gate_balance": ("fusion_options.balance", ("--gate-balance",), dict(
        type=float, default=None, help="--fusion gated: weight of the load-balancing term over sources "
                                       "(default 0.01, 0 = off).")),
    "xattn_heads": ("fusion_options.heads", ("--xattn-heads",), dict(
        type=int, default=None, help="--fusion xattn: attention heads of the cross-modal blocks (default: the "
                                     "sequence head's heads).")),
    "thresholds": ("thresholds", ("--thresholds",), dict(
        default=None, metavar="global|per-actor",
        help="Decoding thresholds: one global alpha/beta pair (default) or per actor, shrunk towards the global "
             "pair and chosen from each actor's own predicted outputs (transductive, never its labels). "
             "benchmark takes a comma list to compare.")),
    "adapt": ("adapt", ("--adapt",), dict(
        default=None, metavar="none|meanvar|coral",
        help="Align the evaluated clips' feature statistics to the training clips' without labels "
             "(transductive). benchmark takes a comma list to compare.")),
    "seeds": ("seeds", ("--seeds",), dict(
        type=int, default=None, help="Train K copies of the head with different seeds per training and average "
                                     "their outputs (default 1).")),
    "device": ("train.device", ("--device",), dict(
        default=None, metavar="auto|cpu|cuda|cuda:N|mps",
        help="Where heads train (default auto: cuda when available, else cpu); mixed precision on GPU. "
             "Predictions and bundles stay on the CPU.")),
    "preset": ("preset", ("--preset",), dict(
        type=click.Choice(["paper", "fast"]), default=None, help="Training preset (default paper).")),
    "pooling": ("pooling", ("--pooling",), dict(
        type=click.Choice(["stats", "windows"]), default=None,
        help="stats: 7 statistics per clip (default); windows: each window a sample (subsampling).")),
    "window": ("window", ("--window",), dict(
        type=int, default=None, help="Window length in rows for --pooling windows (default 16).")),
    "stride": ("stride", ("--stride",), dict(
        type=int, default=None, help="Window stride in rows (default: the window length).")),
    "epochs": ("train.epochs", ("--epochs",), dict(
        type=int, default=None, help="Override the preset's maximum number of epochs.")),
    "lr": ("train.lr", ("--lr",), dict(type=float, default=None, help="Override the preset's learning rate.")),
    "batch_size": ("train.batch_size", ("--batch-size",), dict(
        type=int, default=None, help="Override the preset's batch size (0 = full batch).")),
    "weight_decay": ("train.weight_decay", ("--weight-decay",), dict(
        type=float, default=None, help="Override the preset's weight decay.")),
    "folds": ("folds", ("--folds",), dict(
        default=None, callback=_folds_value, metavar="K|loso",
        help="Folds to make when the metadata has none (default 5), or loso: one fold per actor "
             "(replaces the metadata's folds).")),
    "seed": ("seed", ("--seed",), dict(type=int, default=None, help="Seed for weights and batch order (default 0).")),
    "missing": ("missing", ("--missing",), dict(
        type=click.Choice(["drop", "impute", "error"]), default=None,
        help="Clips missing in a source: drop them with a warning (default), impute, or fail.")),
    "threads": ("threads", ("--threads",), dict(
        type=int, default=None, help="Torch threads (default: all CPUs available).")),
    # benchmark only
    "test_metadata": ("test_metadata", ("--test-metadata",), dict(
        type=_PATH_FILE,
        help="test_metadata.csv: test clips to predict (scored when labelled); a submission is always written.")),
    "selection": ("selection", ("--selection",), dict(
        type=click.Choice(["nested", "paper"]), default=None,
        help="nested (default): epoch and thresholds from inner folds; paper: chosen on the validation fold "
             "(optimistic).")),
    "out": ("out", ("--out",), dict(
        type=click.Path(file_okay=False), default=None, help="Run folder (default runs/<run name>).")),
    "model_dir": ("model_dir", ("--model-dir",), dict(
        type=click.Path(file_okay=False), default=None, help="Also save the final model bundle here.")),
}

#: The options ``benchmark`` and ``train`` share, in --help order.
_SHARED = ("metadata", "features", "fusion", "late_mode", "gate_top", "gate_rank", "gate_balance", "xattn_heads",
           "thresholds", "adapt", "seeds", "device", "preset", "pooling", "window", "stride", "epochs", "lr",
           "batch_size", "weight_decay", "folds", "seed", "missing", "threads")


def config_options(*names: str) -> Callable[[Callable], Callable]:
    """Add the :data:`CONFIG_OPTIONS` ``names`` to a command, in that order."""
    unknown = [n for n in names if n not in CONFIG_OPTIONS]
    if unknown:
        raise TypeError(f"no config option(s) {unknown}; known: {sorted(CONFIG_OPTIONS)}")

    def decorate(fn: Callable) -> Callable:
        for name in reversed(names):
            _, decls, kwargs = CONFIG_OPTIONS[name]
            fn = click.option(*decls, name, **kwargs)(fn)
        return fn

    return decorate


def config_kwargs(options: Mapping[str, Any]) -> dict[str, Any]:
    """:class:`~blemore.config.ExperimentConfig` keyword arguments from the config options click
    collected (unset ones left out). A parameter that is not in :data:`CONFIG_OPTIONS`, or whose
    target is not a field of ExperimentConfig / TrainSpec, is a bug (``TypeError``)."""
    from blemore.config import ExperimentConfig, TrainSpec

    fields = {f.name for f in dataclasses.fields(ExperimentConfig)}
    train_fields = {f.name for f in dataclasses.fields(TrainSpec)}
    kw: dict[str, Any] = {}
    for name, value in options.items():
        if name not in CONFIG_OPTIONS:
            raise TypeError(f"click parameter {name!r} is not a config option (CONFIG_OPTIONS)")
        field, _, sub = CONFIG_OPTIONS[name][0].partition(".")
        if field not in fields or (field == "train" and sub not in train_fields):
            raise TypeError(f"config option {name!r} targets {CONFIG_OPTIONS[name][0]!r}, not a config field")
        if value is None or value == ():
            continue
        if sub:
            kw.setdefault(field, {})[sub] = value
        else:
            kw[field] = list(value) if isinstance(value, tuple) else value
    return kw


_quiet_option = click.option("--quiet", is_flag=True, help="No progress bars.")


# ----------------------------------------------------------------------------- benchmark
@click.command("benchmark")
@click.argument("config_file", required=False, type=click.Path(exists=True, dir_okay=False))
@config_options(*_SHARED)
@_quiet_option
@config_options("test_metadata")
@click.option("--head", "heads", multiple=True,
              help="Head (default mlp-512), optionally with options: structured[ratio=ordinal,mixup=0.2]. Repeat or "
                   "give a comma list to compare heads; several heads, --actor-norm modes or --fusion values make an "
                   "ablation table (ablation.md/json in --out).")
@_actor_norm_options
@config_options("selection", "out", "model_dir")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option("--json", "as_json", is_flag=True, help="Print results.json (a list for several runs) instead of tables.")
@engine_options()
def benchmark_cmd(config_file, quiet, heads, actor_norm, identity_groups, no_plots, as_json, engine, address,
                  gpus_per_worker, workers, **options):
    """Run the BLEMORE protocol: 5-fold actor-disjoint CV, test evaluation, trivial baselines, reports.

    Either flags (--metadata, --features ...) or a TOML CONFIG_FILE describing a grid of
    feature sets x heads (flags given on the command line override its top-level keys).
    With --engine (or --workers) the trainings of a run, or the configurations of an
    ablation, run on that engine; the results are the same as one by one here.
    """
    # each training runs with the run's torch threads (--threads), so a Ray task asks for as many CPUs
    eng = open_engine(engine, address, workers, gpus_per_worker, cpus_per_worker=options.get("threads") or 1)
    try:
        _benchmark(config_file, quiet, heads, actor_norm, identity_groups, no_plots, as_json, eng, options)
    finally:
        if eng is not None:
            eng.close()


def _benchmark(config_file, quiet, heads, actor_norm, identity_groups, no_plots, as_json, eng, options) -> None:
    from blemore.config import ExperimentConfig, load_config
    from blemore.experiment import run_experiment
    from blemore.report import compare_runs, format_compare

    _show_warnings()
    kw = config_kwargs(options)
    if identity_groups is not None:  # also the identity groups of per-actor thresholds
        kw["identity_groups"] = _groups_value(identity_groups)
    metadata, features, fusion, out = (options[k] for k in ("metadata", "features", "fusion", "out"))
    if no_plots:
        kw["plots"] = False
    from blemore.ablation import parse_heads, parse_list
    from blemore.normalise import ACTOR_NORM_MODES

    head_specs = parse_heads(heads) if heads else []
    norms = parse_list(actor_norm, ACTOR_NORM_MODES, "--actor-norm mode")
    fusions = (fusion or "").split(",") if fusion else []
    if len(fusions) > 1:
        kw.pop("fusion", None)
    thresholds = parse_list(kw.pop("thresholds", None), ("global", "per-actor"), "--thresholds mode")
    adapts = parse_list(kw.pop("adapt", None), ("none", "meanvar", "coral"), "--adapt mode")
    variants = [((f"thresholds={t}" if len(thresholds) > 1 else "") + (" " if len(thresholds) > 1 and len(adapts) > 1
                 else "") + (f"adapt={a}" if len(adapts) > 1 else ""),
                 {**({"thresholds": t} if t else {}), **({"adapt": a} if a else {})})
                for t in (thresholds or [None]) for a in (adapts or [None])]
    if len(variants) == 1:
        kw.update(variants[0][1])
    if not config_file and (len(head_specs) > 1 or len(norms) > 1 or len(fusions) > 1 or len(variants) > 1):
        _ablation(kw, head_specs, norms, fusions, identity_groups, quiet, as_json, eng,
                  variants if len(variants) > 1 else None)
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
        r = run_experiment(cfg, progress=not quiet, engine=eng)
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
            from blemore._io import atomic_write_text

            where = Path(parents.pop()) / "report.md"
            atomic_write_text(where, table)
            click.echo(f"Side-by-side table: {where}")


def _ablation(kw, head_specs, norms, fusions, identity_groups, quiet, as_json, eng=None, variants=None) -> None:
    """``benchmark`` with several heads / --actor-norm modes / fusions: one ablation table."""
    from blemore.ablation import run_ablation
    from blemore.config import ExperimentConfig

    if not kw.get("metadata") or not kw.get("features"):
        raise click.UsageError("give --metadata and --features for an ablation (several heads, norms or fusions)")
    out_dir = Path(kw["out"]) if kw.get("out") else Path("runs") / "ablation"
    base = ExperimentConfig(**{k: v for k, v in kw.items() if k not in ("out", "model_dir")})
    say = (lambda msg: None) if quiet else (lambda msg: click.echo(msg, err=True))
    res = run_ablation(base, head_specs or ["mlp-512"], norms or ["off"], fusions or None, out=out_dir,
                       n_groups=_groups_value(identity_groups), progress=not quiet, log=say, engine=eng,
                       variants=variants)
    if as_json:
        click.echo(json.dumps(res.as_dict(), indent=2, default=str))
        return
    click.echo(res.markdown())
    click.echo(f"Ablation table: {out_dir / 'ablation.md'} (and ablation.json); run folders below {out_dir}")


# ----------------------------------------------------------------------------- train
@click.command("train")
@config_options(*_SHARED)
@_quiet_option
@click.option("--head", default="mlp-512", show_default=True, help="Head to train.")
@click.option("--out", "model_dir", required=True, type=click.Path(file_okay=False), help="Model folder to write.")
@click.option("--json", "as_json", is_flag=True, help="Print the bundle description as JSON.")
@_actor_norm_options
def train_cmd(quiet, head, as_json, actor_norm, identity_groups, **options):
    """Train on all labelled clips and save a self-contained model bundle.

    The epoch and the decoding thresholds are chosen on the pooled out-of-fold outputs of a
    5-fold cross-validation; then one model is trained on every clip.
    """
    from blemore.config import ExperimentConfig
    from blemore.experiment import train_model

    _show_warnings()
    if not options["metadata"] or not options["features"]:
        raise click.UsageError("give --metadata and --features")
    kw = config_kwargs(options)
    if identity_groups is not None:  # also the identity groups of per-actor thresholds
        kw["identity_groups"] = _groups_value(identity_groups)
    model_dir = options["model_dir"]
    if options["fusion"] and "," in options["fusion"]:
        raise click.UsageError("train takes one --fusion")
    if actor_norm:
        if "," in actor_norm:
            raise click.UsageError("train takes one --actor-norm mode")
        kw["transforms"] = _norm_transforms(actor_norm.strip(), identity_groups)
    from blemore.ablation import parse_heads

    spec = parse_heads(head)[0]
    cfg = ExperimentConfig(**kw, head=spec.name, head_options=dict(spec.options), plots=False)
    model = train_model(cfg, progress=not quiet)
    if as_json:
        click.echo(json.dumps(model.manifest(), indent=2, default=str))
        return
    cv = model.info.get("cv", {})
    params = ", ".join(f"{k}={v:.3f}" for k, v in model.params.items())
    click.echo(f"Trained {head} on {model.info.get('train_clips')} clips, {model.epochs} epochs, {params or 'no thresholds'}")
    if cv:
        click.echo(f"Out-of-fold (selection data, optimistic): presence {cv['acc_presence']:.3f}, "
                   "salience " + ("n/a (no blends)" if cv["acc_salience"] is None else f"{cv['acc_salience']:.3f}"))
    if model.transductive:
        what = [f"--adapt {model.adapt}"] * (model.adapt != "none") + ["per-actor thresholds"] * (model.thresholds == "per-actor")
        click.echo(f"Decoding is transductive ({', '.join(what)}): the clips predicted together are one set; "
                   "give blemore predict --groups FILE for per-actor groups (otherwise they are grouped by clustering)")
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


def _report_skipped(skipped: dict, n_predicted: int, allow_partial: bool) -> None:
    """List every clip that could not be predicted (stderr); refuse the batch unless allowed."""
    if not skipped:
        return
    for cid, why in skipped.items():
        click.echo(f"skipped {cid}: {why}", err=True)
    if not allow_partial:
        raise UserError(f"{len(skipped)} clip(s) could not be predicted (listed above; {n_predicted} could); "
                        "nothing written. Pass --allow-partial to predict the others.")
    click.echo(f"warning: {len(skipped)} clip(s) skipped, {n_predicted} predicted (--allow-partial)", err=True)


def _names_a_model(arg: str) -> bool:
    """Whether ``predict``'s first argument is the model: a model name (bundle folder,
    ``hf://``, ``face-zero-shot``), or a folder holding no media clip (loading it then says why
    it is not a model); otherwise it is the first input of the built-in face model."""
    from blemore.hub import is_model_spec
    from blemore.media import MEDIA_EXTENSIONS

    if is_model_spec(arg):
        return True
    p = Path(arg)
    return p.is_dir() and not any(f.suffix.lower() in MEDIA_EXTENSIONS for f in p.rglob("*") if f.is_file())


@click.command("predict")
@click.argument("args", nargs=-1, required=True, metavar="[MODEL] INPUTS...")
@click.option("--model", "model_opt", default=None,
              help="The model: a bundle folder, hf://owner/repo[@revision] (Hugging Face Hub), or face-zero-shot "
                   "(the built-in uncalibrated face model). Default: the first argument when it is one of these, "
                   "else face-zero-shot.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the challenge JSON here (keys are <clip id>.mov, the challenge's naming, whatever the "
                   "media's extension), the readable table next to it as .csv (clip ids), and the media paths and "
                   "timelines as .timelines.json (for blemore view).")
@click.option("--store", type=click.Path(file_okay=False), default=None,
              help="Where to extract features of media inputs (default: a temporary folder).")
@click.option("--workers", type=int, default=None, help="Extraction processes for media inputs.")
@click.option("--timeline", type=click.Path(file_okay=False), default=None,
              help="Also write a per-window probability plot per clip into this folder (up to 20 clips).")
@click.option("--json", "as_json", is_flag=True, help="Print the challenge JSON instead of the table.")
@click.option("--allow-partial", is_flag=True,
              help="Predict the clips that can be predicted when some cannot (e.g. no audio for an audio model); "
                   "each skipped clip is still listed. Without it such a batch exits non-zero and writes nothing.")
@click.option("--groups", "groups_file", type=click.Path(dir_okay=False), default=None,
              help="CSV giving each clip's actor (clip_id,actor, or a metadata file with an actor column) for models "
                   "trained with --thresholds per-actor (each actor decoded with its own thresholds) or --actor-norm. "
                   "Without it, the clips predicted together are split into identity groups by clustering.")
def predict_cmd(args, model_opt, output, store, workers, timeline, as_json, allow_partial, groups_file):
    """Predict clips with a model bundle, a model on the Hugging Face Hub, or the built-in face model.

    MODEL is a bundle folder (from ``blemore train``), ``hf://owner/repo[@revision]``, or
    ``face-zero-shot``; without one, the built-in face model is used (uncalibrated: it has not
    seen BLEMORE). INPUTS are media clips or folders of clips (features are extracted with the
    model's extractors and settings), or feature folders / a feature store.

    A model trained with --adapt or --thresholds per-actor decodes transductively: the clips
    predicted together are aligned to the training statistics and decoded per group (--groups);
    the lines on stderr and the table's ``decoding`` column say what ran.
    """
    import tempfile

    from blemore.bundle import ModelBundle
    from blemore.hub import resolve_model
    from blemore.view import bundle_timeline_records, timelines_path, write_timelines
    from blemore.zeroshot import NAME as ZERO_SHOT

    _show_warnings()
    spec, inputs = model_opt, list(args)
    if spec is None:
        spec = inputs.pop(0) if _names_a_model(inputs[0]) else ZERO_SHOT
    missing = [p for p in inputs if not Path(p).exists()]
    if not inputs or missing:
        raise UserError("no inputs to predict" if not inputs else
                        f"input(s) not found: {', '.join(missing)}")
    model = resolve_model(spec)
    records = None
    groups = None
    if groups_file is not None:
        from blemore.dataset import load_groups

        if not isinstance(model, ModelBundle):
            raise UserError(f"--groups is for model bundles; {spec} decodes every clip on its own")
        groups = load_groups(groups_file)
    if not isinstance(model, ModelBundle):  # the zero-shot face model
        click.echo(f"notice: {model.notice}", err=True)
        res = model.predict_media(inputs, progress=True, warn=False)
        pred = res.predictions
        _report_skipped(res.skipped, len(pred.clip_ids), allow_partial)
        records = [{"clip_id": c, "label": lab, "proba": p, "media": res.media[c], "duration": res.durations[c],
                    "times": res.timelines[c][0], "timeline": res.timelines[c][1]}
                   for c, lab, p in zip(pred.clip_ids, pred.labels(), pred.proba)]
        if timeline:
            from blemore.report import plot_timeline

            for r in records[:20]:
                plot_timeline(r["times"], r["timeline"], Path(timeline) / f"{r['clip_id']}.png",
                              f"{r['clip_id']}: {r['label']} (uncalibrated)")
    else:
        sources = _classify_inputs(model, inputs)
        media = None
        tmp = None
        try:
            if sources is None:
                from blemore.extract import find_media

                model.extractors()  # fails early, before extraction, for models made from plain feature folders
                media = find_media(inputs)
                if store is None:
                    tmp = tempfile.TemporaryDirectory(prefix="blemore-predict-")
                    store = tmp.name
                pred, sources = model.predict_media(list(inputs), store, workers=workers, progress=True,
                                                    groups=groups)
            else:
                pred = model.predict(sources, groups=groups)
            _report_skipped(pred.skipped, len(pred.clip_ids), allow_partial)
            if output:
                records = bundle_timeline_records(model, pred, sources, media)
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
    notice = getattr(model, "notice", None)
    sub = pred.submission()
    table = pred.table()
    if notice:
        table["notice"] = notice
    decoding = getattr(pred, "decoding", None) or {}
    for line in decoding.get("notes", []):
        if line not in decoding.get("warned", []):  # those were shown as warnings already
            click.echo(f"decoding: {line}", err=True)
    if decoding.get("transductive"):
        table["decoding"] = "transductive: " + " | ".join(decoding.get("notes", []))
    if output:
        from blemore._io import atomic_write_bytes
        from blemore.submission import write_predictions

        write_predictions(sub, output)
        atomic_write_bytes(Path(output).with_suffix(".csv"), table.to_csv(index=False).encode())
        write_timelines(timelines_path(output), records or [], model=str(spec), notice=notice)
    if as_json:
        click.echo(json.dumps(sub, indent=2))
    else:
        if notice:
            click.echo(f"NOTICE: {notice}")
        click.echo(table.drop(columns=["notice", "decoding"], errors="ignore").to_string(index=False))
        if output:
            click.echo(f"\nChallenge JSON: {output} (keys <clip id>.mov as the challenge names clips, whatever "
                       f"the media's extension); table: {Path(output).with_suffix('.csv')}; "
                       f"timelines: {timelines_path(output)} (blemore view {output})")


# ----------------------------------------------------------------------------- report
@click.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Also write the table (markdown) here.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def report_cmd(run_dirs, output, as_json):
    """Put several run folders side by side in one table."""
    from blemore._io import atomic_write_text
    from blemore.report import compare_runs, format_compare

    rows = compare_runs(run_dirs)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
    else:
        click.echo(format_compare(rows))
    if output:
        atomic_write_text(Path(output), format_compare(rows))


# ----------------------------------------------------------------------------- ensemble
@click.command("ensemble")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the ensemble's results.")
@click.option("--mode", type=click.Choice(["prob", "logit"]), default="prob", show_default=True,
              help="Average probabilities or log-probabilities.")
@click.option("--step", type=float, default=None, help="Weight grid step (default 0.1 for up to 3 runs).")
@click.option("--json", "as_json", is_flag=True, help="Print results.json instead of the table.")
def ensemble_cmd(run_dirs, out, mode, step, as_json):
    """Combine finished runs (same clips and folds) with weights and thresholds chosen, for each
    held-out fold, on the other folds' out-of-fold outputs only (blemore.ensemble)."""
    from blemore.ensemble import ensemble_markdown, run_ensemble

    res = run_ensemble(list(run_dirs), out, step=step, mode=mode)
    click.echo(json.dumps(res, indent=2, default=str) if as_json else ensemble_markdown(res))


def register(group: click.Group) -> None:
    """Attach this module's commands to the main group."""
    for cmd in (benchmark_cmd, train_cmd, predict_cmd, report_cmd, ensemble_cmd):
        group.add_command(cmd)
