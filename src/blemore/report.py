"""Run folders: results.json, results.md, predictions, plots; and side-by-side reports.

:func:`write_run` writes, under the run folder::

    config.json                  the resolved configuration (preset values included)
    results.json                 validation {acc_presence, acc_salience: {mean, std, folds}},
                                 test (when labelled), trivial {single, blend}, per fold,
                                 per configuration, per class, timing
    results.md                   tables shaped like the paper's Tables 2 (validation) and 3 (test)
    predictions/validation.csv   per clip: fold, epoch, true and predicted label, probabilities
    predictions/test.csv         the same for test clips (when there are test clips)
    submission.json / .zip       challenge predictions for the test clips (when there are any)
    plots/confusion.png          confusion matrix over the 36 composite labels (validation)
    plots/confusion_test.png     the same on test (when labelled)
    plots/per_configuration.png  blends: true ratio vs predicted ratio / wrong pair / single
    plots/pca.png                PCA of pooled features, raw and per-actor normalised, by emotion
    plots/selection.png          selection score per epoch (the curve the epoch was chosen on)

:func:`compare_runs` reads several run folders (``blemore report RUN_DIR...``) into one table.
All files are written atomically.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from blemore._io import atomic_write_bytes as _atomic_write
from blemore.heads.training import TrainSpec
from blemore.labels import EMOTION_NAMES, EMOTIONS, TARGET_NAMES
from blemore.metrics import CONFUSION_COLUMNS, confusion_matrix
from blemore.normalise import actor_standardise
from blemore.submission import write_predictions, write_submission

__all__ = ["write_run", "compare_runs", "format_compare", "results_markdown", "load_results", "fmt_pm",
           "plot_confusion", "plot_pca", "plot_timeline", "plot_per_configuration", "per_actor_normalise"]






def json_default(o: Any) -> Any:
    """``json.dumps(default=...)`` for results: numpy scalars and arrays as Python values, any
    other object as its ``str``."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def fmt_pm(d: Mapping | float | None, digits: int = 3) -> str:
    """``0.345 ± 0.035`` from ``{mean, std}``, or a plain number."""
    if d is None:
        return "-"
    if isinstance(d, Mapping):
        if d.get("mean") is None:  # undefined, e.g. salience without blends
            return "n/a"
        return f"{d['mean']:.{digits}f} ± {d['std']:.{digits}f}"
    return f"{float(d):.{digits}f}"


NO_BLENDS = "n/a (no blends)"
"""What a salience cell says when the scored clips have no blends (salience is null in JSON)."""


def _sal(d: Mapping | float | None) -> str:
    """A salience cell: ``fmt_pm``, or :data:`NO_BLENDS` for None (undefined without blends)."""
    undefined = d is None or (isinstance(d, Mapping) and d.get("mean") is None)
    return NO_BLENDS if undefined else fmt_pm(d)


def _single_emotion_lines(title: str, se: Mapping) -> list[str]:
    """Accuracy, UAR, macro-F1 and the 6x6 confusion (rows true, columns predicted)."""
    labels = list(se["labels"])
    lines = [f"## {title}", "",
             f"Accuracy {se['accuracy']:.3f}, unweighted average recall (UAR) {se['uar']:.3f}, "
             f"macro-F1 {se['macro_f1']:.3f} ({se['n_clips']} clips).", "",
             "| true \\ predicted | " + " | ".join(labels) + " | other | recall |",
             "|---" * (len(labels) + 3) + "|"]
    for i, e in enumerate(labels):
        row = se["confusion"][i]
        tot = sum(row) + se["other"][i]
        if tot == 0:
            continue
        lines.append(f"| {e} | " + " | ".join(str(v) for v in row) + f" | {se['other'][i]} | {row[i] / tot:.3f} |")
    return lines + [""]


