"""Experiment configuration: one dataclass, presets, and TOML grids.

:class:`ExperimentConfig` holds everything a run needs (metadata, feature sources, pooling,
fusion, head, training preset, selection protocol, seeds). :func:`load_config` reads a TOML
file into one config per run; every key may also be given as a list under ``[grid]`` to
sweep it (the runs are the Cartesian product)::

    # grid.toml
    metadata = "synth/train_metadata.csv"
    test_metadata = "synth/test_metadata.csv"
    preset = "fast"
    out = "runs/grid"                 # each run writes to out/<run name>

    [grid]
    features = [["synth/video"], ["synth/audio"], ["synth/video", "synth/audio"]]
    head = ["linear", "mlp-512"]

    [[run]]                           # optional extra runs, merged over the top-level keys
    features = ["synth/video"]
    pooling = "windows"

Relative paths are resolved against the TOML file's folder.

Presets (:data:`PRESETS`) fix the optimisation. ``paper`` is the published protocol (Adam,
lr 5e-6, weight decay 1e-3, batch 32 for 200 epochs; batch 512 for 300 epochs with windowed
subsampling). ``fast`` trains with large batches and a higher learning rate for fewer epochs;
its training length is chosen like every other one (on inner folds under nested selection).
"""
from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from blemore._toml import tomllib
from blemore.errors import BlemoreError
from blemore.heads.training import TrainSpec

__all__ = ["ExperimentConfig", "PRESETS", "load_config", "train_spec", "ConfigError", "SELECTIONS"]

SELECTIONS = ("nested", "paper")


class ConfigError(BlemoreError, ValueError):
    """A configuration value that is not valid (names the key and what was expected)."""


PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # The paper's hyper-parameters (FACTS.md, pipeline step 5).
    "paper": {
        "stats": {"optimizer": "adam", "lr": 5e-6, "weight_decay": 1e-3, "batch_size": 32, "epochs": 200},
        "windows": {"optimizer": "adam", "lr": 5e-6, "weight_decay": 1e-3, "batch_size": 512, "epochs": 300},
    },
    # Large batches, higher learning rate, few epochs; the length is still chosen per run.
    # (on generated features: same accuracy as "paper" within the fold-to-fold noise; see
    # benchmarks/bench_engine.py). Up to 60 epochs: with 20, the quick demo's face+voice folds
    # chose epochs 11/20/15/20/18 (two at the very end, curves still rising; validation presence
    # 0.594, salience 0.347); with 60 they choose 11/28/43/29/25 (0.633, 0.400). Measured with
    # run_experiment on a quick demo's feature store (mlp-512, nested selection, seed 0).
    "fast": {
        "stats": {"optimizer": "adam", "lr": 5e-4, "weight_decay": 1e-3, "batch_size": 128, "epochs": 60},
        "windows": {"optimizer": "adam", "lr": 5e-4, "weight_decay": 1e-3, "batch_size": 1024, "epochs": 20},
    },
}


