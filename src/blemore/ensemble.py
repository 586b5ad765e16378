"""Ensembles of finished runs: ``blemore ensemble RUN_DIR... --out DIR``.

Each member is a run folder (:func:`blemore.report.write_run`: ``predictions/validation.csv``
with every training clip's out-of-fold probabilities ``p_*``, its fold and label; optionally
``predictions/test.csv``). Members may differ in head, sources, fusion or seed, but must cover
the same clips with the same folds (checked; every difference is listed).

Nested rule, as for late fusion (:mod:`blemore.late_fusion`): for held-out fold ``k`` the
member weights (a grid on the simplex, :func:`blemore.late_fusion.weight_grid`) and the
decoder's thresholds are chosen on the out-of-fold outputs of the *other* folds only, then
applied unchanged to fold ``k``; fold ``k``'s labels are read only to score it. For the test
clips both are chosen on all out-of-fold outputs. The ensemble writes ``results.json``,
``results.md``, ``predictions/validation.csv`` (and ``test.csv``, ``submission.json`` /
``.zip`` when every member has test predictions), and compares itself with every member fold
by fold (paired differences).

Members are combined as probabilities (``mode="prob"``, weighted mean) or log-probabilities
(``"logit"``); they must be 6-class probability runs (the paper's heads, sequence heads, gated).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from blemore._io import atomic_write_bytes
from blemore.decoders import ThresholdDecoder
from blemore.errors import BlemoreError
from blemore.fusion import fuse_probabilities
from blemore.labels import EMOTIONS, TARGETS
from blemore.late_fusion import choose_weights
from blemore.metrics import score_codes
from blemore.predictions import code_names
from blemore.submission import submission_dict, write_predictions, write_submission

__all__ = ["EnsembleError", "load_member", "run_ensemble", "ensemble_markdown"]

P_COLS = [f"p_{e}" for e in EMOTIONS]


class EnsembleError(BlemoreError, ValueError):
    """Run folders that cannot be ensembled (missing files, different clips or folds)."""


class _Fuser:
    """What :func:`choose_weights` needs of a head: ``fuse``."""

    def __init__(self, mode: str):
        self.mode = mode

    def fuse(self, outputs, weights=None, mode="prob"):
        return fuse_probabilities(outputs, weights, self.mode)


def load_member(run_dir: str | os.PathLike) -> dict:
    """``{"name", "dir", "validation", "test", "results"}`` of one run folder."""
    d = Path(run_dir)
    val = d / "predictions" / "validation.csv"
    problems = []
    if not val.is_file():
        problems.append(f"{d}: no predictions/validation.csv (not a finished run folder)")
    res_path = d / "results.json"
    results = json.loads(res_path.read_text()) if res_path.is_file() else {}
    if problems:
        raise EnsembleError("; ".join(problems))
    v = pd.read_csv(val, keep_default_na=False)
    missing = [c for c in ["clip_id", "fold", "true_target", *P_COLS] if c not in v.columns]
    if missing:
        raise EnsembleError(f"{val}: columns {missing} missing (a run of a 6-class probability head is needed)")
    t = d / "predictions" / "test.csv"
    test = pd.read_csv(t, keep_default_na=False) if t.is_file() else None
    return {"name": results.get("run", d.name), "dir": str(d), "validation": v.sort_values("clip_id").reset_index(drop=True),
            "test": None if test is None else test.sort_values("clip_id").reset_index(drop=True), "results": results}


def _check(members: Sequence[dict]) -> None:
    ref = members[0]["validation"]
    problems = []
    for m in members[1:]:
        v = m["validation"]
        a, b = set(ref["clip_id"]), set(v["clip_id"])
        if a != b:
            problems.append(f"{m['dir']}: {len(b - a)} clip(s) not in {members[0]['dir']} and {len(a - b)} missing "
                            f"(e.g. {sorted(a ^ b)[:3]})")
        elif not (ref["fold"].to_numpy() == v["fold"].to_numpy()).all():
            problems.append(f"{m['dir']}: other folds than {members[0]['dir']}")
        elif not (ref["true_target"].to_numpy() == v["true_target"].to_numpy()).all():
            problems.append(f"{m['dir']}: other labels than {members[0]['dir']}")
    if problems:
        raise EnsembleError("the runs cannot be ensembled: " + "; ".join(problems))


def _paired(a: Sequence[float], b: Sequence[float]) -> dict:
    d = np.asarray(a, float) - np.asarray(b, float)
    return {"mean": float(d.mean()), "std": float(d.std()), "folds": [float(x) for x in d], "wins": int((d > 0).sum())}


def run_ensemble(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike | None = None, *,
                 step: float | None = None, mode: str = "prob", selector=choose_weights) -> dict:
    """Ensemble the runs (see the module docstring); returns the results record (also written to
    ``out``). ``selector`` is :func:`blemore.late_fusion.choose_weights` (tests pass a spy)."""
    if len(run_dirs) < 2:
        raise EnsembleError(f"an ensemble needs at least 2 run folders, got {len(run_dirs)}")
    if mode not in ("prob", "logit"):
        raise EnsembleError(f"mode must be 'prob' or 'logit', got {mode!r}")
    members = [load_member(d) for d in run_dirs]
    _check(members)
    step = step or (0.1 if len(members) <= 3 else 0.25 if len(members) <= 5 else 0.5)
    v0 = members[0]["validation"]
    P = np.stack([m["validation"][P_COLS].to_numpy(np.float64) for m in members])
    true = v0["true_target"].to_numpy(np.int64)
    fold = v0["fold"].to_numpy(np.int64)
    fuser, decoder = _Fuser(mode), ThresholdDecoder()
    folds, masks, targets, outs = [], np.zeros(len(true), np.int64), np.zeros(len(true), np.int64), np.zeros((len(true), 6))
    for k in sorted(set(fold.tolist())):
        sel, held = fold != k, fold == k
        w, _ = selector(list(P[:, sel]), true[sel], fuser, decoder, step=step, mode=mode)
        fit = decoder.calibrate(fuser.fuse(list(P[:, sel]), w), true[sel])
        comb = fuser.fuse(list(P[:, held]), w)
        m, t = decoder.decode(comb, fit.params)
        masks[held], targets[held], outs[held] = m, t, comb
        s = score_codes(m, t, true[held])
        folds.append({"fold": k, "weights": w, "params": dict(fit.params), "n_clips": int(held.sum()),
                      "acc_presence": s["acc_presence"], "acc_salience": s["acc_salience"]})
    agg = {mt: {"mean": float(np.mean([f[mt] for f in folds])), "std": float(np.std([f[mt] for f in folds])),
                "folds": [f[mt] for f in folds]} for mt in ("acc_presence", "acc_salience")}
    member_rows = []
    for m in members:
        mf = []
        for f in folds:
            held = fold == f["fold"]
            mm, tt = m["validation"]["pred_mask"].to_numpy()[held], m["validation"]["pred_target"].to_numpy()[held]
            mf.append(score_codes(mm, tt, true[held]))
        row = {"name": m["name"], "dir": m["dir"]}
        for mt in ("acc_presence", "acc_salience"):
            vals = [x[mt] for x in mf]
            row[mt] = {"mean": float(np.mean(vals)), "std": float(np.std(vals)), "folds": vals}
            row[f"ensemble_minus_{mt}"] = _paired(agg[mt]["folds"], vals)
        member_rows.append(row)
    comp = lambda r: 0.5 * r["acc_presence"]["mean"] + 0.5 * r["acc_salience"]["mean"]  # noqa: E731
    best = max(member_rows, key=comp)
    results: dict[str, Any] = {
        "run": "ensemble", "members": member_rows, "mode": mode, "step": step,
        "selection": "nested: weights and thresholds for fold k chosen on the other folds' out-of-fold outputs",
        "validation": {**agg, "folds": folds}, "best_member": best["name"],
        "vs_best_member": {mt: best[f"ensemble_minus_{mt}"] for mt in ("acc_presence", "acc_salience")},
    }
    preds = pd.DataFrame({"clip_id": v0["clip_id"], "fold": fold, "true": [TARGETS[t].name() if t >= 0 else "" for t in true],
                          "pred": code_names(masks, targets), "true_target": true, "pred_target": targets, "pred_mask": masks})
    for i, c in enumerate(P_COLS):
        preds[c] = np.round(outs[:, i], 6)
    test_df = submission = None
    if all(m["test"] is not None for m in members):
        ids = members[0]["test"]["clip_id"]
        if all(list(m["test"]["clip_id"]) == list(ids) for m in members):
            w, _ = selector(list(P), true, fuser, decoder, step=step, mode=mode)
            fit = decoder.calibrate(fuser.fuse(list(P), w), true)
            T = np.stack([m["test"][P_COLS].to_numpy(np.float64) for m in members])
            comb = fuser.fuse(list(T), w)
            m_, t_ = decoder.decode(comb, fit.params)
            submission = submission_dict(list(ids), m_, t_)
            tt = members[0]["test"]["true_target"].to_numpy(np.int64)
            test_df = pd.DataFrame({"clip_id": ids, "pred": code_names(m_, t_), "true_target": tt, "pred_target": t_,
                                    "pred_mask": m_})
            results["final"] = {"weights": w, "params": dict(fit.params)}
            if (tt >= 0).all():
                s = score_codes(m_, t_, tt)
                results["test"] = {"acc_presence": s["acc_presence"], "acc_salience": s["acc_salience"]}
    if out is not None:
        o = Path(out)
        atomic_write_bytes(o / "results.json", (json.dumps(results, indent=2, default=str) + "\n").encode())
        atomic_write_bytes(o / "results.md", ensemble_markdown(results).encode())
        atomic_write_bytes(o / "predictions" / "validation.csv", preds.to_csv(index=False).encode())
        if test_df is not None:
            atomic_write_bytes(o / "predictions" / "test.csv", test_df.to_csv(index=False).encode())
        if submission is not None:
            write_predictions(submission, o / "submission.json")
            write_submission(submission, o / "submission.zip", validate=False)
    return results


def ensemble_markdown(res: dict) -> str:
    """``results.md`` of an ensemble: the ensemble and each member, fold by fold."""
    v = res["validation"]
    lines = ["# Ensemble", "", f"- selection: {res['selection']}", f"- combination: {res['mode']}, weight step {res['step']}",
             "", "| run | presence | salience | presence: ensemble - run (folds won) | salience: ensemble - run |",
             "|---|---|---|---|---|",
             f"| **ensemble** | {v['acc_presence']['mean']:.3f} ± {v['acc_presence']['std']:.3f} | "
             f"{v['acc_salience']['mean']:.3f} ± {v['acc_salience']['std']:.3f} | - | - |"]
    for m in res["members"]:
        dp, ds = m["ensemble_minus_acc_presence"], m["ensemble_minus_acc_salience"]
        lines.append(f"| {m['name']} | {m['acc_presence']['mean']:.3f} ± {m['acc_presence']['std']:.3f} | "
                     f"{m['acc_salience']['mean']:.3f} ± {m['acc_salience']['std']:.3f} | "
                     f"{dp['mean']:+.3f} ({dp['wins']}/{len(dp['folds'])}) | {ds['mean']:+.3f} ({ds['wins']}/{len(ds['folds'])}) |")
    lines += ["", "| fold | weights | alpha | beta | presence | salience |", "|---|---|---|---|---|---|"]
    for f in v["folds"]:
        lines.append(f"| {f['fold']} | {', '.join(f'{x:.2f}' for x in f['weights'])} | {f['params'].get('alpha', 0):.3f} | "
                     f"{f['params'].get('beta', 0):.3f} | {f['acc_presence']:.3f} | {f['acc_salience']:.3f} |")
    if "test" in res:
        lines += ["", f"Test: presence {res['test']['acc_presence']:.3f}, salience {res['test']['acc_salience']:.3f}."]
    return "\n".join(lines) + "\n"