# ----------------------------------------------------------------------------- markdown
def _actor_norm_line(res: Mapping) -> str:
    """Whether per-actor normalisation was used, said explicitly (blemore.normalise)."""
    an = res.get("actor_norm")
    if not an:
        return "not used"
    txt = "USED (" + an.get("description", "transductive, per actor") + ")"
    if "ari_mean" in an:
        txt += f"; held-out actors recovered by clustering with adjusted Rand index {an['ari_mean']:.3f}"
    t = an.get("test") or {}
    if t.get("clustered_rows"):
        txt += f"; test clips clustered into {t['groups_found']} groups" + (
            f" (ARI {t['ari']:.3f} vs {t['actors']} actors)" if "ari" in t else "")
    return txt


def _extra_lines(res: Mapping) -> list[str]:
    """Sections of optional methods: gated fusion's gate statistics, per-actor thresholds,
    train-to-test adaptation (each only when the run used it)."""
    lines: list[str] = []
    g = res.get("gating")
    if g:
        srcs = g["sources"]
        lines += ["", "## Gated fusion: source selection (share of clips selected / mean gate weight)", "",
                  f"{g.get('note', '')}", "",
                  "| configuration | " + " | ".join(srcs) + " |", "|---" * (len(srcs) + 1) + "|",
                  "| all | " + " | ".join(f"{g['overall'][s]['selected']:.2f} / {g['overall'][s]['weight']:.2f}"
                                         for s in srcs) + " |"]
        for conf, per in g["per_configuration"].items():
            lines.append(f"| {conf} | " + " | ".join(f"{per[s]['selected']:.2f} / {per[s]['weight']:.2f}"
                                                    for s in srcs) + " |")
    for key, title in (("thresholds", "Per-actor thresholds"), ("adaptation", "Train-to-test adaptation")):
        if res.get(key):
            lines += ["", f"## {title}", "", str(res[key].get("description", ""))]
    return lines


