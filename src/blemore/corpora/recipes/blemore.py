"""BLEMORE itself, from the official release layout: ``train_metadata.csv`` (labels, actors,
gender, the five official folds) and the clips in ``train/`` (and ``test/``), anywhere
under the corpus folder.

Without ``train_metadata.csv`` the labels and actors come from the clip-id grammar
(``A102_ang_int1_ver1``, ``A438_mix_disg_hap_30_70_ver1``) and folds are made. The metadata
written keeps blends (``emotion_2`` and saliences in percent) and the official folds; the
anonymised test clips (labels hidden) are not in it: pass the release's
``test_metadata.csv`` as ``--test-metadata``. Nothing to map: the codes are BLEMORE's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from blemore.corpora.base import RECIPES, CorpusError, CorpusResult, Recipe, assign_folds
from blemore.labels import EMOTIONS
from blemore.dataset import build_index, index_folder


@RECIPES.register("blemore")
class Blemore(Recipe):
    naming = "train_metadata.csv + train/A102_ang_int1_ver1.mov (BLEMORE clip-id grammar)"
    categories = {e: e for e in EMOTIONS}

    def build(self, root: Path, user_map: Mapping[str, str], folds: int | str, seed: int,
              **options: Any) -> CorpusResult:
        if options:
            raise CorpusError("blemore", f"unknown option(s) {sorted(options)}; blemore takes none")
        if user_map:
            raise CorpusError("blemore", "the BLEMORE codes need no --map")
        metas = sorted(root.rglob("train_metadata.csv"))
        tests = sorted(root.rglob("test_metadata.csv"))
        notes = []
        if metas:
            table = build_index(metas[0], folder=root, how="left")
            notes.append(f"labels, actors and folds from {metas[0]}")
        else:
            table = index_folder(root, strict=False)
            table = table[table["split"] == "train"].reset_index(drop=True)
            notes.append("no train_metadata.csv: labels and actors from the clip ids")
        table = table[table["split"] == "train"].reset_index(drop=True)
        if not len(table):
            raise CorpusError(str(root), "no BLEMORE training clips (train_metadata.csv or A102_ang_int1_ver1.mov)")
        if tests:
            notes.append(f"test clips (labels hidden): use --test-metadata {tests[0]}")
        rows = []
        for r in table.itertuples(index=False):
            lab = r.label
            rows.append({
                "filename": r.clip_id, "actor": r.actor, "gender": (getattr(r, "gender", None) or ""),
                "emotion_1": lab.emotions[0], "emotion_2": lab.emotions[1] if lab.is_blend else "",
                "emotion_1_salience": str(lab.saliences[0]) if lab.is_blend else "",
                "emotion_2_salience": str(lab.saliences[1]) if lab.is_blend else "",
                "intensity": "", "corpus": "blemore", "fold": str(int(r.fold)) if int(r.fold) >= 0 else "",
                "source_emotion": lab.name(),
                "path": "" if r.path is None else Path(r.path).relative_to(root).as_posix()
                if Path(r.path).is_relative_to(root) else str(r.path),
            })
        meta = pd.DataFrame(rows, dtype=object)
        if (meta["fold"] == "").all():
            meta, fold_line = assign_folds(meta, folds, seed)
        elif (meta["fold"] == "").any():
            raise CorpusError(str(metas[0]), "some training clips have a fold and some do not")
        else:
            fold_line = f"{meta['fold'].nunique()} folds from the metadata"
        return CorpusResult("blemore", root, meta, len(meta), {}, {}, {}, [], fold_line, {"notes": notes})
