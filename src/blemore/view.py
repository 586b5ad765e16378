"""``blemore view``: one self-contained static HTML file for runs, ablations and predictions.

:func:`render_view` takes paths and returns the HTML text; :func:`write_view` writes it.
Each path is one of:

- a run folder (``results.json``, ``predictions/*.csv``, ``plots/*.png``): headline table
  (validation mean ± std, test, trivial baselines), per-fold table, confusion matrix over the
  composite labels (clicking a cell lists its clips), per-configuration errors and the plots
  (inlined as base64 PNG);
- an ablation folder (``ablation.json``): its rows as a table;
- several run folders: a comparison table first, then one section per run;
- a predictions file as ``blemore predict -o OUT.json`` writes it: ``OUT.csv`` (or ``OUT.json``)
  with the timeline file beside it, ``OUT.timelines.json`` (:func:`write_timelines`), which
  records per clip the media path, its duration and the per-emotion salience over time. Each
  clip gets a player (HTML5 video/audio, referenced by a relative path or copied with
  ``copy_media``), the timeline drawn beside it (inline SVG) with a cursor that follows playback,
  predicted vs true label (when the clip id carries one), and filters by actor, configuration
  and right/wrong. Cards are rendered lazily (pages of 40 clips, an IntersectionObserver loads
  more), so thousands of clips stay responsive.

The file needs no server and no network: styles, script (vanilla JS) and data (inline JSON)
are in it; media stays beside it. Every table is rendered as HTML in the file, so it reads
without JavaScript. Every text from the data is escaped (HTML text, attributes, URLs, and JSON
inside ``<script>``), so clip ids may contain any character.
"""
from __future__ import annotations

import base64
import html
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import quote

import numpy as np

from blemore._io import atomic_write_bytes
from blemore.errors import BlemoreError
from blemore.labels import EMOTION_NAMES, EMOTIONS, INVALID, TARGET_NAMES, parse_clip_id
from blemore.media import MediaError, probe
from blemore.report import compare_runs, json_default
from blemore.media import AUDIO_EXTENSIONS

__all__ = ["render_view", "write_view", "write_timelines", "thin_timeline", "bundle_timeline_records", "read_timelines", "timelines_path", "ViewError",
           "TIMELINES_FORMAT"]

TIMELINES_FORMAT = "blemore-timelines"
TIMELINES_VERSION = 1
PAGE = 40  # clip cards rendered per page
COLOURS = {"ang": "#d62728", "disg": "#8c564b", "fea": "#9467bd", "hap": "#ff7f0e", "sad": "#1f77b4",
           "neu": "#7f7f7f"}


class ViewError(BlemoreError, ValueError):
    """A path ``blemore view`` cannot show (lists every such path at once)."""


# ----------------------------------------------------------------------------- timelines file
def timelines_path(predictions: str | os.PathLike) -> Path:
    """``OUT.timelines.json`` beside ``OUT.json`` / ``OUT.csv``."""
    p = Path(predictions)
    return p.with_name(p.name.split(".", 1)[0] + ".timelines.json") if p.suffix else p.with_name(p.name + ".timelines.json")


