"""Ablation: heads x per-actor normalisation x fusion on the same features and folds, in one table.

:func:`run_ablation` runs the full protocol (:func:`blemore.experiment.run_experiment`) for
every combination of head, ``--actor-norm`` mode and fusion strategy, with the same metadata,
folds, seeds and selection protocol, and writes ``ablation.md`` and ``ablation.json`` into
the output folder (each run also gets its own run folder below it). The table reports, per
configuration, the mean ± std over folds of ACC_presence and ACC_salience and the **paired
per-fold differences** against the reference configuration (the paper's head, ``mlp-512``,
without per-actor normalisation, with the first fusion listed): mean ± std of the
differences, how many folds improved, and the exact two-sided sign-flip permutation p-value
(with 5 folds the smallest possible value is 2/32 = 0.0625, so no 5-fold difference is
"significant" at 0.05; read the per-fold signs).

Configurations that differ only in ``--thresholds`` / ``--adapt`` (which act when decoding
and on the evaluated sets' features, never on training) share their trainings: each model is
trained once per group and every configuration selects, decodes and reports on its outputs
exactly as if run alone (:func:`blemore.experiment.run_shared`), so ``--thresholds
global,per-actor --adapt none,meanvar`` costs the trainings of one configuration, not four.

Heads are given as specs: ``"structured"``, or with options ``"structured[ratio=ordinal,mixup=0.2]"``
(:func:`parse_heads`; several specs in one string are separated by commas outside brackets).
"""
from __future__ import annotations

import itertools
import json
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from blemore._io import atomic_write_bytes as _atomic_write
from blemore.errors import BlemoreError
from blemore.dataset import load_metadata
from blemore.experiment import Experiment, run_experiment, run_shared, training_key
from blemore.features import load_features
from blemore.fusion import FUSIONS, list_fusions
from blemore.heads.base import create_head, list_heads
from blemore.normalise import (
    ACTOR_NORM_MODES,
    IdentityProjector,
    actor_norm_transforms,
    adjusted_rand_index,
    evaluate_identity_grouping,
    identity_groups,
    identity_rows,
)
from blemore.pooling import Pooling
from blemore.report import write_run

__all__ = [
    "HeadSpec", "parse_heads", "parse_list", "AblationRow", "AblationResult", "run_ablation",
    "paired_differences", "sign_flip_p", "ablation_markdown", "REFERENCE_HEAD",
]

REFERENCE_HEAD = "mlp-512"
METRICS = ("acc_presence", "acc_salience")


class AblationError(BlemoreError, ValueError):
    """An ablation that cannot run as asked (bad head spec, no configurations)."""