def results_markdown(res: Mapping) -> str:
    """``results.md``: the paper-shaped tables plus per-fold and per-configuration detail."""
    feats = " + ".join(res.get("features") or [])
    val = res["validation"]
    triv = res["trivial"]
    sel = res.get("selection", val.get("selection"))
    sel_txt = ("nested: epoch and thresholds chosen on inner folds of the training part only, "
               "then applied unchanged to the held-out fold" if sel == "nested" else
               "paper: best epoch and thresholds chosen on the validation fold itself (optimistic, as published)")
    lines = [f"# {res.get('run', 'run')}", ""]
    lines += [f"- features: {feats}", f"- head: {res.get('head')}, preset: {res.get('preset')}",
              f"- selection: {sel_txt}",
              f"- pooling: {res.get('pooling', {}).get('kind', 'stats')}"
              + (f", fusion: {res['fusion']['kind']}" if res.get("fusion") else ""),
              f"- transforms: {', '.join(t['name'] for t in res.get('transforms', []))}",
              f"- per-actor normalisation: {_actor_norm_line(res)}",
              f"- data: {res['data']['train_clips']} training clips, {res['data']['train_actors']} actors, "
              f"folds {res['data']['folds']}, {res['data']['test_clips']} test clips"]
    corp = res["data"].get("corpora") or {}
    if corp.get("train"):
        lines.append(f"- corpora: trained on {', '.join(corp['train'])}"
                     + (f", tested on {', '.join(corp['test'])}" if corp.get("test") else ""))
    if res["data"].get("folds_note"):
        lines.append(f"- small corpus: {res['data']['folds_note']}")
    if val.get("inner_folds"):
        lines.append(f"- small corpus: {val['inner_folds']}")
    lines.append("")
    n = len(val["acc_presence"]["folds"])
    lines += [f"## Validation ({n}-fold actor-disjoint cross-validation, mean ± std over folds)", "",
              "| Features | Head | Presence accuracy | Salience accuracy |", "|---|---|---|---|",
              f"| {feats} | {res.get('head')} | {fmt_pm(val['acc_presence'])} | {_sal(val['acc_salience'])} |",
              f"| trivial: most frequent single emotion ({triv['single'].get('prediction', '')}) | - | "
              f"{fmt_pm(triv['single']['acc_presence'])} | {_sal(triv['single']['acc_salience'])} |",
              f"| trivial: most frequent blend configuration ({triv['blend'].get('prediction', '')}) | - | "
              f"{fmt_pm(triv['blend']['acc_presence'])} | {_sal(triv['blend']['acc_salience'])} |", ""]
    if "test" in res:
        t = res["test"]
        lines += ["## Test (trained on all training clips; epoch and thresholds from cross-validation)", "",
                  "| Features | Presence accuracy | Salience accuracy |", "|---|---|---|",
                  f"| {feats} | {t['acc_presence']:.3f} | {_sal(t['acc_salience'])} |"]
        for name, what in (("single", "most frequent single emotion"), ("blend", "most frequent blend configuration")):
            if "test" in triv[name]:
                lines.append(f"| trivial: {what} | {triv[name]['test']['acc_presence']:.3f} | "
                             f"{_sal(triv[name]['test']['acc_salience'])} |")
        lines.append("")
    elif "test_unlabelled" in res:
        lines += ["## Test", "", f"{res['test_unlabelled']['n_clips']} unlabelled test clips: predictions in "
                  "`submission.json` / `submission.zip` (score them on CodaBench).", ""]
    lines += ["## Per fold", "", "| fold | clips | blends | presence | salience | epoch | decoder | selection score |",
              "|---|---|---|---|---|---|---|---|"]
    for f in val["folds"]:
        params = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in f["params"].items()) or "-"
        lines.append(f"| {f['fold']} | {f['n_clips']} | {f['n_blends']} | {f['acc_presence']:.3f} | "
                     f"{_sal(f['acc_salience'])} | {f['epoch']} | {params} | {f['selection_score']:.3f} |")
    p = val.get("pooled")
    if p:
        lines += ["", f"Pooled over all validation clips: presence {p['acc_presence']:.3f}, "
                  f"salience {_sal(p['acc_salience'])} ({p['n_clips']} clips, {p['n_blends']} blends)."]
    if val.get("single_emotion"):
        lines += [""] + _single_emotion_lines("Single emotions (validation, pooled out-of-fold)", val["single_emotion"])
    if res.get("test", {}).get("single_emotion"):
        lines += [""] + _single_emotion_lines("Single emotions (test)", res["test"]["single_emotion"])
    pc = res.get("per_configuration")
    if pc and not val.get("single_emotion"):  # nothing to show without blends
        lines += ["", "## Per configuration (validation blends; ratio in the pair's canonical order)", "",
                  "| true \\ predicted | " + " | ".join(pc["cols"]) + " | n | correct |",
                  "|---" * (len(pc["cols"]) + 3) + "|"]
        for r, row in zip(pc["rows"], pc["counts"]):
            tot = sum(row)
            i = pc["rows"].index(r)
            acc = row[i] / tot if tot else 0.0
            lines.append(f"| {r} | " + " | ".join(str(v) for v in row) + f" | {tot} | {acc:.3f} |")
    lines += _extra_lines(res)
    tm = res.get("timing")
    if tm:
        lines += ["", f"Timing: {tm['total_seconds']:.1f} s in all, cross-validation {tm['cv_seconds']:.1f} s "
                  f"({tm['cv_seconds_per_fold']:.1f} s per fold, {tm['trainings']} trainings)."]
    if res.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in res["warnings"]]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- plots
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_fig(fig, path: Path, dpi: int = 100) -> None:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    _atomic_write(path, buf.getvalue())


