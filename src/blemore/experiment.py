"""The experiment runner: actor-disjoint cross-validation, honest (nested) or the paper's
optimistic selection, test evaluation, trivial baselines.

Protocol (:func:`run_experiment`):

1. The training clips (labelled, ``split == "train"``) keep their metadata folds (or get
   actor-disjoint ones, :func:`blemore.dataset.ensure_folds`). Features of every source are
   pooled and joined by clip id (:func:`blemore.features.load_features`).
2. A *job* trains one head per fusion group on all training clips outside a set of folds
   (transforms such as standardisation are fitted on those clips only) and records the
   outputs on the left-out folds after every evaluated epoch.
3. Selection of the training length (epoch), late-fusion weights and decoder parameters
   (alpha, beta) maximises ``0.5 * ACC_presence + 0.5 * ACC_salience``:

   * ``selection="nested"`` (default): for held-out fold ``k``, on the pooled outputs of the
     inner folds ``j != k``, each predicted by a model trained without ``{j, k}``; the choice
     is then applied unchanged to fold ``k``. The fold-``k`` outputs are read only to score.
     Models trained without ``{j, k}`` serve both outer folds ``j`` and ``k``, so 5 folds need
     15 trainings (5 outer + 10 pairs), not 25.
   * ``selection="paper"``: on fold ``k`` itself, as the paper did (optimistic).

   Small corpora: ``folds="loso"`` makes one fold per actor; without folds in the metadata and
   fewer actors than ``folds``, each actor is a fold. With fewer than three folds nested
   selection has no second fold to hold out, so it uses inner folds made within each
   training part (by actor, or by clip when the part has one actor); the report says so.
   Without blends salience is undefined: null in ``results.json``, "n/a (no blends)" in
   ``results.md``, with accuracy, UAR, macro-F1 and a 6x6 confusion matrix instead.

4. Test: the epoch, weights and thresholds are chosen on the pooled out-of-fold outputs of
   the 5 outer models; a final model is trained on all training clips for that many epochs,
   the test clips are decoded with those thresholds, scored when labelled, and a challenge
   submission is always produced.
5. Trivial baselines: the most frequent single emotion and the most frequent blend
   configuration of the training part, predicted for every clip of the evaluated part.

Shared trainings (:func:`run_shared`, used by the ablation): ``--thresholds`` acts only when
recorded outputs are decoded and ``--adapt`` only on the evaluated sets' features (training
never sees them), so configurations that differ only in those (:data:`EVAL_ONLY_FIELDS`)
train the same models. One :class:`Experiment` trains each job once and records every
evaluated set under each adapt mode of the group (:func:`adapt_eval_name`); each
configuration selects, decodes and reports on its :meth:`Experiment.variant` view, with the
results of running it alone. :func:`run_experiment` is ``run_shared([cfg])``.

The runner never branches on head names: heads come from the registry and bring their own
decoder (:mod:`blemore.heads.base`).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import os
import sys
import time
import warnings
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from blemore.bundle import ModelBundle
from blemore.config import ExperimentConfig
from blemore.dataset import ensure_folds, leave_one_actor_out, load_metadata
from blemore.decoders import DecoderFit
from blemore.errors import BlemoreError
from blemore.features import FeatureSet, TransformChain, load_features
from blemore.adapt import apply_stats, describe as describe_adapt, fit_stats
from blemore.fusion import Fusion, create_fusion
from blemore.heads.base import Head, create_head
from blemore.heads.training import EvalSet, FitHistory, TrainSpec, aggregate_rows
from blemore.labels import (
    EMOTIONS,
    INVALID,
    N_TARGETS,
    TARGET_IS_BLEND,
    TARGET_SOFT,
    TARGET_TO_MASK,
    TARGETS,
)
from blemore.metrics import per_class, per_configuration, score_codes, single_emotion_scores
from blemore.normalise import actor_norm_summary, identity_rows
from blemore.pooling import Pooling
from blemore.results import RunResult
from blemore.predictions import code_names
from blemore.report import write_run
from blemore.submission import submission_dict
from blemore.thresholds import ActorThresholds, fit_identity

__all__ = [
    "run_experiment", "run_shared", "train_model", "Experiment", "RunResult", "Selection", "Part", "Job",
    "trivial_targets", "set_threads", "torch_threads", "resolve_threads", "ExperimentError", "submission_dict",
    "training_key", "training_differences", "EVAL_ONLY_FIELDS", "adapt_eval_name",
]


class ExperimentError(BlemoreError, ValueError):
    """Inputs that cannot make an experiment (no clips, one fold, unlabelled training clips)."""


def resolve_threads(n: int | None = None) -> int:
    """``n``, or the CPUs this process may use when ``n`` is None (at least 1)."""
    if n is None:
        try:
            n = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            n = os.cpu_count() or 1
    return max(1, int(n))


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads for the whole process (default: the CPUs this process may
    use) and return the count. Library code uses :func:`torch_threads` instead."""
    import torch

    n = resolve_threads(n)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


