"""The CLI's shape: modules found by name, each command registered once, and the benchmark/train
options that set ExperimentConfig fields declared once and checked against the dataclasses."""
from __future__ import annotations

import dataclasses

import click
import pytest

from blemore.cli import BlemoreGroup, cli, command_modules
from blemore.cli.models import CONFIG_OPTIONS, benchmark_cmd, config_kwargs, train_cmd
from blemore.config import ExperimentConfig
from blemore.heads.training import TrainSpec


def _flags(cmd: click.Command) -> set[str]:
    return {o for p in cmd.params if isinstance(p, click.Option) for o in p.opts}


def test_every_config_option_targets_a_config_field():
    fields = {f.name for f in dataclasses.fields(ExperimentConfig)}
    train = {f.name for f in dataclasses.fields(TrainSpec)}
    for name, (target, decls, _) in CONFIG_OPTIONS.items():
        field, _, sub = target.partition(".")
        assert field in fields, (name, target)
        if field == "train":
            assert sub in train, (name, target)
        assert decls and all(d.startswith("--") for d in decls)


def test_config_kwargs_builds_a_config_and_refuses_unknown_parameters():
    kw = config_kwargs({"metadata": "m.csv", "features": ("a", "b"), "fusion": "late", "late_mode": "logit",
                        "epochs": 3, "lr": 0.01, "seed": None, "stride": None, "folds": 4, "out": None})
    assert kw == {"metadata": "m.csv", "features": ["a", "b"], "fusion": "late", "fusion_options": {"mode": "logit"},
                  "train": {"epochs": 3, "lr": 0.01}, "folds": 4}
    cfg = ExperimentConfig(**kw)
    assert cfg.train_spec().epochs == 3 and cfg.fusion_options == {"mode": "logit"}
    with pytest.raises(TypeError, match="quiet"):
        config_kwargs({"quiet": True})


def test_benchmark_and_train_keep_their_options():
    shared = {"--metadata", "--features", "--fusion", "--late-mode", "--gate-top", "--gate-rank", "--gate-balance", "--xattn-heads", "--thresholds", "--adapt", "--seeds", "--device", "--preset", "--pooling", "--window", "--stride",
              "--epochs", "--lr", "--batch-size", "--weight-decay", "--folds", "--seed", "--missing", "--threads",
              "--quiet", "--actor-norm", "--identity-groups", "--head", "--out", "--json"}
    engine = {"--engine", "--address", "--workers", "-j", "--gpus-per-worker"}  # blemore.cli._engines
    assert _flags(benchmark_cmd) == shared | {"--test-metadata", "--selection", "--model-dir", "--no-plots"} | engine
    assert _flags(train_cmd) == shared
    # train writes --out into the config's model_dir; benchmark's --out is the run folder
    assert next(p for p in train_cmd.params if "--out" in p.opts).name == "model_dir"
    assert next(p for p in benchmark_cmd.params if "--out" in p.opts).name == "out"


def test_modules_named_by_what_they_do_and_each_command_once():
    assert {"challenge", "features", "models", "synth"} <= set(command_modules())
    owners = {"score": "challenge", "decode": "challenge", "calibrate": "challenge", "submit": "challenge",
              "extract": "features", "extractors": "features", "features": "features", "import-features": "features",
              "benchmark": "models", "train": "models", "predict": "models", "report": "models",
              "synth": "synth", "demo": "synth"}
    for name, module in owners.items():
        assert cli.commands[name].callback.__module__ == f"blemore.cli.{module}", name
    assert set(cli.commands["synth"].commands) == {"media", "features"}


def test_a_command_name_registered_twice_is_refused():
    group = BlemoreGroup("g")
    group.add_command(click.Command("x", callback=lambda: None))
    with pytest.raises(RuntimeError, match="'x' is registered twice"):
        group.add_command(click.Command("x", callback=lambda: None))