def plot_confusion(true_target: np.ndarray, pred_target: np.ndarray, path: Path, title: str) -> None:
    """Row-normalised 36 x 37 confusion matrix over composite labels."""
    plt = _plt()
    cm = confusion_matrix(pred_target, true_target).astype(np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig, ax = plt.subplots(figsize=(12, 10.5), layout="constrained")
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(len(CONFUSION_COLUMNS)), CONFUSION_COLUMNS, rotation=90, fontsize=7)
    ax.set_yticks(range(len(TARGET_NAMES)), TARGET_NAMES, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(norm.shape[0]):
        for j in range(norm.shape[1]):
            if cm[i, j] > 0 and norm[i, j] >= 0.15:
                ax.text(j, i, f"{norm[i, j]:.2f}"[1:] if norm[i, j] < 1 else "1", ha="center", va="center",
                        fontsize=5, color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.03)
    _save_fig(fig, path)
    plt.close(fig)


def plot_per_configuration(pc: Mapping, path: Path) -> None:
    plt = _plt()
    counts = np.asarray(pc["counts"], dtype=np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    norm = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    fig, ax = plt.subplots(figsize=(6.5, 3.2), layout="constrained")
    ax.imshow(norm, cmap="Oranges", vmin=0, vmax=1)
    ax.set_xticks(range(len(pc["cols"])), pc["cols"])
    ax.set_yticks(range(len(pc["rows"])), [f"true {r}" for r in pc["rows"]])
    for i in range(norm.shape[0]):
        for j in range(norm.shape[1]):
            ax.text(j, i, f"{norm[i, j]:.2f}\n({int(counts[i, j])})", ha="center", va="center", fontsize=8)
    ax.set_title("Blends: predicted ratio (right pair) or error")
    _save_fig(fig, path)
    plt.close(fig)


def _pca2(X: np.ndarray) -> np.ndarray:
    """First two principal components (randomised SVD: seconds for 2,456 x 14,336)."""
    from sklearn.decomposition import PCA

    if min(X.shape) <= 2:
        X = X - X.mean(axis=0)
        u, s, _ = np.linalg.svd(X, full_matrices=False)
        return np.pad(u * s, ((0, 0), (0, max(0, 2 - len(s)))))[:, :2]
    return PCA(n_components=2, svd_solver="randomized", random_state=0).fit_transform(X)


def per_actor_normalise(X: np.ndarray, actors: Sequence[Any]) -> np.ndarray:
    """z-score every column within each actor (the paper's normalisation for its PCA plots):
    :func:`blemore.normalise.actor_standardise` with every actor's own statistics, float64."""
    return actor_standardise(X, list(actors), scale="z", min_rows=1, dtype=np.float64)


def plot_pca(X: np.ndarray, actors: Sequence[Any], target: np.ndarray, path: Path, title: str = "") -> None:
    """Two panels: PCA of globally standardised pooled features, and of per-actor normalised
    ones; single-emotion clips coloured by emotion, blends in grey."""
    plt = _plt()
    X = np.nan_to_num(np.asarray(X, dtype=np.float64))
    sd = X.std(axis=0)
    glob = (X - X.mean(axis=0)) / np.where(sd < 1e-12, 1.0, sd)
    panels = [("standardised", glob), ("per-actor normalised", per_actor_normalise(X, actors))]
    target = np.asarray(target)
    colors = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), layout="constrained")
    for ax, (name, Z) in zip(axes, panels):
        P = _pca2(np.nan_to_num(Z))
        blend = target >= 6
        ax.scatter(P[blend, 0], P[blend, 1], s=5, c="lightgrey", label="blends")
        for i, e in enumerate(EMOTIONS):
            m = target == i
            ax.scatter(P[m, 0], P[m, 1], s=9, color=colors(i), label=EMOTION_NAMES[e])
        ax.set_title(f"{name}")
        ax.set_xlabel("PC1")
        ax.set_ylabel("PC2")
    axes[1].legend(fontsize=8, markerscale=2, loc="best")
    if title:
        fig.suptitle(title)
    _save_fig(fig, path)
    plt.close(fig)


