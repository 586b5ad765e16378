"""A trained model as a notebook sees it: ``blemore.load_model(dir).predict([...])`` -> DataFrame.

Contract:

- :func:`load_model` opens a saved model (a bundle folder, or ``hf://owner/repo[@rev]``
  through :func:`blemore.hub.resolve_model`) and returns a :class:`Model`: the
  :class:`~blemore.bundle.ModelBundle` (``model.bundle``; every other attribute, e.g.
  ``model.params``, ``model.manifest()``, ``model.timeline(...)``, is the bundle's) with a
  ``predict`` that takes what a user has at hand and returns a table.
- :meth:`Model.predict` takes one input or a list mixing:

  * media files (any of :data:`blemore.media.MEDIA_EXTENSIONS`): their features are extracted
    with the model's own extractors and settings into a temporary store that is deleted
    afterwards (what :meth:`ModelBundle.predict_media` does, with a folder of its own);
  * feature inputs, as :meth:`ModelBundle.predict` takes them: a feature folder per model
    source (a folder of ``<clip>.npy`` or a store sub-folder), a store folder holding the
    model's sources as sub-folders (from ``blemore extract``), a mapping ``{source name:
    folder}``, or ``.npy`` files (one clip each; single-source models only).

- The result is a :class:`pandas.DataFrame`, one row per predicted clip (feature inputs first,
  then media, each in the order the model reports them), with the columns of
  :func:`blemore.predictions.prediction_frame`: ``clip``, ``emotions`` (``ang+hap``),
  ``saliences`` (``70/30``; ``100`` for a single emotion), ``label`` (``ang+hap 70/30``, ``hap``)
  and ``p_ang`` ... ``p_neu`` (six probabilities summing to 1). A clip that cannot be predicted
  (no face, no audio, a failed extraction) is not a row: a warning names it and says why.
- A model trained with ``--adapt`` or ``--thresholds per-actor`` decodes **transductively**:
  the clips predicted in one call (feature inputs together; media together, as a separate
  set) are one evaluated set, and ``groups`` (a mapping clip id -> actor, or a CSV file with a
  clip column and an actor column, e.g. a metadata file) gives the per-actor groups; without it
  the clips of a set are split into identity groups by clustering, as the run did with test
  clips of unknown actor (:mod:`blemore.bundle`). ``df.attrs["decoding"]`` says
  whether decoding was transductive and what ran (``notes``: one line each); with fewer than
  two clips, adaptation is skipped with a warning.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

from blemore.bundle import BundleError, ModelBundle
from blemore.dataset import load_groups
from blemore.media import MEDIA_EXTENSIONS
from blemore.predictions import prediction_frame
from blemore.store import open_store
from blemore.hub import resolve_model

__all__ = ["Model", "load_model"]


def load_model(model: str | os.PathLike, **hub_kwargs: Any) -> "Model":
    """The saved model ``model`` (a bundle folder or ``hf://owner/repo[@revision]``) ready to
    predict media files and feature folders (see the module docstring)."""
    loaded = resolve_model(model, **hub_kwargs)
    if not isinstance(loaded, ModelBundle):
        raise BundleError(f"{model}: not a trained model bundle (use `blemore predict` for built-in models)")
    return Model(loaded)


def _is_media(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike)) and Path(x).suffix.lower() in MEDIA_EXTENSIONS


def _is_npy(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike)) and Path(x).suffix.lower() == ".npy"


class Model:
    """A :class:`~blemore.bundle.ModelBundle` whose :meth:`predict` returns a DataFrame."""

    def __init__(self, bundle: ModelBundle):
        self.bundle = bundle

    def __getattr__(self, name: str) -> Any:
        if name == "bundle":  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.bundle, name)

    def __repr__(self) -> str:
        return f"Model(sources={self.bundle.source_names}, params={self.bundle.params})"

    def predict(self, inputs: Any, *, groups: Mapping[str, Any] | str | os.PathLike | None = None,
                workers: int | None = None, progress: bool = True):
        """Predict media files and/or feature inputs (see the module docstring); returns a
        DataFrame with ``clip``, ``emotions``, ``saliences``, ``label``, ``p_<emotion>``.
        ``groups``: clip id -> actor (a mapping or a CSV file) for per-actor thresholds and
        per-actor normalisation; ``df.attrs["decoding"]`` says how the clips were decoded."""
        if groups is not None and not isinstance(groups, Mapping):
            groups = load_groups(groups)
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if not items:
            raise BundleError("nothing to predict: give media files and/or feature folders")
        media = [str(x) for x in items if _is_media(x)]
        npys = [Path(x) for x in items if _is_npy(x)]
        features = [x for x in items if not _is_media(x) and not _is_npy(x)]
        missing = [str(x) for x in [*media, *npys] if not Path(x).is_file()]
        if missing:
            raise BundleError(f"no such file(s): {', '.join(missing)}")
        frames, skipped, decodings = [], {}, []
        with tempfile.TemporaryDirectory(prefix="blemore-predict-") as tmp:
            if npys:
                features.append(self._npy_folder(npys, Path(tmp) / "npy"))
            if features:
                pred = self.bundle.predict(self._feature_input(features), groups=groups)
                frames.append(prediction_frame(pred.clip_ids, pred.proba, pred.mask, pred.target))
                skipped.update(pred.skipped)
                decodings.append(pred.decoding)
            if media:
                pred, _ = self.bundle.predict_media(media, Path(tmp) / "store", workers=workers, progress=progress,
                                                    groups=groups)
                frames.append(prediction_frame(pred.clip_ids, pred.proba, pred.mask, pred.target))
                skipped.update(pred.skipped)
                decodings.append(pred.decoding)
        if skipped:
            warnings.warn(f"{len(skipped)} clip(s) not predicted: "
                          + "; ".join(f"{c} ({why})" for c, why in sorted(skipped.items())), stacklevel=2)
        import pandas as pd

        df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        if len(decodings) == 1:
            df.attrs["decoding"] = decodings[0]
        else:  # feature inputs and media: two evaluated sets
            notes = [f"{what}: {n}" for what, d in zip(("feature inputs", "media"), decodings) for n in d.get("notes", [])]
            df.attrs["decoding"] = {"transductive": any(d.get("transductive") for d in decodings), "sets": decodings,
                                    "notes": notes + (["feature inputs and media were decoded as two separate sets"]
                                                      if any(d.get("transductive") for d in decodings) else [])}
        return df

    # -- feature inputs ---------------------------------------------------------------------
    def _feature_input(self, features: list) -> Any:
        """What :meth:`ModelBundle.predict` takes: the mapping / sources as given, or the
        model's sources picked out of a store folder."""
        if len(features) == 1 and isinstance(features[0], Mapping):
            return features[0]
        if len(features) == 1 and isinstance(features[0], (str, os.PathLike)) and self._is_store(Path(features[0])):
            st = open_store(features[0])
            by_name = {}
            for s in self.bundle.sources:
                ext = (s.get("config") or {}).get("extractor") if isinstance(s.get("config"), Mapping) else None
                for key in (s["name"], ext):
                    if key in st:
                        by_name[s["name"]] = st[key]
                        break
            return by_name
        return features

    @staticmethod
    def _is_store(p: Path) -> bool:
        """A folder of feature sub-folders with their ``config.json`` (not itself a feature folder)."""
        if not p.is_dir() or (p / "config.json").exists() or any(p.glob("*.npy")):
            return False
        return any((d / "config.json").is_file() for d in p.iterdir() if not d.name.startswith("."))

    def _npy_folder(self, npys: Iterable[Path], folder: Path) -> Path:
        """The ``.npy`` files linked into one plain feature folder (single-source models)."""
        if len(self.bundle.source_names) != 1:
            raise BundleError(
                f"the model needs {len(self.bundle.source_names)} feature sources {self.bundle.source_names}: "
                "pass a feature folder per source, a store folder, or a mapping {source name: folder} "
                "instead of single .npy files")
        folder.mkdir(parents=True)
        for p in npys:
            link = folder / p.name
            if link.exists():
                raise BundleError(f"two .npy inputs named {p.name} (one clip id each): {p}")
            try:
                os.symlink(p.resolve(), link)
            except OSError:  # no symlinks here: copy
                import shutil

                shutil.copyfile(p, link)
        return folder