def thin_timeline(times: np.ndarray, proba: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` rows: means over runs of ``ceil(W / max_points)`` consecutive
    rows (NaN rows, frames without a face, are skipped; a run of only NaN rows stays NaN)."""
    import warnings

    n = len(times)
    if n <= max_points:
        return times, proba
    k = -(-n // max_points)
    m = -(-n // k)
    pad = m * k - n
    tp = np.concatenate([times, np.full(pad, np.nan)]).reshape(m, k)
    pp = np.concatenate([proba, np.full((pad, proba.shape[1]), np.nan)]).reshape(m, k, proba.shape[1])
    pp = np.where(np.isfinite(pp).all(axis=2, keepdims=True), pp, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN runs
        return np.nanmean(tp, axis=1), np.nanmean(pp, axis=1)


def write_timelines(path: str | os.PathLike, clips: Sequence[Mapping[str, Any]], *, model: str | None = None,
                    notice: str | None = None, max_points: int = 400) -> Path:
    """Write the timeline file read by :func:`render_view`.

    Each clip is a mapping with ``clip_id``, ``label`` (predicted, e.g. ``"hap+sad 70/30"``),
    ``proba`` (6 clip probabilities), optionally ``media`` (a file path; stored relative to the
    timeline file's folder when below it), ``duration`` (s), ``times`` (W,) and ``timeline``
    (W, 6 per-emotion salience in ``EMOTIONS`` order). Timelines longer than ``max_points``
    are thinned by :func:`thin_timeline` (a 30 s clip at 25 frames/s keeps 375 points).
    """
    path = Path(path)
    base = path.parent.resolve()
    out = []
    for c in clips:
        rec: dict[str, Any] = {"clip_id": str(c["clip_id"]), "label": str(c.get("label", "")),
                               "proba": [round(float(v), 5) for v in np.asarray(c.get("proba", [np.nan] * 6)).ravel()]}
        if c.get("media") is not None:
            m = Path(c["media"]).resolve()
            try:
                rec["media"] = m.relative_to(base).as_posix()
            except ValueError:
                rec["media"] = os.path.relpath(m, base) if os.path.splitdrive(str(m))[0] == os.path.splitdrive(str(base))[0] \
                    else str(m)
        if c.get("times") is not None:
            t = np.asarray(c["times"], dtype=float).ravel()
            p = np.asarray(c["timeline"], dtype=float).reshape(len(t), len(EMOTIONS))
            t, p = thin_timeline(t, p, max_points)
            rec["times"] = np.round(t, 4).tolist()
            q = np.round(p, 4).astype(object)
            q[~np.isfinite(p)] = None  # JSON null: a frame without a face
            rec["timeline"] = q.tolist()
        if c.get("duration") is not None and np.isfinite(c["duration"]):
            rec["duration"] = round(float(c["duration"]), 4)
        out.append(rec)
    doc = {"format": TIMELINES_FORMAT, "version": TIMELINES_VERSION, "labels": list(EMOTIONS), "model": model,
           "notice": notice, "clips": out}
    atomic_write_bytes(path, (json.dumps(doc, allow_nan=False) + "\n").encode())
    return path


def read_timelines(path: str | os.PathLike) -> dict:
    """Read a timeline file; media paths become absolute."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ViewError(f"{p}: cannot read the timeline file ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != TIMELINES_FORMAT:
        raise ViewError(f"{p}: not a blemore timeline file (format {TIMELINES_FORMAT!r} expected)")
    if int(doc.get("version", 0)) > TIMELINES_VERSION:
        raise ViewError(f"{p}: timeline file version {doc['version']} is newer than this blemore; upgrade blemore")
    for c in doc["clips"]:
        if c.get("media"):
            m = Path(c["media"])
            c["media"] = str(m if m.is_absolute() else (p.parent / m).resolve())
    return doc


def bundle_timeline_records(model, pred, sources: Mapping[str, Any],
                            media: Mapping[str, str | os.PathLike] | None = None) -> list[dict]:
    """Timeline records (for :func:`write_timelines`) of every predicted clip of a
    :class:`~blemore.bundle.ModelBundle`: per-window probabilities from ``model.timeline`` on
    the clip's features in ``sources``, and the media path from ``media`` (clip id -> file).
    A clip whose timeline cannot be computed keeps its label, with a warning naming it."""
    import warnings

    rates = {n: getattr(sources[n], "rate", None) for n in model.source_names}
    labels = pred.labels()
    out = []
    for i, cid in enumerate(pred.clip_ids):
        rec: dict[str, Any] = {"clip_id": cid, "label": labels[i], "proba": pred.proba[i]}
        m = (media or {}).get(cid)
        if m is not None:
            rec["media"] = m
            try:
                rec["duration"] = probe(m).duration
            except MediaError:
                pass
        try:
            t, p = model.timeline({n: sources[n].load(cid) for n in model.source_names}, rates=rates)
            rec["times"], rec["timeline"] = t, p
        except (BlemoreError, KeyError, ValueError, OSError) as e:
            warnings.warn(f"{cid}: no timeline ({e})", stacklevel=2)
        out.append(rec)
    return out


# ----------------------------------------------------------------------------- helpers
def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _json_script(obj: Any, id_: str) -> str:
    """JSON inside ``<script type="application/json">``: no ``</script>``, no HTML-significant
    characters, no line separators that break JS parsers."""
    text = json.dumps(obj, allow_nan=False, default=json_default)
    for a, b in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(a, b)
    return f'<script type="application/json" id="{_e(id_)}">{text}</script>'


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, Mapping):
        if "mean" in v:
            return f"{float(v['mean']):.{digits}f} ± {float(v.get('std', 0.0)):.{digits}f}"
        return "-"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "-" if math.isnan(f) else f"{f:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "", raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw`` (then they are HTML already)."""
    cell = (lambda x: str(x)) if raw else _e
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{_e(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}"><figcaption>{_e(alt)}</figcaption></figure>'


def _target_name(t: int) -> str:
    return TARGET_NAMES[t] if 0 <= t < len(TARGET_NAMES) else "invalid"


def _clip_facts(clip_id: str) -> tuple[str | None, str | None]:
    """(actor, true label name) from a clip id, or None where the id carries none."""
    try:
        info = parse_clip_id(clip_id)
    except ValueError:
        return None, None
    return info.actor, (info.label.name() if info.label is not None else None)


def _configuration(label: str | None) -> str:
    """"single", "neutral" or the ratio ("50/50", "70/30", "30/70") of a label name."""
    if not label:
        return "unknown"
    if " " in label:
        return label.split(" ", 1)[1]
    return "neutral" if label == "neu" else "single"


# ----------------------------------------------------------------------------- run
def _read_csv(path: Path):
    import pandas as pd

    return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"clip_id": str, "actor": str})


def _confusion(df, key: str) -> tuple[str, dict]:
    """Server-rendered confusion table over the composite labels present, and the clip lists."""
    t = df["true_target"].astype(int).to_numpy()
    p = df["pred_target"].astype(int).to_numpy()
    rows = sorted(set(t.tolist()))
    cols = sorted(set(p.tolist()) | set(rows), key=lambda x: (x == INVALID, x))
    clips: dict[str, list] = {}
    counts: dict[tuple[int, int], int] = {}
    extra = [c for c in ("actor", "fold") if c in df.columns]
    for i, (a, b) in enumerate(zip(t, p)):
        counts[(a, b)] = counts.get((a, b), 0) + 1
        clips.setdefault(f"{a},{b}", []).append([str(df["clip_id"].iloc[i])] + [str(df[c].iloc[i]) for c in extra])
    head = "<th>true \\ predicted</th>" + "".join(f'<th class="rot"><span>{_e(_target_name(c))}</span></th>' for c in cols)
    body = []
    peak = max(counts.values()) if counts else 1
    for a in rows:
        cells = [f"<th>{_e(_target_name(a))}</th>"]
        for b in cols:
            n = counts.get((a, b), 0)
            if n:
                shade = int(255 - 175 * n / peak)
                style = f"background:rgb({shade},{shade},255)" if a != b else f"background:rgb({shade},255,{shade})"
                cells.append(f'<td class="cm" style="{style}" data-key="{_e(key)}" data-cell="{a},{b}" '
                             f'title="{_e(_target_name(a))} predicted as {_e(_target_name(b))}">{n}</td>')
            else:
                cells.append("<td></td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    n_ok = int((t == p).sum())
    table = (f'<p>{n_ok} of {len(t)} clips exactly right (diagonal). Click a cell to list its clips.</p>'
             f'<div class="scroll"><table class="confusion"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}'
             f'</tbody></table></div><div class="cmclips" id="cmclips-{_e(key)}"></div>')
    return table, {"columns": ["clip_id"] + extra, "cells": clips}


def _run_section(run_dir: Path, idx: int) -> tuple[str, dict]:
    res = json.loads((run_dir / "results.json").read_text())
    name = res.get("run") or run_dir.name
    data: dict[str, Any] = {}
    out = [f'<section class="run" id="run-{idx}"><h2>Run {_e(name)}</h2>',
           f'<p class="meta">features: {_e(" + ".join(res.get("features") or []))}; head: {_e(res.get("head"))}; '
           f'preset: {_e(res.get("preset"))}; selection: {_e(res.get("selection"))}; folder: <code>{_e(run_dir)}</code></p>']
    v = res.get("validation", {})
    test = res.get("test") or {}
    rows = [["model", _fmt(v.get("acc_presence")), _fmt(v.get("acc_salience")), _fmt(test.get("acc_presence")),
             _fmt(test.get("acc_salience"))]]
    for tname, what in (("single", "most frequent single emotion"), ("blend", "most frequent blend configuration")):
        tr = (res.get("trivial") or {}).get(tname)
        if tr:
            tt = tr.get("test") or {}
            rows.append([f"trivial: {what} ({tr.get('prediction', '')})", _fmt(tr.get("acc_presence")),
                         _fmt(tr.get("acc_salience")), _fmt(tt.get("acc_presence")), _fmt(tt.get("acc_salience"))])
    out.append("<h3>Headline</h3>" + _table(["", "validation presence", "validation salience", "test presence",
                                               "test salience"], rows, "headline"))
    folds = v.get("folds") or []
    if folds:
        frows = []
        for f in folds:
            params = f.get("params") or {}
            frows.append([f.get("fold"), f.get("n_clips"), f.get("n_blends"), _fmt(f.get("acc_presence")),
                          _fmt(f.get("acc_salience")), f.get("epoch", "-"),
                          ", ".join(f"{k}={_fmt(x)}" for k, x in params.items()) or "-",
                          _fmt(f.get("selection_score", f.get("score")))])
        out.append("<h3>Per fold</h3>" + _table(["fold", "clips", "blends", "presence", "salience", "epoch",
                                                  "decoder", "selection score"], frows, "folds"))
    for split, fname in (("validation", "validation.csv"), ("test", "test.csv")):
        f = run_dir / "predictions" / fname
        if not f.exists():
            continue
        df = _read_csv(f)
        if "true_target" not in df.columns or "pred_target" not in df.columns or df["true_target"].isna().any():
            continue
        key = f"r{idx}-{split}"
        table, cells = _confusion(df, key)
        data[key] = cells
        out.append(f"<h3>Confusion matrix ({_e(split)}, composite labels)</h3>{table}")
    pc = res.get("per_configuration")
    if pc and pc.get("rows"):
        prow = []
        for r, counts in zip(pc["rows"], pc["counts"]):
            n = sum(counts)
            ok = counts[pc["cols"].index(r)] if r in pc["cols"] else 0
            prow.append([r, *counts, n, _fmt(ok / n if n else None)])
        out.append("<h3>Per configuration (validation blends)</h3>"
                   + _table(["true \\ predicted", *pc["cols"], "n", "correct"], prow, "perconf"))
    plots = run_dir / "plots"
    for stem, what in (("selection", "selection score per epoch"), ("confusion", "confusion (validation)"),
                       ("confusion_test", "confusion (test)"), ("per_configuration", "per configuration"),
                       ("pca", "PCA of pooled features")):
        if (plots / f"{stem}.png").exists():
            out.append(_img(plots / f"{stem}.png", what))
    out.append("</section>")
    return "".join(out), data


def _comparison(run_dirs: Sequence[Path]) -> str:
    rows = compare_runs(run_dirs)
    body = [[f'<a href="#run-{i}">{_e(r["run"])}</a>', _e(r["features"]), _e(r["head"]), _e(r["selection"]),
             _e(_fmt(r["val_presence"])), _e(_fmt(r["val_salience"])), _e(_fmt(r["test_presence"])),
             _e(_fmt(r["test_salience"]))] for i, r in enumerate(rows)]
    return ("<section><h2>Comparison</h2>" + _table(["run", "features", "head", "selection", "val presence",
                                                      "val salience", "test presence", "test salience"], body,
                                                     "compare", raw=True) + "</section>")


def _ablation_section(folder: Path) -> str:
    doc = json.loads((folder / "ablation.json").read_text())
    rows = []
    for r in doc.get("rows", []):
        v, t = r.get("validation") or {}, r.get("test") or {}
        rows.append([r.get("key"), r.get("head_label"), r.get("fusion") or "-", r.get("actor_norm"),
                     _fmt(v.get("acc_presence")), _fmt(v.get("acc_salience")), _fmt(t.get("acc_presence")),
                     _fmt(t.get("acc_salience")), _fmt(r.get("seconds"), 1), r.get("run_dir") or "-"])
    winners = ", ".join(f"{k}: {w}" for k, w in (doc.get("winners") or {}).items())
    return (f'<section><h2>Ablation {_e(folder.name)}</h2><p class="meta">reference: {_e(doc.get("reference"))}; '
            f'selection: {_e(doc.get("selection"))}; winners: {_e(winners)}</p>'
            + _table(["key", "head", "fusion", "actor norm", "val presence", "val salience", "test presence",
                      "test salience", "seconds", "run folder"], rows, "ablation") + "</section>")


# ----------------------------------------------------------------------------- predictions
def _media_url(media: str | None, out_dir: Path, copy_dir: Path | None, used: set) -> tuple[str | None, str | None]:
    """(URL relative to the HTML file, kind "video"/"audio") for a media file that exists."""
    if not media:
        return None, None
    m = Path(media)
    if not m.is_file():
        return None, None
    kind = "audio" if m.suffix.lower() in AUDIO_EXTENSIONS else "video"
    if copy_dir is not None:
        name, k = m.name, 1
        while name in used:
            name, k = f"{m.stem}-{k}{m.suffix}", k + 1
        used.add(name)
        copy_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(m, copy_dir / name)
        m = copy_dir / name
    rel = os.path.relpath(m.resolve(), out_dir.resolve())
    return quote(Path(rel).as_posix(), safe="/"), kind


def _predictions_section(path: Path, idx: int, out_dir: Path, copy_dir: Path | None) -> tuple[str, dict]:
    tl_file = path if path.name.endswith(".timelines.json") else timelines_path(path)
    doc = read_timelines(tl_file) if tl_file.exists() else None
    table_rows: dict[str, dict] = {}
    csv = path.with_suffix(".csv") if path.suffix == ".json" and not path.name.endswith(".timelines.json") else path
    if csv.suffix == ".csv" and csv.exists():
        df = _read_csv(csv)
        if "clip_id" not in df.columns:
            raise ViewError(f"{csv}: no clip_id column (is it a table written by blemore predict -o?)")
        for r in df.to_dict("records"):
            table_rows[str(r["clip_id"])] = r
    if doc is None and not table_rows:
        raise ViewError(f"{path}: neither a predictions table nor a timeline file ({tl_file}) was found")
    clips: list[dict] = []
    by_id = {c["clip_id"]: c for c in (doc or {}).get("clips", [])}
    order = list(table_rows) + [c for c in by_id if c not in table_rows]
    used: set = set()
    missing_media = []
    for cid in order:
        c = by_id.get(cid, {})
        r = table_rows.get(cid, {})
        if c.get("label"):
            pred = str(c["label"])
        elif r.get("pred") is not None:
            pred = str(r["pred"])
        else:
            emos, sal = str(r.get("emotions") or ""), str(r.get("salience") or "")
            pred = f"{emos} {sal}" if "+" in emos and sal and sal != "nan" else emos
        actor, true = _clip_facts(cid)
        if r.get("true") and str(r.get("true")) != "nan":
            true = str(r["true"])
        proba = c.get("proba") or [r.get(f"p_{e}") for e in EMOTIONS]
        url, kind = _media_url(c.get("media"), out_dir, copy_dir, used)
        if c.get("media") and url is None:
            missing_media.append(cid)
        clips.append({"id": cid, "actor": actor or (str(r["actor"]) if r.get("actor") else "unknown"),
                      "pred": pred, "true": true, "conf": _configuration(true or pred),
                      "ok": None if true is None else (true == pred), "proba": proba,
                      "media": url, "kind": kind, "times": c.get("times"), "timeline": c.get("timeline"),
                      "duration": c.get("duration")})
    notice = (doc or {}).get("notice")
    known = [c for c in clips if c["ok"] is not None]
    out = [f'<section class="preds" id="preds-{idx}"><h2>Predictions {_e(path.name)}</h2>']
    if notice:
        out.append(f'<p class="notice">{_e(notice)}</p>')
    if doc and doc.get("model"):
        out.append(f'<p class="meta">model: {_e(doc["model"])}</p>')
    summ = f"{len(clips)} clips"
    if known:
        summ += f"; {sum(c['ok'] for c in known)} of {len(known)} with a label in their id predicted exactly right"
    if missing_media:
        summ += f"; {len(missing_media)} media file(s) not found: " + ", ".join(missing_media[:10])
    out.append(f"<p>{_e(summ)}</p>")
    actors = sorted({c["actor"] for c in clips})
    confs = sorted({c["conf"] for c in clips})
    key = f"p{idx}"

    def select(name: str, values: Sequence[str]) -> str:
        opts = '<option value="">all</option>' + "".join(f'<option value="{_e(v)}">{_e(v)}</option>' for v in values)
        return f'<label>{_e(name)} <select data-filter="{_e(name)}" data-key="{key}">{opts}</select></label>'

    out.append('<div class="filters">' + select("actor", actors) + select("configuration", confs)
               + select("result", ["right", "wrong", "unknown"]) + f' <span class="count" id="count-{key}"></span></div>')
    out.append(f'<div class="cards" id="cards-{key}" data-key="{key}"><noscript>The clip players need JavaScript; '
               f'the table below lists every prediction.</noscript></div><div class="sentinel" id="sentinel-{key}"></div>')
    trows = []
    for c in clips:
        trows.append([c["id"], c["actor"], c["true"] or "-", c["pred"],
                      "-" if c["ok"] is None else ("right" if c["ok"] else "wrong"),
                      *[_fmt(p, 3) for p in c["proba"]], "yes" if c["media"] else "-"])
    out.append(f'<details open><summary>All predictions ({len(clips)})</summary>'
               + _table(["clip", "actor", "true", "predicted", "result", *[f"p_{e}" for e in EMOTIONS], "media"],
                        trows, "predtable") + "</details></section>")
    return "".join(out), {key: {"clips": clips, "labels": list(EMOTIONS), "page": PAGE}}


# ----------------------------------------------------------------------------- page
_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px;overflow-anchor:none}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
.confusion td{min-width:1.6em;text-align:center;cursor:pointer} .confusion td:empty{cursor:default}
.confusion th.rot{height:9em;white-space:nowrap;vertical-align:bottom}
.confusion th.rot span{writing-mode:vertical-rl;transform:rotate(180deg)}
.scroll{overflow:auto;max-width:100%} .meta{color:#555;font-size:13px}
.notice{background:#fff3cd;border:1px solid #e0c36a;padding:.5em;font-weight:bold}
figure{display:inline-block;margin:.5em} figure img{max-width:640px}
.card{display:flex;gap:12px;align-items:flex-start;border:1px solid #ddd;padding:8px;margin:6px 0}
.card video{width:320px;background:#000} .card audio{width:320px}
.card.wrong{border-left:6px solid #d62728} .card.right{border-left:6px solid #2ca02c}
.card h4{margin:0 0 4px 0;font-size:14px;word-break:break-all} svg.tl{background:#fafafa;border:1px solid #ddd}
.filters{margin:.5em 0} .filters label{margin-right:1em} .legend span{margin-right:8px;font-size:12px}
"""

_JS = r"""
(function(){
"use strict";
var SVGNS="http://www.w3.org/2000/svg";
var COLOURS=%COLOURS%;
var W=520,H=150,PL=30,PR=8,PT=8,PB=18;
function data(id){var el=document.getElementById(id);return el?JSON.parse(el.textContent):{};}
var DATA=data("blemore-data");
function el(tag,attrs,text){var e=document.createElement(tag);for(var k in attrs){e.setAttribute(k,attrs[k]);}
  if(text!==undefined){e.textContent=text;}return e;}
function sel(tag,attrs){var e=document.createElementNS(SVGNS,tag);for(var k in attrs){e.setAttribute(k,attrs[k]);}return e;}
// confusion cells: list their clips
document.addEventListener("click",function(ev){
  var td=ev.target.closest("td.cm");if(!td){return;}
  var d=DATA[td.getAttribute("data-key")];if(!d){return;}
  var box=document.getElementById("cmclips-"+td.getAttribute("data-key"));
  var rows=d.cells[td.getAttribute("data-cell")]||[];
  box.textContent="";box.appendChild(el("h4",{},td.getAttribute("title")+" ("+rows.length+" clips)"));
  var t=el("table",{"class":"cmlist"}),tr=el("tr");
  d.columns.forEach(function(c){tr.appendChild(el("th",{},c));});t.appendChild(tr);
  rows.forEach(function(r){var tr=el("tr");r.forEach(function(v){tr.appendChild(el("td",{},v));});t.appendChild(tr);});
  box.appendChild(t);
});
function span(c){var d=c.duration;if(!d&&c.times&&c.times.length){d=c.times[c.times.length-1]+(c.times.length>1?c.times[1]-c.times[0]:0)/2;}return d||1;}
function xOf(t,dur){return PL+(W-PL-PR)*Math.max(0,Math.min(1,t/dur));}
function timeline(c){
  var svg=sel("svg",{"class":"tl",width:W,height:H,viewBox:"0 0 "+W+" "+H});
  var dur=span(c);
  svg.appendChild(sel("line",{x1:PL,y1:H-PB,x2:W-PR,y2:H-PB,stroke:"#999"}));
  svg.appendChild(sel("line",{x1:PL,y1:PT,x2:PL,y2:H-PB,stroke:"#999"}));
  [0,0.5,1].forEach(function(v){var y=H-PB-(H-PB-PT)*v;var t=sel("text",{x:2,y:y+4,"font-size":10});t.textContent=v.toFixed(1);svg.appendChild(t);});
  var tx=sel("text",{x:W-PR-40,y:H-4,"font-size":10});tx.textContent=dur.toFixed(2)+" s";svg.appendChild(tx);
  if(c.times&&c.timeline){
    DATA_LABELS.forEach(function(lab,j){
      var pts=[];for(var i=0;i<c.times.length;i++){var v=c.timeline[i][j];if(v===null){continue;}
        pts.push(xOf(c.times[i],dur).toFixed(1)+","+(H-PB-(H-PB-PT)*v).toFixed(1));}
      if(pts.length===1){pts.push(pts[0]);}
      svg.appendChild(sel("polyline",{points:pts.join(" "),fill:"none",stroke:COLOURS[lab],"stroke-width":1.5,"data-emotion":lab}));
    });
  }else{var t=sel("text",{x:PL+10,y:H/2,"font-size":12});t.textContent="no timeline recorded";svg.appendChild(t);}
  var cur=sel("line",{"class":"cursor",x1:PL,y1:PT,x2:PL,y2:H-PB,stroke:"#000","stroke-width":1.5,"data-t":"0"});
  svg.appendChild(cur);svg.__cursor=cur;svg.__dur=dur;return svg;
}
function moveCursor(svg,t){var x=xOf(t,svg.__dur).toFixed(2);var c=svg.__cursor;c.setAttribute("x1",x);c.setAttribute("x2",x);c.setAttribute("data-t",t.toFixed(3));}
function follow(media,svg){
  var raf=null;
  function tick(){moveCursor(svg,media.currentTime);raf=media.paused||media.ended?null:requestAnimationFrame(tick);}
  media.addEventListener("timeupdate",function(){moveCursor(svg,media.currentTime);});
  media.addEventListener("seeked",function(){moveCursor(svg,media.currentTime);});
  media.addEventListener("play",function(){if(raf===null){raf=requestAnimationFrame(tick);}});
}
var DATA_LABELS=[];
function card(c){
  var div=el("div",{"class":"card "+(c.ok===null?"unknown":(c.ok?"right":"wrong")),"data-clip":c.id});
  var left=el("div");
  if(c.media){var m=el(c.kind==="audio"?"audio":"video",{controls:"",preload:"metadata",src:c.media});m.muted=true;left.appendChild(m);}
  else{left.appendChild(el("p",{},"no media"));}
  var right=el("div");
  right.appendChild(el("h4",{},c.id));
  right.appendChild(el("p",{},"predicted: "+c.pred+" | true: "+(c.true===null?"unknown":c.true)+" | actor: "+c.actor));
  var svg=timeline(c);right.appendChild(svg);
  var leg=el("div",{"class":"legend"});DATA_LABELS.forEach(function(l){var s=el("span",{style:"color:"+COLOURS[l]},"\u25A0 "+l);leg.appendChild(s);});
  right.appendChild(leg);
  div.appendChild(left);div.appendChild(right);
  var media=left.querySelector("video,audio");if(media){follow(media,svg);}
  return div;
}
function setup(key){
  var d=DATA[key];DATA_LABELS=d.labels;
  var box=document.getElementById("cards-"+key),sent=document.getElementById("sentinel-"+key);
  var filters={actor:"",configuration:"",result:""},shown=[],n=0;
  function pass(c){return (!filters.actor||c.actor===filters.actor)&&(!filters.configuration||c.conf===filters.configuration)&&
    (!filters.result||(filters.result==="unknown"?c.ok===null:(c.ok===(filters.result==="right"))));}
  function more(){var end=Math.min(n+d.page,shown.length);for(;n<end;n++){box.appendChild(card(shown[n]));}
    document.getElementById("count-"+key).textContent=n+" of "+shown.length+" clips shown";}
  function reset(){box.textContent="";n=0;shown=d.clips.filter(pass);more();}
  document.querySelectorAll('select[data-key="'+key+'"]').forEach(function(s){
    s.addEventListener("change",function(){filters[s.getAttribute("data-filter")]=s.value;reset();});});
  function fill(){if(n<shown.length&&sent.getBoundingClientRect().top<window.innerHeight+200){more();requestAnimationFrame(fill);}}
  if("IntersectionObserver" in window){new IntersectionObserver(function(es){if(es[es.length-1].isIntersecting){fill();}}).observe(sent);}
  else{var b=el("button",{},"more");b.addEventListener("click",more);sent.appendChild(b);}
  reset();
}
document.querySelectorAll(".cards").forEach(function(b){setup(b.getAttribute("data-key"));});
window.blemoreView={moveCursor:moveCursor};
})();
"""


def render_view(paths: Sequence[str | os.PathLike], *, output: str | os.PathLike = "report.html",
                copy_media: bool = False, title: str | None = None) -> str:
    """The HTML text for ``paths`` (run folders, ablation folders, predictions files), with
    media links relative to ``output``'s folder (copied to ``<output stem>_media/`` when
    ``copy_media``)."""
    out = Path(output)
    out_dir = out.parent if str(out.parent) else Path(".")
    runs, ablations, preds, problems = [], [], [], []
    for raw in paths:
        p = Path(raw)
        if p.is_dir() and (p / "results.json").exists():
            runs.append(p)
        elif p.is_dir() and (p / "ablation.json").exists():
            ablations.append(p)
        elif p.is_file() and p.name == "results.json":
            runs.append(p.parent)
        elif p.is_file() and p.suffix in (".csv", ".json"):
            preds.append(p)
        elif not p.exists():
            problems.append(f"{p}: does not exist")
        else:
            problems.append(f"{p}: not a run folder (results.json), an ablation folder (ablation.json) "
                            "or a predictions file (.csv / .json written by blemore predict -o)")
    if problems:
        raise ViewError("cannot view:\n  " + "\n  ".join(problems))
    copy_dir = out_dir / f"{out.stem}_media" if copy_media else None
    sections: list[str] = []
    data: dict[str, Any] = {}
    if len(runs) > 1:
        sections.append(_comparison(runs))
    for a in ablations:
        sections.append(_ablation_section(a))
    for i, r in enumerate(runs):
        html_, d = _run_section(r, i)
        sections.append(html_)
        data.update(d)
    for i, p in enumerate(preds):
        html_, d = _predictions_section(p, i, out_dir, copy_dir)
        sections.append(html_)
        data.update(d)
    title = title or "blemore: " + ", ".join(Path(p).name for p in paths)
    legend = ", ".join(f"{k} = {v}" for k, v in EMOTION_NAMES.items())
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width\"><title>{_e(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1><p class=\"meta\">{_e(legend)}</p>"
            + "".join(sections) + _json_script(data, "blemore-data")
            + "<script>" + _JS.replace("%COLOURS%", json.dumps(COLOURS)) + "</script></body></html>\n")


def write_view(paths: Sequence[str | os.PathLike], output: str | os.PathLike = "report.html", *,
               copy_media: bool = False, title: str | None = None) -> Path:
    """Render and write the HTML file atomically; returns its path."""
    text = render_view(paths, output=output, copy_media=copy_media, title=title)
    atomic_write_bytes(Path(output), text.encode("utf-8"))
    return Path(output)
