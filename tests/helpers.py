"""Small helpers several test modules share (import with ``from helpers import ...``);
nothing here is a test.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import pytest


def run_python(code: str) -> str:
    """The stripped stdout of ``code`` run in a fresh interpreter (fails on a non-zero exit)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def tiny_temporal_corpus(out: str | Path, **options: Any):
    """A temporal synthetic corpus small enough to train on in seconds: 3 training actors in 3
    folds and 1 test actor, 36 clips each, a 4-d latent, events of 3-6 frames; ``options``
    (``dim``, ``frames``, ``seed``, ``sources``...) override these."""
    from blemore.synth.temporal import generate_temporal_corpus

    kw = dict(n_train_actors=3, n_test_actors=1, n_train_clips=108, n_test_clips=36, latent=4,
              event=(3, 6), folds=3)
    return generate_temporal_corpus(out, **{**kw, **options})


def tiny_config(corpus, sources: Iterable[str] = ("video", "audio"), *, test: bool = True, **options: Any):
    """An :class:`~blemore.config.ExperimentConfig` that trains a small head on ``corpus`` (a
    synthetic corpus) in seconds: its ``sources``, its test metadata when ``test``, the fast
    preset, 2 epochs of batch 32 at lr 0.01, one thread, no plots; ``options`` override or add."""
    from blemore.config import ExperimentConfig

    kw: dict[str, Any] = dict(metadata=str(corpus.train_metadata), features=[str(corpus.sources[s]) for s in sources],
                              preset="fast", train={"epochs": 2, "batch_size": 32, "lr": 1e-2}, threads=1,
                              plots=False)
    if test:
        kw["test_metadata"] = str(corpus.test_metadata)
    return ExperimentConfig(**{**kw, **options})


def fit_sequence_head(head, frames: int = 10, dim: int = 4, n: int = 48, seed: int = 0):
    """``head`` (a sequence head, or one wrapped by a fusion, over rows of ``frames`` x ``dim``)
    trained for 2 epochs on random frame sequences, every third clip NaN from frame 7 on."""
    import numpy as np

    from blemore.heads.training import TrainSpec

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, frames, dim)).astype(np.float32)
    X[::3, 7:] = np.nan
    Y = np.eye(6, dtype=np.float32)[rng.integers(0, 6, n)]
    head.fit(X.reshape(n, -1), Y, spec=TrainSpec(lr=1e-2, epochs=2, batch_size=16), seed=seed)
    return head


def padded_and_spread(base, frames: int, rng):
    """Clips ``base`` ``(n, L, D)`` (L valid frames each) as ``(n, frames, D)`` sequences two ways:
    NaN padding after the L frames, and the same frames in order at random slots with NaN (no-face)
    frames in between."""
    import numpy as np

    n, length, dim = base.shape
    padded = np.full((n, frames, dim), np.nan, np.float32)
    padded[:, :length] = base
    spread = np.full((n, frames, dim), np.nan, np.float32)
    for i in range(n):
        spread[i, np.sort(rng.choice(frames, length, replace=False))] = base[i]
    return padded, spread


def mark_as_egemaps(store: Path) -> None:
    """Make a (synthetic, 25-d) feature store say it holds eGeMAPS descriptors, so that a model
    trained on it can extract its features from media files."""
    from blemore.extractors import create_extractor

    cfg_path = Path(store) / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(create_extractor("egemaps").config_dict())
    cfg_path.write_text(json.dumps(cfg))


def assert_missing_weights_fail_fast(classes: Iterable[type], tmp_path: Path, monkeypatch) -> None:
    """With an empty, offline Hugging Face cache each extractor class says its weights are not
    there, and ``load()`` raises at once with the ``hf download <default weights>`` command."""
    from blemore.extractors._hf import WeightsUnavailableError

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    for cls in classes:
        assert not cls.weights_available()
        with pytest.raises(WeightsUnavailableError) as err:
            cls().load()
        assert f"hf download {cls.default_weights}" in str(err.value)
    assert time.perf_counter() - t0 < 3.0
