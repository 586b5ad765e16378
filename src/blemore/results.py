"""Typed results of a run: what :func:`blemore.experiment.run_experiment` returns.

Contract:

- :class:`RunResult` is the whole run: its config, the per-fold validation records
  (:class:`FoldResult`), the validation means and standard deviations (:class:`Spread`), the
  pooled out-of-fold score, the test score when test labels exist (:class:`TestResult`), the
  trivial baselines (:class:`Baseline`), per-actor normalisation info, timing, the prediction
  tables, the submission, the final model and the files written.
- ``to_dict()`` gives exactly the ``results.json`` structure (same keys, same order, same
  values); ``RunResult.from_record(config, record, ...)`` reads one back, so
  ``from_record(cfg, d).to_dict() == d``. Keys this module does not model travel unchanged
  (kept in ``extra``, in their place).
- ``to_frame()`` / ``summary()`` return pandas DataFrames for a notebook:
  :meth:`RunResult.to_frame` one row per validation fold, :meth:`RunResult.summary` one row per
  metric (validation mean and std, pooled, test, trivial baselines).
- Old callers that read ``result.results["validation"]`` or ``result["validation"]`` keep
  working: both return the ``to_dict()`` form.

All scores are fractions in [0, 1]: ``presence`` is ACC_presence over all clips, ``salience``
ACC_salience over blended clips.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

__all__ = ["Score", "Spread", "FoldResult", "Validation", "Baseline", "TestResult", "RunResult"]

METRICS = ("acc_presence", "acc_salience")


def _extra(d: Mapping, known: tuple[str, ...]) -> dict:
    return {k: v for k, v in d.items() if k not in known}


@dataclass(frozen=True)
class Score:
    """One pair of challenge scores (and the clip counts they were computed on, when known)."""

    presence: float
    salience: float
    n_clips: int | None = None
    n_blends: int | None = None

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"acc_presence": self.presence, "acc_salience": self.salience}
        if self.n_clips is not None:
            d["n_clips"] = self.n_clips
        if self.n_blends is not None:
            d["n_blends"] = self.n_blends
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "Score":
        return cls(d["acc_presence"], d["acc_salience"], d.get("n_clips"), d.get("n_blends"))

    def to_frame(self) -> pd.DataFrame:
        """One row: ``acc_presence``, ``acc_salience``, ``n_clips``, ``n_blends``."""
        return pd.DataFrame([{"acc_presence": self.presence, "acc_salience": self.salience,
                              "n_clips": self.n_clips, "n_blends": self.n_blends}])

    summary = to_frame


@dataclass(frozen=True)
class Spread:
    """A score over folds: mean, standard deviation and the per-fold values."""

    mean: float
    std: float
    folds: tuple[float, ...] = ()

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "folds": list(self.folds)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Spread":
        return cls(d["mean"], d["std"], tuple(d.get("folds", ())))


_FOLD_KEYS = ("fold", "n_clips", "n_blends", "acc_presence", "acc_salience", "epoch", "params", "weights",
              "selection_score", "train_seconds")


@dataclass
class FoldResult:
    """One cross-validation fold: its held-out score, and what was chosen for it (the epoch,
    the decoder's ``alpha``/``beta``, the fusion weights) on its selection data."""

    fold: int
    score: Score
    epoch: int
    params: dict
    weights: Any = None
    selection_score: float | None = None
    train_seconds: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def alpha(self) -> float | None:
        return self.params.get("alpha")

    @property
    def beta(self) -> float | None:
        return self.params.get("beta")

    def to_dict(self) -> dict:
        return {"fold": self.fold, "n_clips": self.score.n_clips, "n_blends": self.score.n_blends,
                "acc_presence": self.score.presence, "acc_salience": self.score.salience,
                "epoch": self.epoch, "params": self.params, "weights": self.weights,
                "selection_score": self.selection_score, "train_seconds": self.train_seconds, **self.extra}

    @classmethod
    def from_dict(cls, d: Mapping) -> "FoldResult":
        return cls(d["fold"], Score.from_dict(d), d["epoch"], dict(d.get("params") or {}), d.get("weights"),
                   d.get("selection_score"), d.get("train_seconds"), _extra(d, _FOLD_KEYS))

    def to_frame(self) -> pd.DataFrame:
        """One row: ``fold``, ``n_clips``, ``n_blends``, ``acc_presence``, ``acc_salience``,
        ``epoch``, ``alpha``, ``beta``, ``selection_score``, ``train_seconds``."""
        return pd.DataFrame([{"fold": self.fold, "n_clips": self.score.n_clips, "n_blends": self.score.n_blends,
                              "acc_presence": self.score.presence, "acc_salience": self.score.salience,
                              "epoch": self.epoch, "alpha": self.alpha, "beta": self.beta,
                              "selection_score": self.selection_score, "train_seconds": self.train_seconds}])

    summary = to_frame


_VALIDATION_KEYS = ("acc_presence", "acc_salience", "selection", "folds", "pooled")


@dataclass
class Validation:
    """Cross-validated scores: per fold, their mean/std, and pooled over all held-out clips."""

    presence: Spread
    salience: Spread
    selection: str
    folds: list[FoldResult]
    pooled: Score | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {"acc_presence": self.presence.to_dict(), "acc_salience": self.salience.to_dict(),
             "selection": self.selection, "folds": [f.to_dict() for f in self.folds]}
        if self.pooled is not None:
            d["pooled"] = self.pooled.to_dict()
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "Validation":
        return cls(Spread.from_dict(d["acc_presence"]), Spread.from_dict(d["acc_salience"]), d.get("selection", ""),
                   [FoldResult.from_dict(f) for f in d.get("folds", [])],
                   Score.from_dict(d["pooled"]) if d.get("pooled") else None, _extra(d, _VALIDATION_KEYS))

    def to_frame(self) -> pd.DataFrame:
        """One row per fold (columns of :meth:`FoldResult.to_frame`)."""
        if not self.folds:
            return pd.DataFrame(columns=["fold", "n_clips", "n_blends", "acc_presence", "acc_salience", "epoch",
                                         "alpha", "beta", "selection_score", "train_seconds"])
        return pd.concat([f.to_frame() for f in self.folds], ignore_index=True)


_TEST_KEYS = ("acc_presence", "acc_salience", "n_clips", "n_blends", "epoch", "params")


@dataclass
class TestResult:
    """The final model's score on labelled test clips, with the epoch and decoder it used."""

    __test__ = False  # not a pytest class

    score: Score
    epoch: int | None = None
    params: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**self.score.to_dict(), "epoch": self.epoch, "params": self.params, **self.extra}

    @classmethod
    def from_dict(cls, d: Mapping) -> "TestResult":
        return cls(Score.from_dict(d), d.get("epoch"), dict(d.get("params") or {}), _extra(d, _TEST_KEYS))