# ----------------------------------------------------------------------------- head specs
@dataclass(frozen=True)
class HeadSpec:
    """A registered head name with constructor options."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        if not self.options:
            return self.name
        return f"{self.name}[" + ",".join(f"{k}={_fmt_value(v)}" for k, v in self.options) + "]"

    def as_dict(self) -> dict:
        return {"name": self.name, "options": dict(self.options)}

    def __str__(self) -> str:  # pragma: no cover - convenience
        return self.label


def _fmt_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _parse_value(text: str) -> Any:
    t = text.strip()
    low = t.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    for conv in (int, float):
        try:
            return conv(t)
        except ValueError:
            pass
    return t


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside brackets."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise AblationError(f"unbalanced ']' in {text!r}")
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise AblationError(f"unbalanced '[' in {text!r}")
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)(\[(?P<opts>.*)\])?$")


def parse_heads(specs: str | Iterable[str | HeadSpec]) -> list[HeadSpec]:
    """Head specs from strings like ``"mlp-512,structured[ratio=ordinal,dropout=0.3]"`` (or a
    list of such strings). Names are checked against the heads registry and options by
    building each head once."""
    items: list[str | HeadSpec] = [specs] if isinstance(specs, str) else list(specs)
    out: list[HeadSpec] = []
    for item in items:
        if isinstance(item, HeadSpec):
            out.append(item)
            continue
        for part in _split_top(str(item)):
            m = _SPEC.match(part)
            if not m:
                raise AblationError(f"bad head spec {part!r}; expected NAME or NAME[key=value,...], "
                                    "e.g. structured[ratio=ordinal,mixup=0.2]")
            opts: list[tuple[str, Any]] = []
            for kv in re.split(r"[,;]", m["opts"] or ""):
                if not kv.strip():
                    continue
                if "=" not in kv:
                    raise AblationError(f"head option {kv!r} in {part!r} is not key=value")
                k, v = kv.split("=", 1)
                opts.append((k.strip(), _parse_value(v)))
            if m["name"] not in list_heads():
                raise AblationError(f"unknown head {m['name']!r} in {part!r}; registered heads: {', '.join(list_heads())}")
            spec = HeadSpec(m["name"], tuple(opts))
            try:
                create_head(spec.name, **dict(spec.options))
            except (TypeError, ValueError) as e:
                raise AblationError(f"head spec {part!r}: {e}") from None
            out.append(spec)
    if not out:
        raise AblationError("no head given")
    return list(dict.fromkeys(out))


def parse_list(values: str | Iterable[str] | None, allowed: Sequence[str] | None = None, what: str = "value") -> list[str]:
    """Comma-separated (and/or repeated) values, order kept, duplicates dropped."""
    if values is None:
        return []
    items = [values] if isinstance(values, str) else list(values)
    out = [v.strip() for it in items for v in str(it).split(",") if v.strip()]
    if allowed is not None:
        bad = [v for v in out if v not in allowed]
        if bad:
            raise AblationError(f"unknown {what}(s) {bad}; expected some of {', '.join(allowed)}")
    return list(dict.fromkeys(out))


# ----------------------------------------------------------------------------- statistics
def sign_flip_p(diffs: Sequence[float]) -> float:
    """Exact two-sided p-value of the paired sign-flip (randomisation) test of a zero mean
    difference: the share of the ``2^n`` sign patterns whose |mean| reaches the observed one."""
    d = np.asarray(diffs, dtype=np.float64)
    n = len(d)
    if n == 0:
        return 1.0
    if n > 16:
        raise AblationError("the exact sign-flip test enumerates 2^n patterns; use at most 16 folds")
    obs = abs(d.mean())
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    means = np.abs(signs @ d / n)
    return float(np.mean(means >= obs - 1e-12))


def paired_differences(a: Sequence[float], b: Sequence[float]) -> dict:
    """Per-fold differences ``a - b`` with their mean, std, wins/losses and sign-flip p."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise AblationError(f"paired differences need the same folds, got {len(a)} and {len(b)} values")
    d = a - b
    return {"mean": float(d.mean()) if len(d) else 0.0, "std": float(d.std()) if len(d) else 0.0,
            "folds": [float(x) for x in d], "wins": int((d > 1e-12).sum()), "losses": int((d < -1e-12).sum()),
            "p_sign_flip": sign_flip_p(d)}


# ----------------------------------------------------------------------------- results
@dataclass
class AblationRow:
    """One configuration of the ablation and what it scored."""

    key: str
    head: HeadSpec
    actor_norm: str
    fusion: str
    validation: dict  # metric -> {mean, std, folds}
    test: dict | None
    seconds: float
    run_dir: str | None
    folds: list[int]
    epochs: list[int]
    weights: list | None
    vs_reference: dict = field(default_factory=dict)  # metric -> paired differences
    vs_paper_head: dict = field(default_factory=dict)  # same norm and fusion, head mlp-512
    variant: str = ""  # e.g. "thresholds=per-actor adapt=coral" (run_ablation's variants)
    shared: int = 1  # configurations in its training group (they share trainings and ``seconds``)

    def as_dict(self) -> dict:
        return {"key": self.key, "head": self.head.as_dict(), "head_label": self.head.label,
                "actor_norm": self.actor_norm, "fusion": self.fusion, "variant": self.variant,
                "shared_trainings_with": self.shared,
                "validation": self.validation,
                "test": self.test, "seconds": self.seconds, "run_dir": self.run_dir, "folds": self.folds,
                "epochs": self.epochs, "fusion_weights": self.weights, "vs_reference": self.vs_reference,
                "vs_paper_head": self.vs_paper_head}