def plot_selection(curves: Mapping[str, Sequence[float]], epochs_chosen: Mapping[str, int],
                   eval_epochs: Sequence[int], path: Path, title: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for name, c in curves.items():
        x = list(eval_epochs)[: len(c)]
        line, = ax.plot(x, c, label=name, lw=1)
        if name in epochs_chosen:
            e = epochs_chosen[name]
            if e in x:
                ax.plot([e], [c[x.index(e)]], "o", color=line.get_color())
    ax.set_xlabel("epoch")
    ax.set_ylabel("0.5 presence + 0.5 salience (selection data)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    _save_fig(fig, path)
    plt.close(fig)


def plot_timeline(times: np.ndarray, proba: np.ndarray, path: Path, title: str = "") -> None:
    """Per-window probabilities of the six classes over a clip (``ModelBundle.timeline``)."""
    plt = _plt()
    colors = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(8, 3.5), layout="constrained")
    for i, e in enumerate(EMOTIONS):
        ax.plot(times, proba[:, i], color=colors(i), label=EMOTION_NAMES[e], lw=1.5, marker="." if len(times) < 30 else None)
    ax.set_xlabel("time (s, window centre)")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, ncol=3)
    if title:
        ax.set_title(title)
    _save_fig(fig, Path(path))
    plt.close(fig)