@dataclass
class ExperimentConfig:
    """One run. See the module docstring for presets and grids.

    Inputs: ``metadata`` (train_metadata.csv), ``features`` (feature folders; several =
    fusion), ``test_metadata`` (optional; predicted, scored when labelled).
    Model: ``head`` (+ ``head_options``), ``fusion`` (+ ``fusion_options``, e.g. late ``mode``),
    ``pooling`` (``"stats"`` or ``"windows"`` with ``window`` / ``stride`` rows),
    ``transforms`` (fitted on training clips; default ``["standardize"]``).
    Training: ``preset`` (``"paper"`` or ``"fast"``) with ``train`` overriding its
    :class:`~blemore.heads.training.TrainSpec` fields, ``seed``, ``threads``.
    Protocol: ``thresholds`` (``"global"``, or ``"per-actor"``: :mod:`blemore.thresholds`;
    ``identity_groups``: how many identity groups its evaluated clips of unknown actor are
    clustered into, ``"auto"``, ``"size"`` or a number), ``adapt``
    (``"none"``, ``"meanvar"``, ``"coral"``: :mod:`blemore.adapt`), ``selection`` (``"nested"`` or ``"paper"``), ``folds`` / ``fold_seed`` (only used
    when the metadata has no folds; ``folds = "loso"``: one fold per actor, replacing the metadata's), ``alphas`` / ``betas`` (threshold grid, default the paper's),
    ``score_weights`` (presence, salience weights of the selection score), ``missing``
    (``"drop"``, ``"impute"`` or ``"error"`` for clips absent from a source).
    Outputs: ``out`` (run folder), ``name``, ``plots``, ``model_dir`` (save the final model).
    """

    metadata: str | None = None
    features: list[str] = field(default_factory=list)
    test_metadata: str | None = None
    name: str | None = None
    out: str | None = None
    head: str = "mlp-512"
    head_options: dict[str, Any] = field(default_factory=dict)
    preset: str = "paper"
    train: dict[str, Any] = field(default_factory=dict)  # overrides of the preset's TrainSpec fields
    selection: str = "nested"
    thresholds: str = "global"  # or "per-actor" (blemore.thresholds)
    adapt: str = "none"  # or "meanvar" / "coral" (blemore.adapt)
    identity_groups: int | str = "auto"  # per-actor thresholds: clusters of test clips of unknown actor
    seeds: int = 1  # > 1: that many copies of the head per training, outputs averaged (heads.seeds)
    fusion: str = "early"
    fusion_options: dict[str, Any] = field(default_factory=dict)
    pooling: str = "stats"
    window: int = 16
    stride: int | None = None
    transforms: list[Any] = field(default_factory=lambda: ["standardize"])
    folds: int | str = 5
    fold_seed: int = 0
    seed: int = 0
    missing: str = "drop"
    threads: int | None = None
    alphas: list[float] | None = None
    betas: list[float] | None = None
    score_weights: list[float] = field(default_factory=lambda: [0.5, 0.5])
    plots: bool = True
    model_dir: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.features, (str, Path)):
            self.features = [str(self.features)]
        self.features = [str(f) for f in self.features]
        self.validate(partial=True)

    def validate(self, partial: bool = False) -> "ExperimentConfig":
        """Check values; with ``partial`` the required inputs may still be missing."""
        if self.preset not in PRESETS:
            raise ConfigError(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        if self.selection not in SELECTIONS:
            raise ConfigError(f"selection must be one of {', '.join(SELECTIONS)}, got {self.selection!r}")
        if self.pooling not in ("stats", "windows"):
            raise ConfigError(f"pooling must be 'stats' or 'windows', got {self.pooling!r}")
        if self.missing not in ("drop", "impute", "error"):
            raise ConfigError(f"missing must be 'drop', 'impute' or 'error', got {self.missing!r}")
        if self.thresholds not in ("global", "per-actor"):
            raise ConfigError(f"thresholds must be 'global' or 'per-actor', got {self.thresholds!r}")
        if self.adapt not in ("none", "meanvar", "coral"):
            raise ConfigError(f"adapt must be 'none', 'meanvar' or 'coral', got {self.adapt!r}")
        if isinstance(self.identity_groups, str) and self.identity_groups.strip().isdigit():
            self.identity_groups = int(self.identity_groups.strip())
        if not (self.identity_groups in ("auto", "size") or (isinstance(self.identity_groups, int)
                                                              and not isinstance(self.identity_groups, bool)
                                                              and self.identity_groups >= 1)):
            raise ConfigError(f"identity_groups must be a positive integer, 'auto' or 'size', got {self.identity_groups!r}")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ConfigError(f"seeds must be a whole number >= 1, got {self.seeds!r}")
        if isinstance(self.folds, str) and self.folds.strip().lower() == "loso":
            self.folds = "loso"
        elif isinstance(self.folds, bool) or not isinstance(self.folds, int) or self.folds < 2:
            raise ConfigError(f"folds must be a number >= 2 or 'loso' (leave one actor out), got {self.folds!r}")
        if len(self.score_weights) != 2:
            raise ConfigError(f"score_weights must be [presence, salience], got {self.score_weights}")
        unknown = set(self.train) - {f.name for f in dataclasses.fields(TrainSpec)}
        if unknown:
            raise ConfigError(f"unknown train setting(s) {sorted(unknown)}; "
                              f"expected some of {[f.name for f in dataclasses.fields(TrainSpec)]}")
        if not partial:
            if not self.metadata:
                raise ConfigError("metadata (train_metadata.csv) is required")
            if not self.features:
                raise ConfigError("at least one feature source is required")
        return self

    def train_spec(self) -> TrainSpec:
        return train_spec(self.preset, self.pooling, self.train)

    def run_name(self) -> str:
        if self.name:
            return self.name
        srcs = "+".join(Path(f).name for f in self.features) or "features"
        extra = "" if self.pooling == "stats" else "-windows"
        fusion = "" if len(self.features) < 2 or self.fusion == "early" else f"-{self.fusion}"
        return f"{srcs}{extra}{fusion}_{self.head}"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["resolved_train"] = self.train_spec().as_dict()
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ExperimentConfig":
        d = dict(d)
        d.pop("resolved_train", None)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s) {unknown}; expected some of {sorted(known)}")
        return cls(**d)

    def replace(self, **changes: Any) -> "ExperimentConfig":
        return dataclasses.replace(self, **changes)