@dataclass
class AblationResult:
    """All rows, the reference, the winners, and the identity-grouping report."""

    rows: list[AblationRow]
    reference: str
    selection: str
    settings: dict
    grouping: dict | None = None
    seconds: float = 0.0

    def row(self, key: str) -> AblationRow:
        for r in self.rows:
            if r.key == key:
                return r
        raise KeyError(key)

    def winner(self, metric: str) -> AblationRow:
        """Highest mean over folds (ties: the first configuration in table order)."""
        best = None
        for r in self.rows:
            if best is None or r.validation[metric]["mean"] > best.validation[metric]["mean"] + 1e-12:
                best = r
        assert best is not None
        return best

    def as_dict(self) -> dict:
        return {"reference": self.reference, "selection": self.selection, "settings": self.settings,
                "rows": [r.as_dict() for r in self.rows], "grouping": self.grouping, "seconds": self.seconds,
                "winners": {m: self.winner(m).key for m in METRICS}}

    def markdown(self) -> str:
        return ablation_markdown(self)


def _pm(d: Mapping) -> str:
    return f"{d['mean']:.3f} ± {d['std']:.3f}"


def _delta(d: Mapping | None) -> str:
    if not d:
        return "-"
    return f"{d['mean']:+.3f} ± {d['std']:.3f} ({d['wins']}/{len(d['folds'])})"


_NORM_TEXT = {
    "off": "no per-actor normalisation (standardisation with training statistics only)",
    "on": "per-actor normalisation, transductive: every actor standardised with all of that actor's clips "
          "(held-out and test clips included, labels never used); actors known from the clip ids, clips of "
          "unknown actors grouped by clustering",
    "cluster": "per-actor normalisation, transductive, with the actors of held-out and test clips NOT taken "
               "from the clip ids but found by clustering identity features (as for the anonymised official "
               "test clips); training actors known",
}