# ----------------------------------------------------------------------------- run folder
def write_run(result, out: str | os.PathLike) -> Path:
    """Write a :class:`blemore.results.RunResult` into the folder ``out`` (sets ``result.files``).

    Re-running into the same folder leaves no file of the previous run behind: files blemore
    wrote there before (listed in the old ``results.json``, or with one of the names a run
    writes) that this run does not write are removed; nothing else in the folder is touched."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    previous = _previous_run_files(out)
    res = result.results
    files = {"config": "config.json", "results": "results.json", "markdown": "results.md",
             "validation_predictions": "predictions/validation.csv"}
    _atomic_write(out / "config.json", (result.config.to_json() + "\n").encode())
    _atomic_write(out / "predictions" / "validation.csv", result.predictions.to_csv(index=False).encode())
    if result.test_predictions is not None:
        _atomic_write(out / "predictions" / "test.csv", result.test_predictions.to_csv(index=False).encode())
        files["test_predictions"] = "predictions/test.csv"
    if result.submission is not None:
        write_predictions(result.submission, out / "submission.json")
        write_submission(result.submission, out / "submission.zip", validate=False)
        files["submission"] = "submission.json"
        files["submission_zip"] = "submission.zip"
    if result.config.plots:
        plots = out / "plots"
        pv = result.predictions
        plot_confusion(pv["true_target"].to_numpy(), pv["pred_target"].to_numpy(), plots / "confusion.png",
                       f"{res['run']}: validation (all folds)")
        files["confusion"] = "plots/confusion.png"
        tp = result.test_predictions
        if tp is not None and "test" in res:
            plot_confusion(tp["true_target"].to_numpy(), tp["pred_target"].to_numpy(), plots / "confusion_test.png",
                           f"{res['run']}: test")
            files["confusion_test"] = "plots/confusion_test.png"
        plot_per_configuration(res["per_configuration"], plots / "per_configuration.png")
        files["per_configuration"] = "plots/per_configuration.png"
        if result.pca is not None and len(result.pca["X"]) > 2:
            plot_pca(result.pca["X"], result.pca["actor"], result.pca["target"], plots / "pca.png",
                     f"PCA of pooled {'+'.join(result.pca['sources'])} (training clips)")
            files["pca"] = "plots/pca.png"
        if result.selection_curves:
            spec = TrainSpec(**res["train_spec"])
            chosen = {f"fold{f['fold']}": f["epoch"] for f in res["validation"]["folds"]}
            plot_selection(result.selection_curves, chosen, spec.eval_epochs(), plots / "selection.png",
                           f"selection ({res['selection']})")
            files["selection"] = "plots/selection.png"
    result.files = files  # the typed result knows its files; results.json is its to_dict()
    res = result.to_dict()
    _atomic_write(out / "results.json", (json.dumps(res, indent=2, default=json_default) + "\n").encode())
    _atomic_write(out / "results.md", results_markdown(res).encode())
    _remove_stale(out, previous - set(files.values()) - {"results.json", "results.md", "config.json"})
    return out


RUN_FILES = ("config.json", "results.json", "results.md", "predictions/validation.csv", "predictions/test.csv",
             "submission.json", "submission.zip", "plots/confusion.png", "plots/confusion_test.png",
             "plots/per_configuration.png", "plots/pca.png", "plots/selection.png")
"""Every file :func:`write_run` may write (relative to the run folder)."""


def _previous_run_files(out: Path) -> set[str]:
    """Files a previous run wrote into ``out``: its results.json's ``files`` (when readable) and
    the run file names that exist. Only plain relative paths inside ``out`` are kept."""
    names = {n for n in RUN_FILES if (out / n).is_file()}
    try:
        old = json.loads((out / "results.json").read_text())
        listed = old.get("files") if isinstance(old, dict) else None
    except (OSError, ValueError):
        listed = None
    if isinstance(listed, dict):
        for v in listed.values():
            p = Path(str(v))
            if not p.is_absolute() and ".." not in p.parts and (out / p).is_file():
                names.add(p.as_posix())
    return names


def _remove_stale(out: Path, stale: set[str]) -> None:
    for name in sorted(stale):
        try:
            (out / name).unlink()
        except FileNotFoundError:
            pass
    for d in ("plots", "predictions"):
        try:
            (out / d).rmdir()  # only when empty
        except OSError:
            pass


# ----------------------------------------------------------------------------- comparison
def load_results(run_dir: str | os.PathLike) -> dict:
    p = Path(run_dir)
    f = p / "results.json" if p.is_dir() else p
    if not f.exists():
        raise FileNotFoundError(f"{run_dir}: no results.json (is it a blemore run folder?)")
    return json.loads(f.read_text())


def compare_runs(run_dirs: Sequence[str | os.PathLike]) -> list[dict]:
    """One row per run: name, features, head, selection, validation and test metrics."""
    rows = []
    for d in run_dirs:
        r = load_results(d)
        v = r["validation"]
        rows.append({
            "run": r.get("run", Path(d).name), "dir": str(d), "features": " + ".join(r.get("features") or []),
            "head": r.get("head"), "preset": r.get("preset"), "selection": r.get("selection"),
            "fusion": (r.get("fusion") or {}).get("kind", "-"),
            "val_presence": v["acc_presence"], "val_salience": v["acc_salience"],
            "test_presence": r.get("test", {}).get("acc_presence"),
            "test_salience": r.get("test", {}).get("acc_salience"),
            "trivial": r.get("trivial"),
        })
    return rows


def format_compare(rows: Sequence[Mapping], trivial: bool = True) -> str:
    """Markdown table of :func:`compare_runs` rows (plus the first run's trivial baselines)."""
    lines = ["| Run | Features | Head | Selection | Val presence | Val salience | Test presence | Test salience |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['features']} | {r['head']} | {r['selection']} | {fmt_pm(r['val_presence'])} | "
                     f"{fmt_pm(r['val_salience'])} | {fmt_pm(r['test_presence'])} | {fmt_pm(r['test_salience'])} |")
    if trivial and rows and rows[0].get("trivial"):
        t = rows[0]["trivial"]
        for name, what in (("single", "most frequent single emotion"), ("blend", "most frequent blend configuration")):
            tt = t[name].get("test", {})
            lines.append(f"| trivial: {what} | | | | {fmt_pm(t[name]['acc_presence'])} | {fmt_pm(t[name]['acc_salience'])} | "
                         f"{fmt_pm(tt.get('acc_presence'))} | {fmt_pm(tt.get('acc_salience'))} |")
    return "\n".join(lines) + "\n"