def train_spec(preset: str, pooling: str = "stats", overrides: Mapping[str, Any] | None = None) -> TrainSpec:
    """The :class:`TrainSpec` of a preset for a pooling kind, with field overrides."""
    if preset not in PRESETS:
        raise ConfigError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    base = dict(PRESETS[preset][pooling])
    base.update(overrides or {})
    return TrainSpec(**base)


_PATH_KEYS = ("metadata", "test_metadata", "out", "model_dir")


def _resolve_paths(d: dict, root: Path) -> dict:
    d = dict(d)
    for k in _PATH_KEYS:
        if isinstance(d.get(k), str):
            d[k] = str((root / d[k]).resolve()) if not Path(d[k]).is_absolute() else d[k]
    if "features" in d:
        feats = d["features"]
        if isinstance(feats, str):
            feats = [feats]
        d["features"] = [f if Path(f).is_absolute() else str((root / f).resolve()) for f in feats]
    return d


def load_config(path: str | Path, **overrides: Any) -> list[ExperimentConfig]:
    """Read a TOML experiment file into one :class:`ExperimentConfig` per run.

    Top-level keys are shared settings; ``[grid]`` keys are lists to sweep (``features`` as a
    list of lists); ``[[run]]`` tables add explicit runs. With several runs, each run's
    ``out`` becomes ``<out>/<run name>``. ``overrides`` replace top-level keys.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    root = path.parent
    grid = raw.pop("grid", {}) or {}
    runs = raw.pop("run", []) or []
    base = {**raw, **{k: v for k, v in overrides.items() if v is not None}}
    for k, v in grid.items():
        if not isinstance(v, list) or not v:
            raise ConfigError(f"{path}: [grid] {k} must be a non-empty list of values to sweep")
    combos: list[dict] = []
    if grid:
        keys = list(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            combos.append({**base, **dict(zip(keys, values))})
    for r in runs:
        combos.append({**base, **r})
    if not combos:
        combos = [base]
    configs = []
    for c in combos:
        try:
            cfg = ExperimentConfig.from_dict(_resolve_paths(c, root))
        except TypeError as e:
            raise ConfigError(f"{path}: {e}") from None
        configs.append(cfg)
    if len(configs) > 1:
        names = [c.run_name() for c in configs]
        dup = {n for n in names if names.count(n) > 1}
        for i, c in enumerate(configs):
            name = names[i] if names[i] not in dup else f"{names[i]}-{i}"
            c.name = c.name or name
            if c.out:
                c.out = str(Path(c.out) / name)
    return configs