_BASELINE_KEYS = ("acc_presence", "acc_salience", "prediction", "test")


@dataclass
class Baseline:
    """A trivial baseline (one constant prediction for every clip) scored like the model."""

    name: str
    prediction: str
    presence: Spread
    salience: Spread
    test: Score | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {"acc_presence": self.presence.to_dict(), "acc_salience": self.salience.to_dict(),
             "prediction": self.prediction}
        if self.test is not None:
            d["test"] = self.test.to_dict()
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, name: str, d: Mapping) -> "Baseline":
        return cls(name, d.get("prediction", ""), Spread.from_dict(d["acc_presence"]),
                   Spread.from_dict(d["acc_salience"]), Score.from_dict(d["test"]) if d.get("test") else None,
                   _extra(d, _BASELINE_KEYS))


# the results.json keys in their order; None: kept as given
_RUN_KEYS = ("run", "features", "head", "preset", "selection", "fusion", "pooling", "transforms", "validation",
             "trivial", "per_configuration", "per_class", "data", "train_spec", "threads", "warnings", "final",
             "test", "test_unlabelled", "actor_norm", "timing", "files")


@dataclass
class RunResult:
    """Everything a run produced (see :func:`blemore.report.write_run` for the files).

    The scores are typed (:attr:`validation`, :attr:`test`, :attr:`trivial`); the rest of
    ``results.json`` is kept as plain dicts under the same names (``per_configuration``,
    ``per_class``, ``data``, ``train_spec``, ``timing``, ``final``, ``actor_norm`` (None when
    per-actor normalisation was not used), ``files`` (set by :func:`blemore.report.write_run`)).
    """

    config: Any  # blemore.config.ExperimentConfig
    predictions: pd.DataFrame | None = None
    test_predictions: pd.DataFrame | None = None
    submission: dict | None = None
    model: Any = None  # blemore.bundle.ModelBundle when a final model was trained
    pca: dict | None = None
    selection_curves: dict = field(default_factory=dict)
    run: str = ""
    features: list = field(default_factory=list)
    head: str | None = None
    preset: str | None = None
    selection: str | None = None
    fusion: dict | None = None
    pooling: dict | None = None
    transforms: list = field(default_factory=list)
    validation: Validation | None = None
    trivial: dict[str, Baseline] = field(default_factory=dict)
    per_configuration: dict | None = None
    per_class: dict | None = None
    data: dict | None = None
    train_spec: dict | None = None
    threads: int | None = None
    warnings: list[str] | None = None
    final: dict | None = None
    test: TestResult | None = None
    test_unlabelled: dict | None = None
    actor_norm: dict | None = None
    timing: dict | None = None
    files: dict | None = None
    extra: dict = field(default_factory=dict)
    _order: list[str] = field(default_factory=list, repr=False)

    # -- results.json ---------------------------------------------------------------------
    @classmethod
    def from_record(cls, config: Any, record: Mapping, predictions: pd.DataFrame | None = None,
                    test_predictions: pd.DataFrame | None = None, submission: dict | None = None,
                    model: Any = None, pca: dict | None = None, selection_curves: dict | None = None) -> "RunResult":
        """A typed result from a ``results.json``-shaped ``record`` (and the in-memory parts)."""
        r = dict(record)
        plain = {k: r.get(k) for k in ("fusion", "pooling", "per_configuration", "per_class", "data", "train_spec",
                                       "threads", "warnings", "final", "test_unlabelled", "actor_norm", "timing",
                                       "files", "head", "preset", "selection")}
        return cls(config=config, predictions=predictions, test_predictions=test_predictions, submission=submission,
                   model=model, pca=pca, selection_curves=dict(selection_curves or {}),
                   run=r.get("run", ""), features=list(r.get("features") or []),
                   transforms=list(r.get("transforms") or []),
                   validation=Validation.from_dict(r["validation"]) if r.get("validation") else None,
                   trivial={k: Baseline.from_dict(k, v) for k, v in (r.get("trivial") or {}).items()},
                   test=TestResult.from_dict(r["test"]) if r.get("test") else None,
                   extra=_extra(r, _RUN_KEYS), _order=list(r), **plain)

    def _value(self, key: str) -> Any:
        if key in self.extra:
            return self.extra[key]
        v = getattr(self, key)
        if key == "validation":
            return v.to_dict()
        if key == "trivial":
            return {k: b.to_dict() for k, b in v.items()}
        if key == "test":
            return v.to_dict()
        return v

    def _present(self, key: str) -> bool:
        if key in self.extra:
            return True
        if key in ("warnings", "final", "test", "test_unlabelled", "actor_norm", "files", "validation"):
            return getattr(self, key) is not None
        return key in _RUN_KEYS

    def to_dict(self) -> dict:
        """The ``results.json`` structure: the keys in the order the run wrote them (the
        standard order for keys set later, e.g. ``files``)."""
        keys = [k for k in self._order if self._present(k)]
        keys += [k for k in (*_RUN_KEYS, *self.extra) if k not in keys and self._present(k)]
        return {k: self._value(k) for k in keys}

    @property
    def results(self) -> dict:
        """The ``results.json`` form (:meth:`to_dict`), for callers written against dicts."""
        return self.to_dict()

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __contains__(self, key: str) -> bool:
        return key in self.to_dict()

    # -- tables ---------------------------------------------------------------------------
    @property
    def folds(self) -> list[FoldResult]:
        return [] if self.validation is None else self.validation.folds

    @property
    def run_dir(self) -> Path | None:
        """The run folder, when the run wrote one."""
        out = getattr(self.config, "out", None)
        return Path(out) if out and self.files is not None else None

    def to_frame(self) -> pd.DataFrame:
        """One row per validation fold: ``fold``, ``n_clips``, ``n_blends``, ``acc_presence``,
        ``acc_salience``, ``epoch``, ``alpha``, ``beta``, ``selection_score``, ``train_seconds``."""
        return Validation.to_frame(self.validation) if self.validation is not None else \
            Validation(Spread(0, 0), Spread(0, 0), "", []).to_frame()

    def summary(self) -> pd.DataFrame:
        """One row per score, indexed by ``acc_presence`` / ``acc_salience``; columns
        ``validation_mean``, ``validation_std``, ``pooled``, ``test``, then
        ``trivial_<name>`` (mean over folds) per baseline; NaN where a run has no such score."""
        nan = float("nan")
        rows = {}
        for m, attr in zip(METRICS, ("presence", "salience")):
            v = self.validation
            row = {"validation_mean": getattr(v, attr).mean if v else nan,
                   "validation_std": getattr(v, attr).std if v else nan,
                   "pooled": getattr(v.pooled, attr) if v and v.pooled else nan,
                   "test": getattr(self.test.score, attr) if self.test else nan}
            for name, b in self.trivial.items():
                row[f"trivial_{name}"] = getattr(b, attr).mean
            rows[m] = row
        return pd.DataFrame.from_dict(rows, orient="index")
