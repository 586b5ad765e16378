"""Execution engines: the registry, the local engine (inline and a process pool that survives a
dead worker) against a plain loop, and the clear message when Ray is missing.

The Ray engine on a real (private, loopback-only) cluster: tests/test_engines_ray.py.
"""
from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

import pytest

from blemore.engines import ENGINES, WORKER_DIED, EngineError, create_engine, list_engines
from blemore.engines.base import Engine, Outcome
from blemore.engines.local import LocalEngine


def _square_plus(state, x):
    if x == "boom":
        raise ValueError("bad item 'boom'")
    return state + x * x


def _setup_pid(shared):
    return (shared, os.getpid())


def _with_pid(state, x):
    shared, pid = state
    if x == 13 and not os.path.exists(shared):  # dies the first time only (a flaky crash)
        open(shared, "w").close()
        os._exit(1)
    if x == 99:  # dies every time
        os._exit(1)
    return x * 2, pid


def test_registry_lists_both_engines():
    assert {"local", "ray"} <= set(list_engines())
    assert ENGINES.get("local") is LocalEngine
    with pytest.raises(EngineError, match="unknown engine 'spark'.*local.*ray"):
        create_engine("spark")
    with pytest.raises(EngineError, match="workers must be at least 1"):
        create_engine("local", workers=0)
    e = LocalEngine(workers=2)
    assert create_engine(e) is e


def test_inline_matches_a_loop_and_reports_errors():
    items = [3, 1, "boom", 2]
    with create_engine("local", workers=1) as eng:
        assert eng.inline
        outs = list(eng.map(_square_plus, items, shared=10))
    assert [o.index for o in outs] == [0, 1, 2, 3]
    assert [o.value for o in outs if o.ok] == [19, 11, 14]
    bad = [o for o in outs if not o.ok]
    assert len(bad) == 1 and bad[0].item == "boom" and bad[0].error == "ValueError: bad item 'boom'"


def test_pool_runs_setup_once_per_worker_and_survives_dead_workers(tmp_path):
    flag = str(tmp_path / "died-once")
    items = list(range(12)) + [13, 99]
    with create_engine("local", workers=2) as eng:
        outs = list(eng.map(_with_pid, items, shared=flag, setup=_setup_pid, in_flight=4, retries=1))
    assert sorted(o.index for o in outs) == list(range(len(items)))  # one outcome per item, none lost
    by_item = {o.item: o for o in outs}
    for x in list(range(12)) + [13]:  # 13 died once, then ran on a fresh worker
        assert by_item[x].ok, by_item[x].error
        assert by_item[x].value[0] == 2 * x
    assert by_item[13].attempts == 2
    assert not by_item[99].ok and by_item[99].error.startswith(WORKER_DIED) and by_item[99].attempts == 2
    assert os.getpid() not in {o.value[1] for o in outs if o.ok}


def test_missing_ray_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(EngineError, match=r"pip install 'blemore\[distributed\]'"):
        create_engine("ray")
    from blemore.extract import extract

    clip = tmp_path / "A1_ang_int1_ver1.wav"
    clip.write_bytes(b"")
    with pytest.raises(EngineError, match=r"blemore\[distributed\]"):
        extract([clip], tmp_path / "S", ["egemaps"], engine="ray", progress=False)
    assert not (tmp_path / "S").exists()  # stopped before anything was written


def test_cli_engine_options(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from blemore.cli import cli

    clip = tmp_path / "A1_ang_int1_ver1.wav"
    clip.write_bytes(b"")
    run = CliRunner().invoke
    r = run(cli, ["extract", str(clip), "--out", str(tmp_path / "S"), "-e", "egemaps", "--address", "auto",
                  "--gpus-per-worker", "1"])
    assert r.exit_code == 2 and "--address and --gpus-per-worker only apply with --engine ray" in r.output
    monkeypatch.setitem(sys.modules, "ray", None)
    for args in (["extract", str(clip), "--out", str(tmp_path / "S"), "-e", "egemaps", "--engine", "ray"],
                 ["benchmark", "--metadata", str(clip), "--features", str(tmp_path), "--engine", "ray"]):
        r = run(cli, args)
        assert r.exit_code == 2, r.output
        assert "pip install 'blemore[distributed]'" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "S").exists()