@contextlib.contextmanager
def torch_threads(n: int | None = None):
    """Run the block with torch's intra-op threads set to ``n`` and put the caller's count back
    afterwards (no process-wide side effect)."""
    import torch

    before = torch.get_num_threads()
    n = resolve_threads(n)
    if n != before:
        torch.set_num_threads(n)
    try:
        yield n
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _in_threads(method):
    """Run an :class:`Experiment` method under ``torch_threads(self.threads)``."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with torch_threads(self.threads):
            return method(self, *args, **kwargs)
    return wrapper


# ----------------------------------------------------------------------------- data types
@dataclass
class Part:
    """One trained head of one fusion group, with its fitted transforms."""

    sources: tuple[str, ...]
    chain: TransformChain
    head: Head
    history: FitHistory
    adapt: dict | None = None  # --adapt: the training statistics (blemore.adapt.fit_stats; bundles save them)
    adapt_by_mode: dict[str, dict | None] = field(default_factory=dict)  # every recorded mode's statistics


def adapt_eval_name(name: str, mode: str) -> str:
    """The name under which :meth:`Experiment.train_job` records eval set ``name`` adapted with
    ``mode`` when ``mode`` is one of the experiment's extra ``adapt_modes`` (the config's own
    mode keeps the plain name)."""
    return f"{name}|adapt={mode}"


@dataclass
class Job:
    """Heads trained without the clips of folds ``exclude`` and their recorded outputs.

    The plain eval names hold the outputs under ``--adapt adapt_mode`` (the training config's
    mode); an experiment with extra ``adapt_modes`` also records each eval set under
    :func:`adapt_eval_name` per extra mode. :meth:`for_adapt` is the job as a run with another
    recorded mode sees it."""

    exclude: frozenset
    evals: dict[str, np.ndarray]  # eval name -> clip positions in the feature set
    parts: list[Part]
    seconds: float
    train_clips: list[str] = field(default_factory=list)
    adapt_mode: str = "none"  # the --adapt mode of the plain eval names' outputs

    def outputs(self, name: str) -> list[np.ndarray]:
        """Per group: (E, n_clips, K) outputs on eval set ``name``."""
        return [p.history.outputs[name] for p in self.parts]

    def for_adapt(self, mode: str) -> "Job":
        """This job as a run with ``--adapt mode`` would have trained it: the same heads (training
        never sees the eval sets, and each eval set is predicted on its own), with the outputs
        recorded under ``mode`` as the plain eval names and ``mode``'s training statistics as
        each part's ``adapt`` (what a bundle saves). ``self`` when ``mode`` is the job's own;
        :class:`ExperimentError` when ``mode`` was not recorded."""
        if mode == self.adapt_mode:
            return self
        missing = [i for i, p in enumerate(self.parts) if mode not in p.adapt_by_mode]
        if missing:
            raise ExperimentError(f"the job without folds {sorted(self.exclude)} recorded no outputs under "
                                  f"--adapt {mode} (give it in the experiment's adapt_modes)")
        parts = [replace(p, adapt=p.adapt_by_mode[mode],
                         history=replace(p.history, outputs={n: p.history.outputs[adapt_eval_name(n, mode)]
                                                             for n in self.evals}))
                 for p in self.parts]
        return replace(self, parts=parts, adapt_mode=mode)

    @property
    def epochs(self) -> list[int]:
        return self.parts[0].history.epochs


@dataclass
class Selection:
    """What selection chose, and the scores it saw on its own data."""

    epoch: int
    weights: list[float] | None
    params: dict
    acc_presence: float
    acc_salience: float
    score: float
    curve: list[float] = field(default_factory=list)  # selection score per recorded epoch

    def as_dict(self) -> dict:
        return {"epoch": self.epoch, "weights": self.weights, "params": self.params,
                "acc_presence": self.acc_presence, "acc_salience": self.acc_salience, "score": self.score}


def _agg(values: Sequence[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()) if len(v) else 0.0, "std": float(v.std()) if len(v) else 0.0,
            "folds": [float(x) for x in v]}


def trivial_targets(train_target: np.ndarray) -> dict[str, int]:
    """The trivial baselines' constant predictions from training targets: the most frequent
    single emotion and the most frequent blend configuration (ties: lowest target index)."""
    t = np.asarray(train_target)
    counts = np.bincount(t[t >= 0], minlength=N_TARGETS)
    single = int(np.argmax(counts[:6]))
    blend = int(6 + np.argmax(counts[6:]))
    return {"single": single, "blend": blend}


EVAL_ONLY_FIELDS = ("thresholds", "identity_groups", "adapt", "name", "out", "model_dir", "plots")
"""Config fields that never change what is trained: thresholds are fitted and applied when
decoding recorded outputs, ``--adapt`` changes only the evaluated sets' features (training
never sees them), the rest name and place the outputs. Configurations that differ only in
these share their trainings (:meth:`Experiment.variant`, :func:`run_shared`)."""


def training_differences(a: ExperimentConfig, b: ExperimentConfig) -> list[str]:
    """The config fields outside :data:`EVAL_ONLY_FIELDS` in which ``a`` and ``b`` differ
    (empty: they train the same models)."""
    return [f.name for f in dataclasses.fields(a)
            if f.name not in EVAL_ONLY_FIELDS and getattr(a, f.name) != getattr(b, f.name)]


def training_key(cfg: ExperimentConfig) -> str:
    """A key equal for configurations that train the same models (see :func:`training_differences`)."""
    return repr([(f.name, getattr(cfg, f.name)) for f in dataclasses.fields(cfg) if f.name not in EVAL_ONLY_FIELDS])


def _seed_for(base: int, exclude: frozenset, group: int) -> int:
    key = ",".join(str(x) for x in sorted(exclude)) + f"|{group}"
    return (int(base) * 1_000_003 + zlib.crc32(key.encode())) % (2**31 - 1)


# ----------------------------------------------------------------------------- runner
class Experiment:
    """A prepared experiment: metadata, folds and joined features, ready to train jobs.

    ``table`` / ``test_table`` / ``features`` may be given directly (e.g. by tests); otherwise
    they are read from the config's paths.
    """

    def __init__(self, cfg: ExperimentConfig, *, table: pd.DataFrame | None = None,
                 test_table: pd.DataFrame | None = None, features: FeatureSet | None = None,
                 progress: bool = True, log: Callable[[str], None] | None = None, engine: Any = None,
                 adapt_modes: Sequence[str] = ()):
        self.cfg = cfg
        # --adapt modes recorded besides cfg.adapt (shared trainings, see variant())
        self.adapt_modes = tuple(dict.fromkeys([cfg.adapt, *adapt_modes]))
        self.engine = engine  # a blemore.engines.Engine for the trainings; None: one by one, here
        self.progress = progress
        self.log = log or (lambda msg: None)
        self.spec: TrainSpec = cfg.train_spec()
        probe = create_head(cfg.head, **cfg.head_options)
        # the head says what its rows are (pooled statistics, windows, or frame sequences)
        self.pooling = probe.input_pooling(Pooling(kind=cfg.pooling, window=cfg.window, stride=cfg.stride))
        self.fusion: Fusion = create_fusion(cfg.fusion, **cfg.fusion_options)
        self.threads = resolve_threads(cfg.threads)  # set around the work only (see _in_threads)
        self._prepare(table, test_table, features)
        self.fusion.head_for(probe, None)  # refuses a head the fusion cannot use, before any training
        self.thresholds = ActorThresholds(cfg.thresholds, identity_groups=cfg.identity_groups)  # global: the decoder's own pair
        w = tuple(cfg.score_weights)
        self.decoder = probe.decoder(cfg.alphas, cfg.betas, w)  # type: ignore[arg-type]
        self.probe = probe
        self.jobs: dict[frozenset, Job] = {}
        self._bar = None

    def variant(self, cfg: ExperimentConfig) -> "Experiment":
        """This experiment as a run of ``cfg`` sees it, sharing its data, folds and trained jobs.

        ``cfg`` may differ from ``self.cfg`` only in :data:`EVAL_ONLY_FIELDS` (what decoding,
        evaluation and reporting use: ``thresholds``, ``adapt``, ``name``, ``out``,
        ``model_dir``, ``plots``), and ``cfg.adapt`` must be among ``self.adapt_modes``; else
        :class:`ExperimentError`. The view has ``cfg``'s thresholds and sees every job through
        :meth:`Job.for_adapt` (``cfg.adapt``'s outputs and statistics), so selecting, applying
        and reporting on it gives what ``Experiment(cfg)`` would after the same trainings.
        Jobs trained on the view itself (e.g. its :meth:`train_final`) are its own."""
        diff = training_differences(self.cfg, cfg)
        if diff:
            raise ExperimentError(f"configuration {cfg.run_name()!r} cannot share the trainings of "
                                  f"{self.cfg.run_name()!r}: they differ in {', '.join(diff)}")
        if cfg.adapt not in self.adapt_modes:
            raise ExperimentError(f"configuration {cfg.run_name()!r}: --adapt {cfg.adapt} was not recorded "
                                  f"(adapt_modes {list(self.adapt_modes)})")
        view = copy.copy(self)
        view.cfg = cfg
        view.adapt_modes = (cfg.adapt,)
        view.thresholds = ActorThresholds(cfg.thresholds, identity_groups=cfg.identity_groups)
        view.jobs = {ex: job.for_adapt(cfg.adapt) for ex, job in self.jobs.items()}
        view._bar = None
        return view

    # -- preparation --------------------------------------------------------------------
    def _prepare(self, table, test_table, features) -> None:
        cfg = self.cfg
        if table is None:
            if not cfg.metadata:
                raise ExperimentError("no training metadata given (metadata = train_metadata.csv)")
            table = load_metadata(cfg.metadata)
        if test_table is None and cfg.test_metadata:
            test_table = load_metadata(cfg.test_metadata, split="test")
        train = table[table["split"] == "train"].reset_index(drop=True)
        unlabelled = train["clip_id"][train["target"] < 0].tolist()
        if unlabelled:
            raise ExperimentError(f"{len(unlabelled)} training clip(s) have no label, e.g. {unlabelled[:5]}")
        if len(train) == 0:
            raise ExperimentError("the metadata has no training clips")
        gcol = "gender" if "gender" in train.columns and train["gender"].notna().all() else None
        self.fold_note: str | None = None
        n_actors = train["actor"].nunique()
        if str(cfg.folds).lower() == "loso":  # leave one actor out, whatever folds the metadata has
            train = leave_one_actor_out(train)
        elif (train["fold"] < 0).all() and 2 <= n_actors < int(cfg.folds):  # a small corpus
            self.fold_note = f"{n_actors} actors: {n_actors} actor-disjoint folds instead of {cfg.folds}"
            train = ensure_folds(train, k=n_actors, seed=cfg.fold_seed, gender_column=gcol)
        else:
            train = ensure_folds(train, k=int(cfg.folds), seed=cfg.fold_seed, gender_column=gcol)
        test = None if test_table is None else test_table.reset_index(drop=True)
        if test is not None:
            clash = set(test["clip_id"]) & set(train["clip_id"])
            if clash:
                raise ExperimentError(f"{len(clash)} clip(s) are both training and test clips, e.g. {sorted(clash)[:5]}")
        ids = train["clip_id"].tolist() + ([] if test is None else test["clip_id"].tolist())
        if features is None:
            if not cfg.features:
                raise ExperimentError("no feature source given")
            features = load_features(cfg.features, ids, self.pooling, missing=cfg.missing, progress=self.progress)
        else:
            features = features.subset([c for c in ids if c in features.index])
        self.features = features
        kept = set(features.clip_ids)
        self.dropped = [c for c in ids if c not in kept]
        train = train[train["clip_id"].isin(kept)].reset_index(drop=True)
        if test is not None:
            test = test[test["clip_id"].isin(kept)].reset_index(drop=True)
        self.train_table, self.test_table = train, test
        self.train_pos = np.array([features.index[c] for c in train["clip_id"]], dtype=np.int64)
        self.test_pos = None if test is None else np.array([features.index[c] for c in test["clip_id"]], dtype=np.int64)
        n = len(features)
        self.target = np.full(n, INVALID, dtype=np.int64)
        self.target[self.train_pos] = train["target"].to_numpy()
        if test is not None:
            self.target[self.test_pos] = test["target"].to_numpy()
        self.fold = np.full(n, -1, dtype=np.int64)
        self.fold[self.train_pos] = train["fold"].to_numpy()
        self.actor = np.array([None] * n, dtype=object)
        self.actor[self.train_pos] = train["actor"].to_numpy()
        if test is not None:
            self.actor[self.test_pos] = test["actor"].to_numpy()
        self.clip_ids = np.array(features.clip_ids, dtype=object)
        self.folds = sorted(int(f) for f in np.unique(self.fold[self.train_pos]))
        if len(self.folds) < 2:
            raise ExperimentError(f"cross-validation needs at least 2 folds, the training clips have {self.folds}")
        self.groups = self.fusion.groups(features.sources)
        self.test_labelled = bool(test is not None and len(test) and (test["target"] >= 0).all())
        self._make_inner_folds()

    def _make_inner_folds(self) -> None:
        """With fewer than three folds, nested selection cannot hold out a second fold (nothing
        would be left to train on), so each outer fold's training part gets its own inner folds:
        by actor (up to 3) when it has several actors, else by clip (3 seeded random parts).
        Inner folds get ids above every real fold (``self.inner``: id -> clip positions;
        ``self.inner_of``: outer fold -> its inner ids); :meth:`positions_without` leaves
        them out like real folds. ``self.inner_note`` says what was done (None: not needed)."""
        self.inner: dict[int, np.ndarray] = {}
        self.inner_of: dict[int, list[int]] = {}
        self.inner_note: str | None = None
        if len(self.folds) >= 3:
            return
        rng = np.random.default_rng(self.cfg.fold_seed)
        next_id = max(self.folds) + 1
        kinds = set()
        for k in self.folds:
            pos = self.positions_without(frozenset({k}))
            actors = sorted({str(a) for a in self.actor[pos]})
            if len(actors) >= 2:
                m = min(3, len(actors))
                kinds.add(f"by actor ({m} folds)")
                order = [actors[i] for i in rng.permutation(len(actors))]
                part_of = {a: i % m for i, a in enumerate(order)}
                parts = [pos[np.array([part_of[str(a)] == i for a in self.actor[pos]])] for i in range(m)]
            else:
                m = min(3, len(pos))
                if m < 2:
                    raise ExperimentError(f"nested selection: the training part without fold {k} has {len(pos)} "
                                          "clip(s), too few for inner folds; use --selection paper")
                kinds.add(f"by clip ({m} folds, one actor)")
                parts = [np.sort(p) for p in np.array_split(rng.permutation(pos), m)]
            self.inner_of[k] = []
            for p in parts:
                self.inner[next_id] = p
                self.inner_of[k].append(next_id)
                next_id += 1
        self.inner_note = (f"{len(self.folds)} actor folds are too few to hold out a second fold, so nested "
                           f"selection used inner folds made within each training part: {', '.join(sorted(kinds))}")

    def fold_positions(self, k: int) -> np.ndarray:
        return self.train_pos[self.fold[self.train_pos] == k]

    def positions_without(self, exclude: frozenset) -> np.ndarray:
        pos = self.train_pos[~np.isin(self.fold[self.train_pos], list(exclude))]
        for e in exclude:
            if e in getattr(self, "inner", {}):
                pos = pos[~np.isin(pos, self.inner[e])]
        return pos

    # -- training -----------------------------------------------------------------------
    def _rows(self, sources: Sequence[str], pos: np.ndarray):
        X, owner = self.features.rows(sources, pos)
        rows_clip = pos if owner is None else pos[owner]
        return X, owner, rows_clip

    @_in_threads
    def train_job(self, exclude: frozenset, evals: Mapping[str, np.ndarray], spec: TrainSpec | None = None,
                  train_pos: np.ndarray | None = None) -> Job:
        """Train one head per fusion group on the training clips outside folds ``exclude``
        (or on ``train_pos``) and record outputs on ``evals`` (name -> clip positions)."""
        spec = spec or self.spec
        t0 = time.perf_counter()
        pos = self.positions_without(exclude) if train_pos is None else np.asarray(train_pos)
        if len(pos) == 0:
            raise ExperimentError(f"no training clips left without folds {sorted(exclude)}")
        overlap = [n for n, e in evals.items() if np.isin(e, pos).any()]
        if overlap:
            raise ExperimentError(f"eval set(s) {overlap} share clips with the training clips")
        if self._bar is not None:
            self._bar.set_postfix_str(f"without folds {sorted(exclude)}" if exclude else "all training clips")
        parts = []
        for gi, sources in enumerate(self.groups):
            X, _, rc = self._rows(sources, pos)
            chain = TransformChain(self.cfg.transforms, frames=self.pooling.sequence_length)
            X = chain.fit_transform(X, clip_ids=self.clip_ids[rc].tolist(), groups=self.actor[rc].tolist())
            stats = fit_stats(self.cfg.adapt, X, self.pooling.sequence_length)  # None for "none"
            by_mode = {m: stats if m == self.cfg.adapt else fit_stats(m, X, self.pooling.sequence_length)
                       for m in self.adapt_modes}
            eval_sets = {}
            for name, epos in evals.items():
                Xe, own, erc = self._rows(sources, epos)
                Xe = chain.transform(Xe, clip_ids=self.clip_ids[erc].tolist(), groups=self.actor[erc].tolist())
                Xt, Xe = Xe, apply_stats(stats, Xe, self.pooling.sequence_length)  # "none": unchanged
                eval_sets[name] = EvalSet(Xe, own)
                for m in self.adapt_modes[1:]:  # extra modes: the same clips, their own name (Job.for_adapt)
                    eval_sets[adapt_eval_name(name, m)] = EvalSet(
                        apply_stats(by_mode[m], Xt, self.pooling.sequence_length), own)
            head = self.fusion.head_for(create_head(self.cfg.head, **self.cfg.head_options),
                                        [self.features.dim(s) for s in sources])
            if self.cfg.seeds > 1:  # --seeds K: K copies, outputs averaged
                head = head.wrapped("seeds", k=self.cfg.seeds)
            tgt = self.target[rc]
            hist = head.fit(X, TARGET_SOFT[tgt].astype(np.float32), target=tgt, groups=self.actor[rc],
                            eval_sets=eval_sets, spec=spec, seed=_seed_for(self.cfg.seed, exclude, gi),
                            progress=self._tick)
            parts.append(Part(tuple(sources), chain, head, hist, stats, by_mode))
        job = Job(frozenset(exclude), dict(evals), parts, time.perf_counter() - t0,
                  self.clip_ids[pos].tolist(), self.cfg.adapt)
        return job

    def _tick(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def _job(self, exclude: frozenset, evals: Mapping[str, np.ndarray]) -> Job:
        if exclude not in self.jobs:
            self.jobs[exclude] = self.train_job(exclude, evals)
        return self.jobs[exclude]

    def __getstate__(self) -> dict:
        # what an engine's worker needs to train: no progress bar, log callback, engine or jobs
        state = dict(self.__dict__)
        state.update(_bar=None, log=None, engine=None, jobs={})
        return state

    def _train_jobs(self, plan: Sequence[tuple[frozenset, Mapping[str, np.ndarray]]],
                    spec: TrainSpec | None = None) -> list[Job]:
        """Train the jobs of ``plan`` here, one by one, or as one item each on ``self.engine``
        (this experiment shipped once; each worker trains with the same seeds and torch thread
        count, so the jobs are the ones this process would have trained)."""
        eng = self.engine
        if eng is None or eng.inline:
            return [self.train_job(exclude, evals, spec=spec) for exclude, evals in plan]
        per_job = len(self.groups) * (spec or self.spec).epochs
        jobs: list[Job | None] = [None] * len(plan)
        errors = []
        for o in eng.map(_train_remote, [(ex, dict(ev), spec) for ex, ev in plan], shared=self):
            if o.ok:
                jobs[o.index] = o.value
            else:
                errors.append(f"without folds {sorted(o.item[0])}: {o.error}")
            self._tick(per_job)
        if errors:
            raise ExperimentError(f"{len(errors)} training(s) failed on the {eng.name} engine: " + "; ".join(errors))
        return jobs  # type: ignore[return-value]

    # -- selection ----------------------------------------------------------------------
    @_in_threads
    def select(self, outputs: Sequence[np.ndarray], true_target: np.ndarray, epochs: Sequence[int]) -> Selection:
        """Choose epoch, fusion weights and decoder parameters on labelled outputs
        (one (E, n, K) array per fusion group); the first best epoch wins."""
        best: tuple[float, int, Any, DecoderFit] | None = None
        curve = []
        for e in range(len(epochs)):
            per_group = [o[e] for o in outputs]
            w = self.fusion.select_weights(per_group, true_target, self.probe, self.decoder)
            comb = self.fusion.combine(per_group, w, self.probe)
            fit = self.decoder.calibrate(comb, true_target)
            curve.append(fit.score)
            if best is None or fit.score > best[0] + 1e-12:
                best = (fit.score, e, w, fit, comb)
        assert best is not None
        _, e, w, fit, comb = best
        params = {**fit.params, **self.thresholds.fit(comb, fit.params)}  # per-actor: label-free quantiles
        return Selection(int(epochs[e]), None if w is None else [float(x) for x in w], params,
                         fit.acc_presence, fit.acc_salience, fit.score, curve)

    @_in_threads
    def apply(self, outputs: Sequence[np.ndarray], epochs: Sequence[int], sel: Selection,
              groups: Sequence[Any] | None = None):
        """Combined outputs at the selected epoch and their ``(mask, target)`` codes (``groups``:
        the clips' actors, for per-actor thresholds)."""
        i = list(epochs).index(sel.epoch)
        comb = self.fusion.combine([o[i] for o in outputs], sel.weights, self.probe)
        mask, target = self.thresholds.decode(self.decoder, comb, sel.params, groups)
        return comb, mask, target

    def identity_projector(self):
        """Identity directions of the training actors (:func:`blemore.thresholds.fit_identity` on
        all training clips, the final model's training data), fitted once; None with fewer than 2 actors."""
        if not hasattr(self, "_identity"):
            self._identity = fit_identity(self.features, self.train_pos, self.actor[self.train_pos],
                                          self.pooling.sequence_length)
        return self._identity

    def eval_groups(self, pos: np.ndarray, sel: Selection) -> list:
        """The groups per-actor thresholds decode the evaluated clips ``pos`` by: their actors, and
        for clips of unknown actor (anonymised test clips) identity groups found by clustering
        (:meth:`ActorThresholds.resolve_groups`); only the actors when nothing needs them."""
        actors = list(self.actor[pos])
        if not self.thresholds.active or "q_alpha" not in sel.params:
            return actors
        return self.thresholds.resolve_groups(
            actors, self.identity_projector(),
            lambda: identity_rows(self.features, pos, self.pooling.sequence_length))

    # -- protocol -----------------------------------------------------------------------
    def plan(self, nested: bool) -> list[tuple[frozenset, dict[str, np.ndarray]]]:
        """The jobs cross-validation needs (outer jobs first)."""
        jobs = [(frozenset({k}), {f"fold{k}": self.fold_positions(k)}) for k in self.folds]
        if nested and self.inner_of:  # too few folds: inner folds within each training part
            for k in self.folds:
                jobs += [(frozenset({k, i}), {f"fold{i}": self.inner[i]}) for i in self.inner_of[k]]
        elif nested:
            for a in range(len(self.folds)):
                for b in range(a + 1, len(self.folds)):
                    j, k = self.folds[a], self.folds[b]
                    jobs.append((frozenset({j, k}), {f"fold{j}": self.fold_positions(j),
                                                     f"fold{k}": self.fold_positions(k)}))
        return jobs

    def train_cv(self, nested: bool | None = None) -> None:
        """Train the jobs cross-validation needs (:meth:`plan`) that are not in ``self.jobs`` yet."""
        nested = (self.cfg.selection == "nested") if nested is None else nested
        plan = [p for p in self.plan(nested) if p[0] not in self.jobs]
        n_parts = len(self.groups)
        if plan:
            self._open_bar(len(plan) * n_parts * self.spec.epochs, "cross-validation")
            try:
                for (exclude, _), job in zip(plan, self._train_jobs(plan)):
                    self.jobs[exclude] = job
            finally:
                self._close_bar()

    def cross_validate(self, nested: bool | None = None) -> dict:
        """Run the CV jobs (:meth:`train_cv`) and the per-fold selection; returns per-fold records."""
        nested = (self.cfg.selection == "nested") if nested is None else nested
        self.train_cv(nested)
        folds = []
        for k in self.folds:
            outer = self.jobs[frozenset({k})]
            pos_k = self.fold_positions(k)
            true_k = self.target[pos_k]
            if nested:
                inner_out: list[list[np.ndarray]] = [[] for _ in self.groups]
                inner_true = []
                for j in (self.inner_of[k] if self.inner_of else self.folds):
                    if j == k:
                        continue
                    job = self.jobs[frozenset({j, k})]
                    for g, o in enumerate(job.outputs(f"fold{j}")):
                        inner_out[g].append(o)
                    inner_true.append(self.target[self.inner[j] if self.inner_of else self.fold_positions(j)])
                sel = self.select([np.concatenate(o, axis=1) for o in inner_out], np.concatenate(inner_true),
                                  outer.epochs)
            else:
                sel = self.select(outer.outputs(f"fold{k}"), true_k, outer.epochs)
            comb, mask, target = self.apply(outer.outputs(f"fold{k}"), outer.epochs, sel, self.actor[pos_k])
            s = score_codes(mask, target, true_k)
            folds.append({"fold": k, "positions": pos_k, "outputs": comb, "mask": mask, "target": target,
                          "score": s, "selection": sel, "seconds": outer.seconds})
        return {"nested": nested, "folds": folds}

    def final_selection(self) -> Selection:
        """Epoch, weights and thresholds chosen on the pooled out-of-fold outputs of the outer
        models (never on test clips)."""
        outs: list[list[np.ndarray]] = [[] for _ in self.groups]
        true = []
        epochs = None
        for k in self.folds:
            job = self.jobs[frozenset({k})]
            epochs = job.epochs
            for g, o in enumerate(job.outputs(f"fold{k}")):
                outs[g].append(o)
            true.append(self.target[self.fold_positions(k)])
        return self.select([np.concatenate(o, axis=1) for o in outs], np.concatenate(true), epochs or [])

    def train_final(self, sel: Selection) -> Job:
        """Train on all training clips for ``sel.epoch`` epochs (outputs on test clips, if any)."""
        spec = replace(self.spec, epochs=sel.epoch, eval_every=sel.epoch, min_epochs=1)
        evals = {} if self.test_pos is None or len(self.test_pos) == 0 else {"test": self.test_pos}
        self._open_bar(len(self.groups) * sel.epoch, "final model")
        try:
            return self._train_jobs([(frozenset(), evals)], spec=spec)[0]
        finally:
            self._close_bar()

    def _open_bar(self, total: int, desc: str) -> None:
        if not self.progress:
            return
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=desc, unit="epoch", file=sys.stderr, dynamic_ncols=True)

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # -- trivial baselines ----------------------------------------------------------------
    def trivial(self, cv: dict) -> dict:
        out: dict[str, dict] = {"single": {}, "blend": {}}
        per = {"single": ([], []), "blend": ([], [])}
        for f in cv["folds"]:
            k = f["fold"]
            consts = trivial_targets(self.target[self.positions_without(frozenset({k}))])
            true_k = self.target[f["positions"]]
            for name, t in consts.items():
                pt = np.full(len(true_k), t, dtype=np.int64)
                s = score_codes(TARGET_TO_MASK[pt], pt, true_k)
                per[name][0].append(s["acc_presence"])
                per[name][1].append(s["acc_salience"])
        consts_all = trivial_targets(self.target[self.train_pos])
        for name in ("single", "blend"):
            out[name] = {"acc_presence": _agg(per[name][0]), "acc_salience": _agg(per[name][1]),
                         "prediction": TARGETS[consts_all[name]].name()}
            if self.test_labelled:
                tt = self.target[self.test_pos]
                pt = np.full(len(tt), consts_all[name], dtype=np.int64)
                s = score_codes(TARGET_TO_MASK[pt], pt, tt)
                out[name]["test"] = {"acc_presence": s["acc_presence"], "acc_salience": s["acc_salience"]}
        return out


# ----------------------------------------------------------------------------- entry points
def _train_remote(exp: Experiment, item: tuple) -> Job:
    """Engine item: one training (``exp.train_job`` sets the experiment's torch threads)."""
    exclude, evals, spec = item
    return exp.train_job(exclude, evals, spec=spec)


def _first_chain(job: Job | None) -> TransformChain | None:
    return job.parts[0].chain if job is not None and job.parts else None


def _actor_norm_report(exp: Experiment, final_job: Job | None) -> dict | None:
    """What per-actor normalisation did (:func:`blemore.normalise.actor_norm_summary`): the
    models that held each outer fold out, and the final model on the test clips."""
    folds = {k: (_first_chain(exp.jobs.get(frozenset({k}))), exp.actor[exp.fold_positions(k)]) for k in exp.folds}
    test = None
    if final_job is not None and exp.test_pos is not None and len(exp.test_pos):
        test = (_first_chain(final_job), exp.actor[exp.test_pos])
    return actor_norm_summary(exp.cfg.transforms, folds, test)


def _prediction_frame(exp: Experiment, pos: np.ndarray, outputs: np.ndarray, mask: np.ndarray,
                      target: np.ndarray, extra: Mapping[str, Any]) -> pd.DataFrame:
    proba = exp.probe.outputs_to_proba(outputs)
    true = exp.target[pos]
    df = pd.DataFrame({
        "clip_id": exp.clip_ids[pos],
        "actor": exp.actor[pos],
        **{k: v for k, v in extra.items()},
        "true": [TARGETS[t].name() if t >= 0 else "" for t in true],
        "pred": code_names(mask, target),
        "true_target": true,
        "pred_target": target,
        "pred_mask": mask,
    })
    for i, e in enumerate(EMOTIONS):
        df[f"p_{e}"] = np.round(proba[:, i].astype(np.float64), 6)
    return df


def run_experiment(cfg: ExperimentConfig, *, progress: bool = True, table: pd.DataFrame | None = None,
                   test_table: pd.DataFrame | None = None, features: FeatureSet | None = None,
                   final: bool | None = None, write: bool = True, engine: Any = None,
                   input_warnings: Sequence[str] = ()) -> RunResult:
    """Run the whole protocol for one config and (when ``cfg.out`` is set and ``write``)
    write the run folder (:func:`blemore.report.write_run`).

    ``input_warnings``: the warnings raised where ``table`` / ``test_table`` / ``features``
    were loaded elsewhere (the ablation's driver loads them once for every configuration);
    they are reported first, as if loading here had raised them.

    ``final`` trains the final model on all training clips (default: when there are test
    clips or ``cfg.model_dir`` is set). ``engine`` (a :class:`blemore.engines.Engine`) runs
    the trainings (folds, inner folds, final model); the results are those of ``None``
    (one by one in this process). It is :func:`run_shared` of ``[cfg]``.
    """
    return run_shared([cfg], progress=progress, table=table, test_table=test_table, features=features,
                      final=final, write=write, engine=engine, input_warnings=input_warnings)[0]


def run_shared(cfgs: Sequence[ExperimentConfig], *, progress: bool = True, table: pd.DataFrame | None = None,
               test_table: pd.DataFrame | None = None, features: FeatureSet | None = None,
               final: bool | None = None, write: bool = True, engine: Any = None,
               input_warnings: Sequence[str] = ()) -> list[RunResult]:
    """:func:`run_experiment` for each of ``cfgs``, with every model trained once for all of them.

    The configurations may differ only in :data:`EVAL_ONLY_FIELDS` (``thresholds``,
    ``adapt``, ``name``, ``out``, ``model_dir``, ``plots``; else :class:`ExperimentError`
    listing every difference), so they train the same models: one :class:`Experiment` (the
    first config, recording the evaluated sets under every ``adapt`` mode of the list) trains
    the cross-validation jobs once; each configuration then selects, decodes and reports on
    its :meth:`Experiment.variant`. Final models are shared by the configurations whose
    selection chose the same number of epochs (one training per distinct length). Each
    result, run folder (``write``) and bundle (``cfg.model_dir``) is the one
    ``run_experiment(cfg)`` gives, but for measured times (``timing``, ``train_seconds``:
    the shared trainings' times; ``timing.shared_by`` says how many configurations shared them).
    """
    cfgs = list(cfgs)
    if not cfgs:
        raise ExperimentError("no configuration given")
    problems = [f"{c.run_name()!r} differs from {cfgs[0].run_name()!r} in {', '.join(d)}"
                for c in cfgs[1:] for d in [training_differences(cfgs[0], c)] if d]
    if problems:
        raise ExperimentError(f"configurations that share trainings may differ only in {', '.join(EVAL_ONLY_FIELDS)}: "
                              + "; ".join(problems))
    for c in cfgs:
        c.validate(partial=features is not None)
    t_start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exp = Experiment(cfgs[0], table=table, test_table=test_table, features=features, progress=progress,
                         engine=engine, adapt_modes=[c.adapt for c in cfgs])
    feature_warnings = list(input_warnings) + [str(w.message) for w in caught]
    for msg in feature_warnings:
        warnings.warn(msg, stacklevel=3)
    t_cv = time.perf_counter()
    exp.train_cv()
    shared = {"prepare": t_cv - t_start, "cv": time.perf_counter() - t_cv, "n": len(cfgs)}
    finals: dict[int, tuple[Job, float]] = {}  # selected epochs -> final job (all modes recorded), its time
    return [_run_variant(exp, exp.variant(c), finals, shared, feature_warnings, final, write) for c in cfgs]


def _run_variant(trainer: Experiment, exp: Experiment, finals: dict, shared: Mapping[str, Any],
                 feature_warnings: list[str], final: bool | None, write: bool) -> RunResult:
    """The rest of the protocol for one configuration of :func:`run_shared`: ``exp`` is its
    view (CV jobs trained), ``trainer`` the experiment that trains (and records every adapt
    mode of) the final models, cached in ``finals`` by selected length."""
    cfg = exp.cfg
    t_view = time.perf_counter()
    cv = exp.cross_validate()  # the jobs are trained: selection and scoring only
    cv_seconds = shared["cv"] + time.perf_counter() - t_view
    folds = cv["folds"]
    val = {
        "acc_presence": _agg([f["score"]["acc_presence"] for f in folds]),
        "acc_salience": _agg([f["score"]["acc_salience"] for f in folds]),
        "selection": cfg.selection,
        "folds": [{
            "fold": f["fold"], "n_clips": f["score"]["n_clips"], "n_blends": f["score"]["n_blends"],
            "acc_presence": f["score"]["acc_presence"], "acc_salience": f["score"]["acc_salience"],
            "epoch": f["selection"].epoch, "params": f["selection"].params, "weights": f["selection"].weights,
            "selection_score": f["selection"].score, "train_seconds": round(f["seconds"], 3),
        } for f in folds],
    }
    pos_all = np.concatenate([f["positions"] for f in folds])
    mask_all = np.concatenate([f["mask"] for f in folds])
    tgt_all = np.concatenate([f["target"] for f in folds])
    pooled = score_codes(mask_all, tgt_all, exp.target[pos_all])
    val["pooled"] = {"acc_presence": pooled["acc_presence"], "acc_salience": pooled["acc_salience"],
                     "n_clips": pooled["n_clips"], "n_blends": pooled["n_blends"]}
    preds = pd.concat([
        _prediction_frame(exp, f["positions"], f["outputs"], f["mask"], f["target"],
                          {"fold": f["fold"], "epoch": f["selection"].epoch})
        for f in folds], ignore_index=True)
    results: dict[str, Any] = {
        "run": cfg.run_name(),
        "features": [Path(f).name for f in cfg.features] or exp.features.sources,
        "head": cfg.head, "preset": cfg.preset, "selection": cfg.selection,
        "fusion": exp.fusion.as_dict() if len(exp.features.sources) > 1 else None,
        "pooling": exp.pooling.as_dict(),
        "transforms": TransformChain(cfg.transforms).specs(),
        "validation": val,
        "trivial": exp.trivial(cv),
        "per_configuration": per_configuration(mask_all, tgt_all, exp.target[pos_all]),
        "per_class": per_class(mask_all, tgt_all, exp.target[pos_all]),
        "data": {"train_clips": len(exp.train_pos), "train_actors": int(pd.Series(exp.actor[exp.train_pos]).nunique()),
                 "folds": exp.folds, "test_clips": 0 if exp.test_pos is None else len(exp.test_pos),
                 "dropped_clips": exp.dropped, "missing": exp.features.missing.as_dict(),
                 "feature_dims": {s: exp.features.dim(s) for s in exp.features.sources}},
        "train_spec": exp.spec.as_dict(),
        "threads": exp.threads,
    }
    if feature_warnings:
        results["warnings"] = feature_warnings
    results.update(exp.fusion.summary(exp, cv) or {})  # e.g. gated fusion: gate statistics
    for key, part in (("thresholds", exp.thresholds.report()), ("adaptation", describe_adapt(cfg.adapt))):
        if part is not None:
            results[key] = part
    curves = {f"fold{f['fold']}": f["selection"].curve for f in folds}

    want_final = final if final is not None else (exp.test_pos is not None or bool(cfg.model_dir))
    test_df = submission = model = None
    if want_final:
        t_fin = time.perf_counter()
        sel = exp.final_selection()
        if sel.epoch not in finals:  # one final training per selected length, shared
            finals[sel.epoch] = (trainer.train_final(sel), time.perf_counter() - t_fin)
        job, fin_seconds = finals[sel.epoch][0].for_adapt(cfg.adapt), finals[sel.epoch][1]
        results["final"] = {"selection": sel.as_dict(), "train_clips": len(exp.train_pos),
                            "train_seconds": round(fin_seconds, 3),
                            "selected_on": "pooled out-of-fold outputs of the outer CV models"}
        model = ModelBundle.from_job(exp, job, sel)
        if exp.test_pos is not None and len(exp.test_pos):
            outs = job.outputs("test")
            groups = exp.eval_groups(exp.test_pos, sel)  # actors; identity groups for unknown ones
            comb, mask, target = exp.apply(outs, job.epochs, sel, groups)
            found = any(str(g).startswith("cluster:") for g in groups)
            test_df = _prediction_frame(exp, exp.test_pos, comb, mask, target, {"identity_group": groups} if found else {})
            submission = submission_dict(exp.clip_ids[exp.test_pos].tolist(), mask, target)
            if exp.test_labelled:
                s = score_codes(mask, target, exp.target[exp.test_pos])
                results["test"] = {"acc_presence": s["acc_presence"], "acc_salience": s["acc_salience"],
                                   "n_clips": s["n_clips"], "n_blends": s["n_blends"], "epoch": sel.epoch,
                                   "params": sel.params}
                _no_blend_view(results["test"], target, exp.target[exp.test_pos])
            else:
                results["test_unlabelled"] = {"n_clips": len(exp.test_pos)}
    if "thresholds" in results:  # again, with the test set's decoding (and its identity groups)
        results["thresholds"] = exp.thresholds.report()
    actor_norm = _actor_norm_report(exp, job if want_final else None)  # None when not used
    if actor_norm is not None:
        results["actor_norm"] = actor_norm
    results["timing"] = {"total_seconds": round(shared["prepare"] + shared["cv"] + time.perf_counter() - t_view, 3),
                         "cv_seconds": round(cv_seconds, 3),
                         "cv_seconds_per_fold": round(cv_seconds / len(exp.folds), 3),
                         "trainings": len(exp.jobs)}
    if shared["n"] > 1:
        results["timing"]["shared_by"] = shared["n"]
    _corpus_view(exp, cfg, results, tgt_all, exp.target[pos_all], cv["nested"])
    pca = None
    if cfg.plots:
        src = exp.groups[0]
        X, owner = exp.features.rows(src, exp.train_pos)
        if exp.pooling.sequence_length:  # frame sequences: the PCA of each row's mean valid frame
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                X = np.nanmean(X.reshape(len(X), exp.pooling.sequence_length, -1), axis=1)
        if owner is not None:
            X = aggregate_rows(np.nan_to_num(X), owner, len(exp.train_pos))
        pca = {"X": X, "actor": exp.actor[exp.train_pos], "target": exp.target[exp.train_pos],
               "sources": list(src)}
    result = RunResult.from_record(cfg, results, preds, test_df, submission, model, pca, curves)
    if write and cfg.out:
        write_run(result, cfg.out)
    if model is not None and cfg.model_dir:
        model.save(cfg.model_dir)
    return result


def _no_blend_view(part: dict, pred_target: np.ndarray, true_target: np.ndarray) -> bool:
    """Without blends in ``true_target``, salience is undefined: ``part["acc_salience"]``
    becomes None (null in JSON, "n/a (no blends)" in reports, never 0; over folds:
    ``{"mean": null, "std": null, ...}``) and the single-emotion
    scores (accuracy, UAR, macro-F1, 6x6 confusion) are added. Returns whether there were none."""
    if bool(TARGET_IS_BLEND[true_target[true_target >= 0]].any()):
        return False
    part["acc_salience"] = None
    part["single_emotion"] = single_emotion_scores(pred_target, true_target)
    return True


def _corpus_names(table: pd.DataFrame | None, path: Any) -> list[str]:
    """The corpora a table's clips come from: its ``corpus`` column, else the metadata file's name."""
    if table is None:
        return []
    if "corpus" in table.columns and table["corpus"].notna().any():
        return sorted({str(c) for c in table["corpus"] if isinstance(c, str) and c})
    return [Path(str(path)).stem] if path else []


def _corpus_view(exp: Experiment, cfg: ExperimentConfig, results: dict, pred_target: np.ndarray,
                 true_target: np.ndarray, nested: bool) -> None:
    """What the run says about the corpora: their names (train / test), how nested selection was
    done on a small corpus, and salience as None when the validation clips have no blends."""
    val = results["validation"]
    results["data"]["corpora"] = {"train": _corpus_names(exp.train_table, cfg.metadata),
                                  "test": _corpus_names(exp.test_table, cfg.test_metadata)}
    if exp.fold_note:
        results["data"]["folds_note"] = exp.fold_note
    if nested and exp.inner_note:
        val["inner_folds"] = exp.inner_note
    if _no_blend_view(val, pred_target, true_target):
        none = {"mean": None, "std": None, "folds": [None] * len(val["folds"])}
        val["acc_salience"] = dict(none)
        for f in val["folds"]:
            f["acc_salience"] = None
        val["pooled"]["acc_salience"] = None
        for t in results["trivial"].values():
            t["acc_salience"] = dict(none)
    for t in results["trivial"].values():
        if "test" in t and "test" in results and results["test"].get("acc_salience", 0) is None:
            t["test"]["acc_salience"] = None


def train_model(cfg: ExperimentConfig, *, progress: bool = True, table: pd.DataFrame | None = None,
                features: FeatureSet | None = None, engine: Any = None):
    """Train a deployable model on all labelled training clips: the outer CV models choose the
    epoch, fusion weights and thresholds (pooled out-of-fold), then one model is trained on
    everything. Returns a :class:`blemore.bundle.ModelBundle` (saved to ``cfg.model_dir`` when set)
    with the out-of-fold scores in ``bundle.info["cv"]``."""
    cfg.validate(partial=features is not None)
    exp = Experiment(cfg.replace(test_metadata=None), table=table, features=features, progress=progress,
                     engine=engine)
    cv = exp.cross_validate(nested=False)
    sel = exp.final_selection()
    job = exp.train_final(sel)
    model = ModelBundle.from_job(exp, job, sel)
    model.info["cv"] = {
        "selection": "pooled out-of-fold (the epoch and thresholds were chosen on these same outputs)",
        "acc_presence": sel.acc_presence, "acc_salience": sel.acc_salience,
        "folds": [{"fold": f["fold"], **{k: f["score"][k] for k in ("acc_presence", "acc_salience")}}
                  for f in cv["folds"]],
    }
    if not TARGET_IS_BLEND[exp.target[exp.train_pos]].any():  # salience undefined without blends
        model.info["cv"]["acc_salience"] = None
        for f in model.info["cv"]["folds"]:
            f["acc_salience"] = None
    if cfg.model_dir:
        model.save(cfg.model_dir)
    return model
