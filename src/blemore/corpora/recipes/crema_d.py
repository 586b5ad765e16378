"""CREMA-D: ``ActorID_Sentence_Emotion_Level.ext`` such as ``1001_DFA_ANG_XX.flv``.

Actors 1001-1091; sentences IEO TIE IOM IWW TAI MTI IWL ITH DFA ITS TSI WSI; emotions ANG DIS
FEA HAP NEU SAD; level LO / MD / HI (intensity 1 / 2 / 3) or XX (unspecified: no intensity).
Actor sex comes from ``VideoDemographics.csv`` (columns ActorID, Sex) anywhere under the
corpus folder when present; without it gender is left empty. Video (.flv) and audio
(.wav/.mp3) of one clip share its id; the video is kept (preference order of the media list).

Maps: ANG -> ang, DIS -> disg, FEA -> fea, HAP -> hap, NEU -> neu, SAD -> sad (all six).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from blemore.corpora.base import RECIPES, CorpusError, Found, Recipe, match_files

_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
_LEVELS = {"LO": 1, "MD": 2, "HI": 3, "XX": None}


def _demographics(root: Path) -> dict[str, str]:
    hits = sorted(root.rglob("VideoDemographics.csv"))
    if not hits:
        return {}
    df = pd.read_csv(hits[0], dtype=str, keep_default_na=False)
    cols = {c.strip().lower(): c for c in df.columns}
    if "actorid" not in cols or "sex" not in cols:
        raise CorpusError(str(hits[0]), f"needs ActorID and Sex columns (columns: {', '.join(df.columns)})")
    out = {}
    for a, s in zip(df[cols["actorid"]], df[cols["sex"]]):
        s = s.strip().lower()
        out[a.strip()] = {"male": "m", "m": "m", "female": "f", "f": "f"}.get(s, s or None)
    return out


@RECIPES.register("crema-d")
class CremaD(Recipe):
    naming = "ActorID_Sentence_Emotion_Level.ext, e.g. 1001_DFA_ANG_XX.flv"
    categories = {"ANG": "ang", "DIS": "disg", "FEA": "fea", "HAP": "hap", "NEU": "neu", "SAD": "sad"}
    synonyms = {"angry": "ANG", "anger": "ANG", "disgust": "DIS", "disgusted": "DIS", "disg": "DIS",
                "fear": "FEA", "fearful": "FEA", "happy": "HAP", "happiness": "HAP", "neutral": "NEU",
                "sadness": "SAD"}

    def columns(self) -> tuple[str, ...]:
        return ("sentence", "level")

    def scan(self, root: Path, **options: Any) -> tuple[list[Found], list[str]]:
        if options:
            raise CorpusError("crema-d", f"unknown option(s) {sorted(options)}; crema-d takes none")
        sex = _demographics(root)
        found, problems = [], []
        matched, skipped = match_files(root, _NAME)
        for p, cid, m in matched:
            actor, sentence, emo, level = m.groups()
            if sentence not in SENTENCES:
                problems.append(f"{p.name}: unknown sentence code {sentence!r} (known: {', '.join(SENTENCES)})")
            if level not in _LEVELS:
                problems.append(f"{p.name}: unknown level {level!r} (known: LO, MD, HI, XX)")
            found.append(Found(cid, p, actor, emo, sex.get(actor), _LEVELS.get(level),
                               {"sentence": sentence, "level": level}))
        if problems:
            raise CorpusError(str(root), problems)
        return found, skipped
