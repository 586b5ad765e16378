"""blemore: blended emotion recognition with relative salience.

The top-level names are loaded lazily (``import blemore`` imports neither torch nor pandas;
each name imports its module on first use)::

    blemore.load_metadata(csv)                 clip table of a metadata CSV    (blemore.dataset)
    blemore.extract(inputs, out, extractors)   media -> feature store          (blemore.extract)
    blemore.open_store(path)                   {source name: FeatureSource}    (blemore.store)
    blemore.load_features(sources, clip_ids)   pooled, joined FeatureSet       (blemore.features)
    blemore.benchmark(config)                  the whole protocol -> RunResult (blemore.experiment.run_experiment)
    blemore.train(config)                      a deployable ModelBundle        (blemore.experiment.train_model)
    blemore.load_model(dir)                    Model; .predict([...]) -> DataFrame (blemore.model)
    blemore.score(predictions, metadata)       ACC_presence, ACC_salience      (blemore.metrics)
    blemore.calibrate(probs, true_target)      (alpha, beta) grid search       (blemore.decode)

plus the types those take and return (:class:`ExperimentConfig`, :class:`RunResult`,
:class:`Label`, :class:`BlemoreError`, ...). ``_EXPORTS`` is the one table of them.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # functions
    "load_metadata": "blemore.dataset:load_metadata",
    "extract": "blemore.extract:extract",
    "open_store": "blemore.store:open_store",
    "load_features": "blemore.features:load_features",
    "benchmark": "blemore.experiment:run_experiment",
    "run_experiment": "blemore.experiment:run_experiment",
    "train": "blemore.experiment:train_model",
    "load_model": "blemore.model:load_model",
    "score": "blemore.metrics:score",
    "calibrate": "blemore.decode:calibrate",
    "generate_feature_corpus": "blemore.synth.features:generate_feature_corpus",
    # types
    "ExperimentConfig": "blemore.config:ExperimentConfig",
    "RunResult": "blemore.results:RunResult",
    "FoldResult": "blemore.results:FoldResult",
    "Score": "blemore.results:Score",
    "Model": "blemore.model:Model",
    "ModelBundle": "blemore.bundle:ModelBundle",
    "Label": "blemore.labels:Label",
    "EMOTIONS": "blemore.labels:EMOTIONS",
    "BlemoreError": "blemore.errors:BlemoreError",
}

__all__ = ["__version__"]
__all__.extend(_EXPORTS)  # the table above is the one list of public names


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'blemore' has no attribute {name!r}")
    module, attr = target.split(":")
    value = getattr(importlib.import_module(module), attr)
    if not (name == "extract"):  # blemore.extract is also a submodule: importing it rebinds the name
        globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