def ablation_markdown(res: AblationResult) -> str:
    """``ablation.md``: the main table, per-fold differences, winners and settings."""
    s = res.settings
    ref = res.row(res.reference)
    lines = ["# Ablation: head x per-actor normalisation x fusion", ""]
    lines += [f"- features: {', '.join(s.get('features', []))}",
              f"- preset: {s.get('preset')}, selection: {res.selection}"
              + (" (epoch, thresholds and fusion weights chosen on inner folds only; the held-out fold is "
                 "read only to score)" if res.selection == "nested" else " (chosen on the held-out fold itself: optimistic)"),
              f"- folds: {ref.folds} (the same for every configuration, so differences are paired per fold)",
              f"- reference: `{res.reference}` (the paper's head and protocol)"]
    norms = sorted({r.actor_norm for r in res.rows}, key=lambda m: ("off", "on", "cluster").index(m))
    for m in norms:
        lines.append(f"- actor norm `{m}`: {_NORM_TEXT[m]}")
    if s.get("training_groups", len(res.rows)) < len(res.rows):
        lines.append(f"- trainings: {len(res.rows)} configurations in {s['training_groups']} training groups; the "
                     "configurations of a group differ only in thresholds/adapt (decoding and evaluated-set "
                     "features), so each model was trained once for the group and every configuration decoded "
                     "its outputs (results as if run alone; `min` is the group's time)")
    lines.append(f"- total time: {res.seconds / 60:.1f} min")
    lines.append("")
    has_test = any(r.test for r in res.rows)
    has_variant = any(r.variant for r in res.rows)
    head = ("| # | head | actor norm | fusion |" + (" variant |" if has_variant else "")
            + " presence | salience | Δ presence vs ref (wins) | "
            "Δ salience vs ref (wins) |" + (" test presence | test salience |" if has_test else "") + " min |")
    lines += ["## Validation (mean ± std over folds; Δ = paired per-fold difference, mean ± std, folds improved)",
              "", head, "|---" * (head.count("|") - 1) + "|"]
    for i, r in enumerate(res.rows, 1):
        mark = " (ref)" if r.key == res.reference else ""
        cells = [str(i), f"`{r.head.label}`{mark}", r.actor_norm, r.fusion] + ([r.variant] if has_variant else []) + [
                 _pm(r.validation["acc_presence"]),
                 _pm(r.validation["acc_salience"]),
                 _delta(r.vs_reference.get("acc_presence")) if r.key != res.reference else "-",
                 _delta(r.vs_reference.get("acc_salience")) if r.key != res.reference else "-"]
        if has_test:
            cells += [f"{r.test['acc_presence']:.3f}" if r.test else "-", f"{r.test['acc_salience']:.3f}" if r.test else "-"]
        cells.append(f"{r.seconds / 60:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for metric, title in (("acc_salience", "ACC_salience"), ("acc_presence", "ACC_presence")):
        w = res.winner(metric)
        d = w.vs_reference.get(metric)
        txt = (f"**Best {title}: `{w.head.label}`, actor norm {w.actor_norm}, fusion {w.fusion}"
               + (f", {w.variant}" if w.variant else "") + f"**: {_pm(w.validation[metric])}")
        if w.key != res.reference and d:
            txt += (f"; vs the reference {d['mean']:+.3f} ± {d['std']:.3f} per fold "
                    f"[{' '.join(f'{x:+.3f}' for x in d['folds'])}], better in {d['wins']}/{len(d['folds'])} folds, "
                    f"sign-flip p = {d['p_sign_flip']:.3f}")
        else:
            txt += " (the reference itself)"
        lines += [txt, ""]
    folds = ref.folds
    for metric, title in (("acc_salience", "ACC_salience"), ("acc_presence", "ACC_presence")):
        lines += [f"## Per-fold paired differences vs the reference: {title}", "",
                  "| configuration | " + " | ".join(f"fold {f}" for f in folds) + " | mean ± std | wins | p (sign flip) |",
                  "|---" * (len(folds) + 4) + "|"]
        for r in res.rows:
            if r.key == res.reference:
                continue
            d = r.vs_reference[metric]
            lines.append(f"| {r.key} | " + " | ".join(f"{x:+.3f}" for x in d["folds"])
                         + f" | {d['mean']:+.3f} ± {d['std']:.3f} | {d['wins']}/{len(folds)} | {d['p_sign_flip']:.3f} |")
        lines.append("")
    head_rows = [r for r in res.rows if r.vs_paper_head and r.head.label != REFERENCE_HEAD]
    if head_rows:
        lines += ["## Head effect: Δ vs `mlp-512` with the same normalisation and fusion", "",
                  "| configuration | Δ presence (wins) | Δ salience (wins) |", "|---|---|---|"]
        for r in head_rows:
            lines.append(f"| {r.key} | {_delta(r.vs_paper_head['acc_presence'])} | {_delta(r.vs_paper_head['acc_salience'])} |")
        lines.append("")
    if res.grouping:
        g = res.grouping
        lines += ["## Identity grouping (for per-actor normalisation of clips of unknown actors)", ""]
        cv = g.get("cv")
        if cv:
            lines.append(f"Blind clustering of each held-out fold (identity directions learned from the other folds' "
                         f"actors, n_groups={cv['n_groups']}): adjusted Rand index vs the true actors "
                         f"{cv['ari_mean']:.3f} on average; per fold: "
                         + ", ".join(f"fold {f['fold']}: ARI {f['ari']:.3f}, {f['groups_found']} groups for "
                                     f"{f['actors']} actors" for f in cv["folds"]) + ".")
        t = g.get("test")
        if t:
            lines.append("")
            lines.append(f"Test clips clustered blind: {t['groups_found']} groups"
                         + (f" for {t['actors']} actors, ARI {t['ari']:.3f}" if t.get("ari") is not None else "") + ".")
        lines.append("")
    lines += ["Run folders (results.md, plots, predictions) are listed in `ablation.json`.", ""]
    return "\n".join(lines)




def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._\-]+", "-", text).strip("-")


