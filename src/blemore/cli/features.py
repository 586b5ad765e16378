"""CLI commands for features: ``extract``, ``extractors``, ``features``, ``import-features``.

Thin wrappers over :func:`blemore.extract.extract`, the extractor registry,
:mod:`blemore.store` and :func:`blemore.store.import_features`. Errors go through the CLI's
one adapter (:mod:`blemore.cli._errors`).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from blemore.cli._engines import check_engine_options, engine_options


def _parse_settings(items: tuple[str, ...]) -> dict[str, dict]:
    """``("egemaps.functionals=true", ...)`` -> ``{"egemaps": {"functionals": "true"}}``: values stay text;
    :func:`blemore.extract.build_extractors` converts them to the config fields' types (and refuses
    ``landmarks=maybe``)."""
    out: dict[str, dict] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        name, dot, field = key.partition(".")
        if not sep or not dot or not name or not field:
            raise click.BadParameter(f"{item!r}: expected EXTRACTOR.SETTING=VALUE, e.g. egemaps.functionals=true",
                                     param_hint="--set")
        out.setdefault(name, {})[field] = raw
    return out


def _add_common_settings(settings: dict[str, dict], names: list[str], options: dict) -> None:
    """Give each option that was set (``--weights``, ``--device``, ...) to every selected extractor
    whose config has that field (an explicit ``--set`` wins); an option no selected extractor
    takes is an error."""
    import dataclasses

    from blemore.extractors import get_extractor_class

    for key, value in options.items():
        if value is None:
            continue
        takers = [n for n in names if key in {f.name for f in dataclasses.fields(get_extractor_class(n).config_class)}]
        if not takers:
            flag = "--" + key.replace("_", "-")
            raise click.UsageError(f"{flag} applies to the pretrained encoders; none of {', '.join(names)} takes it")
        for n in takers:
            settings.setdefault(n, {}).setdefault(key, value)


def inventory(store: str | Path) -> dict:
    """The ``features --json`` inventory of a store root (or of one feature folder)."""
    from blemore.store import FeatureSource, StoreError, open_store

    try:
        sources = open_store(store)
    except StoreError:
        src = FeatureSource(store)
        sources = {src.name: src}
    out: dict = {"extractors": {}}
    for name, src in sources.items():
        status = src.status()
        counts = {k: 0 for k in ("ok", "failed", "no-face", "no-audio")}
        for st in status.values():
            counts[st] = counts.get(st, 0) + 1
        rows = src.manifest()
        ok = src.clip_ids
        if rows:
            frames = [rows[c].frames for c in ok if c in rows]
        else:
            import numpy as np

            frames = []
            for c in ok:
                if src.kind == "csv":
                    frames.append(len(src.load(c)))
                else:
                    a = np.load(src.path(c), mmap_mode="r")
                    frames.append(1 if a.ndim == 1 else a.shape[0])
        if counts.get("no-video", 0) == 0:
            counts.pop("no-video", None)
        try:
            dim = src.dim
        except StoreError:
            dim = None
        out["extractors"][name] = {
            "dim": dim,
            "clips": counts,
            "mean_frames": round(sum(frames) / len(frames), 2) if frames else 0.0,
        }
    return out


def register(group: click.Group) -> None:
    """Attach this module's commands to the main group."""

    @group.command("extract")
    @click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
    @click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
                  help="Store folder (one subfolder per extractor).")
    @click.option("--extractor", "-e", "extractor_names", default=None,
                  help="Comma-separated extractor names (default: face-mesh,face-expression,egemaps).")
    @click.option("--workers", "-j", type=click.IntRange(min=1), default=None,
                  help="Worker processes, or Ray workers with --engine ray (default: all cores / cluster CPUs).")
    @engine_options(workers=False)
    @click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None,
                  help="Frames per second to analyse (default: every frame).")
    @click.option("--retry-failed", is_flag=True, help="Retry clips recorded as failed.")
    @click.option("--overwrite", is_flag=True, help="Delete the selected extractors' existing features first.")
    @click.option("--set", "set_items", multiple=True, metavar="EXTRACTOR.SETTING=VALUE",
                  help="Override an extractor setting (repeatable), e.g. egemaps.functionals=true.")
    @click.option("--weights", default=None, metavar="ID|DIR|FILE",
                  help="Pretrained encoders: a Hugging Face id, a local model folder or a checkpoint file "
                       "(instead of the extractor's default weights).")
    @click.option("--device", default=None, metavar="auto|cpu|cuda|mps", help="Pretrained encoders: device.")
    @click.option("--batch-size", type=click.IntRange(min=1), default=None,
                  help="Pretrained encoders: frames / segments / audio chunks per forward pass.")
    @click.option("--layers", default=None, metavar="N|A-B|all",
                  help="Pretrained encoders: hidden state N, or the mean of states A..B (e.g. 6-12), "
                       "instead of the final output; 'all' stores every state once (a layer axis), read later "
                       "as --features STORE/NAME[layers=A-B].")
    @click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
    @click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
    def extract_cmd(inputs, out, extractor_names, workers, engine, address, gpus_per_worker, fps, retry_failed,
                    overwrite, set_items, weights, device, batch_size, layers, as_json, quiet):
        """Extract features of media files or folders (recursive) INPUT... into a store.

        Resumable: finished clips are skipped. Exits 0 when the run completed, even if some
        clips failed (they are listed); non-zero when nothing could run. With --engine ray the
        clips run on a Ray cluster (this process reads the files and writes the store).
        """
        from blemore.extract import DEFAULT_EXTRACTORS, extract

        check_engine_options(engine, address, gpus_per_worker)

        names = [s.strip() for s in extractor_names.split(",") if s.strip()] if extractor_names else list(DEFAULT_EXTRACTORS)
        settings = _parse_settings(set_items)
        _add_common_settings(settings, names, {"weights": weights, "device": device, "batch_size": batch_size,
                                               "layers": layers})
        summary = extract(list(inputs), out, names, workers=workers, fps=fps, retry_failed=retry_failed,
                          overwrite=overwrite, progress=not quiet, settings=settings, engine=engine,
                          address=address, gpus_per_worker=gpus_per_worker)
        click.echo(json.dumps(summary.to_dict(), indent=2) if as_json else summary.format())
        if summary.interrupted:
            sys.exit(130)
        if not summary.completed:
            click.echo("nothing could be extracted (every attempt failed)", err=True)
            sys.exit(1)

    @group.command("extractors")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def extractors_cmd(as_json):
        """List the registered extractors: modality, dimension, rate, weights, offline availability."""
        from blemore.extractors import extractor_names, get_extractor_class

        rows = []
        for name in extractor_names():
            cls = get_extractor_class(name)
            e = cls()
            try:
                dim = e.dim
            except Exception:  # e.g. a model config that must be downloaded to know its width
                dim = None
            rows.append({"name": name, "modality": cls.modality, "dim": dim, "rate": e.rate,
                         "default_weights": cls.default_weights, "available_offline": bool(cls.weights_available()),
                         "description": cls.description})
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        click.echo(f"{'name':<18} {'modality':<8} {'dim':>5} {'rate':>6}  {'offline':<7}  weights")
        for r in rows:
            rate = "-" if r["rate"] is None else f"{r['rate']:g}"
            dim = "?" if r["dim"] is None else str(r["dim"])
            click.echo(f"{r['name']:<18} {r['modality']:<8} {dim:>5} {rate:>6}  "
                       f"{'yes' if r['available_offline'] else 'no':<7}  {r['default_weights'] or '(in package)'}")

    @group.command("features")
    @click.argument("store", type=click.Path(exists=True, file_okay=False, path_type=Path))
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def features_cmd(store, as_json):
        """Inventory of a feature store (or of one feature folder)."""
        inv = inventory(store)
        if as_json:
            click.echo(json.dumps(inv, indent=2))
            return
        if not inv["extractors"]:
            click.echo(f"{store}: no feature folders")
            return
        click.echo(f"{'features':<22} {'dim':>6} {'ok':>6} {'failed':>6} {'no-face':>7} {'no-audio':>8} "
                   f"{'no-video':>8} {'frames/clip':>11}")
        for name, d in inv["extractors"].items():
            c = d["clips"]
            click.echo(f"{name:<22} {d['dim'] if d['dim'] is not None else '?':>6} {c['ok']:>6} {c['failed']:>6} "
                       f"{c['no-face']:>7} {c['no-audio']:>8} {c.get('no-video', 0):>8} {d['mean_frames']:>11.1f}")

    @group.command("import-features")
    @click.argument("src_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
    @click.option("--store", required=True, type=click.Path(file_okay=False, path_type=Path), help="Store folder.")
    @click.option("--name", required=True, help="Name of the feature folder to create, e.g. WavLM_large.")
    @click.option("--modality", type=click.Choice(["face", "video", "audio", "audiovisual"]), default=None)
    @click.option("--overwrite", is_flag=True, help="Replace an existing folder of that name.")
    def import_cmd(src_dir, store, name, modality, overwrite):
        """Bring a pre-extracted feature folder (per-clip .npy or .csv) into a store."""
        from blemore.store import import_features

        src = import_features(src_dir, store, name, modality=modality, overwrite=overwrite, progress=True)
        st = src.status()
        bad = sorted(c for c, s in st.items() if s == "failed")
        click.echo(f"{name}: {len(src.clip_ids)} clips, dim {src.dim} -> {src.root}")
        for c in bad[:20]:
            click.echo(f"  failed: {c}: {src.manifest()[c].error}")
        if len(bad) > 20:
            click.echo(f"  ... and {len(bad) - 20} more failed (see {src.root / 'manifest.csv'})")
        if not src.clip_ids:
            from blemore.cli._errors import UserError

            raise UserError(f"no clip of {src_dir} could be imported ({len(bad)} failed)")
