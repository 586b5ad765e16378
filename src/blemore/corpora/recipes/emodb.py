"""EmoDB (Berlin): ``03a01Wa.wav`` = speaker (2 digits), text (a01..b10), emotion letter,
version letter. Speakers 03 10 11 12 15 are male, 08 09 13 14 16 female.

Letters (German initials): W Wut (anger) -> ang, L Langeweile (boredom) -> outside the label
space (dropped unless mapped), E Ekel (disgust) -> disg, A Angst (fear) -> fea, F Freude
(happiness) -> hap, T Trauer (sadness) -> sad, N neutral -> neu. No intensity.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from blemore.corpora.base import RECIPES, CorpusError, Found, Recipe, match_files

_NAME = re.compile(r"^(\d\d)([ab]\d\d)([A-Z])([a-z])$")
_MALE = {"03", "10", "11", "12", "15"}
_FEMALE = {"08", "09", "13", "14", "16"}


@RECIPES.register("emodb")
class EmoDB(Recipe):
    naming = "SSTTTEV.wav (speaker, text, emotion letter, version), e.g. 03a01Wa.wav"
    categories = {"W": "ang", "L": None, "E": "disg", "A": "fea", "F": "hap", "T": "sad", "N": "neu"}
    synonyms = {"anger": "W", "angry": "W", "ang": "W", "wut": "W", "boredom": "L", "bored": "L",
                "langeweile": "L", "disgust": "E", "disg": "E", "ekel": "E", "fear": "A", "fea": "A",
                "angst": "A", "happiness": "F", "happy": "F", "hap": "F", "freude": "F", "sadness": "T",
                "sad": "T", "trauer": "T", "neutral": "N", "neu": "N"}

    def columns(self) -> tuple[str, ...]:
        return ("text", "version")

    def scan(self, root: Path, **options: Any) -> tuple[list[Found], list[str]]:
        if options:
            raise CorpusError("emodb", f"unknown option(s) {sorted(options)}; emodb takes none")
        found = []
        matched, skipped = match_files(root, _NAME)
        for p, cid, m in matched:
            spk, text, letter, version = m.groups()
            gender = "m" if spk in _MALE else "f" if spk in _FEMALE else None
            found.append(Found(cid, p, spk, letter, gender, None, {"text": text, "version": version}))
        return found, skipped