class _HidingEngine(Engine):
    """Not inline: ``shared`` pickled once per map (as shipped), every item pickled, and the
    folder ``hide`` renamed away while the items run, so an item that reads it fails."""

    name = "hiding"

    def __init__(self, hide):
        super().__init__(1)
        self.hide, self.shipped = hide, 0

    def map(self, fn, items, *, shared=None, setup=None, in_flight=None, retries=1):
        shared = pickle.loads(pickle.dumps(shared))
        self.shipped += 1
        hidden = self.hide.with_name(self.hide.name + "-hidden")
        self.hide.rename(hidden)
        try:
            for i, item in enumerate(items):
                assert not self.hide.exists()
                item = pickle.loads(pickle.dumps(item))
                yield Outcome(i, item, fn(shared, item))
        finally:
            hidden.rename(self.hide)


def _results(run_dir) -> dict:
    r = json.loads((Path(run_dir) / "results.json").read_text())
    r.pop("timing", None)
    for f in r["validation"]["folds"]:
        f.pop("train_seconds", None)
    return r


def test_ablation_on_an_engine_ships_features_loaded_once_and_matches_the_local_runner(tmp_path):
    import pandas as pd

    from blemore.ablation import run_ablation
    from blemore.config import ExperimentConfig
    from blemore.synth.features import generate_feature_corpus

    c = generate_feature_corpus(tmp_path / "corpus", n_train_actors=4, n_test_actors=1, n_train_clips=None,
                                n_test_clips=None, clips_per_actor=36, dim=4, frames=(3, 5), folds=2, seed=5)
    meta = pd.read_csv(c.train_metadata)
    extra = meta.iloc[[0]].copy()
    extra["filename"] = extra["filename"].astype(str) + "_nofeatures"  # a clip no source has: a warning
    pd.concat([meta, extra]).to_csv(c.train_metadata, index=False)
    base = ExperimentConfig(metadata=str(c.train_metadata), features=[str(c.sources["video"]), str(c.sources["audio"])],
                            preset="fast", train={"epochs": 2, "batch_size": 32}, threads=1, plots=False)
    variants = [("", {}), ("missing=impute", {"missing": "impute"}), ("video", {"features": [str(c.sources["video"])]}),
                ("shared", {"adapt": "meanvar", "thresholds": "per-actor"})]  # trains with "": one engine item
    logs: list[str] = []
    with pytest.warns(UserWarning, match="clip"):
        local = run_ablation(base, ["linear"], out=tmp_path / "local", progress=False, variants=variants)
    eng = _HidingEngine(tmp_path / "corpus")
    with pytest.warns(UserWarning, match="clip"):
        remote = run_ablation(base, ["linear"], out=tmp_path / "remote", progress=False, variants=variants,
                              engine=eng, log=logs.append)
    assert eng.shipped == 1 and "3 feature input(s) loaded here" in " ".join(logs)  # drop, impute, video
    assert "5 configurations, 4 training group(s)" in " ".join(logs)
    assert [r.key for r in remote.rows] == [r.key for r in local.rows] and len(local.rows) == 5  # + the reference
    for a, b in zip(local.rows, remote.rows):
        assert a.validation == b.validation
        ra, rb = _results(a.run_dir), _results(b.run_dir)
        assert ra == rb
        assert ra["warnings"] and ra["data"]["missing"]["missing"]  # the missing clip was reported in both


@pytest.mark.slow
def test_pool_returns_trained_sequence_and_gated_heads_like_inline(tmp_path):
    """Trained heads whose torch networks are classes made inside ``build_module`` (here a
    sequence head's encoders behind the gated fusion's network) come back from the pool's processes (plain pickle
    refuses them: the whole run failed after training) and give the inline run's results."""
    from blemore.experiment import run_experiment
    from helpers import tiny_config, tiny_temporal_corpus

    corpus = tiny_temporal_corpus(tmp_path / "c", dim=4, frames=(10, 16), seed=3)
    seq = {"frames": 6, "hidden": 8, "heads": 2}
    for fusion in ("gated",):
        cfg = tiny_config(corpus, head="attn-pool", head_options=seq, fusion=fusion, selection="paper")
        inline = run_experiment(cfg, progress=False, write=False)
        with create_engine("local", workers=2) as eng:
            pooled = run_experiment(cfg, progress=False, write=False, engine=eng)
        a, b = inline.to_dict(), pooled.to_dict()
        for r in (a, b):
            r.pop("timing", None)
            r.pop("final", None)
            for f in r["validation"]["folds"]:
                f.pop("train_seconds", None)
        assert a == b, fusion
        assert (inline.test_predictions.equals(pooled.test_predictions))