# ----------------------------------------------------------------------------- runner
def _grouping_report(base, n_groups) -> dict | None:
    """ARI of blind identity clustering on held-out training folds (and on the test clips
    when their actors are known). The clips, folds, actors and pooled features are the
    runner's own (:class:`blemore.experiment.Experiment` prepares them), so the report is
    about exactly the data the ablation's runs used; one row per clip as actor-norm and per-actor
    thresholds see it (:func:`blemore.normalise.identity_rows`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = Experiment(base, progress=False)

    def matrix(pos: np.ndarray) -> np.ndarray:
        return identity_rows(exp.features, pos, exp.pooling.sequence_length)

    Xtr = matrix(exp.train_pos)
    train_actors = exp.actor[exp.train_pos].tolist()
    cv = evaluate_identity_grouping(Xtr, train_actors, exp.fold[exp.train_pos], n_groups=n_groups)
    out: dict[str, Any] = {"cv": cv.as_dict()}
    test = exp.test_table
    if test is not None and len(test):
        proj = IdentityProjector.fit(Xtr, train_actors)
        lab = identity_groups(proj.project(matrix(exp.test_pos)), n_groups, proj.rows_per_group)
        actors = test["actor"]
        known = actors.notna().all() and not (actors.astype(str).str.strip() == "").any()
        out["test"] = {"clips": int(len(test)), "groups_found": int(len(np.unique(lab))),
                       "actors": int(actors.nunique()) if known else None,
                       "ari": adjusted_rand_index(actors.astype(str).tolist(), lab) if known else None}
    return out


@dataclass
class _Inputs:
    """What a configuration reads, loaded once by the driver: the metadata tables, the pooled
    features and the warnings loading raised (shipped to the engine's workers in ``shared``)."""

    table: Any
    test_table: Any
    features: Any
    warnings: list[str]


def _inputs_key(cfg) -> tuple:
    """What decides a configuration's loaded inputs: the tables, the sources, the pooling its
    head asks for (:meth:`blemore.heads.base.Head.input_pooling`) and the missing-data policy."""
    pooling = create_head(cfg.head, **cfg.head_options).input_pooling(
        Pooling(kind=cfg.pooling, window=cfg.window, stride=cfg.stride))
    return (str(cfg.metadata), str(cfg.test_metadata or ""), tuple(str(f) for f in cfg.features),
            repr(pooling), cfg.missing)


def _load_inputs(cfg, progress: bool) -> _Inputs:
    """The tables and features :class:`~blemore.experiment.Experiment` would load for ``cfg``
    (same clip ids in the same order, same policy), with the warnings loading raised."""
    cfg.validate()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = load_metadata(cfg.metadata)
        test = load_metadata(cfg.test_metadata, split="test") if cfg.test_metadata else None
        ids = table["clip_id"][table["split"] == "train"].tolist() + ([] if test is None else test["clip_id"].tolist())
        pooling = create_head(cfg.head, **cfg.head_options).input_pooling(
            Pooling(kind=cfg.pooling, window=cfg.window, stride=cfg.stride))
        features = load_features(cfg.features, ids, pooling, missing=cfg.missing, progress=progress)
    return _Inputs(table, test, features, [str(w.message) for w in caught])


def _run_group(shared: tuple[Callable, list], item: tuple) -> tuple[list, float]:
    """Engine item ``(configs, inputs index)``: one training group (:func:`_training_groups`),
    nothing written (the driver writes the run folders); returns the results in ``configs``
    order and the group's seconds. With an index, on the driver's loaded inputs (``shared``)
    instead of reading the metadata and feature folders here; without one (a replaced runner),
    the group has one configuration and ``run`` runs it."""
    run, inputs = shared
    cfgs, k = item
    t0 = time.perf_counter()
    if k is None:
        rs = [run(cfg, progress=False, write=False) for cfg in cfgs]
    else:
        d = inputs[k]
        rs = run_shared(cfgs, progress=False, write=False, table=d.table, test_table=d.test_table,
                        features=d.features, input_warnings=d.warnings)
    return rs, time.perf_counter() - t0


def _training_groups(cfgs: Sequence, share: bool) -> list[list[int]]:
    """Indices of ``cfgs`` by training group, in order of first appearance: configurations that
    differ only in what never changes the trained models
    (:data:`blemore.experiment.EVAL_ONLY_FIELDS`: thresholds, adapt, names and places) form
    one group and share every training (:func:`blemore.experiment.run_shared`); with
    ``share`` False each configuration is its own group."""
    groups: dict[Any, list[int]] = {}
    for i, cfg in enumerate(cfgs):
        groups.setdefault(training_key(cfg) if share else i, []).append(i)
    return list(groups.values())


def _run_configs(cfgs: Sequence, run: Callable, progress: bool, write_runs: bool, log: Callable[[str], None],
                 keys: Sequence[str], engine: Any, share: bool = True):
    """``(RunResult, seconds, group size)`` per configuration, in order. With the default
    runner, the configurations of one training group (:func:`_training_groups`) run together
    (:func:`blemore.experiment.run_shared`: every model trained once for the group; seconds
    are the group's); a replaced runner (tests) runs each configuration alone. One group after
    another here, or one engine item per group (the run folders are then written here, from
    the results): on an engine, with the default runner, the driver loads each distinct
    input (tables, sources, pooling, missing policy) once and ships them all in ``shared``
    (Ray: one ``ray.put``, one copy per node): the workers read no metadata or feature folder.
    ``share`` False: every configuration its own group (the same results, each trained alone)."""
    default = run is run_experiment
    groups = _training_groups(cfgs, share and default)
    log(f"{len(cfgs)} configurations, {len(groups)} training group(s)"
        + (" (configurations that differ only in thresholds/adapt share their trainings)"
           if len(groups) < len(cfgs) else ""))
    got: dict[int, tuple[Any, float, int]] = {}
    if engine is None or engine.inline:
        for gi, g in enumerate(groups):
            log(f"[{gi + 1}/{len(groups)}] " + "; ".join(keys[i] for i in g))
            t0 = time.perf_counter()
            if default:
                rs = run_shared([cfgs[i] for i in g], progress=progress, write=write_runs)
            else:
                rs = [run(cfgs[i], progress=progress, write=write_runs) for i in g]
            secs = time.perf_counter() - t0
            for i, r in zip(g, rs):
                got[i] = (r, secs, len(g))
        for i in range(len(cfgs)):
            yield got[i]
        return
    inputs: list[_Inputs] = []
    items = []
    if default:
        index: dict[tuple, int] = {}
        for g in groups:
            key = _inputs_key(cfgs[g[0]])
            if key not in index:
                index[key] = len(inputs)
                inputs.append(_load_inputs(cfgs[g[0]], progress))
                for msg in inputs[-1].warnings:
                    warnings.warn(msg, stacklevel=2)
            items.append(([cfgs[i] for i in g], index[key]))
        log(f"{len(inputs)} feature input(s) loaded here, shipped once to the {engine.name} engine")
    else:  # a replaced runner (tests): it reads what it reads
        items = [([cfgs[i] for i in g], None) for g in groups]
    errors = []
    log(f"{len(groups)} training group(s) on the {engine.name} engine")
    done = 0
    for o in engine.map(_run_group, items, shared=(run, inputs)):
        g = groups[o.index]
        if not o.ok:
            errors.append(f"{'; '.join(keys[i] for i in g)}: {o.error}")
            continue
        rs, secs = o.value
        done += 1
        log(f"[{done}/{len(groups)}] {'; '.join(keys[i] for i in g)} ({secs:.1f} s)")
        for i, r in zip(g, rs):
            got[i] = (r, secs, len(g))
            if write_runs and cfgs[i].out:
                write_run(r, cfgs[i].out)
    if errors:
        raise AblationError(f"{len(errors)} training group(s) failed on the {engine.name} engine: " + "; ".join(errors))
    for i in range(len(cfgs)):
        yield got[i]


def _fusion_options(fusions: Sequence[str], options: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each fusion's share of ``options`` (``--gate-top``, ``--late-mode`` ...): the ones its
    strategy names (:meth:`blemore.fusion.Fusion.option_names`); an option none of ``fusions``
    takes is an :class:`AblationError` saying which fusions take it."""
    names = {f: FUSIONS.get(f).option_names() for f in fusions}
    stray = [k for k in options if not any(k in n for n in names.values())]
    if stray:
        owners = {k: [f for f in list_fusions() if k in FUSIONS.get(f).option_names()] for k in stray}
        raise AblationError("fusion option(s) taken by none of the fusions compared (" + ", ".join(fusions) + "): "
                            + "; ".join(f"{k!r} (taken by {', '.join(owners[k]) or 'no fusion'})" for k in stray))
    return {f: {k: v for k, v in options.items() if k in names[f]} for f in fusions}


def run_ablation(
    base,
    heads: Sequence[str | HeadSpec] | str,
    norms: Sequence[str] = ("off",),
    fusions: Sequence[str] | None = None,
    *,
    out: str | os.PathLike | None = None,
    n_groups: int | str = "auto",
    reference: str = REFERENCE_HEAD,
    progress: bool = True,
    write_runs: bool = True,
    log: Callable[[str], None] | None = None,
    run: Callable | None = None,
    engine: Any = None,
    variants: Sequence[tuple[str, Mapping[str, Any]]] | None = None,
    share: bool = True,
) -> AblationResult:
    """Run every (head, actor-norm mode, fusion) combination on ``base``'s data and folds.

    ``base`` is an :class:`~blemore.config.ExperimentConfig` (its ``head``, ``transforms``,
    ``fusion`` and ``out`` are replaced per configuration). ``norms`` are ``--actor-norm``
    modes (``off``, ``on``, ``cluster``); ``fusions`` registered fusion names (ignored, i.e.
    just ``base.fusion``, with a single feature source), each given the ``base.fusion_options``
    it takes (``top`` to gated, ``mode`` to the late fusions ...; one that none of them takes is
    an error). The reference (``reference`` head,
    actor norm ``off``, the first fusion) is added when not among the combinations. Writes
    ``ablation.md`` and ``ablation.json`` into ``out`` (when given), each run into
    ``out/<configuration>``. ``run`` replaces :func:`blemore.experiment.run_experiment`
    (tests). ``engine`` (a :class:`blemore.engines.Engine`) runs the configurations, one item
    each, with the same results as ``None`` (one after another here); the driver loads the
    metadata and features once per distinct input and ships them in the engine's ``shared``
    (one copy per Ray node), so workers need no access to the feature stores.
    ``variants``: ``(label, config overrides)`` pairs crossed with every combination (e.g.
    ``("thresholds=per-actor", {"thresholds": "per-actor"})``); the first is the reference's.

    Configurations that differ only in what never changes a trained model
    (:data:`blemore.experiment.EVAL_ONLY_FIELDS`: ``thresholds``, ``adapt``, names and
    places) form one training group and share every training
    (:func:`blemore.experiment.run_shared`: each configuration's results, run folder and
    bundle are the ones it gets alone); the log and ``settings["training_groups"]`` say how
    many groups trained. On an engine, one item per group. ``share`` False trains every
    configuration on its own (the same results, more trainings; for comparisons).
    """
    log = log or (lambda msg: None)
    run = run or run_experiment
    t_start = time.perf_counter()
    head_specs = parse_heads(heads)
    norms = parse_list(norms, ACTOR_NORM_MODES, "actor-norm mode") or ["off"]
    if len(base.features) > 1:
        fusions = parse_list(fusions, list_fusions(), "fusion") or [base.fusion]
    else:
        fusions = [base.fusion]
    fusion_options = _fusion_options(fusions, base.fusion_options) if len(base.features) > 1 else None
    ref_spec = parse_heads(reference)[0]
    variants = list(variants or [("", {})])
    overrides = dict((label, dict(o)) for label, o in variants)
    combos = [(h, n, f, v) for h in head_specs for n in norms for f in fusions for v, _ in variants]
    ref_combo = (ref_spec, "off", fusions[0], variants[0][0])
    if ref_combo not in combos:
        combos.insert(0, ref_combo)
        log(f"adding the reference configuration ({ref_spec.label}, actor norm off, {fusions[0]})")

    def key_of(h: HeadSpec, n: str, f: str, v: str = "") -> str:
        parts = [h.label, f"norm-{n}"]
        if len(base.features) > 1:
            parts.append(f)
        if v:
            parts.append(v)
        return " / ".join(parts)

    out_dir = Path(out) if out else None
    rows: list[AblationRow] = []
    cfgs = []
    for h, n, f, v in combos:
        name = _slug(f"{h.label}_norm-{n}" + (f"_{f}" if len(base.features) > 1 else "") + (f"_{v}" if v else ""))
        cfgs.append(base.replace(head=h.name, head_options=dict(h.options), transforms=actor_norm_transforms(n, n_groups),
                                 fusion=f,
                                 fusion_options=dict(fusion_options[f] if fusion_options else base.fusion_options),
                                 name=name, out=str(out_dir / name) if out_dir else None, **overrides[v]))
    keys = [key_of(*c) for c in combos]
    for (h, n, f, v), cfg, (r, seconds, shared) in zip(combos, cfgs, _run_configs(cfgs, run, progress, write_runs, log,
                                                                                  keys, engine, share)):
        key = key_of(h, n, f, v)
        res = r.results
        val = res["validation"]
        rows.append(AblationRow(
            key=key, head=h, actor_norm=n, fusion=f,
            validation={m: {k: val[m][k] for k in ("mean", "std", "folds")} for m in METRICS},
            test={m: res["test"][m] for m in METRICS} if res.get("test") else None,
            seconds=seconds, run_dir=cfg.out,
            folds=[int(x["fold"]) for x in val["folds"]], epochs=[int(x["epoch"]) for x in val["folds"]],
            weights=[x.get("weights") for x in val["folds"]] if len(base.features) > 1 else None, variant=v,
            shared=shared))
    ref_key = key_of(*ref_combo)
    ref_row = next(r for r in rows if r.key == ref_key)
    by_cell = {(r.head.label, r.actor_norm, r.fusion, r.variant): r for r in rows}
    for r in rows:
        if r.folds != ref_row.folds:
            raise AblationError(f"configuration {r.key} ran on folds {r.folds}, the reference on {ref_row.folds}")
        r.vs_reference = {m: paired_differences(r.validation[m]["folds"], ref_row.validation[m]["folds"]) for m in METRICS}
        ph = by_cell.get((ref_spec.label, r.actor_norm, r.fusion, r.variant))
        if ph is not None and ph is not r:
            r.vs_paper_head = {m: paired_differences(r.validation[m]["folds"], ph.validation[m]["folds"]) for m in METRICS}
    grouping = None
    if any(n != "off" for n in norms) and base.metadata:
        try:
            grouping = _grouping_report(base, n_groups)
        except (ValueError, KeyError) as e:  # a report, not a reason to lose the ablation
            grouping = {"error": str(e)}
    settings = {"features": [str(f) for f in base.features], "preset": base.preset, "pooling": base.pooling,
                "heads": [h.label for h in head_specs], "actor_norm": list(norms), "fusions": list(fusions),
                "variants": [v for v, _ in variants if v],
                "configurations": len(cfgs), "training_groups": len(_training_groups(cfgs, share and run is run_experiment)),
                "n_groups": n_groups, "seed": base.seed, "train": dict(base.train),
                "test_metadata": base.test_metadata}
    result = AblationResult(rows, ref_key, base.selection, settings,
                            grouping if grouping and "error" not in grouping else None,
                            time.perf_counter() - t_start)
    if grouping and "error" in grouping:
        result.settings["grouping_error"] = grouping["error"]
    if out_dir is not None:
        _atomic_write(out_dir / "ablation.json", (json.dumps(result.as_dict(), indent=2, default=str) + "\n").encode())
        _atomic_write(out_dir / "ablation.md", result.markdown().encode())
    return result
