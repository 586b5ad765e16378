"""Corpus recipes: turn another corpus's own layout into blemore metadata (one command).

``blemore corpus NAME DIR -o metadata.csv`` or, in Python, one function per corpus::

    from blemore import corpora
    meta = corpora.ravdess("RAVDESS/", map={"calm": "neu"})      # a DataFrame
    result = corpora.prepare("emodb", "emodb/wav", folds="loso")  # + counts and summary lines
    result.write("emodb.csv")

Recipes (:data:`RECIPES`, one module each in :mod:`blemore.corpora.recipes`): ``blemore``,
``ravdess``, ``crema-d``, ``mead``, ``emodb``, ``generic`` (a named-group regex). Each writes
``filename`` (the clip id, unchanged from the corpus), ``actor``, ``gender`` and
``intensity`` where the corpus says them, ``emotion_1`` in BLEMORE's six codes, ``corpus``,
actor-disjoint ``fold``, ``source_emotion`` and ``path`` (relative to the corpus folder);
see :mod:`blemore.corpora.base` for the label mapping and what is dropped.
:func:`combine` concatenates the metadata of several corpora into one training set.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Iterable, Mapping

import pandas as pd

from blemore.corpora.base import (
    RECIPES,
    CorpusError,
    CorpusResult,
    Found,
    Recipe,
    combine,
    parse_map,
    prepare,
)

__all__ = ["RECIPES", "CorpusError", "CorpusResult", "Found", "Recipe", "prepare", "combine", "parse_map",
           "blemore", "ravdess", "crema_d", "mead", "emodb", "generic", "recipe_names"]

_log = logging.getLogger("blemore.corpora")


def recipe_names() -> list[str]:
    return RECIPES.names()


def _run(name: str, root: str | os.PathLike, map: Mapping[str, str] | Iterable[str] | None, folds: int | str,
         seed: int, **options: Any) -> pd.DataFrame:
    res = prepare(name, root, map=map, folds=folds, seed=seed, **options)
    for line in res.summary():
        _log.info(line)
    meta = res.metadata
    meta.attrs["summary"] = res.summary()
    meta.attrs["dropped"] = dict(res.dropped)
    return meta


def blemore(root: str | os.PathLike, *, folds: int | str = 5, seed: int = 0) -> pd.DataFrame:
    """The official BLEMORE release (see :mod:`blemore.corpora.recipes.blemore`)."""
    return _run("blemore", root, None, folds, seed)


def ravdess(root: str | os.PathLike, *, map: Mapping[str, str] | None = None, folds: int | str = 5,
            seed: int = 0, modality: str | None = None, channel: str | None = None) -> pd.DataFrame:
    """RAVDESS metadata (see :mod:`blemore.corpora.recipes.ravdess`)."""
    return _run("ravdess", root, map, folds, seed, modality=modality, channel=channel)


def crema_d(root: str | os.PathLike, *, map: Mapping[str, str] | None = None, folds: int | str = 5,
            seed: int = 0) -> pd.DataFrame:
    """CREMA-D metadata (see :mod:`blemore.corpora.recipes.crema_d`)."""
    return _run("crema-d", root, map, folds, seed)


def mead(root: str | os.PathLike, *, map: Mapping[str, str] | None = None, folds: int | str = 5,
         seed: int = 0, view: str | None = None) -> pd.DataFrame:
    """MEAD metadata (see :mod:`blemore.corpora.recipes.mead`)."""
    return _run("mead", root, map, folds, seed, view=view)


def emodb(root: str | os.PathLike, *, map: Mapping[str, str] | None = None, folds: int | str = 5,
          seed: int = 0) -> pd.DataFrame:
    """EmoDB metadata (see :mod:`blemore.corpora.recipes.emodb`)."""
    return _run("emodb", root, map, folds, seed)


def generic(root: str | os.PathLike, pattern: str, *, map: Mapping[str, str] | None = None,
            folds: int | str = 5, seed: int = 0) -> pd.DataFrame:
    """Any corpus, from a named-group regex (see :mod:`blemore.corpora.recipes.generic`)."""
    return _run("generic", root, map, folds, seed, pattern=pattern)
