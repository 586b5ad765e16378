"""CLI commands for the challenge's files: ``score``, ``decode``, ``calibrate``, ``submit``.

Each command is a thin layer over :mod:`blemore.metrics`, :mod:`blemore.decode`,
:mod:`blemore.dataset` and :mod:`blemore.submission`: read the inputs, call one library
function, print a human-readable summary (or one JSON object with ``--json``). Errors go
through the CLI's one adapter (:mod:`blemore.cli._errors`), never tracebacks.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

import click
import numpy as np

from blemore.cli._errors import UserError

# -- shared helpers ------------------------------------------------------------------------


def _load_table(metadata: Sequence[str]):
    """One clip table from zero or more metadata CSVs (None when none)."""
    if not metadata:
        return None
    from blemore.dataset import concat_tables, load_metadata

    return concat_tables([load_metadata(m) for m in metadata])


def _emit_json(obj: dict) -> None:
    click.echo(json.dumps(obj, indent=2))


def _fmt_rows(rows: Sequence[tuple[str, Any]]) -> str:
    w = max(len(k) for k, _ in rows)
    out = []
    for k, v in rows:
        v = f"{v:.4f}" if isinstance(v, float) else str(v)
        out.append(f"{k:<{w}}  {v}")
    return "\n".join(out)


def _parse_floats(text: str | None, name: str) -> np.ndarray | None:
    if text is None:
        return None
    try:
        vals = [float(x) for x in text.replace(" ", "").split(",") if x != ""]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {text!r}", param_hint=name) from None
    if not vals:
        raise click.BadParameter("needs at least one value", param_hint=name)
    return np.array(vals, dtype=np.float64)


_metadata_option = click.option(
    "--metadata", "-m", multiple=True, type=click.Path(exists=True, dir_okay=False),
    help="Metadata CSV(s) (train_metadata.csv / test_metadata.csv) giving labels, e.g. for anonymised "
         "test ids; repeatable. Without it, labels come from the clip ids.",
)


# -- score -----------------------------------------------------------------------------------
@click.command("score")
@click.argument("predictions", type=click.Path(exists=True, dir_okay=False))
@_metadata_option
@click.option("--fold", type=int, default=None, help="Only the metadata clips of this fold count as labelled.")
@click.option("--allow-partial", is_flag=True,
              help="Score the clips that have both a prediction and a label, and say so, instead of failing.")
@click.option("--breakdown", is_flag=True, help="Also print per-emotion and per-salience-configuration results.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def score_cmd(predictions: str, metadata: tuple[str, ...], fold: int | None, allow_partial: bool,
              breakdown: bool, as_json: bool) -> None:
    """Score a challenge predictions JSON: ACC_presence and ACC_salience.

    PREDICTIONS is {"predictions": {clip: [{"emotion", "salience"}, ...]}} (the top-level key is
    optional). Without --metadata every labelled clip named in the file is scored; with it, every
    labelled clip of the metadata must be predicted (unless --allow-partial).
    """
    from blemore.dataset import labels_for_clips, truth_from_table
    from blemore.labels import clip_id_from_path
    from blemore.metrics import per_configuration, per_emotion, score_predictions
    from blemore.submission import load_predictions

    if fold is not None and not metadata:
        raise click.BadParameter("--fold needs --metadata", param_hint="--fold")
    preds = load_predictions(predictions)
    table = _load_table(metadata)
    labels, unlabelled = labels_for_clips(preds.keys(), table)
    if table is None:
        truth = labels
    else:
        scored = table if fold is None else table[table["fold"] == fold]
        if len(scored) == 0:
            raise UserError(f"no metadata clip is in fold {fold}")
        truth = truth_from_table(scored)
        # the metadata is the truth: a predicted clip outside it is never scored (not even when its
        # id carries a label), and it is an error unless --allow-partial
        in_table = set(table["clip_id"])
        outside = [str(k) for k in preds if clip_id_from_path(str(k)) not in in_table]
        if outside and not allow_partial:
            raise UserError(
                f"{len(outside)} predicted clip(s) are not in the metadata ({', '.join(metadata)}): "
                + ", ".join(outside[:10]) + (f", ... ({len(outside) - 10} more)" if len(outside) > 10 else "")
                + "; pass --allow-partial to score only the metadata's clips")
        unlabelled = [c for c in unlabelled if clip_id_from_path(str(c)) in in_table]
    if unlabelled and not allow_partial:
        hint = " (anonymised test ids need --metadata with labels)" if table is None else ""
        raise UserError(
            f"{len(unlabelled)} predicted clip(s) have no label{hint}: " + ", ".join(unlabelled[:10])
            + (f", ... ({len(unlabelled) - 10} more)" if len(unlabelled) > 10 else "")
        )
    res = score_predictions(preds, truth, allow_partial=allow_partial)
    out = res.as_dict()
    if res.partial:
        out["missing"], out["unknown"] = res.missing, res.unknown
    if breakdown:
        out["per_emotion"] = per_emotion(res.pred_mask, res.true_target)
        out["per_configuration"] = per_configuration(res.pred_mask, res.pred_target, res.true_target)
    if as_json:
        _emit_json(out)
        return
    src = "metadata" if table is not None else "clip ids"
    click.echo(f"Scored {res.n_clips} clips ({res.n_blends} blends), labels from {src}")
    if res.partial:
        click.echo(f"PARTIAL: left out {len(res.missing)} labelled clip(s) without prediction and "
                   f"{len(res.unknown)} predicted clip(s) without label")
    click.echo(_fmt_rows([("ACC_presence", res.acc_presence), ("ACC_salience", res.acc_salience)]))
    if breakdown:
        click.echo("\nper emotion (presence as multi-label)")
        click.echo(f"  {'emotion':<8}{'support':>8}{'prec':>8}{'recall':>8}{'f1':>8}")
        for r in out["per_emotion"]:
            click.echo(f"  {r['emotion']:<8}{r['support']:>8}{r['precision']:>8.3f}{r['recall']:>8.3f}{r['f1']:>8.3f}")
        conf = out["per_configuration"]
        click.echo("\nblend clips: true ratio (canonical pair order) vs prediction")
        click.echo("  " + f"{'true':<8}" + "".join(f"{c:>12}" for c in conf["cols"]))
        for name, row in zip(conf["rows"], conf["counts"]):
            click.echo("  " + f"{name:<8}" + "".join(f"{v:>12}" for v in row))


# -- decode ----------------------------------------------------------------------------------
@click.command("decode")
@click.argument("probs", type=click.Path(exists=True, dir_okay=False))
@click.option("--alpha", type=float, required=True, help="Presence threshold.")
@click.option("--beta", type=float, required=True, help="Salience threshold (|p1 - p2| <= beta gives 50/50).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), required=True,
              help="Predictions JSON to write ('-' for standard output).")
def decode_cmd(probs: str, alpha: float, beta: float, output: str) -> None:
    """Decode a probability CSV into a challenge predictions JSON.

    PROBS has a 'filename' column and one column per emotion code (ang, disg, fea, hap, sad,
    neu). Keys of the output are the file names as written in PROBS.
    """
    from blemore.decode import decode_to_predictions, load_probabilities
    from blemore.submission import write_predictions

    names, p = load_probabilities(probs)
    preds = decode_to_predictions(names, p, alpha, beta)
    if output == "-":
        _emit_json({"predictions": preds})
        return
    write_predictions(preds, output)
    n_blend = sum(len(v) == 2 for v in preds.values())
    click.echo(f"Wrote {len(preds)} predictions ({n_blend} blends) to {output} (alpha={alpha:g}, beta={beta:g})")


# -- calibrate -------------------------------------------------------------------------------
@click.command("calibrate")
@click.argument("probs", type=click.Path(exists=True, dir_okay=False))
@_metadata_option
@click.option("--grid-size", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Values per threshold, evenly spaced over [--grid-min, --grid-max] (the paper: 20).")
@click.option("--grid-min", type=float, default=0.05, show_default=True)
@click.option("--grid-max", type=float, default=0.95, show_default=True)
@click.option("--alphas", help="Explicit alpha values, comma-separated (overrides the grid options).")
@click.option("--betas", help="Explicit beta values, comma-separated (overrides the grid options).")
@click.option("--weights", type=(float, float), default=(0.5, 0.5), show_default=True,
              metavar="W_PRESENCE W_SALIENCE", help="Weights of the composite score.")
@click.option("-o", "--predictions", "predictions_out", type=click.Path(dir_okay=False),
              help="Also write the predictions decoded at the best pair to this JSON.")
@click.option("--full-grid", is_flag=True, help="With --json, include the whole score grid.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def calibrate_cmd(probs: str, metadata: tuple[str, ...], grid_size: int, grid_min: float, grid_max: float,
                  alphas: str | None, betas: str | None, weights: tuple[float, float],
                  predictions_out: str | None, full_grid: bool, as_json: bool) -> None:
    """Grid-search the decoding thresholds (alpha, beta) on labelled probabilities.

    Maximises W_PRESENCE * ACC_presence + W_SALIENCE * ACC_salience (ties: first pair in
    alpha-major order) and reports the best pair, its scores and the best presence-only and
    salience-only scores over the grid. Labels come from the clip ids in PROBS or --metadata.
    """
    from blemore.dataset import labels_for_clips
    from blemore.decode import calibrate, decode_to_predictions, load_probabilities
    from blemore.labels import clip_id_from_path
    from blemore.submission import write_predictions

    names, p = load_probabilities(probs)
    if not names:
        raise UserError(f"{probs}: no rows")
    labels, unlabelled = labels_for_clips(names, _load_table(metadata))
    if unlabelled:
        hint = "" if metadata else " (anonymised test ids need --metadata with labels)"
        raise UserError(
            f"{len(unlabelled)} clip(s) in {probs} have no label{hint}: " + ", ".join(unlabelled[:10])
            + (f", ... ({len(unlabelled) - 10} more)" if len(unlabelled) > 10 else "")
        )
    grid = np.linspace(grid_min, grid_max, grid_size)
    a = _parse_floats(alphas, "--alphas")
    b = _parse_floats(betas, "--betas")
    a = grid if a is None else a
    b = grid if b is None else b
    true_target = np.array([labels[clip_id_from_path(n)].target_index() for n in names], dtype=np.int64)
    cal = calibrate(p, true_target, alphas=a, betas=b, weights=weights)
    n_blends = int((true_target >= 6).sum())
    if predictions_out:
        write_predictions(decode_to_predictions(names, p, cal.alpha, cal.beta), predictions_out)
    out = cal.as_dict(grid=full_grid)
    out.update(n_clips=len(names), n_blends=n_blends, grid=[len(a), len(b)], weights=list(weights))
    if as_json:
        _emit_json(out)
        return
    click.echo(f"Calibrated on {len(names)} clips ({n_blends} blends), grid {len(a)} x {len(b)}, "
               f"score = {weights[0]:g} * presence + {weights[1]:g} * salience")
    click.echo(_fmt_rows([
        ("alpha", cal.alpha), ("beta", cal.beta), ("acc_presence", cal.acc_presence),
        ("acc_salience", cal.acc_salience), ("score", cal.score),
        ("presence_only", cal.presence_only), ("salience_only", cal.salience_only),
    ]))
    if predictions_out:
        click.echo(f"Wrote predictions at the best pair to {predictions_out}")


# -- submit ----------------------------------------------------------------------------------
@click.command("submit")
@click.argument("predictions", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="The zip to write.")
@click.option("--template", type=click.Path(exists=True, dir_okay=False),
              help="The official submission_template.json (default: the copy shipped with blemore).")
def submit_cmd(predictions: str, output: str, template: str | None) -> None:
    """Validate a predictions JSON against the official template and write the CodaBench zip.

    Keys may be clip ids or file names (test_0001, test_0001.mov); they are written as
    test_0001.mov. Nothing is written when a problem is found; every problem is listed.
    """
    from blemore.submission import load_predictions, make_submission, validate_submission, write_submission

    preds = load_predictions(predictions)
    obj = make_submission(preds)
    problems = validate_submission(obj, template)
    if problems:
        lines = problems[:40] + ([f"... and {len(problems) - 40} more"] if len(problems) > 40 else [])
        raise UserError(
            f"{predictions} is not a valid submission ({len(problems)} problem(s)); nothing written:\n  "
            + "\n  ".join(lines)
        )
    write_submission(obj, output, template, validate=False)
    n_blend = sum(len(v) == 2 for v in obj["predictions"].values())
    click.echo(f"Wrote {output}: {len(obj['predictions'])} clips ({n_blend} blends), valid against the template")


def register(group: click.Group) -> None:
    """Attach this module's commands to the main group."""
    for cmd in (score_cmd, decode_cmd, calibrate_cmd, submit_cmd):
        group.add_command(cmd)
